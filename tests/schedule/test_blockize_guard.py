"""blockize under an overshooting split: the outer block keeps the part of the predicate that only its
loops decide (fuzzer seed 7361000083, sym_sum), checked against numpy with the interpreter and LLVM."""

import numpy as np

import workbench as wb
from workbench import te
from workbench.ir.expr import And, IntImm
from workbench.ir.functor import Visitor

from .util import check_llvm, check_numeric


def _realize(stmt, name: str):
    """The BlockRealize of the block called ``name``."""
    found = []

    class _Find(Visitor):
        def visit_BlockRealize(self, r):
            if r.block.name == name:
                found.append(r)
            self.generic_visit(r)

    _Find().visit(stmt)
    assert len(found) == 1, name
    return found[0]


def _sym_sum():
    n = te.var("n")
    x = te.placeholder((6, n), name="x")
    k = te.reduce_axis(n, name="k")
    y = te.compute((6,), lambda i: te.sum(x[i, k], axis=k), name="y")
    return wb.create_prim_func([x, y])


def test_fuzzer_seed_7361000083_outer_block_is_guarded():
    sch = wb.Schedule(_sym_sum())
    sch.reindex_cache_write(sch.get_block("y"), 0, "shared", lambda v0, v1: (v0 // 2, v0 % 2))
    loop, = sch.get_loops(sch.get_block("y_shared"))
    _, inner = sch.split(loop, factors=[16, None])
    sch.blockize(inner)
    assert str(_realize(sch.func.body, "y_shared_o").predicate) == "i_0 < 6"
    assert str(_realize(sch.func.body, "y_shared").predicate) == "v_i_o + i_1 < 6"
    check_numeric(sch.func, lambda x: x.sum(axis=1), [(6, 5)], (6,))
    check_llvm(sch.func, lambda x: x.sum(axis=1), [(6, 5)], (6,))


def _ewise_2d():
    x = te.placeholder((10, 7), name="x")
    y = te.compute((10, 7), lambda i, j: x[i, j] * 2.0 + 1.0, name="y")
    return wb.create_prim_func([x, y])


def test_several_outer_loops_each_keep_their_guard():
    sch = wb.Schedule(_ewise_2d())
    i, j = sch.get_loops(sch.get_block("y"))
    i0, i1 = sch.split(i, factors=[8, None])  # 8 x 2 over 10
    j0, j1 = sch.split(j, factors=[5, None])  # 5 x 2 over 7
    sch.reorder(i0, j0, i1, j1)
    sch.blockize(i1)
    outer = _realize(sch.func.body, "y_o")
    assert isinstance(outer.predicate, And)
    assert str(outer.predicate) == "i_0 * 2 < 10 and j_0 * 2 < 7"
    check_numeric(sch.func, lambda x: x * 2.0 + 1.0, [(10, 7)], (10, 7))
    check_llvm(sch.func, lambda x: x * 2.0 + 1.0, [(10, 7)], (10, 7))


def test_overshooting_reduction_axis_guards_outer_block_and_init():
    x = te.placeholder((6, 10), name="x")
    k = te.reduce_axis(10, name="k")
    y = te.compute((6,), lambda i: te.sum(x[i, k], axis=k), name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    i, kk = sch.get_loops(sch.get_block("y"))
    i0, i1 = sch.split(i, factors=[4, None])   # 4 x 2 over 6: i_0 reaches 3, its axis stops at 2
    k0, k1 = sch.split(kk, factors=[8, None])  # 8 x 2 over 10: k_0 reaches 7, its axis stops at 4
    sch.reorder(i0, k0, i1, k1)
    sch.blockize(i1)
    assert str(_realize(sch.func.body, "y_o").predicate) == "i_0 * 2 < 6 and k_0 * 2 < 10"
    check_numeric(sch.func, lambda x: x.sum(axis=1), [(6, 10)], (6,))
    check_llvm(sch.func, lambda x: x.sum(axis=1), [(6, 10)], (6,))


@wb.prim_func
def _sym_bound(x: wb.Buffer(("n",), "float32"), y: wb.Buffer(("n",), "float32")):
    n = wb.int32()
    for i_0, i_1 in wb.grid(8, 4):
        with wb.block("y"):
            v_i = wb.axis.spatial(n, i_0 * 4 + i_1)
            wb.where(i_0 * 4 + i_1 < n)
            y[v_i] = x[v_i] * 3.0


def test_symbolic_bound_gives_a_symbolic_outer_guard():
    sch = wb.Schedule(_sym_bound)
    _, i1 = sch.get_loops(sch.get_block("y"))
    sch.blockize(i1)
    assert str(_realize(sch.func.body, "y_o").predicate) == "i_0 * 4 < n"
    for size in (1, 10, 32):
        check_numeric(sch.func, lambda x: x * 3.0, [(size,)], (size,))
    check_llvm(sch.func, lambda x: x * 3.0, [(10,)], (10,))


def test_guard_that_always_holds_is_not_added():
    x = te.placeholder((100,), name="x")
    y = te.compute((100,), lambda i: x[i] + 1.0, name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    i, = sch.get_loops(sch.get_block("y"))
    _, i1 = sch.split(i, factors=[None, 32])  # 4 x 32: i_0 * 32 < 100 holds for every i_0
    sch.blockize(i1)
    pred = _realize(sch.func.body, "y_o").predicate
    assert isinstance(pred, IntImm) and pred.value == 1
    assert str(_realize(sch.func.body, "y").predicate) == "v_i_o * 32 + i_1 < 100"
    check_numeric(sch.func, lambda x: x + 1.0, [(100,)], (100,))


def test_fuzzer_seed_111205008429_outer_axis_of_a_shifted_padding_binding_stays_in_its_domain():
    """decompose_padding leaves the copy block bound ``v = i - 1`` under ``where(i >= 1 and i < 7)``; the
    outer axis of blockize is ``i - 1`` over [0, 6), not ``i`` (which reaches 6) with the shift moved inside."""
    from workbench.ir.op_library.transform import pad

    x = te.placeholder((3, 6), name="x")
    y = pad(x, (1, 1), (1, 1), name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    block = sch.get_block("y")
    sch.decompose_padding(block, sch.get_loops(block)[1])
    sch.blockize(sch.get_loops(sch.get_block("y"))[1])
    outer = _realize(sch.func.body, "y_o")
    assert str(outer.iter_values[0]) == "i0 - 1", outer.iter_values
    ref = lambda a: np.pad(a, 1)  # noqa: E731
    check_numeric(sch.func, ref, [(3, 6)], (5, 8))
    check_llvm(sch.func, ref, [(3, 6)], (5, 8))


def test_fuzzer_seed_121206000776_blockize_of_a_partition_piece_keeps_no_init():
    """A ``loop_partition`` piece of a reduction (k in [2, 4)) never runs its init (that is k = 0's); blockize
    gave the new outer block an init that ran for the piece and wiped the first piece's partial sums."""
    a = te.placeholder((4, 5), name="A")
    b = te.placeholder((5, 3), name="B")
    k = te.reduce_axis((0, 5), name="k")
    c = te.compute((4, 3), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    sch = wb.Schedule(wb.create_prim_func([a, b, c]))
    kloop = sch.get_loops(sch.get_block("C"))[-1]
    sch.loop_partition(kloop, factors=[2, 2])
    sch.blockize(sch.get_loops(sch.get_block("C_k1"))[-1])
    assert _realize(sch.func.body, "C_k1_o").block.init is None
    check_numeric(sch.func, lambda x, y: x @ y, [(4, 5), (5, 3)], (4, 3))
    check_llvm(sch.func, lambda x, y: x @ y, [(4, 5), (5, 3)], (4, 3))
