#!/usr/bin/env bash
# Rebuild the built-in demo model reproducibly on 2 CPU cores (about 45 min):
#  1. pretrain the tiny vision encoder on rendered frames  -> lavis/demo/vision   (~10 min)
#  2. generate the shapes dataset and train the captioner from that encoder with cross-entropy
#     through torchrun; train.py scores the best checkpoint on the test split   (~35 min)
#  3. export the best checkpoint as a safetensors folder                       -> lavis/demo/model
#  4. write the demo videos (a seed it never trained on)                      -> lavis/demo/videos
#   bash scripts/train_demo_model.sh            # STEPS=3000 WORK=output/demo_model by default
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
WORK="${WORK:-output/demo_model}"
STEPS="${STEPS:-3000}"
NPROC="${NPROC:-2}"

"$PYTHON" scripts/pretrain_shapes_vision.py --out lavis/demo/vision --steps 4000 --seed 1234
"$PYTHON" -m lavis.datasets.synthetic --out "$WORK/data/shapes" --videos 4000 --seed 0
LAVIS_DATA_ROOT="$WORK/data" "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" train.py \
  --cfg-path lavis/projects/shapes/caption_shapes_ft.yaml \
  --options run.output_dir="$WORK" run.job_id=train run.max_steps="$STEPS"
rm -rf lavis/demo/model
"$PYTHON" -m lavis.inference.export --checkpoint "$WORK/train/checkpoint_best.pth" --out lavis/demo/model
"$PYTHON" scripts/make_demo_videos.py --out lavis/demo/videos
du -sh lavis/demo/model lavis/demo/vision
