"""profiler.build: presets, config folders and overrides build the real HF class, no download."""

from __future__ import annotations

import json

import pytest
from transformers import LlamaConfig, LlamaForCausalLM, OPTForCausalLM

from perfmodel.presets import get_preset
from profiler.build import arch_fields, build_model, resolve_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    ).save_pretrained(folder)  # fmt: skip
    return folder


@pytest.mark.parametrize(
    ("preset", "cls"), [("llama-7b", LlamaForCausalLM), ("opt-125m", OPTForCausalLM)]
)
def test_preset_with_overrides_builds_real_class_with_archspec_param_count(preset, cls):
    overrides = {"layers": 2, "hidden": 64, "ffn": 96, "heads": 4}
    recipe = resolve_model(preset, overrides=overrides)
    model = build_model(recipe, layers=1)
    assert isinstance(model, cls)
    assert model.config.num_hidden_layers == 1 and recipe.layers == 2
    # golden: ArchSpec's count (itself pinned to published sizes) equals HF's count
    expected = recipe.arch.replace(layers=1).param_count
    assert model.num_parameters() == expected, (preset, overrides)
    for p in model.parameters():
        assert p.isfinite().all()


def test_override_name_and_gqa_group_kept():
    recipe = resolve_model("llama-2-70b", overrides={"layers": 1, "hidden": 512, "heads": 8})
    assert recipe.name == "llama-2-70b_layers1_hidden512_heads8"
    assert recipe.config.num_key_value_heads == 1  # 64/8 group size kept
    assert recipe.config.head_dim == 64
    assert recipe.source == "preset:llama-2-70b +overrides"


def test_preset_without_overrides_matches_reference():
    recipe = resolve_model("llama-65b")
    spec = get_preset("llama-65b")
    f = arch_fields(recipe.config)
    assert (f["layers"], f["hidden"], f["ffn"], f["heads"], f["vocab"]) == (
        spec.layers, spec.hidden, spec.ffn, spec.heads, spec.vocab,
    )  # fmt: skip


def test_folder_and_config_json_paths(tiny_folder):
    by_folder = resolve_model(str(tiny_folder))
    by_file = resolve_model(str(tiny_folder / "config.json"), overrides={"layers": 1})
    assert by_folder.name == tiny_folder.name and by_folder.layers == 3
    assert by_file.layers == 1 and by_file.arch is not None
    assert arch_fields(by_folder.config)["kv_heads"] == 2
    model = build_model(by_folder, layers=2, dtype="bf16")
    assert model.config.num_hidden_layers == 2 and str(model.dtype) == "torch.bfloat16"


def test_other_architectures_build_through_their_config(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=256).save_pretrained(
        tmp_path
    )
    recipe = resolve_model(str(tmp_path), overrides={"layers": 1})
    f = arch_fields(recipe.config)
    assert (f["family"], f["layers"], f["hidden"]) == ("opt", 1, 64)
    model = build_model(recipe)
    assert type(model).__name__ == "GPT2LMHeadModel"
    # GPT-2 has OPT's layer layout: a roofline from a spec that counts the model built
    assert recipe.arch.layers == 1 and recipe.arch.param_count == model.num_parameters()


def test_a_depth_override_cycles_the_per_layer_lists(tmp_path):
    # SmolLM3's no_rope_layers and Gemma 3's layer_types hold one entry per layer: a deeper copy
    # was an IndexError when built, and any other depth a config transformers refuses to save
    from transformers import AutoConfig, Gemma3TextConfig, SmolLM3Config

    small = dict(hidden_size=64, intermediate_size=128, num_attention_heads=2,
                 num_key_value_heads=1, vocab_size=300, pad_token_id=0, eos_token_id=0)  # fmt: skip
    SmolLM3Config(num_hidden_layers=4, **small).save_pretrained(tmp_path / "smol")
    recipe = resolve_model(str(tmp_path / "smol"), overrides={"layers": 6})
    assert recipe.config.no_rope_layers == [1, 1, 1, 0, 1, 1]
    assert len(build_model(recipe).model.layers) == 6
    Gemma3TextConfig(num_hidden_layers=8, head_dim=32, **small).save_pretrained(tmp_path / "g")
    recipe = resolve_model(str(tmp_path / "g"), overrides={"layers": 3})
    assert recipe.config.layer_types == ["sliding_attention"] * 3
    recipe.config.save_pretrained(tmp_path / "g3")
    assert AutoConfig.from_pretrained(tmp_path / "g3").num_hidden_layers == 3


def test_a_layout_archspec_does_not_model_builds_without_a_roofline(tmp_path):
    from transformers import BloomConfig

    BloomConfig(hidden_size=64, n_layer=2, n_head=4, vocab_size=128).save_pretrained(tmp_path)
    recipe = resolve_model(str(tmp_path), overrides={"layers": 1})
    assert recipe.arch is None  # ALiBi, an embedding LayerNorm: not an ArchSpec layout
    assert type(build_model(recipe)).__name__ == "BloomForCausalLM"


@pytest.mark.parametrize(
    ("model", "overrides", "match"),
    [
        ("llama-3000b", {}, "unknown preset 'llama-3000b'"),
        ("llama-7b", {"heads": 7}, "hidden % heads == 0"),
        ("llama-7b", {"hidden": 100, "heads": 8}, "hidden % heads == 0"),
        ("llama-7b", {"heads": 8, "kv_heads": 3}, "heads % kv_heads == 0"),
        ("llama-7b", {"layers": 0}, "layers >= 1"),
        ("llama-7b", {"depth": 2}, "overrides"),
    ],
)
def test_bad_models_raise_value_error(model, overrides, match):
    with pytest.raises(ValueError, match=match):
        resolve_model(model, overrides=overrides)


def test_paths_that_are_not_models(tmp_path):
    with pytest.raises(ValueError, match="is not a model"):
        resolve_model(str(tmp_path))  # a folder without config.json
    (tmp_path / "x.json").write_text(json.dumps({"hidden_size": 4}))
    with pytest.raises(ValueError, match="no 'model_type'"):
        resolve_model(str(tmp_path / "x.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON"):
        resolve_model(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="is not a model"):
        resolve_model(str(tmp_path / "missing" / "config.json"))


def custom_code_folder(root):
    """A folder whose config names its own model code (auto_map), as on the hub: a Llama
    subclass under a model type transformers does not know."""
    folder = root / "custom-code"
    folder.mkdir()
    config = {
        "model_type": "specdectiny",
        "auto_map": {
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        },
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\n"
        "class TinyConfig(LlamaConfig):\n    model_type = 'specdectiny'\n"
    )
    (folder / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tiny import TinyConfig\n\n\n"
        "class TinyForCausalLM(LlamaForCausalLM):\n    config_class = TinyConfig\n"
    )
    return folder


def test_custom_model_code_runs_only_when_asked(tmp_path, monkeypatch):
    folder = custom_code_folder(tmp_path)
    # refused with one ValueError, never transformers' interactive "run the custom code? [y/N]"
    monkeypatch.setattr("builtins.input", lambda *_: pytest.fail("prompted"))
    for model in (str(folder), str(folder / "config.json")):
        with pytest.raises(ValueError, match="trust_remote_code` must be asked for"):
            resolve_model(model)
    recipe = resolve_model(str(folder / "config.json"), trust_remote_code=True)
    assert recipe.trust_remote_code and type(recipe.config).__name__ == "TinyConfig"
    assert arch_fields(recipe.config)["kv_heads"] == 2
    model = build_model(recipe, layers=1)
    assert type(model).__name__ == "TinyForCausalLM"  # the folder's class, not the stock one
    assert isinstance(model, LlamaForCausalLM) and len(model.model.layers) == 1


def test_falcon_multi_query_has_one_kv_head_and_mamba_is_refused(tmp_path):
    from transformers import FalconConfig, MambaConfig

    falcon = FalconConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          vocab_size=128, multi_query=True)  # fmt: skip
    assert arch_fields(falcon)["kv_heads"] == 1
    falcon.new_decoder_architecture, falcon.num_kv_heads = True, 2
    assert arch_fields(falcon)["kv_heads"] == 2
    MambaConfig(hidden_size=64, num_hidden_layers=2, vocab_size=128).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no num_attention_heads"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("kind", ["gemma3", "llava"])
def test_an_image_text_model_profiles_its_language_model(kind, tmp_path):
    # Gemma 3 4B+ and LLaVA folders hold no decoder of their own ("has no hidden_size"): their
    # text_config is what a decoding step runs, built as its causal LM with the wrapper's tying
    import transformers

    text = dict(num_hidden_layers=3, hidden_size=64, intermediate_size=176, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=1000)  # fmt: skip
    if kind == "gemma3":
        config = transformers.Gemma3Config(
            text_config=dict(text, head_dim=16, model_type="gemma3_text"),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, image_size=28, patch_size=14),
        )  # fmt: skip
    else:
        config = transformers.LlavaConfig(
            text_config=dict(text, model_type="llama"), tie_word_embeddings=True
        )
    config.save_pretrained(tmp_path)
    recipe = resolve_model(str(tmp_path), overrides={"layers": 2})
    assert recipe.source.endswith("(language model) +overrides")
    assert arch_fields(recipe.config)["layers"] == 2 and recipe.arch.layers == 2
    model = build_model(recipe)
    assert type(model).__name__ == ("Gemma3ForCausalLM" if kind == "gemma3" else "LlamaForCausalLM")
    assert recipe.arch.tied_embeddings and recipe.arch.param_count == model.num_parameters()


def test_a_language_model_without_a_causal_lm_class_is_refused_in_one_line(tmp_path):
    # Qwen2.5-VL's text config has no causal-LM class: transformers' message listed every
    # config class it knows
    import transformers

    transformers.Qwen2_5_VLConfig(
        text_config=dict(num_hidden_layers=2, hidden_size=64, intermediate_size=176,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=1000,
                         model_type="qwen2_5_vl_text"),
    ).save_pretrained(tmp_path)  # fmt: skip
    recipe = resolve_model(str(tmp_path))
    assert recipe.arch.qkv_bias and recipe.arch.layers == 2  # predict/search still read it
    with pytest.raises(ValueError, match=r"causal-LM class.*'qwen2_5_vl_text' has none") as err:
        build_model(recipe)
    assert len(str(err.value)) < 300
