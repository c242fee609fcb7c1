"""Data steps of explorer.figures: the numbers each figure draws, checked against perfmodel."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from explorer.figures import landscape as fl
from explorer.figures import search as fs
from perfmodel import get_hardware, get_preset, speculative_throughput

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- landscape ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_landscape() -> fl.SpeedupLandscapeInfo:
    return fl.get_speedup_landscape_info(
        acceptance_rates=np.linspace(0.0, 1.0, 11),
        latency_ratios=[0.01, 0.05, 0.2, 0.5],
        gamma_max=8,
        overhead_ratios=(0.0, 0.1),
    )


def test_landscape_reduces_to_leviathan_at_batch_one_without_overhead(small_landscape):
    info = small_landscape
    got = info.speedup[0, 0]  # (C, A, G)
    np.testing.assert_allclose(got, info.leviathan_factor, rtol=1e-12, atol=1e-12)


def test_landscape_matches_perfmodel_with_overhead(small_landscape):
    info = small_landscape
    for ic, c in enumerate(info.latency_ratio):
        for ia in (3, 8):
            a = info.acceptance_rate[ia]
            want = speculative_throughput(
                np.arange(9), acceptance_rate=a, draft_ms=c, target_ms=1.0, overhead_ms=0.1
            )["speedup"]
            np.testing.assert_allclose(
                info.speedup[0, 1, ic, ia], want, rtol=1e-12, err_msg=f"alpha={a}, c={c}"
            )


def test_optimal_gamma_is_the_argmax_and_never_below_one(small_landscape):
    info = small_landscape
    np.testing.assert_array_equal(info.optimal_speedup, info.speedup.max(axis=-1))
    assert (info.optimal_speedup >= 1.0).all()
    picked = np.take_along_axis(info.speedup, info.optimal_gamma[..., None], -1)[..., 0]
    np.testing.assert_array_equal(picked, info.optimal_speedup)
    # alpha = 0: nothing is ever accepted, so plain decoding (gamma = 0) is optimal.
    assert (info.optimal_gamma[..., 0] == 0).all()


def test_overhead_never_helps(small_landscape):
    s = small_landscape.speedup
    assert (s[0, 1] <= s[0, 0] + 1e-12).all()


def test_break_even_gamma_one_is_alpha_equals_c(small_landscape):
    # Leviathan et al., Corollary 3.9: with v = 1 and no overhead, gamma = 1 pays iff alpha > c.
    info = small_landscape
    j = int(np.flatnonzero(info.break_even_gamma == 1)[0])
    np.testing.assert_allclose(info.break_even_alpha[0, 0, j], info.latency_ratio, rtol=1e-9)


@pytest.mark.parametrize("io", [0, 1])
def test_speedup_is_one_at_the_break_even_alpha(small_landscape, io):
    info = small_landscape
    o = info.overhead_ratio[io]
    for j, g in enumerate(info.break_even_gamma):
        for ic, c in enumerate(info.latency_ratio):
            a = info.break_even_alpha[0, io, j, ic]
            if math.isnan(a) or a == 0.0:
                continue
            s = speculative_throughput(
                int(g), acceptance_rate=a, draft_ms=c, target_ms=1.0, overhead_ms=o
            )["speedup"]
            assert s == pytest.approx(1.0, abs=1e-6), f"gamma={g}, c={c}, overhead={o}"


def test_min_break_even_is_below_every_gamma(small_landscape):
    info = small_landscape
    per_gamma = info.break_even_alpha  # (B, O, K, C)
    low = info.min_break_even_alpha[:, :, None, :]
    ok = np.isnan(per_gamma) | (low <= per_gamma + 1e-12)
    assert ok.all()


def test_batch_makes_verification_cost_more_with_a_compute_bound_latency():
    latency = fl.RooflineLatency(get_preset("llama-65b"), get_hardware("H200"))
    info = fl.get_speedup_landscape_info(
        acceptance_rates=[0.6, 0.8, 0.9],
        latency_ratios=[0.02, 0.1],
        gamma_max=8,
        batches=(1, 256),
        target_latency=latency,
        context=512,
    )
    assert info.verify_ratio[0, 1:] == pytest.approx(1.0, abs=1e-3)  # memory-bound at b = 1
    assert (np.diff(info.verify_ratio[1]) >= 0).all()
    assert info.verify_ratio[1, -1] > 2.5  # compute-bound at b = 256: 9 tokens cost ~3 passes
    assert (info.optimal_speedup[1] <= info.optimal_speedup[0] + 1e-12).all()
    assert (info.optimal_gamma[1] <= info.optimal_gamma[0]).all()


def test_roofline_latency_reproduces_the_roofline_doctest():
    f = fl.RooflineLatency(get_preset("llama-65b"), get_hardware("H200"))
    assert float(f(1, 0, 1)) == pytest.approx(27.09, abs=0.01)
    assert "H200" in f.describe()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batches": (1, 8)}, "target_latency"),
        ({"acceptance_rates": []}, "must not be empty"),
        ({"latency_ratios": [0.0, 0.1]}, "latency_ratios > 0"),
        ({"gamma_max": 0}, "gamma_max >= 1"),
        ({"gamma_max": 4, "break_even_gammas": (1, 8)}, "break_even_gammas"),
        ({"acceptance_rates": [0.5, 1.5]}, "acceptance_rate"),
        ({"overhead_ratios": (-0.1,)}, "overhead_ms"),
    ],
)
def test_landscape_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.get_speedup_landscape_info(**kwargs)


def test_landscape_figures_have_one_group_per_batch_and_controls():
    latency = fl.RooflineLatency(get_preset("llama-65b"), get_hardware("H200"))
    info = fl.get_speedup_landscape_info(
        acceptance_rates=np.linspace(0, 0.95, 5),
        latency_ratios=[0.02, 0.1, 0.5],
        gamma_max=4,
        batches=(1, 64),
        overhead_ratios=(0.0, 0.2),
        target_latency=latency,
        break_even_gammas=(1, 2),
    )
    for plot, per_batch, shared in (
        (fl.plot_speedup_landscape, 2, 0),
        (fl.plot_optimal_gamma, 1, 0),
        (fl.plot_speedup_curves, 4, 4),
        (fl.plot_break_even, 2, 1),
    ):
        fig = plot(info)
        assert len(fig.data) == 2 * per_batch + shared, plot.__name__
        assert len(fig.layout.updatemenus[0].buttons) == 2, plot.__name__
        steps = fig.layout.sliders[0].steps
        assert len(steps) == 2, plot.__name__
        for step in steps:
            update, indices = step.args
            for values in update.values():
                assert len(values) == len(indices), plot.__name__


# --- search ------------------------------------------------------------------------------------


def _study(points, *, constraints=None, directions=("maximize", "minimize")) -> optuna.Study:
    """A study whose trials have the given objective values (and constraint values)."""
    study = optuna.create_study(directions=list(directions))
    study.set_metric_names(["tokens_per_s", "params"][: len(directions)])
    dist = {"depth": optuna.distributions.IntDistribution(1, 16)}
    for i, values in enumerate(points):
        system_attrs = {} if constraints is None else {"constraints": [constraints[i]]}
        study.add_trial(
            optuna.trial.create_trial(
                params={"depth": i % 16 + 1},
                distributions=dist,
                values=list(values),
                system_attrs=system_attrs,
            )
        )
    return study


def test_pareto_front_matches_optuna_best_trials():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(60, 2))
    study = _study(pts)
    info = fs.get_pareto_info(study)
    ours = set(info.trial_number[info.on_front].tolist())
    assert ours == {t.number for t in study.best_trials}
    assert info.x_name == "tokens_per_s" and info.y_direction == "minimize"


def test_pareto_front_ignores_infeasible_trials():
    pts = [(10.0, 1.0), (5.0, 1.0), (20.0, 0.5), (8.0, 0.2)]
    study = _study(pts, constraints=[0.0, -1.0, 3.0, 0.0])  # trial 2 violates its constraint
    info = fs.get_pareto_info(study)
    np.testing.assert_array_equal(info.feasible, [True, True, False, True])
    np.testing.assert_array_equal(info.on_front, [True, False, False, True])


def test_pareto_needs_two_objectives():
    study = _study([(1.0,)], directions=("maximize",))
    with pytest.raises(ValueError, match="two objectives"):
        fs.get_pareto_info(study)


def test_history_best_so_far_skips_infeasible_and_starts_nan():
    pts = [(3.0, 1.0), (1.0, 1.0), (2.0, 1.0), (5.0, 1.0), (4.0, 1.0)]
    study = _study(pts, constraints=[1.0, 0.0, 0.0, 2.0, 0.0])
    info = fs.get_history_info(study, objective="tokens_per_s")
    assert math.isnan(info.best_so_far[0])
    np.testing.assert_array_equal(info.best_so_far[1:], [1.0, 2.0, 2.0, 4.0])
    low = fs.get_history_info(study, objective=1)
    assert low.direction == "minimize" and low.objective_name == "params"


@pytest.mark.parametrize("objective, match", [(2, "objective < 2"), ("nope", "must be one of")])
def test_history_bad_objective(objective, match):
    with pytest.raises(ValueError, match=match):
        fs.get_history_info(_study([(1.0, 1.0)]), objective=objective)


def test_importance_finds_the_parameter_that_matters():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial):
        depth = trial.suggest_int("depth", 1, 12)
        trial.suggest_float("noise", 0.0, 1.0)
        return 100.0 / depth

    study.optimize(objective, n_trials=40)
    info = fs.get_importance_info(study)
    assert info.param_names[0] == "depth", info
    assert info.importance.sum() == pytest.approx(1.0)


def test_importance_with_too_few_trials_says_why():
    info = fs.get_importance_info(_study([(1.0, 2.0)] * 3))
    assert info.param_names == () and "at least" in info.note
    fig = fs.plot_importance(info)
    assert "No importances" in fig.layout.annotations[0].text


def test_search_figures_and_summary_draw_from_a_study():
    rng = np.random.default_rng(3)
    study = _study(rng.uniform(0, 1, size=(20, 2)))
    assert len(fs.plot_pareto(study).data) >= 1
    assert len(fs.plot_history(study).data) >= 2
    table = fs.study_summary(study)
    front = {t.number for t in study.best_trials}
    assert set(table["trial"]) == front
    assert list(table.columns[:3]) == ["trial", "tokens_per_s", "params"]
    assert table["tokens_per_s"].is_monotonic_decreasing
