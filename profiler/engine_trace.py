"""What a speculative-decoding run measured: the per-step trace and the run's result.

The acceptance statistics follow DESIGN.md and are computed by ``perfmodel.acceptance`` from
the trace (each (step, row) pair is one observation of k, the accepted proposals):

- α̂ (``acceptance_rate``) = Σk / (Σk + number of observations with k < γ), the MLE;
- α_i (``position_acceptance``) = #(k >= i) / #(k >= i − 1);
- τ (``mean_accepted_length``) = mean of k + 1, which equals 1 + Σ_i Π_{j<=i} α̂_j exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perfmodel.acceptance import estimate_acceptance_rate, estimate_position_acceptance

__all__ = ["GenerationResult", "StepTrace"]


@dataclass(frozen=True)
class StepTrace:
    """One engine step over every live row.

    Attributes
    ----------
    rows : tuple of int
        Prompt index of each row that took part in the step.
    accepted : tuple of int
        k per row (same order as ``rows``): proposals accepted, in [0, γ]. The row emitted k + 1
        tokens (fewer if it reached ``max_new_tokens`` or EOS; k itself is never truncated).
    draft_ms, verify_ms, overhead_ms : float
        Wall time of the step's γ draft forward passes, of its target forward pass, and of
        everything else in the step (sampling, acceptance, rollback, bookkeeping).
    draft_first_pass_tokens : int
        Tokens fed by the draft's first pass: 1, or 2 after a full acceptance (0 when γ = 0).
    context_columns : int
        KV columns of the target's cache when the step began (n of T(b, n, q); includes
        padding and rolled-back columns of other rows).
    prompt_tokens : int
        Prompt columns (all but each prompt's last token, left-padded) that this step's first
        pass of each model also fed: > 0 only in a run's first step, whose times therefore
        include the prompt pass.
    """

    rows: tuple[int, ...]
    accepted: tuple[int, ...]
    draft_ms: float
    verify_ms: float
    overhead_ms: float
    draft_first_pass_tokens: int = 1
    context_columns: int = 0
    prompt_tokens: int = 0

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.accepted) or not self.rows:
            raise ValueError(
                "`len(rows) == len(accepted) >= 1` must hold, but got "
                f"len(rows)={len(self.rows)}, len(accepted)={len(self.accepted)}."
            )
        for name in ("draft_ms", "verify_ms", "overhead_ms"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"`{name} >= 0` must hold, but got {name}={value}.")

    @property
    def step_ms(self) -> float:
        return self.draft_ms + self.verify_ms + self.overhead_ms


def _none_if_nan(values: Sequence[float]) -> tuple[float | None, ...]:
    return tuple(None if math.isnan(v) else float(v) for v in values)


@dataclass(frozen=True)
class GenerationResult:
    """Output and measurements of one run (one batch, or several merged by :meth:`concat`).

    Attributes
    ----------
    gamma : int
        γ used (after capping to the models' positions).
    prompt_ids, output_ids : tuple of tuple of int
        Per row: the prompt, and the new tokens only.
    steps : tuple of StepTrace
        The per-step trace.
    total_ms : float
        Wall time of the whole run (the first step also feeds the prompts).
    temperature, top_p : float
        Sampling settings (temperature 0: greedy).
    batch_size : int
        Rows decoded together.
    device : str
        Name of the device (CPU model or GPU name).
    """

    gamma: int
    prompt_ids: tuple[tuple[int, ...], ...]
    output_ids: tuple[tuple[int, ...], ...]
    steps: tuple[StepTrace, ...]
    total_ms: float
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ValueError(f"`gamma >= 0` must hold, but got gamma={self.gamma}.")
        if len(self.prompt_ids) != len(self.output_ids):
            raise ValueError(
                "`len(prompt_ids) == len(output_ids)` must hold, but got "
                f"{len(self.prompt_ids)} and {len(self.output_ids)}."
            )
        if not self.total_ms >= 0:
            raise ValueError(f"`total_ms >= 0` must hold, but got total_ms={self.total_ms}.")
        for step in self.steps:
            if max(step.accepted) > self.gamma:
                raise ValueError(
                    f"`accepted <= gamma` must hold, but got accepted={max(step.accepted)} "
                    f"with gamma={self.gamma}."
                )

    # --- counts and times ---------------------------------------------------------------------

    @property
    def new_tokens(self) -> int:
        return sum(len(o) for o in self.output_ids)

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def draft_ms(self) -> float:
        return sum(s.draft_ms for s in self.steps)

    @property
    def verify_ms(self) -> float:
        return sum(s.verify_ms for s in self.steps)

    @property
    def overhead_ms(self) -> float:
        return sum(s.overhead_ms for s in self.steps)

    @property
    def decode_ms(self) -> float:
        """Wall time of the steps (draft + verify + overhead), the prompt passes included."""
        return self.draft_ms + self.verify_ms + self.overhead_ms

    @property
    def prompt_step_ms(self) -> float:
        """Wall time of the steps that also fed a prompt (each batch's first step)."""
        return sum(s.step_ms for s in self.steps if s.prompt_tokens)

    @property
    def steady_steps(self) -> tuple[StepTrace, ...]:
        """The steps that fed no prompt: what the step model T_step(γ) describes."""
        return tuple(s for s in self.steps if not s.prompt_tokens)

    @property
    def steady_new_tokens(self) -> int:
        """New tokens emitted by the steady steps: all of them less each prompt step's.

        A prompt step is its rows' first step, so row r emitted min(k_r + 1, its output's
        length) tokens in it (fewer than k_r + 1 only when it reached ``max_new_tokens`` or EOS).
        """
        lengths = [len(o) for o in self.output_ids]
        first = sum(
            min(k + 1, lengths[row])
            for s in self.steps
            if s.prompt_tokens
            for row, k in zip(s.rows, s.accepted, strict=True)
        )
        return self.new_tokens - first

    @property
    def steady_ms(self) -> float:
        """Wall time of the steady steps (draft + verify + overhead), no prompt pass."""
        return sum(s.step_ms for s in self.steady_steps)

    @property
    def steady_tokens_per_s(self) -> float:
        """New tokens per second of the steady steps alone: what T_step(γ) predicts.

        0.0 when the run had no steady step (every row finished in its prompt step).
        """
        ms = self.steady_ms
        return self.steady_new_tokens / (ms / 1e3) if ms > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        """New tokens per second of the whole run, prompt passes included."""
        return self.new_tokens / (self.total_ms / 1e3) if self.total_ms > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        """New tokens per second of the steps alone (prompt passes included, setup not)."""
        return self.new_tokens / (self.decode_ms / 1e3) if self.decode_ms > 0 else 0.0

    # --- acceptance --------------------------------------------------------------------------

    @property
    def accepted_counts(self) -> np.ndarray:
        """k of every (step, row) observation, in trace order; int64, shape (observations,)."""
        return np.fromiter((k for s in self.steps for k in s.accepted), dtype=np.int64)

    def accepted_by_row(self) -> list[list[int]]:
        """k of every step, per prompt row (what a bootstrap over prompts resamples)."""
        out: list[list[int]] = [[] for _ in self.prompt_ids]
        for s in self.steps:
            for row, k in zip(s.rows, s.accepted, strict=True):
                out[row].append(k)
        return out

    @property
    def acceptance_rate(self) -> float | None:
        """α̂, the MLE Σk / (Σk + #rejections); None when no proposal was judged (γ = 0)."""
        k = self.accepted_counts
        if self.gamma == 0 or k.size == 0:
            return None
        return float(estimate_acceptance_rate(k, self.gamma))

    @property
    def position_acceptance(self) -> tuple[float | None, ...]:
        """α̂_i for i = 1..γ; None where no observation reached position i."""
        k = self.accepted_counts
        if self.gamma == 0 or k.size == 0:
            return ()
        return _none_if_nan(estimate_position_acceptance(k, self.gamma))

    @property
    def mean_accepted_length(self) -> float | None:
        """τ, tokens per step per row = mean(k + 1), in [1, γ + 1]; None without steps."""
        k = self.accepted_counts
        return float(k.mean() + 1.0) if k.size else None

    @property
    def histogram(self) -> tuple[int, ...]:
        """Number of observations with k = 0, 1, .., γ."""
        return tuple(int(c) for c in np.bincount(self.accepted_counts, minlength=self.gamma + 1))

    # --- merging and export ------------------------------------------------------------------

    @classmethod
    def concat(cls, results: Sequence[GenerationResult]) -> GenerationResult:
        """Merge runs of consecutive batches (same γ and sampling) into one result."""
        if not results:
            raise ValueError("`len(results) >= 1` must hold, but got no results.")
        first = results[0]
        for r in results[1:]:
            if (r.gamma, r.temperature, r.top_p) != (first.gamma, first.temperature, first.top_p):
                raise ValueError(
                    "`gamma, temperature, top_p` must agree across merged results, but got "
                    f"{(r.gamma, r.temperature, r.top_p)} and "
                    f"{(first.gamma, first.temperature, first.top_p)}."
                )
        steps: list[StepTrace] = []
        offset = 0
        for r in results:
            for s in r.steps:
                rows = tuple(offset + i for i in s.rows)
                steps.append(
                    StepTrace(
                        rows=rows,
                        accepted=s.accepted,
                        draft_ms=s.draft_ms,
                        verify_ms=s.verify_ms,
                        overhead_ms=s.overhead_ms,
                        draft_first_pass_tokens=s.draft_first_pass_tokens,
                        context_columns=s.context_columns,
                        prompt_tokens=s.prompt_tokens,
                    )
                )
            offset += len(r.prompt_ids)
        return cls(
            gamma=first.gamma,
            prompt_ids=tuple(p for r in results for p in r.prompt_ids),
            output_ids=tuple(o for r in results for o in r.output_ids),
            steps=tuple(steps),
            total_ms=sum(r.total_ms for r in results),
            temperature=first.temperature,
            top_p=first.top_p,
            batch_size=max(r.batch_size for r in results),
            device=first.device,
        )

    def summary(self) -> dict[str, object]:
        """The run's figures as a JSON-ready dict (no per-step trace)."""
        return {
            "gamma": self.gamma,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "batch_size": self.batch_size,
            "rows": len(self.output_ids),
            "new_tokens": self.new_tokens,
            "steps": self.n_steps,
            "tokens_per_s": self.tokens_per_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "steady_tokens_per_s": self.steady_tokens_per_s,
            "mean_accepted_length": self.mean_accepted_length,
            "acceptance_rate": self.acceptance_rate,
            "position_acceptance": list(self.position_acceptance),
            "histogram": list(self.histogram),
            "prompt_step_ms": self.prompt_step_ms,
            "draft_ms": self.draft_ms,
            "verify_ms": self.verify_ms,
            "overhead_ms": self.overhead_ms,
            "total_ms": self.total_ms,
            "device": self.device,
            "output_ids": [list(o) for o in self.output_ids],
        }
