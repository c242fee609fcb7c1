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
# # 4. Validation: predicted vs measured
#
# Two checks of the model against real runs on this machine:
#
# 1. the drafts `specdec validate` trained for a search: predicted α, draft latency, tokens/s
#    and speedup before the draft existed, against what was measured;
# 2. the model zoo (`data/zoo/drafts.csv`): the seed paper's comparison of shallow-wide and
#    deep-narrow drafts of about the same size, and the step model fed each draft's measured α
#    and latencies against its measured speculative tokens/s.

# %%
from explorer.figures.notebook import show
from explorer.report import load_study, validation_section, zoo_section

# %% tags=["parameters"]
VALIDATION = None  # table written by `specdec validate`; None: the validated trials of STUDY
STUDY = None  # None: the newest study under runs/
STORAGE = None
ZOO = None  # None: data/zoo/drafts.csv

# %%
study, _, _ = load_study(STUDY, STORAGE)
validation = validation_section(VALIDATION, study=study)
zoo = zoo_section(ZOO)

# %%
show(validation)

# %%
show(zoo)

# %% [markdown]
# ## Model vs measured, in numbers

# %%
for section in (validation, zoo):
    print(section.title)
    print("  " + (str(section.facts) if section.has_data else f"no data: {section.missing}"))
