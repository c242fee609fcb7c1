"""Data steps of explorer.figures: the numbers each figure draws, checked against perfmodel."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from explorer.figures import landscape as fl
from explorer.figures import latency as fla
from explorer.figures import search as fs
from explorer.figures import validation as fv
from perfmodel import get_hardware, get_preset, speculative_throughput
from tests.explorer_tests import synthetic as syn

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


def _study(
    points, *, constraints=None, attrs=None, directions=("maximize", "minimize")
) -> optuna.Study:
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
                user_attrs={} if attrs is None else attrs[i],
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
    assert info.y_name == "tokens_per_s" and info.x_direction == "minimize"


def test_pareto_front_ignores_infeasible_trials():
    pts = [(10.0, 1.0), (5.0, 1.0), (20.0, 0.5), (8.0, 0.2)]
    study = _study(pts, constraints=[0.0, -1.0, 3.0, 0.0])  # trial 2 violates its constraint
    info = fs.get_pareto_info(study)
    np.testing.assert_array_equal(info.feasible, [True, True, False, True])
    np.testing.assert_array_equal(info.on_front, [True, False, False, True])


def test_pareto_of_a_single_objective_study_uses_a_user_attribute():
    points = [(1.0,), (2.0,), (3.0,)]
    with pytest.raises(ValueError, match="user attribute"):
        # default x axis: the `params` attribute, absent here
        fs.get_pareto_info(_study(points, directions=("maximize",)))
    attrs = [{"params": 10}, {"params": 30}, {"params": 20}]
    info = fs.get_pareto_info(_study(points, attrs=attrs, directions=("maximize",)))
    assert (info.x_name, info.y_name) == ("params", "tokens_per_s")
    np.testing.assert_array_equal(info.on_front, [True, False, True])


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


def test_validation_copies_are_not_search_trials():
    # `specdec validate` adds a copy of a validated trial carrying `validation_of` and the truth.
    attrs = [{"params": 1}, {"params": 2}, {"params": 1, "validation_of": 0, "measured_speedup": 1}]
    study = _study([(5.0, 1.0), (4.0, 2.0), (5.0, 1.0)], attrs=attrs)
    assert fs.get_pareto_info(study).trial_number.tolist() == [0, 1]
    assert fs.get_history_info(study).trial_number.tolist() == [0, 1]
    assert fs.study_summary(study)["trial"].tolist() == [0]


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


# --- latency -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profiles")
    syn.write_profiles(folder)
    return fla.load_profiles(folder)


def test_load_profiles_reads_fits_rows_and_devices(profiles):
    assert profiles.devices == (syn.DEVICE,)
    assert len(profiles.fits) == 8 and len(profiles.rows) == 32


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda d: None, ValueError, "holds no profile CSV"),
        (lambda d: (d / "x.csv").write_text("model,depth\nm,1\n"), ValueError, "no fit files"),
        (lambda d: (d / "x.fit.csv").write_text("model,batch\nm,1\n"), ValueError, "lacks"),
    ],
)
def test_load_profiles_bad_folder(tmp_path, make, error, match):
    make(tmp_path)
    with pytest.raises(error, match=match):
        fla.load_profiles(tmp_path)


def test_load_profiles_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        fla.load_profiles(tmp_path / "nope")


def test_layer_latency_info_selects_batch_query_and_sorts_by_width(profiles):
    info = fla.get_layer_latency_info(profiles, batch=1, query=4)
    assert info.hidden.tolist() == [128, 256, 512, 1024]
    want = 0.05 + 2e-7 * info.hidden**2 * 1.3
    np.testing.assert_allclose(info.layer_ms, want, rtol=1e-12)
    assert (info.roofline_layer_ms < info.layer_ms).all()
    with pytest.raises(ValueError, match="batch=8"):
        fla.get_layer_latency_info(profiles, batch=8)


def test_layer_latency_does_not_mix_dtypes_of_one_shape():
    """The EPYC folder holds the draft grid in fp32 and bf16: by default each device's most
    frequent dtype (fp32) is shown, one row per shape; bf16 on request."""
    folder = Path(__file__).resolve().parents[2] / "data" / "profiles" / "cpu-epyc-1c"
    fits = fla.load_profiles(folder).fits
    if set(fits["dtype"]) != {"fp32", "bf16"}:
        pytest.skip("the committed EPYC profile has no bf16 rows")
    for dtype in (None, "fp32", "bf16"):
        info = fla.get_layer_latency_info(folder, batch=1, query=1, context=128, dtype=dtype)
        assert len(set(info.model)) == len(info.model)
        want = fits[(fits["dtype"] == (dtype or "fp32")) & (fits["batch"] == 1)]
        want = want[(want["query"] == 1) & (want["context"] == 128)].set_index("model")
        assert set(info.model) == set(want.index)
        np.testing.assert_allclose(
            info.layer_ms, want.loc[list(info.model), "cpu_t_layer_ms"], rtol=1e-12
        )


def test_query_cost_composes_each_shape_at_its_depth_and_keeps_the_dips():
    from explorer.figures import query_cost as qc

    folder = Path(__file__).resolve().parents[2] / "data" / "profiles" / "cpu-epyc-1c"
    info = qc.get_query_cost_info(folder, batch=1, context=128)
    fits = fla.load_profiles(folder).fits
    fits = fits[(fits["dtype"] == "fp32") & (fits["batch"] == 1) & (fits["context"] == 128)]
    for model in ("zoo-target", "draft-w512-l12"):
        m = info.model == model
        want = fits[fits["model"] == model].sort_values("query")
        composed = want["cpu_t_fixed_ms"] + want["layers"] * want["cpu_t_layer_ms"]
        assert info.query[m].tolist() == want["query"].tolist()
        np.testing.assert_allclose(info.ms[m], composed, rtol=1e-12)
        np.testing.assert_allclose(info.relative[m], composed / composed.iloc[0], rtol=1e-12)
        rel = dict(zip(info.query[m].tolist(), info.relative[m].tolist(), strict=True))
        assert rel[1] == 1.0 and rel[4] < rel[3]  # the measured dip at q = 4 is shown
    assert len(qc.plot_query_cost(info).data) == len(set(info.model)) + 1


def test_query_cost_needs_three_query_lengths(profiles):
    from explorer.figures import query_cost as qc

    with pytest.raises(ValueError, match="query lengths"):
        qc.get_query_cost_info(profiles, batch=1)  # the synthetic profiles have q = 1, 4
    with pytest.raises(ValueError, match="min_queries >= 2"):
        qc.get_query_cost_info(profiles, min_queries=1)


def test_token_latency_composes_the_fit_and_keeps_timed_points(profiles):
    info = fla.get_token_latency_info(profiles, depths=range(1, 13))
    assert len(info.depth) == 4 * 12
    m = (info.hidden == 256) & (info.depth == 5)
    fit = profiles.fits.query("hidden == 256 and query == 1").iloc[0]
    assert info.token_ms[m][0] == pytest.approx(fit.t_fixed_ms + 5 * fit.t_layer_ms)
    assert info.params[m][0] == syn._arch(5, 256).param_count
    # Timed depths sit on the composed line (the synthetic profile is exactly linear).
    for h, d, ms in zip(info.measured_hidden, info.measured_depth, info.measured_ms, strict=True):
        k = (info.hidden == h) & (info.depth == d)
        assert info.token_ms[k][0] == pytest.approx(ms), (h, d)
    assert len(info.measured_ms) == 16
    narrow = fla.get_token_latency_info(profiles, max_hidden=256)
    assert set(narrow.hidden.tolist()) == {128, 256}


def test_latency_prefers_cpu_time_where_the_profiler_recorded_it(tmp_path):
    folder = syn.write_profiles(tmp_path)
    assert fla.get_layer_latency_info(fla.load_profiles(tmp_path)).statistic == "wall"
    with pytest.raises(ValueError, match="cpu_t_fixed_ms"):
        fla.get_layer_latency_info(fla.load_profiles(tmp_path), statistic="cpu")
    for fit in folder.glob("*.fit.csv"):
        frame = pd.read_csv(fit)
        frame["cpu_t_fixed_ms"] = frame["t_fixed_ms"] / 2
        frame["cpu_t_layer_ms"] = frame["t_layer_ms"] / 2
        frame.to_csv(fit, index=False)
    for rows in folder.glob("d8-h*[0-9].csv"):
        frame = pd.read_csv(rows)
        frame["cpu_median_ms"] = frame["median_ms"] / 2
        frame.to_csv(rows, index=False)
    p = fla.load_profiles(tmp_path)
    cpu = fla.get_layer_latency_info(p)
    wall = fla.get_layer_latency_info(p, statistic="wall")
    assert cpu.statistic == "cpu" and wall.statistic == "wall"
    np.testing.assert_allclose(cpu.layer_ms, wall.layer_ms / 2)
    token = fla.get_token_latency_info(p)
    assert token.statistic == "cpu"
    for h, d, ms in zip(
        token.measured_hidden, token.measured_depth, token.measured_ms, strict=True
    ):
        k = (token.hidden == h) & (token.depth == d)
        assert token.token_ms[k][0] == pytest.approx(ms), (h, d)


def test_token_latency_keeps_the_largest_family_of_shapes(tmp_path):
    folder = syn.write_profiles(tmp_path)
    odd = pd.read_csv(folder / "d8-h128.fit.csv").assign(model="other-vocab", vocab=50000)
    odd.to_csv(folder / "other-vocab.fit.csv", index=False)
    p = fla.load_profiles(tmp_path)
    assert "other-vocab" in set(fla.get_token_latency_info(p, group="all").model)
    assert "other-vocab" not in set(fla.get_token_latency_info(p, group="largest").model)
    with pytest.raises(ValueError, match="group"):
        fla.get_token_latency_info(p, group="some")


def test_depth_effect_pairs_shapes_of_about_equal_size(profiles):
    token = fla.get_token_latency_info(profiles)
    info = fla.get_depth_effect_info(token, tolerance=0.15)
    assert len(info.depth) > 0
    for b in set(info.budget_params.tolist()):
        m = info.budget_params == b
        assert len(set(info.depth[m].tolist())) >= 2
        assert (np.abs(info.params[m] / b - 1) <= 0.15).all()
        assert info.slowdown[m].min() == pytest.approx(1.0)
    table = fla.depth_effect_table(info)
    assert list(table.columns)[:3] == ["device", "budget (M params)", "depth"]
    with pytest.raises(ValueError, match="tolerance"):
        fla.get_depth_effect_info(token, tolerance=0.0)


def test_latency_figures_draw(profiles):
    token = fla.get_token_latency_info(profiles)
    assert len(fla.plot_layer_latency(fla.get_layer_latency_info(profiles)).data) == 4
    assert len(fla.plot_token_latency(token).data) == 4 * 3  # line, roofline, timed per width
    assert len(fla.plot_depth_effect(token).data) == 12  # one line per depth


# --- validation and zoo ------------------------------------------------------------------------


def test_validation_info_pairs_predicted_and_measured_columns():
    frame = syn.validation_frame()
    info = fv.get_validation_info(frame)
    assert info.quantity == ("acceptance_rate", "draft_ms", "tokens_per_s", "speedup")
    assert info.column[1] == ("predicted_draft_pass_ms", "measured_draft_pass_ms")
    i = info.quantity.index("tokens_per_s")
    np.testing.assert_allclose(info.relative_error[i], [90 / 86 - 1, 85 / 88 - 1, 70 / 66 - 1])
    assert info.label[0] == "trial 3 (d1-h512), γ=3"
    table = fv.validation_error_table(info)
    assert table.loc[i, "worst |error| %"] == pytest.approx(100 * (70 / 66 - 1))


def test_validation_accepts_plain_predicted_columns_and_json(tmp_path):
    frame = pd.DataFrame({"name": ["a", "b"], "tokens_per_s": [10.0, 20.0],
                          "measured_tokens_per_s": [11.0, 19.0]})  # fmt: skip
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"rows": frame.to_dict("records")}))
    info = fv.get_validation_info(fv.load_table(path))
    assert info.quantity == ("tokens_per_s",) and info.label == ("a", "b")


@pytest.mark.parametrize(
    "content, match",
    [("a,b\n1,2\n", "no predicted/measured pair"), ("", "not a readable|no row")],
)
def test_validation_bad_tables(tmp_path, content, match):
    path = tmp_path / "v.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        fv.get_validation_info(path)


def test_zoo_prediction_uses_measured_alpha_and_latency():
    zoo = fv.get_zoo_info(syn.zoo_frame())
    assert zoo.name[0] == "d1-h512" and zoo.best_gamma.tolist() == [3] * 6
    want = speculative_throughput(
        3, acceptance_rate=0.62, draft_ms=zoo.draft_ms[0], target_ms=20.0
    )["tokens_per_s"]
    assert zoo.predicted_tokens_per_s[0] == pytest.approx(want)
    # The synthetic measurement is 95% of the model's prediction: every error is +5.26%.
    check = fv.get_validation_info(fv.zoo_validation_frame(zoo))
    np.testing.assert_allclose(check.relative_error, 1 / 0.95 - 1, rtol=1e-9)
    assert not zoo.distilled[-1]


def test_shape_pairs_are_matched_shallow_first_and_distilled_only():
    zoo = fv.get_zoo_info(syn.zoo_frame())
    pairs = fv.get_shape_pairs_info(zoo, tolerance=0.25)
    assert len(pairs.shallow) > 0
    assert (pairs.shallow_depth < pairs.deep_depth).all()
    ratio = np.maximum(pairs.shallow_params, pairs.deep_params) / np.minimum(
        pairs.shallow_params, pairs.deep_params
    )
    assert (ratio <= 1.25).all()
    assert "d2-h256-nodistil" not in set(pairs.shallow) | set(pairs.deep)
    i = list(zip(pairs.shallow, pairs.deep, strict=True)).index(("d1-h512", "d4-h256"))
    s, d = zoo.measured_tokens_per_s[0], zoo.measured_tokens_per_s[1]
    assert pairs.measured_gain_pct[i] == pytest.approx(100 * (s / d - 1))
    table = fv.shape_pairs_table(pairs)
    assert table["measured gain %"].is_monotonic_decreasing


def test_zoo_reads_per_decoding_columns():
    frame = syn.zoo_frame().rename(
        columns={"best_gamma": "best_gamma_greedy", "spec_tokens_per_s": "spec_tokens_per_s_greedy"}
    )
    frame["best_gamma_t1"] = 2
    frame["spec_tokens_per_s_t1"] = 10.0
    frame["alpha_t1_g2"] = 0.4
    greedy = fv.get_zoo_info(frame)
    assert greedy.best_gamma.tolist() == [3] * 6
    t1 = fv.get_zoo_info(frame, decoding="t1")
    assert t1.best_gamma.tolist() == [2] * 6 and (t1.acceptance_rate == 0.4).all()
    assert (t1.measured_tokens_per_s == 10.0).all()
    with pytest.raises(ValueError, match="decoding"):
        fv.get_zoo_info(frame, decoding="t0")


def test_zoo_table_needs_its_columns():
    with pytest.raises(ValueError, match="lacks the columns"):
        fv.get_zoo_info(pd.DataFrame({"name": ["x"]}))


def test_validation_and_zoo_figures_draw():
    info = fv.get_validation_info(syn.validation_frame())
    assert len(fv.plot_predicted_vs_measured(info).data) == 8  # points + diagonal per quantity
    assert len(fv.plot_validation_errors(info).data) == 4
    zoo = fv.get_zoo_info(syn.zoo_frame())
    assert len(fv.plot_zoo_tradeoff(zoo).data) == 2 * 4  # two panels per depth
    assert len(fv.plot_shape_pairs(fv.get_shape_pairs_info(zoo)).data) == 2


# --- zoo ---------------------------------------------------------------------------------------


def _log(path, steps, tokens, val):
    pd.DataFrame(
        {
            "step": steps,
            "tokens": tokens,
            "train_loss": [float("nan")] + [v + 0.5 for v in val[1:]],
            "val_loss": val,
            "lr": 1e-3,
            "elapsed_s": 1.0,
        }
    ).to_csv(path, index=False)


def test_training_curve_chains_stages_in_order_and_drops_repeated_starts(tmp_path):
    from explorer.figures import zoo as fz

    _log(tmp_path / "training_log_stage1.csv", [0, 10], [0, 100], [8.0, 6.0])
    _log(tmp_path / "training_log_stage2.csv", [0, 10, 20], [0, 100, 200], [6.0, 5.0, 4.5])
    _log(tmp_path / "training_log.csv", [0, 10], [0, 100], [4.5, 4.0])
    info = fz.get_training_curve_info(tmp_path)
    assert info.stage.tolist() == [1, 1, 2, 2, 3]
    assert info.tokens_total.tolist() == [0, 100, 200, 300, 400]
    assert info.val_loss.tolist() == [8.0, 6.0, 5.0, 4.5, 4.0]
    assert math.isnan(info.train_loss[0])
    fig = fz.plot_training_curve(info)
    assert len(fig.data) == 6 and "4.000" in fig.layout.title.text


def test_training_curve_rejects_a_folder_without_logs_and_a_malformed_log(tmp_path):
    from explorer.figures import zoo as fz

    with pytest.raises(ValueError, match="no training_log.csv"):
        fz.get_training_curve_info(tmp_path)
    (tmp_path / "training_log.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks columns"):
        fz.get_training_curve_info(tmp_path)


def test_alpha_loss_info_ranks_and_rejects_bad_gamma(tmp_path):
    from explorer.figures import zoo as fz

    table = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d"],
            "depth": [1, 1, 2, 4],
            "params": [10, 20, 30, 40],
            "distilled": [True, True, False, True],
            "val_loss": [3.0, 3.5, 4.0, 5.0],
            "alpha_greedy_g4": [0.8, 0.6, 0.7, 0.1],
            "alpha_t1_g4": [0.7, 0.6, 0.5, 0.4],
        }
    )
    path = tmp_path / "drafts.csv"
    table.to_csv(path, index=False)
    info = fz.get_alpha_loss_info(path)
    assert info.spearman_t1 == pytest.approx(-1.0)
    assert info.spearman_greedy == pytest.approx(-0.8)
    assert info.distilled.tolist() == [True, True, False, True]
    assert len(fz.plot_alpha_loss(info).data) == 6  # 3 depths x (greedy, T = 1)
    with pytest.raises(ValueError, match="1 <= gamma <= 8"):
        fz.get_alpha_loss_info(path, gamma=9)
    table.drop(columns="val_loss").to_csv(path, index=False)
    with pytest.raises(ValueError, match="val_loss"):
        fz.get_alpha_loss_info(path)


def test_shipped_zoo_curve_ends_at_the_recorded_validation_loss():
    from explorer.figures import zoo as fz
    from explorer.report import REPO_ROOT

    target = REPO_ROOT / "data" / "zoo" / "target"
    meta = json.loads((target / "zoo_meta.json").read_text())
    info = fz.get_training_curve_info(target)
    assert info.tokens_total[-1] == meta["tokens_trained_total"]
    assert info.val_loss[-1] == pytest.approx(meta["val_loss"], abs=2e-3)  # fp32 vs saved fp16
    assert np.all(np.diff(info.tokens_total) > 0)


def test_the_latency_figures_leave_out_a_shape_perfmodel_does_not_describe(tmp_path):
    # a two-matrix-MLP profile with its own head width beside a Llama one and a Falcon-7B-like
    # one (two-matrix MLP, multi-query: described)
    from explorer.figures.latency import get_token_latency_info, load_profiles
    from tests.perfmodel_tests.test_profile_folder import profile_folder

    profiles = load_profiles(profile_folder(tmp_path))
    assert set(profiles.fits["model"]) == {"zoo-target", "falcon-like"}
    shown = set(get_token_latency_info(profiles, depths=(1, 2), group="all").model)
    assert shown == {"zoo-target", "falcon-like"}
