"""ArchSpec: golden parameter counts of real configurations, derived sizes, validation."""

from __future__ import annotations

import pytest

from perfmodel import ArchSpec, get_preset

# Published sizes (golden numbers with their sources).
GOLDEN = [
    # LLaMA paper (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models",
    # Table 2: "6.7B"); huggyllama/llama-7b on the HF hub: 6.74B parameters.
    ("llama-7b", 6.74e9, 0.005),
    # Touvron et al. 2023, Table 2 ("65.2B"); huggyllama/llama-65b on the HF hub: 65.3B.
    ("llama-65b", 65.3e9, 0.005),
    # Zhang et al. 2022, "OPT: Open Pre-trained Transformer Language Models", Table 1 (66B);
    # facebook/opt-66b's checkpoint holds 65.7B parameters.
    ("opt-66b", 65.7e9, 0.01),
    # meta-llama/Llama-2-70b-hf on the HF hub: 69.0B (Touvron et al. 2023b, "Llama 2", Table 1: 70B).
    ("llama-2-70b", 69.0e9, 0.01),
]


@pytest.mark.parametrize("name,published,rel", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_parameter_counts(name, published, rel):
    count = get_preset(name).param_count
    assert count == pytest.approx(published, rel=rel), (name, count, published)


def test_exact_counts_pinned():
    # Pinned from the formula; equal to HF num_parameters() (tests/profiler_tests/test_arch_vs_hf.py).
    assert get_preset("llama-7b").param_count == 6_738_415_616
    assert get_preset("opt-125m").param_count == 125_239_296  # facebook/opt-125m: 125M


def test_derived_sizes():
    spec = get_preset("llama-2-70b")
    assert spec.head_dim == 128
    # 2 (K and V) x 80 layers x 8 kv heads x 128 x 2 bytes
    assert spec.kv_cache_bytes_per_token == 2 * 80 * 8 * 128 * 2
    assert spec.weight_bytes == spec.param_count * 2.0
    assert spec.replace(bytes_per_param=1.0).weight_bytes == spec.param_count
    # FLOPs per token ≈ 2·N at zero context, plus 4·L·h·n of attention
    assert spec.flops_per_token(0) == pytest.approx(2 * spec.param_count, rel=0.01)
    assert spec.flops_per_token(1000) - spec.flops_per_token(0) == pytest.approx(
        4 * 80 * 8192 * 1000
    )
    assert spec.flops_per_token([0, 1000]).shape == (2,)
    assert spec.param_count == spec.layers * spec.layer_param_count + spec.fixed_param_count


def test_tied_embeddings_counted_once():
    spec = get_preset("opt-1.3b")
    untied = spec.replace(tied_embeddings=False)
    assert untied.param_count - spec.param_count == spec.vocab * spec.hidden


def test_replace_to_dict_round_trip():
    spec = get_preset("llama-7b")
    shallow = spec.replace(layers=5)
    assert shallow.layers == 5 and shallow.hidden == spec.hidden and shallow.name == "llama-7b"
    assert ArchSpec(**spec.to_dict()) == spec
    assert "head_dim" not in spec.to_dict()
    with pytest.raises(ValueError, match="no field"):
        spec.replace(depth=3)
    with pytest.raises(ValueError, match="must"):
        spec.replace(heads=33)
    with pytest.raises(AttributeError):
        spec.layers = 3  # frozen


def test_from_hf_config():
    llama = {
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": False,
    }
    assert ArchSpec.from_hf_config(llama).param_count == get_preset("llama-7b").param_count
    with pytest.raises(ValueError, match="model_type"):
        ArchSpec.from_hf_config({"model_type": "bloom"})
    # a key the model type needs, missing: the rule and the key, not a KeyError
    for kind, key in (("llama", "hidden_size"), ("gpt2", "n_embd"), ("opt", "hidden_size")):
        partial = {k: v for k, v in llama.items() if k != "hidden_size"} | {"model_type": kind}
        with pytest.raises(ValueError, match=f"a {kind} config names {key}` must hold"):
            ArchSpec.from_hf_config(partial)
    with pytest.raises(ValueError, match="mapping"):
        ArchSpec.from_hf_config([llama])
    with pytest.raises(ValueError, match="attention_bias"):
        ArchSpec.from_hf_config(dict(llama, attention_bias=True))


BASE = dict(
    layers=2,
    hidden=64,
    ffn=128,
    heads=4,
    kv_heads=2,
    vocab=100,
    tied_embeddings=False,
    family="llama",
)
BAD = [
    ("layers 0", dict(layers=0)),
    ("hidden negative", dict(hidden=-64)),
    ("ffn float", dict(ffn=128.0)),
    ("heads bool", dict(heads=True)),
    ("heads not dividing hidden", dict(heads=5)),
    ("kv_heads not dividing heads", dict(kv_heads=3)),
    ("vocab 0", dict(vocab=0)),
    ("family", dict(family="gpt2")),
    ("tied not bool", dict(tied_embeddings="no")),
    ("bytes 0", dict(bytes_per_param=0)),
    ("max_positions 0", dict(max_positions=0)),
]


@pytest.mark.parametrize("name,override", BAD, ids=[b[0] for b in BAD])
def test_validation(name, override):
    with pytest.raises(ValueError, match="must"):
        ArchSpec(**{**BASE, **override})


def test_context_validation():
    with pytest.raises(ValueError, match="context"):
        get_preset("llama-7b").flops_per_token(-1)
