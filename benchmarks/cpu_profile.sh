#!/usr/bin/env bash
# The CPU profile committed under data/profiles/cpu-xeon-2.5ghz-1c/ (see data/README.md, "profiles").
#
# Run it on an idle machine: on a shared one, process CPU time is inflated too (cache and memory
# bandwidth are shared), by +6 % median and up to +36 % per row at a load average of 8 compared
# with an idle run of the same grid. One torch thread: with 2 threads the OpenMP barriers of
# every matmul stall whenever another job holds a core. fp32: this CPU has no bf16 matmul units
# (bf16 GEMM runs at a third of fp32 speed).
#
# Usage: bash benchmarks/cpu_profile.sh [OUT_DIR]
# WIDTHS="2048" / ZOO_WIDTHS="128" restrict the draft grids; SKIP_PRESETS=1 skips the presets.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/profiles/cpu-xeon-2.5ghz-1c}"
common=(--device cpu --dtype fp32 --threads 1 --repeats 5 --warmup 1 --out "$out")

# Draft grid: llama layout, vocab 32000, head_dim 64, ffn = 2.6875 x hidden (llama-7b's ratio),
# 12 layers timed at depths 1, 2, 4 and 12 (the whole model), so depth 1-12 is covered. Widths
# step by about 1.5x, so a width left out of the latency model's fit has neighbours on both sides.
for w in ${WIDTHS-128 192 256 384 512 768 1024 1536 2048}; do
  ffn=$(( (w * 43 / 16 + 7) / 8 * 8 ))
  specdec profile --model llama-7b --layers 12 --hidden "$w" --ffn "$ffn" --heads $(( w / 64 )) \
    --kv-heads $(( w / 64 )) --name "draft-w${w}-l12" --depths 1,2,4,12 --whole \
    --batch 1,4 --context 128,512 --query 1,4,17 "${common[@]}"
done

# The zoo's draft family: the zoo target's config (vocabulary 4096, tied embedding) with the
# shapes `specdec train` builds (ffn = 8/3 x hidden rounded up to 64, head_dim 64). These are the
# shapes the explorer proposes for the zoo target; width 384 is left out (the target's width).
for w in ${ZOO_WIDTHS-128 256 512 1024}; do
  ffn=$(( (8 * w + 191) / 192 * 64 ))
  specdec profile --model data/zoo/target --layers 12 --hidden "$w" --ffn "$ffn" \
    --heads $(( w / 64 )) --kv-heads $(( w / 64 )) --name "zoo-w${w}-l12" --depths 1,2,4,12 \
    --whole --batch 1,4 --context 128,512 --query 1,4,17 "${common[@]}"
done

# Seed-paper presets, batch 1 (the large ones take seconds per pass here): one and two layers,
# and opt-125m whole as well (12 layers).
[ -n "${SKIP_PRESETS:-}" ] && exit 0
preset=(--batch 1 --context 128,512 --query 1,4,17)
specdec profile --model opt-125m --depths 1,2,12 --whole "${preset[@]}" "${common[@]}"
for m in llama-65b opt-66b llama-2-70b; do  # 3 repeats: 1-2 s per pass here
  specdec profile --model "$m" --depths 1,2 "${preset[@]}" "${common[@]}" --repeats 3
done
for m in sheared-llama-1.3b wide-sheared-llama-796m; do
  specdec profile --model "$m" --depths 1,2 "${preset[@]}" "${common[@]}"
done

# The zoo's target (trained by `specdec train`, data/zoo/target), from its config.json: whole
# model and depth fit.
if [ -f data/zoo/target/config.json ]; then
  specdec profile --model data/zoo/target --name zoo-target --depths 1,2,6 --whole \
    --batch 1,4 --context 128,256 --query 1,4,17 "${common[@]}"
fi
