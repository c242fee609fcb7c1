"""Differential tests of the speculative-decoding engine against plain decoding.

Models are tiny float64 Llamas (``tiny_models``): float64 keeps the batched verify pass and the
one-token passes of plain decoding from flipping an argmax on a near tie, so "token for token"
is a fair requirement.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from transformers import DynamicCache

from profiler.engine import DecodingSession, max_gamma, speculative_generate
from profiler.kvcache import cache_keyword
from profiler.sampling import SamplingConfig
from tests.profiler_tests.tiny_models import tiny_zoo

NEW_TOKENS = 16


@pytest.fixture(scope="module")
def zoo():
    return tiny_zoo()


@functools.cache
def _hf_greedy(prompt: tuple[int, ...]) -> list[int]:
    target = tiny_zoo().target
    with torch.inference_mode():
        out = target.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    return out[0, len(prompt) :].tolist()


def _draft(zoo, name):
    return {"perfect": zoo.target, "partial": zoo.partial, "random": zoo.random}[name]


def test_gamma_zero_is_plain_greedy(zoo):
    prompts = zoo.prompt_ids()
    result = speculative_generate(zoo.target, None, prompts, gamma=0, max_new_tokens=NEW_TOKENS)
    for prompt, out in zip(prompts, result.output_ids, strict=True):
        assert list(out) == _hf_greedy(tuple(prompt)), f"{prompt=}"
    assert result.n_steps == NEW_TOKENS
    assert result.acceptance_rate is None and result.mean_accepted_length == 1.0
    assert result.draft_ms == 0.0 and result.verify_ms > 0


@pytest.mark.parametrize("draft", ["perfect", "partial", "random"])
@pytest.mark.parametrize("gamma", [1, 3, 8])
def test_greedy_speculative_equals_plain_greedy(zoo, gamma, draft):
    prompts = zoo.prompt_ids()  # four prompts of different lengths: left padding and holes
    assert len({len(p) for p in prompts}) == len(prompts)
    batch = speculative_generate(
        zoo.target, _draft(zoo, draft), prompts, gamma=gamma, max_new_tokens=NEW_TOKENS
    )
    for prompt, out in zip(prompts, batch.output_ids, strict=True):
        assert list(out) == _hf_greedy(tuple(prompt)), f"batch 4, {gamma=}, {draft=}, {prompt=}"
    for prompt in prompts[::2]:
        single = speculative_generate(
            zoo.target, _draft(zoo, draft), [prompt], gamma=gamma, max_new_tokens=NEW_TOKENS
        )
        assert list(single.output_ids[0]) == _hf_greedy(tuple(prompt)), (
            f"batch 1, {gamma=}, {draft=}, {prompt=}"
        )
    if draft == "perfect":
        assert batch.acceptance_rate == 1.0
        assert batch.mean_accepted_length == gamma + 1
        assert all(a == 1.0 for a in batch.position_acceptance)


def _fresh_kv(model, tokens):
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([tokens]), use_cache=True, **{cache_keyword(model): cache})
    return [(layer.keys[0], layer.values[0]) for layer in cache.layers]


@pytest.mark.parametrize(
    ("draft", "temperature"), [("partial", 0.0), ("partial", 1.0), ("random", 1.0)]
)
def test_rollback_leaves_caches_equal_to_recomputation(zoo, draft, temperature):
    prompts = zoo.prompt_ids()
    session = DecodingSession(
        zoo.target,
        _draft(zoo, draft),
        prompts,
        gamma=3,
        max_new_tokens=40,
        sampling=SamplingConfig(temperature=temperature),
        seed=1,
    )
    session.start()
    for _ in range(5):
        session.step()
        for j, row in enumerate(session.active):
            committed = prompts[row] + session.outputs[row]
            lag = session._lag_host[j]  # draft has not fed d_γ yet after a full acceptance
            for kv, model, fed in (
                (session.target_kv, zoo.target, committed[:-1]),
                (session.draft_kv, _draft(zoo, draft), committed[: len(committed) - 1 - lag]),
            ):
                mine, fresh = kv.row_kv(j), _fresh_kv(model, fed)
                for (k1, v1), (k2, v2) in zip(mine, fresh, strict=True):
                    assert k1.shape == k2.shape, f"{row=}, {draft=}, {lag=}"
                    torch.testing.assert_close(k1, k2, rtol=0, atol=1e-10)
                    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-10)


def test_trace_statistics_follow_design_definitions(zoo):
    result = speculative_generate(
        zoo.target,
        zoo.partial,
        zoo.prompt_ids(),
        gamma=4,
        max_new_tokens=24,
        sampling=SamplingConfig(temperature=1.0),
        seed=3,
    )
    k = result.accepted_counts
    gamma = result.gamma
    rejections = int((k < gamma).sum())
    assert result.acceptance_rate == pytest.approx(k.sum() / (k.sum() + rejections))
    assert 0.0 < result.acceptance_rate < 1.0
    # τ = 1 + Σ_i Π_{j<=i} α̂_j holds exactly for the empirical rates (telescoping)
    prod, tau = 1.0, 1.0
    for a in result.position_acceptance:
        prod *= a if a is not None else 0.0
        tau += prod
    assert result.mean_accepted_length == pytest.approx(tau, rel=1e-12)
    assert result.mean_accepted_length == pytest.approx(k.mean() + 1)
    assert sum(result.histogram) == k.size
    # every row emitted exactly max_new_tokens, and the trace accounts for each one
    assert all(len(o) == 24 for o in result.output_ids)
    emitted = [0] * 4
    for step in result.steps:
        for row, acc in zip(step.rows, step.accepted, strict=True):
            emitted[row] += acc + 1
    assert all(e >= 24 for e in emitted) and all(e < 24 + gamma + 1 for e in emitted)
    assert result.decode_ms == pytest.approx(
        result.draft_ms + result.verify_ms + result.overhead_ms
    )


def test_steady_figures_leave_out_the_prompt_step(zoo):
    result = speculative_generate(
        zoo.target, zoo.partial, zoo.prompt_ids(), gamma=3, max_new_tokens=NEW_TOKENS
    )
    assert [bool(s.prompt_tokens) for s in result.steps] == [True] + [False] * (result.n_steps - 1)
    assert result.steady_steps == result.steps[1:]
    # replay each row's steps, capping its k + 1 at what the row had left to emit
    left = [len(o) for o in result.output_ids]
    steady = 0
    for step in result.steps:
        for row, k in zip(step.rows, step.accepted, strict=True):
            n = min(k + 1, left[row])
            left[row] -= n
            steady += 0 if step.prompt_tokens else n
    assert left == [0] * len(left)
    assert 0 < result.steady_new_tokens == steady < result.new_tokens
    assert result.steady_ms == pytest.approx(result.decode_ms - result.prompt_step_ms)
    assert result.steady_tokens_per_s == pytest.approx(steady / result.steady_ms * 1e3)
    assert result.summary()["steady_tokens_per_s"] == result.steady_tokens_per_s


def test_perfect_draft_accepts_everything_when_sampling(zoo):
    result = speculative_generate(
        zoo.target,
        zoo.target,
        zoo.prompt_ids(),
        gamma=3,
        max_new_tokens=12,
        sampling=SamplingConfig(temperature=1.0),
        seed=0,
    )
    assert result.acceptance_rate == 1.0 and result.mean_accepted_length == 4.0


def test_random_draft_is_rarely_accepted(zoo):
    result = speculative_generate(
        zoo.target, zoo.random, zoo.prompt_ids(), gamma=3, max_new_tokens=12
    )
    assert result.acceptance_rate < 0.2


def test_rows_stop_at_eos_independently(zoo):
    prompts = zoo.prompt_ids()
    plain = [_hf_greedy(tuple(p)) for p in prompts]
    eos = plain[0][3]  # make row 0 stop at its 4th token
    result = speculative_generate(
        zoo.target, zoo.partial, prompts, gamma=3, max_new_tokens=NEW_TOKENS, eos_token_id=eos
    )
    for ref, out in zip(plain, result.output_ids, strict=True):
        cut = ref.index(eos) + 1 if eos in ref else len(ref)
        assert list(out) == ref[:cut]


def test_gamma_is_capped_to_the_position_range(zoo):
    limit = zoo.target.config.max_position_embeddings
    prompt = (zoo.prompt_ids()[3] * limit)[: limit - 8]  # a long prompt: 8 positions left
    assert max_gamma(max_positions=limit, prompt_tokens=len(prompt), max_new_tokens=6) == 3
    result = speculative_generate(zoo.target, zoo.target, [prompt], gamma=8, max_new_tokens=6)
    assert result.gamma == 3 and len(result.output_ids[0]) == 6
    with pytest.raises(ValueError, match="max_positions"):
        max_gamma(max_positions=limit, prompt_tokens=len(prompt), max_new_tokens=10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": -1}, "gamma >= 0"),
        ({"gamma": 2, "draft": None}, "draft is not None"),
        ({"max_new_tokens": 0}, "max_new_tokens >= 1"),
        ({"prompts": [[]]}, "len\\(prompt\\) >= 1"),
        ({"prompts": []}, "len\\(prompts\\) >= 1"),
    ],
)
def test_bad_arguments_raise(zoo, kwargs, match):
    args = {"draft": zoo.partial, "prompts": [[1, 2]], "gamma": 2, "max_new_tokens": 4} | kwargs
    with pytest.raises(ValueError, match=match):
        speculative_generate(
            zoo.target,
            args["draft"],
            args["prompts"],
            gamma=args["gamma"],
            max_new_tokens=args["max_new_tokens"],
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_on_cuda_matches_plain_greedy(zoo):
    import copy

    target = copy.deepcopy(zoo.target).cuda()
    draft = copy.deepcopy(zoo.partial).cuda()
    prompts = zoo.prompt_ids()
    result = speculative_generate(target, draft, prompts, gamma=3, max_new_tokens=NEW_TOKENS)
    for prompt, out in zip(prompts, result.output_ids, strict=True):
        assert list(out) == _hf_greedy(tuple(prompt)), f"{prompt=}"
    assert result.verify_ms > 0 and result.draft_ms > 0
    sampled = speculative_generate(
        target,
        draft,
        prompts,
        gamma=3,
        max_new_tokens=NEW_TOKENS,
        sampling=SamplingConfig(temperature=1.0),
        seed=0,
    )
    assert all(len(o) == NEW_TOKENS for o in sampled.output_ids)


def _resized(model, rows):
    out = copy.deepcopy(model)
    out.resize_token_embeddings(rows, mean_resizing=False)  # input table and LM head
    return out


@pytest.mark.parametrize("rows", [128, 80])
def test_a_draft_with_another_logit_width_leaves_the_output_the_targets(zoo, rows):
    # 128: a padded table (Qwen2.5-0.5B's against 7B's); 80: narrower than the target's 96, so
    # the target emits ids the draft has no embedding for (fed to it as its last id)
    draft = _resized(zoo.partial, rows)
    prompts = zoo.prompt_ids()
    result = speculative_generate(zoo.target, draft, prompts, gamma=3, max_new_tokens=NEW_TOKENS)
    for prompt, out in zip(prompts, result.output_ids, strict=True):
        assert list(out) == _hf_greedy(tuple(prompt)), f"{rows=}, {prompt=}"
    assert 0 < result.acceptance_rate
    if rows < 96:
        assert max(max(out) for out in result.output_ids) >= rows  # the clamped feed ran
    sampled = speculative_generate(zoo.target, draft, prompts, gamma=3, max_new_tokens=8,
                                   sampling=SamplingConfig(temperature=1.0), seed=0)  # fmt: skip
    assert all(max(out) < 96 for out in sampled.output_ids)  # only the target's ids


def test_check_same_vocabulary_allows_padded_tables_of_one_tokenizer(zoo):
    from profiler.loading import check_same_vocabulary

    tok = zoo.tokenizer
    check_same_vocabulary(zoo.target, _resized(zoo.partial, 128), target_tokenizer=tok,
                          draft_tokenizer=tok)  # fmt: skip
    with pytest.raises(ValueError, match="largest id 95 does not fit both"):
        check_same_vocabulary(zoo.target, _resized(zoo.partial, 80), target_tokenizer=tok,
                              draft_tokenizer=tok)  # fmt: skip
    with pytest.raises(ValueError, match="no tokenizer in the draft's folder"):
        check_same_vocabulary(zoo.target, _resized(zoo.partial, 128), target_tokenizer=tok)
