"""cache_read, cache_write, cache_inplace, set_scope, storage_align."""
import numpy as np
import pytest

import workbench as wb
from workbench.schedule import ScheduleArgumentError
from workbench.schedule.errors import DependenceError

from .programs import matmul, two_stage, two_stage_ref
from .util import assert_program, check_llvm, check_numeric, refused, run


def test_cache_read():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        B = wb.alloc_buffer((32, 32), "float32")
        A_shared = wb.alloc_buffer((32, 32), "float32", scope="shared")
        for ax0, ax1 in wb.grid(32, 32):
            with wb.block("A_shared"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                A_shared[v0, v1] = A[v0, v1]
        for i, j in wb.grid(32, 32):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A_shared[vi, vj] * 2.0
        for i, j in wb.grid(32, 32):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[vi, vj] + 1.0

    sch = wb.Schedule(two_stage)
    cache = sch.cache_read(sch.get_block("B"), 0, "shared")
    assert_program(sch.func, expected)
    assert sch.get(cache).name == "A_shared"
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_cache_read_then_compute_at():
    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    a_local = sch.cache_read(c, 1, "local")   # reads: C, A, B -> A
    sch.compute_at(a_local, i)
    loops = sch.get_loops(a_local)
    assert [sch.get(l).extent.value for l in loops] == [16, 16]  # one row of A per i
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    check_llvm(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_cache_write():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        B = wb.alloc_buffer((32, 32), "float32")
        C_local = wb.alloc_buffer((32, 32), "float32", scope="local")
        for i, j in wb.grid(32, 32):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0
        for i, j in wb.grid(32, 32):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C_local[vi, vj] = B[vi, vj] + 1.0
        for ax0, ax1 in wb.grid(32, 32):
            with wb.block("C_local"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                C[v0, v1] = C_local[v0, v1]

    sch = wb.Schedule(two_stage)
    sch.cache_write(sch.get_block("C"), 0, "local")
    assert_program(sch.func, expected)
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_cache_write_reduction_then_reverse_compute_at():
    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    wb_block = sch.cache_write(c, 0, "local")
    sch.reverse_compute_at(wb_block, i)
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_cache_refusals():
    sch = wb.Schedule(two_stage)
    b = sch.get_block("B")
    err = refused(sch, sch.cache_read, b, 3, "shared", exc=ScheduleArgumentError)
    assert "block B has no read buffer number 3; its read buffers are 0: A" in err.message
    refused(sch, sch.cache_read, b, 0, "texture", exc=ScheduleArgumentError, match="unknown storage scope 'texture'")
    refused(sch, sch.cache_write, b, 1, "local", exc=ScheduleArgumentError, match="no write buffer number 1")
    refused(sch, sch.cache_read, b, 0, "shared", consumer_blocks=[sch.get_block("C")], exc=ScheduleArgumentError,
            match="block C does not read it")


def test_set_scope_and_storage_align():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        B = wb.alloc_buffer((32, 32), "float32", scope="shared")
        for i, j in wb.grid(32, 32):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                wb.block_attr({"buffer_dim_align": [[0, 0, 32, 1]]})
                B[vi, vj] = A[vi, vj] * 2.0
        for i, j in wb.grid(32, 32):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[vi, vj] + 1.0

    sch = wb.Schedule(two_stage)
    b = sch.get_block("B")
    sch.set_scope(b, 0, "shared")
    sch.storage_align(b, 0, axis=0, factor=32, offset=1)
    assert_program(sch.func, expected)
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_set_scope_storage_align_refusals():
    sch = wb.Schedule(two_stage)
    b, c = sch.get_block("B"), sch.get_block("C")
    refused(sch, sch.set_scope, c, 0, "shared", exc=ScheduleArgumentError, match="it is a parameter of the function")
    refused(sch, sch.set_scope, b, 0, "sharde", exc=ScheduleArgumentError, match="unknown storage scope 'sharde'")
    refused(sch, sch.storage_align, b, 0, 2, 32, 1, exc=ScheduleArgumentError, match="axis 2 is out of range")
    refused(sch, sch.storage_align, b, 0, 0, 0, 1, exc=ScheduleArgumentError, match="factor must be a positive int")


def test_cache_of_symbolic_size_is_right():
    """TVM miscompiles a cache of symbolic size; ours copies exactly n elements."""

    @wb.prim_func
    def vec(a: wb.handle, b: wb.handle):
        n = wb.int32()
        A = wb.match_buffer(a, (n,), "float32")
        B = wb.match_buffer(b, (n,), "float32")
        for i in range(n):
            with wb.block("B"):
                vi = wb.axis.spatial(n, i)
                B[vi] = A[vi] + 1.0

    sch = wb.Schedule(vec)
    b = sch.get_block("B")
    sch.cache_read(b, 0, "local")
    sch.cache_write(b, 0, "local")
    (i,) = sch.get_loops(b)
    sch.split(i, factors=[None, 4])
    for n in (3, 8, 13):
        check_numeric(sch.func, lambda a: a + 1, [(n,)], (n,))
        check_llvm(sch.func, lambda a: a + 1, [(n,)], (n,))


# an accumulation into the output with no init: what tensor intrinsics describe -----------------
@wb.prim_func
def accumulate(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
               C: wb.Buffer((16, 16), "float32")):
    for i, j, k in wb.grid(16, 16, 16):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]


def _check_accumulate(func, seed=0):
    """C starts non-zero: the result must be C0 + A @ B, in the interpreter and natively."""
    from workbench.backend import build

    rng = np.random.default_rng(seed)
    a, b, c0 = (rng.standard_normal((16, 16)).astype("float32") for _ in range(3))
    want = c0 + a @ b
    c = c0.copy()
    run(func, a, b, c)
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4)
    c = c0.copy()
    build(func, target="llvm")(a, b, c)
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4)


def test_cache_write_refuses_an_in_place_update():
    """The cache would start with garbage (TVM's cache_write gives wrong results here)."""
    sch = wb.Schedule(accumulate)
    err = refused(sch, sch.cache_write, sch.get_block("C"), 0, "local", exc=DependenceError,
                  match="the block reads C before writing it")
    assert "sch.cache_inplace(block, 0, 'local')" in str(err)


def test_cache_write_refuses_a_write_that_skips_elements():
    @wb.prim_func
    def every_other_row(A: wb.Buffer((8, 8), "float32"), B: wb.Buffer((8, 8), "float32")):
        for i, j in wb.grid(4, 8):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi * 2, vj] = A[vi, vj]

    @wb.prim_func
    def guarded(A: wb.Buffer((8, 8), "float32"), B: wb.Buffer((8, 8), "float32")):
        for i, j in wb.grid(8, 8):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                if A[vi, vj] > 0.0:
                    B[vi, vj] = A[vi, vj]

    for func in (every_other_row, guarded):
        sch = wb.Schedule(func)
        refused(sch, sch.cache_write, sch.get_block("B"), 0, "local", exc=DependenceError,
                match="cannot be shown to write every element")


def test_cache_write_of_a_box_copies_back_only_that_box():
    @wb.prim_func
    def rows(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((8, 8), "float32")):
        for i, j in wb.grid(4, 8):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi + 2, vj] = A[vi, vj] * 2.0

    @wb.prim_func
    def expected(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((8, 8), "float32")):
        B_local = wb.alloc_buffer((8, 8), "float32", scope="local")
        for i, j in wb.grid(4, 8):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B_local[vi + 2, vj] = A[vi, vj] * 2.0
        for ax0, ax1 in wb.grid(4, 8):
            with wb.block("B_local"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                B[v0 + 2, v1] = B_local[v0 + 2, v1]

    from workbench.backend import build

    sch = wb.Schedule(rows)
    sch.cache_write(sch.get_block("B"), 0, "local")
    assert_program(sch.func, expected)
    rng = np.random.default_rng(0)
    a, b0 = rng.standard_normal((4, 8)).astype("float32"), rng.standard_normal((8, 8)).astype("float32")
    want = b0.copy()
    want[2:6] = a * 2
    for call in (lambda *x: run(sch.func, *x), build(sch.func, target="llvm")):
        b = b0.copy()
        call(a, b)
        np.testing.assert_array_equal(b, want)   # rows 0, 1, 6, 7 untouched


def test_cache_inplace():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
                 C: wb.Buffer((16, 16), "float32")):
        C_local = wb.alloc_buffer((16, 16), "float32", scope="local")
        for ax0, ax1 in wb.grid(16, 16):
            with wb.block("C_local_in"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                C_local[v0, v1] = C[v0, v1]
        for i, j, k in wb.grid(16, 16, 16):
            with wb.block("C"):
                vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                C_local[vi, vj] = C_local[vi, vj] + A[vi, vk] * B[vk, vj]
        for ax0, ax1 in wb.grid(16, 16):
            with wb.block("C_local"):
                v0, v1 = wb.axis.remap("SS", [ax0, ax1])
                C[v0, v1] = C_local[v0, v1]

    sch = wb.Schedule(accumulate)
    copy_in, copy_out = sch.cache_inplace(sch.get_block("C"), 0, "local")
    assert (sch.get(copy_in).name, sch.get(copy_out).name) == ("C_local_in", "C_local")
    assert_program(sch.func, expected)
    _check_accumulate(sch.func)
    assert "cache_inplace" in str(sch.trace)


@pytest.mark.parametrize("out_first", [True, False])
def test_cache_inplace_register_tile(out_first):
    """Both copies move into the tile loop (either first): the cache shrinks to one 4 x 8 tile."""
    sch = wb.Schedule(accumulate)
    c = sch.get_block("C")
    copy_in, copy_out = sch.cache_inplace(c, 0, "local")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, 4])
    jo, ji = sch.split(j, factors=[None, 8])
    sch.reorder(io, jo, k, ii, ji)
    if out_first:
        sch.reverse_compute_at(copy_out, jo)
        sch.compute_at(copy_in, jo)
    else:
        sch.compute_at(copy_in, jo)
        sch.reverse_compute_at(copy_out, jo)
    for blk in (copy_in, copy_out):
        assert [sch.get(lp).extent.value for lp in sch.get_loops(blk)] == [4, 2, 4, 8]   # io, jo, then the tile
    _check_accumulate(sch.func)
    from workbench.backend import build

    lowered = build(sch.func, target="llvm").source("lowered")
    assert 'wb.allocate((32,), "float32", scope="local")' in lowered


def test_cache_inplace_copy_in_cannot_go_inside_the_reduction():
    sch = wb.Schedule(accumulate)
    c = sch.get_block("C")
    copy_in, copy_out = sch.cache_inplace(c, 0, "local")
    i, j, k = sch.get_loops(c)
    ko, ki = sch.split(k, factors=[None, 4])
    sch.reverse_compute_at(copy_out, j)
    refused(sch, sch.compute_at, copy_in, ki, exc=DependenceError,
            match="block C writes C_local too, so running C_local_in inside that loop would overwrite")


def test_cache_inplace_refusals():
    sch = wb.Schedule(accumulate)
    c = sch.get_block("C")
    refused(sch, sch.cache_inplace, c, 1, "local", exc=ScheduleArgumentError,
            match="the block reads A but does not write it; cache_read")
    refused(sch, sch.cache_inplace, c, 0, "registers", exc=ScheduleArgumentError, match="unknown storage scope")
    refused(sch, sch.cache_inplace, c, 5, "local", exc=ScheduleArgumentError, match="no read buffer number 5")

    @wb.prim_func
    def two_updates(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        for i in range(8):
            with wb.block("C1"):
                vi = wb.axis.spatial(8, i)
                C[vi] = C[vi] + A[vi]
            with wb.block("C2"):
                vi = wb.axis.spatial(8, i)
                C[vi] = C[vi] * 2.0

    sch2 = wb.Schedule(two_updates)
    refused(sch2, sch2.cache_inplace, sch2.get_block("C1"), 0, "local", exc=DependenceError,
            match="block C2 also uses C in the same loop nest")
