"""The CUDA backend: CUDA C and PTX through NVRTC without a GPU (every corpus operator, dtypes, tensor cores);
clear errors without a driver; running and matching numpy where an NVIDIA GPU exists (skipped elsewhere)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir import op_library
from workbench.ir.expr import logical_and
from workbench.ir.stmt import IterType
from workbench.schedule.tree import all_realizes

pytest.importorskip("cuda.bindings.nvrtc", reason="the cuda extra is not installed (pip install 'workbench[cuda]')")

from workbench.backend.cuda import CUDACodegenError, DeviceLimitError, UnboundLoopError  # noqa: E402
from workbench.backend.cuda.runtime import NO_DRIVER, driver_version  # noqa: E402
from workbench.backend.target import BackendUnavailableError  # noqa: E402

HAS_GPU = driver_version() is not None
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no NVIDIA GPU and driver on this machine")
no_gpu_only = pytest.mark.skipif(HAS_GPU, reason="this machine has a CUDA driver")
ARCH = "cuda -arch=sm_80"


def gpu_schedule(func, threads: int = 256) -> wb.Schedule:
    """The generic GPU schedule (as in test_opencl.py): per block, fuse the spatial loops, split by ``threads``,
    bind blockIdx.x / threadIdx.x; reduce loops stay serial inside each thread."""
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


def wmma_matmul(M: int = 256, N: int = 256, K: int = 256, warps=(2, 2)) -> wb.Schedule:
    """fp16 x fp16 -> fp32 matmul on tensor cores: each warp (threadIdx.y/z) owns 16 x 16 tiles of C, zeroes
    them with wmma_fill and accumulates 16 x 16 x 16 wmma steps over k."""
    A = te.placeholder((M, K), "float16", name="A")
    B = te.placeholder((K, N), "float16", name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k].astype("float32") * B[k, j].astype("float32"), axis=k),
                   name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    blk = sch.get_block("C")
    i, j, kk = sch.get_loops(blk)
    bi, wi, i1 = sch.split(i, factors=[None, warps[0], 16])
    bj, wj, j1 = sch.split(j, factors=[None, warps[1], 16])
    k0, _ = sch.split(kk, factors=[None, 16])
    sch.reorder(bi, bj, wi, wj, k0, i1, j1)
    sch.bind(bi, "blockIdx.y")
    sch.bind(bj, "blockIdx.x")
    sch.bind(wi, "threadIdx.z")
    sch.bind(wj, "threadIdx.y")
    init = sch.decompose_reduction(blk, k0)
    sch.tensorize(i1, "wmma_16x16x16_f16f32")
    sch.tensorize(sch.get_loops(init)[-2], "wmma_fill_16x16_f32")
    return sch


def _vector_add():
    n = te.var("n")
    A = te.placeholder((n,), "float32", name="A")
    B = te.placeholder((n,), "float32", name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    return gpu_schedule(wb.create_prim_func([A, B, C]))


# without a GPU: CUDA C and PTX ---------------------------------------------------------------------------


def test_vector_add_cuda_source_and_ptx():
    f = wb.build(_vector_add().mod, target=ARCH)
    src = f.source("cuda")
    assert 'extern "C" __global__ void __launch_bounds__(256) main_kernel0(' in src
    assert "blockIdx.x" in src and "threadIdx.x" in src and "const int n" in src
    ptx = f.source("ptx")
    assert ".target sm_80" in ptx and ".visible .entry main_kernel0(" in ptx
    assert f["main"].source("ptx") == ptx and f["main"].source("cuda") == src


def test_every_corpus_operator_compiles_to_ptx():
    cases = op_library.corpus()
    funcs = {c.name: next(iter(gpu_schedule(c.func).mod.functions.values())) for c in cases}
    f = wb.build(wb.IRModule(funcs), target=ARCH)            # one CUDA program, one NVRTC run
    ptx = f.source("ptx")
    kernels = [k.name for fn in f.functions.values() for k in fn.kernels.values()]
    assert len(kernels) >= len(cases)
    for name in kernels:
        assert f".visible .entry {name}(" in ptx
    assert set(f.functions) == {c.name for c in cases}


def test_shared_memory_becomes_shared_arrays_and_syncthreads():
    A = te.placeholder((1026,), "float32", name="A")
    B = te.compute((1024,), lambda i: A[i] + A[i + 1] + A[i + 2], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 64])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    shared = sch.cache_read(b, 0, "shared")
    sch.compute_at(shared, bx)
    _, fetch = sch.split(sch.get_loops(shared)[-1], factors=[None, 64])
    sch.bind(fetch, "threadIdx.x")
    f = wb.build(sch.mod, target=ARCH)
    src = f.source("cuda")
    assert "__shared__ float A_shared[" in src
    assert src.index("A_shared[") < src.index("__syncthreads();") < src.index("B[")
    assert "bar.sync" in f.source("ptx")


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64", "uint32", "float16", "float64"])
def test_dtypes_compile(dtype):
    A = te.placeholder((100,), dtype, name="A")
    B = te.compute((100,), lambda i: A[i] * 3 + A[99 - i] // 2, name="B")
    f = wb.build(gpu_schedule(wb.create_prim_func([A, B])).mod, target=ARCH)
    assert ".visible .entry main_kernel0(" in f.source("ptx")
    if dtype == "float16":   # stored as 16 bits, computed in float, rounded back to half after each operation
        assert "unsigned short* __restrict__ A" in f.source("cuda") and "wb_rh(" in f.source("cuda")
        assert "cvt.rn.f16.f32" in f.source("ptx")


def test_bool_and_nonfinite_constants_compile():
    A = te.placeholder((50,), "float32", name="A")
    M = te.placeholder((50,), "bool", name="M")
    P = te.compute((50,), lambda i: logical_and(A[i] > float("-inf"), M[i]), name="P")
    Q = te.compute((50,), lambda i: te.max(A[i], float("nan")), name="Q")
    f = wb.build(gpu_schedule(wb.create_prim_func([A, M, P, Q])).mod, target=ARCH)
    src = f.source("cuda")
    assert "unsigned char* __restrict__ M" in src and "__int_as_float(" in src


def test_tensorized_fp16_matmul_uses_tensor_cores():
    f = wb.build(wmma_matmul().mod, target=ARCH)
    ptx = f.source("ptx")
    assert "wmma.mma.sync.aligned.row.row.m16n16k16.f32.f32" in ptx
    assert "wmma.load.a.sync" in ptx and "wmma.store.d.sync" in ptx
    (k,) = f["main"].kernels.values()
    assert [int(x) for x in k.block] == [32, 2, 2]          # one warp per (threadIdx.y, threadIdx.z)
    assert f["main"].params[2].written                      # C is written by the wmma call
    assert "wmma_16x16x16_f16f32" in wb.list_tensor_intrins().names()


def test_warp_intrinsic_inside_threadidx_x_is_refused():
    sch = wmma_matmul()
    sch2 = wb.Schedule(sch.mod)
    # rebinding the warps to threadIdx.x would give each lane different tiles
    text = sch2.func.script().replace('thread="threadIdx.y"', 'thread="threadIdx.x"')
    from workbench.ir.parser import parse

    with pytest.raises(CUDACodegenError, match="warp-collective.*threadIdx.x"):
        wb.build(parse(text), target=ARCH)


# bad input ------------------------------------------------------------------------------------------------


def test_unbound_outer_loop_is_named():
    A = te.placeholder((64, 8), "float32", name="A")
    B = te.compute((64, 8), lambda i, j: A[i, j] * 2.0, name="B")
    with pytest.raises(UnboundLoopError, match=r"loop i \(which writes B\).*cuda target"):
        wb.build(wb.create_prim_func([A, B]), target=ARCH)


def test_too_much_shared_memory_names_the_limit():
    A = te.placeholder((16384,), "float32", name="A")
    B = te.compute((16384,), lambda i: A[i] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 1024])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    shared = sch.cache_read(b, 0, "shared")
    sch.compute_at(shared, bx)
    _, fetch = sch.split(sch.get_loops(shared)[-1], factors=[None, 1024])
    sch.bind(fetch, "threadIdx.x")
    with pytest.raises(DeviceLimitError, match=r"shared memory.*limit of 1024 bytes per block"):
        wb.build(sch.mod, target=ARCH + " -max_shared_memory_per_block=1024")


def test_too_many_threads_names_the_limit():
    A = te.placeholder((4096,), "float32", name="A")
    B = te.compute((4096,), lambda i: A[i] * 2.0, name="B")
    with pytest.raises(DeviceLimitError, match="2048 threads per block.*limit of 1024"):
        wb.build(gpu_schedule(wb.create_prim_func([A, B]), threads=2048).mod, target=ARCH)


def test_unsupported_arch_is_refused_clearly():
    with pytest.raises(BackendUnavailableError, match="cannot compile for sm_50"):
        wb.build(_vector_add().mod, target="cuda -arch=sm_50")


@no_gpu_only
def test_running_without_a_driver_says_so():
    f = wb.build(_vector_add().mod, target=ARCH)
    a = np.zeros(4, "float32")
    with pytest.raises(BackendUnavailableError, match=NO_DRIVER):
        f(a, a, a.copy())
    with pytest.raises(BackendUnavailableError, match=NO_DRIVER):
        wb.device("cuda", 0)
    assert "no device (PTX only)" in repr(f)


# on a GPU -------------------------------------------------------------------------------------------------


@needs_gpu
def test_vector_add_runs_with_numpy_and_device_arrays():
    f = wb.build(_vector_add().mod, target="cuda")
    rng = np.random.default_rng(0)
    for n in (1, 256, 1000):
        a, b = rng.random(n, dtype="float32"), rng.random(n, dtype="float32")
        c = np.full(n, np.nan, "float32")
        f(a, b, c)
        np.testing.assert_array_equal(c, a + b)
    dev = wb.device("cuda", 0)
    a_d, b_d, c_d = wb.nd.array(a, dev), wb.nd.array(b, dev), wb.nd.empty((1000,), "float32", dev)
    f(a_d, b_d, c_d)
    np.testing.assert_array_equal(c_d.numpy(), a + b)
    with pytest.raises(TypeError, match="dtype float64"):
        f(a.astype("float64"), b, c)


@needs_gpu
def test_corpus_runs_and_matches_numpy():
    cases = op_library.corpus()
    funcs = {c.name: next(iter(gpu_schedule(c.func).mod.functions.values())) for c in cases}
    f = wb.build(wb.IRModule(funcs), target="cuda")
    for c in cases:
        c.check(lambda _func, *arrays, name=c.name: f[name](*arrays))


@needs_gpu
def test_tensor_core_matmul_matches_numpy():
    f = wb.build(wmma_matmul().mod, target="cuda")
    rng = np.random.default_rng(5)
    a = rng.standard_normal((256, 256)).astype("float16")
    b = rng.standard_normal((256, 256)).astype("float16")
    c = np.zeros((256, 256), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a.astype("float32") @ b.astype("float32"), rtol=1e-3, atol=1e-2)


def _import_or_reason(name: str):
    """The module, or why it cannot be imported here (any exception: a broken install counts as missing)."""
    try:
        return __import__(name)
    except Exception as e:   # noqa: BLE001
        return f"{name} cannot be imported here: {type(e).__name__}: {str(e).splitlines()[0]}"


# imported when the module is collected, before any test compiles with NVRTC: on an H100 machine (torch 2.11,
# NVRTC 13) a torch imported after an NVRTC compile in the same process failed to import (its operator-schema
# parser: "expected ident but found ')'"), and one imported first worked alongside workbench's kernels
_GPU_ARRAY_LIBRARIES = {name: _import_or_reason(name) for name in ("cupy", "torch")} if HAS_GPU else {}


def _gpu_array_library(name: str):
    """(to device, to numpy) for CuPy or PyTorch; skip where the library cannot be imported."""
    lib = _GPU_ARRAY_LIBRARIES.get(name, f"{name}: no GPU")
    if isinstance(lib, str):
        pytest.skip(lib)
    if name == "cupy":
        return lib.asarray, lib.asnumpy
    return (lambda x: lib.from_numpy(x).cuda()), (lambda x: x.cpu().numpy())


@needs_gpu
@pytest.mark.parametrize("library", ["cupy", "torch"])
def test_cuda_array_interface_arguments_are_used_in_place(library):
    make, back = _gpu_array_library(library)
    f = wb.build(_vector_add().mod, target="cuda")
    a, b = np.arange(300, dtype="float32"), np.ones(300, "float32")
    ga, gb, gc = make(a), make(b), make(np.zeros(300, "float32"))
    f(ga, gb, gc)
    np.testing.assert_array_equal(back(gc), a + b)
    assert f.last_device_seconds > 0


def test_cuda_array_interface_views_are_checked():
    from workbench.backend.cuda.runtime import ForeignArray

    class Fake:   # what CuPy / PyTorch / pycuda expose; no GPU needed to read it
        def __init__(self, strides):
            self.__cuda_array_interface__ = {"shape": (4, 6), "typestr": "<f4", "data": (1 << 20, False),
                                             "strides": strides, "version": 3}

    view = ForeignArray(Fake(None), "argument 0")
    assert (view.shape, view.dtype, view.ptr, view.nbytes) == ((4, 6), "float32", 1 << 20, 96)
    assert ForeignArray(Fake((24, 4)), "argument 0").shape == (4, 6)      # explicit C-contiguous strides
    with pytest.raises(ValueError, match=r"argument 1 is a strided view \(strides \(4, 16\)"):
        ForeignArray(Fake((4, 16)), "argument 1")
