"""decompose_reduction and rfactor."""
import pytest

import workbench as wb
from workbench.schedule import ScheduleArgumentError

from .programs import matmul, two_stage
from .util import assert_program, check_llvm, check_numeric, refused


@wb.prim_func
def rowsum(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((16,), "float32")):
    for i, k in wb.grid(16, 32):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vi] = 0.0
            B[vi] = B[vi] + A[vi, vk]


def test_decompose_reduction():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
                 C: wb.Buffer((16, 16), "float32")):
        for i, j in wb.grid(16, 16):
            with wb.block("C_init"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = 0.0
            for k in range(16):
                with wb.block("C_update"):
                    vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                    C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]

    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    init = sch.decompose_reduction(c, k)
    assert_program(sch.func, expected)
    assert sch.get(init).name == "C_init"
    assert sch.get(c).name == "C_update"  # the handle follows the renamed block
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    check_llvm(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_decompose_reduction_at_outer_loop_copies_spatial_loops():
    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    init = sch.decompose_reduction(c, i)
    assert [sch.get(l).loop_var.name for l in sch.get_loops(init)] == ["i_init", "j_init"]
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_decompose_reduction_refusals():
    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    sch.decompose_reduction(c, k)
    refused(sch, sch.decompose_reduction, c, k, match="it has no init statement")
    sch2 = wb.Schedule(two_stage)
    (ci, cj) = sch2.get_loops(sch2.get_block("C"))
    refused(sch2, sch2.decompose_reduction, sch2.get_block("B"), ci, match="cannot decompose block B")


def test_decompose_reduction_loop_not_ancestor():
    from .programs import mm_relu16

    sch = wb.Schedule(mm_relu16)
    (ci, cj) = sch.get_loops(sch.get_block("C"))
    err = refused(sch, sch.decompose_reduction, sch.get_block("Y"), ci, exc=ScheduleArgumentError)
    assert err.message == "cannot decompose block Y at loop i: the loop is not an ancestor of the block"


def test_rfactor():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((16,), "float32")):
        B_rf = wb.alloc_buffer((4, 16), "float32")
        for i, k_0, k_1 in wb.grid(16, 8, 4):
            with wb.block("B_rf"):
                vk_1, vi, vk_0 = wb.axis.remap("SSR", [k_1, i, k_0])
                with wb.init():
                    B_rf[vk_1, vi] = 0.0
                B_rf[vk_1, vi] = B_rf[vk_1, vi] + A[vi, vk_0 * 4 + vk_1]
        for ax0, ax1 in wb.grid(16, 4):
            with wb.block("B"):
                vi, vk_1 = wb.axis.remap("SR", [ax0, ax1])
                with wb.init():
                    B[vi] = 0.0
                B[vi] = B[vi] + B_rf[vk_1, vi]

    sch = wb.Schedule(rowsum)
    i, k = sch.get_loops(sch.get_block("B"))
    ko, ki = sch.split(k, factors=[None, 4])
    rf = sch.rfactor(ki, 0)
    assert_program(sch.func, expected)
    assert sch.get(rf).name == "B_rf"
    check_numeric(sch.func, lambda a: a.sum(1), [(16, 32)], (16,), rtol=1e-4)
    # the point of rfactor: the factored loop can now run in parallel
    l_i, l_k0, l_k1 = sch.get_loops(rf)
    sch.reorder(l_k1, l_i, l_k0)
    sch.parallel(l_k1)
    check_numeric(sch.func, lambda a: a.sum(1), [(16, 32)], (16,), rtol=1e-4)
    check_llvm(sch.func, lambda a: a.sum(1), [(16, 32)], (16,), rtol=1e-4)


def test_rfactor_refusals():
    sch = wb.Schedule(rowsum)
    i, k = sch.get_loops(sch.get_block("B"))
    refused(sch, sch.rfactor, i, 0, match="cannot rfactor loop i: it must feed exactly one reduce axis of block B")
    refused(sch, sch.rfactor, k, 5, exc=ScheduleArgumentError, match="factor_axis 5 is out of range")
    sch2 = wb.Schedule(two_stage)
    (ci, cj) = sch2.get_loops(sch2.get_block("C"))
    refused(sch2, sch2.rfactor, cj, 0, match="is not a sum reduction")


def test_decompose_reduction_inside_a_reduction_loop_is_refused():
    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    k0, k1 = sch.split(k, factors=[None, 4])
    err = refused(sch, sch.decompose_reduction, c, k1)
    assert err.message.startswith("cannot decompose block C at loop k_1: loop k_0, outside it, feeds the reduction "
                                  "axis vk")
    sch.decompose_reduction(c, k0)
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


@wb.prim_func
def rowsum_twice(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((16,), "float32")):
    for i, r, k in wb.grid(16, 2, 32):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vi] = 0.0
            B[vi] = B[vi] + A[vi, vk]


def test_decompose_reduction_refuses_a_loop_that_repeats_the_update():
    check_numeric(rowsum_twice, lambda a: a.sum(1), [(16, 32)], (16,), rtol=1e-4)
    sch = wb.Schedule(rowsum_twice)
    b = sch.get_block("B")
    i, r, k = sch.get_loops(b)
    err = refused(sch, sch.decompose_reduction, b, i)
    assert err.message.startswith("cannot decompose block B at loop i: loop r inside it feeds none of the block's axes")
    sch.decompose_reduction(b, k)  # below r: the init runs again with each repetition
    check_numeric(sch.func, lambda a: a.sum(1), [(16, 32)], (16,), rtol=1e-4)


def test_rfactor_refuses_a_block_that_shares_its_outer_loop():
    # found by the random-primitives property test: after compute_at, the final reduction of
    # rfactor would have been placed after its consumer.
    import workbench as wb
    from workbench.ir import op_library

    case = op_library.OPS["rms_norm"]()
    sch = wb.Schedule(case.func)
    consumer_loops = sch.get_loops(sch.get_block("rms_norm"))
    sch.compute_at(sch.get_block("rms_norm_sqsum"), consumer_loops[0])
    before, n = sch.func, len(sch.history)
    _, k = sch.get_loops(sch.get_block("rms_norm_sqsum"))
    with pytest.raises(wb.ScheduleError, match="shares its outer loop i0 with block.*rms_norm"):
        sch.rfactor(k, 0)
    assert sch.func is before and len(sch.history) == n
