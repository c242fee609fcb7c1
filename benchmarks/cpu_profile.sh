#!/usr/bin/env bash
# The CPU profiles committed under data/profiles/cpu-<cpu>-1c/ (see data/README.md, "profiles"):
# cpu-xeon-2.5ghz-1c/ and cpu-epyc-1c/ were made with this script, each on its machine.
#
# Run it on an idle machine: on a shared one, process CPU time is inflated too (cache and memory
# bandwidth are shared), by +6 % median and up to +36 % per row at a load average of 8 compared
# with an idle run of the same grid. One torch thread: with 2 threads the OpenMP barriers of
# every matmul stall whenever another job holds a core. fp32 by default (DTYPE=bf16 for bf16): the
# Xeon has no bf16 matmul units (bf16 GEMM runs at a third of fp32 speed there); the EPYC has
# AVX512-BF16 (its hardware.json: bf16 peak 2.2x fp32), but the engine and the zoo run fp32.
#
# Even idle, a virtual machine's latency drifts between runs made minutes apart (the same grid
# of a ~1 ms layer measured 18 % apart in median, process CPU time included, because the host's
# cache and memory bandwidth are shared), more than it varies within a run. So every shape but
# the 65-70B presets is profiled ROUNDS times (default 3), round-robin over the shapes, and the
# runs are pooled (`--accumulate`: medians over all samples of all runs).
#
# Usage: bash benchmarks/cpu_profile.sh [OUT_DIR]   (default data/profiles/<this CPU's slug, 1 thread>)
# MIN_TIME_MS=200 (default): forward passes are timed until each point's calls add up to 200 ms.
# WIDTHS="2048" / ZOO_WIDTHS="128" restrict the draft grids; SKIP_PRESETS=1 skips the presets;
# SKIP_LARGE=1 skips the 65-70B presets only; ROUNDS=1 profiles once; QUERY="1,4,17" sets the
# query lengths (default every verification pass of gamma <= 8, q = 1..9, and q = 17: GEMM speed
# on a CPU is not smooth in the number of rows, e.g. a 32000 x 512 LM head took 15 / 21 / 12 ms
# at q = 2 / 3 / 4 on the EPYC, so a q that is not profiled is not safely interpolated); DTYPE=bf16
# profiles in bf16. Pooling adds to the rows already in OUT_DIR: start from an empty folder (with
# hardware.json) for a fresh profile.
#
# GEMM=1 times the linear-layer products of the same shapes instead (`specdec profile --gemm`, at
# m = batch x query rows, into OUT_DIR/gemm.csv), plus those of the draft shapes the explorer
# proposes for the zoo target (widths 128-1024, ffn 2, 8/3 and 4 x hidden, 1 or 2 query heads per
# KV head), which the latency model composes never-profiled shapes from.
set -euo pipefail
cd "$(dirname "$0")/.."
slug=$(python -c "import torch; torch.set_num_threads(1); from profiler.hardware_probe import device_slug; print(device_slug('cpu'))")
out="${1:-data/profiles/$slug}"
echo "profiling into $out" >&2
rounds="${ROUNDS:-3}"
query="${QUERY:-1,2,3,4,5,6,7,8,9,17}"
common=(--device cpu --dtype "${DTYPE:-fp32}" --threads 1 --repeats 5 --warmup 1 --out "$out" --accumulate)
# Forward passes: at least 5 calls per depth and point, more until they add up to MIN_TIME_MS
# (default 200; 0 = 5 calls): passes under 2 ms are noisy (interquartile range 23% of the
# median on the EPYC VM), passes of 50 ms and more much less (7%).
[ -z "${GEMM:-}" ] && common+=(--min-time-ms "${MIN_TIME_MS:-200}")
[ -n "${GEMM:-}" ] && common+=(--gemm)
# How the forward passes of every shape but the 65-70B presets are timed (data/README.md,
# "cpu-epyc-1c", measuring context): BLOCK (default 1: one call per depth and round, the
# committed profiles) back-to-back calls per depth and round after an untimed one (`--block`);
# FLUSH_MIB (default 0) MiB streamed through the caches before every call (`--flush-mib`).
# Round-robin with one call, a small shape's one-layer pass follows a deeper pass that evicted
# its weights; back to back it keeps them in the cache (zoo-w256 at q = 1: 0.7x the time).
protocol=()
[ -z "${GEMM:-}" ] && protocol=(--block "${BLOCK:-1}" --flush-mib "${FLUSH_MIB:-0}")

for round in $(seq "$rounds"); do
echo "round $round of $rounds" >&2
# REPLACE=1: the first round replaces the rows already in OUT_DIR instead of pooling with them
# (remaking a profile with other settings, e.g. BLOCK or FLUSH_MIB); later rounds pool.
shapes=("${protocol[@]}")
for a in "${common[@]}"; do
  [ -n "${REPLACE:-}" ] && [ "$round" = 1 ] && [ "$a" = --accumulate ] && continue
  shapes+=("$a")
done

# Draft grid: llama layout, vocab 32000, head_dim 64, ffn = 2.6875 x hidden (llama-7b's ratio),
# 12 layers timed at depths 1, 2, 4 and 12 (the whole model), so depth 1-12 is covered. Widths
# step by about 1.5x, so a width left out of the latency model's fit has neighbours on both sides.
for w in ${WIDTHS-128 192 256 384 512 768 1024 1536 2048}; do
  ffn=$(( (w * 43 / 16 + 7) / 8 * 8 ))
  specdec profile --model llama-7b --layers 12 --hidden "$w" --ffn "$ffn" --heads $(( w / 64 )) \
    --kv-heads $(( w / 64 )) --name "draft-w${w}-l12" --depths 1,2,4,12 --whole \
    --batch 1,4 --context 128,512 --query "$query" "${shapes[@]}"
done

# The zoo's draft family: the zoo target's config (vocabulary 4096, tied embedding) with the
# shapes `specdec train` builds (ffn = 8/3 x hidden rounded up to 64, head_dim 64). These are the
# shapes the explorer proposes for the zoo target; width 384 is left out (the target's width).
# Width 192 is the one zoo shape besides 128 whose 12 layers fit in the EPYC's 32 MiB L3 (fp32:
# 24 MiB with the head), so the smallest shape has a neighbour in its cache regime. (By lscpu's
# size: the cache a process really gets on that VM is about 8-10 MiB, bench_residency.py.)
for w in ${ZOO_WIDTHS-128 192 256 512 1024}; do
  ffn=$(( (8 * w + 191) / 192 * 64 ))
  specdec profile --model data/zoo/target --layers 12 --hidden "$w" --ffn "$ffn" \
    --heads $(( w / 64 )) --kv-heads $(( w / 64 )) --name "zoo-w${w}-l12" --depths 1,2,4,12 \
    --whole --batch 1,4 --context 128,512 --query "$query" "${shapes[@]}"
done

# GEMM=1: the search space's shapes for the zoo target (explorer.space defaults), products only.
if [ -n "${GEMM:-}" ]; then
  for w in 128 256 384 512 640 768 896 1024; do
    for ffn in $(( (2 * w + 63) / 64 * 64 )) $(( (8 * w + 191) / 192 * 64 )) $(( (4 * w + 63) / 64 * 64 )); do
      for kv in $(( w / 64 )) $(( w / 128 )); do
        [ "$kv" -ge 1 ] || continue
        specdec profile --model data/zoo/target --layers 2 --hidden "$w" --ffn "$ffn" \
          --heads $(( w / 64 )) --kv-heads "$kv" --name "space-w${w}" --batch 1,4 \
          --query "$query" "${common[@]}" > /dev/null
      done
    done
  done
fi

# Seed-paper presets, batch 1: one and two layers, and opt-125m whole as well (12 layers).
preset=(--batch 1 --context 128,512 --query "$query")
[ -n "${SKIP_PRESETS:-}" ] && continue
specdec profile --model opt-125m --depths 1,2,12 --whole "${preset[@]}" "${shapes[@]}"
for m in sheared-llama-1.3b wide-sheared-llama-796m; do
  specdec profile --model "$m" --depths 1,2 "${preset[@]}" "${shapes[@]}"
done

# The zoo's target (trained by `specdec train`, data/zoo/target), from its config.json: whole
# model and depth fit.
if [ -f data/zoo/target/config.json ]; then
  specdec profile --model data/zoo/target --name zoo-target --depths 1,2,6 --whole \
    --batch 1,4 --context 128,256 --query "$query" "${shapes[@]}"
fi
done

# The 65-70B presets (1-2 s per pass here): once, 3 repeats.
[ -n "${SKIP_PRESETS:-}${SKIP_LARGE:-}" ] && exit 0
for m in llama-65b opt-66b llama-2-70b; do
  specdec profile --model "$m" --depths 1,2 "${preset[@]}" "${common[@]}" --repeats 3
done
