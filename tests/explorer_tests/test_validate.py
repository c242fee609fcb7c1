"""`specdec validate` end to end on a tiny zoo: train, run, compare, write back (CPU, seconds)."""

from __future__ import annotations

import json

import optuna
import pytest

pytest.importorskip("torch")

from explorer.cli import main  # noqa: E402
from explorer.corpus import CorpusSplit, train_tokenizer  # noqa: E402
from explorer.objective import Objective, RooflineLatency, SearchProblem  # noqa: E402
from explorer.search import (
    _complete_count,
    open_storage,
    resolve_target,
    run_search,
    trials_frame,
)  # noqa: E402
from explorer.space import SearchSpace  # noqa: E402
from explorer.train import TrainConfig, train_model  # noqa: E402
from explorer.validate import ValidationPlan, summarize, validate_study, write_validation  # noqa: E402
from perfmodel.acceptance_model import FixedAcceptance  # noqa: E402
from perfmodel.hardware import get_hardware  # noqa: E402

from .test_train import TEMPLATE, _names  # noqa: E402


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    corpus = root / "corpus"
    corpus.mkdir()
    for i, name in enumerate(_names(12, 2)):
        (corpus / name).write_text(TEMPLATE.format(i=i) * 3)
    tokenizer = train_tokenizer(CorpusSplit(corpus), vocab_size=300, out_dir=root / "tokenizer")
    common = dict(
        corpus=corpus, tokenizer_dir=tokenizer, cache_dir=root / "cache", seq_len=32, batch_size=4
    )
    target_dir = root / "target"
    train_model(
        TrainConfig(
            out_dir=target_dir,
            tokens=4 * 32 * 6,
            layers=2,
            hidden=64,
            heads=2,
            lr=1e-2,
            eval_windows=2,
            **common,
        ),
        progress=False,
    )
    prompts = root / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"def add_{i}(a, b):\n"}) + "\n" for i in range(4))
    )
    target = resolve_target(str(target_dir))
    latency = RooflineLatency(get_hardware("H200"))
    problem = SearchProblem(
        target=target,
        target_latency=latency(target),
        draft_latency=latency,
        acceptance=FixedAcceptance(acceptance_rate=0.6),
        context=8,
    )
    space = SearchSpace.for_target(
        target, depth_max=1, hidden_max=64, gamma_min=2, gamma_max=2, ffn_multipliers=(2.0,)
    )
    storage = f"sqlite:///{root / 'study.db'}"
    settings = {
        "target": str(target_dir),
        "mode": "single",
        "space": space.to_dict(),
        "batch": 1,
        "context": 8,
        "cost": "params",
        "acceptance": {"kind": "fixed", "acceptance_rate": 0.6},
        "latency": {"kind": "roofline", "hardware": "H200"},
        "training_tokens": 128,
    }
    study = run_search(
        Objective(problem, space),
        study_name="tiny",
        n_trials=3,
        storage=storage,
        settings=settings,
        progress=False,
    )
    plan = dict(
        token_budget=128,
        target_dir=target_dir,
        prompts=prompts,
        first_prompt=1,
        n_prompts=2,
        max_new_tokens=6,
        eval_windows=1,
        **common,
    )
    return {"root": root, "study": study, "storage": storage, "plan": plan}


def test_tiny_validate_writes_table_and_truth(tiny_study):
    study = tiny_study["study"]
    before = _complete_count(study)
    plan = ValidationPlan(out_dir=tiny_study["root"] / "out", **tiny_study["plan"])
    table = validate_study(study, plan=plan, top=1)
    assert len(table) == 1
    row = table.iloc[0]
    for col in ("predicted_acceptance_rate", "measured_acceptance_rate", "predicted_draft_pass_ms", "measured_draft_pass_ms",
                "predicted_tokens_per_s", "predicted_tokens_per_s_measured_alpha", "measured_tokens_per_s",
                "predicted_speedup", "measured_speedup", "tokens_per_s_rel_error", "acceptance_abs_error"):  # fmt: skip
        assert col in table.columns, col
    assert 0.0 <= row["measured_acceptance_rate"] <= 1.0
    assert row["measured_tokens_per_s"] > 0 and row["measured_draft_pass_ms"] > 0
    assert row["predicted_acceptance_rate"] == pytest.approx(0.6)
    # the verification pass over q = γ + 1 tokens, predicted beside the measured one
    assert row["predicted_verify_ms"] >= row["predicted_target_ms"] > 0
    assert row["verify_ms_rel_error"] == pytest.approx(
        row["predicted_verify_ms"] / row["measured_verify_ms"] - 1.0
    )
    summary = summarize(table)
    assert summary["median_abs_rel_error_verify_ms"] == pytest.approx(
        abs(row["verify_ms_rel_error"])
    )
    paths = write_validation(table, plan.out_dir, summary=summary)
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["drafts"] == 1 and data["rows"][0]["trial"] == int(row["trial"])
    assert paths["csv"].read_text().startswith("trial,draft,")
    # the truth is in the study, next to the prediction, and copies are not search trials
    study = optuna.load_study(
        study_name="tiny", storage=open_storage(tiny_study["storage"], study_name="tiny")
    )
    assert f"validation:{int(row['trial'])}" in study.user_attrs
    copies = [
        t for t in study.get_trials() if t.user_attrs.get("validation_of") == int(row["trial"])
    ]
    assert (
        len(copies) == 1
        and copies[0].user_attrs["measured_acceptance_rate"] == row["measured_acceptance_rate"]
    )
    assert "tokens_per_s" in copies[0].user_attrs
    assert _complete_count(study) == before
    frame = trials_frame(study)
    assert frame.loc[frame["number"] == int(row["trial"]), "measured_tokens_per_s"].notna().all()


def test_validate_cli(tiny_study, capsys):
    p = tiny_study["plan"]
    out = tiny_study["root"] / "cli"
    argv = ["validate", "--study", "tiny", "--storage", tiny_study["storage"], "--top", "1", "--token-budget", "128",
            "--out", str(out), "--prompts", str(p["prompts"]), "--first-prompt", "2", "--n-prompts", "1",
            "--max-new-tokens", "4", "--no-write-back", "--json"]  # fmt: skip
    argv += ["--corpus", str(p["corpus"]), "--tokenizer", str(p["tokenizer_dir"]), "--cache-dir", str(p["cache_dir"]),
             "--seq-len", "32", "--batch-size", "4", "--eval-windows", "1"]  # fmt: skip
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["summary"]["drafts"] == 1 and (out / "validation.csv").is_file()


def test_validate_bad_input(tiny_study, capsys, tmp_path):
    code = main(["validate", "--study", "nope", "--storage", tiny_study["storage"], "--top", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "does not" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="token_budget"):
        ValidationPlan(
            token_budget=0, out_dir=tmp_path, target_dir=tiny_study["plan"]["target_dir"]
        )


def test_validate_creates_no_storage_for_a_missing_study(tmp_path, capsys):
    # a study that is not there is bad input: nothing is written, not even an empty database
    absolute = tmp_path / "elsewhere"  # as a name it would have put runs/<name>.db here
    cases = [
        (["--study", "x", "--storage", f"sqlite:///{tmp_path / 'missing.db'}"], "does not exist"),
        (["--study", "x", "--storage", str(tmp_path / "missing.log")], "does not exist"),
        (["--study", str(absolute)], "study name matches"),
        (["--study", ".."], "study name matches"),
    ]
    for extra, match in cases:
        code = main(["validate", *extra, "--top", "1"])
        err = capsys.readouterr().err
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert list(tmp_path.iterdir()) == []


def test_drafts_are_trained_in_the_targets_layout(tmp_path, monkeypatch):
    # the search proposes drafts of the target's layout (DraftConfig.arch); validate trained
    # each as a Llama whatever the target, so its measured draft was not the searched one
    from transformers import Qwen2Config

    import explorer.train
    from explorer.space import DraftConfig
    from explorer.validate_plan import REPO_ROOT, ValidationPlan
    from explorer.validate_run import _train

    Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=300).save_pretrained(tmp_path / "qwen2")  # fmt: skip
    seen = []
    monkeypatch.setattr(explorer.train, "train_model", lambda cfg, **_: seen.append(cfg))
    draft = DraftConfig(depth=1, hidden=64, ffn=128, heads=2, kv_heads=1, gamma=2)
    zoo = REPO_ROOT / "data" / "zoo" / "target"
    for target in (tmp_path / "qwen2", zoo):
        _train(ValidationPlan(token_budget=64, out_dir=tmp_path / "v", target_dir=target), draft)
    assert [c.layout_from for c in seen] == [tmp_path / "qwen2", None]  # the zoo's: plain Llama
