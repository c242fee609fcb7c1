# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Speedup landscape
#
# How much faster is speculative decoding than plain decoding, as a function of the acceptance
# rate α, the latency ratio c = T_draft / T_target and the number of draft tokens per step γ?
# Batch enters through the cost of the verification pass over γ + 1 tokens, here taken from the
# roofline of a target on a GPU (memory-bound at batch 1, compute-bound at large batch); the
# overhead is a fraction of one target pass per step. Everything below is the model
# (`perfmodel`), with Leviathan et al.'s closed form for comparison.

# %%
from explorer.figures import landscape as fl
from explorer.figures.notebook import landscape_checks
from perfmodel import get_hardware, get_preset

# %% tags=["parameters"]
TARGET = "llama-65b"  # preset in data/reference/
HARDWARE = "H200"  # perfmodel.hardware_names()
CONTEXT = 512  # tokens already in the KV cache
BATCHES = (1, 32, 128)
OVERHEAD_RATIOS = (0.0, 0.05, 0.1, 0.2)  # per-step overhead / one target pass
GAMMA_MAX = 12
CURVE_LATENCY_RATIO = 0.05  # c of the speedup-against-γ figure

# %%
latency = fl.RooflineLatency(get_preset(TARGET), get_hardware(HARDWARE))
info = fl.get_speedup_landscape_info(
    batches=BATCHES,
    overhead_ratios=OVERHEAD_RATIOS,
    target_latency=latency,
    context=CONTEXT,
    gamma_max=GAMMA_MAX,
    latency_source=latency.describe(),
)

# %% [markdown]
# Best speedup over α and c, each cell at its optimal γ (hover for it). Use the batch menu and
# the overhead slider; left of the red line no γ pays.

# %%
fl.plot_speedup_landscape(info)

# %%
fl.plot_speedup_curves(info, latency_ratio=CURVE_LATENCY_RATIO)

# %%
fl.plot_optimal_gamma(info)

# %%
fl.plot_break_even(info)

# %% [markdown]
# ## Model vs closed form
# At batch 1 without overhead the model must reduce to Leviathan et al.'s walltime factor, and
# γ = 1 must break even exactly at α = c (their Corollary 3.9).

# %%
print(landscape_checks(info).to_string(index=False))

# %%
print("verification cost v(b, γ) = T_target(b, n, γ+1) / T_target(b, n, 1) from the roofline:")
for b, row in zip(info.batch, info.verify_ratio, strict=True):
    print(f"  batch {b:>4}: " + " ".join(f"{v:.2f}" for v in row))
