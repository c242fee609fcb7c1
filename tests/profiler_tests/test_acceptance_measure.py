"""Acceptance records: estimators from the engine's trace, bootstrap intervals, file naming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfmodel.acceptance import expected_tokens_per_step_positional
from profiler.acceptance import (
    SCHEMA,
    acceptance_record,
    bootstrap_intervals,
    default_output_path,
    write_acceptance_record,
)
from profiler.engine import GenerationResult, speculative_generate
from profiler.sampling import SamplingConfig
from tests.profiler_tests.tiny_models import tiny_zoo


@pytest.fixture(scope="module")
def measured():
    zoo = tiny_zoo()
    ids = zoo.prompt_ids()
    runs = [
        speculative_generate(
            zoo.target,
            zoo.partial,
            ids[i : i + 2],
            gamma=3,
            max_new_tokens=20,
            sampling=SamplingConfig(temperature=1.0),
            seed=i,
        )
        for i in (0, 2)
    ]
    return zoo, GenerationResult.concat(runs)


def test_record_holds_the_schema_and_agrees_with_perfmodel(measured, tmp_path):
    zoo, result = measured
    record = acceptance_record(
        result,
        target=zoo.target_dir,
        draft=zoo.partial_dir,
        prompt_file="prompts.jsonl",
        max_new_tokens=20,
        seed=0,
        dtype="float64",
        n_resamples=200,
    )
    assert record["schema"] == SCHEMA
    for key in (
        "gamma",
        "acceptance_rate",
        "position_acceptance",
        "mean_accepted_length",
        "histogram",
        "intervals",
        "n_steps",
        "n_prompts",
        "temperature",
        "prompt_file",
    ):
        assert key in record, key
    assert record["n_prompts"] == 4 and record["gamma"] == 3
    assert sum(record["histogram"]) == record["n_steps"] == result.accepted_counts.size
    # perfmodel can use the record directly: E[τ] from α_i is the measured τ
    tau = expected_tokens_per_step_positional(record["position_acceptance"], record["gamma"])
    assert tau == pytest.approx(record["mean_accepted_length"], rel=1e-12)
    lo, hi = record["intervals"]["acceptance_rate"]
    assert lo <= record["acceptance_rate"] <= hi
    lo, hi = record["intervals"]["mean_accepted_length"]
    assert lo <= record["mean_accepted_length"] <= hi
    path = write_acceptance_record(tmp_path / "a" / "rec.json", record)
    assert json.loads(path.read_text()) == record
    assert not list(path.parent.glob(".*tmp"))


def test_merged_batches_keep_rows_apart(measured):
    _, result = measured
    by_row = result.accepted_by_row()
    assert len(by_row) == 4 and all(by_row)
    assert sorted(k for row in by_row for k in row) == sorted(result.accepted_counts.tolist())


def test_bootstrap_is_degenerate_for_identical_prompts():
    iv = bootstrap_intervals([[2, 2, 1]] * 5, gamma=2, n_resamples=50)
    assert iv["acceptance_rate"] == [pytest.approx(5 / 6)] * 2
    assert iv["mean_accepted_length"] == [pytest.approx(8 / 3)] * 2
    assert iv["position_acceptance"][1] == [pytest.approx(2 / 3)] * 2


def test_bootstrap_interval_covers_a_known_rate():
    rng = np.random.default_rng(0)
    alpha, gamma = 0.6, 4
    prompts = []
    for _ in range(60):
        ok = rng.random((30, gamma)) < alpha
        prompts.append(np.cumprod(ok, axis=1).sum(axis=1).tolist())
    iv = bootstrap_intervals(prompts, gamma=gamma, n_resamples=400, seed=1)
    lo, hi = iv["acceptance_rate"]
    assert lo < alpha < hi and hi - lo < 0.1


def test_bad_bootstrap_arguments():
    with pytest.raises(ValueError, match="gamma >= 1"):
        bootstrap_intervals([[0]], gamma=0)
    with pytest.raises(ValueError, match="at least one step"):
        bootstrap_intervals([[]], gamma=2)


def test_default_output_path_names_the_pair(tmp_path):
    path = default_output_path(
        target=tmp_path / "target", draft=tmp_path / "d1-h384/", gamma=4, temperature=0.0
    )
    assert path.as_posix() == "data/acceptance/target__d1-h384__g4__t0.json"
    path = default_output_path(target="t", draft="d", gamma=2, temperature=0.7, root=tmp_path)
    assert path == tmp_path / "t__d__g2__t0.7.json"
