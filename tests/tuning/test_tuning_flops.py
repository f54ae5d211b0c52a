"""FLOP and byte counts from the IR equal the analytic counts written from each operator's math."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var, call
from workbench.ir.op_library import OPS
from workbench.tuning import count_bytes, count_flops
from workbench.tuning.flops import expr_flops


def _matmul(M, N, K):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis(K, name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def test_matmul_is_2mnk_and_bytes_are_the_three_matrices():
    M, N, K = 12, 10, 7
    f = _matmul(M, N, K)
    assert count_flops(f) == 2 * M * N * K          # one multiply and one add per (i, j, k)
    assert count_bytes(f) == 4 * (M * K + K * N + M * N)


def test_scheduled_matmul_keeps_the_count_even_with_non_dividing_splits():
    M, N, K = 30, 20, 10
    sch = wb.Schedule(_matmul(M, N, K))
    blk = sch.get_block("C")
    i, j, k = sch.get_loops(blk)
    io, ii = sch.split(i, factors=[None, 8])      # 30 = 4 * 8 - 2: a predicate trims the overhang
    jo, ji = sch.split(j, factors=[None, 16])
    sch.reorder(io, jo, k, ii, ji)
    sch.parallel(io)
    assert count_flops(sch) == 2 * M * N * K
    sch.decompose_reduction(blk, k)               # the init becomes its own block: still no FLOPs
    assert count_flops(sch.func) == 2 * M * N * K


def test_conv2d_with_stride_and_padding():
    n, c, h, w, k, r, stride, pad = 2, 3, 9, 9, 4, 3, 2, 1
    case = OPS["conv2d"](n=n, c=c, h=h, w=w, k=k, r=r, stride=stride, padding=pad)
    oh = (h + 2 * pad - r) // stride + 1
    ow = (w + 2 * pad - r) // stride + 1
    # each output element: c * r * r multiply-adds; the padding stage only copies
    assert count_flops(case.func) == 2 * n * k * oh * ow * c * r * r
    assert count_bytes(case.func) == 4 * (n * c * h * w + k * c * r * r + n * k * oh * ow)


def test_softmax_is_five_operations_per_element():
    case = OPS["softmax"](rows=6, cols=11)
    rows, cols = 6, 11
    # per element: a max (row maximum), a subtract and an exp, an add (row sum), a divide
    assert count_flops(case.func) == 5 * rows * cols
    assert count_bytes(case.func) == 4 * 2 * rows * cols


def test_symbolic_sizes_bind_from_arrays_or_sizes_and_unbound_ones_are_named():
    case = OPS["matmul_symbolic"]()
    f = case.func
    (m,) = [d for d in f.buffers[0].shape if isinstance(d, Var)]
    K, N = int(f.buffers[0].shape[1]), int(f.buffers[1].shape[1])
    assert count_flops(f, sizes={m.name: 9}) == 2 * 9 * N * K
    args = [np.zeros((13, K), "float32"), np.zeros((K, N), "float32"), np.zeros((13, N), "float32")]
    assert count_flops(f, args=args) == 2 * 13 * N * K
    assert count_bytes(f, args=args) == 4 * (13 * K + K * N + 13 * N)
    with pytest.raises(ValueError, match=f"`{m.name}` is symbolic"):
        count_flops(f)


def test_triangular_loop_depends_on_the_outer_variable():
    n = 50
    a, b = Var("a", "handle"), Var("b", "handle")
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    i, j = Var("i"), Var("j")
    body = For(i, 0, n, "serial", For(j, 0, i, "serial", BufferStore(B, B[i] + A[j], [i])))
    f = PrimFunc([a, b], {a: A, b: B}, body)
    assert count_flops(f) == n * (n - 1) // 2


def test_operation_convention_exp_is_one_fma_is_two_index_math_is_free():
    x = Var("x", "float32")
    i = Var("i")
    assert expr_flops(call("exp", x)) == 1
    assert expr_flops(call("fma", x, x, x)) == 2
    assert expr_flops(x * x + x / x) == 3
    assert expr_flops(i * 4 + i // 2) == 0
    assert expr_flops(wb.ir.Cast("float32", i)) == 0


def test_counts_of_the_peak_kernel_match_its_design():
    from workbench.tuning.peak import fma_kernel

    f = fma_kernel(acc=3, lanes=8)
    assert count_flops(f, sizes={"threads": 2, "iters": 5}) == 2 * 2 * 5 * 3 * 8


def test_non_program_is_refused_clearly():
    with pytest.raises(TypeError, match="needs a tensor program"):
        count_flops(lambda a: a)


def test_lowered_vector_code_counts_every_lane():
    from workbench.backend import lower

    M, N, K = 16, 64, 8
    sch = wb.Schedule(_matmul(M, N, K))
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 16])
    sch.reorder(i, jo, k, ji)
    sch.vectorize(ji)
    low = lower(sch.func)                      # float32x16 ramps and broadcasts
    assert "ramp" in low.script()
    assert count_flops(low) == 2 * M * N * K


def _int8_matmul(n):
    A = te.placeholder((n, n), "uint8", name="A")
    B = te.placeholder((n, n), "int8", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k].astype("int32") * B[k, j].astype("int32"), axis=k),
                   name="C")
    return wb.create_prim_func([A, B, C])


def test_integer_matmul_counts_its_multiply_adds():
    n = 12
    f = _int8_matmul(n)
    assert count_flops(f) == 2 * n ** 3                 # u8 x s8 -> s32: a multiply and an add per k
    sch = wb.Schedule(f)
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, 5])             # non-dividing split: the predicate trims
    assert count_flops(sch) == 2 * n ** 3


def test_integer_arithmetic_counts_on_data_but_not_in_indices():
    n = 16
    idx = te.placeholder((n,), "int32", name="idx")
    A = te.placeholder((n + 1,), "int32", name="A")
    # gather with index arithmetic on loaded data (free), then a shift and a mask of the data (2 ops)
    B = te.compute((n,), lambda i: (A[idx[i] + 1] >> 4) & 15, name="B")
    assert count_flops(wb.create_prim_func([idx, A, B])) == 2 * n
    i = Var("i")
    assert expr_flops(i * 4 + i // 2) == 0                  # index arithmetic alone stays free


def test_int8_matmul_benchmark_table_reports_its_operations():
    n = 16
    f = _int8_matmul(n)
    res = wb.benchmark({"int8": f}, target="llvm", peak=None, min_time=0.005, warmup=0.0, min_repeats=3,
                       progress=False)
    assert res["int8"].status == "ok" and res["int8"].flops == 2 * n ** 3
    assert res.table.iloc[0]["gflops"] > 0               # was 0.00: integer programs counted no work
