"""The native thread pool (backend/llvm/native_pool.py) that generated code launches parallel loops on:
results against numpy across extents and thread counts, nested parallel loops, errors raised in a part,
a forked child, and launches from two Python threads at once."""
from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend import get_num_threads, set_num_threads
from workbench.backend.llvm import runtime
from workbench.backend.llvm.native_pool import native_pool_supported

pytestmark = pytest.mark.skipif(not native_pool_supported(), reason="the native pool needs x86-64 Linux")


def _scaled(n):
    A = te.placeholder((n, 8), "float32", name="A")
    B = te.compute((n, 8), lambda i, j: A[i, j] * 2.0 + 1.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    sch.parallel(sch.get_loops(sch.get_block("B"))[0])
    return wb.build(sch.mod, target="llvm")


@pytest.fixture
def threads():
    old = get_num_threads()
    yield
    set_num_threads(old)


def test_generated_code_uses_the_native_launcher():
    _scaled(wb.var("n"))
    pool = runtime._native_state["pool"]
    assert pool is not None and pool.launch_address == runtime.launch_address()
    assert pool.workers == get_num_threads() - 1


@pytest.mark.parametrize("count", [2, 3, 4])
def test_every_row_computed_once_for_any_extent_and_thread_count(count, threads):
    set_num_threads(count)
    f = _scaled(wb.var("n"))
    rng = np.random.default_rng(count)
    for n in (1, 2, 3, 5, 64, 1001):
        a = rng.standard_normal((n, 8), "float32")
        for _ in range(20):   # many launches in a row: generations must not mix
            b = np.full_like(a, np.nan)
            f(a, b)
            np.testing.assert_array_equal(b, a * 2 + 1)


def test_nested_parallel_loop_runs_inline():
    A = te.placeholder((6, 40), "float32", name="A")
    B = te.compute((6, 40), lambda i, j: A[i, j] + 1.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    i, j = sch.get_loops(sch.get_block("B"))
    sch.parallel(i)
    jo, ji = sch.split(j, factors=[4, None])
    sch.parallel(jo)
    f = wb.build(sch.mod, target="llvm")
    a = np.arange(240, dtype="float32").reshape(6, 40)
    b = np.zeros_like(a)
    f(a, b)
    np.testing.assert_array_equal(b, a + 1)


def test_an_error_in_a_part_is_raised(threads):
    set_num_threads(2)
    A = te.placeholder((64,), "float32", name="A")
    idx = te.placeholder((64,), "int32", name="I")
    B = te.compute((64,), lambda i: A[idx[i]], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, idx, B]))
    sch.parallel(sch.get_loops(sch.get_block("B"))[0])
    f = wb.build(sch.mod, target="llvm", checks=True)
    a = np.arange(64, dtype="float32")
    bad = np.arange(64, dtype="int32")
    bad[60] = 1000                 # in the second thread's part
    with pytest.raises(Exception, match="1000|out of|bounds"):
        f(a, bad, np.zeros(64, "float32"))
    good = np.zeros(64, "float32")
    f(a, np.arange(64, dtype="int32"), good)   # the pool still works afterwards
    np.testing.assert_array_equal(good, a)


def _child(queue):
    f = _scaled(37)
    a = np.ones((37, 8), "float32")
    b = np.zeros_like(a)
    f(a, b)
    queue.put(float(b.sum()))


def test_forked_child_runs_parallel_loops():
    _scaled(16)(np.ones((16, 8), "float32"), np.zeros((16, 8), "float32"))   # workers running in the parent
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(queue,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert queue.get(timeout=5) == 37 * 8 * 3.0


def test_two_python_threads_launch_at_once(threads):
    set_num_threads(2)
    f = _scaled(wb.var("n"))
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            a = rng.standard_normal((257, 8), "float32")
            b = np.zeros_like(a)
            f(a, b)
            if not np.array_equal(b, a * 2 + 1):
                errors.append(seed)

    ts = [threading.Thread(target=work, args=(s,)) for s in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in ts)
