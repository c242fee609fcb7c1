"""The KV cache keyword: a keyword the model does not name is swallowed, so it must be the right one."""

from __future__ import annotations

import torch

from profiler.kvcache import cache_keyword
from tests.profiler_tests.tiny_models import _model


class _OldSpelling(torch.nn.Module):
    def forward(self, input_ids=None, past_key_values=None, use_cache=None, **kwargs):
        return past_key_values


class _NewSpelling(torch.nn.Module):
    def forward(self, input_ids=None, cache=None, use_cache=None, **kwargs):
        return cache


def test_cache_keyword_follows_the_forward_signature():
    assert cache_keyword(_OldSpelling()) == "past_key_values"
    assert cache_keyword(_NewSpelling()) == "cache"


def test_cache_keyword_grows_a_real_models_cache():
    from transformers import DynamicCache

    model = _model(1, 32, seed=0)
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True, **{cache_keyword(model): cache})
    assert cache.get_seq_length() == 3
