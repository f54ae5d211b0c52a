"""The OpenCL backend on PoCL (or any OpenCL device): thread binding, shared memory, the corpus, errors."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir import op_library
from workbench.ir.expr import logical_and
from workbench.ir.stmt import IterType
from workbench.schedule.tree import all_realizes

cl = pytest.importorskip("pyopencl")


def _has_opencl() -> bool:
    try:
        return any(p.get_devices() for p in cl.get_platforms())
    except cl.Error:
        return False


pytestmark = pytest.mark.skipif(not _has_opencl(), reason="no OpenCL device (install pocl-opencl-icd)")

from workbench.backend.opencl import DeviceLimitError, UnboundLoopError  # noqa: E402


def gpu_schedule(func, threads: int = 64) -> wb.Schedule:
    """The generic GPU schedule: per block, fuse the spatial loops, split by ``threads``, bind
    blockIdx.x / threadIdx.x; reduce loops stay serial inside each thread."""
    sch = wb.Schedule(func)
    for name in [r.block.name for r in all_realizes(func.body) if r.block.name != "root"]:
        b = sch.get_block(name)
        loops = sch.get_loops(b)
        spatial = sum(iv.iter_type == IterType.SPATIAL for iv in sch.get(b).iter_vars)
        fused = sch.fuse(*loops[:spatial]) if spatial > 1 else loops[0]
        bx, tx = sch.split(fused, factors=[None, threads])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
    return sch


def _vector_add(n=None):
    n = te.var("n") if n is None else n
    A = te.placeholder((n,), "float32", name="A")
    B = te.placeholder((n,), "float32", name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    return gpu_schedule(wb.create_prim_func([A, B, C]))


def test_vector_add_with_bind_numpy_and_device_arrays():
    f = wb.build(_vector_add().mod, target="opencl")
    src = f.source("cl")
    assert "__kernel void main_kernel0(" in src and "get_group_id(0)" in src and "get_local_id(0)" in src
    rng = np.random.default_rng(0)
    for n in (1, 64, 1000):          # symbolic n: the launch size is computed on the host
        a, b = rng.random(n, dtype="float32"), rng.random(n, dtype="float32")
        c = np.full(n, np.nan, "float32")
        f(a, b, c)
        np.testing.assert_array_equal(c, a + b)
    dev = wb.device("opencl")
    a_d, b_d = wb.nd.array(a, dev), wb.nd.array(b, dev)
    c_d = wb.nd.empty((1000,), "float32", dev)
    f(a_d, b_d, c_d)
    np.testing.assert_array_equal(c_d.numpy(), a + b)
    assert repr(c_d) == "<NDArray (1000,) float32 on device('opencl', 0)>"


def test_row_sum_reduction_bound_with_local_accumulator():
    A = te.placeholder((37, 50), "float32", name="A")
    k = te.reduce_axis((0, 50), name="k")
    S = te.compute((37,), lambda i: te.sum(A[i, k], axis=k), name="S")
    sch = wb.Schedule(wb.create_prim_func([A, S]))
    i, _ = sch.get_loops(sch.get_block("S"))
    bx, tx = sch.split(i, factors=[None, 16])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    acc = sch.cache_write(sch.get_block("S"), 0, "local")
    sch.reverse_compute_at(acc, tx)
    f = wb.build(sch.mod, target="opencl")
    assert "for (int k = 0; k < 50; ++k)" in f.source("cl")
    a = np.random.default_rng(1).standard_normal((37, 50)).astype("float32")
    s = np.zeros(37, "float32")
    f(a, s)
    np.testing.assert_allclose(s, a.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_corpus_scheduled_for_gpu_matches_numpy():
    cases = op_library.corpus()
    funcs = {}
    for c in cases:
        (func,) = gpu_schedule(c.func).mod.functions.values()
        funcs[c.name] = func
    f = wb.build(wb.IRModule(funcs), target="opencl")   # one OpenCL program for every kernel
    for c in cases:
        c.check(lambda _func, *arrays, name=c.name: f[name](*arrays))


def test_shared_memory_window_sum_syncs_threads():
    A = te.placeholder((1026,), "float32", name="A")
    B = te.compute((1024,), lambda i: A[i] + A[i + 1] + A[i + 2], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 64])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    shared = sch.cache_read(b, 0, "shared")
    sch.compute_at(shared, bx)
    _, fetch = sch.split(sch.get_loops(shared)[-1], factors=[None, 64])   # cooperative fetch
    sch.bind(fetch, "threadIdx.x")
    f = wb.build(sch.mod, target="opencl")
    src = f.source("cl")
    assert "__local float A_shared[" in src
    fetch_at, sync_at, use_at = src.index("A_shared["), src.index("barrier(CLK_LOCAL_MEM_FENCE)"), src.index("B[")
    assert fetch_at < sync_at < use_at
    a = np.random.default_rng(2).random(1026, dtype="float32")
    out = np.zeros(1024, "float32")
    f(a, out)
    np.testing.assert_allclose(out, a[:-2] + a[1:-1] + a[2:], rtol=1e-6)


def test_barrier_at_the_end_of_a_loop_that_refills_shared_memory():
    from workbench.backend.opencl.host_device import insert_barriers

    @wb.prim_func
    def tiled(A: wb.Buffer((64,), "float32"), B: wb.Buffer((64,), "float32")):
        S = wb.alloc_buffer((8,), "float32", scope="shared")
        for t in wb.thread_binding(8, thread="threadIdx.x"):
            for ko in wb.serial(8):
                S[t] = A[ko * 8 + t]
                B[ko * 8 + t] = S[7 - t]

    from workbench.backend.lower import lower_blocks

    body = lower_blocks(tiled).body
    text = str(wb.PrimFunc(tiled.params, tiled.buffer_map, insert_barriers(body)).script())
    assert text.count("storage_sync") == 2   # after the fill (RAW) and at the end of each ko iteration (WAR)
    f = wb.build(tiled, target="opencl")
    a = np.arange(64, dtype="float32")
    b = np.zeros(64, "float32")
    f(a, b)
    np.testing.assert_array_equal(b, a.reshape(8, 8)[:, ::-1].reshape(-1))


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "int8", "float64"])
def test_dtypes(dtype):
    A = te.placeholder((100,), dtype, name="A")
    B = te.compute((100,), lambda i: A[i] * 3 + A[99 - i] // 2, name="B")
    f = wb.build(gpu_schedule(wb.create_prim_func([A, B])).mod, target="opencl")
    info = np.iinfo(dtype) if dtype != "float64" else None
    a = (np.random.default_rng(3).integers(info.min, info.max, 100, endpoint=True).astype(dtype) if info
         else np.random.default_rng(3).standard_normal(100))
    b = np.zeros(100, dtype)
    f(a, b)
    with np.errstate(over="ignore"):
        expect = a * np.array(3, dtype) + a[::-1] // np.array(2, dtype)
    if info:
        np.testing.assert_array_equal(b, expect)
    else:  # OpenCL compilers may contract a * 3 + x into one fma (one rounding fewer than numpy)
        np.testing.assert_allclose(b, expect, rtol=1e-15, atol=1e-15)


def test_bool_buffers():
    A = te.placeholder((50,), "float32", name="A")
    M = te.placeholder((50,), "bool", name="M")
    P = te.compute((50,), lambda i: logical_and(A[i] > 0.0, M[i]), name="P")
    f = wb.build(gpu_schedule(wb.create_prim_func([A, M, P])).mod, target="opencl")
    rng = np.random.default_rng(4)
    a, m = rng.standard_normal(50).astype("float32"), rng.random(50) > 0.5
    p = np.zeros(50, bool)
    f(a, m, p)
    np.testing.assert_array_equal(p, (a > 0) & m)


def test_float16_needs_the_device_extension():
    import workbench.backend.opencl.runtime as rt

    A = te.placeholder((64,), "float16", name="A")
    B = te.compute((64,), lambda i: A[i] + A[i], name="B")
    mod = gpu_schedule(wb.create_prim_func([A, B])).mod
    if "cl_khr_fp16" in rt.device_state(0).device.extensions:
        a = np.arange(64, dtype="float16")
        b = np.zeros(64, "float16")
        wb.build(mod, target="opencl")(a, b)
        np.testing.assert_array_equal(b, a + a)
    else:
        with pytest.raises(DeviceLimitError, match="float16.*cl_khr_fp16"):
            wb.build(mod, target="opencl")


# bad input ------------------------------------------------------------------------------------------------


def test_unbound_outer_loop_is_named():
    A = te.placeholder((64, 8), "float32", name="A")
    B = te.compute((64, 8), lambda i, j: A[i, j] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    with pytest.raises(UnboundLoopError, match=r"loop i \(which writes B\) is not bound to a GPU thread axis"):
        wb.build(sch.mod, target="opencl")


def test_unbound_second_stage_is_named():
    A = te.placeholder((64,), "float32", name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[i] + 1.0, name="C")
    sch = wb.Schedule(wb.create_prim_func([A, C]))
    bx, tx = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 32])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    with pytest.raises(UnboundLoopError, match=r"loop i_1? ?\(which writes C\)|loop i\w* \(which writes C\)"):
        wb.build(sch.mod, target="opencl")


def test_too_many_threads_per_block():
    sch = _vector_add(256)
    with pytest.raises(DeviceLimitError, match=r"launches 64 threads per block \(threadIdx.x = 64\), more than the "
                                               r"limit of 32 threads per block \(-max_num_threads"):
        wb.build(sch.mod, target="opencl -max_num_threads=32")
    A = te.placeholder((16384,), "float32", name="A")
    B = te.compute((16384,), lambda i: A[i] + 1.0, name="B")
    big = gpu_schedule(wb.create_prim_func([A, B]), threads=8192)
    with pytest.raises(DeviceLimitError, match=r"8192 threads per block.*max_work_group_size"):
        wb.build(big.mod, target="opencl")


def test_too_much_shared_memory():
    A = te.placeholder((1026,), "float32", name="A")
    B = te.compute((1024,), lambda i: A[i] + A[i + 2], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 64])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    shared = sch.cache_read(b, 0, "shared")
    sch.compute_at(shared, bx)
    _, fetch = sch.split(sch.get_loops(shared)[-1], factors=[None, 64])
    sch.bind(fetch, "threadIdx.x")
    with pytest.raises(DeviceLimitError, match=r"uses \d+ bytes of shared memory \(A_shared: \d+\), more than the "
                                               r"limit of 256 bytes per block"):
        wb.build(sch.mod, target="opencl -max_shared_memory_per_block=256")


def test_wrong_host_arrays():
    f = wb.build(_vector_add().mod, target="opencl")
    a = np.zeros(10, "float32")
    with pytest.raises(TypeError, match=r"argument 1 \(B\) has dtype float64 but the buffer is float32"):
        f(a, np.zeros(10), a.copy())
    with pytest.raises(ValueError, match=r"argument 1 \(B\) has 2 dimension\(s\) \(2, 5\)"):
        f(a, np.zeros((2, 5), "float32"), a.copy())
    with pytest.raises(TypeError, match=r"takes 3 argument\(s\) \(A, B, C\) but got 2"):
        f(a, a)
    with pytest.raises(TypeError, match=r"argument 2 \(C\) must be a numpy array or a wb.nd array"):
        f(a, a, [0.0] * 10)
    g = wb.build(_vector_add(8).mod, target="opencl")
    with pytest.raises(ValueError, match=r"argument 0 \(A\): A.shape\[0\] must be 8, got 10"):
        g(a, a, a.copy())


def test_device_array_round_trip_and_errors():
    dev = wb.device("opencl")
    x = np.arange(12, dtype="int64").reshape(3, 4)
    d = wb.nd.array(x, dev)
    assert d.shape == (3, 4) and d.dtype == "int64"
    np.testing.assert_array_equal(d.numpy(), x)
    with pytest.raises(ValueError, match="shape"):
        d.copyfrom(np.zeros((4, 3), "int64"))
    with pytest.raises(ValueError, match="unknown device kind 'tpu'"):
        wb.device("tpu")
