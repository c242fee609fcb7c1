"""The draft space: every suggestion is a valid shape; bounds from files; empty spaces rejected."""

from __future__ import annotations

import json

import optuna
import pytest

from explorer.space import DraftConfig, SearchSpace, suggest_config
from perfmodel.presets import get_preset, preset_names

from .search_support import TINY_SPACE


def test_suggestions_are_valid_shapes_and_in_the_enumeration():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = {tuple(r) for r in TINY_SPACE.enumerate().itertuples(index=False)}
    assert len(grid) <= TINY_SPACE.size
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(60):
        trial = study.ask()
        cfg = suggest_config(trial, TINY_SPACE)
        study.tell(trial, 0.0)
        assert cfg.hidden % cfg.heads == 0 and cfg.heads % cfg.kv_heads == 0, cfg
        assert cfg.ffn % 64 == 0 and cfg.ffn >= 2 * cfg.hidden, cfg
        assert tuple(cfg.to_dict().values()) in grid, cfg


def test_for_target_scales_with_the_target():
    small = SearchSpace.for_target(get_preset("llama-7b"))
    big = SearchSpace.for_target(get_preset("llama-65b"))
    assert small.hidden_max == 4096 and big.hidden_max == 4096 and small.depth_max == 16
    assert big.hidden_step > small.hidden_step
    assert len(small.enumerate()) > 0


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_from_file(tmp_path, suffix):
    path = tmp_path / f"space{suffix}"
    if suffix == ".toml":
        path.write_text(
            "depth = [2, 3]\nhidden = [128, 256]\nhidden_step = 128\nhead_dims = [64]\ngamma = [2, 4]\n"
        )
    else:
        path.write_text(
            json.dumps(
                {
                    "depth": [2, 3],
                    "hidden": [128, 256],
                    "hidden_step": 128,
                    "head_dims": [64],
                    "gamma": [2, 4],
                }
            )
        )
    s = SearchSpace.from_file(path)
    assert (s.depth_min, s.depth_max, s.hidden_min, s.hidden_max, s.gamma_min, s.gamma_max) == (
        2,
        3,
        128,
        256,
        2,
        4,
    )
    assert s.head_dims == (64,)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"depth_min": 5, "depth_max": 2}, "depth_min <= depth_max"),
        ({"hidden_min": 2048, "hidden_max": 1024}, "hidden_min <= hidden_max"),
        ({"head_dims": ()}, "at least one value"),
        ({"hidden_step": 96, "hidden_min": 96}, "hidden_step % head_dim == 0"),
        ({"kv_group_sizes": (3,)}, "powers of two"),
        ({"unknown": 1}, "unknown keys"),
    ],
)
def test_empty_or_invalid_spaces_are_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        TINY_SPACE.with_overrides(**overrides)


def test_draft_config_rules():
    with pytest.raises(ValueError, match="hidden % heads == 0"):
        DraftConfig(depth=1, hidden=100, ffn=256, heads=3, kv_heads=1, gamma=2)
    with pytest.raises(ValueError, match="heads % kv_heads == 0"):
        DraftConfig(depth=1, hidden=128, ffn=256, heads=4, kv_heads=3, gamma=2)
    arch = DraftConfig(depth=2, hidden=128, ffn=256, heads=2, kv_heads=1, gamma=2).arch(
        get_preset("llama-7b")
    )
    assert arch.vocab == 32000 and arch.layers == 2 and arch.head_dim == 64


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_target_gets_a_space_whose_drafts_are_valid(name):
    # llama-13b (5120 wide), opt-66b (9216) and every OPT preset (no grouped-query attention)
    # once got a space that the spec or its own rules refused
    target = get_preset(name)
    space = SearchSpace.for_target(target).check_target(target)
    if target.hidden >= 2048:
        assert space.hidden_step == 128 * (target.hidden // 2048)
        assert all(space.hidden_step % d == 0 for d in space.head_dims)
    assert space.kv_group_sizes == ((1,) if target.family == "opt" else (1, 2))
    grid = space.enumerate()
    for row in grid.iloc[:: max(1, len(grid) // 40)].itertuples(index=False):
        draft = DraftConfig(**row._asdict()).arch(target)
        assert draft.family == target.family and draft.vocab == target.vocab
        assert draft.hidden <= min(target.hidden, 4096) and draft.layers <= target.layers


def test_the_width_step_of_targets_that_worked_before_is_unchanged():
    # the Llama presets other than llama-13b (OPT presets never had a working space)
    steps = {"llama-7b": 256, "llama-65b": 512, "llama-2-70b": 512, "tinyllama-1.1b": 128,
             "sheared-llama-1.3b": 128, "sheared-llama-2.7b": 128}  # fmt: skip
    assert {n: SearchSpace.for_target(get_preset(n)).hidden_step for n in steps} == steps


def test_grouped_key_values_are_refused_for_an_opt_layout_target():
    target = get_preset("opt-1.3b")
    space = SearchSpace.for_target(target).with_overrides(kv_group_sizes=(1, 2))
    with pytest.raises(ValueError, match=r"kv_group_sizes == \[1\].*OPT.*\[1, 2\]"):
        space.check_target(target)
    assert space.check_target(get_preset("llama-7b")) is space
    # an OPT-layout target with grouped key/values of its own (Starcoder2) gets them
    starcoder2 = target.replace(kv_heads=target.heads // 4, position_table_rows=0)
    assert SearchSpace.for_target(starcoder2).kv_group_sizes == (1, 2)
    assert space.check_target(starcoder2) is space


def test_a_draft_takes_the_targets_layer_layout_but_its_own_head_width():
    from perfmodel import ArchSpec

    gemma2 = ArchSpec(layers=26, hidden=2304, ffn=9216, heads=8, kv_heads=4, vocab=256000,
                      tied_embeddings=True, family="llama", head_size=256, qk_norm=True,
                      sandwich_norms=True)  # fmt: skip
    draft = DraftConfig(depth=2, hidden=512, ffn=1408, heads=8, kv_heads=4, gamma=3).arch(gemma2)
    assert draft.sandwich_norms and draft.qk_norm and not draft.qkv_bias
    assert draft.head_size is None and draft.head_dim == 64
    oss = ArchSpec(layers=24, hidden=2880, ffn=2880, heads=64, kv_heads=8, vocab=201088,
                   tied_embeddings=False, family="llama", head_size=64, qkv_bias=True,
                   out_bias=True, attention_sinks=True, experts=32, experts_per_token=4,
                   expert_biases=True)  # fmt: skip
    draft = DraftConfig(depth=2, hidden=512, ffn=1408, heads=8, kv_heads=4, gamma=3).arch(oss)
    assert draft.qkv_bias and draft.out_bias and draft.attention_sinks
    assert draft.experts == 0 and not draft.expert_biases  # a dense draft
    neox = ArchSpec(layers=32, hidden=4096, ffn=16384, heads=32, kv_heads=32, vocab=50432,
                    tied_embeddings=False, family="opt", position_table_rows=0)  # fmt: skip
    draft = DraftConfig(depth=2, hidden=512, ffn=2048, heads=8, kv_heads=8, gamma=3).arch(neox)
    assert draft.position_rows == 0 and draft.family == "opt"
