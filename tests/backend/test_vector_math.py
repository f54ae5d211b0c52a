"""Vectorized exp/erf/tanh/sigmoid of float32 (inline polynomials in the LLVM backend) against numpy/scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest

import workbench as wb
from workbench import te


def _build_unary(fn, n: int, vectorize: bool):
    A = te.placeholder((n,), "float32", name="A")
    B = te.compute((n,), lambda i: fn(A[i]), name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    if vectorize:
        (i,) = sch.get_loops(sch.get_block("B"))
        _, inner = sch.split(i, factors=[None, 16])
        sch.vectorize(inner)
    return wb.build(sch.mod, target="llvm -mcpu=znver3")


def _run(f, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    f(x, out)
    return out


def _float32_ulps(got: np.ndarray, want64: np.ndarray) -> float:
    want = want64.astype(np.float32)
    ulp = np.spacing(np.abs(want)).astype(np.float64)
    return float((np.abs(got.astype(np.float64) - want.astype(np.float64)) / ulp).max())


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, 88.7, -87.5, -103.0, -3.4e38, 3.4e38,
                    1e-30, -1e-30], np.float32)


def test_exp_within_one_ulp_and_special_values():
    x = np.concatenate([np.linspace(-104, 88.72, 200_000, dtype=np.float32), SPECIAL,
                        np.zeros(16 - (200_000 + SPECIAL.size) % 16, np.float32)])
    got = _run(_build_unary(te.exp, x.size, True), x)
    with np.errstate(over="ignore", under="ignore"):
        want = np.exp(x.astype(np.float64))
    finite = np.isfinite(x) & (np.abs(x) < 88.72)
    assert _float32_ulps(got[finite], want[finite]) <= 1.0
    assert np.isnan(got[np.isnan(x)]).all()
    big = x > 88.72
    assert np.isposinf(got[big]).all()
    assert (got[x < -104] == 0).all()


def test_erf_close_to_scipy():
    special = pytest.importorskip("scipy.special")
    x = np.concatenate([np.linspace(-6, 6, 100_000, dtype=np.float32), SPECIAL[:5], np.zeros(11, np.float32)])
    got = _run(_build_unary(te.erf, x.size, True), x)
    want = special.erf(x.astype(np.float64))
    ok = ~np.isnan(x)
    assert np.abs(got[ok] - want[ok]).max() < 5e-7
    assert np.isnan(got[~ok]).all()


def test_tanh_within_one_ulp():
    x = np.concatenate([np.linspace(-12, 12, 100_000, dtype=np.float32), SPECIAL, np.zeros(2, np.float32)])
    got = _run(_build_unary(te.tanh, x.size, True), x)
    ok = ~np.isnan(x)
    assert _float32_ulps(got[ok], np.tanh(x[ok].astype(np.float64))) <= 1.0
    assert np.isnan(got[~ok]).all()
    assert got[x == np.inf][0] == 1.0 and got[x == -np.inf][0] == -1.0


def test_sigmoid_vectorized_matches_numpy():
    x = np.linspace(-50, 50, 4096, dtype=np.float32)
    got = _run(_build_unary(te.sigmoid, x.size, True), x)
    want = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-30)


@pytest.mark.parametrize("name", ["exp", "erf", "tanh"])
def test_vector_and_scalar_loops_agree_closely(name):
    fn = getattr(te, name)
    x = np.linspace(-5, 5, 1024, dtype=np.float32)
    vec = _run(_build_unary(fn, x.size, True), x)
    scalar = _run(_build_unary(fn, x.size, False), x)
    np.testing.assert_allclose(vec, scalar, rtol=1e-6, atol=5e-7)
    assert math.isclose(float(vec[512]), float(getattr(np, name, None)(np.float64(x[512]))
                                                   if name != "erf" else math.erf(float(x[512]))),
                        rel_tol=1e-6, abs_tol=5e-7)
