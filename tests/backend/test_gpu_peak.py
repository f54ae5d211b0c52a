"""GPU peak and device timing: wb.machine_peak("opencl"/"cuda") with thread-bound kernels timed by events, and
``last_device_seconds`` of built OpenCL/CUDA functions (kernel time only, copies not counted)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.target import BackendUnavailableError, TargetError
from workbench.tuning.peak import MachinePeak, gpu_fma_kernel, gpu_triad_kernel

cl = pytest.importorskip("pyopencl")


def _has_opencl() -> bool:
    try:
        return any(p.get_devices() for p in cl.get_platforms())
    except cl.Error:
        return False


needs_opencl = pytest.mark.skipif(not _has_opencl(), reason="no OpenCL device (install pocl-opencl-icd)")


def _cuda_driver():
    """The CUDA driver version; None without one; False without cuda-python."""
    try:
        from workbench.backend.cuda.runtime import driver_version

        return driver_version()
    except (ImportError, BackendUnavailableError):
        return False


CUDA = _cuda_driver()
needs_gpu = pytest.mark.skipif(not CUDA, reason="no NVIDIA GPU and driver on this machine")

#: a peak measured in a second or two: tiny sampling time, arrays of 1 MiB
TINY = dict(min_time=0.002, stream_bytes=1 << 20)


def _bound_vector_add(n: int, threads: int = 64) -> wb.Schedule:
    A = te.placeholder((n,), "float32", name="A")
    B = te.placeholder((n,), "float32", name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    bx, tx = sch.split(sch.get_loops(sch.get_block("C"))[0], factors=[None, threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return sch


def _two_kernels(n: int) -> wb.Schedule:
    """``B = A + 1; C = B * 2``: two bound stages, so two kernel launches per call."""
    A = te.placeholder((n,), "float32", name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((n,), lambda i: B[i] * 2.0, name="C")
    sch = wb.Schedule(wb.create_prim_func([A, C]))
    for name in ("B", "C"):
        bx, tx = sch.split(sch.get_loops(sch.get_block(name))[0], factors=[None, 64])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
    return sch


# the generated kernels ---------------------------------------------------------------------------------------


@needs_opencl
def test_gpu_fma_kernel_computes_the_fma_chain_on_opencl():
    f = wb.build(gpu_fma_kernel(acc=3, threads=32), target="opencl")
    x = np.random.default_rng(0).uniform(0.5, 1.5, (4, 3, 32)).astype("float32")
    expect = x.astype(np.float64)
    for _ in range(7):
        expect = expect * np.float32(0.999999) + np.float32(1e-6)
    f(x, 7)
    np.testing.assert_allclose(x, expect, rtol=1e-6)
    src = f.source("cl")
    assert "get_group_id(0)" in src and "get_local_id(0)" in src and "fma(" in src


@needs_opencl
def test_gpu_triad_kernel_computes_b_plus_3c_on_opencl():
    f = wb.build(gpu_triad_kernel(32), target="opencl")
    rng = np.random.default_rng(0)
    b, c = rng.standard_normal((5, 32)).astype("float32"), rng.standard_normal((5, 32)).astype("float32")
    a = np.full((5, 32), np.nan, "float32")
    f(a, b, c)
    np.testing.assert_allclose(a, b + 3 * c, rtol=1e-6)


# machine_peak on a GPU target ----------------------------------------------------------------------------------


@needs_opencl
def test_machine_peak_opencl_measures_the_device_and_caches_by_device_name(tmp_path):
    t0 = time.perf_counter()
    p = wb.machine_peak("opencl", cache_dir=tmp_path, **TINY)
    assert time.perf_counter() - t0 < 60  # a few seconds on PoCL; generous for a loaded machine
    from workbench.backend.opencl.runtime import device_state

    state = device_state(0)
    assert isinstance(p, MachinePeak) and not p.from_cache
    assert p.device == p.cpu == state.describe()
    assert p.gflops > 0 and p.gbps > 0 and p.cores == state.device.max_compute_units
    assert p.details["timing"] == "device events" and p.details["triad"]["array_bytes"] >= 1 << 20
    assert "GFLOP/s" in str(p) and "device time" in str(p)
    (f,) = tmp_path.glob("peak-*.json")
    assert state.device.name.split("-")[0] in f.name and json.loads(f.read_text())["device"] == p.device
    again = wb.machine_peak("opencl", cache_dir=tmp_path, **TINY)
    assert again.from_cache and (again.gflops, again.gbps, again.device) == (p.gflops, p.gbps, p.device)


@needs_opencl
def test_machine_peak_opencl_device_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(BackendUnavailableError, match="no OpenCL device matches 'nosuchdevice'"):
        wb.machine_peak("opencl -device=nosuchdevice", cache_dir=tmp_path, **TINY)


def test_machine_peak_bad_target_is_refused(tmp_path):
    with pytest.raises(TargetError, match="unknown target kind 'bogus'"):
        wb.machine_peak("bogus", cache_dir=tmp_path)


@pytest.mark.skipif(bool(CUDA), reason="this machine has a CUDA driver")
def test_machine_peak_cuda_without_a_driver_says_so(tmp_path):
    with pytest.raises(BackendUnavailableError, match="cuda-python|no CUDA driver|found no GPU"):
        wb.machine_peak("cuda", cache_dir=tmp_path, **TINY)
    assert not list(tmp_path.glob("peak-*.json"))


@needs_gpu
def test_machine_peak_cuda_measures_the_gpu(tmp_path):
    p = wb.machine_peak("cuda", cache_dir=tmp_path, **TINY)
    assert p.gflops > 0 and p.gbps > 0 and p.cores > 0 and p.device


# device timing of built functions ------------------------------------------------------------------------------


@needs_opencl
def test_opencl_function_reports_device_time_of_its_last_call():
    n = 1 << 20
    f = wb.build(_bound_vector_add(n).mod, target="opencl", cache=False)
    assert f.last_device_seconds is None and f["main"].last_device_seconds is None  # not called yet
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype="float32"), rng.random(n, dtype="float32")
    c = np.full(n, np.nan, "float32")
    t0 = time.perf_counter()
    f(a, b, c)
    wall = time.perf_counter() - t0
    np.testing.assert_array_equal(c, a + b)
    dev = f.last_device_seconds
    assert 0 < dev <= wall          # the copies of a, b in and c out are in the wall time only
    assert f["main"].last_device_seconds == dev
    # with device arrays the call only enqueues; reading the device time waits for the kernel
    d = wb.device("opencl")
    a_d, b_d, c_d = wb.nd.array(a, d), wb.nd.array(b, d), wb.nd.empty((n,), "float32", d)
    f(a_d, b_d, c_d)
    assert f.last_device_seconds > 0
    np.testing.assert_array_equal(c_d.numpy(), a + b)


@needs_opencl
def test_opencl_device_time_sums_every_kernel_of_the_call():
    n = 4096
    f = wb.build(_two_kernels(n).mod, target="opencl", cache=False)["main"]
    a = np.arange(n, dtype="float32")
    c = np.empty(n, "float32")
    f(a, c)
    np.testing.assert_array_equal(c, (a + 1) * 2)
    assert len(f._events) == 2
    per_kernel = [(e.profile.end - e.profile.start) * 1e-9 for e in f._events]
    assert f.last_device_seconds == pytest.approx(sum(per_kernel)) and min(per_kernel) > 0


@needs_opencl
def test_a_module_from_the_build_cache_starts_without_a_last_call():
    sch = _bound_vector_add(256)
    f = wb.build(sch.mod, target="opencl")
    a = np.ones(256, "float32")
    f(a, a, a.copy())
    assert f.last_device_seconds > 0
    g = wb.build(sch.mod, target="opencl")     # shares the compiled program, not the timing of f's calls
    assert g is not f and g.last_device_seconds is None and g["main"].last_device_seconds is None


def test_cuda_function_without_a_call_has_no_device_time():
    pytest.importorskip("cuda.bindings.nvrtc", reason="the cuda extra is not installed")
    f = wb.build(_bound_vector_add(1024, threads=256).mod, target="cuda -arch=sm_80")
    assert f.last_device_seconds is None and f["main"].last_device_seconds is None


@needs_gpu
def test_cuda_function_reports_device_time_from_events():
    n = 1 << 20
    f = wb.build(_two_kernels(n).mod, target="cuda")
    a = np.arange(n, dtype="float32")
    c = np.empty(n, "float32")
    t0 = time.perf_counter()
    f(a, c)
    wall = time.perf_counter() - t0
    np.testing.assert_array_equal(c, (a + 1) * 2)
    assert 0 < f.last_device_seconds <= wall and len(f["main"]._events) == 2


def test_cuda_event_pairs_are_reused_summed_and_destroyed(monkeypatch):
    """The CUDA timing path without a GPU: a fake driver API stands in for cuda.bindings.driver."""
    pytest.importorskip("cuda.bindings.driver", reason="the cuda extra is not installed")
    from workbench.backend.cuda import runtime as rt

    class FakeDriver:
        class CUresult:
            CUDA_SUCCESS = 0

        class CUevent_flags:
            CU_EVENT_DEFAULT = 0

        def __init__(self):
            self.created, self.destroyed = [], []

        def cuEventCreate(self, flags):
            self.created.append(object())
            return 0, self.created[-1]

        def cuEventElapsedTime(self, start, end):
            return 0, 1.5 if self.created.index(start) == 0 else 0.25   # milliseconds

        def cuEventDestroy(self, ev):
            self.destroyed.append(ev)
            return (0,)

    fake = FakeDriver()
    monkeypatch.setattr(rt, "_driver_api", lambda: fake)
    pool = rt.EventPool()
    first, second = pool.pair(0), pool.pair(1)
    assert pool.pair(0) is first and len(fake.created) == 4       # made once, reused by later calls
    assert rt.CUDAFunction._event_seconds(None, [first, second]) == pytest.approx(1.75e-3)
    del pool
    assert sorted(map(id, fake.destroyed)) == sorted(map(id, fake.created))
