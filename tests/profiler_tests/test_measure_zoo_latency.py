"""scripts/measure_zoo.py's per-token decode latency runs with the KV cache under the keyword the
installed transformers takes (``cache`` in 5.24; ``past_key_values`` is deprecated and goes in
5.40), so each timed step decodes one token against the cache rather than a cache-less pass."""

from __future__ import annotations

import functools
import warnings

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tests.benchmark_scripts import load_script


def test_per_token_latency_uses_the_cache_keyword_the_model_takes(monkeypatch):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=4,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    seen: list[int] = []  # cache length seen by each pass
    real = model.forward

    def forward(*args, **kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        seen.append(-1 if cache is None else cache.get_seq_length())
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", functools.wraps(real)(forward))
    script = load_script("measure_zoo")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the deprecated keyword warns
        result = script.per_token_latency_ms(model, [1, 2, 3, 4], tokens=3, repeats=2)
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["max_ms"]
    # each repeat: the prompt (empty cache), then 3 steps against a cache of 4, 5 and 6 columns
    assert seen[-4:] == [0, 4, 5, 6], seen
