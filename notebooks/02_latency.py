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
# # 2. Latency: per layer and per token, over depth and width
#
# The profiler (`specdec profile`) times real Hugging Face model classes at several depths and
# splits a forward pass into T = T_fixed + L·T_layer. These figures read the committed profiles
# under `data/profiles/<device>/` (CPU, and GPU where present), with the roofline lower bound
# beside each measurement. The depth effect: at the same parameter count, a deeper draft is
# slower when a layer's time is dominated by per-layer fixed costs.

# %%
from explorer.figures.notebook import REPO_ROOT, latency_checks, show
from explorer.report import latency_section

# %% tags=["parameters"]
PROFILES = None  # a folder of profile CSVs; None: data/profiles (every device)
BATCH = 1
QUERY = 1  # new tokens per row (1 = decoding; γ+1 = verification)

# %%
folder = PROFILES or REPO_ROOT / "data" / "profiles"
section = latency_section(PROFILES, batch=BATCH, query=QUERY)

# %% [markdown]
# The report's latency section (it says so plainly when no profile has been committed yet):

# %%
show(section)

# %% [markdown]
# ## Model vs measured
# Measured per-layer time against its roofline bound (1 = at the bound), and how well the
# straight line in depth holds (residual of the depth fit; whole model vs composed where timed).

# %%
print(latency_checks(folder).to_string(index=False) if section.has_data else section.missing)
