"""Speculative decoding with a fixed γ: lossless, batched, with KV caches rolled back per row.

Schedule (what ``perfmodel``'s step model describes)
----------------------------------------------------
State between steps, per row r: the committed tokens x_1..x_n (prompt and output so far). The
target's KV cache holds x_1..x_{n-1}; x_n is *pending* (fed by the next step). The draft's cache
holds the same, except after a step that accepted all γ proposals: then it also lacks d_γ (the
last proposal, which the draft never fed) and that token is pending too.

One step:

1. **Draft, γ forward passes** (``draft_ms``). Pass 1 feeds the pending token(s): q = 1 token,
   or q = 2 (d_γ of the previous step, then x_n) when the previous step accepted everything in
   some row. There is **no extra draft pass** to absorb the bonus token: it rides along in the
   next step's first pass. Passes 2..γ feed one proposal each. Each pass yields a distribution
   q_i and a proposal d_i (argmax, or a sample).
2. **Verify, one target forward pass** over [x_n, d_1, .., d_γ] (q = γ + 1 tokens;
   ``verify_ms``), giving p_1..p_{γ+1}.
3. **Overhead** (``overhead_ms``: everything in the step that is not a forward pass): sampling
   of the proposals, acceptance (``profiler.sampling``), one device-to-host copy of k and the
   emitted tokens, rollback of both caches, stopping checks. Row r keeps k_r proposals and
   emits k_r + 1 tokens.

γ = 0 is the plain autoregressive baseline through the same loop: no draft pass, a verify pass
of q = 1, k = 0, one token per step.

There is no separate prefill: the first step's first pass of each model also feeds the prompt
(all of it but the last token, left-padded), as Hugging Face's assisted generation does, which
saves one forward pass of each model per run. That step has ``StepTrace.prompt_tokens > 0``;
the others (``GenerationResult.steady_steps``) are what T_step(γ) describes.

Rollback and batches
--------------------
Every row's cache grows by the step's new columns; the columns past each row's accepted
prefix are marked invalid in a per-row column mask, and the trailing columns that no row kept
are cropped off. A row therefore never loses another row's accepted tokens, and nothing is
recomputed. While a model's cache has no invalid column (always at batch 1, and at batch > 1
until prompts of different lengths or rows of different k appear), the forward passes take
HF's default mask and positions; afterwards each pass gets an explicit 4-D mask (causal over
columns, restricted to valid columns) and explicit position ids (each row's count of valid
tokens), so an invalid column costs attention work but never changes a result. Prompts of
different lengths are left-padded; the padding is just invalid columns. Finished rows
(``max_new_tokens`` or EOS) leave the batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from profiler.engine_trace import GenerationResult, StepTrace
from profiler.kvcache import KVStream
from profiler.loading import logit_width
from profiler.sampling import (
    SamplingConfig,
    probabilities,
    sample,
    verify_greedy,
    verify_sampling,
)
from profiler.timing import StepTimer, device_name

__all__ = [
    "DecodingSession",
    "GenerationResult",
    "StepTrace",
    "max_gamma",
    "speculative_generate",
]

_PAD_ID = 0  # token fed in padding columns; masked, so any valid id works
GREEDY = SamplingConfig()


def max_gamma(*, max_positions: int | None, prompt_tokens: int, max_new_tokens: int) -> int:
    """Largest γ whose verify pass stays inside the models' position range.

    Parameters
    ----------
    max_positions : int or None
        The smallest ``max_position_embeddings`` of the models (None: unbounded).
    prompt_tokens : int
        Longest prompt in the batch, in tokens.
    max_new_tokens : int
        Tokens to generate per row.

    Returns
    -------
    int
        γ_max >= 0.

    Notes
    -----
    A step starts with at most P + N − 1 committed tokens, so its verify pass feeds positions up
    to P + N − 2 + γ, which must be < max_positions: γ <= max_positions + 1 − P − N.
    """
    if max_positions is None:
        return 2**31 - 1
    cap = max_positions + 1 - prompt_tokens - max_new_tokens
    if cap < 0:
        raise ValueError(
            "`prompt_tokens + max_new_tokens <= max_positions + 1` must hold, but got "
            f"{prompt_tokens=}, {max_new_tokens=}, {max_positions=}."
        )
    return cap


def _max_positions(*models: PreTrainedModel | None) -> int | None:
    limits = [getattr(m.config, "max_position_embeddings", None) for m in models if m is not None]
    limits = [x for x in limits if x]
    return min(limits) if limits else None


def _model_device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


class DecodingSession:
    """One batch of speculative decoding, step by step (:func:`speculative_generate` drives it).

    Parameters
    ----------
    target, draft : PreTrainedModel
        Causal LMs sharing a vocabulary, on the same device, in eval mode. ``draft`` may be None
        when ``gamma == 0``.
    prompts : sequence of sequence of int
        Token ids per row, each non-empty.
    gamma : int
        Proposals per step, >= 0; capped by :func:`max_gamma`.
    max_new_tokens : int
        Tokens to generate per row, >= 1.
    sampling : SamplingConfig
        Greedy (temperature 0) or speculative sampling.
    eos_token_id : int, sequence of int or None
        A row stops after emitting one of these.
    seed : int or None
        Seed of the generator that draws proposals, acceptances and residual tokens.
    """

    def __init__(
        self,
        target: PreTrainedModel,
        draft: PreTrainedModel | None,
        prompts: Sequence[Sequence[int]],
        *,
        gamma: int,
        max_new_tokens: int,
        sampling: SamplingConfig = GREEDY,
        eos_token_id: int | Sequence[int] | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(gamma, int) or gamma < 0:
            raise ValueError(f"`gamma >= 0` (an integer) must hold, but got {gamma=}.")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens >= 1` must hold, but got {max_new_tokens=}.")
        prompts = [list(map(int, p)) for p in prompts]
        if not prompts:
            raise ValueError("`len(prompts) >= 1` must hold, but got no prompts.")
        if min(len(p) for p in prompts) < 1:
            raise ValueError("`len(prompt) >= 1` must hold for every prompt, but got an empty one.")
        if gamma > 0 and draft is None:
            raise ValueError(f"`draft is not None` must hold when gamma > 0, but got {gamma=}.")
        self.device = _model_device(target)
        if draft is not None and _model_device(draft) != self.device:
            raise ValueError(
                "`draft` and `target` must be on one device, but got "
                f"{_model_device(draft)} and {self.device}."
            )
        longest = max(len(p) for p in prompts)
        self.requested_gamma = gamma
        self.gamma = min(
            gamma,
            max_gamma(
                max_positions=_max_positions(target, draft if gamma > 0 else None),
                prompt_tokens=longest,
                max_new_tokens=max_new_tokens,
            ),
        )
        self.target, self.draft = target, (draft if self.gamma > 0 else None)
        # a draft whose logit width differs from the target's (Qwen2.5-0.5B's 151936 against
        # 7B's 152064: the same tokenizer, padded tables) proposes over the target's width: its
        # missing ids get probability 0 and its extra ones are dropped, so the output is still
        # the target's; ids it has no embedding for are fed to it as its last id (only its
        # proposals can suffer)
        self._width = logit_width(target)
        self._draft_ids = _embedding_rows(self.draft) if self.draft is not None else 0
        self.prompts = prompts
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling
        eos = (
            []
            if eos_token_id is None
            else [eos_token_id]
            if isinstance(eos_token_id, int)
            else eos_token_id
        )
        self.eos = frozenset(int(e) for e in eos)
        self.generator: torch.Generator | None = None
        if not sampling.greedy:
            self.generator = torch.Generator(device=self.device)
            if seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(seed)
        batch = len(prompts)
        self.timer = StepTimer(self.device)
        self.outputs: list[list[int]] = [[] for _ in prompts]
        self.active = list(range(batch))  # prompt index of each live row
        self.steps: list[StepTrace] = []
        # cache columns at most: a step adds γ + 1 and keeps what its longest row accepted, so
        # one row grows by its tokens (+ γ + 1 in flight); in a batch, rows that accept fewer
        # leave invalid columns, up to γ + 1 a step
        grow = max_new_tokens + self.gamma + 1 if batch == 1 else max_new_tokens * (self.gamma + 1)
        columns = longest + grow + 1
        self.target_kv = KVStream(target, batch, self.device, max_columns=columns)
        self.draft_kv = (
            KVStream(draft, batch, self.device, max_columns=columns)
            if self.draft is not None
            else None
        )
        self._started = False
        # (tokens, valid, padded) of the prompts but their last token, fed by the first step
        self._prompt: tuple[torch.Tensor, torch.Tensor, bool] | None = None
        self._last: torch.Tensor | None = None  # (batch,) pending token x_n
        self._lag = torch.zeros(batch, dtype=torch.bool, device=self.device)  # draft lacks d_γ
        self._lag_host = [False] * batch
        self._lag_token = torch.zeros(batch, dtype=torch.long, device=self.device)

    @property
    def finished(self) -> bool:
        return not self.active

    def start(self) -> None:
        """Left-pad the prompts and stage them; the first step feeds them with its own tokens.

        Each model's first pass of the first step runs over the prompt (all rows, padded) and
        the step's tokens at once, as Hugging Face's assisted generation does: no separate
        prefill pass. That step is marked by ``StepTrace.prompt_tokens > 0``.
        """
        ids = torch.full(
            (len(self.prompts), max(len(p) for p in self.prompts)), _PAD_ID, dtype=torch.long
        )
        for r, p in enumerate(self.prompts):
            ids[r, ids.shape[1] - len(p) :] = torch.tensor(p)
        ids = ids.to(self.device)
        lengths = torch.tensor([len(p) for p in self.prompts], device=self.device)
        width = ids.shape[1]
        valid = torch.arange(width, device=self.device)[None, :] >= (width - lengths)[:, None]
        padded = min(len(p) for p in self.prompts) < width
        if width > 1:
            self._prompt = (ids[:, :-1], valid[:, :-1], padded)
        self._last = ids[:, -1]
        self._started = True

    def step(self) -> StepTrace:
        """Run one speculative step for every live row; return its trace."""
        if not self._started:
            self.start()
        if self.finished:
            raise ValueError("`not finished` must hold to step, but every row has finished.")
        with torch.inference_mode():
            trace = self._step()
        self.steps.append(trace)
        return trace

    def _step(self) -> StepTrace:
        gamma, timer, sampling = self.gamma, self.timer, self.sampling
        batch = len(self.active)
        last = self._last
        assert last is not None
        ones = torch.ones(batch, gamma + 1, dtype=torch.bool, device=self.device)
        context = self.target_kv.columns
        first_pass = 1
        prompt, self._prompt = self._prompt, None
        prompt_tokens = 0 if prompt is None else prompt[0].shape[1]

        def with_prompt(tokens, new_valid, new_holes):
            """Prefix the first step's first pass of each model with the staged prompt."""
            if prompt is None:
                return tokens, new_valid, new_holes
            ids, valid, padded = prompt
            return (
                torch.cat([ids, tokens], dim=1),
                torch.cat([valid, new_valid], dim=1),
                new_holes or padded,
            )

        with timer.section("step"):
            drafts: list[torch.Tensor] = []
            draft_probs: list[torch.Tensor] = []
            draft_start = 0
            if gamma > 0:
                dkv = self.draft_kv
                assert dkv is not None
                if any(self._lag_host):
                    # absorb last step's unfed d_γ together with the pending token
                    tokens = torch.stack([self._lag_token, last], dim=1)
                    new_valid = torch.stack([self._lag, ones[:, 0]], dim=1)
                    new_holes = not all(self._lag_host)
                    first_pass = 2
                else:
                    tokens, new_valid, new_holes = last[:, None], ones[:, :1], False
                draft_start = dkv.columns + prompt_tokens + first_pass - 1  # column of x_n
                tokens, new_valid, new_holes = with_prompt(tokens, new_valid, new_holes)
                for _ in range(gamma):
                    with timer.section("draft"):
                        if self._draft_ids < self._width:  # ids it has no row for
                            tokens = tokens.clamp(max=self._draft_ids - 1)
                        logits = dkv.forward(
                            tokens,
                            new_valid,
                            new_holes=new_holes,
                            logits_to_keep=1,
                        )[:, -1]
                        logits = _to_width(logits, self._width)
                    if sampling.greedy:
                        proposal = logits.argmax(dim=-1)
                    else:
                        q = probabilities(logits, sampling)
                        proposal = sample(q, self.generator)
                        draft_probs.append(q)
                    drafts.append(proposal)
                    tokens, new_valid, new_holes = proposal[:, None], ones[:, :1], False
                proposals = torch.stack(drafts, dim=1)  # (batch, γ)
                verify_in = torch.cat([last[:, None], proposals], dim=1)
            else:
                proposals = last.new_zeros(batch, 0)
                verify_in = last[:, None]
            target_start = self.target_kv.columns + prompt_tokens  # column of x_n
            verify_in, verify_valid, verify_holes = with_prompt(verify_in, ones, False)
            with timer.section("verify"):
                logits = self.target_kv.forward(
                    verify_in, verify_valid, new_holes=verify_holes, logits_to_keep=gamma + 1
                )
            if sampling.greedy:
                accepted, next_token = verify_greedy(proposals, logits)
            else:
                accepted, next_token = verify_sampling(
                    proposals,
                    torch.stack(draft_probs, dim=1) if gamma > 0 else logits.new_zeros(0),
                    probabilities(logits, sampling),
                    self.generator,
                )
            emitted = torch.cat([proposals, next_token[:, None]], dim=1)
            emitted.scatter_(1, accepted[:, None], next_token[:, None])
            host = torch.cat([accepted[:, None], emitted], dim=1).tolist()  # the step's one sync
            k_host = [row[0] for row in host]
            self.target_kv.rollback(
                start=target_start, keep=accepted + 1, keep_host=[k + 1 for k in k_host]
            )
            if gamma > 0:
                assert self.draft_kv is not None
                # the draft fed x_n and d_1..d_{γ-1}; row r keeps x_n and d_1..d_min(k, γ-1)
                self.draft_kv.rollback(
                    start=draft_start,
                    keep=accepted.clamp(max=gamma - 1) + 1,
                    keep_host=[min(k, gamma - 1) + 1 for k in k_host],
                )
                self._lag = accepted == gamma
                self._lag_host = [k == gamma for k in k_host]
                self._lag_token = proposals[:, -1]
            self._last = next_token
            rows = tuple(self.active)
            self._commit(host)
        times = timer.collect()
        draft_ms, verify_ms = times.get("draft", 0.0), times.get("verify", 0.0)
        return StepTrace(
            rows=rows,
            accepted=tuple(k_host),
            draft_ms=draft_ms,
            verify_ms=verify_ms,
            overhead_ms=max(times["step"] - draft_ms - verify_ms, 0.0),
            draft_first_pass_tokens=first_pass if gamma > 0 else 0,
            context_columns=context,
            prompt_tokens=prompt_tokens,
        )

    def _commit(self, host: list[list[int]]) -> None:
        """Append each row's emitted tokens, stop rows that are done, drop them from the batch."""
        keep: list[int] = []
        for j, (row, values) in enumerate(zip(self.active, host, strict=True)):
            out = self.outputs[row]
            new = values[1 : values[0] + 2][: self.max_new_tokens - len(out)]
            done = False
            for i, tok in enumerate(new):
                if tok in self.eos:
                    new, done = new[: i + 1], True
                    break
            out.extend(new)
            if not done and len(out) < self.max_new_tokens:
                keep.append(j)
        if len(keep) < len(self.active):
            self.active = [self.active[j] for j in keep]
            if keep:
                idx = torch.tensor(keep, device=self.device)
                self.target_kv.select(idx)
                if self.draft_kv is not None:
                    self.draft_kv.select(idx)
                assert self._last is not None
                self._last = self._last[idx]
                self._lag = self._lag[idx]
                self._lag_token = self._lag_token[idx]
                self._lag_host = [self._lag_host[j] for j in keep]

    def result(self, *, total_ms: float) -> GenerationResult:
        """The run so far as a :class:`GenerationResult`; ``total_ms`` is its wall time."""
        return GenerationResult(
            gamma=self.gamma,
            prompt_ids=tuple(tuple(p) for p in self.prompts),
            output_ids=tuple(tuple(o) for o in self.outputs),
            steps=tuple(self.steps),
            total_ms=total_ms,
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            batch_size=len(self.prompts),
            device=device_name(self.device),
        )


def speculative_generate(
    target: PreTrainedModel,
    draft: PreTrainedModel | None,
    prompts: Sequence[Sequence[int]],
    *,
    gamma: int,
    max_new_tokens: int,
    sampling: SamplingConfig = GREEDY,
    eos_token_id: int | Sequence[int] | None = None,
    seed: int | None = None,
) -> GenerationResult:
    """Generate ``max_new_tokens`` tokens for each prompt with speculative decoding.

    All prompts form one batch (left-padded); see the module docstring for the schedule.
    ``gamma=0`` (with ``draft=None``) is plain autoregressive decoding through the same loop.

    Parameters
    ----------
    target, draft : PreTrainedModel
        Causal LMs sharing a vocabulary (:func:`profiler.loading.check_same_vocabulary`); the
        draft's logit width may differ from the target's (it then proposes over the target's
        ids, and the output is still the target's).
    prompts : sequence of sequence of int
        Token ids of each row.
    gamma : int
        Draft proposals per step, >= 0 (capped to what fits the models' positions; the result
        records the γ used).
    max_new_tokens : int
        Tokens per row; a row also stops after an ``eos_token_id``.
    sampling : SamplingConfig
        Temperature and top-p, applied identically to both models; temperature 0 is greedy.
    eos_token_id : int, sequence of int or None
        Tokens that end a row.
    seed : int or None
        Seed for speculative sampling (unused when greedy).

    Returns
    -------
    GenerationResult
        Output ids per row, the per-step trace (k per row, draft / verify / overhead ms) and
        the derived α̂, α_i, τ and tokens/s.
    """
    t0 = time.perf_counter_ns()
    session = DecodingSession(
        target,
        draft,
        prompts,
        gamma=gamma,
        max_new_tokens=max_new_tokens,
        sampling=sampling,
        eos_token_id=eos_token_id,
        seed=seed,
    )
    session.start()
    while not session.finished:
        session.step()
    if session.device.type == "cuda":
        torch.cuda.synchronize(session.device)
    return session.result(total_ms=(time.perf_counter_ns() - t0) / 1e6)


def _embedding_rows(model: PreTrainedModel) -> int:
    """Token ids ``model`` has input embeddings for."""
    table = model.get_input_embeddings()
    rows = getattr(table, "num_embeddings", None)
    return int(rows) if rows else int(model.config.vocab_size)


def _to_width(logits: torch.Tensor, width: int) -> torch.Tensor:
    """``logits`` (..., v) cut or padded with -inf to (..., width)."""
    have = logits.shape[-1]
    if have == width:
        return logits
    if have > width:
        return logits[..., :width]
    pad = logits.new_full((*logits.shape[:-1], width - have), float("-inf"))
    return torch.cat([logits, pad], dim=-1)
