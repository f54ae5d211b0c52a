"""The parallel runtime: a thread pool of our own that runs outlined loop bodies.

Generated code launches a parallel loop by calling ``@__wb_launch(fn, closure,
extent)``; that pointer is this module's ctypes callback. It splits
``[0, extent)`` into one contiguous chunk per thread and calls the native
``fn(begin, end, closure)`` from each pool thread through ctypes, which
releases the GIL, so chunks run on all cores at once. The calling thread runs
the first chunk itself. A launch from inside a pool thread (a parallel loop
reached again inside a chunk) runs inline.

The number of threads defaults to the core count; change it with
``set_num_threads(n)`` or the environment variable ``WB_NUM_THREADS``.

On x86-64 Linux the generated code gets :mod:`native_pool`'s launcher instead
(:func:`launch_address`): the same chunks, run by native workers without any
Python per launch (``WB_NATIVE_POOL=0`` keeps this module's pool).

>>> from workbench.backend import set_num_threads, get_num_threads
>>> old = get_num_threads(); set_num_threads(1); get_num_threads()
1
>>> set_num_threads(old)
"""
from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

PAR_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
LAUNCH_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)

_lock = threading.Lock()
_num_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_local = threading.local()
_fns: dict[int, object] = {}


def _default_threads() -> int:
    env = os.environ.get("WB_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"WB_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"WB_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """Threads that run a parallel loop (the core count unless set)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n: int) -> None:
    """Run parallel loops on ``n`` threads (``n >= 1``).

    >>> set_num_threads(2)
    """
    global _num_threads, _pool
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {n!r}")
    with _lock:
        if n != _num_threads and _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None
        _num_threads = n
    if _native_state["pool"] is not None:
        _native_state["pool"].resize(n)
        _native_state["pid"] = os.getpid()


def _mark_worker():
    _local.worker = True


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, n - 1), thread_name_prefix="wb-par",
                                       initializer=_mark_worker)
        return _pool


def _native(addr: int):
    fn = _fns.get(addr)
    if fn is None:
        fn = _fns[addr] = PAR_FN(addr)
    return fn


def chunks(extent: int, n: int) -> list[tuple[int, int]]:
    """``[0, extent)`` split into at most ``n`` contiguous, nearly equal chunks.

    >>> chunks(10, 3)
    [(0, 4), (4, 7), (7, 10)]
    """
    n = max(1, min(n, extent))
    q, r = divmod(extent, n)
    out, start = [], 0
    for k in range(n):
        end = start + q + (1 if k < r else 0)
        out.append((start, end))
        start = end
    return out


def launch(fn_addr, closure, extent) -> int:
    """Run ``fn(begin, end, closure)`` over ``[0, extent)`` on the pool; returns the first nonzero code."""
    try:
        fn = _native(fn_addr)
        if extent <= 0:
            return 0
        n = get_num_threads()
        if n == 1 or extent == 1 or getattr(_local, "worker", False):
            return int(fn(0, extent, closure))
        parts = chunks(extent, n)
        pool = _get_pool(n)
        futs = [pool.submit(fn, b, e, closure) for b, e in parts[1:]]
        rc = int(fn(parts[0][0], parts[0][1], closure))
        for f in futs:
            r = int(f.result())
            rc = rc or r
        return rc
    except Exception:  # never let a Python exception unwind through native frames
        return 99


def _forget_pool_in_child() -> None:
    """After ``fork`` the child has none of the pool's threads (and the lock may be held by one):
    start afresh, so a forked process (multiprocessing's default on Linux) can run parallel loops
    (the native workers start again at the next build or load: :func:`launch_address`)."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()
    if _native_state["pool"] is not None:
        _native_state["pool"].after_fork_in_child()


#: the native pool (None until first used, or when unsupported/failed) and the process that started its workers
_native_state: dict = {"pool": None, "pid": None, "failed": False}


def launch_address() -> int:
    """The address generated code calls to launch a parallel loop: the native pool's launcher (its workers
    started for :func:`get_num_threads` threads in this process), or this module's Python pool."""
    from .native_pool import NativePool, native_pool_supported

    if _native_state["failed"] or not native_pool_supported():
        return LAUNCH_ADDR
    with _lock:
        pool = _native_state["pool"]
        if pool is None:
            try:
                pool = _native_state["pool"] = NativePool()
            except (RuntimeError, OSError, ValueError):   # no JIT for it here: the Python pool works everywhere
                _native_state["failed"] = True
                return LAUNCH_ADDR
    if _native_state["pid"] != os.getpid() or pool.workers != get_num_threads() - 1:
        pool.resize(get_num_threads())
        _native_state["pid"] = os.getpid()
    return pool.launch_address


os.register_at_fork(after_in_child=_forget_pool_in_child)

LAUNCH = LAUNCH_FN(launch)
LAUNCH_ADDR = ctypes.cast(LAUNCH, ctypes.c_void_p).value

__all__ = ["set_num_threads", "get_num_threads", "launch", "chunks", "LAUNCH_ADDR", "launch_address"]
