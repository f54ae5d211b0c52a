"""parallel, vectorize, unroll, bind, annotate, unannotate."""
import pytest

import workbench as wb
from workbench.schedule import ReductionLoopError, ScheduleArgumentError

from .programs import matmul
from .util import assert_program, check_llvm, check_numeric, refused


@wb.prim_func
def add2d(A: wb.Buffer((16, 8), "float32"), B: wb.Buffer((16, 8), "float32")):
    for i, j in wb.grid(16, 8):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] + 1.0


def test_parallel_vectorize_unroll():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 8), "float32"), B: wb.Buffer((16, 8), "float32")):
        for i in wb.parallel(16):
            for j in wb.vectorized(8):
                with wb.block("B"):
                    vi, vj = wb.axis.remap("SS", [i, j])
                    B[vi, vj] = A[vi, vj] + 1.0

    sch = wb.Schedule(add2d)
    i, j = sch.get_loops(sch.get_block("B"))
    sch.parallel(i)
    sch.vectorize(j)
    assert_program(sch.func, expected)
    check_numeric(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))
    check_llvm(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))
    sch.unroll(j)
    assert sch.get(j).kind.value == "unrolled"
    check_numeric(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))


def test_unroll_reduction_loop_is_fine():
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.unroll(k)
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


@pytest.mark.parametrize("prim", ["parallel", "vectorize"])
def test_refuse_reduction_loop(prim):
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    err = refused(sch, getattr(sch, prim), k, exc=ReductionLoopError)
    assert err.message.startswith(f"cannot {prim}")
    assert "block C uses it for its reduction axis vk" in err.message


def test_bind():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 8), "float32"), B: wb.Buffer((16, 8), "float32")):
        for i in wb.thread_binding(16, thread="blockIdx.x"):
            for j in wb.thread_binding(8, thread="threadIdx.x"):
                with wb.block("B"):
                    vi, vj = wb.axis.remap("SS", [i, j])
                    B[vi, vj] = A[vi, vj] + 1.0

    sch = wb.Schedule(add2d)
    i, j = sch.get_loops(sch.get_block("B"))
    sch.bind(i, "blockIdx.x")
    sch.bind(j, "threadIdx.x")
    assert_program(sch.func, expected)
    check_numeric(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))
    refused(sch, sch.bind, i, "threadIdx.w", exc=ScheduleArgumentError, match="unknown thread axis 'threadIdx.w'")


def test_bind_reduction_refused():
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    refused(sch, sch.bind, k, "threadIdx.x", exc=ReductionLoopError, match="cannot bind to threadIdx.x loop k")


def test_annotate_unannotate():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 8), "float32"), B: wb.Buffer((16, 8), "float32")):
        for i in wb.serial(16, annotations={"pragma_unroll": 4}):
            for j in range(8):
                with wb.block("B"):
                    vi, vj = wb.axis.remap("SS", [i, j])
                    wb.block_attr({"note": "hello"})
                    B[vi, vj] = A[vi, vj] + 1.0

    sch = wb.Schedule(add2d)
    b = sch.get_block("B")
    i, j = sch.get_loops(b)
    sch.annotate(i, "pragma_unroll", 4)
    sch.annotate(b, "note", "hello")
    assert_program(sch.func, expected)
    assert sch.get(i).annotations == {"pragma_unroll": 4}
    sch.unannotate(i, "pragma_unroll")
    sch.unannotate(b, "note")
    assert_program(sch.func, add2d)
    check_numeric(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))
    err = refused(sch, sch.unannotate, i, "pragma_unroll", exc=ScheduleArgumentError)
    assert "loop i has no annotation 'pragma_unroll'" in err.message
    refused(sch, sch.annotate, i, "", 1, exc=ScheduleArgumentError, match="non-empty string")
