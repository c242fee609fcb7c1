"""End-to-end tests of explorer.train on a tiny corpus and a tiny model (seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from explorer import cli  # noqa: E402
from explorer.corpus import CorpusSplit, _in_validation, train_tokenizer  # noqa: E402
from explorer.train import TrainConfig, train_model  # noqa: E402

TEMPLATE = '''"""Module {i}: helpers."""

import os


def add_{i}(a, b):
    """Return a + b."""
    return a + b


class Counter{i}:
    def __init__(self, start=0):
        self.value = start

    def step(self, n=1):
        self.value += n
        return self.value
'''


def _names(n_train: int, n_val: int) -> list[str]:
    """File names that the 5 % hash split sends to train and to validation."""
    train, val, i = [], [], 0
    while len(train) < n_train or len(val) < n_val:
        name = f"mod_{i}.py"
        (val if _in_validation(name, 0.05) else train).append(name)
        i += 1
    return train[:n_train] + val[:n_val]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("zoo")
    corpus = root / "corpus"
    corpus.mkdir()
    for i, name in enumerate(_names(24, 2)):
        (corpus / name).write_text(TEMPLATE.format(i=i) * 3)
    (corpus / "tests").mkdir()
    (corpus / "tests" / "mod_x.py").write_text("excluded = True\n")
    tokenizer = train_tokenizer(CorpusSplit(corpus), vocab_size=300, out_dir=root / "tokenizer")
    return {"root": root, "corpus": corpus, "tokenizer": tokenizer}


def _config(tiny: dict[str, Path], out: Path, **overrides) -> TrainConfig:
    kwargs = dict(
        out_dir=out,
        tokens=4 * 32 * 24,  # 24 steps
        layers=1,
        hidden=32,
        heads=2,
        corpus=tiny["corpus"],
        tokenizer_dir=tiny["tokenizer"],
        cache_dir=tiny["root"] / "cache",
        seq_len=32,
        batch_size=4,
        lr=1e-2,
        eval_every_steps=8,
        eval_windows=4,
    )
    kwargs.update(overrides)
    return TrainConfig(**kwargs)


def test_split_excludes_tests_and_is_by_file(tiny):
    split = CorpusSplit(tiny["corpus"])
    assert len(split.train_files) == 24 and len(split.validation_files) == 2
    assert not any("tests" in p.parts for p in split.train_files + split.validation_files)


def test_tiny_run_learns_saves_and_reloads(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tiny["root"] / "run"
    result = train_model(_config(tiny, out), progress=False)
    log = (out / "training_log.csv").read_text().splitlines()
    first, last = (float(row.split(",")[3]) for row in (log[1], log[-1]))
    assert last < first - 1.0, f"validation loss did not go down: {first=} {last=}"
    assert result.steps == 24 and result.tokens_trained == 24 * 4 * 32
    assert not (out / "checkpoint.pt").exists()
    meta = json.loads((out / "zoo_meta.json").read_text())
    assert meta["distilled"] is False and meta["params"] == result.params

    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert model.dtype == torch.float16
    assert model.config.num_hidden_layers == 1 and model.config.hidden_size == 32
    tok = AutoTokenizer.from_pretrained(out)
    text = "def add_3(a, b):\n    return a + b\n"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == tok.bos_token == tok.pad_token == "<|endoftext|>"

    # Running the finished command again returns at once with the same result.
    again = train_model(_config(tiny, out), progress=False)
    assert again.val_loss == result.val_loss


def test_resumed_run_matches_uninterrupted(tiny):
    from safetensors.torch import load_file

    whole = train_model(_config(tiny, tiny["root"] / "whole"), progress=False)
    out = tiny["root"] / "parts"
    assert train_model(_config(tiny, out), progress=False, stop_after_steps=10) is None
    assert (out / "checkpoint.pt").is_file()
    resumed = train_model(_config(tiny, out), progress=False)
    assert resumed.resumed_from_step == 10 and resumed.steps == 24
    a = load_file(tiny["root"] / "whole" / "model.safetensors")
    b = load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-3, msg=key)
    assert resumed.val_loss == pytest.approx(whole.val_loss, abs=1e-3)


def test_distillation_from_a_teacher(tiny):
    teacher = tiny["root"] / "teacher"
    train_model(_config(tiny, teacher, layers=2, hidden=48, heads=2), progress=False)
    out = tiny["root"] / "student"
    result = train_model(_config(tiny, out, teacher=teacher, tokens=4 * 32 * 8), progress=False)
    meta = json.loads((out / "zoo_meta.json").read_text())
    assert meta["distilled"] is True and meta["teacher"] == "teacher"
    assert np.isfinite(result.val_loss)
    # The teacher's log-probabilities were cached once per step for the next student.
    cached = list((tiny["root"] / "cache").glob("teacher-*/*.npy"))
    assert len(cached) == 8


def test_distillation_from_an_image_text_teacher(tiny):
    # a Gemma 3 4B+-style teacher (Gemma3ForConditionalGeneration): its vocabulary is its
    # language model's (the wrapper's config has none of its own: once an AttributeError)
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    teacher = tiny["root"] / "gemma3-teacher"
    config = Gemma3Config(
        text_config=dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         vocab_size=300, model_type="gemma3_text"),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=28, patch_size=14),
    )  # fmt: skip
    Gemma3ForConditionalGeneration(config).save_pretrained(teacher)
    out = tiny["root"] / "student-of-gemma3"
    result = train_model(_config(tiny, out, teacher=teacher, tokens=4 * 32 * 2), progress=False)
    assert json.loads((out / "zoo_meta.json").read_text())["distilled"] is True
    assert np.isfinite(result.val_loss)


def test_continued_training_starts_from_the_given_weights(tiny):
    first = tiny["root"] / "first"
    base = train_model(_config(tiny, first), progress=False)
    out = tiny["root"] / "continued"
    result = train_model(_config(tiny, out, init_from=first, seed=1), progress=False)
    log = (out / "training_log.csv").read_text().splitlines()
    # Step 0 of the continued run evaluates the starting weights: the first run's final loss.
    assert float(log[1].split(",")[3]) == pytest.approx(base.val_loss, abs=1e-3)
    assert result.meta["tokens_trained_total"] == 2 * base.tokens_trained
    with pytest.raises(ValueError, match="shape"):
        train_model(_config(tiny, tiny["root"] / "bad", init_from=first, hidden=64), progress=False)


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("empty-corpus", "corpus"),
        ("zero-tokens", "tokens > 0"),
        ("teacher-vocab", "vocab"),
        ("teacher-code", "without custom code"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny, tmp_path, capsys, case, needle):
    argv = ["train", "--out", str(tmp_path / "out"), "--tokens", "1000", "--layers", "1"]
    argv += ["--hidden", "32", "--heads", "2", "--seq-len", "16", "--batch-size", "2"]
    argv += ["--tokenizer", str(tiny["tokenizer"]), "--cache-dir", str(tmp_path / "cache")]
    corpus = tiny["corpus"]
    if case == "empty-corpus":
        corpus = tmp_path / "empty"
        corpus.mkdir()
        (corpus / "notes.txt").write_text("no python here\n")
        (corpus / "blank.py").write_text("")
    elif case == "zero-tokens":
        argv[argv.index("--tokens") + 1] = "0"
    else:
        from transformers import LlamaConfig

        teacher = tmp_path / "teacher"
        LlamaConfig(vocab_size=512, hidden_size=32, num_hidden_layers=1).save_pretrained(teacher)
        if case == "teacher-code":  # a hub folder with its own model code, the vocab matching
            raw = json.loads((teacher / "config.json").read_text())
            raw |= {"vocab_size": 300, "auto_map": {"AutoModelForCausalLM": "m.XForCausalLM"}}
            (teacher / "config.json").write_text(json.dumps(raw))
        argv += ["--teacher", str(teacher)]
    argv += ["--corpus", str(corpus), "--no-progress"]
    code, err = _cli(argv, capsys)
    assert code == 2, (case, err)
    assert err.count("\n") == 1 and needle in err, (case, err)


def _layout_folders(root: Path) -> dict[str, Path]:
    from transformers import (
        Gemma2Config,
        GPT2Config,
        LlamaConfig,
        MixtralConfig,
        OPTConfig,
        PhimoeConfig,
        Qwen2Config,
        Qwen3MoeConfig,
    )  # fmt: skip

    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=300)  # fmt: skip
    configs = {
        "qwen2": Qwen2Config(**small),
        "gemma2": Gemma2Config(**small, head_dim=32),
        "mixtral": MixtralConfig(**small, num_local_experts=4, num_experts_per_tok=2),
        "qwen3_moe": Qwen3MoeConfig(**small, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32),
        "gpt2": GPT2Config(n_embd=64, n_layer=4, n_head=4, vocab_size=300, n_positions=24),
        "opt": OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=4, num_attention_heads=4,
                         vocab_size=300, word_embed_proj_dim=64),
        "phimoe": PhimoeConfig(**small, num_local_experts=4),
        "llama-untied": LlamaConfig(**small, tie_word_embeddings=False),
    }  # fmt: skip
    for name, config in configs.items():
        config.save_pretrained(root / name)
    return {name: root / name for name in configs}


@pytest.mark.parametrize(
    ("layout", "cls"),
    [
        ("qwen2", "Qwen2ForCausalLM"),
        ("gemma2", "Gemma2ForCausalLM"),
        ("mixtral", "MistralForCausalLM"),  # a mixture of experts made dense
        ("qwen3_moe", "Qwen3ForCausalLM"),  # and its head width hidden / heads, not Qwen3's 128
        ("gpt2", "GPT2LMHeadModel"),
        ("opt", "OPTForCausalLM"),
    ],
)
def test_a_student_takes_the_layout_of_a_folder_as_the_search_counts_it(tmp_path, layout, cls):
    # validate used to train every proposed draft as a Llama, whatever the target's layout
    from explorer.space import DraftConfig
    from explorer.train_student import build_model, count_params
    from profiler.build import resolve_model

    folder = _layout_folders(tmp_path)[layout]
    kv = 2 if layout not in ("gpt2", "opt") else 4
    draft = DraftConfig(depth=2, hidden=128, ffn=256, heads=4, kv_heads=kv, gamma=3)
    config = TrainConfig(out_dir=tmp_path / "out", tokens=100, layers=2, hidden=128, ffn=256,
                         heads=4, kv_heads=kv, seq_len=16, layout_from=folder)  # fmt: skip
    model = build_model(config, vocab_size=300, eos_token_id=0)
    assert type(model).__name__ == cls
    assert count_params(model) == draft.arch(resolve_model(str(folder)).arch).param_count
    assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 300)


def test_layouts_a_student_cannot_take_are_refused(tmp_path):
    from explorer.train_student import build_model

    folders = _layout_folders(tmp_path)
    shape = dict(out_dir=tmp_path / "out", tokens=100, layers=1, hidden=64, heads=4)
    with pytest.raises(ValueError, match="dense counterpart"):
        build_model(
            TrainConfig(**shape, layout_from=folders["phimoe"]), vocab_size=300, eos_token_id=0
        )
    with pytest.raises(ValueError, match="position table"):  # GPT-2's 24 positions
        build_model(
            TrainConfig(**shape, seq_len=32, layout_from=folders["gpt2"]),
            vocab_size=300,
            eos_token_id=0,
        )
    with pytest.raises(ValueError, match="not a model"):
        build_model(TrainConfig(**shape, layout_from=tmp_path), vocab_size=300, eos_token_id=0)


def test_only_a_plain_llama_keeps_the_default_student(tmp_path):
    from explorer.train_config import DEFAULT_TOKENIZER_DIR
    from explorer.train_student import needs_own_layout

    folders = _layout_folders(tmp_path)
    assert not needs_own_layout(DEFAULT_TOKENIZER_DIR.parent / "target")  # the zoo's target
    assert needs_own_layout(folders["qwen2"]) and needs_own_layout(folders["llama-untied"])


def test_training_with_a_layout_saves_a_folder_of_that_class(tiny, capsys):
    from transformers import AutoModelForCausalLM, Gemma3Config, Gemma3ForConditionalGeneration

    target = tiny["root"] / "gemma3-layout"  # an image-text target: the draft is its text model
    Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         vocab_size=300, model_type="gemma3_text"),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=28, patch_size=14),
    )).save_pretrained(target)  # fmt: skip
    out = tiny["root"] / "gemma3-student"
    argv = ["train", "--out", str(out), "--tokens", str(4 * 32 * 2), "--layers", "2"]
    argv += ["--hidden", "32", "--heads", "2", "--seq-len", "32", "--batch-size", "4"]
    argv += ["--tokenizer", str(tiny["tokenizer"]), "--corpus", str(tiny["corpus"])]
    argv += ["--cache-dir", str(tiny["root"] / "cache"), "--layout", str(target)]
    argv += ["--teacher", str(target), "--no-progress", "--json"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    meta = json.loads((out / "zoo_meta.json").read_text())
    assert (meta["architecture"], meta["model_type"]) == ("Gemma3ForCausalLM", "gemma3_text")
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert type(model).__name__ == "Gemma3ForCausalLM" and model.config.num_hidden_layers == 2
    assert model.config.layer_types == ["sliding_attention"] * 2
    assert meta["params"] == model.num_parameters()
