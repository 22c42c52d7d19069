#!/usr/bin/env bash
# On the lent GPU machine (no network): the wheels it lacks from .whl/ (benchmarks/device_wheels.sh puts them
# there), then benchmarks/gpu_job.py, its output and JSON into $OUT. Call it through the device tool:
#   run(command="bash benchmarks/gpu_job.sh", carry=[".whl"], timeout_s=590)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/template" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-out/gpu_job}"
mkdir -p "$OUT"
{ nvidia-smi; nproc; free -g; python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } \
  > "$OUT/machine.txt" 2>&1
python3 benchmarks/gpu_job.py --json "$OUT/gpu_job.json" "$@" 2>&1 | tee "$OUT/gpu_job.txt"
