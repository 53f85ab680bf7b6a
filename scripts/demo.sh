#!/usr/bin/env bash
# `make demo`: the whole job on the built-in synthetic dataset, on the CPU, in minutes.
#  1. generate a small shapes dataset            (python -m lavis.datasets.synthetic)
#  2. train the tiny captioner through torchrun  (train.py, 2 processes, cross-entropy, from the
#                                                 shipped pretrained vision encoder lavis/demo/vision)
#  3. score it on the test split                 (BLEU, METEOR, ROUGE-L, CIDEr; train.py's test pass)
#  4. caption the demo videos with the shipped demo model and write the HTML gallery (batch_inference.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
OUT="${OUT:-output/demo}"
STEPS="${STEPS:-600}"
NPROC="${NPROC:-2}"

echo "== 1/4 generating the shapes dataset in $OUT/data"
"$PYTHON" -m lavis.datasets.synthetic --out "$OUT/data/shapes" --videos 400 --seed 0
echo "== 2/4 training the tiny captioner for $STEPS steps on $NPROC CPU processes"
LAVIS_DATA_ROOT="$OUT/data" "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" train.py \
  --cfg-path lavis/projects/shapes/caption_shapes_ft.yaml \
  --options run.output_dir="$OUT" run.job_id=train run.max_steps="$STEPS" run.val_freq="$STEPS" \
            run.save_freq="$STEPS" run.warmup_steps=50
echo "== 3/4 test-split scores of the model just trained"
"$PYTHON" - "$OUT/train/metrics.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("split") == "test":
        print("  " + "  ".join(f"{k} {m[k]:.4f}" for k in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")))
PY
echo "== 4/4 captioning lavis/demo/videos with the built-in demo model"
"$PYTHON" lavis/projects/blip2_timesformer/batch_inference.py --video_dir lavis/demo/videos \
  --output_file "$OUT/demo_captions.json" --html "$OUT/gallery" --batch_size 4 --num_workers 1 --num_beams 3
echo "captions: $OUT/demo_captions.json   gallery: $OUT/gallery/index.html"
