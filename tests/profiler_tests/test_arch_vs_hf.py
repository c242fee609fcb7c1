"""ArchSpec.param_count equals Hugging Face's num_parameters() for Llama, OPT and the model classes
with their layer layouts.

The models are built on the meta device: shapes only, no memory, no weights.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import json  # noqa: E402

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
    "gemma2": lambda: transformers.Gemma2Config(  # four RMSNorms per layer
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=1000,
    ),
    "gemma3_text": lambda: transformers.Gemma3TextConfig(  # four norms and q/k norms per head
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=1000,
    ),
    "granite": lambda: transformers.GraniteConfig(  # multipliers only, no parameter
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, residual_multiplier=0.2,
    ),
    "smollm3": lambda: transformers.SmolLM3Config(  # layers without rotary: no parameter
        num_hidden_layers=2, hidden_size=64, intermediate_size=176, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, pad_token_id=0,
    ),
}  # fmt: skip


def _first_layer(model):
    for name in ("model.layers", "gpt_neox.layers", "transformer.h"):
        try:
            return model.get_submodule(name)[0]
        except AttributeError:
            continue
    raise AssertionError(f"no decoder layers found in {type(model).__name__}")


def _spec_counting_as_hf(config) -> ArchSpec:
    """The spec of ``config``, checked to count the whole model and one layer as HF does, read
    from the config's dict and from the config.json that ``save_pretrained`` writes."""
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    spec = ArchSpec.from_hf_config(config.to_dict())
    assert spec.param_count == model.num_parameters(), config.model_type
    layer = _first_layer(model)
    assert spec.layer_param_count == sum(p.numel() for p in layer.parameters())
    saved = json.loads(config.to_json_string(use_diff=True))
    assert ArchSpec.from_hf_config(saved) == spec, config.model_type
    return spec


TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3_text", "smollm3"}


@pytest.mark.parametrize("kind", sorted(LLAMA_LAYOUTS))
def test_llama_layout_model_types_count_as_hf_does(kind):
    config = LLAMA_LAYOUTS[kind]()
    spec = _spec_counting_as_hf(config)
    assert spec.family == "llama" and spec.qkv_bias == (kind == "qwen2")
    assert spec.qk_norm == (kind in ("qwen3", "gemma3_text")) and spec.head_size is None
    assert spec.sandwich_norms == (kind in ("gemma2", "gemma3_text"))
    # a config.json without tie_word_embeddings: the class's default
    raw = {k: v for k, v in config.to_dict().items() if k != "tie_word_embeddings"}
    default = type(config)().tie_word_embeddings
    assert ArchSpec.from_hf_config(raw).tied_embeddings == default == (kind in TIED_BY_DEFAULT)


OPT_LAYOUTS = {
    # GPT-NeoX (Pythia): rotary positions, no position table, untied head by default
    "gpt_neox": lambda: transformers.GPTNeoXConfig(
        num_hidden_layers=2, hidden_size=64, intermediate_size=256, num_attention_heads=4,
        vocab_size=1000, max_position_embeddings=128,
    ),
    "gpt_neox_tied": lambda: transformers.GPTNeoXConfig(
        num_hidden_layers=1, hidden_size=96, intermediate_size=160, num_attention_heads=6,
        vocab_size=500, tie_word_embeddings=True, use_parallel_residual=False, rotary_pct=1.0,
    ),
    # GPT-2: a learned table of n_positions rows (no offset), tied head, n_inner = 4·n_embd
    "gpt2": lambda: transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128,
    ),
    "gpt2_inner": lambda: transformers.GPT2Config(
        n_layer=3, n_embd=96, n_head=6, n_inner=160, vocab_size=777, n_positions=300,
    ),
    # Starcoder2: no position table, grouped-query attention, biases (use_bias)
    "starcoder2": lambda: transformers.Starcoder2Config(
        num_hidden_layers=2, hidden_size=64, intermediate_size=256, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, max_position_embeddings=128,
    ),
    # GPT-BigCode (StarCoder, SantaCoder, tiny_starcoder): GPT-2's table, multi-query
    "gpt_bigcode": lambda: transformers.GPTBigCodeConfig(
        n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128,
    ),
    "gpt_bigcode_mha": lambda: transformers.GPTBigCodeConfig(
        n_layer=2, n_embd=64, n_head=4, n_inner=160, vocab_size=1000, n_positions=128,
        multi_query=False,
    ),
}  # fmt: skip
KV_HEADS = {"starcoder2": 2, "gpt_bigcode": 1}


@pytest.mark.parametrize("kind", sorted(OPT_LAYOUTS))
def test_opt_layout_model_types_count_as_hf_does(kind):
    config = OPT_LAYOUTS[kind]()
    spec = _spec_counting_as_hf(config)
    assert spec.family == "opt" and not spec.sandwich_norms
    assert spec.kv_heads == KV_HEADS.get(kind, spec.heads)
    if config.model_type in ("gpt_neox", "starcoder2"):
        assert spec.position_rows == spec.position_table_rows == 0
        assert spec.ffn == config.intermediate_size
    else:
        assert spec.position_rows == spec.position_table_rows == config.n_positions
        assert spec.ffn == (config.n_inner or 4 * config.n_embd) and spec.tied_embeddings
    # the same layer's parameters as an OPT layer of the same shape
    opt = ArchSpec(**{**spec.to_dict(), "position_table_rows": None})
    assert opt.layer_param_count == spec.layer_param_count
    assert (
        opt.param_count - spec.param_count
        == (opt.max_positions + 2 - spec.position_rows) * spec.hidden
    )


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
    # (grouped key/values are the OPT layout's too: Starcoder2, GPT-BigCode)
    shape = {"layers": 1, "hidden": 64, "ffn": 64, "heads": 4, "kv_heads": 4, "vocab": 10,
             "tied_embeddings": True}  # fmt: skip
    for flag, value in (("qkv_bias", True), ("qk_norm", True), ("head_size", 16),
                        ("sandwich_norms", True)):  # fmt: skip
        with pytest.raises(ValueError, match=flag):
            ArchSpec(**shape, family="opt", **{flag: value})
    with pytest.raises(ValueError, match="position_table_rows.*llama"):
        ArchSpec(**shape, family="llama", position_table_rows=0)
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="position_table_rows"):
            ArchSpec(**shape, family="opt", position_table_rows=bad)
    with pytest.raises(ValueError, match="sandwich_norms"):
        ArchSpec(**shape, family="llama", sandwich_norms=1)


def test_options_the_spec_does_not_model_are_refused_by_name():
    neox = OPT_LAYOUTS["gpt_neox"]().to_dict()
    with pytest.raises(ValueError, match="attention_bias"):
        ArchSpec.from_hf_config(neox | {"attention_bias": False})
    starcoder2 = OPT_LAYOUTS["starcoder2"]().to_dict()
    with pytest.raises(ValueError, match="use_bias"):
        ArchSpec.from_hf_config(starcoder2 | {"use_bias": False})
    gpt2 = OPT_LAYOUTS["gpt2"]().to_dict()
    with pytest.raises(ValueError, match="add_cross_attention"):
        ArchSpec.from_hf_config(gpt2 | {"add_cross_attention": True})
    bigcode = OPT_LAYOUTS["gpt_bigcode"]().to_dict()
    with pytest.raises(ValueError, match="add_cross_attention"):
        ArchSpec.from_hf_config(bigcode | {"add_cross_attention": True})
    with pytest.raises(
        ValueError, match="model_type in .*gpt_neox.*gpt2.*but got model_type='bloom'"
    ):
        ArchSpec.from_hf_config({"model_type": "bloom"})


_SMALL_TEXT = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=176,
                   num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)  # fmt: skip
IMAGE_TEXT = {
    # image-text models whose language model has a layout ArchSpec reads (its text_config)
    "gemma3": lambda: transformers.Gemma3Config(
        text_config=dict(_SMALL_TEXT, head_dim=16, model_type="gemma3_text")),
    "mistral3": lambda: transformers.Mistral3Config(
        text_config=dict(_SMALL_TEXT, model_type="mistral")),
    "mistral3_untied": lambda: transformers.Mistral3Config(
        text_config=dict(_SMALL_TEXT, model_type="mistral"), tie_word_embeddings=False),
    "llava": lambda: transformers.LlavaConfig(text_config=dict(_SMALL_TEXT, model_type="llama")),
    "qwen2_5_vl": lambda: transformers.Qwen2_5_VLConfig(
        text_config=dict(_SMALL_TEXT, model_type="qwen2_5_vl_text")),
    "qwen3_vl": lambda: transformers.Qwen3VLConfig(
        text_config=dict(_SMALL_TEXT, head_dim=16, model_type="qwen3_vl_text")),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(IMAGE_TEXT))
def test_an_image_text_models_language_model_counts_as_hf_builds_it(kind):
    # what decodes: the language model and the LM head (tied or not as the wrapper ties it);
    # the vision tower is not part of a decoding step
    config = IMAGE_TEXT[kind]()
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(config)
    lm = model.get_submodule("model.language_model")
    head = model.lm_head.weight
    expected = sum(p.numel() for p in lm.parameters())
    expected += 0 if head is lm.embed_tokens.weight else head.numel()
    for raw in (config.to_dict(), json.loads(config.to_json_string(use_diff=True))):
        spec = ArchSpec.from_hf_config(raw)
        assert spec.param_count == expected, kind
        assert spec.layer_param_count == sum(p.numel() for p in lm.layers[0].parameters())
    assert spec.qkv_bias == (kind == "qwen2_5_vl") and spec.tied_embeddings == (
        head is lm.embed_tokens.weight
    )


MOE = {
    "mixtral": lambda: transformers.MixtralConfig(
        num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, num_local_experts=4, num_experts_per_tok=2,
    ),
    "granitemoe": lambda: transformers.GraniteMoeConfig(  # Mixtral's parameters, multipliers
        num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, num_local_experts=4, num_experts_per_tok=2,
    ),
    "gpt_oss": lambda: transformers.GptOssConfig(  # attention and expert biases, sinks
        num_hidden_layers=2, hidden_size=72, intermediate_size=96, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=1000, num_local_experts=4,
        num_experts_per_tok=2,
    ),
    "olmoe": lambda: transformers.OlmoeConfig(  # full-width q/k norms
        num_hidden_layers=2, hidden_size=64, intermediate_size=96, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, num_experts=4, num_experts_per_tok=2,
        pad_token_id=0,
    ),
    "qwen3_moe": lambda: transformers.Qwen3MoeConfig(  # q/k norms, experts of their own width
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, moe_intermediate_size=48,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=1000,
        num_experts=8, num_experts_per_tok=2,
    ),
    "qwen2_moe": lambda: transformers.Qwen2MoeConfig(  # q/k/v biases, a gated shared expert
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, moe_intermediate_size=48,
        shared_expert_intermediate_size=80, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=1000, num_experts=4, num_experts_per_tok=1,
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(MOE))
def test_mixture_of_experts_model_types_count_as_hf_does(kind):
    config = MOE[kind]()
    spec = _spec_counting_as_hf(config)
    assert spec.experts == {"qwen3_moe": 8}.get(kind, 4)
    oss = kind == "gpt_oss"
    assert spec.out_bias == spec.attention_sinks == spec.expert_biases == oss
    assert spec.qkv_bias == (kind in ("gpt_oss", "qwen2_moe"))
    assert spec.experts_per_token == (1 if kind == "qwen2_moe" else 2)
    assert spec.shared_expert_ffn == (80 if kind == "qwen2_moe" else 0)
    # hub configs name the routed experts num_experts, transformers' own num_local_experts
    raw = config.to_dict()
    if "num_local_experts" in raw:
        raw["num_experts"] = raw.pop("num_local_experts")
        assert ArchSpec.from_hf_config(raw) == spec


def test_dense_layers_between_sparse_ones_are_refused():
    raw = MOE["qwen3_moe"]().to_dict()
    for bad in ({"decoder_sparse_step": 2}, {"mlp_only_layers": [0]}):
        with pytest.raises(ValueError, match="every layer has the mixture-of-experts MLP"):
            ArchSpec.from_hf_config(raw | bad)


@pytest.mark.parametrize("kind", ["olmo2", "olmo3"])
def test_olmo_layouts_count_as_hf_does(kind):
    # norms after the attention and the MLP (two a layer, as the llama layout's before them) and
    # RMSNorms over the whole query and key widths
    cls = {"olmo2": transformers.Olmo2Config, "olmo3": transformers.Olmo3Config}[kind]
    config = cls(num_hidden_layers=2, hidden_size=64, intermediate_size=176,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=1000, pad_token_id=0)  # fmt: skip
    spec = _spec_counting_as_hf(config)
    assert spec.qk_norm_full and not spec.qk_norm and spec.experts == 0
    with pytest.raises(ValueError, match="per-head or full-width"):
        spec.replace(qk_norm=True)
