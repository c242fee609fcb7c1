"""ArchSpec.param_count equals Hugging Face's num_parameters() for Llama, OPT and Llama-layout model classes.

The models are built on the meta device: shapes only, no memory, no weights.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from perfmodel import ArchSpec  # noqa: E402

CASES = [
    # (family, layers, hidden, ffn, heads, kv_heads, vocab, tied, max_positions)
    ("llama", 2, 64, 176, 4, 4, 1000, False, 128),
    ("llama", 3, 96, 256, 6, 2, 777, False, 256),  # grouped-query attention
    ("llama", 1, 64, 128, 8, 1, 500, True, 64),  # multi-query, tied embeddings
    ("opt", 2, 64, 256, 4, 4, 1000, True, 128),
    ("opt", 3, 96, 384, 6, 6, 777, False, 300),  # untied LM head
]


def _hf_model(family, layers, hidden, ffn, heads, kv_heads, vocab, tied, max_positions):
    if family == "llama":
        config = transformers.LlamaConfig(
            num_hidden_layers=layers,
            hidden_size=hidden,
            intermediate_size=ffn,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            vocab_size=vocab,
            tie_word_embeddings=tied,
            max_position_embeddings=max_positions,
        )
        cls = transformers.LlamaForCausalLM
    else:
        config = transformers.OPTConfig(
            num_hidden_layers=layers,
            hidden_size=hidden,
            word_embed_proj_dim=hidden,
            ffn_dim=ffn,
            num_attention_heads=heads,
            vocab_size=vocab,
            tie_word_embeddings=tied,
            max_position_embeddings=max_positions,
        )
        cls = transformers.OPTForCausalLM
    with torch.device("meta"):
        return config, cls(config)


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[0]}-L{c[1]}-h{c[2]}-kv{c[5]}-tied{c[7]}" for c in CASES]
)
def test_param_count_matches_hf(case):
    family, layers, hidden, ffn, heads, kv_heads, vocab, tied, max_positions = case
    config, model = _hf_model(*case)
    spec = ArchSpec(
        layers=layers,
        hidden=hidden,
        ffn=ffn,
        heads=heads,
        kv_heads=kv_heads,
        vocab=vocab,
        tied_embeddings=tied,
        family=family,
        max_positions=max_positions,
    )
    assert spec.param_count == model.num_parameters(), case
    assert ArchSpec.from_hf_config(config.to_dict()) == spec
    # the decomposition the profiler uses: one layer's parameters
    layer = model.model.layers[0] if family == "llama" else model.model.decoder.layers[0]
    assert spec.layer_param_count == sum(p.numel() for p in layer.parameters()), case


LLAMA_LAYOUTS = {
    "mistral": lambda: transformers.MistralConfig(
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, sliding_window=4096,
    ),
    "qwen2": lambda: transformers.Qwen2Config(  # biases on q, k, v
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=True,
    ),
    "qwen3": lambda: transformers.Qwen3Config(  # q and k RMSNorms per head
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=1000,
    ),
    "phi3": lambda: transformers.Phi3Config(  # fused qkv and gate_up matrices
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, pad_token_id=0,
    ),
    "gemma": lambda: transformers.GemmaConfig(  # tied embeddings by default
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, vocab_size=1000,
    ),
}  # fmt: skip


def _spec_counting_as_hf(config) -> ArchSpec:
    """The spec of ``config``, checked to count the whole model and one layer as HF does."""
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    spec = ArchSpec.from_hf_config(config.to_dict())
    assert spec.param_count == model.num_parameters(), config.model_type
    layer = model.model.layers[0]
    assert spec.layer_param_count == sum(p.numel() for p in layer.parameters())
    return spec


@pytest.mark.parametrize("kind", sorted(LLAMA_LAYOUTS))
def test_llama_layout_model_types_count_as_hf_does(kind):
    config = LLAMA_LAYOUTS[kind]()
    spec = _spec_counting_as_hf(config)
    assert spec.family == "llama" and spec.qkv_bias == (kind == "qwen2")
    assert spec.qk_norm == (kind == "qwen3") and spec.head_size is None
    # a config.json without tie_word_embeddings: the class's default (True for Gemma)
    raw = {k: v for k, v in config.to_dict().items() if k != "tie_word_embeddings"}
    default = type(config)().tie_word_embeddings
    assert ArchSpec.from_hf_config(raw).tied_embeddings == default == (kind == "gemma")


HEAD_DIM_APART = {
    # head_dim other than hidden / heads: Qwen3-0.6B (1024 / 16 heads of 128), gemma-7b,
    # Mistral-Nemo, here at small sizes
    "qwen3": lambda: transformers.Qwen3Config(
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, vocab_size=1000,
    ),
    "gemma": lambda: transformers.GemmaConfig(
        num_hidden_layers=1, hidden_size=96, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=4, head_dim=32, vocab_size=100,
    ),
    "mistral": lambda: transformers.MistralConfig(
        num_hidden_layers=2, hidden_size=80, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, vocab_size=1000,
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(HEAD_DIM_APART))
def test_a_head_dim_apart_from_hidden_over_heads_counts_as_hf_does(kind):
    config = HEAD_DIM_APART[kind]()
    spec = _spec_counting_as_hf(config)
    assert spec.head_size == spec.head_dim == 32 and spec.query_width == 4 * 32
    assert spec.kv_cache_bytes_per_token == 2 * spec.layers * spec.kv_heads * 32 * 2.0
    # a head_dim equal to hidden / heads is the derived one: the same spec as without it
    plain = config.to_dict() | {"head_dim": config.hidden_size // config.num_attention_heads}
    assert ArchSpec.from_hf_config(plain).head_size is None


def test_options_other_families_do_not_have_are_refused():
    for flag, value in (("qkv_bias", True), ("qk_norm", True), ("head_size", 16)):
        with pytest.raises(ValueError, match=flag):
            ArchSpec(layers=1, hidden=64, ffn=64, heads=4, kv_heads=4, vocab=10,
                     tied_embeddings=True, family="opt", **{flag: value})  # fmt: skip
