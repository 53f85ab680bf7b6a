#!/usr/bin/env bash
# Score a captioner on the MSR-VTT test split with evaluate.py on every visible GPU (or one CPU
# process when there is none), then print BLEU-4, METEOR, ROUGE-L and CIDEr.
#   bash lavis/projects/blip2_timesformer/eval/evaluate_msrvtt.sh [NUM_GPUS] [KEY=VALUE ...]
#   bash .../evaluate_msrvtt.sh 8 run.checkpoint=output/.../checkpoint_best.pth
# CFG=<run yaml> scores another config the same way; PYTHON picks the interpreter.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../../.." && pwd)"
PYTHON="${PYTHON:-python}"
CFG="${CFG:-$ROOT/lavis/projects/blip2_timesformer/eval/caption_msrvtt_eval.yaml}"
NUM_GPUS="${1:-}"
[ $# -gt 0 ] && shift
if [ -z "$NUM_GPUS" ]; then
  NUM_GPUS="$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))')"
fi
JOB_ID="msrvtt_eval_$(date +%Y%m%d_%H%M%S)"
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NUM_GPUS" "$ROOT/evaluate.py" \
  --cfg-path "$CFG" --options run.job_id="$JOB_ID" "$@"
"$PYTHON" - "$CFG" "$JOB_ID" "$@" <<'PY'
import json, sys
from pathlib import Path
from lavis.common.config import load_config
cfg_path, job_id, options = sys.argv[1], sys.argv[2], sys.argv[3:]
job_dir = Path(load_config(cfg_path, options).run.output_dir) / job_id
for line in (job_dir / "metrics.jsonl").read_text().splitlines():
    m = json.loads(line)
    if "split" in m:
        print(f"{m['split']}: BLEU-4 {m['Bleu_4']:.4f}  METEOR {m['METEOR']:.4f}  ROUGE-L {m['ROUGE_L']:.4f}  "
              f"CIDEr {m['CIDEr']:.4f}  ({int(m['num_videos'])} videos; results in {job_dir})")
PY
