"""Crash-safe measurement (workbench.tuning.measure): correct, wrong, crashing and hanging candidates,
setup hooks, the script transport, and the Dask runner on a local cluster."""
import os

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.structural import structural_equal
from workbench.tuning.measure import (DaskRunner, LocalRunner, MeasureInput, MeasureResult, WorkerStartError,
                                      _decode_func, _encode_func)

FAST = dict(min_time=0.01, warmup=0.0, max_time=0.5)
N = 32


@pytest.fixture(scope="module")
def matmul():
    A = te.placeholder((N, N), name="A")
    B = te.placeholder((N, N), name="B")
    k = te.reduce_axis(N, name="k")
    C = te.compute((N, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


@pytest.fixture(scope="module")
def tiled(matmul):
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 8])
    sch.reorder(i, jo, k, ji)
    sch.parallel(i)
    sch.vectorize(ji)
    return sch.func, sch.trace.to_json()


def wrong(tiled):
    """The tiled program with its body edited: a sum of A + B instead of A * B."""
    func, _ = tiled
    text = func.script()
    assert "A[v_i, v_k] * B[v_k, v_j]" in text
    return wb.parse(text.replace("A[v_i, v_k] * B[v_k, v_j]", "A[v_i, v_k] + B[v_k, v_j]"))


# an out-of-bounds write 4 GB past C: no bound checks in the build, so the worker segfaults
CRASH = wb.parse(f"""
def crash(A: wb.Buffer(({N}, {N}), "float32"), B: wb.Buffer(({N}, {N}), "float32"),
          C: wb.Buffer(({N}, {N}), "float32")):
    for i in wb.serial({N}):
        C[i + 1000000000, 0] = A[i, 0]
""")

# 2^60 iterations of a float accumulation: runs until killed
HANG = wb.parse(f"""
def hang(A: wb.Buffer(({N}, {N}), "float32"), B: wb.Buffer(({N}, {N}), "float32"),
         C: wb.Buffer(({N}, {N}), "float32")):
    for i, j in wb.grid(1073741824, 1073741824):
        C[0, 0] = C[0, 0] * A[0, j % {N}] + B[i % {N}, 0]
""")


def inp(func, reference, trace=""):
    return MeasureInput(func, "llvm", trace_json=trace, reference=reference, seed=0)


@pytest.fixture(scope="module")
def runner():
    with LocalRunner(timeout=20, **FAST) as r:
        yield r


def test_correct_candidate_is_ok_with_positive_time(runner, matmul, tiled):
    func, trace = tiled
    [r] = runner.run([inp(func, matmul, trace)])
    assert isinstance(r, MeasureResult)
    assert r.ok and r.error is None, r.error
    assert r.seconds > 0 and r.build_seconds > 0


def test_wrong_result_is_reported(runner, matmul, tiled):
    [r] = runner.run([inp(wrong(tiled), matmul)])
    assert not r.ok and r.seconds is None
    assert r.error.startswith("wrong result: C differs from the untuned program in"), r.error
    assert "max abs diff" in r.error


def test_crash_is_reported_and_the_next_candidate_still_measured(runner, matmul, tiled):
    func, _ = tiled
    crash, ok = runner.run([inp(CRASH, matmul), inp(func, matmul)])
    assert not crash.ok
    assert crash.error.startswith("crash: signal 11 (SIGSEGV) while checking the result"), crash.error
    assert ok.ok and ok.seconds > 0, ok.error


def test_hang_is_killed_at_the_time_limit(matmul, tiled):
    func, _ = tiled
    with LocalRunner(timeout=3, **FAST) as r:
        first, hang, ok = r.run([inp(func, matmul), inp(HANG, matmul), inp(func, matmul)])
    assert first.ok, first.error
    assert not hang.ok and hang.error == "timeout after 3 s while checking the result", hang.error
    assert ok.ok, ok.error


def test_build_error_and_two_workers_keep_the_order(matmul, tiled):
    func, _ = tiled
    inputs = [inp(func, matmul), inp(wrong(tiled), matmul), inp(CRASH, matmul), inp(func, None)]
    with LocalRunner(2, timeout=20, **FAST) as r:
        res = r.run(inputs)
        bad = MeasureInput(func, "no-such-target", trace_json="", reference=None)
        [err] = r.run([bad])
    assert [x.ok for x in res] == [True, False, False, True]
    assert res[1].error.startswith("wrong result") and res[2].error.startswith("crash: signal 11")
    assert err.error.startswith("build error: "), err.error


def _register_crash_intrin():
    """A setup hook: registers a deliberately invalid tensor intrinsic (its impl writes 4 billion rows past
    the tile) and leaves a file named by the worker's pid, so the test sees that the hook ran there."""
    from workbench.schedule.tensor_intrin.teaching import matmul_add_4x4_desc, matmul_add_4x4_impl

    bad = wb.parse(matmul_add_4x4_impl.script().replace("C[i, j] = C[i, j]", "C[i + 1000000000, j] = C[i, j]"))
    wb.register_tensor_intrin("test_crash_4x4", matmul_add_4x4_desc, bad, override=True)
    marks = os.environ.get("WB_TEST_SETUP_DIR")
    if marks:
        open(os.path.join(marks, str(os.getpid())), "w").close()


def test_invalid_tensor_intrinsic_crashes_the_worker_not_the_caller(matmul, tiled, tmp_path, monkeypatch):
    _register_crash_intrin()
    sch = wb.Schedule(matmul)
    blk = sch.get_block("C")
    i, j, k = sch.get_loops(blk)
    (io, ii), (jo, ji), (ko, ki) = (sch.split(x, factors=[None, 4]) for x in (i, j, k))
    sch.reorder(io, jo, ko, ii, ji, ki)
    sch.decompose_reduction(blk, ko)
    sch.tensorize(ii, "test_crash_4x4")
    monkeypatch.setenv("WB_TEST_SETUP_DIR", str(tmp_path))
    with LocalRunner(setup=_register_crash_intrin, timeout=20, **FAST) as r:
        crash, ok = r.run([inp(sch.func, matmul), inp(tiled[0], matmul)])
    assert crash.error.startswith("crash: signal 11 (SIGSEGV)"), crash.error
    assert ok.ok, ok.error
    assert len(os.listdir(tmp_path)) == 2 and str(os.getpid()) not in os.listdir(tmp_path)  # one per worker


def _failing_setup():
    raise RuntimeError("the test's setup hook refuses")


def test_setup_hook_runs_in_the_worker_and_its_failure_is_clear(matmul):
    with pytest.raises(WorkerStartError, match="the test's setup hook refuses"):
        LocalRunner(setup=_failing_setup, **FAST).run([inp(matmul, None)])
    with pytest.raises(TypeError, match="picklable"):
        LocalRunner(setup=lambda: None)


def test_bad_options_and_inputs_are_refused(runner, matmul):
    with pytest.raises(ValueError, match="n_workers"):
        LocalRunner(0)
    with pytest.raises(ValueError, match="timeout"):
        LocalRunner(timeout=-1)
    with pytest.raises(TypeError, match="MeasureInput"):
        runner.run([matmul])


def test_script_transport_round_trips(tiled):
    func, _ = tiled
    back = _decode_func(("script", func.script()))
    assert structural_equal(back, func)
    assert _encode_func(func)[0] == "pickle"


def test_reference_outputs_match_numpy(runner, matmul):
    """The check itself is against numpy: a candidate computing A @ B + 1 is wrong by exactly 1."""
    off_by_one = wb.parse(matmul.script().replace("C[v_i, v_j] = 0.0", "C[v_i, v_j] = 1.0"))
    [r] = runner.run([inp(off_by_one, matmul)])
    assert not r.ok and "max abs diff 1 " in r.error + " ", r.error
    a = np.random.default_rng(0).uniform(-1, 1, (N, N)).astype("float32")
    c = np.empty((N, N), "float32")
    wb.build(matmul)(a, a, c)
    np.testing.assert_allclose(c, a @ a, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_dask_runner_measures_two_candidates_and_survives_a_crash(dask_client, matmul, tiled):
    func, _ = tiled
    runner = DaskRunner(dask_client, timeout=20, **FAST)
    pid_before = set(dask_client.run(os.getpid).values())
    first, second, crash = runner.run([inp(func, matmul), inp(matmul, matmul), inp(CRASH, matmul)])
    assert first.ok and first.seconds > 0, first.error
    assert second.ok and second.seconds > 0, second.error
    assert crash.error.startswith("crash: signal 11"), crash.error
    assert set(dask_client.run(os.getpid).values()) == pid_before  # the Dask worker itself did not die
    runner.close()
    with DaskRunner(dask_client.scheduler.address, timeout=20, **FAST) as by_address:
        [again] = by_address.run([inp(func, matmul)])
    assert again.ok, again.error
    assert dask_client.status == "running"  # closing a runner made from an address keeps the caller's client


def test_progress_bar_counts_trials_and_shows_the_best(capsys):
    import io

    from workbench.tuning.progress import Progress

    out = io.StringIO()
    p = Progress(total=2, enable=True, plot=False, file=out)
    p.update(MeasureResult(True, 1e-3, None, 0.1), best_gflops=3.0, gflops=3.0)
    p.update(MeasureResult(False, None, "timeout after 1 s while timing", 0.1), best_gflops=3.0)
    p.close()
    assert (p.trials, p.failed, p.best_gflops) == (2, 1, 3.0)
    assert "2/2" in out.getvalue() and "best 3 GFLOP/s, 2 trials, 1 failed" in out.getvalue()


def test_progress_live_plot_draws_a_png_in_one_display_handle(monkeypatch):
    import IPython.display

    from workbench.tuning.progress import Progress

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj)

    def display(obj, display_id=False):
        shown.append(obj)
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    p = Progress(time_budget=60, enable=False, plot=True, min_interval=0.0)
    p.update(MeasureResult(True, 1e-3, None, 0.1), best_gflops=1.5, gflops=1.5)
    p.update(MeasureResult(False, None, "crash: signal 11 (SIGSEGV) while timing", 0.1), best_gflops=1.5)
    p.close()
    assert len(shown) == 3 and all(img.data.startswith(b"\x89PNG") for img in shown)
