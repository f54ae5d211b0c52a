"""Regression tests: decompose_reduction, rfactor and blockize under non-dividing splits, rfactor's
refusals, and rfactor of max / min / product reductions. Every result is checked against numpy with the
reference interpreter (which checks bindings and buffer bounds) and with the LLVM build (whose output
array is followed by a guard region that must stay untouched)."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.interpreter import evaluate
from workbench.ir.stmt import IntImm

from .util import refused

GUARD = 64
SENTINEL = 12345.0


@wb.prim_func
def rowsum100(A: wb.Buffer((100, 100), "float32"), B: wb.Buffer((100,), "float32")):
    for i, k in wb.grid(100, 100):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vi] = 0.0
            B[vi] = B[vi] + A[vi, vk]


def _input(seed=0, shape=(100, 100)):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _interpret(func, a, n_out, dtype="float32"):
    out = np.full(n_out, np.nan if dtype == "float32" else -7, dtype)
    evaluate(func, a, out)
    return out


def _llvm_guarded(func, a, n_out, dtype="float32"):
    """Build with LLVM and run with the output followed by a guard region; check nothing wrote past its end."""
    fn = wb.build(func, target="llvm")
    buf = np.full(n_out + GUARD, SENTINEL, dtype)
    fn(a, buf[:n_out])
    assert (buf[n_out:] == SENTINEL).all(), "the program wrote past the end of its output"
    return buf[:n_out]


def _check(func, a, ref, rtol=1e-4, dtype="float32"):
    np.testing.assert_allclose(_interpret(func, a, ref.shape[0], dtype), ref, rtol=rtol, atol=1e-4)
    np.testing.assert_allclose(_llvm_guarded(func, a, ref.shape[0], dtype), ref, rtol=rtol, atol=1e-4)


def _tiled_rowsum():
    """``B[i] = sum_k A[i, k]`` over 100 x 100 with i and k split by 32 (predicated) as i_0, k_0, i_1, k_1."""
    sch = wb.Schedule(rowsum100)
    b = sch.get_block("B")
    i, k = sch.get_loops(b)
    io, ii = sch.split(i, [None, 32])
    ko, ki = sch.split(k, [None, 32])
    sch.reorder(io, ko, ii, ki)
    return sch, b, (io, ko, ii, ki)


def _realize(func, name):
    from workbench.schedule.tree import Index

    return Index(func).realize(name)


# 1. decompose_reduction keeps the spatial terms of the predicate --------------------------------------------
def test_decompose_reduction_keeps_the_spatial_predicate_for_the_init():
    sch, b, (io, ko, ii, ki) = _tiled_rowsum()
    sch.decompose_reduction(b, ko)
    assert str(_realize(sch.func, "B_init").predicate) == "i_0 * 32 + i_1_init < 100"
    assert str(_realize(sch.func, "B_update").predicate) == "i_0 * 32 + i_1 < 100 and k_0 * 32 + k_1 < 100"
    a = _input()
    _check(sch.func, a, a.sum(1))


def test_decompose_reduction_refuses_a_predicate_term_mixing_spatial_and_reduction_loops():
    @wb.prim_func
    def tri(A: wb.Buffer((8, 8), "float32"), B: wb.Buffer((8,), "float32")):
        for i, k in wb.grid(8, 8):
            with wb.block("B"):
                vi, vk = wb.axis.remap("SR", [i, k])
                wb.where(i + k < 10)
                with wb.init():
                    B[vi] = 0.0
                B[vi] = B[vi] + A[vi, vk]

    sch = wb.Schedule(tri)
    b = sch.get_block("B")
    i, k = sch.get_loops(b)
    refused(sch, sch.decompose_reduction, b, k,
            match="cannot decompose block B at loop k: the term `i \\+ k < 10` of its predicate mixes reduction loops "
                  "with loops of the spatial axes")


# 2. rfactor refusals ------------------------------------------------------------------------------------------
@wb.prim_func
def indexed_by_reduce(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((32,), "float32")):
    for i, k in wb.grid(16, 32):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vk] = 0.0
            B[vk] = B[vk] + A[vi, vk]


@wb.prim_func
def sum_from_one(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((16,), "float32")):
    for i, k in wb.grid(16, 32):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vi] = 1.0
            B[vi] = B[vi] + A[vi, vk]


@wb.prim_func
def max_from_zero(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((16,), "float32")):
    for i, k in wb.grid(16, 32):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vi] = 0.0
            B[vi] = wb.max(B[vi], A[vi, vk])


def test_rfactor_refuses_an_output_indexed_by_the_reduce_axis():
    sch = wb.Schedule(indexed_by_reduce)
    i, k = sch.get_loops(sch.get_block("B"))
    refused(sch, sch.rfactor, k, 0, match="cannot rfactor loop k: block B writes B\\[vk\\], indexed by its reduce "
                                          "axis vk")


@pytest.mark.parametrize("func, what", [(sum_from_one, "`1.0`, not 0 \\(the identity of its sum\\)"),
                                        (max_from_zero, "`0.0`, not the lowest value of the dtype \\(the identity "
                                                        "of its max\\)")])
def test_rfactor_refuses_an_init_that_is_not_the_identity(func, what):
    sch = wb.Schedule(func)
    i, k = sch.get_loops(sch.get_block("B"))
    refused(sch, sch.rfactor, k, 0, match=f"cannot rfactor loop k: the init of block B sets B to {what}")


def _rowsum_with_reduction_loop(loop: str):
    return wb.parse(f"""
@wb.prim_func
def rowsum(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((16,), "float32")):
    for i in range(16):
        for k in {loop}:
            with wb.block("B"):
                vi, vk = wb.axis.remap("SR", [i, k])
                with wb.init():
                    B[vi] = 0.0
                B[vi] = B[vi] + A[vi, vk]
""")


@pytest.mark.parametrize("loop, how", [("wb.parallel(32)", "parallel"), ("wb.vectorized(32)", "vectorized"),
                                       ("wb.unroll(32)", "unrolled"),
                                       ("wb.thread_binding(32, thread=\"threadIdx.x\")", "bound to threadIdx.x")])
def test_rfactor_refuses_a_loop_that_is_not_serial(loop, how):
    sch = wb.Schedule(_rowsum_with_reduction_loop(loop))
    i, k = sch.get_loops(sch.get_block("B"))
    refused(sch, sch.rfactor, k, 0, match=f"cannot rfactor loop k: it is {how}, and rfactor needs a serial "
                                          "reduction loop")


def test_rfactor_refuses_a_loop_unrolled_by_the_schedule():
    sch = wb.Schedule(rowsum100)
    i, k = sch.get_loops(sch.get_block("B"))
    ko, ki = sch.split(k, [None, 4])
    sch.unroll(ki)
    refused(sch, sch.rfactor, ki, 0, match="cannot rfactor loop k_1: it is unrolled")


def test_rfactor_refuses_a_loop_fused_from_spatial_and_reduction_loops():
    sch = wb.Schedule(rowsum100)
    i, k = sch.get_loops(sch.get_block("B"))
    fused = sch.fuse(i, k)
    name = sch.get(fused).loop_var.name
    refused(sch, sch.rfactor, fused, 0, match=f"cannot rfactor loop {name}: loop {name} feeds both the spatial axis "
                                              "vi and the reduce axis vk of block B")
    fo, fi = sch.split(fused, [None, 10])
    fi_name = sch.get(fi).loop_var.name
    refused(sch, sch.rfactor, fi, 0, match=f"cannot rfactor loop {fi_name}: loop {fi_name} feeds both")


# 3. rfactor under a non-dividing split ----------------------------------------------------------------------
def test_rfactor_reads_only_partials_that_exist_under_an_oversized_split():
    sch = wb.Schedule(rowsum100)
    i, k = sch.get_loops(sch.get_block("B"))
    ko, ki = sch.split(k, [None, 128])      # partials 100..127 have no iteration at all
    sch.rfactor(ki, 0)
    assert str(_realize(sch.func, "B").predicate) == "ax1 < 100"
    a = _input(1)
    _check(sch.func, a, a.sum(1))


def test_rfactor_of_an_outer_loop_split_twice():
    sch = wb.Schedule(rowsum100)
    i, k = sch.get_loops(sch.get_block("B"))
    ko, ki = sch.split(k, [None, 32])
    koo, koi = sch.split(ko, [None, 8])       # k_0 has 4 iterations; koi runs 8
    rf = sch.rfactor(koi, 1)
    sch.parallel(sch.get_loops(rf)[0])
    a = _input(2)
    _check(sch.func, a, a.sum(1))


def test_rfactor_with_a_predicated_spatial_split_keeps_dividing_programs_unpredicated():
    sch, b, (io, ko, ii, ki) = _tiled_rowsum()
    sch.rfactor(ki, 0)
    assert isinstance(_realize(sch.func, "B").predicate, IntImm)
    a = _input(3)
    _check(sch.func, a, a.sum(1))


# 4. blockize under a non-dividing split ---------------------------------------------------------------------
def test_blockize_keeps_the_split_predicate_in_the_init():
    sch, b, (io, ko, ii, ki) = _tiled_rowsum()
    outer = sch.blockize(ii)
    init = sch.get(outer).init
    assert str(init.body.predicate) == "vi_o * 32 + i_1_init < 100"
    a = _input(4)
    _check(sch.func, a, a.sum(1))


def test_blockize_of_the_inner_reduction_loop_guards_the_outer_block():
    sch, b, (io, ko, ii, ki) = _tiled_rowsum()
    outer = sch.blockize(ki)
    blk = sch.get(outer)
    assert int(blk.iter_vars[0].dom.extent) == 100
    assert str(_realize(sch.func, blk.name).predicate) == "i_0 * 32 + i_1 < 100"
    assert str(_realize(sch.func, "B").predicate) == "vk_o * 32 + k_1 < 100"
    a = _input(5)
    _check(sch.func, a, a.sum(1))


# 5. rfactor of max, min and product reductions -----------------------------------------------------------------
_prod = te.comm_reducer(lambda x, y: x * y, lambda dtype: 1, name="prod")


def _reduction(kind, dtype="float32", n=100):
    A = te.placeholder((n, n), dtype, name="A")
    k = te.reduce_axis(n, name="k")
    reducer = {"max": te.max, "min": te.min, "prod": _prod, "sum": te.sum}[kind]
    B = te.compute((n,), lambda i: reducer(A[i, k], axis=k), name="B")
    return wb.create_prim_func([A, B])


_NUMPY = {"max": lambda a: a.max(1), "min": lambda a: a.min(1), "prod": lambda a: a.prod(1, dtype="float64"),
          "sum": lambda a: a.sum(1)}


@pytest.mark.parametrize("kind", ["max", "min", "prod"])
@pytest.mark.parametrize("factor", [4, 32])   # 32 does not divide 100: a predicated split
def test_rfactor_of_max_min_and_product(kind, factor):
    sch = wb.Schedule(_reduction(kind))
    i, k = sch.get_loops(sch.get_block("B"))
    ko, ki = sch.split(k, [None, factor])
    rf = sch.rfactor(ki, 0)
    l_i, l_ko, l_ki = sch.get_loops(rf)
    sch.reorder(l_ki, l_i, l_ko)
    sch.parallel(l_ki)
    a = _input(6)
    if kind == "prod":
        a = (1.0 + 0.01 * a).astype("float32")
    _check(sch.func, a, _NUMPY[kind](a).astype("float32"), rtol=1e-4)
    update = sch.get(rf).body
    assert type(update.value).__name__ == {"max": "Max", "min": "Min", "prod": "Mul"}[kind]


def test_rfactor_of_an_int32_max_and_of_a_sum_written_value_first():
    sch = wb.Schedule(_reduction("max", "int32", n=64))
    i, k = sch.get_loops(sch.get_block("B"))
    ko, ki = sch.split(k, [None, 8])
    sch.rfactor(ko, 0)
    a = np.random.default_rng(7).integers(-1000, 1000, (64, 64)).astype("int32")
    _check(sch.func, a, a.max(1), dtype="int32")

    @wb.prim_func
    def value_first(A: wb.Buffer((16, 32), "float32"), B: wb.Buffer((16,), "float32")):
        for i, k in wb.grid(16, 32):
            with wb.block("B"):
                vi, vk = wb.axis.remap("SR", [i, k])
                with wb.init():
                    B[vi] = 0.0
                B[vi] = A[vi, vk] + B[vi]

    sch = wb.Schedule(value_first)
    i, k = sch.get_loops(sch.get_block("B"))
    ko, ki = sch.split(k, [None, 4])
    sch.rfactor(ki, 0)
    a = _input(8, (16, 32))
    _check(sch.func, a, a.sum(1))
