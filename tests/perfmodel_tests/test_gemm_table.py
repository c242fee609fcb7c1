"""perfmodel.gemm_table: measured products t(m, k, n), and the latency model that composes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.arch import ArchSpec
from perfmodel.gemm_table import GemmTable, head_gemm, layer_gemms, model_gemms
from perfmodel.latency_model import LatencyModel, load_profile_rows

REPO = Path(__file__).resolve().parents[2]
EPYC = REPO / "data" / "profiles" / "cpu-epyc-1c"
M_VALUES = (1, 2, 3, 4, 5, 8, 16, 17, 68)


def _true_gemm_ms(m, k, n):
    """A device like the EPYC: 2-3 rows run as separate matrix-vector products, from 4 rows a
    blocked kernel twice as fast per row; 1e-6 ms per weight element at m = 1."""
    m = np.asarray(m, float)
    per_row = np.where(m < 4, 1.0, 0.5)
    return 1e-6 * k * n * (1.0 + per_row * (m - 1))


def _gemm_rows(pairs, m_values=M_VALUES) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"dtype": "fp32", "k": k, "n": n, "m": m, "median_ms": float(_true_gemm_ms(m, k, n))}
            for k, n in pairs
            for m in m_values
        ]
    )


def test_products_of_a_layer_and_the_head():
    llama = layer_gemms(hidden=1024, ffn=2752, heads=16, kv_heads=4, opt=False)
    assert llama == [(1024, 1024), (1024, 256), (1024, 256), (1024, 1024),
                     (1024, 2752), (1024, 2752), (2752, 1024)]  # fmt: skip
    opt = layer_gemms(hidden=768, ffn=3072, heads=12, kv_heads=12, opt=True)
    assert opt[-2:] == [(768, 3072), (3072, 768)] and len(opt) == 6
    assert head_gemm(hidden=768, vocab=50272) == (768, 50272)
    assert model_gemms(hidden=64, ffn=128, heads=1, kv_heads=1, vocab=10, opt=False) == [
        (64, 10), (64, 64), (64, 128), (128, 64),
    ]  # fmt: skip


def test_measured_pair_interpolates_in_m_and_extrapolates_linearly():
    table = GemmTable.from_rows(_gemm_rows([(256, 512)], m_values=(1, 2, 3, 4, 8)))
    for m in (1, 2, 3, 4, 6, 8):
        assert table.ms(m, 256, 512) == pytest.approx(_true_gemm_ms(m, 256, 512))
    # past the last measured m: the last segment's slope
    assert table.ms(16, 256, 512) == pytest.approx(_true_gemm_ms(16, 256, 512))
    got = table.ms(np.array([[1, 3], [4, 8]]), 256, 512)
    assert got.shape == (2, 2)


def test_unmeasured_pair_borrows_the_time_per_weight_of_its_neighbours():
    pairs = [(k, n) for k in (128, 256, 512, 1024) for n in (128, 512, 2048, 8192)]
    table = GemmTable.from_rows(_gemm_rows(pairs))
    # the true law is proportional to k*n at each m, so any pair in between is exact,
    # the 2-3-row slowdown included
    for k, n in [(384, 1024), (700, 3000), (200, 6000)]:
        assert (k, n) not in table.curves
        m = np.array(M_VALUES)
        np.testing.assert_allclose(table.ms(m, k, n), _true_gemm_ms(m, k, n), rtol=1e-9)


def test_without_drops_pairs_and_an_excluded_pair_is_interpolated():
    pairs = [(128, 128), (128, 256), (256, 128), (256, 256)]
    table = GemmTable.from_rows(_gemm_rows(pairs), exclude=[(256, 256)])
    assert table.pairs == [(128, 128), (128, 256), (256, 128)]
    assert table.without([(128, 128)]).pairs == [(128, 256), (256, 128)]
    with pytest.raises(ValueError, match="at least one"):
        table.without(pairs)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r.drop(columns="median_ms"), "missing"),
        (lambda r: r.assign(median_ms=-1.0), "positive"),
        (lambda r: r.assign(k="wide"), "positive"),
        (lambda r: r.iloc[:0], "at least one row"),
        (lambda r: r.assign(dtype="bf16"), None),
    ],
)
def test_bad_rows_raise_value_error(change, match):
    rows = change(_gemm_rows([(64, 64)]))
    if match is None:  # another dtype only: asking for fp32 finds none
        with pytest.raises(ValueError, match="no GEMM rows of dtype='fp32'"):
            GemmTable.from_rows(rows, dtype="fp32")
        return
    with pytest.raises(ValueError, match=match):
        GemmTable.from_rows(rows)


def test_bad_queries_raise_value_error():
    table = GemmTable.from_rows(_gemm_rows([(64, 64)]))
    with pytest.raises(ValueError, match="m >= 1"):
        table.ms(0, 64, 64)
    with pytest.raises(ValueError, match="k >= 1"):
        table.ms(1, 0, 64)


def test_from_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="no GEMM table"):
        GemmTable.from_csv(tmp_path / "gemm.csv")
    (tmp_path / "gemm.csv").write_text("dtype,k,n\nfp32,1,2\n")
    with pytest.raises(ValueError, match="missing"):
        GemmTable.from_csv(tmp_path / "gemm.csv")


# --- the latency model with a GEMM table ---------------------------------------------------------


def _arch(w: int, layers: int = 1) -> ArchSpec:
    return ArchSpec(
        layers=layers, hidden=w, ffn=int(2.75 * w), heads=max(w // 64, 1),
        kv_heads=max(w // 64, 1), vocab=4096, tied_embeddings=False, family="llama",
    )  # fmt: skip


def _true_ms(a: ArchSpec, depth: int, b, n, q):
    """Per layer: 0.05 ms + its products + KV reads; fixed: 0.3 ms + the head's product."""
    m = np.asarray(b) * np.asarray(q)
    layer = 0.05 + sum(
        _true_gemm_ms(m, k, nn)
        for k, nn in layer_gemms(
            hidden=a.hidden, ffn=a.ffn, heads=a.heads, kv_heads=a.kv_heads, opt=False
        )
    )
    layer = layer + 1e-8 * np.asarray(b) * (np.asarray(n) + np.asarray(q)) * a.hidden
    return 0.3 + _true_gemm_ms(m, *head_gemm(hidden=a.hidden, vocab=a.vocab)) + depth * layer


WIDTHS = (128, 192, 256, 384, 512, 768, 1024)


def _profile_rows() -> pd.DataFrame:
    out = []
    for w in WIDTHS:
        a = _arch(w)
        for depth in (1, 2, 4):
            for b in (1, 4):
                for q in (1, 2, 3, 4, 5, 17):
                    t = float(_true_ms(a, depth, b, 128, q))
                    out.append({
                        "model": f"w{w}", "family": "llama", "depth": depth, "hidden": w,
                        "ffn": a.ffn, "heads": a.heads, "kv_heads": a.kv_heads, "vocab": a.vocab,
                        "tied": False, "batch": b, "context": 128, "query": q, "dtype": "fp32",
                        "median_ms": t, "min_ms": t,
                    })  # fmt: skip
    return pd.DataFrame(out)


def _table() -> GemmTable:
    pairs = sorted({p for w in WIDTHS for p in model_gemms(
        hidden=w, ffn=_arch(w).ffn, heads=_arch(w).heads, kv_heads=_arch(w).kv_heads,
        vocab=4096, opt=False)})  # fmt: skip
    return GemmTable.from_rows(_gemm_rows(pairs, m_values=(1, 2, 3, 4, 5, 8, 12, 16, 17, 20, 68)))


def test_gemm_term_carries_the_two_three_row_slowdown_to_a_held_out_shape():
    rows, table = _profile_rows(), _table()
    held = _arch(384)
    with_table = LatencyModel.fit(rows, exclude=[held], gemm=table)
    without = LatencyModel.fit(rows, exclude=[held])
    assert with_table.parametric.gemm is not None
    assert (384, 1056) not in with_table.parametric.gemm.curves  # strict: its products dropped
    q = np.array([1, 2, 3, 4, 5, 17])
    for depth in (1, 4, 12):
        a = held.replace(layers=depth)
        want = _true_ms(held, depth, 1, 128, q)
        got = with_table.latency_fn(a, profiled=False)(1, 128, q)
        np.testing.assert_allclose(got, want, rtol=0.03, err_msg=f"{depth=}")
        # a verification pass over 3 tokens dearer than over 4, as measured
        assert got[2] > got[3]
    # the roofline-shaped terms alone cannot: their cost is non-decreasing in m
    worst_without = np.max(np.abs(without.latency_fn(held.replace(layers=4), profiled=False)(
        1, 128, q) / _true_ms(held, 4, 1, 128, q) - 1))  # fmt: skip
    assert worst_without > 0.05


def test_gemm_table_dtype_must_match_the_profiles():
    rows = _profile_rows()
    table = GemmTable.from_rows(_gemm_rows([(128, 128)]).assign(dtype="bf16"))
    with pytest.raises(ValueError, match="dtype"):
        LatencyModel.fit(rows, gemm=table)


@pytest.mark.skipif(not (EPYC / "gemm.csv").is_file(), reason="no committed EPYC GEMM table")
def test_committed_epyc_gemm_table_covers_its_profiled_shapes():
    table = GemmTable.from_csv(EPYC / "gemm.csv", dtype="fp32")
    rows = load_profile_rows(EPYC)
    rows = rows[rows["dtype"] == "fp32"]
    for (fam, h, f, a, kv, v), g in rows.groupby(
        ["family", "hidden", "ffn", "heads", "kv_heads", "vocab"]
    ):
        m_needed = set((g["batch"] * g["query"]).astype(int))
        for pair in model_gemms(hidden=h, ffn=f, heads=a, kv_heads=kv, vocab=v, opt=fam == "opt"):
            assert pair in table.curves, pair
            assert m_needed <= set(table.curves[pair].m.astype(int)), pair
    # the measured 2-3-row slowdown of the EPYC's fp32 kernels: t(3) > t(4) for the LM heads
    assert table.ms(3, 512, 32000) > table.ms(4, 512, 32000)
    model = LatencyModel.from_profiles(EPYC)
    assert model.parametric.gemm is not None and model.dtype == "fp32"
    assert LatencyModel.from_profiles(EPYC, use_gemm=False).parametric.gemm is None


def test_a_table_of_only_the_left_out_shape_leaves_the_gemm_terms_out():
    rows = _profile_rows()
    held = _arch(384)
    only = GemmTable.from_rows(_gemm_rows(model_gemms(
        hidden=384, ffn=held.ffn, heads=held.heads, kv_heads=held.kv_heads, vocab=4096, opt=False,
    )))  # fmt: skip
    m = LatencyModel.fit(rows, exclude=[held], gemm=only)
    assert m.parametric.gemm is None
    kept = LatencyModel.fit(rows, exclude=[held], gemm=only, exclude_gemms=False)
    assert kept.parametric.gemm is not None and (384, 384) in kept.parametric.gemm.curves
