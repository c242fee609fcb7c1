"""How much each stage of `specdec demo` does (:class:`DemoBudget`: ``QUICK`` and ``FULL``), and
the stages' progress bar."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "DemoBudget"]


@dataclass(frozen=True)
class DemoBudget:
    """How much each stage does. ``QUICK`` fits in about two minutes, ``FULL`` in ten.

    ``FULL`` distils the chosen draft on the zoo drafts' own budget (393216 tokens), so the
    acceptance model, fitted to the zoo, predicts α inside the range it was fitted on.
    """

    name: str
    trials: int  # complete trials of the search
    train_tokens: int  # distillation budget of the chosen draft
    seq_len: int
    batch_size: int
    eval_windows: int
    prompts: int  # HumanEval prompts of the real runs
    new_tokens: int  # tokens generated per prompt
    context: int  # prompt tokens kept (the search's n)
    profile_repeats: int
    # q values profiled for a missing target: every verification pass of gamma <= gamma_max (on
    # some CPUs a pass over 2-3 tokens costs more than over 4, so q is not interpolated safely)
    profile_queries: tuple[int, ...]
    draft_widths: tuple[int, ...]  # widths profiled when the draft space has no profile
    depth_max: int  # deepest draft the search may propose
    gamma_max: int


QUICK = DemoBudget(
    name="quick", trials=24, train_tokens=4096, seq_len=128, batch_size=8, eval_windows=4,
    prompts=2, new_tokens=32, context=128, profile_repeats=2, profile_queries=tuple(range(1, 8)),
    draft_widths=(128, 256), depth_max=4, gamma_max=6,
)  # fmt: skip
FULL = DemoBudget(
    name="full", trials=200, train_tokens=393216, seq_len=256, batch_size=8, eval_windows=16,
    prompts=8, new_tokens=64, context=128, profile_repeats=3, profile_queries=tuple(range(1, 10)),
    draft_widths=(128, 256, 384), depth_max=8, gamma_max=8,
)  # fmt: skip


def _bar(total: int | None, desc: str, unit: str, enabled: bool):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=True)
