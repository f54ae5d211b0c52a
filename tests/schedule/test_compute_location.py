"""compute_at, reverse_compute_at, compute_inline, reverse_compute_inline; course exercise (a)."""
import numpy as np

import workbench as wb
from workbench.schedule import ComputeLocationError, DependenceError, InlineError

from .programs import mm_relu, mm_relu16, mm_relu_ref, two_stage, two_stage_ref
from .util import assert_program, check_llvm, check_numeric, refused


@wb.prim_func
def fan_out(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32"), D: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((16,), "float32")
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi] * 2.0
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = B[vi] + 1.0
    for i in range(16):
        with wb.block("D"):
            vi = wb.axis.spatial(16, i)
            D[vi] = B[vi] * 3.0


@wb.prim_func
def two_writes(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((16,), "float32")
    B2 = wb.alloc_buffer((16,), "float32")
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi] * 2.0
            B2[vi] = A[vi] * 3.0
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = B[vi] + B2[vi]


def test_compute_at():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        B = wb.alloc_buffer((32, 32), "float32")
        for i in range(32):
            for ax0 in range(32):
                with wb.block("B"):
                    vi = wb.axis.spatial(32, i)
                    vj = wb.axis.spatial(32, ax0)
                    B[vi, vj] = A[vi, vj] * 2.0
            for j in range(32):
                with wb.block("C"):
                    vi, vj = wb.axis.remap("SS", [i, j])
                    C[vi, vj] = B[vi, vj] + 1.0

    sch = wb.Schedule(two_stage)
    i, j = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("B"), i)
    assert_program(sch.func, expected)
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_compute_at_preserve_unit_loops():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        B = wb.alloc_buffer((32, 32), "float32")
        for i in range(32):
            for ax0, ax1 in wb.grid(1, 32):
                with wb.block("B"):
                    vi = wb.axis.spatial(32, i + ax0)
                    vj = wb.axis.spatial(32, ax1)
                    B[vi, vj] = A[vi, vj] * 2.0
            for j in range(32):
                with wb.block("C"):
                    vi, vj = wb.axis.remap("SS", [i, j])
                    C[vi, vj] = B[vi, vj] + 1.0

    sch = wb.Schedule(two_stage)
    i, j = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("B"), i, preserve_unit_loops=True)
    assert_program(sch.func, expected)
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_compute_at_inner_loop_of_split_consumer_with_guard():
    sch = wb.Schedule(two_stage)
    i, j = sch.get_loops(sch.get_block("C"))
    j0, j1 = sch.split(j, factors=[None, 5])  # 7 * 5 = 35 > 32: the consumer has a predicate
    b = sch.get_block("B")
    sch.compute_at(b, j0)
    loops = sch.get_loops(b)
    assert [sch.get(l).extent.value for l in loops] == [32, 7, 5]
    assert "j_0 * 5 + ax0 < 32" in sch.func.script()  # the producer is guarded too
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_compute_at_refusals():
    sch = wb.Schedule(fan_out)
    (ic,) = sch.get_loops(sch.get_block("C"))
    (ib,) = sch.get_loops(sch.get_block("B"))
    err = refused(sch, sch.compute_at, sch.get_block("B"), ic, exc=ComputeLocationError)
    assert err.message == ("cannot compute block B at loop i: its consumer block D is not inside loop i, "
                           "so that loop is not an ancestor of all its consumers")
    refused(sch, sch.compute_at, sch.get_block("B"), ib, exc=ComputeLocationError, match="already inside")
    refused(sch, sch.compute_at, sch.get_block("D"), ic, exc=ComputeLocationError, match="no consumer")


def test_reverse_compute_at_course_exercise_a():
    """The MLC course exercise: split j, reorder, reverse_compute_at C, decompose the reduction."""

    @wb.prim_func
    def target(A: wb.Buffer((128, 128), "float32"), B: wb.Buffer((128, 128), "float32"),
               C: wb.Buffer((128, 128), "float32")):
        Y = wb.alloc_buffer((128, 128), "float32")
        for i, j_0 in wb.grid(128, 32):
            for j_1_init in range(4):
                with wb.block("Y_init"):
                    vi = wb.axis.spatial(128, i)
                    vj = wb.axis.spatial(128, j_0 * 4 + j_1_init)
                    Y[vi, vj] = 0.0
            for k, j_1 in wb.grid(128, 4):
                with wb.block("Y_update"):
                    vi = wb.axis.spatial(128, i)
                    vj = wb.axis.spatial(128, j_0 * 4 + j_1)
                    vk = wb.axis.reduce(128, k)
                    Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
            for ax0 in range(4):
                with wb.block("C"):
                    vi = wb.axis.spatial(128, i)
                    vj = wb.axis.spatial(128, j_0 * 4 + ax0)
                    C[vi, vj] = wb.max(Y[vi, vj], 0.0)

    sch = wb.Schedule(mm_relu)
    block_Y = sch.get_block("Y")
    i, j, k = sch.get_loops(block_Y)
    j0, j1 = sch.split(j, factors=[None, 4])
    sch.reorder(j0, k, j1)
    block_C = sch.get_block("C")
    sch.reverse_compute_at(block_C, j0)
    sch.decompose_reduction(block_Y, k)
    assert_program(sch.func, target)
    check_llvm(sch.func, mm_relu_ref, [(128, 128), (128, 128)], (128, 128), rtol=1e-4)


def test_reverse_compute_at_numbers_small():
    sch = wb.Schedule(mm_relu16)
    i, j, k = sch.get_loops(sch.get_block("Y"))
    j0, j1 = sch.split(j, factors=[None, 4])
    sch.reorder(j0, k, j1)
    sch.reverse_compute_at(sch.get_block("C"), j0)
    check_numeric(sch.func, mm_relu_ref, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_reverse_compute_at_refuses_unfinished_reduction():
    sch = wb.Schedule(mm_relu16)
    i, j, k = sch.get_loops(sch.get_block("Y"))
    j0, j1 = sch.split(j, factors=[None, 4])
    sch.reorder(j0, k, j1)
    err = refused(sch, sch.reverse_compute_at, sch.get_block("C"), j1, exc=DependenceError)
    assert "producer block Y has not finished its reduction there" in err.message
    (ci, cj) = sch.get_loops(sch.get_block("C"))
    refused(sch, sch.reverse_compute_at, sch.get_block("C"), ci, exc=ComputeLocationError, match="already inside")


def test_compute_inline():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        for i, j in wb.grid(32, 32):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = A[vi, vj] * 2.0 + 1.0

    sch = wb.Schedule(two_stage)
    sch.compute_inline(sch.get_block("B"))
    assert_program(sch.func, expected)
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_compute_inline_fan_out():
    sch = wb.Schedule(fan_out)
    sch.compute_inline(sch.get_block("B"))
    rng = np.random.default_rng(0)
    a = rng.standard_normal(16).astype("float32")
    c, d = np.zeros(16, "float32"), np.zeros(16, "float32")
    wb.ir.evaluate(sch.func, a, c, d)
    np.testing.assert_allclose(c, a * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(d, a * 2 * 3, rtol=1e-6)


def test_compute_inline_refusals():
    sch = wb.Schedule(mm_relu16)
    err = refused(sch, sch.compute_inline, sch.get_block("Y"), exc=InlineError)
    assert err.message.startswith("cannot inline block Y: it is a reduction block")
    refused(sch, sch.compute_inline, sch.get_block("C"), exc=InlineError, match="an output of the function")
    sch2 = wb.Schedule(two_writes)
    refused(sch2, sch2.compute_inline, sch2.get_block("B"), exc=InlineError, match="it writes 2 buffers")


def test_reverse_compute_inline():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        for i, j in wb.grid(32, 32):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = A[vi, vj] * 2.0 + 1.0

    sch = wb.Schedule(two_stage)
    sch.reverse_compute_inline(sch.get_block("C"))
    assert_program(sch.func, expected)
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_reverse_compute_inline_refusals():
    sch = wb.Schedule(two_stage)
    refused(sch, sch.reverse_compute_inline, sch.get_block("B"), exc=InlineError,
            match="must read exactly one buffer produced by another block, but it reads 0")
    sch2 = wb.Schedule(mm_relu16)
    refused(sch2, sch2.reverse_compute_inline, sch2.get_block("C"), exc=InlineError,
            match="cannot reverse-inline into block Y: it is a reduction block")
    sch3 = wb.Schedule(fan_out)
    refused(sch3, sch3.reverse_compute_inline, sch3.get_block("C"), exc=InlineError, match="block D also reads B")


def test_compute_at_refuses_decomposed_update_block():
    sch = wb.Schedule(mm_relu16)
    y = sch.get_block("Y")
    i, j, k = sch.get_loops(y)
    sch.decompose_reduction(y, k)
    (ci, cj) = sch.get_loops(sch.get_block("C"))
    err = refused(sch, sch.compute_at, y, ci, exc=ComputeLocationError)
    assert "block Y_update" in err.message and "without its own init" in err.message


def test_compute_at_refuses_init_into_its_update():
    from .programs import matmul

    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    init = sch.decompose_reduction(c, j)
    refused(sch, sch.compute_at, init, k, exc=DependenceError,
            match="block C_update writes C too, so running C_init inside that loop would overwrite")


def test_reverse_compute_at_still_needs_a_producer_outside_the_loop_to_be_overwritten():
    """A producer outside the loop is allowed only when a block inside it rewrites all of the
    buffer they share (the cache_inplace chain); a partial update does not count."""

    @wb.prim_func
    def partial(A: wb.Buffer((16,), "float32"), Out: wb.Buffer((16,), "float32")):
        X = wb.alloc_buffer((16,), "float32")
        Z = wb.alloc_buffer((16,), "float32")
        for i in range(16):
            with wb.block("P1"):
                vi = wb.axis.spatial(16, i)
                X[vi] = A[vi]
        for i in range(8):
            with wb.block("P2"):
                vi = wb.axis.spatial(8, i)
                X[vi] = X[vi] + 1.0
        for i in range(16):
            with wb.block("P3"):
                vi = wb.axis.spatial(16, i)
                Z[vi] = A[vi] * 2.0
        for i in range(16):
            with wb.block("C"):
                vi = wb.axis.spatial(16, i)
                Out[vi] = X[vi] + Z[vi]

    sch = wb.Schedule(partial)
    (p2,) = sch.get_loops(sch.get_block("P2"))
    (p3,) = sch.get_loops(sch.get_block("P3"))
    refused(sch, sch.reverse_compute_at, sch.get_block("C"), p2, exc=ComputeLocationError,
            match="its producer block P1 is not inside loop i")
    refused(sch, sch.reverse_compute_at, sch.get_block("C"), p3, exc=ComputeLocationError,
            match="its producer block P1 is not inside loop i")
