"""cache_read, cache_write, set_scope, storage_align."""
import numpy as np

import workbench as wb
from workbench.schedule import ScheduleArgumentError

from .programs import matmul, two_stage, two_stage_ref
from .util import assert_program, check_llvm, check_numeric, refused


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
