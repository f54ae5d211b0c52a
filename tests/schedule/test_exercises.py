"""Course exercises redone in our API: (b) batched bmm_relu to a parallel/vectorized/unrolled target,
(c) the 1024 matmul of DESIGN.md cells 2-3 built with LLVM. (Exercise (a) is in test_compute_location.py.)"""
import numpy as np
import pytest

import workbench as wb

from .util import assert_program, check_numeric


@wb.prim_func
def bmm_relu(A: wb.Buffer((16, 128, 128), "float32"), B: wb.Buffer((16, 128, 128), "float32"),
             C: wb.Buffer((16, 128, 128), "float32")):
    Y = wb.alloc_buffer((16, 128, 128), "float32")
    for n, i, j, k in wb.grid(16, 128, 128, 128):
        with wb.block("Y"):
            vn, vi, vj, vk = wb.axis.remap("SSSR", [n, i, j, k])
            with wb.init():
                Y[vn, vi, vj] = 0.0
            Y[vn, vi, vj] = Y[vn, vi, vj] + A[vn, vi, vk] * B[vn, vk, vj]
    for n, i, j in wb.grid(16, 128, 128):
        with wb.block("C"):
            vn, vi, vj = wb.axis.remap("SSS", [n, i, j])
            C[vn, vi, vj] = wb.max(Y[vn, vi, vj], 0.0)


@wb.prim_func
def bmm_relu_small(A: wb.Buffer((2, 16, 16), "float32"), B: wb.Buffer((2, 16, 16), "float32"),
                   C: wb.Buffer((2, 16, 16), "float32")):
    Y = wb.alloc_buffer((2, 16, 16), "float32")
    for n, i, j, k in wb.grid(2, 16, 16, 16):
        with wb.block("Y"):
            vn, vi, vj, vk = wb.axis.remap("SSSR", [n, i, j, k])
            with wb.init():
                Y[vn, vi, vj] = 0.0
            Y[vn, vi, vj] = Y[vn, vi, vj] + A[vn, vi, vk] * B[vn, vk, vj]
    for n, i, j in wb.grid(2, 16, 16):
        with wb.block("C"):
            vn, vi, vj = wb.axis.remap("SSS", [n, i, j])
            C[vn, vi, vj] = wb.max(Y[vn, vi, vj], 0.0)


# the target program of the MLC course exercise, in our script form
@wb.prim_func
def bmm_relu_target(A: wb.Buffer((16, 128, 128), "float32"), B: wb.Buffer((16, 128, 128), "float32"),
                    C: wb.Buffer((16, 128, 128), "float32")):
    Y = wb.alloc_buffer((16, 128, 128), "float32")
    for i0 in wb.parallel(16):
        for i1, i2_0 in wb.grid(128, 16):
            for ax0_init in wb.vectorized(8):
                with wb.block("Y_init"):
                    n, i = wb.axis.remap("SS", [i0, i1])
                    j = wb.axis.spatial(128, i2_0 * 8 + ax0_init)
                    Y[n, i, j] = 0.0
            for ax1_0 in range(32):
                for ax1_1 in wb.unroll(4):
                    for ax0 in range(8):
                        with wb.block("Y_update"):
                            n, i = wb.axis.remap("SS", [i0, i1])
                            j = wb.axis.spatial(128, i2_0 * 8 + ax0)
                            k = wb.axis.reduce(128, ax1_0 * 4 + ax1_1)
                            Y[n, i, j] = Y[n, i, j] + A[n, i, k] * B[n, k, j]
            for i2_1 in wb.vectorized(8):
                with wb.block("C"):
                    n, i = wb.axis.remap("SS", [i0, i1])
                    j = wb.axis.spatial(128, i2_0 * 8 + i2_1)
                    C[n, i, j] = wb.max(Y[n, i, j], 0.0)


def bmm_relu_ref(a, b):
    return np.maximum(a @ b, 0.0)


def schedule_bmm(func):
    sch = wb.Schedule(func)
    y, c = sch.get_block("Y"), sch.get_block("C")
    n, i, j, k = sch.get_loops(y)
    sch.parallel(n)
    j0, j1 = sch.split(j, factors=[None, 8])
    k0, k1 = sch.split(k, factors=[None, 4])
    sch.reorder(j0, k0, k1, j1)
    sch.reverse_compute_at(c, j0)
    *_, c_inner = sch.get_loops(c)
    sch.vectorize(c_inner)
    init = sch.decompose_reduction(y, k0)
    *_, init_inner = sch.get_loops(init)
    sch.vectorize(init_inner)
    sch.unroll(k1)
    return sch


def test_bmm_relu_exercise_b():
    sch = schedule_bmm(bmm_relu)
    assert_program(sch.func, bmm_relu_target)
    try:
        from workbench.backend import build
    except Exception as err:  # pragma: no cover
        pytest.skip(f"LLVM backend not available: {err}")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((16, 128, 128)).astype("float32") for _ in range(2))
    out = np.empty((16, 128, 128), "float32")
    build(sch.func, target="llvm")(a, b, out)
    np.testing.assert_allclose(out, bmm_relu_ref(a, b), rtol=1e-4, atol=1e-4)


def test_bmm_relu_steps_small_interpreter():
    sch = schedule_bmm(bmm_relu_small)
    # every intermediate program computes the same as numpy
    for step in sch.history:
        check_numeric(step.func, bmm_relu_ref, [(2, 16, 16), (2, 16, 16)], (2, 16, 16), rtol=1e-4)


def test_matmul_1024_design_cells_2_3():
    te = wb.te
    A = te.placeholder((1024, 1024), "float32", name="A")
    B = te.placeholder((1024, 1024), "float32", name="B")
    k = te.reduce_axis(1024, name="k")
    C = te.compute((1024, 1024), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    matmul = wb.create_prim_func([A, B, C])
    sch = wb.Schedule(matmul)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, 32])
    jo, ji = sch.split(j, factors=[None, 64])
    sch.reorder(io, jo, k, ii, ji)
    sch.vectorize(ji)
    sch.parallel(io)
    assert str(sch.trace).splitlines()[-2:] == ["sch.vectorize(l7)", "sch.parallel(l4)"]
    try:
        from workbench.backend import build
    except Exception as err:  # pragma: no cover
        pytest.skip(f"LLVM backend not available: {err}")
    f = build(sch.mod, target="llvm")
    rng = np.random.default_rng(0)
    a, b = rng.random((1024, 1024), dtype="float32"), rng.random((1024, 1024), dtype="float32")
    c_out = np.empty((1024, 1024), "float32")
    f(a, b, c_out)
    np.testing.assert_allclose(c_out, a @ b, rtol=1e-4)
