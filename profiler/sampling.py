"""Sampling settings and the verification rules of speculative decoding (torch, vectorised).

Two rules decide how many of the γ draft proposals a step keeps:

- **Greedy** (``temperature == 0``): proposal i is accepted when it equals the target's argmax at
  its position; the target's argmax after the last accepted proposal is the step's extra token.
  The output is then token for token what plain greedy decoding of the target gives.
- **Speculative sampling** (``temperature > 0``; Leviathan et al. 2023, Chen et al. 2023): with
  p and q the target's and the draft's distributions after temperature and top-p, proposal
  x ~ q is accepted with probability min(1, p(x)/q(x)); at the first rejection the step's
  extra token is drawn from the normalised residual max(p − q, 0), and after a full acceptance
  from p at position γ+1 (the bonus token). Every emitted token then follows p exactly.

Everything runs on whole ``(batch, positions, vocabulary)`` tensors: no Python loop over rows
or vocabulary entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "SamplingConfig",
    "probabilities",
    "sample",
    "verify_greedy",
    "verify_sampling",
]


@dataclass(frozen=True)
class SamplingConfig:
    """How both models turn logits into tokens; the same settings apply to target and draft.

    Parameters
    ----------
    temperature : float
        0 for greedy decoding (argmax); > 0 divides the logits before the softmax.
    top_p : float
        Nucleus size in (0, 1]: keep the smallest set of most likely tokens whose probability
        reaches ``top_p``, then renormalise. 1 keeps every token. Ignored when greedy.
    """

    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        temperature, top_p = self.temperature, self.top_p
        if not (temperature >= 0.0 and temperature < float("inf")):
            raise ValueError(f"`0 <= temperature < inf` must hold, but got {temperature=}.")
        if not (0.0 < top_p <= 1.0):
            raise ValueError(f"`0 < top_p <= 1` must hold, but got {top_p=}.")

    @property
    def greedy(self) -> bool:
        """True when tokens are chosen by argmax (temperature 0)."""
        return self.temperature == 0.0


def probabilities(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Turn logits into the sampling distribution: temperature, softmax, then top-p.

    Parameters
    ----------
    logits : torch.Tensor, shape (..., vocab)
        Raw logits of any float dtype.
    config : SamplingConfig
        Must not be greedy (there is no distribution to sample at temperature 0).

    Returns
    -------
    torch.Tensor, shape (..., vocab), float32
        Probabilities summing to 1 along the last axis; tokens outside the nucleus are 0.

    Notes
    -----
    softmax(logits / T), then zero every token whose exclusive cumulative probability (in
    descending order) is >= top_p and renormalise, so the most likely token always survives.
    """
    if config.greedy:
        raise ValueError(
            "`temperature > 0` must hold to build a distribution, but got temperature=0."
        )
    probs = torch.softmax(logits.float() / config.temperature, dim=-1)
    if config.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_p.cumsum(dim=-1) - sorted_p
        sorted_p = sorted_p.masked_fill(mass_before >= config.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one token per row of ``probs`` (shape (batch, vocab); weights need not sum to 1)."""
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def verify_greedy(
    draft_tokens: torch.Tensor, target_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy verification of one step for every row.

    Parameters
    ----------
    draft_tokens : torch.Tensor, shape (batch, γ), int64
        The proposals d_1..d_γ (γ may be 0).
    target_logits : torch.Tensor, shape (batch, γ + 1, vocab)
        Target logits after the last committed token and after each proposal.

    Returns
    -------
    accepted : torch.Tensor, shape (batch,), int64
        k, the number of leading proposals equal to the target's argmax, in [0, γ].
    next_token : torch.Tensor, shape (batch,), int64
        The target's argmax at position k + 1: the correction, or the bonus token when k = γ.
    """
    best = target_logits.argmax(dim=-1)  # (batch, γ + 1)
    gamma = draft_tokens.shape[1]
    if gamma == 0:
        return torch.zeros_like(best[:, 0]), best[:, 0]
    accepted = (draft_tokens == best[:, :gamma]).long().cumprod(dim=1).sum(dim=1)
    return accepted, best.gather(1, accepted[:, None]).squeeze(1)


def verify_sampling(
    draft_tokens: torch.Tensor,
    draft_probs: torch.Tensor,
    target_probs: torch.Tensor,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Speculative-sampling verification of one step for every row.

    Parameters
    ----------
    draft_tokens : torch.Tensor, shape (batch, γ), int64
        Proposals, d_i drawn from ``draft_probs[:, i - 1]``.
    draft_probs : torch.Tensor, shape (batch, γ, vocab)
        q_1..q_γ, the draft's distributions the proposals were drawn from.
    target_probs : torch.Tensor, shape (batch, γ + 1, vocab)
        p_1..p_{γ+1}, the target's distributions under the same temperature and top-p.
    generator : torch.Generator or None
        Source of the uniform draws and of the residual sample.

    Returns
    -------
    accepted : torch.Tensor, shape (batch,), int64
        k in [0, γ].
    next_token : torch.Tensor, shape (batch,), int64
        Drawn from norm(max(p_{k+1} − q_{k+1}, 0)) when k < γ, from p_{γ+1} when k = γ.

    Notes
    -----
    Proposal i is accepted when u_i · q_i(d_i) < p_i(d_i) with u_i ~ U[0, 1), which has
    probability min(1, p_i(d_i) / q_i(d_i)) and needs no division. q_i(d_i) > 0 because d_i was
    drawn from q_i.

    References
    ----------
    Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative Decoding",
    ICML 2023, Algorithm 1; Chen et al., "Accelerating Large Language Model Decoding with
    Speculative Sampling", 2023.
    """
    batch, gamma = draft_tokens.shape
    rows = torch.arange(batch, device=draft_tokens.device)
    if gamma == 0:
        accepted = torch.zeros(batch, dtype=torch.long, device=draft_tokens.device)
        return accepted, sample(target_probs[:, 0], generator)
    index = draft_tokens[:, :, None]
    p_draft = target_probs[:, :gamma].gather(2, index).squeeze(2)  # (batch, γ)
    q_draft = draft_probs.gather(2, index).squeeze(2)
    u = torch.rand(
        (batch, gamma), generator=generator, device=draft_tokens.device, dtype=q_draft.dtype
    )
    accepted = (u * q_draft < p_draft).long().cumprod(dim=1).sum(dim=1)
    p_k = target_probs[rows, accepted]  # (batch, vocab)
    # q at position k + 1, or 0 after a full acceptance so the residual is p_{γ+1} itself.
    q_k = draft_probs[rows, accepted.clamp(max=gamma - 1)] * (accepted < gamma)[:, None]
    residual = (p_k - q_k).clamp_min(0.0)
    # A rejection implies p(d) < q(d), so some other token has p > q and the residual has mass;
    # guard against float round-off leaving it all zero.
    residual = torch.where(residual.sum(dim=-1, keepdim=True) > 0, residual, p_k)
    return accepted, sample(residual, generator)
