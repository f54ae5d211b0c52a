"""Helpers shared by the schedule tests: structural comparison and numeric checks against numpy."""
from __future__ import annotations

import numpy as np

import workbench as wb
from workbench.ir.structural import assert_structural_equal, structural_equal


def assert_program(actual, expected) -> None:
    """Structural equality, ignoring the function's name (expected programs have their own names)."""
    expected = expected.with_attr("global_symbol", actual.name)
    assert_structural_equal(actual, expected)


def run(func, *arrays) -> None:
    """Run ``func`` with the reference interpreter (writes outputs in place)."""
    from workbench.ir.interpreter import evaluate

    evaluate(func, *arrays)


def check_numeric(func, ref, shapes_in, shape_out, seed: int = 0, rtol: float = 1e-5, dtype="float32") -> None:
    """Run ``func`` on random inputs and compare its (last) output with ``ref(*inputs)``."""
    rng = np.random.default_rng(seed)
    ins = [rng.standard_normal(s).astype(dtype) for s in shapes_in]
    out = np.full(shape_out, np.nan, dtype)
    run(func, *ins, out)
    np.testing.assert_allclose(out, ref(*ins), rtol=rtol, atol=1e-5)


def assert_unchanged(sch, before_func, before_len: int) -> None:
    """After a refused request: the same program (structurally and by identity) and history length."""
    assert sch.func is before_func
    assert structural_equal(sch.func, before_func)
    assert len(sch.history) == before_len


def refused(sch, call, *args, match: str | None = None, exc=None, **kwargs):
    """Call a primitive that must be refused; check the error and that nothing changed. Returns the error."""
    import pytest

    f0, n0, t0 = sch.func, len(sch.history), len(sch.trace)
    with pytest.raises(exc or wb.ScheduleError, match=match) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, ValueError)
    assert_unchanged(sch, f0, n0)
    assert len(sch.trace) == t0
    return info.value


def check_llvm(func, ref, shapes_in, shape_out, seed: int = 1, rtol: float = 1e-5, dtype="float32") -> None:
    """Build ``func`` with the LLVM backend (skip cleanly if it is not there) and compare with numpy."""
    import pytest

    try:
        from workbench.backend import build
    except Exception as err:  # pragma: no cover - backend not there
        pytest.skip(f"LLVM backend not available: {err}")
    try:
        fn = build(func, target="llvm")
    except ImportError as err:  # pragma: no cover
        pytest.skip(f"LLVM backend not available: {err}")
    rng = np.random.default_rng(seed)
    ins = [rng.standard_normal(s).astype(dtype) for s in shapes_in]
    out = np.full(shape_out, np.nan, dtype)
    fn(*ins, out)
    np.testing.assert_allclose(out, ref(*ins), rtol=rtol, atol=1e-4)
