"""perfmodel.latency_model: fitted from profile rows, reproduces them, monotone, plugs in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.arch import ArchSpec
from perfmodel.latency_model import (
    FIXED_TERMS,
    LAYER_TERMS,
    REQUIRED_COLUMNS,
    LatencyModel,
    fixed_terms,
    layer_terms,
    load_profile_rows,
)
from perfmodel.latency_tables import DEPTH_FITS
from perfmodel.throughput import speculative_throughput

REPO = Path(__file__).resolve().parents[2]
CPU_PROFILE = REPO / "data" / "profiles" / "cpu-xeon-2.5ghz-1c"
# Both committed CPU profiles: the Xeon's (query 1, 4, 17) and the EPYC's (query 1..9 and 17).
CPU_PROFILES = [CPU_PROFILE, REPO / "data" / "profiles" / "cpu-epyc-1c"]

# A known "true" device: per-layer overhead, bandwidth and FLOP terms (ms per unit); no GEMM
# table (the gemm_ms term is zero); no Llama-only overhead (the last term).
TRUE_LAYER = np.array(
    [0.2, 1 / 5e6, 1 / 1e7, 1 / 2e7, 1 / 3e7, 0.0, 1 / 5e6, 1 / 3e7, 0.0, 1e-4, 0.0, 0.0]
)
TRUE_FIXED = np.array([1.0, 1 / 5e6, 1 / 1e7, 1 / 2e7, 1 / 3e7, 0.0, 2e-6, 0.0, 0.0])
WIDTHS = (128, 256, 512, 1024)


def _arch(w: int, *, layers: int = 1, vocab: int = 4096, family: str = "llama") -> ArchSpec:
    ffn = 4 * w if family == "opt" else int(2.75 * w)
    return ArchSpec(
        layers=layers, hidden=w, ffn=ffn, heads=w // 64, kv_heads=w // 64,
        vocab=vocab, tied_embeddings=False, family=family,
    )  # fmt: skip


def _true_ms(arch: ArchSpec, depth, b, n, q, layer_coef=TRUE_LAYER):
    kw = {"bytes_per_param": 4.0, "flops_per_byte": 10.0}
    lt = layer_terms(
        hidden=arch.hidden, ffn=arch.ffn, heads=arch.heads, kv_heads=arch.kv_heads,
        opt=arch.family == "opt", batch=b, context=n, query=q, **kw,
    )  # fmt: skip
    ft = fixed_terms(hidden=arch.hidden, vocab=arch.vocab, batch=b, query=q, **kw)
    return ft @ TRUE_FIXED + depth * (lt @ layer_coef)


def _rows(widths=WIDTHS, *, family: str = "llama", layer_coef=TRUE_LAYER) -> pd.DataFrame:
    """Rows of the true device; models ``w<width>`` (Llama) or ``<family>-w<width>``."""
    out = []
    prefix = "" if family == "llama" else f"{family}-"
    for w in widths:
        a = _arch(w, family=family)
        for depth in (1, 2, 4):
            for b in (1, 4):
                for n in (128, 512):
                    for q in (1, 4, 17):
                        t = float(_true_ms(a, depth, b, n, q, layer_coef))
                        out.append(
                            {
                                "model": f"{prefix}w{w}", "family": family, "depth": depth,
                                "hidden": w, "ffn": a.ffn, "heads": a.heads,
                                "kv_heads": a.kv_heads, "vocab": a.vocab, "tied": False,
                                "batch": b, "context": n, "query": q, "dtype": "fp32",
                                "median_ms": t, "min_ms": t * 0.98,
                            }
                        )  # fmt: skip
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def model():
    return LatencyModel.fit(_rows(), flops_per_byte=10.0)


def test_term_names_match_feature_widths():
    assert len(TRUE_LAYER) == len(LAYER_TERMS) and len(TRUE_FIXED) == len(FIXED_TERMS)
    lt = layer_terms(hidden=64, ffn=128, heads=1, kv_heads=1, opt=False, batch=1, context=0,
                     query=1, bytes_per_param=2.0, flops_per_byte=1.0)  # fmt: skip
    ft = fixed_terms(hidden=64, vocab=10, batch=1, query=1, bytes_per_param=2.0, flops_per_byte=1.0)
    assert lt.shape == (len(LAYER_TERMS),) and ft.shape == (len(FIXED_TERMS),)


def test_reproduces_the_rows_it_was_fitted_on(model):
    rows = _rows()
    assert model.statistic == "median_ms"  # no CPU-time column: wall clock
    for (w, depth), g in rows.groupby(["hidden", "depth"]):
        assert model.is_profiled(_arch(w))
        got = model.latency_fn(_arch(w, layers=depth))(g["batch"], g["context"], g["query"])
        np.testing.assert_allclose(got, g["median_ms"], rtol=0.02, err_msg=f"{w=} {depth=}")


def test_parametric_predicts_a_held_out_architecture():
    held_out = _arch(512)
    m = LatencyModel.fit(_rows(), flops_per_byte=10.0, exclude=[held_out])
    assert not m.is_profiled(held_out)
    for depth in (1, 3, 12):
        a = held_out.replace(layers=depth)
        for b, n, q in [(1, 128, 1), (4, 512, 17), (2, 300, 5)]:
            want = float(_true_ms(held_out, depth, b, n, q))
            assert m.latency_fn(a)(b, n, q) == pytest.approx(want, rel=0.03), (depth, b, n, q)


def test_family_overhead_predicts_a_held_out_opt_shape():
    # a launch-bound device: a Llama layer pays 0.25 ms more per layer than an OPT layer
    truth = TRUE_LAYER.copy()
    truth[LAYER_TERMS.index("overhead")] = 0.3
    truth[LAYER_TERMS.index("overhead_llama")] = 0.25
    rows = pd.concat(
        [_rows(layer_coef=truth), _rows(family="opt", layer_coef=truth)], ignore_index=True
    )
    held_out = _arch(512, family="opt")
    m = LatencyModel.fit(rows, flops_per_byte=10.0, exclude=[held_out])
    got = m.latency_fn(held_out.replace(layers=12), profiled=False)(1, 128, 1)
    want = float(_true_ms(held_out, 12, 1, 128, 1, truth))
    assert got == pytest.approx(want, rel=0.03)


@pytest.mark.parametrize("profiled", [True, False])
def test_monotone_in_depth_batch_context_query(model, profiled):
    # inside and outside the measured grid (batch 1..4, context 128..512, query 1..17)
    b = np.array([1, 2, 3, 4, 8, 16, 64])
    n = np.array([0, 64, 128, 300, 512, 1024, 4096])
    q = np.array([1, 2, 4, 9, 17, 33])
    for w in (256, 384):  # profiled and not
        fns = [model.latency_fn(_arch(w, layers=L), profiled=profiled) for L in (1, 2, 5, 12)]
        grid = [f(b[:, None, None], n[None, :, None], q[None, None, :]) for f in fns]
        for lo, hi in zip(grid, grid[1:], strict=False):
            assert (hi > lo).all(), (w, "depth")
        t = grid[1]
        assert (np.diff(t, axis=0) >= -1e-12).all(), (w, "batch")
        assert (np.diff(t, axis=1) >= -1e-12).all(), (w, "context")
        assert (np.diff(t, axis=2) >= -1e-12).all(), (w, "query")


def test_breakdown_and_vectorised_step_model_plug_in(model):
    draft = model.latency_fn(_arch(128, layers=2))
    target = model.latency_fn(_arch(1024, layers=12))
    parts = target.breakdown(4, 128, 5)
    assert parts["total_ms"] == pytest.approx(parts["fixed_ms"] + 12 * parts["layer_ms"])
    out = speculative_throughput(
        acceptance_rate=np.array([0.6, 0.8]), gamma=np.array([2, 4]), draft_ms=draft,
        target_ms=target, batch=1, context=128,
    )  # fmt: skip
    assert out is not None


def test_statistic_choice(model):
    rows = _rows()
    m = LatencyModel.fit(rows, statistic="min_ms", flops_per_byte=10.0)
    a = _arch(256, layers=2)
    assert m.latency_fn(a)(1, 128, 1) == pytest.approx(
        0.98 * model.latency_fn(a)(1, 128, 1), rel=0.02
    )
    rows["cpu_median_ms"] = rows["median_ms"] * 0.5
    auto = LatencyModel.fit(rows, flops_per_byte=10.0)
    assert auto.statistic == "cpu_median_ms"
    with pytest.raises(ValueError, match="statistic"):
        LatencyModel.fit(rows, statistic="mean_ms")


def test_bad_profiles_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="no profile folder"):
        LatencyModel.from_profiles(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no profile CSVs"):
        LatencyModel.from_profiles(tmp_path)
    (tmp_path / "a.csv").write_text("model,depth\nx,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        LatencyModel.from_profiles(tmp_path)
    bad = _rows().head(3).astype({"median_ms": object})
    bad.loc[1, "median_ms"] = "fast"
    bad.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match="median_ms"):
        load_profile_rows(tmp_path)
    bad = _rows().head(3)
    bad.loc[0, "batch"] = 0
    bad.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match="batch >= 1"):
        load_profile_rows(tmp_path / "a.csv")
    (tmp_path / "a.csv").write_text('model,"depth\n1,2\n')
    with pytest.raises(ValueError):
        load_profile_rows(tmp_path)
    assert set(REQUIRED_COLUMNS) <= set(_rows().columns)


def test_importing_the_latency_model_does_not_import_torch():
    code = "import sys, perfmodel.latency_model; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("folder", CPU_PROFILES, ids=lambda f: f.name)
def test_committed_cpu_profile_fits_its_rows(folder):
    if not any(folder.glob("draft-*.csv")):
        pytest.skip("no committed CPU profile")
    m = LatencyModel.from_profiles(folder)
    rows = load_profile_rows(folder)
    rows = rows[rows["dtype"] == m.dtype]
    err = []
    shape = ["family", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied", "depth"]
    for key, g in rows.groupby(shape):
        family, hidden, ffn, heads, kv, vocab, tied, depth = key
        a = ArchSpec(
            layers=int(depth), hidden=int(hidden), ffn=int(ffn), heads=int(heads),
            kv_heads=int(kv), vocab=int(vocab), tied_embeddings=bool(tied), family=family,
        )  # fmt: skip
        pred = m.latency_fn(a)(
            g["batch"].to_numpy(), g["context"].to_numpy(), g["query"].to_numpy()
        )
        err.extend(pred / g[m.statistic].to_numpy() - 1)
    err = np.abs(np.array(err))
    assert np.median(err) < 0.05, f"median in-sample error {np.median(err):.1%}"


def test_neighbour_correction_borrows_the_error_of_similar_shapes():
    # A "kernel switch": layers of width >= 384 run 1.4x slower than the roofline terms say, which
    # no non-negative combination of the terms reproduces across all widths.
    widths = (128, 192, 256, 384, 512, 768, 1024)
    rows = _rows(widths)
    slow = rows["hidden"] >= 384
    layer_part = rows["median_ms"] - rows.apply(
        lambda r: float(_true_ms(_arch(int(r.hidden)), 0, r.batch, r.context, r["query"])), axis=1
    )
    rows.loc[slow, "median_ms"] += 0.4 * layer_part[slow]
    held_out = _arch(512)
    m = LatencyModel.fit(rows, flops_per_byte=10.0, exclude=[held_out])
    pure = LatencyModel.fit(rows, flops_per_byte=10.0, exclude=[held_out], neighbour_shrink=np.inf)
    assert pure.neighbours is None and m.neighbours is not None
    mine = rows[rows["hidden"] == 512]
    a = held_out.replace(layers=4)
    g = mine[mine["depth"] == 4]
    args = (g["batch"].to_numpy(), g["context"].to_numpy(), g["query"].to_numpy())
    corrected = np.abs(m.latency_fn(a)(*args) / g["median_ms"].to_numpy() - 1)
    parametric = np.abs(m.latency_fn(a, profiled=False)(*args) / g["median_ms"].to_numpy() - 1)
    np.testing.assert_allclose(m.latency_fn(a, profiled=False)(*args), pure.latency_fn(a)(*args))
    assert np.median(corrected) < 0.7 * np.median(parametric), (corrected, parametric)
    assert np.median(corrected) < 0.03


@pytest.mark.parametrize(
    ("folder", "axes"),
    [(CPU_PROFILES[0], ("batch", "context", "query")), (CPU_PROFILES[1], ("context",))],
    ids=lambda v: v.name if isinstance(v, Path) else "-".join(v),
)
def test_neighbour_corrected_shapes_stay_monotone_on_the_committed_profile(folder, axes):
    """Shapes between the profiled ones are monotone in depth and context, and in batch and query
    where the measurements are (the Xeon's); the EPYC's GEMMs with 2-3 rows are slower than with
    4 (see perfmodel.latency_tables.MONOTONE_AXES), so there only depth and context are."""
    if not any(folder.glob("draft-*.csv")):
        pytest.skip("no committed CPU profile")
    m = LatencyModel.from_profiles(folder)
    # the measured box (batch 1-4, context 128-512, query 1-17) and beyond it along each axis
    b = np.array([1, 2, 3, 4, 8])
    n = np.array([0, 64, 128, 300, 512, 2048])
    q = np.array([1, 2, 4, 9, 17, 33])
    for w in (160, 640, 1280):  # between profiled widths
        arch = ArchSpec(
            layers=3, hidden=w, ffn=(w * 43 // 16 + 7) // 8 * 8, heads=w // 32, kv_heads=w // 32,
            vocab=8000, tied_embeddings=True, family="llama",
        )  # fmt: skip
        assert not m.is_profiled(arch)
        t = m.latency_fn(arch)(b[:, None, None], n[None, :, None], q[None, None, :])
        deeper = m.latency_fn(arch.replace(layers=4))(b[:, None, None], n[None, :, None], q)
        assert (t > 0).all() and (deeper > t).all(), (w, "depth")
        for axis, name in enumerate(("batch", "context", "query")):
            if name in axes:
                assert (np.diff(t, axis=axis) >= -1e-9).all(), (w, name)


def test_neighbour_correction_rejects_bad_settings():
    with pytest.raises(ValueError, match="scale > 0"):
        LatencyModel.fit(_rows(), flops_per_byte=10.0, neighbour_scale=0.0)


def test_one_fixed_part_per_batch_and_query_across_contexts():
    """T_fixed does not read the KV cache: one intercept per (b, q) serves every context, so
    noise in one context's deep rows does not move that context's T_fixed."""
    rows = _rows(widths=(256,))
    noisy = (rows["context"] == 512) & (rows["depth"] == 4)
    rows.loc[noisy, "median_ms"] *= 1.06  # a slow spell while the deepest 512 rows ran
    m = LatencyModel.fit(rows, flops_per_byte=10.0)
    table = m.tables[next(iter(m.tables))]
    np.testing.assert_allclose(table.fixed_ms[:, 0, :], table.fixed_ms[:, 1, :], rtol=1e-12)
    # separate fits per context would have put the n = 512 intercept well below n = 128's
    for b in (1, 4):
        for q in (1, 4, 17):
            g = rows[(rows["batch"] == b) & (rows["query"] == q) & (rows["context"] == 512)]
            slope, icpt = np.polyfit(g["depth"], g["median_ms"], 1)
            i, k = table.batch.index(b), table.query.index(q)
            assert icpt < table.fixed_ms[i, 0, k]


def test_measured_dips_along_query_are_kept_and_dips_along_context_are_not():
    """A CPU's GEMM with 2-3 rows can be slower than with 4 (the EPYC profile's LM heads): the
    table keeps such a measured dip along q instead of raising the longer passes to it;
    along the context a dip is noise (a longer KV cache is not faster) and is evened out."""
    rows = _rows(widths=(256,))
    slow_q4 = (rows["batch"] == 1) & (rows["query"] == 4)
    rows.loc[slow_q4, "median_ms"] *= 1.6  # q = 4 slower than q = 17 at batch 1
    rows = rows[~((rows["batch"] == 1) & (rows["query"] == 17))]
    extra = _rows(widths=(256,))
    extra = extra[(extra["batch"] == 1) & (extra["query"] == 17)].copy()
    extra["median_ms"] = rows.loc[slow_q4, "median_ms"].to_numpy() / 1.3  # faster than q = 4
    rows = pd.concat([rows, extra], ignore_index=True)
    fast_512 = (rows["batch"] == 4) & (rows["context"] == 512) & (rows["query"] == 1)
    rows.loc[fast_512, "median_ms"] *= 0.8  # n = 512 measured faster than n = 128: noise
    m = LatencyModel.fit(rows, flops_per_byte=10.0)
    for depth in (1, 2, 4):
        fn = m.latency_fn(_arch(256, layers=depth))
        at = rows[(rows["depth"] == depth) & (rows["batch"] == 1) & (rows["context"] == 128)]
        q4 = float(at.loc[at["query"] == 4, "median_ms"].iloc[0])
        q17 = float(at.loc[at["query"] == 17, "median_ms"].iloc[0])
        assert fn(1, 128, 4) == pytest.approx(q4, rel=0.03)
        assert fn(1, 128, 17) == pytest.approx(q17, rel=0.03)  # kept below q = 4
        assert fn(4, 512, 1) >= fn(4, 128, 1) - 1e-9  # context dip evened out


def test_relative_depth_fit_weighs_shallow_rows_as_much_as_deep_ones():
    """``depth_fit="relative"`` weighs each row by 1 / t: on exact rows it is the absolute fit,
    and when the deepest rows ran slow it keeps the shallow rows closer than the absolute fit
    does (the absolute fit bends its line toward the longest pass)."""
    rows = _rows(widths=(256,))
    a, r = (LatencyModel.fit(rows, flops_per_byte=10.0, depth_fit=f) for f in DEPTH_FITS)
    (ta,), (tr,) = a.tables.values(), r.tables.values()
    np.testing.assert_allclose(tr.fixed_ms, ta.fixed_ms, rtol=1e-6)
    np.testing.assert_allclose(tr.layer_ms, ta.layer_ms, rtol=1e-6)

    slow = rows.copy()
    slow.loc[slow["depth"] == 4, "median_ms"] *= 1.08
    shallow = slow[slow["depth"] == 1]
    worst = {}
    for fit in DEPTH_FITS:
        m = LatencyModel.fit(slow, flops_per_byte=10.0, depth_fit=fit)
        got = m.latency_fn(_arch(256))(shallow["batch"], shallow["context"], shallow["query"])
        worst[fit] = float(np.max(np.abs(got / shallow["median_ms"].to_numpy() - 1)))
    assert worst["relative"] < 0.7 * worst["absolute"], worst
    with pytest.raises(ValueError, match="depth_fit"):
        LatencyModel.fit(rows, flops_per_byte=10.0, depth_fit="weighted")


def test_a_spec_with_its_own_head_width_gets_its_terms_and_no_profiled_table(model):
    # Qwen3-0.6B-like: 16 heads of 128 at hidden 1024 (not 64): q/o are 2048 wide, the KV
    # cache twice that of the derived width; the profile rows hold no head width, so such a
    # spec is predicted from the terms, never from the table of the same hidden/heads
    from perfmodel.gemm_table import layer_gemms
    from perfmodel.latency_tables import _arch_from_key, _key

    kw = {"batch": 1, "context": 512, "query": 1, "bytes_per_param": 2.0, "flops_per_byte": 1.0}
    shape = {"hidden": 1024, "ffn": 3072, "heads": 16, "kv_heads": 8, "opt": False}
    derived, own = layer_terms(**shape, **kw), layer_terms(**shape, **kw, head_dim=128)
    assert np.array_equal(derived, layer_terms(**shape, **kw, head_dim=None))
    names = list(LAYER_TERMS)
    spec = ArchSpec(layers=1, hidden=1024, ffn=3072, heads=16, kv_heads=8, vocab=1000,
                    tied_embeddings=True, family="llama", head_size=128)  # fmt: skip
    assert own[names.index("weight_bytes")] == spec.layer_matmul_params * 2.0
    assert own[names.index("kv_bytes")] == 2 * derived[names.index("kv_bytes")]
    assert own[names.index("attention_flops")] == 2 * derived[names.index("attention_flops")]
    assert layer_gemms(**shape, head_dim=128)[:4] == [(1024, 2048), (1024, 1024), (1024, 1024),
                                                     (2048, 1024)]  # fmt: skip
    w1024 = _arch(1024)
    assert model.is_profiled(w1024) and not model.is_profiled(w1024.replace(head_size=128))
    assert _key(w1024.replace(head_size=128)) != _key(w1024)
    # so does a layout the profile rows cannot tell apart: Gemma 2's norms, GPT-NeoX's table
    assert not model.is_profiled(w1024.replace(sandwich_norms=True))
    opt = LatencyModel.fit(_rows(family="opt"), flops_per_byte=10.0)
    opt512 = _arch(512, family="opt")
    assert opt.is_profiled(opt512) and not opt.is_profiled(opt512.replace(position_table_rows=0))
    assert _key(_arch_from_key(_key(opt512))) == _key(opt512)
    wide = model.latency_fn(w1024.replace(head_size=128))(1, 512, 1)
    assert wide > model.latency_fn(w1024)(1, 512, 1)


def test_rows_of_mixed_head_widths_get_each_rows_terms():
    # profile rows where some models have their own head width (NaN: hidden / heads): each
    # row's terms equal those of its shape alone, and a fit over the mixed rows keys them apart
    from perfmodel.latency_tables import _arch_from_key, row_keys
    from perfmodel.latency_terms import own_head_dims

    kw = {"batch": 2, "context": 64, "query": 3, "bytes_per_param": 2.0, "flops_per_byte": 5.0}
    shape = {"hidden": np.array([256.0, 256.0]), "ffn": np.array([704.0, 704.0]),
             "heads": np.array([4.0, 4.0]), "kv_heads": np.array([2.0, 2.0]),
             "opt": np.array([False, False])}  # fmt: skip
    one = {k: v[0] for k, v in shape.items()}
    mixed = layer_terms(**shape, **kw, head_dim=np.array([np.nan, 128.0]))
    assert np.array_equal(mixed[0], layer_terms(**one, **kw))
    assert np.array_equal(mixed[1], layer_terms(**one, **kw, head_dim=128))
    rows = pd.DataFrame({"family": "llama", "hidden": 256, "ffn": 704, "heads": 4, "kv_heads": 2,
                         "vocab": 1000, "tied": False, "head_dim": [np.nan, 64, 128]})  # fmt: skip
    assert own_head_dims(rows) is not None and np.isnan(own_head_dims(rows)[:2]).all()
    assert own_head_dims(rows.iloc[:2]) is None  # 64 = 256 / 4: the derived width
    keys = row_keys(rows)
    assert keys[0] == keys[1] != keys[2] == (*keys[0], ("head_size", 128))
    assert _arch_from_key(keys[2]).head_dim == 128 and _arch_from_key(keys[0]).head_size is None


def test_outside_profile_names_the_axes_a_point_leaves(model):
    # the synthetic rows: batch 1 and 4, context 128 and 512, query 1, 4 and 17
    w512 = _arch(512)
    assert model.outside_profile(w512, batch=4, context=300, query=4) == {}
    assert model.outside_profile(w512, batch=8, context=2048, query=4) == {
        "batch": (1, 4), "context": (128, 512)
    }  # fmt: skip
    assert model.outside_profile(w512, batch=1, context=128, query=20) == {"query": (1, 17)}
    never = w512.replace(ffn=1000)  # not profiled: predicted from the terms everywhere
    assert not model.is_profiled(never)
    assert model.outside_profile(never, batch=64, context=9999, query=99) == {}
