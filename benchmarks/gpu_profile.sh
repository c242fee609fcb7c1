#!/usr/bin/env bash
# Profile the seed-paper presets and the draft grid on one CUDA GPU, in one Python process
# (imports once), writing data/profiles-style CSVs to $OUT/profiles/<device slug>/, and each
# profiled model's linear-layer products at every m = batch x query of its grid into gemm.csv
# there (the GEMM table the latency model composes never-profiled shapes from).
#
#   OUT=/tmp/out bash benchmarks/gpu_profile.sh            # CUDA, bf16: about 5-7 minutes on an H200
#   OUT=/tmp/out PROFILE_TINY=1 bash benchmarks/gpu_profile.sh   # CPU smoke test, tiny grid, ~1 min
#
# Budget: every model gets its own deadline share; a model that would start after
# PROFILE_BUDGET_S (default 420 s) is skipped and listed in $OUT/gpu_profile_summary.json, so the
# script ends inside 8 minutes even on a slower GPU. Afterwards:
#   python benchmarks/bench_latency_model.py --profiles $OUT/profiles/<slug>
#
# More runs: PROFILE_PASSES=N goes over the jobs N times, interleaved (model A, B, ..., A, B, ...),
# and pools each later pass's samples into the rows (profiler.profile_store, accumulate); with
# PROFILE_ACCUMULATE=1 the first pass pools too, into the rows already in
# $OUT/profiles/<slug>/ (copy a committed folder there first). The GEMM table is timed in the
# first pass only. On CUDA each model starts after ~0.3 s of matrix products, so the GPU's
# clocks are up when its first point is timed (the first H200 run's first point of
# sheared-llama-1.3b read 2.0 ms where its neighbours read 1.4).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_profile}"
mkdir -p "$OUT"
export OUT PROFILE_TINY="${PROFILE_TINY:-0}" PROFILE_BUDGET_S="${PROFILE_BUDGET_S:-420}"
export PROFILE_PASSES="${PROFILE_PASSES:-1}" PROFILE_ACCUMULATE="${PROFILE_ACCUMULATE:-0}"
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1

python - <<'EOF' 2>&1 | tee "$OUT/gpu_profile.log"
import json, os, time, traceback
from pathlib import Path

import torch

from perfmodel.gemm_table import model_gemms
from profiler.build import resolve_model
from profiler.gemm import profile_gemms, write_gemm_rows
from profiler.hardware_probe import device_slug, hardware_for
from profiler.layers import ProfileGrid, profile_model
from profiler.profile_store import write_profile

t0 = time.time()
tiny = os.environ["PROFILE_TINY"] == "1"
budget = float(os.environ["PROFILE_BUDGET_S"])
passes = int(os.environ["PROFILE_PASSES"])
accumulate_first = os.environ["PROFILE_ACCUMULATE"] == "1"
if passes < 1:
    raise SystemExit(f"gpu_profile.sh: PROFILE_PASSES must be >= 1, got {passes}")
device = "cpu" if tiny else "cuda"
if not tiny and not torch.cuda.is_available():
    raise SystemExit("gpu_profile.sh: no CUDA device (use PROFILE_TINY=1 for the CPU smoke test)")
if tiny:
    torch.set_num_threads(1)
dtype = "fp32" if tiny else "bf16"
out = Path(os.environ["OUT"]) / "profiles" / device_slug(device)
hw = hardware_for(device, cache_dir=out)

def draft(w, layers, kv=None):
    """A Llama-layout draft, 64-wide heads; ``kv`` KV heads (grouped-query) or one per head."""
    ffn = (w * 43 // 16 + 7) // 8 * 8
    kv_name = "" if kv is None else f"-kv{kv}"
    return ("llama-7b", {"layers": layers, "hidden": w, "ffn": ffn, "heads": w // 64,
                         "kv_heads": kv or w // 64}, f"draft-w{w}{kv_name}-l{layers}")

if tiny:
    jobs = [
        (*draft(128, 2), ProfileGrid(batch=(1,), context=(16,), query=(1, 2), depths=(1, 2),
                                     whole=True, repeats=2)),
        ("llama-65b", {"layers": 2, "hidden": 256, "heads": 4, "ffn": 688}, None,
         ProfileGrid(batch=(1,), context=(16,), query=(1,), depths=(1, 2), repeats=2)),
        ("opt-66b", {"layers": 2, "hidden": 256, "heads": 4, "ffn": 1024}, None,
         ProfileGrid(batch=(1,), context=(16,), query=(1,), depths=(1, 2), repeats=2)),
    ]
else:
    big = ProfileGrid(batch=(1, 4, 16), context=(128, 512, 1536), query=(1, 2, 4, 8, 17),
                      depths=(1, 2), repeats=10, warmup=3)
    grid_draft = ProfileGrid(batch=(1, 4, 16), context=(128, 512, 1536), query=(1, 2, 4, 8, 17),
                             depths=(1, 2, 4, 12), whole=True, repeats=10, warmup=3)
    small_whole = ProfileGrid(batch=(1, 4, 16), context=(128, 512, 1536), query=(1, 2, 4, 8, 17),
                              depths=(1, 2), whole=True, repeats=10, warmup=3)
    # the seed paper's targets first, then the draft grid: what the budget skips comes last
    jobs = [(m, {}, None, big) for m in ("llama-65b", "llama-2-70b", "opt-66b")]
    jobs += [(*draft(w, 12), grid_draft) for w in (128, 256, 512, 1024, 2048)]
    # grouped-query drafts: the first H200 profile had two GQA shapes only (llama-2-70b,
    # tinyllama-1.1b), too few to fit what attention over a long cache costs with fewer KV heads
    jobs += [(*draft(w, 12, kv), grid_draft) for w, kv in ((1024, 4), (2048, 8))]
    jobs += [(m, {}, None, small_whole) for m in (
        "wide-sheared-llama-290m", "wide-sheared-llama-543m", "wide-sheared-llama-796m",
        "sheared-llama-1.3b", "tinyllama-1.1b", "opt-125m", "opt-1.3b")]
    jobs += [(m, {}, None, big) for m in (
        "llama-7b", "llama-13b", "sheared-llama-2.7b", "opt-6.7b", "opt-13b")]

def warm_gpu(seconds=0.3):
    """Matrix products for ``seconds``: the clocks are up before a model's first point."""
    x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    end = time.time() + seconds
    while time.time() < end:
        for _ in range(20):
            x = (x @ x).clamp_(-1, 1)
        torch.cuda.synchronize()


done, skipped, failed = [], [], []
for p, (model, overrides, name, grid) in [(p, j) for p in range(passes) for j in jobs]:
    suffix = f" (pass {p + 1})" if passes > 1 else ""
    label = (name or model) + suffix
    elapsed = time.time() - t0
    if elapsed > budget:
        skipped.append(label)
        continue
    try:
        recipe = resolve_model(model, overrides=overrides, name=name)
        if device == "cuda":
            try:
                warm_gpu()
            except Exception as exc:  # a warm-up is no reason to lose the model's profile
                print(f"warm-up failed ({exc}); profiling anyway", flush=True)
        prof = profile_model(recipe, grid=grid, device=device, dtype=dtype, hardware=hw)
        paths = write_profile(prof, out, accumulate=p > 0 or accumulate_first).paths
        a = recipe.arch
        if a is not None and p == 0:
            pairs = model_gemms(hidden=a.hidden, ffn=a.ffn, heads=a.heads, kv_heads=a.kv_heads,
                                vocab=a.vocab, opt=a.family == "opt")
            ms = sorted({b * q for b in grid.batch for q in grid.query})
            write_gemm_rows(out, profile_gemms(pairs, ms, device=device, dtype=dtype,
                                               warmup=grid.warmup, repeats=grid.repeats))
        fits = prof.fits
        print(f"[{time.time() - t0:6.1f}s] {recipe.name}{suffix}: "
              f"{len(prof.rows)} rows; "
              f"T_layer(b=1, q=1) = {fits['t_layer_ms'].iloc[0]:.3f} ms, "
              f"T_fixed = {fits['t_fixed_ms'].iloc[0]:.3f} ms -> {paths[0]}", flush=True)
        done.append(label)
    except Exception as exc:  # keep going: one model's failure must not lose the others
        traceback.print_exc()
        failed.append(f"{label}: {exc}")
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()

summary = {"device": device_slug(device), "dtype": dtype, "tiny": tiny, "seconds": time.time() - t0,
           "passes": passes, "accumulate_first": accumulate_first, "done": done,
           "skipped_for_time": skipped, "failed": failed, "out": str(out)}
(Path(os.environ["OUT"]) / "gpu_profile_summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary))
EOF
