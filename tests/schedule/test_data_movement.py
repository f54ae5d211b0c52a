"""read_at, write_at, rolling_buffer and annotate_buffer_access, checked against numpy."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.functor import post_order_visit
from workbench.ir.stmt import Allocate
from workbench.ir.structural import structural_equal
from workbench.schedule import ScheduleArgumentError
from workbench.schedule.annotations import AccessRegionError
from workbench.schedule.data_movement import DataMovementError
from workbench.schedule.rolling_buffer import RollingBufferError

from .util import check_llvm, check_numeric, refused

# programs ---------------------------------------------------------------------------------------


def _matmul(n: int = 32):
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def _elementwise(n: int = 16, factor: float = 2.0):
    A = te.placeholder((n,), "float32", name="A")
    B = te.compute((n,), lambda i: A[i] * factor, name="B")
    return wb.create_prim_func([A, B])


def _pool_chain_1d():
    A = te.placeholder((16,), "float32", name="A")
    r = te.reduce_axis(3, name="r")
    B = te.compute((14,), lambda i: te.max(A[i + r], axis=r), name="B")
    s = te.reduce_axis(3, name="s")
    C = te.compute((12,), lambda i: te.max(B[i + s], axis=s), name="C")
    return wb.create_prim_func([A, C])


def _pool_chain_2d():
    A = te.placeholder((12, 12), "float32", name="A")
    r0, r1 = te.reduce_axis(3, name="r0"), te.reduce_axis(3, name="r1")
    B = te.compute((10, 10), lambda i, j: te.max(A[i + r0, j + r1], axis=[r0, r1]), name="B")
    s0, s1 = te.reduce_axis(3, name="s0"), te.reduce_axis(3, name="s1")
    C = te.compute((8, 8), lambda i, j: te.max(B[i + s0, j + s1], axis=[s0, s1]), name="C")
    return wb.create_prim_func([A, C])


def _pool1d_ref(a):
    return np.max(np.stack([a[k:k + len(a) - 2] for k in range(3)]), 0)


def _pool2d_ref(a):
    n = a.shape[0] - 2
    return np.max(np.stack([a[p:p + n, q:q + n] for p in range(3) for q in range(3)]), 0)


def _tiled_pool_1d(sch):
    io, _ = sch.split(sch.get_loops(sch.get_block("C"))[0], factors=[None, 4])
    sch.compute_at(sch.get_block("B"), io)
    return io


def _allocations(func) -> dict:
    from workbench.backend.lower import lower

    compacted = dict(lower(func, stages=True))["compact_buffers"]
    out = {}
    post_order_visit(compacted.body, lambda n: out.setdefault(n.buffer.name, tuple(
        int(x.value) for x in n.buffer.shape)) if isinstance(n, Allocate) else None)
    return out


def _extents(sch, block) -> list[int]:
    return [sch.get(lp).extent.value for lp in sch.get_loops(block)]


# read_at / write_at -----------------------------------------------------------------------------


def test_read_at_and_write_at_tile_a_matmul():
    sch = wb.Schedule(_matmul())
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, 8])
    jo, ji = sch.split(j, factors=[None, 8])
    ko, ki = sch.split(k, factors=[None, 4])
    sch.reorder(io, jo, ko, ii, ji, ki)
    a_sh = sch.read_at(ko, c, 0, "shared")
    b_sh = sch.read_at(ko, c, 1, "shared")
    c_loc = sch.write_at(jo, c, 0, "local")
    assert _extents(sch, a_sh)[-2:] == [8, 4] and _extents(sch, b_sh)[-2:] == [4, 8]
    assert _extents(sch, c_loc) == [4, 4, 8, 8]          # io, jo, then one 8 x 8 tile
    assert sch.get(sch.get_block("C")).writes[0].buffer.name == "C_local"
    check_numeric(sch.func, lambda a, b: a @ b, [(32, 32), (32, 32)], (32, 32), rtol=1e-4)
    check_llvm(sch.func, lambda a, b: a @ b, [(32, 32), (32, 32)], (32, 32), rtol=1e-4)
    assert _allocations(sch.func)["C_local"] == (8, 8)    # lowering shrinks the cache to one tile


def test_read_at_covers_every_reader_in_the_loop():
    @wb.prim_func
    def two_readers(A: wb.Buffer((17,), "float32"), B: wb.Buffer((16,), "float32"),
                    C: wb.Buffer((16,), "float32")):
        for i in range(16):
            with wb.block("B"):
                vi = wb.axis.spatial(16, i)
                B[vi] = A[vi] * 2.0
            with wb.block("C"):
                vi = wb.axis.spatial(16, i)
                C[vi] = A[vi + 1] + 1.0

    sch = wb.Schedule(two_readers)
    (i,) = sch.get_loops(sch.get_block("B"))
    copy = sch.read_at(i, sch.get_block("B"), 0, "local")
    assert _extents(sch, copy) == [16, 2]                # A[i : i + 2], for both blocks
    for name in ("B", "C"):
        assert sch.get(sch.get_block(name)).reads[0].buffer.name == "A_local"
    rng = np.random.default_rng(0)
    a = rng.standard_normal(17).astype("float32")
    b, c = np.zeros(16, "float32"), np.zeros(16, "float32")
    wb.build(sch.mod, target="llvm")(a, b, c)
    np.testing.assert_allclose(b, a[:16] * 2.0)
    np.testing.assert_allclose(c, a[1:] + 1.0)


def test_read_at_copies_only_inside_the_buffer():
    # i splits 10 into 3 x 4 with a predicate; the copy of A[i_0 * 4 : i_0 * 4 + 4] must stop at A[9]
    # (TVM's read_at copies A[10], A[11]: out of bounds).
    sch = wb.Schedule(_elementwise(10))
    io, ii = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 4])
    copy = sch.read_at(io, sch.get_block("B"), 0, "local")
    assert "i_0 * 4 + ax0 < 10" in sch.func.script()
    assert sch.get(copy).name == "A_local"
    check_numeric(sch.func, lambda a: a * 2.0, [(10,)], (10,))
    check_llvm(sch.func, lambda a: a * 2.0, [(10,)], (10,))


def test_read_at_after_a_write_earlier_in_the_loop():
    @wb.prim_func
    def produce_then_read(X: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        T = wb.alloc_buffer((8,), "float32")
        for i in range(8):
            with wb.block("T"):
                vi = wb.axis.spatial(8, i)
                T[vi] = X[vi] + 1.0
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = T[vi] * 3.0

    sch = wb.Schedule(produce_then_read)
    (i,) = sch.get_loops(sch.get_block("B"))
    sch.read_at(i, sch.get_block("B"), 0, "local")
    names = [sch.get(b).name for b in sch.get_child_blocks(i)]
    assert names == ["T", "T_local", "B"]                 # the copy goes after the write
    check_numeric(sch.func, lambda x: (x + 1.0) * 3.0, [(8,)], (8,))


def test_read_at_refuses_a_write_after_the_read():
    @wb.prim_func
    def read_then_write(X: wb.Buffer((9,), "float32"), B: wb.Buffer((8,), "float32")):
        T = wb.alloc_buffer((9,), "float32")
        with wb.block("T0"):
            T[0] = X[0]
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = T[vi] * 3.0
            with wb.block("T"):
                vi = wb.axis.spatial(8, i)
                T[vi + 1] = X[vi + 1] + B[vi]

    sch = wb.Schedule(read_then_write)
    (i,) = sch.get_loops(sch.get_block("B"))
    refused(sch, sch.read_at, i, sch.get_block("B"), 0, "local", exc=DataMovementError,
            match="writes T after the loop first reads it")


def test_read_at_and_write_at_bad_arguments():
    sch = wb.Schedule(_matmul(8))
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    refused(sch, sch.read_at, i, c, 5, "shared", exc=ScheduleArgumentError, match="no read buffer number 5")
    refused(sch, sch.read_at, i, c, 0, "texture", exc=ScheduleArgumentError, match="unknown storage scope")
    refused(sch, sch.write_at, i, c, 1, "local", exc=ScheduleArgumentError, match="no write buffer number 1")
    other = wb.Schedule(_elementwise(8))
    (x,) = other.get_loops(other.get_block("B"))
    other.vectorize(x)
    refused(other, other.read_at, x, other.get_block("B"), 0, "local", exc=ScheduleArgumentError,
            match="vectorized")


def test_read_at_refuses_a_block_outside_the_loop():
    @wb.prim_func
    def two_nests(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = A[vi] * 2.0
        for i in range(8):
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = A[vi] + 1.0

    sch = wb.Schedule(two_nests)
    (i,) = sch.get_loops(sch.get_block("B"))
    refused(sch, sch.read_at, i, sch.get_block("C"), 0, "local", exc=ScheduleArgumentError,
            match="block C is not inside loop i")


def test_write_at_after_decompose_reduction():
    sch = wb.Schedule(_matmul(16))
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, 4])
    sch.decompose_reduction(c, ii)
    copy = sch.write_at(io, c, 0, "local")
    assert _extents(sch, copy) == [4, 4, 16]
    assert sch.get(sch.get_block("C_init")).writes[0].buffer.name == "C_local"
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    check_llvm(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_write_at_refuses_a_write_with_a_predicate():
    # 10 = 3 x 4 with a predicate: copying back B[i_0 * 4 : i_0 * 4 + 4] would write B[10], B[11]
    sch = wb.Schedule(_elementwise(10))
    io, ii = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 4])
    refused(sch, sch.write_at, io, sch.get_block("B"), 0, "local", exc=DataMovementError,
            match="write every element")


def test_write_at_refuses_gaps_in_the_written_region():
    @wb.prim_func
    def strided(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i, j in wb.grid(2, 4):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i * 4 + j)
                B[vi * 2] = A[vi * 2] * 2.0

    sch = wb.Schedule(strided)
    i, j = sch.get_loops(sch.get_block("B"))
    err = refused(sch, sch.write_at, i, sch.get_block("B"), 0, "local", exc=DataMovementError)
    assert "steps by 2" in err.detail


def test_write_at_refuses_a_read_after_the_last_write():
    @wb.prim_func
    def write_then_read(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = A[vi] * 2.0
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = B[vi] + 1.0

    sch = wb.Schedule(write_then_read)
    (i,) = sch.get_loops(sch.get_block("B"))
    refused(sch, sch.write_at, i, sch.get_block("B"), 0, "local", exc=DataMovementError,
            match="reads B after the last block that writes it")


def test_write_at_refuses_an_update_without_init():
    # C[i] += A[i] reads C as the caller gave it: a write cache would start with garbage
    @wb.prim_func
    def accumulate(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        for i in range(8):
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = C[vi] + A[vi]

    sch = wb.Schedule(accumulate)
    (i,) = sch.get_loops(sch.get_block("C"))
    refused(sch, sch.write_at, i, sch.get_block("C"), 0, "local", exc=DataMovementError,
            match="block C reads C in the loop")


def test_write_at_refuses_a_reduction_spanning_outer_loops():
    sch = wb.Schedule(_matmul(8))
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    sch.reorder(k, i, j)
    refused(sch, sch.write_at, i, c, 0, "local", exc=DataMovementError, match="block C reads C in the loop")


# rolling_buffer ---------------------------------------------------------------------------------


def test_rolling_buffer_1d_pool_chain():
    sch = wb.Schedule(_pool_chain_1d())
    _tiled_pool_1d(sch)
    sch.rolling_buffer(sch.get_block("B"), 0)
    b = sch.get(sch.get_block("B"))
    assert [int(x.value) for x in b.writes[0].buffer.shape] == [6]
    assert "wb.where(i_0 < 1 or ax0 >= 2)" in sch.func.script()
    ref = lambda a: _pool1d_ref(_pool1d_ref(a))  # noqa: E731
    check_numeric(sch.func, ref, [(16,)], (12,))
    check_llvm(sch.func, ref, [(16,)], (12,))
    assert structural_equal(sch.trace.apply(_pool_chain_1d()).func, sch.func)


def test_rolling_buffer_2d_pool_chain():
    sch = wb.Schedule(_pool_chain_2d())
    i, j, _, _ = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, 4])
    jo, ji = sch.split(j, factors=[None, 4])
    sch.reorder(io, jo, ii, ji)
    sch.compute_at(sch.get_block("B"), jo)
    sch.rolling_buffer(sch.get_block("B"), 0)
    b = sch.get(sch.get_block("B"))
    assert [int(x.value) for x in b.writes[0].buffer.shape] == [6, 10]   # rolled along i, full along j
    assert "(i_0 < 1 or ax0 >= 2) and (j_0 < 1 or ax1 >= 2)" in sch.func.script()
    ref = lambda a: _pool2d_ref(_pool2d_ref(a))  # noqa: E731
    check_numeric(sch.func, ref, [(12, 12)], (8, 8))
    check_llvm(sch.func, ref, [(12, 12)], (8, 8))


def test_rolling_buffer_refuses_an_output_and_an_untiled_chain():
    sch = wb.Schedule(_pool_chain_1d())
    refused(sch, sch.rolling_buffer, sch.get_block("B"), 0, exc=RollingBufferError, match="share no loop")
    _tiled_pool_1d(sch)
    refused(sch, sch.rolling_buffer, sch.get_block("C"), 0, exc=RollingBufferError,
            match="parameter of the function")
    refused(sch, sch.rolling_buffer, sch.get_block("B"), 3, exc=ScheduleArgumentError,
            match="no write buffer number 3")


def test_rolling_buffer_refuses_windows_that_do_not_overlap():
    A = te.placeholder((16,), "float32", name="A")
    B = te.compute((16,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((16,), lambda i: B[i] + 1.0, name="C")
    sch = wb.Schedule(wb.create_prim_func([A, C]))
    io, _ = sch.split(sch.get_loops(sch.get_block("C"))[0], factors=[None, 4])
    sch.compute_at(sch.get_block("B"), io)
    refused(sch, sch.rolling_buffer, sch.get_block("B"), 0, exc=RollingBufferError, match="do not overlap")


def test_rolling_buffer_refuses_a_parallel_rolling_loop():
    sch = wb.Schedule(_pool_chain_1d())
    io = _tiled_pool_1d(sch)
    sch.parallel(io)
    refused(sch, sch.rolling_buffer, sch.get_block("B"), 0, exc=RollingBufferError, match="run in order")


def test_rolling_buffer_refuses_a_partial_window():
    # 14 rows of C in tiles of 4: the last tile's producer has a predicate, so a window may be partial
    A = te.placeholder((18,), "float32", name="A")
    r = te.reduce_axis(3, name="r")
    B = te.compute((16,), lambda i: te.max(A[i + r], axis=r), name="B")
    s = te.reduce_axis(3, name="s")
    C = te.compute((14,), lambda i: te.max(B[i + s], axis=s), name="C")
    sch = wb.Schedule(wb.create_prim_func([A, C]))
    _tiled_pool_1d(sch)
    refused(sch, sch.rolling_buffer, sch.get_block("B"), 0, exc=RollingBufferError, match="whole window")


def test_rolling_buffer_refuses_a_consumer_reading_outside_the_window():
    @wb.prim_func
    def reaches_back(A: wb.Buffer((8,), "float32"), C: wb.Buffer((3,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i_0 in range(3):
            for ax0 in range(4):
                with wb.block("B"):
                    vi = wb.axis.spatial(8, i_0 * 2 + ax0)
                    B[vi] = A[vi] * 2.0
            with wb.block("C"):
                vi = wb.axis.spatial(3, i_0)
                C[vi] = B[vi * 2] + B[wb.max(vi * 2 - 2, 0)]

    sch = wb.Schedule(reaches_back)
    refused(sch, sch.rolling_buffer, sch.get_block("B"), 0, exc=RollingBufferError,
            match="block C reads elements outside the window")


# annotate_buffer_access -------------------------------------------------------------------------


def _halves():
    A = te.placeholder((8,), "float32", name="A")
    B = te.compute((4,), lambda i: A[i * 2] + A[i * 2 + 1], name="B")
    return wb.create_prim_func([A, B])


def test_annotate_buffer_access_sets_the_region_and_replays():
    sch = wb.Schedule(_halves())
    b = sch.get_block("B")
    sch.annotate_buffer_access(b, 0, "read", lambda vi: ((0, 8),))
    blk = sch.get(b)
    assert str(blk.reads[0]) == "A[0:8]"
    assert list(blk.annotations["explicit_read_region"]) == [0]
    assert "gen_new_ranges=lambda vi: ((0, 8),)" in str(sch.trace)
    assert structural_equal(sch.trace.apply(_halves()).func, sch.func)
    assert structural_equal(wb.parse(sch.func.script()), sch.func)
    check_numeric(sch.func, lambda a: a[0::2] + a[1::2], [(8,)], (4,))


def test_annotate_buffer_access_region_is_what_read_at_copies():
    sch = wb.Schedule(_halves())
    b = sch.get_block("B")
    (i,) = sch.get_loops(b)
    sch.annotate_buffer_access(b, 0, "read", lambda vi: ((0, 8),))
    copy = sch.read_at(i, b, 0, "local")
    assert _extents(sch, copy) == [4, 8]
    check_llvm(sch.func, lambda a: a[0::2] + a[1::2], [(8,)], (4,))


def test_annotate_buffer_access_refuses_a_region_that_misses_accesses():
    sch = wb.Schedule(_halves())
    b = sch.get_block("B")
    err = refused(sch, sch.annotate_buffer_access, b, 0, "read", lambda vi: (vi * 2,), exc=AccessRegionError,
                  match="does not cover")
    assert "A[v_i * 2:v_i * 2 + 2]" in err.message
    refused(sch, sch.annotate_buffer_access, b, 0, "write", lambda vi: ((0, 2),), exc=AccessRegionError,
            match="does not cover")


def test_annotate_buffer_access_refuses_a_region_outside_the_buffer():
    sch = wb.Schedule(_halves())
    refused(sch, sch.annotate_buffer_access, sch.get_block("B"), 0, "read", lambda vi: ((vi * 2 - 1, vi * 2 + 2),),
            exc=AccessRegionError, match="outside A's shape")


@pytest.mark.parametrize("args, match", [
    ((0, "readwrite", lambda vi: (vi,)), "must be \"read\" or \"write\""),
    ((1, "read", lambda vi: (vi,)), "no read buffer number 1"),
    ((0, "read", lambda vi, vj: (vi,)), "1 iteration variables"),
    ((0, "read", lambda vi: (vi, vi)), "2 ranges for a buffer of 1 dimensions"),
    ((0, "read", lambda vi: ((vi, vi + 1, 2),)), "each range must be"),
    ((0, "read", "A[0:8]"), "must be a function"),
])
def test_annotate_buffer_access_bad_arguments(args, match):
    sch = wb.Schedule(_halves())
    refused(sch, sch.annotate_buffer_access, sch.get_block("B"), *args, exc=ScheduleArgumentError, match=match)


def test_read_at_with_a_symbolic_size():
    n = wb.var("n")
    A = te.placeholder((n,), "float32", name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    io, _ = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 4])
    sch.read_at(io, sch.get_block("B"), 0, "local")
    assert "i_0 * 4 + ax0 < n" in sch.func.script()
    a = np.random.default_rng(0).standard_normal(10).astype("float32")
    out = np.zeros(10, "float32")
    wb.build(sch.mod, target="llvm")(a, out)
    np.testing.assert_allclose(out, a * 2.0)
    refused(sch, sch.write_at, io, sch.get_block("B"), 0, "local", exc=DataMovementError, match="write every element")


def test_read_at_copies_what_a_block_reads_beyond_its_declared_region():
    @wb.prim_func
    def narrow_region(A: wb.Buffer((9,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                wb.reads(A[vi])          # too small: the block also reads A[vi + 1]
                wb.writes(B[vi])
                B[vi] = A[vi] + A[vi + 1]

    sch = wb.Schedule(narrow_region)
    (i,) = sch.get_loops(sch.get_block("B"))
    copy = sch.read_at(i, sch.get_block("B"), 0, "local")
    assert _extents(sch, copy) == [8, 2]
    check_numeric(sch.func, lambda a: a[:8] + a[1:], [(9,)], (8,))


def test_an_explicit_region_survives_region_inference():
    from workbench.ir.arith import infer_block_access_regions

    sch = wb.Schedule(_halves())
    b = sch.get_block("B")
    sch.annotate_buffer_access(b, 0, "read", lambda vi: ((0, 8),))
    blk = sch.get(b)
    reads, _ = infer_block_access_regions(blk)      # what every primitive does after changing a body
    assert str(reads[0]) == "A[0:8]"
    plain = blk.replace(annotations={})
    assert str(infer_block_access_regions(plain)[0][0]) == "A[v_i * 2:v_i * 2 + 2]"
    (i,) = sch.get_loops(b)
    sch.split(i, factors=[None, 2])
    assert str(sch.get(b).reads[0]) == "A[0:8]"
    check_numeric(sch.func, lambda a: a[0::2] + a[1::2], [(8,)], (4,))


def _take_program(n_ids: int = 5):
    from workbench.ir.op_library import transform as ops

    table = te.placeholder((20, 8), name="table")
    ids = te.placeholder((n_ids,), "int32", name="ids")
    return wb.create_prim_func([table, ids, ops.take(table, ids, axis=0, name="take")])


def _check_take(func, seed: int, ids: list, interpreter: bool) -> None:
    """``func`` gathers rows of a random table by ``ids`` exactly as numpy does, built with bound checks (and,
    with ``interpreter``, in the bounds-checked interpreter too)."""
    from workbench.ir.interpreter import evaluate

    table = np.random.default_rng(seed).standard_normal((20, 8)).astype("float32")
    ids = np.array(ids, "int32")
    runners = ([lambda *a: evaluate(func, *a)] if interpreter else []) + [wb.build(func, target="llvm", checks=True)]
    for run in runners:
        out = np.full((5, 8), np.nan, "float32")
        run(table, ids, out)
        np.testing.assert_array_equal(out, table[ids])


def test_read_at_a_data_dependent_region_under_an_overshooting_split_keeps_the_guard():
    """fuzzer 121207004975:take: the copy's region `table[ids[i], :]` was computed for i = 5..7 (ids has 5
    entries), where the reader's predicate `i < 5` skips the iteration: the copy now runs under it."""
    sch = wb.Schedule(_take_program())
    i, _ = sch.get_loops(sch.get_block("take"))
    _, inner = sch.split(i, factors=[8, 8])
    sch.read_at(inner, sch.get_block("take"), 0, "local")
    _check_take(sch.func, seed=0, ids=[3, 19, 0, 7, 7], interpreter=True)


def test_read_at_above_the_data_dependent_loop_copies_the_whole_table():
    """At the outer loop the region over the inner loop's ids is not known: the whole table is copied, with no
    read of ids in the copy, and the result is still right under the overshooting split."""
    sch = wb.Schedule(_take_program())
    i, _ = sch.get_loops(sch.get_block("take"))
    outer, _ = sch.split(i, factors=[2, 4])
    sch.read_at(outer, sch.get_block("take"), 0, "local")
    _check_take(sch.func, seed=1, ids=[19, 0, 4, 4, 11], interpreter=False)


def test_read_at_and_write_at_inside_a_blockized_block_are_refused():
    """Inside the block made by blockize, a region starts at the outer block's variable (``x[v_i0_o, v]``); a
    copy there could only be bound to it, which a binding may not use: refused with the reason (read_at once
    made an ill-formed program here; fixed slice of the fuzzer, seed 11, gelu_tanh)."""
    x = te.placeholder((4, 8), name="x")
    y = te.compute((4, 8), lambda i, j: x[i, j] * 2.0, name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    i, j = sch.get_loops(sch.get_block("y"))
    sch.blockize(j)
    (inner,) = sch.get_loops(sch.get_block("y"))
    refused(sch, sch.read_at, inner, sch.get_block("y"), 0, "local", exc=DataMovementError,
            match="(?s)use v_i_o .*iteration variable of the enclosing block y_o.*outside block y_o")
    refused(sch, sch.write_at, inner, sch.get_block("y"), 0, "local", exc=DataMovementError,
            match="use v_i_o .*iteration variable of the enclosing block y_o")
    # at the loop outside the blockized block read_at still applies, and the program still computes x * 2
    sch.read_at(i, sch.get_block("y_o"), 0, "local")
    check_llvm(sch.func, lambda a: a * 2.0, [(4, 8)], (4, 8))
