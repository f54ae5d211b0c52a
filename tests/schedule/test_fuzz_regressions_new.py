"""Regressions found by the random-schedule fuzzer in the newer primitives (checked against numpy)."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir import op_library
from workbench.ir.interpreter import evaluate


def _run_both(func, case):
    """Interpreter and LLVM results of ``func`` on the case's arrays, each checked against numpy."""
    for run in (lambda *a: evaluate(func, *a), wb.build(func, target="llvm")):
        ins, outs, expected = case.make_arrays(np.random.default_rng(0))
        run(*ins, *outs)
        case.assert_close(outs, expected)


@pytest.mark.parametrize("how", ["reindex", "reindex_cache_read"])
def test_reindex_of_a_guarded_read_is_refused(how):
    """conv2d_pad reads x[v - 1] only inside if_then_else; a copy over the whole domain read x[-1]."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    b = sch.get_block("conv2d_pad")
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="out of bounds"):
        if how == "reindex":
            sch.reindex(b, ("read", 0))
        else:
            sch.reindex_cache_read(b, 0, "local", lambda v0, v1, v2, v3: (v2, v1, v3, v0))
    assert sch.func is before
    _run_both(sch.func, case)


def test_reindex_of_an_in_bounds_read_still_applies():
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    sch.reindex(sch.get_block("conv2d"), ("read", 1))
    _run_both(sch.func, case)


def test_cache_index_keeps_computations_of_different_variables_apart():
    """`v_i2 - 1` and `v_i3 - 1` are equal up to renaming, but not the same index: both were replaced
    by one index buffer over v_i2."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    blocks = sch.cache_index(sch.get_block("conv2d_pad"), "shared")
    assert len(blocks) == 2
    _run_both(sch.func, case)


def test_cache_index_merges_the_same_computation():
    A = te.placeholder((8, 3), name="A")
    B = te.compute((8, 8), lambda i, j: A[i // 2 + j // 4, j % 3] + A[i // 2 + j // 4, 0], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    blocks = sch.cache_index(sch.get_block("B"), "global")
    assert len(blocks) == 2            # i // 2 + j // 4 once, j % 3
    a = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
    ii, jj = np.indices((8, 8))
    expected = a[ii // 2 + jj // 4, jj % 3] + a[ii // 2 + jj // 4, 0]
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        out = np.full((8, 8), np.nan, "float32")
        run(a, out)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
