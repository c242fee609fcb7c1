#!/usr/bin/env bash
# The CPU profile committed under data/profiles/cpu-xeon-2.5ghz-1c/ (see data/README.md, "profiles").
#
# One torch thread: this 2-core machine is shared with a training job, and with 2 threads the
# OpenMP barriers of every matmul stall whenever the other job holds a core (measured 3-8x slower
# and far noisier than 1 thread at a load average of 5). fp32: this CPU has no bf16 matmul units
# (bf16 GEMM runs at a third of fp32 speed).
#
# Usage: bash benchmarks/cpu_profile.sh [OUT_DIR]     (about 20-30 minutes on a loaded 2-core VM)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/profiles/cpu-xeon-2.5ghz-1c}"
common=(--device cpu --dtype fp32 --threads 1 --repeats 5 --warmup 1 --out "$out")

# Draft grid: llama layout, vocab 32000, head_dim 64, ffn = 2.6875 x hidden (llama-7b's ratio),
# 12 layers timed at depths 1, 2, 4 and 12 (the whole model), so depth 1-12 is covered.
for w in 128 256 512 1024 2048; do
  ffn=$(( (w * 43 / 16 + 7) / 8 * 8 ))
  specdec profile --model llama-7b --layers 12 --hidden "$w" --ffn "$ffn" --heads $(( w / 64 )) \
    --kv-heads $(( w / 64 )) --name "draft-w${w}-l12" --depths 1,2,4,12 --whole \
    --batch 1,4 --context 128,512 --query 1,4,17 "${common[@]}"
done

# Seed-paper presets: wide-sheared draft whole (5 layers), the others at depths 1 and 2 only.
specdec profile --model wide-sheared-llama-796m --depths 1,2 --whole \
  --batch 1,4 --context 128,512 --query 1,4,17 "${common[@]}"
specdec profile --model sheared-llama-1.3b --depths 1,2 \
  --batch 1,4 --context 128,512 --query 1,4,17 "${common[@]}"
specdec profile --model opt-125m --depths 1,2,12 --whole \
  --batch 1,4 --context 128,512 --query 1,4,17 "${common[@]}"
for m in llama-65b llama-2-70b opt-66b; do
  specdec profile --model "$m" --depths 1,2 --batch 1 --context 128,512 --query 1,4,17 "${common[@]}"
done
