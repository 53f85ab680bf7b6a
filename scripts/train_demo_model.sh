#!/usr/bin/env bash
# Rebuild the built-in demo model (lavis/demo/model) reproducibly on 2 CPU cores (about 21 min):
# generate the shapes dataset, train the tiny captioner with cross-entropy through torchrun,
# score it on the test split, export the best checkpoint as a safetensors folder, and write the
# demo videos (a seed it never trained on).
#   bash scripts/train_demo_model.sh            # STEPS=3000 WORK=output/demo_model by default
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
WORK="${WORK:-output/demo_model}"
STEPS="${STEPS:-3000}"
NPROC="${NPROC:-2}"

"$PYTHON" -m lavis.datasets.synthetic --out "$WORK/data/shapes" --videos 4000 --seed 0
LAVIS_DATA_ROOT="$WORK/data" "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" train.py \
  --cfg-path lavis/projects/shapes/caption_shapes_ft.yaml \
  --options run.output_dir="$WORK" run.job_id=train run.max_steps="$STEPS"
rm -rf lavis/demo/model
"$PYTHON" -m lavis.inference.export --checkpoint "$WORK/train/checkpoint_best.pth" --out lavis/demo/model
"$PYTHON" scripts/make_demo_videos.py --out lavis/demo/videos
du -sh lavis/demo/model
