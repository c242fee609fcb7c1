"""Acceptance model: recovery of a known α(shape) from synthetic drafts, intervals, sources."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from perfmodel.acceptance_model import (
    AcceptanceModel,
    FixedAcceptance,
    acceptance_from_file,
    load_acceptance_table,
)

VOCAB = 8000


def _true_alpha(params, tokens, distilled):
    # A known, smooth, monotone law: α rises with log size, log tokens and distillation.
    z = -4.0 + 0.35 * np.log(params) + 0.15 * np.log(np.asarray(tokens) / 1e6) + 0.4 * distilled
    return 1.0 / (1.0 + np.exp(-z))


def _shapes(rng, n, hiddens):
    depth = rng.integers(1, 9, n)
    hidden = rng.choice(hiddens, n)
    tokens = rng.choice([1e6, 4e6, 1.6e7], n)
    distilled = rng.integers(0, 2, n).astype(bool)
    params = 12 * depth * hidden**2 + 2 * VOCAB * hidden
    return dict(
        depth=depth, hidden=hidden, params=params, training_tokens=tokens, distilled=distilled
    )


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    shapes = _shapes(rng, 20, [64, 128, 256, 512])
    alpha = _true_alpha(shapes["params"], shapes["training_tokens"], shapes["distilled"])
    table = pd.DataFrame(
        {**shapes, "acceptance_rate": np.clip(alpha + rng.normal(0, 0.01, 20), 0, 1)}
    )
    return table, AcceptanceModel.fit(table, level=0.9)


def test_recovers_known_function_on_unseen_shapes(synthetic):
    _, model = synthetic
    rng = np.random.default_rng(1)
    # hidden sizes never trained
    new = _shapes(rng, 60, [96, 192, 384])
    truth = _true_alpha(new["params"], new["training_tokens"], new["distilled"])
    pred = model.predict(**new)
    err = np.abs(pred.acceptance_rate - truth)
    assert np.median(err) < 0.015, f"median |error|={np.median(err):.4f}"
    assert err.max() < 0.05, f"max |error|={err.max():.4f}"
    coverage = ((pred.lower <= truth) & (truth <= pred.upper)).mean()
    assert coverage >= 0.75, f"90% interval covered {coverage:.2f} of unseen truths"
    assert (pred.lower < pred.acceptance_rate).all() and (pred.acceptance_rate < pred.upper).all()


def test_interval_widens_far_from_data(synthetic):
    _, model = synthetic
    _, near_sd = model.predict_logit(
        params=12 * 4 * 256**2 + 2 * VOCAB * 256,
        depth=4,
        hidden=256,
        training_tokens=4e6,
        distilled=True,
    )
    _, far_sd = model.predict_logit(
        params=12 * 32 * 4096**2, depth=32, hidden=4096, training_tokens=1e10, distilled=True
    )
    # compared on the logit scale: the logistic squeezes any interval near α = 1
    assert far_sd[0] > 2 * near_sd[0], f"{far_sd=} {near_sd=}"


def test_leave_one_out_report(synthetic):
    _, model = synthetic
    report = model.leave_one_out(restarts=1)
    assert len(report.table) == model.table["draft"].nunique()
    assert report.median_abs_error < 0.02, report.to_dict()
    assert 0.0 <= report.coverage <= 1.0
    assert set(report.to_dict()) >= {"median_abs_error", "coverage", "drafts"}


def test_position_acceptance_follows_measured_profile():
    rng = np.random.default_rng(2)
    shapes = _shapes(rng, 8, [64, 128, 256])
    alpha = _true_alpha(shapes["params"], shapes["training_tokens"], shapes["distilled"])
    # α_i decays with position by a fixed logit offset
    offsets = np.array([0.3, 0.0, -0.3])
    logit = np.log(alpha / (1 - alpha))
    pos = [list(1 / (1 + np.exp(-(lg + offsets)))) for lg in logit]
    table = pd.DataFrame({**shapes, "acceptance_rate": alpha, "position_acceptance": pos})
    model = AcceptanceModel.fit(table)
    p = model.predict(**{k: v[:1] for k, v in shapes.items()})
    assert p.position_acceptance.shape == (1, 3)
    assert p.position_acceptance[0, 0] > p.acceptance_rate[0] > p.position_acceptance[0, 2]


def test_fixed_and_file_sources(tmp_path):
    fixed = FixedAcceptance(acceptance_rate=0.7)
    p = fixed.predict(params=np.ones(3), depth=np.ones(3))
    assert p.acceptance_rate.tolist() == [0.7] * 3 and p.source == "fixed"
    pos = FixedAcceptance(position_acceptance=(0.9, 0.8))
    assert pos.acceptance_rate == pytest.approx((0.9 * 0.8) ** 0.5)
    f = tmp_path / "acc.json"
    f.write_text(
        json.dumps(
            {"gamma": 4, "result": {"acceptance_rate": 0.65, "position_acceptance": [0.7, 0.6]}}
        )
    )
    src = acceptance_from_file(f)
    assert src.acceptance_rate == 0.65 and src.position_acceptance == (0.7, 0.6)
    assert src.source == str(f)


def test_table_aliases_and_tau_conversion(tmp_path):
    csv = tmp_path / "drafts.csv"
    pd.DataFrame(
        {
            "name": ["a", "b", "c"],
            "layers": [1, 2, 4],
            "hidden_size": [64, 64, 128],
            "param_count": [1e5, 2e5, 8e5],
            "tokens": [1e6] * 3,
            "distilled": ["true", "false", "1"],
            "tau": [2.0, 2.5, 3.0],
            "gamma": [4, 4, 4],
        }
    ).to_csv(csv, index=False)
    df = load_acceptance_table(csv)
    assert list(df["draft"]) == ["a", "b", "c"]
    assert list(df["distilled"]) == [True, False, True]
    assert df["acceptance_rate"].between(0, 1).all()
    assert df["acceptance_rate"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"acceptance_rate": [0.5, 1.5, 0.5]}, "0 <= acceptance_rate <= 1"),
        ({"params": [0, 1e5, 1e5]}, "params > 0"),
    ],
)
def test_bad_tables(change, match):
    base = {
        "depth": [1, 2, 3],
        "hidden": [64] * 3,
        "params": [1e5, 2e5, 3e5],
        "training_tokens": [1e6] * 3,
        "acceptance_rate": [0.4, 0.5, 0.6],
    }
    with pytest.raises(ValueError, match=match):
        load_acceptance_table(pd.DataFrame({**base, **change}))


def test_too_few_drafts_and_bad_alpha():
    t = pd.DataFrame(
        {
            "depth": [1, 2],
            "hidden": [64, 64],
            "params": [1e5, 2e5],
            "training_tokens": [1e6] * 2,
            "acceptance_rate": [0.4, 0.5],
        }
    )
    with pytest.raises(ValueError, match="at least 3 measured drafts"):
        AcceptanceModel.fit(t)
    with pytest.raises(ValueError, match="0 <= acceptance_rate <= 1"):
        FixedAcceptance(acceptance_rate=1.2)
