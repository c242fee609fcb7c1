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
# # 3. Draft search
#
# `specdec search` proposes draft shapes (depth, width, heads, ffn) and γ with Optuna and scores
# each with the model: predicted speculative tokens/s, and in multi-objective mode the draft's
# size as a second objective. This notebook shows a study: its Pareto front, the optimisation
# history and which parameters matter. With no study under `runs/` it runs a small example
# search into a temporary folder first.

# %%
from explorer.figures import search as fs
from explorer.figures.notebook import open_study, show
from explorer.report import search_section

# %% tags=["parameters"]
STUDY = None  # study name; None: the newest study under runs/
STORAGE = None  # Optuna storage URL or journal file; None: sqlite:///runs/<study>.db
FALLBACK_TRIALS = 30  # size of the example search when there is no study

# %%
study, where = open_study(STUDY, STORAGE, fallback_trials=FALLBACK_TRIALS)
print(where)

# %% [markdown]
# The report's search section: Pareto front (for a single-objective study: predicted tokens/s
# against the draft's parameters), history of the best value, PED-ANOVA parameter importance.

# %%
show(search_section(study, storage_display=where))

# %% [markdown]
# The same figures one by one, e.g. the history of another objective:

# %%
fs.plot_history(fs.get_history_info(study, objective=0))

# %% [markdown]
# ## The best configurations (predictions, not measurements)

# %%
print(fs.study_summary(study).to_string(index=False))
