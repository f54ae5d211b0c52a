"""TVM-parity loop primitives: merge, loop_partition, reorder_block_iter_var, sample_partitioned_tile.

Each is checked on its program text or structure, on numbers against numpy (interpreter and
LLVM), and on the requests it must refuse (leaving the schedule unchanged).
"""
import numpy as np
import pytest

import workbench as wb
from workbench.ir.interpreter import evaluate
from workbench.ir.structural import structural_equal
from workbench.ir.verify import verify_well_formed
from workbench.schedule import DependenceError, NotAChainError, ScheduleArgumentError
from workbench.schedule.tree import Index, child_blocks

from .programs import matmul, two_stage, two_stage_ref
from .util import assert_program, check_llvm, check_numeric, refused


# programs -------------------------------------------------------------------------------------------
@wb.prim_func
def chain(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((16,), "float32")
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi] * 2.0
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = B[vi] + 1.0


@wb.prim_func
def reads_next(A: wb.Buffer((16,), "float32"), C: wb.Buffer((15,), "float32")):
    B = wb.alloc_buffer((16,), "float32")
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi] * 2.0
    for i in range(15):
        with wb.block("C"):
            vi = wb.axis.spatial(15, i)
            C[vi] = B[vi + 1] + 1.0


@wb.prim_func
def reads_previous(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((17,), "float32")
    with wb.block("B0"):
        B[0] = 0.0
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi + 1] = A[vi] * 2.0
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = B[vi + 1] + B[vi]


@wb.prim_func
def war_ok(A: wb.Buffer((17,), "float32"), C: wb.Buffer((16,), "float32")):
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = A[vi + 1] * 2.0
    for i in range(16):
        with wb.block("A"):
            vi = wb.axis.spatial(16, i)
            A[vi] = 0.0


@wb.prim_func
def war_bad(A: wb.Buffer((17,), "float32"), C: wb.Buffer((16,), "float32")):
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = A[vi] * 2.0
    for i in range(16):
        with wb.block("A"):
            vi = wb.axis.spatial(16, i)
            A[vi + 1] = 0.0


@wb.prim_func
def transpose_chain(A: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32")):
    B = wb.alloc_buffer((8, 8), "float32")
    for i, j in wb.grid(8, 8):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] * 2.0
    for i, j in wb.grid(8, 8):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = B[vj, vi] + 1.0


@wb.prim_func
def with_middle(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32"), D: wb.Buffer((16,), "float32"),
                E: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((16,), "float32")
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi] * 2.0
    for i in range(16):
        with wb.block("D"):
            vi = wb.axis.spatial(16, i)
            D[vi] = A[vi] - 1.0
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = B[vi] + 1.0
    for i in range(16):
        with wb.block("E"):
            vi = wb.axis.spatial(16, i)
            E[vi] = B[vi] * 3.0


@wb.prim_func
def middle_reads(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32"), D: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((16,), "float32")
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi] * 2.0
    for i in range(16):
        with wb.block("D"):
            vi = wb.axis.spatial(16, i)
            D[vi] = B[15 - vi]
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = A[vi] + 1.0


@wb.prim_func
def ragged(A: wb.Buffer((16,), "float32"), C: wb.Buffer((8,), "float32")):
    B = wb.alloc_buffer((16,), "float32")
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi] * 2.0
    for i in range(8):
        with wb.block("C"):
            vi = wb.axis.spatial(8, i)
            C[vi] = B[vi] + 1.0


@wb.prim_func
def rowsum(A: wb.Buffer((8, 12), "float32"), B: wb.Buffer((8,), "float32")):
    for i, k in wb.grid(8, 12):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vi] = 0.0
            B[vi] = B[vi] + A[vi, vk]


@wb.prim_func
def scale(A: wb.Buffer((10,), "float32"), B: wb.Buffer((10,), "float32")):
    for i in range(10):
        with wb.block("B"):
            vi = wb.axis.spatial(10, i)
            B[vi] = A[vi] * 2.0


def _loops(sch, block):
    return sch.get_loops(sch.get_block(block))


# merge ----------------------------------------------------------------------------------------------
def test_merge_producer_consumer():
    @wb.prim_func
    def expected(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32")):
        B = wb.alloc_buffer((16,), "float32")
        for i_m in range(16):
            with wb.block("B"):
                vi = wb.axis.spatial(16, i_m)
                B[vi] = A[vi] * 2.0
            with wb.block("C"):
                vi = wb.axis.spatial(16, i_m)
                C[vi] = B[vi] + 1.0

    sch = wb.Schedule(chain)
    m = sch.merge(_loops(sch, "B")[0], _loops(sch, "C")[0])
    assert_program(sch.func, expected)
    assert sch.get(m).loop_var.name == "i_m"
    ref = lambda a: a * 2.0 + 1.0
    check_numeric(sch.func, ref, [(16,)], (16,))
    check_llvm(sch.func, ref, [(16,)], (16,))


def test_merge_two_levels_and_argument_order():
    sch = wb.Schedule(two_stage)
    bj = _loops(sch, "B")[1]
    cj = _loops(sch, "C")[1]
    m = sch.merge(cj, bj)   # both levels merge; the bodies keep program order: B before C
    b_loops, c_loops = _loops(sch, "B"), _loops(sch, "C")
    assert [sch.get(l).loop_var.name for l in b_loops] == ["i_m", "j_m"]
    assert [sch.get(l) for l in b_loops] == [sch.get(l) for l in c_loops]
    assert sch.get(m) is sch.get(b_loops[1]) and sch.get(m).extent.value == 32
    assert [r.block.name for r in _children(sch.get(m))] == ["B", "C"]
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    verify_well_formed(sch.func)


def _children(loop):
    return child_blocks(loop)


def test_merge_outer_loops_only():
    sch = wb.Schedule(two_stage)
    sch.merge(_loops(sch, "B")[0], _loops(sch, "C")[0])
    b_loops, c_loops = _loops(sch, "B"), _loops(sch, "C")
    assert sch.get(b_loops[0]) is sch.get(c_loops[0])
    assert sch.get(b_loops[1]) is not sch.get(c_loops[1])
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_merge_refuses_reading_a_later_iteration():
    sch = wb.Schedule(reads_next)
    err = refused(sch, sch.merge, _loops(sch, "B")[0], _loops(sch, "C")[0], exc=ScheduleArgumentError,
                  match="different extents|extent 15")
    assert "extent" in str(err)
    sch = wb.Schedule(reads_next)
    (bi,) = _loops(sch, "B")
    b_main, _ = sch.loop_partition(bi, [15])
    # B's first 15 iterations against C's 15: C reads B[i + 1], written one iteration later
    refused(sch, sch.merge, b_main, _loops(sch, "C")[0], exc=DependenceError,
            match="block C reads elements of buffer B that block B_i0 writes only in a later iteration")


def test_merge_allows_reading_an_earlier_iteration():
    sch = wb.Schedule(reads_previous)
    sch.merge(_loops(sch, "B")[0], _loops(sch, "C")[0])   # C reads B[i], written one iteration earlier
    ref = lambda a: a * 2.0 + np.concatenate([[0.0], a[:-1] * 2.0]).astype("float32")
    check_numeric(sch.func, ref, [(16,)], (16,))
    check_llvm(sch.func, ref, [(16,)], (16,))


def test_merge_write_after_read():
    a = np.arange(17, dtype="float32")
    # C reads A[i + 1] before the second nest zeroes A[i]: the zeroing comes one iteration behind
    sch = wb.Schedule(war_ok)
    sch.merge(_loops(sch, "C")[0], _loops(sch, "A")[0])
    a1, c1 = a.copy(), np.empty(16, "float32")
    evaluate(sch.func, a1, c1)
    np.testing.assert_allclose(c1, a[1:] * 2.0)
    np.testing.assert_allclose(a1[:16], 0.0)
    # here the zeroing of A[i + 1] would run before C reads A[i + 1] in the next iteration
    sch = wb.Schedule(war_bad)
    refused(sch, sch.merge, _loops(sch, "C")[0], _loops(sch, "A")[0], exc=DependenceError,
            match="block A writes elements of buffer A that block C still reads in a later iteration")


def test_merge_refuses_transposed_read():
    sch = wb.Schedule(transpose_chain)
    refused(sch, sch.merge, _loops(sch, "B")[0], _loops(sch, "C")[0], exc=DependenceError, match="buffer B")
    refused(sch, sch.merge, _loops(sch, "B")[1], _loops(sch, "C")[1], exc=DependenceError, match="buffer B")


def test_merge_across_an_independent_statement():
    sch = wb.Schedule(with_middle)
    sch.merge(_loops(sch, "B")[0], _loops(sch, "C")[0], _loops(sch, "E")[0])
    assert Index(sch.func).order == ["root", "D", "B", "C", "E"]
    ins = [np.random.default_rng(0).standard_normal(16).astype("float32")]
    outs = [np.empty(16, "float32") for _ in range(3)]
    evaluate(sch.func, *ins, *outs)
    a = ins[0]
    np.testing.assert_allclose(outs[0], a * 2.0 + 1.0, rtol=1e-6)
    np.testing.assert_allclose(outs[1], a - 1.0, rtol=1e-6)
    np.testing.assert_allclose(outs[2], a * 6.0, rtol=1e-6)


def test_merge_refuses_moving_past_a_reader():
    sch = wb.Schedule(middle_reads)
    refused(sch, sch.merge, _loops(sch, "B")[0], _loops(sch, "C")[0], exc=DependenceError,
            match="would move past block D")


def test_merge_refusals_of_shape():
    sch = wb.Schedule(ragged)
    refused(sch, sch.merge, _loops(sch, "B")[0], _loops(sch, "C")[0], exc=ScheduleArgumentError,
            match="loop i has extent 8, but loop i at the same depth has extent 16")
    sch = wb.Schedule(two_stage)
    bi, bj = _loops(sch, "B")
    ci, cj = _loops(sch, "C")
    refused(sch, sch.merge, bi, cj, exc=ScheduleArgumentError, match="different depths")
    refused(sch, sch.merge, bi, bj, exc=NotAChainError, match="contains another")
    refused(sch, sch.merge, bi, exc=ScheduleArgumentError, match="at least two loops")
    refused(sch, sch.merge, bi, bi, exc=ScheduleArgumentError, match="given twice")
    sch.parallel(ci)
    refused(sch, sch.merge, bi, ci, exc=ScheduleArgumentError, match="parallel")


@wb.prim_func
def imperfect(A: wb.Buffer((8, 8), "float32"), B: wb.Buffer((8, 8), "float32"), C: wb.Buffer((8, 8), "float32"),
              D: wb.Buffer((8, 8), "float32")):
    for i in range(8):
        for j in range(8):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj]
        for j in range(8):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = A[vi, vj]
    for i in range(8):
        with wb.block("outer"):
            vi = wb.axis.spatial(8, i)
            for j in range(8):
                with wb.block("D"):
                    vj = wb.axis.spatial(8, j)
                    D[vi, vj] = A[vi, vj]


def test_merge_refuses_loops_not_perfectly_nested():
    sch = wb.Schedule(imperfect)
    (di,) = _loops(sch, "outer")
    (dj,) = _loops(sch, "D")
    cj = _loops(sch, "C")[1]
    refused(sch, sch.merge, cj, dj, exc=NotAChainError, match="loop j is inside block outer")
    refused(sch, sch.merge, cj, di, exc=NotAChainError,
            match="the nest of loop j is not perfect: loop i holds several statements")
    m = sch.merge(_loops(sch, "B")[1], cj)   # side by side under loop i: fine
    assert [r.block.name for r in _children(sch.get(m))] == ["B", "C"]
    verify_well_formed(sch.func)


def test_merge_replays_from_trace():
    sch = wb.Schedule(chain)
    sch.merge(_loops(sch, "B")[0], _loops(sch, "C")[0])
    wb.assert_structural_equal(sch.trace.apply(chain).func, sch.func)


# loop_partition -------------------------------------------------------------------------------------
def test_partition_with_rest():
    @wb.prim_func
    def expected(A: wb.Buffer((10,), "float32"), B: wb.Buffer((10,), "float32")):
        for i0 in range(2):
            with wb.block("B_i0"):
                vi = wb.axis.spatial(10, i0)
                B[vi] = A[vi] * 2.0
        for i1 in range(2, 6):
            with wb.block("B_i1"):
                vi = wb.axis.spatial(10, i1)
                B[vi] = A[vi] * 2.0
        for i2 in range(6, 10):
            with wb.block("B_i2"):
                vi = wb.axis.spatial(10, i2)
                B[vi] = A[vi] * 2.0

    sch = wb.Schedule(scale)
    parts = sch.loop_partition(_loops(sch, "B")[0], factors=[2, 4])
    assert len(parts) == 3 and [sch.get(p).extent.value for p in parts] == [2, 4, 4]
    assert_program(sch.func, expected)
    ref = lambda a: a * 2.0
    check_numeric(sch.func, ref, [(10,)], (10,))
    check_llvm(sch.func, ref, [(10,)], (10,))


def test_partition_none_and_exact_sizes():
    sch = wb.Schedule(scale)
    parts = sch.loop_partition(_loops(sch, "B")[0], factors=[3, None, 2])
    assert [(sch.get(p).min.value, sch.get(p).extent.value) for p in parts] == [(0, 3), (3, 5), (8, 2)]
    sch = wb.Schedule(scale)
    parts = sch.loop_partition(_loops(sch, "B")[0], factors=[4, 6])   # covers the range: no extra part
    assert [sch.get(p).extent.value for p in parts] == [4, 6]
    check_numeric(sch.func, lambda a: a * 2.0, [(10,)], (10,))


def test_partition_an_outer_loop_copies_inner_loops():
    sch = wb.Schedule(two_stage)
    parts = sch.loop_partition(_loops(sch, "C")[0], factors=[None, 8])
    verify_well_formed(sch.func)
    a_loops, b_loops = _loops(sch, "C_i0"), _loops(sch, "C_i1")
    assert sch.get(a_loops[1]).loop_var is not sch.get(b_loops[1]).loop_var
    assert sch.get(a_loops[0]).loop_var is sch.get(parts[0]).loop_var
    # each part schedules on its own
    sch.vectorize(b_loops[1])
    sch.split(a_loops[1], factors=[None, 4])
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_partition_reduction_loop_keeps_one_init():
    sch = wb.Schedule(rowsum)
    k = _loops(sch, "B")[1]
    sch.loop_partition(k, factors=[5, None])
    verify_well_formed(sch.func)
    ref = lambda a: a.sum(axis=1)
    check_numeric(sch.func, ref, [(8, 12)], (8,))
    check_llvm(sch.func, ref, [(8, 12)], (8,))
    sch = wb.Schedule(matmul)
    k = _loops(sch, "C")[2]
    sch.loop_partition(k, factors=[3, 3, 3])
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    check_llvm(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_partition_unit_parts_without_preserving_iters():
    sch = wb.Schedule(scale)
    parts = sch.loop_partition(_loops(sch, "B")[0], factors=[1, None], preserve_unit_iters=False)
    first = Index(sch.func).realize("B_i0")
    assert first.iter_values[0].value == 0
    assert sch.get(parts[1]).extent.value == 9
    check_numeric(sch.func, lambda a: a * 2.0, [(10,)], (10,))


def test_partition_refusals():
    sch = wb.Schedule(scale)
    (i,) = _loops(sch, "B")
    refused(sch, sch.loop_partition, i, factors=[6, 6], exc=ScheduleArgumentError,
            match="add up to 12, more than the loop's extent 10")
    refused(sch, sch.loop_partition, i, factors=[None, 10], exc=ScheduleArgumentError,
            match="leaving nothing for the None partition")
    refused(sch, sch.loop_partition, i, factors=[None, None], exc=ScheduleArgumentError, match="at most one")
    refused(sch, sch.loop_partition, i, factors=[0, None], exc=ScheduleArgumentError, match="must be positive")
    refused(sch, sch.loop_partition, i, factors=[2.5], exc=ScheduleArgumentError, match="expected an int")
    refused(sch, sch.loop_partition, i, factors=4, exc=ScheduleArgumentError, match="must be a list")
    refused(sch, sch.loop_partition, i, factors=[4], preserve_unit_iters="no", exc=ScheduleArgumentError,
            match="preserve_unit_iters")
    sch.parallel(i)
    refused(sch, sch.loop_partition, i, factors=[4], exc=ScheduleArgumentError, match="parallel")


def test_partition_refuses_symbolic_and_allocating_bodies():
    n = wb.var("n")
    A = wb.te.placeholder((n,), "float32", name="A")
    B = wb.te.compute((n,), lambda i: A[i] + 1.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    refused(sch, sch.loop_partition, _loops(sch, "B")[0], factors=[4], exc=ScheduleArgumentError,
            match="not constant")

    @wb.prim_func
    def nested(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4, 4), "float32")):
        for i in range(4):
            with wb.block("outer"):
                vi = wb.axis.spatial(4, i)
                T = wb.alloc_buffer((4,), "float32")
                for j in range(4):
                    with wb.block("T"):
                        vj = wb.axis.spatial(4, j)
                        T[vj] = A[vi, vj]
                for j in range(4):
                    with wb.block("B"):
                        vj = wb.axis.spatial(4, j)
                        B[vi, vj] = T[vj] * 2.0

    sch = wb.Schedule(nested)
    refused(sch, sch.loop_partition, _loops(sch, "outer")[0], factors=[2], exc=ScheduleArgumentError,
            match="block outer inside it allocates buffer T")


def test_partition_replays_and_old_block_handle_reports():
    sch = wb.Schedule(scale)
    b = sch.get_block("B")
    sch.loop_partition(_loops(sch, "B")[0], factors=[None, 4])
    wb.assert_structural_equal(sch.trace.apply(scale).func, sch.func)
    with pytest.raises(wb.ScheduleError, match="block B was already removed by step 1"):
        sch.get_loops(b)


# reorder_block_iter_var -----------------------------------------------------------------------------
def test_reorder_block_iter_var():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
                 C: wb.Buffer((16, 16), "float32")):
        for i, j, k in wb.grid(16, 16, 16):
            with wb.block("C"):
                vk, vj, vi = wb.axis.remap("RSS", [k, j, i])
                with wb.init():
                    C[vi, vj] = 0.0
                C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]

    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    sch.reorder_block_iter_var(c, [2, 1, 0])
    assert_program(sch.func, expected)
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    check_llvm(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    f = sch.func
    sch.reorder_block_iter_var(c, [0, 1, 2])   # the identity changes nothing
    assert sch.func is f
    wb.assert_structural_equal(sch.trace.apply(matmul).func, sch.func)


def test_reorder_block_iter_var_refusals():
    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    for bad in ([0, 1], [0, 1, 1], [0, 1, 3], [True, 0, 2], "210", 2):
        refused(sch, sch.reorder_block_iter_var, c, bad, exc=ScheduleArgumentError, match="block C")


# sample_partitioned_tile ----------------------------------------------------------------------------
@wb.prim_func
def scale48(A: wb.Buffer((48,), "float32"), B: wb.Buffer((48,), "float32")):
    for i in range(48):
        with wb.block("B"):
            vi = wb.axis.spatial(48, i)
            B[vi] = A[vi] * 2.0


def test_sample_partitioned_tile_is_valid_and_explores():
    seen = set()
    for seed in range(24):
        sch = wb.Schedule(scale48, seed=seed)
        (i,) = _loops(sch, "B")
        t = [int(x) for x in sch.sample_partitioned_tile(i, n=3, partition_pos=1, innerpart_factor=8)]
        assert np.prod(t) == 48 and (t[1] * t[2]) % 8 == 0
        seen.add(tuple(t))
    assert len(seen) > 3


def test_sample_partitioned_tile_decision_recorded_and_replayed():
    sch = wb.Schedule(scale48, seed=3)
    (i,) = _loops(sch, "B")
    t = sch.sample_partitioned_tile(i, n=3, partition_pos=2, innerpart_factor=4)
    sch.split(i, factors=t)
    k = len(sch.trace) - 2
    assert sch.trace.decisions == {k: [int(x) for x in t]}
    assert "decision=" in str(sch.trace).splitlines()[k]
    wb.assert_structural_equal(sch.trace.apply(scale48).func, sch.func)
    other = sch.trace.apply(scale48, decisions={k: [1, 3, 16]})
    assert [other.get(l).extent.value for l in other.get_loops(other.get_block("B"))] == [1, 3, 16]
    assert not structural_equal(other.func, sch.func) or [int(x) for x in t] == [1, 3, 16]
    check_numeric(other.func, lambda a: a * 2.0, [(48,)], (48,))
    check_llvm(sch.func, lambda a: a * 2.0, [(48,)], (48,))


def test_sample_partitioned_tile_refusals():
    sch = wb.Schedule(scale48, seed=0)
    (i,) = _loops(sch, "B")
    refused(sch, sch.sample_partitioned_tile, i, n=2, partition_pos=1, innerpart_factor=5,
            exc=ScheduleArgumentError, match="extent 48 is not a multiple of innerpart_factor=5")
    refused(sch, sch.sample_partitioned_tile, i, n=2, partition_pos=2, exc=ScheduleArgumentError,
            match="partition_pos must be an int in 0..1")
    refused(sch, sch.sample_partitioned_tile, i, n=2, partition_pos=1, innerpart_factor=16, decision=[6, 8],
            exc=ScheduleArgumentError, match="not a multiple of innerpart_factor=16")
    refused(sch, sch.sample_partitioned_tile, i, n=2, decision=[5, 8], exc=ScheduleArgumentError,
            match="2 positive factors multiplying to 48")
    refused(sch, sch.sample_partitioned_tile, i, n=0, exc=ScheduleArgumentError, match="n must be a positive int")
