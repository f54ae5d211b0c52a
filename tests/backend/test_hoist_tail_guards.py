"""hoist_tail_guards: full tiles of a non-dividing split run without the split's guard inside their
inner loops; results unchanged (against numpy) for constant and symbolic sizes."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.lower import lower_blocks
from workbench.backend.lower.hoist_tail_guards import hoist_tail_guards
from workbench.ir.functor import post_order_visit
from workbench.ir.stmt import IfThenElse


def _row_tiled_matmul(m, n: int = 32, k: int = 16, rows: int = 8):
    A = te.placeholder((m, k), "float32", name="A")
    B = te.placeholder((k, n), "float32", name="B")
    r = te.reduce_axis(k, name="r")
    C = te.compute((m, n), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    blk = sch.get_block("C")
    i, j, kk = sch.get_loops(blk)
    io, ii = sch.split(i, factors=[None, rows])
    sch.reorder(io, kk, ii, j)
    sch.unroll(ii)
    sch.vectorize(j)
    return sch.mod["main"]


def _guards(stmt) -> list[str]:
    out = []
    post_order_visit(stmt, lambda n: out.append(str(n.condition)) if isinstance(n, IfThenElse) else None)
    return out


@pytest.mark.parametrize("m", [100, "symbolic"])
def test_full_tiles_run_unguarded(m):
    size = wb.var("m") if m == "symbolic" else m
    low = hoist_tail_guards(lower_blocks(_row_tiled_matmul(size)))
    top = [n for n in _guards(low.body)]
    hoisted = [c for c in top if "i_0 <" in c and "* 8" not in c]
    assert hoisted, top                      # the once-per-tile test
    outer_if = []
    post_order_visit(low.body, lambda n: outer_if.append(n) if isinstance(n, IfThenElse) and n.else_case else None)
    assert len(outer_if) == 1
    assert all("* 8" not in c for c in _guards(outer_if[0].then_case))   # unguarded copy
    assert any("* 8" in c for c in _guards(outer_if[0].else_case))       # the tail keeps its guard


@pytest.mark.parametrize("m", [1, 7, 8, 9, 100])
def test_results_match_numpy_for_any_size(m):
    func = _row_tiled_matmul(wb.var("m"))
    f = wb.build(func, target="llvm")
    rng = np.random.default_rng(m)
    a, b = rng.standard_normal((m, 16), "float32"), rng.standard_normal((16, 32), "float32")
    c = np.full((m, 32), np.nan, "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_guard_of_le_form_and_constant_size():
    A = te.placeholder((50,), "float32", name="A")
    B = te.compute((50,), lambda i: A[i] * 3.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    lp = sch.get_loops(sch.get_block("B"))[0]
    o, mid, inner = sch.split(lp, factors=[None, 4, 4])
    sch.unroll(inner)
    f = wb.build(sch.mod, target="llvm")
    a = np.arange(50, dtype="float32")
    b = np.zeros(50, "float32")
    f(a, b)
    np.testing.assert_array_equal(b, a * 3)


def test_guard_not_under_inner_loops_is_left_alone():
    A = te.placeholder((10,), "float32", name="A")
    B = te.compute((10,), lambda i: A[i] + 1.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 4])
    sch.fuse(*sch.get_loops(sch.get_block("B")))
    low = lower_blocks(sch.mod["main"])
    assert hoist_tail_guards(low) is low
