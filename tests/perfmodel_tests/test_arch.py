"""ArchSpec: golden parameter counts of real configurations, derived sizes, validation."""

from __future__ import annotations

import numpy as np
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


MIXTRAL = dict(layers=32, hidden=4096, ffn=14336, heads=32, kv_heads=8, vocab=32000,
               tied_embeddings=False, family="llama", experts=8, experts_per_token=2)  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (dict(experts=1), "experts >= 2"),
        (dict(experts_per_token=9), "experts_per_token <= experts"),
        (dict(experts_per_token=0), "1 <= experts_per_token"),
        (dict(experts=0), "experts_per_token == 0"),
        (dict(experts=0, experts_per_token=0, shared_expert_ffn=64), "shared_expert_ffn == 0"),
        (dict(experts=-1), "experts` must be an integer >= 0"),
        (dict(family="opt", kv_heads=32), "experts == 0` must hold unless family='llama'"),
        (dict(experts=0, experts_per_token=0, expert_biases=True), "expert_biases` must be False"),
        (
            dict(experts=0, experts_per_token=0, family="opt", kv_heads=32, attention_sinks=True),
            "attention_sinks` must be False unless family='llama'",
        ),
    ],
)
def test_mixture_of_experts_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        ArchSpec(**{**MIXTRAL, **bad})


def test_experts_touched_matches_a_monte_carlo_of_random_routing():
    # each of t tokens picks k distinct experts of E at random: E·(1 − (1 − k/E)^t) distinct
    rng = np.random.default_rng(0)
    for experts, k in ((8, 2), (128, 8), (64, 6)):
        spec = ArchSpec(**{**MIXTRAL, "experts": experts, "experts_per_token": k})
        for tokens in (1, 2, 5, 9, 17, 64):
            trials = 2000
            # each token's k experts: the k smallest of E uniform keys (distinct, uniform)
            picks = np.argpartition(rng.random((trials, tokens, experts)), k - 1, axis=2)[..., :k]
            hit = np.zeros((trials, experts), bool)
            hit[np.arange(trials)[:, None], picks.reshape(trials, -1)] = True
            draws = hit.sum(axis=1)
            expected = spec.experts_touched(tokens)
            assert abs(np.mean(draws) - expected) < 4 * np.std(draws) / np.sqrt(len(draws)) + 1e-6
        assert spec.experts_touched(1) == pytest.approx(k)
        assert spec.experts_touched(10_000) == pytest.approx(experts)


def test_a_mixture_of_experts_counts_all_experts_but_runs_and_reads_the_routed_ones():
    moe = ArchSpec(**MIXTRAL)
    dense = ArchSpec(**{**MIXTRAL, "experts": 0, "experts_per_token": 0})
    h, f = 4096, 14336
    assert moe.layer_param_count - dense.layer_param_count == 7 * 3 * h * f + 8 * h  # + router
    assert moe.param_count == 46_702_792_704  # Mixtral-8x7B as HF counts it
    # one token runs 2 experts and the router
    assert moe.layer_matmul_params - dense.layer_matmul_params == 3 * h * f + 8 * h
    # a pass reads the experts its tokens touch: 2 of 8 for one token, nearly all for many
    attn_etc = moe.layer_param_count - 8 * 3 * h * f
    assert moe.layer_params_read(1) == pytest.approx(attn_etc + 2 * 3 * h * f)
    assert moe.layer_params_read(5) == pytest.approx(attn_etc + moe.experts_touched(5) * 3 * h * f)
    assert moe.layer_params_read(1000) == pytest.approx(moe.layer_param_count)
    assert dense.layer_params_read(7) == dense.layer_param_count
    assert np.array_equal(dense.layer_params_read(np.array([1, 5])), [dense.layer_param_count] * 2)


def test_the_roofline_of_a_mixture_of_experts_verification_grows_with_its_tokens():
    from perfmodel import get_hardware, roofline_layer

    moe, hw = ArchSpec(**MIXTRAL), get_hardware("H200")
    dense = ArchSpec(**{**MIXTRAL, "experts": 0, "experts_per_token": 0, "ffn": 2 * 14336})
    q = np.array([1, 2, 5, 9])
    moe_bytes = roofline_layer(moe, hw, batch=1, context=0, query=q)["bytes"]
    dense_bytes = roofline_layer(dense, hw, batch=1, context=0, query=q)["bytes"]
    assert np.all(np.diff(moe_bytes) > 0)  # more experts touched
    # a 2-expert-wide dense layer reads as much as the MoE layer for one token (router apart)
    assert moe_bytes[0] == pytest.approx(dense_bytes[0] + 8 * 4096 * 2.0)
    assert moe_bytes[-1] / dense_bytes[-1] > 2.5
