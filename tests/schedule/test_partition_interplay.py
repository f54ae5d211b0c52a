"""Primitives applied after loop_partition, whose loops start at a non-zero min (``wb.serial(3, 6)``)."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.interpreter import evaluate


def _partitioned_scale():
    A = te.placeholder((6, 4), "float32", name="A")
    B = te.compute((6, 4), lambda i, j: A[i, j] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    sch.loop_partition(sch.get_loops(sch.get_block("B"))[0], factors=[None, 3])
    return sch


def _partitioned_sum():
    A = te.placeholder((6, 4), "float32", name="A")
    k = te.reduce_axis((0, 4), name="k")
    B = te.compute((6,), lambda i: te.sum(A[i, k], axis=k), name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    sch.loop_partition(sch.get_loops(sch.get_block("B"))[0], factors=[2])
    return sch


def _check(func, ref, out_shape):
    a = np.random.default_rng(0).random((6, 4), dtype=np.float32)
    for run in (lambda *x: evaluate(func, *x), wb.build(func, target="llvm")):
        out = np.zeros(out_shape, "float32")
        run(a, out)
        np.testing.assert_allclose(out, ref(a), rtol=1e-5)


def test_blockize_partitioned_outer_loop():
    sch = _partitioned_scale()
    sch.blockize(sch.get_loops(sch.get_block("B_i1"))[0])
    _check(sch.mod, lambda a: a * 2.0, (6, 4))


def test_blockize_inside_partitioned_loop():
    sch = _partitioned_scale()
    sch.blockize(sch.get_loops(sch.get_block("B_i1"))[1])
    _check(sch.mod, lambda a: a * 2.0, (6, 4))


def test_rfactor_partitioned_spatial_loop_writes_only_its_part():
    sch = _partitioned_sum()
    sch.rfactor(sch.get_loops(sch.get_block("B_i1"))[1], factor_axis=0)
    _check(sch.mod, lambda a: a.sum(1), (6,))


def test_reindex_write_of_partitioned_loop_copies_back_only_its_part():
    sch = _partitioned_scale()
    sch.reindex(sch.get_block("B_i1"), buffer=("write", 0))
    _check(sch.mod, lambda a: a * 2.0, (6, 4))
    copy_loop = sch.get_loops(sch.get_block("B_reindex"))[0]
    assert sch.get(copy_loop).extent.value == 3


def test_decompose_reduction_of_a_reduction_part_that_starts_above_zero_is_refused():
    """Fuzzer 61205004179:matmul: after loop_partition of k into [1, 2, rest], block C_k1 (k in 1..2) never
    runs its init; decompose_reduction gave it an unconditional init that reset the k = 0 partial sum."""
    import pytest

    from workbench.schedule.errors import ScheduleError

    A = te.placeholder((4, 12), "float32", name="A")
    B = te.placeholder((12, 4), "float32", name="B")
    k = te.reduce_axis(12, name="k")
    C = te.compute((4, 4), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    sch.loop_partition(sch.get_loops(sch.get_block("C"))[2], factors=[1, 2, None])
    before = sch.func
    with pytest.raises(ScheduleError, match="reduction axis v_k at 1"):
        sch.decompose_reduction(sch.get_block("C_k1"), sch.get_loops(sch.get_block("C_k1"))[2])
    assert sch.func is before
    sch.decompose_reduction(sch.get_block("C_k0"), sch.get_loops(sch.get_block("C_k0"))[2])   # k starts at 0
    a = np.random.default_rng(1).random((4, 12), dtype=np.float32)
    b = np.random.default_rng(2).random((12, 4), dtype=np.float32)
    for run in (lambda *x: evaluate(sch.mod["main"], *x), wb.build(sch.mod, target="llvm")):
        out = np.zeros((4, 4), "float32")
        run(a, b, out)
        np.testing.assert_allclose(out, a @ b, rtol=1e-5)


IN_PLACE = """
@wb.prim_func
def main(A: wb.Buffer((8,), "float32"), O: wb.Buffer((8,), "float32")):
    for i in wb.serial(8):
        with wb.block("Acc"):
            v = wb.axis.spatial(8, i)
            wb.reads(O[v], A[v])
            wb.writes(O[v])
            O[v] = O[v] + A[v]
"""


def test_cache_read_of_a_buffer_the_block_updates_in_place_is_refused():
    """Fuzzer 71205000342:sum: cache_read of a block's own accumulator redirected its writes to the copy,
    and the copy went after the last writer: wrong results. cache_inplace is the primitive for that."""
    import pytest

    from workbench.schedule.errors import DependenceError

    sch = wb.Schedule(wb.parse(IN_PLACE))
    before = sch.func
    blk = sch.get_block("Acc")
    with pytest.raises(DependenceError, match="also writes O"):
        sch.cache_read(blk, 0, "local", consumer_blocks=[blk])
    with pytest.raises(DependenceError, match="also writes O"):
        sch.cache_read(blk, 0, "local")
    assert sch.func is before
    sch.cache_inplace(blk, 0, "local")   # the primitive for it


TWO_WRITERS = """
@wb.prim_func
def main(A: wb.Buffer((8,), "float32"), O: wb.Buffer((8,), "float32")):
    T = wb.alloc_buffer((8,), "float32")
    for i in wb.serial(4):
        with wb.block("W1"):
            v = wb.axis.spatial(4, i)
            T[v] = A[v] + 1.0
    for i in wb.serial(4):
        with wb.block("R1"):
            v = wb.axis.spatial(4, i)
            O[v] = T[v] * 2.0
    for i in wb.serial(4):
        with wb.block("W2"):
            v = wb.axis.spatial(4, i)
            T[v + 4] = A[v + 4] + 1.0
    for i in wb.serial(4):
        with wb.block("R2"):
            v = wb.axis.spatial(4, i)
            O[v + 4] = T[v + 4] * 2.0
"""


def test_cache_read_for_a_reader_before_the_last_writer_is_refused():
    """R1 reads T before W2 writes it; one copy of T after W2 (where cache_read puts it) cannot serve R1."""
    import pytest

    from workbench.schedule.errors import DependenceError

    sch = wb.Schedule(wb.parse(TWO_WRITERS))
    before = sch.func
    with pytest.raises(DependenceError, match="runs before block W2"):
        sch.cache_read(sch.get_block("R1"), 0, "local")
    assert sch.func is before
    sch.cache_read(sch.get_block("R2"), 0, "local", consumer_blocks=[sch.get_block("R2")])   # after W2: fine
    a = np.arange(8, dtype="float32")
    out = np.zeros(8, "float32")
    evaluate(sch.mod["main"], a, out)
    np.testing.assert_allclose(out, (a + 1) * 2)


def test_reduction_moved_under_a_parallel_loop_of_its_axis_is_refused():
    """Fuzzer 81205000052:softmax_symbolic: reverse_compute_at of the exp-sum (a reduction over j) under the
    parallel j loop of exp made every thread accumulate into the same row sum (a race; LLVM results wrong)."""
    import pytest

    from workbench.schedule.errors import DependenceError

    n = wb.var("n")
    A = te.placeholder((n, 16), "float32", name="A")
    E = te.compute((n, 16), lambda i, j: te.exp(A[i, j]), name="E")
    k = te.reduce_axis(16, name="k")
    S = te.compute((n,), lambda i: te.sum(E[i, k], axis=k), name="S")
    sch = wb.Schedule(wb.create_prim_func([A, S]))
    i, j = sch.get_loops(sch.get_block("E"))
    sch.parallel(j)
    before = sch.func
    with pytest.raises(DependenceError, match="inside the parallel loop j"):
        sch.reverse_compute_at(sch.get_block("S"), j)
    assert sch.func is before
    sch.reverse_compute_at(sch.get_block("S"), i)   # per row, outside the parallel loop: fine
    a = np.random.default_rng(0).random((5, 16), dtype=np.float32)
    out = np.zeros(5, "float32")
    wb.build(sch.mod, target="llvm")(a, out)
    np.testing.assert_allclose(out, np.exp(a).sum(1), rtol=1e-5)


def test_reindex_of_a_block_in_a_blockized_init_is_refused_clearly():
    """Fuzzer 91205003242:batch_matmul: reindex of C_init, which blockize put in the init of C_o, crashed with
    an IndexError (no place in C_o's body for the new stage). Now a ScheduleError naming C_o."""
    import pytest

    from workbench.schedule.errors import ScheduleError

    A = te.placeholder((2, 4, 4), "float32", name="A")
    B = te.placeholder((2, 4, 4), "float32", name="B")
    k = te.reduce_axis(4, name="k")
    C = te.compute((2, 4, 4), lambda b, i, j: te.sum(A[b, i, k] * B[b, k, j], axis=k), name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    sch.blockize(sch.get_loops(sch.get_block("C"))[0])
    before = sch.func
    with pytest.raises(ScheduleError, match="init of block C_o"):
        sch.reindex(sch.get_block("C_init"), ("write", 0))
    assert sch.func is before


def _replay(program: str, lines: list[str]):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import fuzz_schedules as fz

    return fz.replay_lines(program, lines)["failures"]


def test_unbounded_index_sets_refuse_instead_of_crashing():
    """Fuzzer 101205000742:softmax_symbolic and 101205001720:avg_pool2d: an index whose bounds the analyzer
    cannot find (None) crashed reindex / reindex_cache_read with a TypeError; now they refuse or proceed."""
    assert _replay("softmax_symbolic", [
        'b1 = sch.get_block("softmax")', 'l2, l3 = sch.get_loops(b1)', 'sch.vectorize(l2)',
        'b4 = sch.get_block("softmax")', 'sch.cache_index(b4, storage_scope="global", cse_thresh=2)',
        'b5 = sch.get_block("softmax_exp")', 'l6, l7 = sch.get_loops(b5)',
        'l8, l9 = sch.split(l6, factors=[16, None])', 'b10 = sch.get_block("softmax_maxelem")',
        'sch.set_scope(b10, buffer_index=0, storage_scope="shared")', 'b11 = sch.get_block("softmax_exp")',
        'sch.reindex(b11, ("read", 1))']) == []
    assert _replay("avg_pool2d", [
        'b8 = sch.get_block("avg_pool2d_pad")',
        'b9, b10 = sch.cache_index(b8, storage_scope="global", cse_thresh=1)',
        'b19 = sch.get_block("avg_pool2d_pad")',
        'sch.reindex_cache_read(b19, 0, "shared", lambda v0, v1, v2, v3: (v1, v0, v3, v2 // 2, v2 % 2))']) == []


def test_fuzzer_seed_121208000380_reverse_compute_at_after_one_partition_piece_is_refused():
    """The consumer placed under the loop of the second loop_partition piece (elements 3..7) would never run
    its iterations for elements 0..2, written by the first piece before that loop."""
    from workbench.schedule.errors import RegionCoverError

    x = te.placeholder((6, 8), name="x")
    y = te.compute((6, 8), lambda i, j: x[i, j] * 2.0, name="y")
    z = te.compute((6, 8), lambda i, j: y[i, j] + 1.0, name="z")
    sch = wb.Schedule(wb.create_prim_func([x, z]))
    _, j = sch.get_loops(sch.get_block("y"))
    sch.loop_partition(j, factors=[3, None])
    _, second = sch.get_loops(sch.get_block("y_j1"))
    before = sch.func
    with pytest.raises(RegionCoverError, match=r"would never run"):
        sch.reverse_compute_at(sch.get_block("z"), second)
    assert sch.func is before


def test_fuzzer_seed_121209008128_reindex_under_an_overshooting_split_copies_only_the_domain():
    """The axis bound to the inner loop of an overshooting split (8 iterations over a domain of 2, under the
    block's predicate) gave the reindex copy 8 iterations and read x[2..7, ...] past the buffer."""
    x = te.placeholder((2, 3, 4), name="x")
    y = te.compute((3, 4, 2), lambda i, j, k: x[k, i, j], name="transpose")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    i, j, k = sch.get_loops(sch.get_block("transpose"))
    k0, _ = sch.split(k, factors=[None, 8])
    sch.fuse(i, j, k0)                                  # k's binding becomes `0 * 8 + k_1`: one loop of 8
    sch.reindex(sch.get_block("transpose"), ("read", 0))
    a = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    out = np.full((3, 4, 2), np.nan, "float32")
    evaluate(sch.func, a, out)                          # bounds-checked
    np.testing.assert_array_equal(out, a.transpose(1, 2, 0))
    out[:] = np.nan
    wb.build(sch.func, target="llvm", checks=True)(a, out)
    np.testing.assert_array_equal(out, a.transpose(1, 2, 0))
