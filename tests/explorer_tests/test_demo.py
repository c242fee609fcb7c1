"""`specdec demo`: profile, search, validate and report, end to end.

The default run uses a stand-in zoo made in the fixture (a target trained for a few steps, the
zoo's tokenizer, the synthetic drafts table) and a budget smaller than ``--quick``; the real
``specdec demo --quick`` on the shipped zoo is marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from explorer.commands.demo import format_text
from tests.explorer_tests import synthetic as syn

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "data" / "zoo"
SECTIONS = {"demo", "landscape", "latency", "search", "validation", "zoo"}


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    # One thread: on a 2-core machine shared with other jobs, two OpenMP threads stall on each
    # other (see benchmarks/cpu_profile.sh); it also matches the committed CPU profile.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, check=False
    )


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    """A zoo folder: a random 2-layer target, the real tokenizer, the synthetic drafts table.

    The target is not trained: the demo only needs a model folder to profile, distil from and
    run (acceptance is then low, which the demo reports as measured).
    """
    if not (ZOO / "tokenizer").is_dir():
        pytest.skip("data/zoo/tokenizer is not there")
    from explorer.train import TrainConfig, build_model, load_tokenizer

    zoo = tmp_path_factory.mktemp("zoo")
    shutil.copytree(ZOO / "tokenizer", zoo / "tokenizer")
    tokenizer = load_tokenizer(zoo / "tokenizer")
    config = TrainConfig(out_dir=zoo / "target", tokens=1, layers=2, hidden=64, heads=1)
    model = build_model(config, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(zoo / "target")
    tokenizer.save_pretrained(zoo / "target")
    syn.zoo_frame().to_csv(zoo / "drafts.csv", index=False)
    return zoo


def test_demo_end_to_end_on_a_tiny_zoo(tiny_zoo, tmp_path):
    out = tmp_path / "demo"
    script = textwrap.dedent(
        f"""
        import json, dataclasses
        from explorer.demo import QUICK, run_demo
        tiny = dataclasses.replace(
            QUICK, name="tiny", trials=8, train_tokens=1024, seq_len=64, eval_windows=2,
            prompts=1, new_tokens=8, context=64, profile_repeats=1, profile_queries=(1, 2),
            draft_widths=(64, 128), depth_max=2, gamma_max=3,
        )
        result = run_demo(zoo={str(tiny_zoo)!r}, out={str(out)!r}, budget=tiny, progress=False)
        print(json.dumps(result, default=str))
        """
    )
    proc = _run([sys.executable, "-c", script], timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["report_sections"]) == SECTIONS
    assert all(v == "ok" for v in result["report_sections"].values()), result["report_sections"]
    summary = result["summary"]
    for key in ("predicted_tokens_per_s", "measured_tokens_per_s", "measured_speedup"):
        assert summary[key] is not None and summary[key] > 0, (key, summary)
    assert 0.0 <= summary["measured_acceptance_rate"] <= 1.0
    assert 1 <= summary["gamma"] <= 3
    assert set(result["stage_seconds"]) == {"profile", "search", "validate", "report"}
    report = Path(result["report"])
    text = report.read_text(encoding="utf-8")
    assert '<section id="demo">' in text and 'src="http' not in text
    # the measured side is over the steps without the prompt pass; both are shown
    row = result["validate"]["row"]
    assert row["measured_steps"] == "steady" and row["run_prompt_steps"] == 1  # one prompt
    assert row["measured_tokens_per_s_with_prompt"] > 0
    assert "with those steps the speculative run made" in text
    printed = format_text(result)
    assert "with each prompt's first step" in printed and "–" not in printed
    assert (out / "validation.csv").is_file() and (out / "demo.db").is_file()


def test_demo_without_a_zoo_exits_2(tmp_path):
    proc = _run(
        [sys.executable, "-m", "explorer.cli", "demo", "--quick", "--zoo", str(tmp_path / "none"),
         "--out", str(tmp_path / "out")],
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "zoo is incomplete" in lines[0], proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    not (ZOO / "target" / "config.json").is_file() or not (ZOO / "drafts.csv").is_file(),
    reason="the shipped zoo (data/zoo/target, data/zoo/drafts.csv) is not built",
)
def test_specdec_demo_quick_on_the_shipped_zoo(tmp_path):
    proc = _run(
        [sys.executable, "-m", "explorer.cli", "demo", "--quick", "--out", str(tmp_path), "--json",
         "--no-progress"],
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(v == "ok" for v in result["report_sections"].values()), result["report_sections"]
    assert Path(result["report"]).is_file()
    assert result["total_seconds"] < 300


def test_full_demo_distils_on_the_shipped_drafts_budget():
    # The acceptance model is fitted to data/zoo/drafts.csv; the demo's draft must be trained on
    # the same token budget, or α is predicted outside the range the model was fitted on.
    import pandas as pd

    from explorer.demo import FULL
    from explorer.report import REPO_ROOT

    drafts = pd.read_csv(REPO_ROOT / "data" / "zoo" / "drafts.csv")
    assert set(drafts["training_tokens"]) == {FULL.train_tokens}
