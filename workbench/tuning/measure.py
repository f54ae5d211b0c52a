"""Crash-safe measurement of tuning candidates: each is built and timed in a worker process.

A :class:`Runner` takes :class:`MeasureInput` s (a scheduled program, its target, its trace,
the untuned program to check against and an input seed) and returns one
:class:`MeasureResult` per input, in order. A candidate that crashes its worker (a
segfault, an abort), hangs past the time limit, raises, or computes a different result
than the untuned program gives ``ok=False`` with the reason in ``error``; the worker is
replaced and the next candidate is measured. The calling process (a notebook's kernel)
never runs candidate code.

Runners:

- :class:`LocalRunner` (the default): a pool of worker processes on this machine.
- :class:`DaskRunner`: the same jobs on a Dask ``distributed`` cluster.

How a worker measures one candidate (``_WorkerState.run_job``):

1. *prepare*: random inputs from the seed (floats in ``[-1, 1)``, integers in ``[0, 8)``;
   outputs filled with NaN / the smallest integer so an unwritten element shows), and
   the untuned program's outputs on them (built for the same target, cached per
   workload, target and seed);
2. *build*: ``wb.build(func, target)``;
3. *check* (after the parent grants a timing slot): one run on fresh copies; the outputs
   must match the untuned program's (tolerance by dtype, as in ``wb.benchmark``) and the
   inputs must be unchanged;
4. *timing*: ``workbench.tuning.timing.measure`` (warm-up, calibrated repeats, median).

Each phase has its own time limit (``timeout`` seconds; timing gets ``max_time + 2 *
timeout``): past it the worker is killed. Building overlaps across workers, but only one
worker checks and times at a time (``parallel_timing=False``), and that one uses all the
machine's threads for parallel loops (``workbench.backend.set_num_threads``), so two
measurements never share the cores.

Design choices:

- Workers are fresh interpreters (``subprocess`` running ``_worker_main``), like
  multiprocessing's ``spawn``, never ``fork``: the caller may hold threads, LLVM JIT state
  and a Jupyter kernel. Not ``multiprocessing``'s spawn itself, because that re-runs an
  unguarded ``__main__`` script in every worker and refuses to start processes inside a
  daemonic process such as a Dask worker. The worker gets the caller's ``sys.path``, so a
  ``setup`` hook (a picklable, importable function run once in each new worker, e.g. one
  that registers a tensor intrinsic) can live in the caller's own modules.
- Transport: a PrimFunc is pickled (workbench's IR pickles: plain frozen dataclasses);
  should pickling fail, its ``script()`` text is sent and parsed back with ``wb.parse``.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64,), name="A")
>>> B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
>>> f = wb.create_prim_func([A, B])
>>> with LocalRunner(timeout=20, min_time=0.01) as runner:
...     [r] = runner.run([MeasureInput(f, "llvm", trace_json="", reference=f)])
>>> r.ok and r.seconds > 0
True
"""
from __future__ import annotations

import collections
import numbers
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Mapping, Sequence

from ..ir.function import PrimFunc

# ---------------------------------------------------------------------------
# the interface shared with the search


@dataclass(frozen=True)
class MeasureInput:
    """One candidate to measure.

    ``func`` is the scheduled program; ``reference`` the untuned one its results must match
    (``None``: no check); ``seed`` picks the random inputs; ``sizes`` gives the symbolic sizes
    their values for the measurement (``{"batch": 1, "seq": 128}``: a model's kernel is measured
    at the sizes of an example run, while the program itself stays symbolic).
    """

    func: PrimFunc
    target: str
    trace_json: str
    reference: PrimFunc | None = None
    seed: int = 0
    sizes: Mapping[str, int] | None = None


@dataclass(frozen=True)
class MeasureResult:
    """The outcome of one candidate: ``ok`` with the median run time in ``seconds``, or
    ``ok=False`` and ``error`` saying why ("crash: signal 11 (SIGSEGV) while timing",
    "timeout after 10 s while building", "wrong result: ...", "build error: ...")."""

    ok: bool
    seconds: float | None
    error: str | None
    build_seconds: float


class Runner:
    """Measures candidates; ``run`` returns one result per input, in order."""

    def run(self, inputs: list[MeasureInput]) -> list[MeasureResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (a closed runner refuses to run)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WorkerStartError(RuntimeError):
    """A fresh worker process failed before measuring anything (its environment or the
    ``setup`` hook is broken, not the candidate)."""


# ---------------------------------------------------------------------------
# options and the job payload (what travels to a worker)


@dataclass(frozen=True)
class _Options:
    timeout: float = 10.0
    min_time: float = 0.1
    warmup: float = 0.02
    max_time: float = 2.0
    num_threads: int | None = None
    rtol: float | None = None
    atol: float | None = None
    setup: Callable[[], None] | None = None
    startup_timeout: float = 120.0

    def phase_limit(self, phase: str) -> float:
        if phase == "starting":
            return self.startup_timeout
        if phase == "timing":
            return self.max_time + 2 * self.timeout
        return self.timeout


def _check_options(o: _Options) -> None:
    for name in ("timeout", "min_time", "warmup", "max_time", "startup_timeout"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise ValueError(f"{name} must be a number of seconds >= 0, got {v!r}")
    if o.timeout <= 0:
        raise ValueError(f"timeout must be positive (seconds per phase), got {o.timeout!r}")
    if o.num_threads is not None and (isinstance(o.num_threads, bool) or not isinstance(o.num_threads, int)
                                      or o.num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer or None (all cores), got {o.num_threads!r}")
    if o.setup is not None and not callable(o.setup):
        raise TypeError(f"setup must be a function run once in each worker, got {type(o.setup).__name__}")


def _encode_options(o: _Options) -> bytes:
    try:
        return pickle.dumps(o)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise TypeError(f"the setup hook {getattr(o.setup, '__qualname__', o.setup)!r} must be picklable "
                        f"(a function defined at the top level of an importable module): {err}") from None


def _encode_func(func: PrimFunc) -> tuple[str, Any]:
    """``("pickle", bytes)``, or ``("script", text)`` for a program that does not pickle."""
    try:
        return "pickle", pickle.dumps(func)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return "script", func.script()


def _decode_func(encoded: tuple[str, Any]) -> PrimFunc:
    kind, data = encoded
    if kind == "pickle":
        return pickle.loads(data)
    from ..ir.parser import parse
    from ._program import prim_func_of

    return prim_func_of(parse(data))


def _payload(inp: MeasureInput) -> dict:
    if not isinstance(inp, MeasureInput):
        raise TypeError(f"Runner.run takes a list of MeasureInput, got a {type(inp).__name__}")
    if not isinstance(inp.func, PrimFunc):
        raise TypeError(f"MeasureInput.func must be a PrimFunc, got {type(inp.func).__name__}")
    if inp.reference is not None and not isinstance(inp.reference, PrimFunc):
        raise TypeError(f"MeasureInput.reference must be a PrimFunc or None, got {type(inp.reference).__name__}")
    return {"func": _encode_func(inp.func), "target": str(inp.target), "seed": int(inp.seed),
            "reference": None if inp.reference is None else _encode_func(inp.reference),
            "sizes": _check_sizes(inp.sizes)}


def _check_sizes(sizes) -> dict[str, int] | None:
    """``MeasureInput.sizes`` as a plain ``{name: int}`` (what travels to the worker)."""
    if sizes is None:
        return None
    if not isinstance(sizes, Mapping):
        raise TypeError(f"MeasureInput.sizes must map size names to ints ({{'n': 128}}), got {type(sizes).__name__}")
    out = {}
    for name, value in sizes.items():
        if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                or value < 0:
            raise ValueError(f"MeasureInput.sizes must map size names to ints >= 0, got {name!r}: {value!r}")
        out[name] = int(value)
    return out


# ---------------------------------------------------------------------------
# the worker process


def _describe(err: BaseException, limit: int = 400) -> str:
    lines = str(err).strip().splitlines()
    s = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return s if len(s) <= limit else s[:limit - 3] + "..."


class _Failed(Exception):
    """A candidate failed in the worker; the message is the MeasureResult's error."""


@dataclass
class _Workload:
    inputs: list
    outputs: list[int]
    expected: list | None  # the untuned program's outputs (None: no check)
    names: list[str] = field(default_factory=list)


def _known_sizes(func: PrimFunc, sizes: dict | None) -> dict | None:
    """The entries of ``sizes`` that name sizes of ``func`` (a model's sizes cover all its kernels)."""
    if not sizes:
        return None
    from ._program import _size_vars

    names = {v.name for v in _size_vars(func)}
    return {k: v for k, v in sizes.items() if k in names}


def _param_name(func: PrimFunc, k: int) -> str:
    p = func.params[k]
    buf = func.buffer_map.get(p)
    return buf.name if buf is not None else p.name


class _WorkerState:
    """The worker's side: cached workloads and the measurement of one job."""

    MAX_WORKLOADS = 4

    def __init__(self, options: _Options, conn: Connection):
        self.options = options
        self.conn = conn
        self.workloads: collections.OrderedDict[tuple, _Workload] = collections.OrderedDict()

    def phase(self, job: int, name: str) -> None:
        self.conn.send(("phase", job, name))

    def run_job(self, job: int, payload: dict) -> tuple:
        build_seconds = 0.0
        try:
            self.phase(job, "prepare")
            workload = self.workload(payload)
            self.phase(job, "build")
            func, mod, build_seconds = self.build(payload)
            self.conn.send(("built", job, build_seconds))
            grant = self.conn.recv()
            if grant != ("time", job):
                raise _Failed(f"internal error: expected the timing grant for job {job}, got {grant!r}")
            self.phase(job, "check")
            arrays, first_call = self.check(mod, workload)
            self.phase(job, "timing")
            seconds = self.time(mod, arrays, first_call)
        except _Failed as failure:
            return False, None, str(failure), build_seconds
        return True, seconds, None, build_seconds

    def workload(self, payload: dict) -> _Workload:
        from ..ir.structural import structural_hash
        from ._program import accessed_params
        from .inputs import random_inputs

        sizes = payload.get("sizes")
        if payload["reference"] is None:
            func = self.decode(payload["func"], "candidate")
            try:
                arrays = random_inputs(func, sizes=_known_sizes(func, sizes), seed=payload["seed"])
            except (ValueError, TypeError) as err:
                raise _Failed(f"input error: {_describe(err)}") from None
            return _Workload(arrays, accessed_params(func)[1], None)
        ref = self.decode(payload["reference"], "reference")
        key = (structural_hash(ref), payload["target"], payload["seed"], tuple(sorted((sizes or {}).items())))
        if key in self.workloads:
            self.workloads.move_to_end(key)
            return self.workloads[key]
        try:
            arrays = random_inputs(ref, sizes=_known_sizes(ref, sizes), seed=payload["seed"])
        except (ValueError, TypeError) as err:
            raise _Failed(f"input error: {_describe(err)}") from None
        outputs = accessed_params(ref)[1]
        expected = [a.copy() for a in arrays]
        try:
            from ..backend import build

            build(ref, payload["target"], cache=False)(*expected)
        except Exception as err:  # noqa: BLE001 - any failure of the untuned program is reported as such
            raise _Failed(f"reference error: the untuned program failed: {_describe(err)}") from None
        w = _Workload(arrays, outputs, [expected[k] for k in outputs], [_param_name(ref, k) for k in outputs])
        self.workloads[key] = w
        while len(self.workloads) > self.MAX_WORKLOADS:
            self.workloads.popitem(last=False)
        return w

    @staticmethod
    def decode(encoded, what: str) -> PrimFunc:
        try:
            return _decode_func(encoded)
        except Exception as err:  # noqa: BLE001 - unpickling/parsing can fail in many ways; all are reported
            raise _Failed(f"transport error: cannot rebuild the {what} program in the worker: "
                          f"{_describe(err)}") from None

    def build(self, payload: dict):
        from ..backend import build

        func = self.decode(payload["func"], "candidate")
        t0 = time.perf_counter()
        try:
            mod = build(func, payload["target"], cache=False)
        except Exception as err:  # noqa: BLE001 - a candidate that does not build is a failed candidate
            raise _Failed(f"build error: {_describe(err)}") from None
        return func, mod, time.perf_counter() - t0

    def check(self, mod, workload: _Workload) -> tuple[list, float]:
        import numpy as np

        arrays = [a.copy() for a in workload.inputs]
        t0 = time.perf_counter()
        try:
            mod(*arrays)
        except Exception as err:  # noqa: BLE001 - a candidate that raises is a failed candidate
            raise _Failed(f"run error: {_describe(err)}") from None
        first_call = time.perf_counter() - t0
        if workload.expected is None:
            return arrays, first_call
        for k, (a, orig) in enumerate(zip(arrays, workload.inputs)):
            if k not in workload.outputs and not np.array_equal(a, orig, equal_nan=True):
                raise _Failed(f"wrong result: the candidate changed its input argument {k}")
        for name, k, want in zip(workload.names, workload.outputs, workload.expected):
            diff = _mismatch(name, arrays[k], want, self.options.rtol, self.options.atol)
            if diff:
                raise _Failed(f"wrong result: {diff}")
        return arrays, first_call

    def time(self, mod, arrays: list, first_call: float) -> float:
        from .timing import measure

        o = self.options
        try:
            t = measure(mod, *arrays, min_time=o.min_time, warmup=o.warmup, max_time=o.max_time,
                        estimate=first_call)
        except Exception as err:  # noqa: BLE001 - a candidate that raises is a failed candidate
            raise _Failed(f"run error while timing: {_describe(err)}") from None
        return t.median


def _mismatch(name: str, out, want, rtol: float | None, atol: float | None) -> str | None:
    """None when ``out`` matches ``want`` within tolerance, else one sentence saying how not."""
    import numpy as np

    from .benchmark import _tolerance

    if out.shape != want.shape or out.dtype != want.dtype:
        return f"{name} is {out.dtype}{list(out.shape)} but the untuned program gives {want.dtype}{list(want.shape)}"
    o, w = out.astype(np.float64), want.astype(np.float64)
    tol = _tolerance(out.dtype, rtol, atol, want)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = (o != w) if tol is None else ~np.isclose(o, w, rtol=tol[0], atol=tol[1], equal_nan=True)
    nbad = int(np.count_nonzero(bad))
    if nbad == 0:
        return None
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape)) if bad.ndim else ()
    with np.errstate(invalid="ignore"):
        diff = np.abs(o - w)[bad]
    finite = diff[np.isfinite(diff)]
    unwritten = int(np.count_nonzero(np.isnan(o) & ~np.isnan(w)))
    msg = (f"{name} differs from the untuned program in {nbad} of {bad.size} elements "
           f"(first at {list(where)}: {o[where]:.6g} vs {w[where]:.6g}); "
           f"max abs diff {float(finite.max()) if finite.size else float('nan'):.6g}")
    if unwritten:
        msg += f"; {unwritten} element(s) never written"
    return msg


def _warm_up() -> None:
    """Build and run a one-element program, so that loading llvmlite and starting LLVM's JIT count
    against the worker's start-up limit, not against the first candidate's time limits."""
    import numpy as np

    import workbench as wb
    from workbench import te

    from . import inputs, timing  # noqa: F401  (imported now for the same reason)

    A = te.placeholder((1,), name="A")
    B = te.compute((1,), lambda i: A[i] + 1.0, name="B")
    wb.build(wb.create_prim_func([A, B]), "llvm", cache=False)(np.zeros(1, "float32"), np.zeros(1, "float32"))


def _worker_main(fd: int) -> None:
    """A worker's loop: ``init``, then ``job`` messages, each answered with phases and a result."""
    conn = Connection(fd)
    try:
        _, path, options_bytes = conn.recv()
    except EOFError:
        return
    sys.path[:] = list(path) + [p for p in sys.path if p not in path]
    try:
        options = pickle.loads(options_bytes)
        _warm_up()
        if options.num_threads is not None:
            from ..backend import set_num_threads

            set_num_threads(options.num_threads)
        if options.setup is not None:
            options.setup()
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises WorkerStartError
        conn.send(("init_error", _describe(err)))
        return
    conn.send(("ready", os.getpid()))
    state = _WorkerState(options, conn)
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the parent is gone
            return
        if msg[0] == "stop":
            return
        _, job, payload = msg
        conn.send(("result", job, state.run_job(job, payload)))


# ---------------------------------------------------------------------------
# the parent's side


_PHASE_WORDS = {"starting": "starting the worker", "prepare": "preparing the inputs and the untuned program's "
                "outputs", "build": "building", "check": "checking the result", "timing": "timing"}


class _Worker:
    """A worker process as the parent sees it: its connection, its job and the phase deadline."""

    def __init__(self, options_bytes: bytes, limits: _Options):
        import workbench

        root = os.path.dirname(os.path.dirname(os.path.abspath(workbench.__file__)))
        mine, theirs = socket.socketpair()
        self.log = tempfile.TemporaryFile()
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                f"from workbench.tuning.measure import _worker_main; _worker_main({theirs.fileno()})")
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=[theirs.fileno()],
                                         stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                         start_new_session=True)
        finally:
            theirs.close()
        self.conn = Connection(mine.detach())
        self.conn.send(("init", [p for p in sys.path if isinstance(p, str)], options_bytes))
        self.limits = limits
        self.ready = False
        self.job: int | None = None
        self.build_seconds = 0.0
        self.phase = "starting"
        self.deadline: float | None = time.monotonic() + limits.phase_limit("starting")

    def assign(self, job: int, payload: dict) -> None:
        self.job, self.build_seconds = job, 0.0
        if self.ready:
            self.enter("prepare")
        self.conn.send(("job", job, payload))

    def enter(self, phase: str, deadline: bool = True) -> None:
        self.phase = phase
        self.deadline = time.monotonic() + self.limits.phase_limit(phase) if deadline else None

    def stderr_tail(self) -> str:
        self.log.seek(0)
        lines = [ln.strip() for ln in self.log.read()[-4000:].decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""

    def exit_description(self) -> str:
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # its connection broke but it lives on: end it
            self.proc.kill()
            rc = self.proc.wait()
        if rc is not None and rc < 0:
            try:
                what = f"signal {-rc} ({signal.Signals(-rc).name})"
            except ValueError:
                what = f"signal {-rc}"
        else:
            what = f"the worker exited with code {rc}"
        tail = self.stderr_tail()
        return f"{what} while {_PHASE_WORDS.get(self.phase, self.phase)}" + (f"; stderr: {tail}" if tail else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.conn.close()
        self.log.close()

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class LocalRunner(Runner):
    """Measure candidates in worker processes on this machine (see the module doc).

    ``n_workers`` processes build in parallel; by default one measurement runs at a time
    (``parallel_timing=True`` lets every worker time at once: only for workers pinned to
    separate cores). ``timeout`` limits each phase (preparing, building, checking) in
    seconds; ``min_time``/``warmup``/``max_time`` are ``timing.measure``'s; ``num_threads``
    the threads of parallel loops (``None``: all cores); ``rtol``/``atol`` override the
    tolerance by dtype; ``setup`` is a picklable function run once in every new worker
    (e.g. to register a tensor intrinsic).
    """

    def __init__(self, n_workers: int = 1, *, timeout: float = 10.0, min_time: float = 0.1, warmup: float = 0.02,
                 max_time: float = 2.0, num_threads: int | None = None, rtol: float | None = None,
                 atol: float | None = None, setup: Callable[[], None] | None = None,
                 parallel_timing: bool = False, startup_timeout: float = 120.0):
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        self.options = _Options(timeout, min_time, warmup, max_time, num_threads, rtol, atol, setup,
                                startup_timeout)
        _check_options(self.options)
        self._options_bytes = _encode_options(self.options)
        self.n_workers = n_workers
        self.parallel_timing = bool(parallel_timing)
        self._workers: list[_Worker] = []
        self._closed = False

    def __repr__(self) -> str:
        o = self.options
        return f"LocalRunner(n_workers={self.n_workers}, timeout={o.timeout:g}, live_workers={len(self._workers)})"

    def run(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        if self._closed:
            raise RuntimeError("this LocalRunner is closed; make a new one")
        results: list[MeasureResult | None] = [None] * len(inputs)
        payloads = {}
        for k, inp in enumerate(inputs):
            payloads[k] = _payload(inp)
        try:
            self._dispatch(payloads, results)
        except BaseException:
            self._kill_all()
            raise
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for w in self._workers:
            w.stop()
        self._workers = []
        self._closed = True

    def __del__(self):
        if getattr(self, "_workers", None):
            self._kill_all()

    def _kill_all(self) -> None:
        for w in self._workers:
            w.kill()
        self._workers = []

    def _dispatch(self, payloads: dict, results: list) -> None:
        queue = collections.deque(sorted(payloads))
        waiting: collections.deque[_Worker] = collections.deque()
        timing: set[_Worker] = set()
        while queue or any(w.job is not None for w in self._workers):
            self._assign(queue, payloads)
            while waiting and (self.parallel_timing or not timing):
                w = waiting.popleft()
                w.conn.send(("time", w.job))
                w.enter("check")
                timing.add(w)
            for w in self._ready_workers():
                self._receive(w, results, waiting, timing)
            now = time.monotonic()
            for w in [w for w in self._workers if w.deadline is not None and now > w.deadline]:
                if w.phase == "starting":
                    self._start_failed(w, f"it did not start within {w.limits.startup_timeout:g} s")
                limit = w.limits.phase_limit(w.phase)
                self._fail(w, results, f"timeout after {limit:g} s while {_PHASE_WORDS.get(w.phase, w.phase)}")
                timing.discard(w)

    def _assign(self, queue: collections.deque, payloads: dict) -> None:
        for w in self._workers:
            if w.job is None and queue:
                k = queue.popleft()
                w.assign(k, payloads[k])
        while queue and len(self._workers) < self.n_workers:
            w = _Worker(self._options_bytes, self.options)
            self._workers.append(w)
            k = queue.popleft()
            w.assign(k, payloads[k])

    def _ready_workers(self) -> list[_Worker]:
        busy = [w for w in self._workers if w.job is not None]
        deadlines = [w.deadline for w in busy if w.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) + 0.01 if deadlines else None
        ready = wait([w.conn for w in busy], timeout)
        return [w for w in busy if w.conn in ready]

    def _receive(self, w: _Worker, results: list, waiting: collections.deque, timing: set) -> None:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            if w.phase == "starting":
                self._start_failed(w, w.exit_description())
            self._fail(w, results, f"crash: {w.exit_description()}")
            timing.discard(w)
            return
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            w.enter("prepare")
        elif kind == "init_error":
            self._start_failed(w, msg[1])
        elif kind == "phase":
            w.enter(msg[2])
        elif kind == "built":
            w.build_seconds = msg[2]
            w.enter("queued", deadline=False)
            waiting.append(w)
        elif kind == "result":
            results[msg[1]] = MeasureResult(*msg[2])
            w.job = None
            w.enter("idle", deadline=False)
            timing.discard(w)

    def _fail(self, w: _Worker, results: list, error: str) -> None:
        """Record the worker's job as failed and replace the worker (a new one starts on demand)."""
        results[w.job] = MeasureResult(False, None, error, w.build_seconds)
        w.kill()
        self._workers.remove(w)

    def _start_failed(self, w: _Worker, why: str) -> None:
        tail = w.stderr_tail() if not w.log.closed else ""
        self._kill_all()
        msg = f"a measurement worker failed to start: {why}"
        if tail and tail not in why:
            msg += f" (stderr: {tail})"
        raise WorkerStartError(msg)


# ---------------------------------------------------------------------------
# Dask


_DASK_RUNNERS: dict[bytes, LocalRunner] = {}
_DASK_LOCK = threading.Lock()


def _dask_job(payload: dict, options_bytes: bytes) -> tuple:
    """The task a Dask worker runs: measure one payload in this worker's own LocalRunner.

    The candidate runs in a child process of the Dask worker, so a segfault or a hang
    kills the child only (the Dask worker stays, and the error says what happened); one
    runner and one measurement at a time per Dask worker process (the lock), however
    many threads the worker has.
    """
    with _DASK_LOCK:
        runner = _DASK_RUNNERS.get(options_bytes)
        if runner is None:
            o = pickle.loads(options_bytes)
            runner = LocalRunner(1, timeout=o.timeout, min_time=o.min_time, warmup=o.warmup, max_time=o.max_time,
                                 num_threads=o.num_threads, rtol=o.rtol, atol=o.atol, setup=o.setup,
                                 startup_timeout=o.startup_timeout)
            _DASK_RUNNERS[options_bytes] = runner
        results: list = [None]
        try:
            runner._dispatch({0: payload}, results)
        except BaseException:
            runner._kill_all()
            raise
        r = results[0]
        return r.ok, r.seconds, r.error, r.build_seconds


class DaskRunner(Runner):
    """Measure candidates on a Dask ``distributed`` cluster: ``DaskRunner("tcp://host:8786")``
    or ``DaskRunner(client)``. Options as :class:`LocalRunner`'s.

    Each task measures in a child process of its Dask worker (the same worker code as
    :class:`LocalRunner`) rather than relying on Dask's worker restarts: a crash then costs
    one process start instead of a nanny restart, the error names the signal instead of a
    bare ``KilledWorker``, and a hang is killed at the time limit (Dask has none). A Dask
    worker measures one candidate at a time; run one worker per machine
    (``threads_per_worker`` does not matter) so that measurements do not share cores.
    """

    def __init__(self, cluster: Any, *, timeout: float = 10.0, min_time: float = 0.1, warmup: float = 0.02,
                 max_time: float = 2.0, num_threads: int | None = None, rtol: float | None = None,
                 atol: float | None = None, setup: Callable[[], None] | None = None,
                 startup_timeout: float = 120.0):
        try:
            import distributed
        except ImportError:
            raise ImportError("DaskRunner needs Dask's `distributed` package: pip install 'workbench[tune]'") \
                from None
        self.options = _Options(timeout, min_time, warmup, max_time, num_threads, rtol, atol, setup,
                                startup_timeout)
        _check_options(self.options)
        self._options_bytes = _encode_options(self.options)
        if isinstance(cluster, distributed.Client):
            self.client, self._own_client = cluster, False
        elif isinstance(cluster, str):
            self.client, self._own_client = distributed.Client(cluster), True
        else:
            raise TypeError(f"DaskRunner takes a scheduler address ('tcp://host:8786') or a distributed.Client, "
                            f"got {type(cluster).__name__}")

    def __repr__(self) -> str:
        return f"DaskRunner({self.client.scheduler.address!r})"

    def run(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        import distributed

        payloads = [_payload(inp) for inp in inputs]
        futures = [self.client.submit(_dask_job, p, self._options_bytes, pure=False) for p in payloads]
        distributed.wait(futures)
        results = []
        for f in futures:
            if f.status == "finished":
                results.append(MeasureResult(*f.result()))
                continue
            err = f.exception()
            if isinstance(err, WorkerStartError):
                raise err
            results.append(MeasureResult(False, None, f"dask error: {_describe(err)}", 0.0))
        return results

    def close(self) -> None:
        if self._own_client:
            self.client.close()


__all__ = ["MeasureInput", "MeasureResult", "Runner", "LocalRunner", "DaskRunner", "WorkerStartError"]
