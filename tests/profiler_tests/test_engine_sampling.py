"""Speculative sampling follows the target's distribution exactly (Leviathan et al. 2023, thm 1).

Many rows of one prompt are decoded together for two tokens; the empirical distribution of the
first token and of the (first, second) pair is compared with the target's exact one by a
chi-square test (cells with expected count < 5 pooled into one). Each test fails by chance
with probability 1e-3 at most (the false-alarm rate); the seeds are fixed, so a run is
reproducible. A negative control shows the test detects the draft's own distribution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from profiler.engine import speculative_generate
from profiler.sampling import SamplingConfig, probabilities, verify_greedy, verify_sampling
from tests.profiler_tests.tiny_models import VOCAB, tiny_zoo

ROWS = 3000
FALSE_ALARM = 1e-3


@pytest.fixture(scope="module")
def zoo():
    return tiny_zoo()


def _exact(model, prompt, sampling):
    """p(t1) and p(t1, t2) of ``model`` after ``prompt`` under ``sampling``."""
    with torch.inference_mode():
        first = probabilities(model(input_ids=torch.tensor([prompt])).logits[0, -1], sampling)
        pairs = torch.tensor([prompt + [t] for t in range(VOCAB)])
        second = probabilities(model(input_ids=pairs).logits[:, -1], sampling)  # (t1, t2)
    p1 = first.double().numpy()
    return p1, p1[:, None] * second.double().numpy()


def _chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    counts, probs = counts.ravel().astype(float), probs.ravel()
    expected = probs / probs.sum() * counts.sum()
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        if obs[-1] > 0:  # a token of probability 0 (outside top-p) was emitted
            return 0.0
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp).pvalue)


@pytest.mark.parametrize(
    ("draft", "gamma", "temperature", "top_p"),
    [("partial", 1, 1.0, 1.0), ("partial", 3, 0.7, 0.9), ("random", 2, 1.0, 1.0)],
)
def test_sampled_tokens_follow_the_target(zoo, draft, gamma, temperature, top_p):
    prompt = zoo.prompt_ids()[1]
    sampling = SamplingConfig(temperature=temperature, top_p=top_p)
    model = {"partial": zoo.partial, "random": zoo.random}[draft]
    result = speculative_generate(
        zoo.target, model, [prompt] * ROWS, gamma=gamma, max_new_tokens=2, sampling=sampling, seed=7
    )
    out = np.array(result.output_ids)  # (ROWS, 2)
    p1, p12 = _exact(zoo.target, prompt, sampling)
    first = np.bincount(out[:, 0], minlength=VOCAB)
    pairs = np.bincount(out[:, 0] * VOCAB + out[:, 1], minlength=VOCAB * VOCAB)
    where = f"{draft=}, {gamma=}, {temperature=}, {top_p=}"
    assert _chi2_pvalue(first, p1) > FALSE_ALARM, where
    assert _chi2_pvalue(pairs, p12) > FALSE_ALARM, where
    # the draft really was rejected now and then, so the residual rule was exercised
    assert 0 < result.acceptance_rate < 1, where


def test_the_chi_square_check_detects_the_draft_distribution(zoo):
    """Negative control: samples of the draft alone are far from the target."""
    prompt = zoo.prompt_ids()[1]
    sampling = SamplingConfig(temperature=1.0)
    q1, _ = _exact(zoo.partial, prompt, sampling)
    p1, _ = _exact(zoo.target, prompt, sampling)
    gen = torch.Generator().manual_seed(0)
    draws = torch.multinomial(torch.from_numpy(q1), ROWS, replacement=True, generator=gen).numpy()
    assert _chi2_pvalue(np.bincount(draws, minlength=VOCAB), p1) < 1e-6


def test_verify_rules_on_hand_made_distributions():
    # greedy: proposals [3, 1], target argmax [3, 2, 0] -> k = 1, correction 2
    logits = torch.full((1, 3, 4), -5.0)
    logits[0, 0, 3] = logits[0, 1, 2] = logits[0, 2, 0] = 5.0
    k, nxt = verify_greedy(torch.tensor([[3, 1]]), logits)
    assert k.tolist() == [1] and nxt.tolist() == [2]
    # sampling: p puts no mass on the proposal -> always rejected; residual = p itself
    p = torch.tensor([[[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]])
    q = torch.tensor([[[1.0, 0.0, 0.0]]])
    k, nxt = verify_sampling(torch.tensor([[0]]), q, p, torch.Generator().manual_seed(0))
    assert k.tolist() == [0] and nxt.tolist() == [1]
    # p == q -> always accepted, next token from p at position γ+1
    k, nxt = verify_sampling(
        torch.tensor([[1]]), p[:, :1], torch.tensor([[[0, 1.0, 0], [0, 0, 1.0]]]), None
    )
    assert k.tolist() == [1] and nxt.tolist() == [2]


def test_top_p_keeps_the_smallest_nucleus():
    sampling = SamplingConfig(temperature=1.0, top_p=0.7)
    probs = probabilities(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), sampling)
    torch.testing.assert_close(probs, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(temperature=1.0, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-1.0)
