"""wb.benchmark on GPU targets: device time from events (copies not counted) next to wall time, errors for a
CUDA target without a driver and for a bad target; measure(device_seconds=...); and the loop-nest widget's
data of a thread-bound program with a shared-memory cache (bindings and storage scopes)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.target import BackendUnavailableError, TargetError
from workbench.tuning.benchmark import DEVICE_COLUMNS
from workbench.tuning.timing import measure

FAST = dict(min_time=0.01, warmup=0.0, min_repeats=3, max_repeats=20, peak=None, progress=False)
N = 1 << 16


def _has_opencl() -> bool:
    try:
        import pyopencl as cl
    except ImportError:
        return False
    try:
        return any(p.get_devices() for p in cl.get_platforms())
    except cl.Error:
        return False


needs_opencl = pytest.mark.skipif(not _has_opencl(), reason="no OpenCL device (pyopencl and pocl-opencl-icd)")


def _cuda_driver():
    try:
        from workbench.backend.cuda.runtime import driver_version

        return driver_version()
    except ImportError:
        return False
    except BackendUnavailableError:
        return False


def bound_vector_add(n: int = N, threads: int = 64) -> wb.Schedule:
    A = te.placeholder((n,), "float32", name="A")
    B = te.placeholder((n,), "float32", name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    bx, tx = sch.split(sch.get_loops(sch.get_block("C"))[0], factors=[None, threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return sch


def numpy_add(a, b, c):
    np.add(a, b, out=c)


# wb.benchmark -------------------------------------------------------------------------------------------------


@needs_opencl
def test_benchmark_of_a_bound_vector_add_on_opencl_reports_device_time():
    sch = bound_vector_add()
    built = wb.build(sch.mod, target="opencl")
    res = wb.benchmark({"numpy": numpy_add, "bound": sch, "built": built}, target="opencl", **FAST)
    t = res.table.set_index("variant")
    cols = list(res.table.columns)
    at = cols.index("repeats") + 1
    assert cols[at:at + 2] == list(DEVICE_COLUMNS)
    assert list(t["status"]) == ["ok", "ok", "ok"], list(t["note"])   # each checked against numpy's result
    assert t.loc["numpy", "clock"] == "wall" and t.loc["numpy", "wall_ms"] == t.loc["numpy", "median_ms"]
    for name in ("bound", "built"):
        row = res[name]
        assert t.loc[name, "clock"] == "device" and row.timing.clock == "device"
        assert 0 < t.loc[name, "median_ms"] <= t.loc[name, "wall_ms"]       # copies are in the wall time only
        assert all(d <= w for d, w in zip(row.timing.samples, row.timing.wall.samples))
        assert t.loc[name, "note"].startswith("device time (kernel events, copies not counted); wall ")
        assert t.loc[name, "gbps"] == pytest.approx(3 * 4 * N / (t.loc[name, "median_ms"] * 1e-3) / 1e9)
    # and the built program's results are numpy's
    rng = np.random.default_rng(1)
    a, b = rng.random(N, dtype="float32"), rng.random(N, dtype="float32")
    c = np.full(N, np.nan, "float32")
    built(a, b, c)
    np.testing.assert_array_equal(c, a + b)


@needs_opencl
def test_a_wrong_gpu_variant_is_caught_before_timing():
    A = te.placeholder((N,), "float32", name="A")
    B = te.placeholder((N,), "float32", name="B")
    C = te.compute((N,), lambda i: A[i] - B[i], name="C")
    wrong = wb.Schedule(wb.create_prim_func([A, B, C]))
    bx, tx = wrong.split(wrong.get_loops(wrong.get_block("C"))[0], factors=[None, 64])
    wrong.bind(bx, "blockIdx.x")
    wrong.bind(tx, "threadIdx.x")
    res = wb.benchmark({"numpy": numpy_add, "wrong": wrong}, target="opencl", **FAST)
    assert list(res.table["status"]) == ["ok", "wrong"] and res["wrong"].timing is None


def test_cpu_benchmark_table_has_no_device_columns():
    res = wb.benchmark({"numpy": numpy_add, "ir": _cpu_add()}, target="llvm", **FAST)
    assert not set(DEVICE_COLUMNS) & set(res.table.columns)
    assert all(r.timing.clock == "wall" and r.timing.wall is None for r in res.variants.values())


def _cpu_add():
    A = te.placeholder((N,), "float32", name="A")
    B = te.placeholder((N,), "float32", name="B")
    return wb.create_prim_func([A, B, te.compute((N,), lambda i: A[i] + B[i], name="C")])


@pytest.mark.skipif(_cuda_driver() is not False and _cuda_driver() is not None, reason="a CUDA driver is present")
def test_benchmark_on_cuda_without_a_driver_reports_the_cause():
    pytest.importorskip("cuda.bindings.nvrtc", reason="the cuda extra is not installed")
    res = wb.benchmark({"numpy": numpy_add, "bound": bound_vector_add(threads=256)}, target="cuda -arch=sm_80",
                       **FAST)
    t = res.table.set_index("variant")
    assert t.loc["bound", "status"] == "error" and "no CUDA driver" in t.loc["bound", "note"]
    assert t.loc["numpy", "status"] == "ok"


@pytest.mark.skipif(not _cuda_driver(), reason="no NVIDIA GPU and driver on this machine")
def test_benchmark_on_cuda_reports_device_time():
    res = wb.benchmark({"numpy": numpy_add, "bound": bound_vector_add(threads=256)}, target="cuda", **FAST)
    t = res.table.set_index("variant")
    assert t.loc["bound", "status"] == "ok" and t.loc["bound", "clock"] == "device"
    assert 0 < t.loc["bound", "median_ms"] <= t.loc["bound", "wall_ms"]


def test_benchmark_with_a_bad_target_says_which():
    with pytest.raises(TargetError, match="unknown target kind 'bogus'"):
        wb.benchmark({"ir": _cpu_add()}, target="bogus", **FAST)


# measure(device_seconds=...) -----------------------------------------------------------------------------------


def test_measure_with_device_seconds_reports_device_samples_and_wall_times():
    calls = []
    t = measure(lambda: calls.append(1), min_time=0.0, warmup=0.0, min_sample=0.0, min_repeats=4, max_repeats=4,
                device_seconds=lambda: 2.5e-3)
    assert t.clock == "device" and t.repeats == 4 and t.samples == (2.5e-3,) * 4 and t.median == 2.5e-3
    assert t.wall is not None and t.wall.clock == "wall" and t.wall.repeats == 4 and t.wall.median < 2.5e-3
    assert measure(lambda: None, min_time=0.0, warmup=0.0, min_repeats=2, max_repeats=2).clock == "wall"


@pytest.mark.parametrize("reading, err, match", [
    (lambda: None, ValueError, "device_seconds\\(\\) must return seconds >= 0 after a call, got None"),
    (lambda: -1.0, ValueError, "got -1.0"),
])
def test_measure_refuses_a_bad_device_reading(reading, err, match):
    with pytest.raises(err, match=match):
        measure(lambda: None, min_time=0.0, warmup=0.0, device_seconds=reading)


def test_measure_refuses_a_device_seconds_that_is_not_callable():
    with pytest.raises(TypeError, match="device_seconds must be a callable returning seconds, got float"):
        measure(lambda: None, device_seconds=1.0)


# the loop-nest widget of a GPU schedule ------------------------------------------------------------------------


def _window_sum_with_shared_cache() -> wb.Schedule:
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
    return sch


def test_widget_data_of_a_bound_program_carries_thread_bindings_and_scopes():
    from workbench.viz.data import program_payload
    from workbench.viz.frontend import legend_items
    from workbench.viz.loop_tree import iter_nodes
    from workbench.viz.static import program_html

    sch = _window_sum_with_shared_cache()
    payload = program_payload(sch.func)
    loops = {d["var"]: d for d in iter_nodes(payload["tree"]) if d["kind"] == "loop"}
    bound = {v: (d["loop_kind"], d["thread"]) for v, d in loops.items() if d["thread"]}
    assert bound == {"i_0": ("thread_binding", "blockIdx.x"), "i_1": ("thread_binding", "threadIdx.x"),
                     "ax0_1_1": ("thread_binding", "threadIdx.x")}
    assert loops["ax0_1_0"]["loop_kind"] == "serial" and loops["ax0_1_0"]["thread"] is None
    scopes = {b["name"]: b["scope"] for b in payload["buffers"]}
    assert scopes == {"A": "global", "B": "global", "A_shared": "shared"}
    assert "A_shared: float32[1026], shared" in payload["tree"]["alloc_buffers"]
    assert {"kind": "thread_binding", "label": "thread-bound"}.items() <= next(
        i for i in legend_items() if i["kind"] == "thread_binding").items()
    html = program_html(sch.func, graph=False)   # the static view (no widget front end): the same facts
    assert "blockIdx.x" in html and "threadIdx.x" in html and "thread-bound" in html and ">shared<" in html
