"""`specdec generate` and `specdec acceptance` end to end on tiny saved models."""

from __future__ import annotations

import json

import pytest

from explorer.cli import main
from tests.profiler_tests.tiny_models import PROMPTS, tiny_zoo


@pytest.fixture(scope="module")
def zoo():
    return tiny_zoo()


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": p, "id": i}) + "\n" for i, p in enumerate(PROMPTS))
    )
    return path


def _json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1])


def _fails(capsys, argv, match):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 2, (argv, out)
    assert len(out.err.strip().splitlines()) == 1, out.err
    assert match in out.err, out.err
    return out.err


def test_generate_json_has_the_contract_fields(zoo, capsys, prompt_file):
    base = ["generate", "--target", str(zoo.target_dir), "--prompts", str(prompt_file)]
    base += ["--max-new-tokens", "12", "--dtype", "float64", "--batch", "4", "--json"]
    plain = _json(capsys, [*base, "--gamma", "0"])
    spec = _json(capsys, [*base, "--gamma", "3", "--draft", str(zoo.partial_dir)])
    for key in (
        "tokens_per_s",
        "new_tokens",
        "steps",
        "mean_accepted_length",
        "acceptance_rate",
        "draft_ms",
        "verify_ms",
        "overhead_ms",
        "output_ids",
    ):
        assert key in spec, key
    assert spec["output_ids"] == plain["output_ids"]  # greedy: lossless
    assert spec["new_tokens"] == plain["new_tokens"] == 4 * 12
    assert plain["steps"] == 12 and plain["acceptance_rate"] is None
    assert 1.0 <= spec["mean_accepted_length"] <= 4.0


def test_generate_text_output_shows_the_decoded_text(zoo, capsys):
    argv = ["generate", "--target", str(zoo.target_dir), "--draft", str(zoo.target_dir)]
    argv += ["--gamma", "2", "--prompt", PROMPTS[0], "--max-new-tokens", "6", "--batch", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count(PROMPTS[0]) >= 2  # the prompt repeated to fill the batch, then decoded
    assert "tokens/s" in out and "acceptance rate       1.000" in out


def test_acceptance_writes_a_record(zoo, capsys, prompt_file, tmp_path):
    out = tmp_path / "rec.json"
    argv = ["acceptance", "--target", str(zoo.target_dir), "--draft", str(zoo.partial_dir)]
    argv += ["--prompts", str(prompt_file), "--gamma", "2", "--temperature", "1"]
    argv += [
        "--max-new-tokens",
        "10",
        "--limit",
        "3",
        "--bootstrap",
        "50",
        "--out",
        str(out),
        "--json",
    ]
    record = _json(capsys, argv)
    saved = json.loads(out.read_text())
    assert record["path"] == str(out)
    assert saved["n_prompts"] == 3 and saved["gamma"] == 2 and saved["temperature"] == 1.0
    assert saved["prompt_file"] == str(prompt_file)
    assert len(saved["position_acceptance"]) == 2 and len(saved["histogram"]) == 3


def test_bad_input_exits_2_and_writes_nothing(zoo, capsys, prompt_file, tmp_path):
    gen = ["generate", "--target", str(zoo.target_dir), "--prompt", "x", "--max-new-tokens", "2"]
    _fails(capsys, [*gen, "--gamma", "-1"], "gamma >= 0")
    _fails(capsys, [*gen, "--gamma", "2"], "--draft")
    _fails(
        capsys, [*gen, "--gamma", "2", "--draft", str(zoo.other_vocab_dir)], "share a vocabulary"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    _fails(capsys, [*gen, "--gamma", "2", "--draft", str(broken)], "could not be loaded")
    _fails(capsys, [*gen, "--gamma", "2", "--draft", str(tmp_path / "missing")], "no such folder")

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    out = tmp_path / "acc" / "rec.json"
    acc = ["acceptance", "--target", str(zoo.target_dir), "--gamma", "2", "--out", str(out)]
    _fails(capsys, [*acc, "--draft", str(zoo.partial_dir), "--prompts", str(empty)], "empty")
    _fails(
        capsys, [*acc, "--draft", str(broken), "--prompts", str(prompt_file)], "could not be loaded"
    )
    _fails(
        capsys,
        [*acc, "--draft", str(zoo.other_vocab_dir), "--prompts", str(prompt_file)],
        "share a vocabulary",
    )
    _fails(
        capsys,
        [*acc, "--draft", str(zoo.partial_dir), "--prompts", str(prompt_file), "--gamma", "0"],
        "gamma >= 1",
    )
    assert not out.parent.exists()


def test_a_draft_with_its_own_model_code_runs_only_when_asked(zoo, capsys, tmp_path):
    import shutil

    draft = tmp_path / "custom-draft"
    shutil.copytree(zoo.partial_dir, draft)
    config = json.loads((draft / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyConfig",
        "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
    }
    (draft / "config.json").write_text(json.dumps(config))
    (draft / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyConfig(LlamaConfig):\n    pass\n"
    )
    (draft / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tiny import TinyConfig\n\n\n"
        "class TinyForCausalLM(LlamaForCausalLM):\n    config_class = TinyConfig\n"
    )
    gen = ["generate", "--target", str(zoo.target_dir), "--draft", str(draft), "--gamma", "2",
           "--prompt", "def f", "--max-new-tokens", "4"]  # fmt: skip
    _fails(capsys, gen, "--trust-remote-code")
    plain = _json(capsys, [*gen[:3], "--gamma", "0", "--prompt", "def f", "--max-new-tokens", "4",
                           "--json"])  # fmt: skip
    spec = _json(capsys, [*gen, "--trust-remote-code", "--json"])
    assert spec["texts"] == plain["texts"]  # greedy speculative decoding is lossless


def test_a_model_class_without_sdpa_loads_with_eager_attention(zoo, capsys, tmp_path):
    # BLOOM has no SDPA attention in transformers: the CLI asked for it and could not load it
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    from profiler.loading import load_causal_lm

    torch.manual_seed(0)
    model = BloomForCausalLM(BloomConfig(hidden_size=64, n_layer=2, n_head=4, vocab_size=96))
    for name in ("target", "draft"):
        model.save_pretrained(tmp_path / name)
        zoo.tokenizer.save_pretrained(tmp_path / name)
    loaded = load_causal_lm(tmp_path / "target")
    assert loaded.config._attn_implementation == "eager"
    assert load_causal_lm(zoo.target_dir).config._attn_implementation == "sdpa"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def f(x):\nclass A:\n")
    base = ["generate", "--target", str(tmp_path / "target"), "--prompts", str(prompts),
            "--max-new-tokens", "6", "--batch", "2", "--json"]  # fmt: skip
    plain = _json(capsys, [*base, "--gamma", "0"])
    spec = _json(capsys, [*base, "--gamma", "3", "--draft", str(tmp_path / "draft")])
    assert spec["output_ids"] == plain["output_ids"] and spec["acceptance_rate"] == 1.0


def test_a_target_folder_without_a_tokenizer_is_refused_unless_one_is_named(zoo, capsys, tmp_path):
    # transformers 5 builds an empty tokenizer of the config's class in such a folder (five
    # tokens): every prompt encoded to nothing and the run went on
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(zoo.target_dir, bare)
    for f in bare.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "special_tokens", "merges")):
            f.unlink()
    gen = ["generate", "--target", str(bare), "--gamma", "0", "--prompt", "def f",
           "--max-new-tokens", "4"]  # fmt: skip
    _fails(capsys, gen, "has none; pass --tokenizer DIR")
    named = _json(capsys, [*gen, "--tokenizer", str(zoo.target_dir), "--json"])
    plain = _json(capsys, [*gen[:2], str(zoo.target_dir), *gen[3:], "--json"])
    assert named["texts"] == plain["texts"]


def test_validate_trains_with_the_targets_own_tokenizer(tmp_path):
    # the zoo's target holds the zoo's tokenizer: the default stays; another target's own one
    # is used for training and for the runs
    from explorer.commands.validate import _own_tokenizer
    from explorer.train_config import DEFAULT_TOKENIZER_DIR

    assert _own_tokenizer(DEFAULT_TOKENIZER_DIR.parent / "target") is None
    assert _own_tokenizer(tmp_path) is None  # no tokenizer.json
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "other": true}')
    assert _own_tokenizer(tmp_path) == tmp_path
