"""`specdec predict`: the JSON contract, the text table and exit code 2 on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from explorer.cli import main
from perfmodel import expected_tokens_per_step

BASE = ["predict", "--alpha", "0.8", "--gamma", "4", "--draft-ms", "2", "--target-ms", "20"]
KEYS = {
    "expected_tokens_per_step",
    "step_ms",
    "tokens_per_s",
    "baseline_tokens_per_s",
    "speedup",
    "optimal_gamma",
    "optimal_speedup",
    "draft_ms",
    "verify_ms",
    "overhead_ms",
    "acceptance_rate",
    "gamma",
    "batch",
}


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_json_keys_and_values(capsys):
    r = _json(capsys, BASE)
    assert KEYS <= set(r)
    tau = expected_tokens_per_step(0.8, 4)
    assert r["expected_tokens_per_step"] == pytest.approx(tau)
    assert r["step_ms"] == pytest.approx(28.0)
    assert r["verify_ms"] == 20.0  # no --verify-ms: the verification pass costs --target-ms
    assert r["tokens_per_s"] == pytest.approx(1000 * tau / 28.0)
    assert r["baseline_tokens_per_s"] == pytest.approx(50.0)
    assert r["speedup"] == pytest.approx(tau * 20 / 28)
    assert r["optimal_gamma"] == 6 and r["optimal_speedup"] >= r["speedup"]
    assert len(r["speedup_curve"]) == 17


def test_verify_overhead_batch(capsys):
    argv = BASE + ["--verify-ms", "25", "--overhead-ms", "1", "--batch", "4"]
    r = _json(capsys, argv)
    assert r["verify_ms"] == 25.0 and r["overhead_ms"] == 1.0 and r["step_ms"] == 34.0
    assert r["baseline_tokens_per_s"] == pytest.approx(4 * 1000 / 20)
    assert r["batch"] == 4


def test_position_acceptance(capsys):
    argv = ["predict", "--position-acceptance", "0.9,0.8,0.7,0.6", "--gamma", "3"]
    r = _json(capsys, argv + ["--draft-ms", "2", "--target-ms", "20"])
    assert r["expected_tokens_per_step"] == pytest.approx(1 + 0.9 + 0.72 + 0.504)
    assert r["acceptance_rate"] is None and r["position_acceptance"] == [0.9, 0.8, 0.7, 0.6]
    assert r["gamma_max"] == 4  # the curve stops where the vector does


def test_text_table(capsys):
    assert main(BASE) == 0
    out = capsys.readouterr().out
    for label in ("expected tokens per step", "tokens/s", "speedup", "best gamma"):
        assert label in out
    assert "2.401x" in out


BAD = [
    ("alpha>1", ["--alpha", "1.2", "--gamma", "4"]),
    ("alpha<0", ["--alpha", "-0.1", "--gamma", "4"]),
    ("gamma<0", ["--alpha", "0.5", "--gamma", "-1"]),
    ("vector short", ["--position-acceptance", "0.9,0.8", "--gamma", "4"]),
    ("vector >1", ["--position-acceptance", "0.9,1.8", "--gamma", "2"]),
    ("vector text", ["--position-acceptance", "0.9,x", "--gamma", "1"]),
    ("both", ["--alpha", "0.5", "--position-acceptance", "0.5", "--gamma", "1"]),
    ("neither", ["--gamma", "1"]),
]
LATENCY = ["--draft-ms", "2", "--target-ms", "20"]
BAD += [
    ("draft 0", ["--alpha", "0.5", "--gamma", "4", "--draft-ms", "0", "--target-ms", "20"]),
    ("target<0", ["--alpha", "0.5", "--gamma", "4", "--draft-ms", "2", "--target-ms", "-20"]),
    ("verify 0", ["--alpha", "0.5", "--gamma", "4", *LATENCY, "--verify-ms", "0"]),
    ("overhead<0", ["--alpha", "0.5", "--gamma", "4", *LATENCY, "--overhead-ms", "-1"]),
    ("batch 0", ["--alpha", "0.5", "--gamma", "4", *LATENCY, "--batch", "0"]),
]


@pytest.mark.parametrize("name,args", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_line(capsys, name, args):
    argv = ["predict", *args] + ([] if "--draft-ms" in args else LATENCY)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 2, argv
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1, captured.err


def test_console_script_subprocess():
    exe = shutil.which("specdec") or str(
        __import__("pathlib").Path(sys.executable).with_name("specdec")
    )
    ok = subprocess.run([exe, *BASE, "--json"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert KEYS <= set(json.loads(ok.stdout.strip().splitlines()[-1]))
    bad = subprocess.run(
        [exe, "predict", "--alpha", "2", "--gamma", "1", *LATENCY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "acceptance_rate" in bad.stderr


# --- latencies from models and a device profile (issue 3's wiring) -----------------------------

PROFILE_DIR = "data/profiles/cpu-xeon-2.5ghz-1c"


def test_models_and_device_profile_match_the_latency_model(capsys):
    import perfmodel

    code = main(
        [
            "predict",
            "--alpha",
            "0.6",
            "--gamma",
            "3",
            "--target",
            "llama-7b",
            "--draft",
            "llama-7b",
            "--draft-layers",
            "2",
            "--device-profile",
            PROFILE_DIR,
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = perfmodel.LatencyModel.from_profiles(PROFILE_DIR)
    target = perfmodel.get_preset("llama-7b")
    draft = target.replace(layers=2)
    expected = perfmodel.speculative_throughput(
        3,
        acceptance_rate=0.6,
        draft_ms=model.latency_fn(draft),
        target_ms=model.latency_fn(target),
        context=128,
    )
    assert out["step_ms"] == pytest.approx(float(expected["step_ms"]), rel=1e-9)
    assert out["verify_ms"] == pytest.approx(float(model.latency_fn(target)(1, 128, 4)), rel=1e-9)


def test_models_with_roofline_hardware(capsys):
    code = main(
        [
            "predict",
            "--alpha",
            "0.8",
            "--gamma",
            "4",
            "--target",
            "llama-65b",
            "--draft",
            "wide-sheared-llama-796m",
            "--hardware",
            "H200",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["speedup"] > 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--target", "llama-7b", "--draft", "nope", "--hardware", "H200"],
        ["--target", "llama-7b", "--hardware", "H200"],
        ["--target", "llama-7b", "--draft", "llama-7b", "--draft-ms", "2", "--hardware", "H200"],
        ["--target", "llama-7b", "--draft", "llama-7b"],
        ["--target", "llama-7b", "--draft", "llama-7b", "--device-profile", "/nonexistent"],
        ["--target", "llama-7b", "--draft", "llama-7b", "--draft-heads", "7", "--hardware", "H200"],
        ["--draft-ms", "2"],
    ],
)
def test_model_flags_bad_input_exit_2(argv, capsys):
    code = main(["predict", "--alpha", "0.5", "--gamma", "2", *argv])
    err = capsys.readouterr().err
    assert code == 2, argv
    assert len(err.strip().splitlines()) == 1, err


def test_llama_layout_configs_as_target_and_draft(capsys, tmp_path):
    # a Mistral target and a Qwen2 draft, each from its config.json alone
    from transformers import MistralConfig, Qwen2Config

    from perfmodel import ArchSpec, get_hardware, roofline

    MistralConfig(num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                  num_attention_heads=32, num_key_value_heads=8,
                  vocab_size=32768).save_pretrained(tmp_path / "target")  # fmt: skip
    Qwen2Config(num_hidden_layers=2, hidden_size=1024, intermediate_size=2816,
                num_attention_heads=16, num_key_value_heads=16,
                vocab_size=32768).save_pretrained(tmp_path / "draft")  # fmt: skip
    argv = ["predict", "--alpha", "0.8", "--gamma", "4", "--target", str(tmp_path / "target"),
            "--draft", str(tmp_path / "draft" / "config.json"), "--hardware", "H200"]  # fmt: skip
    out = _json(capsys, argv)
    draft = ArchSpec.from_hf_config(json.loads((tmp_path / "draft" / "config.json").read_text()))
    assert draft.qkv_bias and out["speedup"] > 1
    bound = roofline(draft, get_hardware("H200"), batch=1, context=0, query=1)["lower_bound_ms"]
    assert out["draft_ms"] >= bound > 0


def test_pythia_and_gpt2_configs_as_target_and_draft(capsys, tmp_path):
    # the usual Pythia pair (6.9b verified by 160m, config.json only) and a GPT-2 pair; with a
    # device profile the latency model predicts both models from its terms
    from transformers import GPT2Config, GPTNeoXConfig

    from perfmodel import ArchSpec

    GPTNeoXConfig(num_hidden_layers=32, hidden_size=4096, intermediate_size=16384,
                  num_attention_heads=32, vocab_size=50432,
                  rotary_pct=0.25).save_pretrained(tmp_path / "pythia-6.9b")  # fmt: skip
    GPTNeoXConfig(num_hidden_layers=12, hidden_size=768, intermediate_size=3072,
                  num_attention_heads=12, vocab_size=50304,
                  rotary_pct=0.25).save_pretrained(tmp_path / "pythia-160m")  # fmt: skip
    GPT2Config(n_layer=48, n_embd=1600, n_head=25).save_pretrained(tmp_path / "gpt2-xl")
    GPT2Config().save_pretrained(tmp_path / "gpt2")
    for target, draft in (("pythia-6.9b", "pythia-160m"), ("gpt2-xl", "gpt2")):
        spec = ArchSpec.from_hf_config(json.loads((tmp_path / target / "config.json").read_text()))
        assert spec.family == "opt"
        argv = ["predict", "--alpha", "0.7", "--gamma", "4", "--target", str(tmp_path / target),
                "--draft", str(tmp_path / draft)]  # fmt: skip
        roof = _json(capsys, argv + ["--hardware", "H200"])
        fitted = _json(capsys, argv + ["--device-profile", PROFILE_DIR])
        for out in (roof, fitted):
            assert 0 < out["draft_ms"] < out["verify_ms"] and out["speedup"] > 0, (target, out)
        assert fitted["verify_ms"] > 10 * roof["verify_ms"]  # a CPU, not an H200


def test_a_profiled_model_with_its_own_head_width_predicts_from_its_own_table(capsys, tmp_path):
    # Qwen3-style heads (64 wide at hidden 128 and 4 heads): `specdec profile` on this CPU, then
    # `specdec predict` from that folder alone (once "no profile rows": the folder's only model
    # was left out); the target's pass is the depth fit of its own measured rows
    import pandas as pd
    from transformers import Qwen3Config

    Qwen3Config(hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                vocab_size=1000).save_pretrained(tmp_path / "qwen3")  # fmt: skip
    folder = tmp_path / "profiles"
    assert main(["profile", "--model", str(tmp_path / "qwen3"), "--device", "cpu", "--batch", "1",
                 "--context", "16", "--query", "1,3", "--out", str(folder)]) == 0  # fmt: skip
    capsys.readouterr()
    out = _json(capsys, ["predict", "--alpha", "0.7", "--gamma", "2", "--target",
                         str(tmp_path / "qwen3"), "--draft", str(tmp_path / "qwen3"),
                         "--draft-layers", "1", "--device-profile", str(folder),
                         "--context", "16"])  # fmt: skip
    fit = pd.read_csv(folder / "qwen3.fit.csv")
    one = fit[(fit["batch"] == 1) & (fit["query"] == 1)].iloc[0]
    assert set(fit["head_dim"]) == {64}
    target_ms = 1000.0 / out["baseline_tokens_per_s"]
    assert target_ms == pytest.approx(one["t_fixed_ms"] + 4 * one["t_layer_ms"], rel=0.02)
    assert out["draft_ms"] == pytest.approx(2 * (one["t_fixed_ms"] + one["t_layer_ms"]), rel=0.02)
    assert "notes" not in out  # every pass inside what was profiled
    # at the default context (128) both passes are extrapolated from n = 16: said so
    out = _json(capsys, ["predict", "--alpha", "0.7", "--gamma", "2", "--target",
                         str(tmp_path / "qwen3"), "--draft", str(tmp_path / "qwen3"),
                         "--draft-layers", "1", "--device-profile", str(folder)])  # fmt: skip
    assert [n.split(":")[0] for n in out["notes"]] == [
        "the target's context 128 is outside its profiled context 16..16",
        "the draft's context 128 is outside its profiled context 16..16",
    ]


def test_a_draft_of_another_vocabulary_is_noted(capsys, tmp_path):
    from transformers import Gemma2Config

    Gemma2Config(num_hidden_layers=2, hidden_size=256, intermediate_size=512,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                 vocab_size=256000).save_pretrained(tmp_path / "gemma2")  # fmt: skip
    argv = ["predict", "--alpha", "0.7", "--gamma", "4", "--target", "llama-7b", "--draft",
            str(tmp_path / "gemma2"), "--hardware", "H200"]  # fmt: skip
    out = _json(capsys, argv)
    assert (
        len(out["notes"]) == 1
        and "vocabulary size (256000) is not the target's (32000)" in out["notes"][0]
    )
    assert main(argv) == 0
    assert "  note: the draft's vocabulary" in capsys.readouterr().out


def test_a_mixture_of_experts_target(capsys, tmp_path):
    # Qwen3-30B-A3B's shape: 128 experts, 8 per token; the roofline reads the experts a pass
    # touches, so verifying 5 tokens reads ~4.4x the experts one token does
    from transformers import Qwen3MoeConfig

    Qwen3MoeConfig(num_hidden_layers=48, hidden_size=2048, intermediate_size=6144,
                   moe_intermediate_size=768, num_attention_heads=32, num_key_value_heads=4,
                   head_dim=128, vocab_size=151936, num_experts=128,
                   num_experts_per_tok=8).save_pretrained(tmp_path / "moe")  # fmt: skip
    argv = ["predict", "--alpha", "0.7", "--gamma", "4", "--target", str(tmp_path / "moe"),
            "--draft", str(tmp_path / "moe"), "--draft-layers", "2", "--draft-hidden", "1024",
            "--draft-heads", "8"]  # fmt: skip
    out = _json(capsys, [*argv, "--hardware", "H200"])
    target_ms = 1000.0 / out["baseline_tokens_per_s"]
    assert out["verify_ms"] > 2 * target_ms  # a dense target's verify of 5 tokens costs ~1x
    code = main([*argv, "--device-profile", PROFILE_DIR])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no mixture-of-experts terms" in err


def test_draft_heads_alone_keep_the_key_value_grouping(capsys):
    # llama-7b's 32/32 heads with --draft-heads 16 were refused (16 heads, 32 key/value heads);
    # they give 16/16, as `specdec profile --heads` does (profiler.build.keep_kv_group)
    from perfmodel import get_preset
    from profiler.build import keep_kv_group

    out = _json(capsys, ["predict", "--alpha", "0.7", "--gamma", "2", "--target", "llama-7b",
                         "--draft", "llama-7b", "--draft-layers", "2", "--draft-heads", "16",
                         "--hardware", "H200"])  # fmt: skip
    assert out["speedup"] > 0
    assert keep_kv_group(get_preset("llama-7b"), {"heads": 16}) == {"heads": 16, "kv_heads": 16}
    assert keep_kv_group(get_preset("llama-2-70b"), {"heads": 16}) == {"heads": 16, "kv_heads": 2}
    assert keep_kv_group(get_preset("llama-2-70b"), {"heads": 12}) == {"heads": 12, "kv_heads": 12}
    assert keep_kv_group(get_preset("llama-2-70b"), {"heads": 16, "kv_heads": 4})["kv_heads"] == 4
