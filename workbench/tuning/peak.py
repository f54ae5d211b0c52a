"""The machine's peak: fp32 FMA throughput and memory bandwidth, measured with kernels
the workbench generates and builds itself.

- **FMA peak**: a tensor program whose every core keeps ``acc`` independent
  accumulators of a full vector register (``wb.vectorized`` lanes, ``wb.unroll``-ed)
  in a register-allocated local buffer and updates each with ``fma`` in a loop.
  Independent chains hide the FMA latency, so the loop runs at the FMA units'
  throughput. The parallel outer loop puts one copy on each thread.
- **Bandwidth**: a STREAM-style triad ``a = b + 3 * c`` over arrays several times
  larger than the last-level cache, parallel over rows. Bytes counted as STREAM does:
  read ``b`` and ``c``, write ``a`` (``3 * 4`` bytes per element; the cache's
  write-allocate read of ``a`` is not counted).

Both report the *best* sample (the shortest time of many short samples): a peak is
what the machine can do, and interference from other programs on a shared machine
only ever slows a run down.

Results are cached on disk per machine and target, under
``~/.cache/workbench/peak-<cpu>-<hash>.json`` (``$XDG_CACHE_HOME`` and ``cache_dir=``
are honoured); ``refresh=True`` measures again.

>>> import workbench as wb
>>> p = wb.machine_peak()                 # doctest: +SKIP
>>> p.gflops, p.gbps, p.cores, p.cpu      # doctest: +SKIP
(195.3, 21.8, 2, 'AMD EPYC (znver3)')
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..ir import expr as E
from ..ir.buffer import Buffer
from ..ir.function import PrimFunc
from ..ir.stmt import Allocate, BufferStore, For, SeqStmt

#: version of the measuring kernels: bump it when they change so old caches are ignored
KERNEL_VERSION = 1


@dataclass
class MachinePeak:
    """The measured peak of this machine for a target.

    ``gflops``: fp32 FMA peak over all ``cores`` (GFLOP/s); ``gflops_per_core``: the same
    kernel on one thread; ``gbps``: triad memory bandwidth over all cores (GB/s,
    1 GB = 1e9 bytes); ``ridge``: the arithmetic intensity (FLOP/byte) where the
    roofline's slope meets its flat top.
    """

    gflops: float
    gbps: float
    cores: int
    cpu: str
    target: str
    gflops_per_core: float = float("nan")
    measured_at: str = ""
    details: dict = field(default_factory=dict)
    from_cache: bool = False
    path: str | None = None

    @property
    def ridge(self) -> float:
        return self.gflops / self.gbps if self.gbps > 0 else float("inf")

    def __str__(self) -> str:
        return (f"{self.cpu}, {self.cores} core(s), {self.target}: fp32 FMA peak {self.gflops:.1f} GFLOP/s "
                f"({self.gflops_per_core:.1f} per core), memory bandwidth {self.gbps:.1f} GB/s"
                + (" (cached)" if self.from_cache else ""))

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


# ---------------------------------------------------------------------------
# the generated kernels


def fma_kernel(acc: int, lanes: int) -> PrimFunc:
    """The FMA-peak program: ``X`` is ``(threads, acc * lanes)``, ``iters`` a scalar parameter.

    Each row ``p`` (one per thread, parallel) loads its accumulators into a local
    buffer, runs ``iters`` rounds of ``acc`` independent vector FMAs, and stores them
    back (so nothing is dead code). ``2 * threads * iters * acc * lanes`` FLOPs.

    >>> print(fma_kernel(2, 4).script())   # doctest: +ELLIPSIS
    @wb.prim_func
    def peak_fma(...
    ...
    """
    width = acc * lanes
    threads = E.Var("threads")
    iters = E.Var("iters")
    x = E.Var("x", "handle")
    X = Buffer("X", (threads, width), "float32")
    R = Buffer("R", (width,), "float32", scope="local")
    p = E.Var("p")

    def vec_loop(name: str, body_of):
        a, l = E.Var(f"a{name}"), E.Var(f"l{name}")
        return For(a, 0, acc, "unrolled", For(l, 0, lanes, "vectorized", body_of(a * lanes + l)))

    # x <- x * 0.999999 + 1e-6 has the fixed point 1.0: no overflow or denormals however long it runs
    mul, add = E.FloatImm(0.999999, "float32"), E.FloatImm(1e-6, "float32")
    load = vec_loop("0", lambda k: BufferStore(R, X[p, k], [k]))
    it = E.Var("it")
    chain = For(it, 0, iters, "serial", vec_loop("1", lambda k: BufferStore(R, E.call("fma", R[k], mul, add), [k])))
    store = vec_loop("2", lambda k: BufferStore(X, R[k], [p, k]))
    body = For(p, 0, threads, "parallel", Allocate(R, SeqStmt([load, chain, store])))
    return PrimFunc([x, iters], {x: X}, body, {"global_symbol": "peak_fma"})


def triad_kernel(lanes: int) -> PrimFunc:
    """The bandwidth program: ``a[i, l] = b[i, l] + 3 * c[i, l]`` over ``(rows, lanes)`` arrays,
    rows in parallel, lanes vectorized.

    >>> print(triad_kernel(8).script())   # doctest: +ELLIPSIS
    @wb.prim_func
    def peak_triad(...
    ...
    """
    rows = E.Var("rows")
    handles = [E.Var(n, "handle") for n in ("a", "b", "c")]
    A, B, C = (Buffer(n.upper(), (rows, lanes), "float32") for n in ("a", "b", "c"))
    i, l = E.Var("i"), E.Var("l")
    s = For(i, 0, rows, "parallel", For(l, 0, lanes, "vectorized",
                                        BufferStore(A, B[i, l] + E.FloatImm(3.0, "float32") * C[i, l], [i, l])))
    return PrimFunc(handles, dict(zip(handles, (A, B, C))), s, {"global_symbol": "peak_triad"})


# ---------------------------------------------------------------------------
# machine facts


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


def _llc_bytes() -> int:
    """Size of the last-level cache (bytes); 32 MiB when unknown."""
    best = 0
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for idx in base.glob("index*"):
            txt = (idx / "size").read_text().strip()
            mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(txt[-1:], 1)
            val = int(txt[:-1]) * mult if txt[-1:] in "KMG" else int(txt)
            best = max(best, val)
    except (OSError, ValueError):
        pass
    return best or 32 * 1024 ** 2


def _cache_dir(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("WB_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "workbench"


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in s).strip("-") or "cpu"


# ---------------------------------------------------------------------------


def _measure_fma(tgt, threads: int, min_time: float, acc: int | None):
    from ..backend import build
    from .timing import measure

    lanes = tgt.vector_lanes("float32")
    if acc is None:
        regs = 32 if tgt.has("avx512f") else 16
        acc = regs * 3 // 4  # independent chains; leave registers for the constants
    mod = build(fma_kernel(acc, lanes), target=tgt)
    fn = mod["peak_fma"]

    def rate(nthreads: int) -> tuple[float, int]:
        X = np.ones((nthreads, acc * lanes), "float32")
        iters = 1000
        # calibrate: one call should take ~ min_time / 50 (at least 2 ms): long enough that call
        # overhead is nil, short enough that many samples catch a moment without interference
        while True:
            t0 = time.perf_counter()
            fn(X, iters)
            dt = time.perf_counter() - t0
            goal = max(2e-3, min_time / 50)
            if dt >= goal or iters >= 2 ** 30:
                break
            iters = min(2 ** 30, int(iters * max(2.0, 1.2 * goal / max(dt, 1e-7))))
        t = measure(fn, X, iters, min_time=min_time, warmup=0.0, min_sample=0.0, min_repeats=5,
                    max_repeats=1000)
        if not np.allclose(X, 1.0, atol=1e-2):
            raise RuntimeError("the FMA peak kernel computed wrong values; the measurement is not trustworthy")
        return 2.0 * nthreads * iters * acc * lanes / min(t.samples) / 1e9, iters

    per_core, _ = rate(1)
    total, iters = rate(threads) if threads > 1 else (per_core, None)
    return total, per_core, {"acc": acc, "lanes": lanes, "iters": iters}


def _measure_triad(tgt, threads: int, min_time: float, stream_bytes: int | None):
    from ..backend import build
    from .timing import measure

    lanes = tgt.vector_lanes("float32")
    if stream_bytes is None:
        stream_bytes = int(min(max(4 * _llc_bytes(), 64 * 1024 ** 2), 1024 ** 3))
    rows = max(threads, stream_bytes // (4 * lanes))
    fn = build(triad_kernel(lanes), target=tgt)["peak_triad"]
    a = np.zeros((rows, lanes), "float32")
    b = np.ones((rows, lanes), "float32")
    c = np.full((rows, lanes), 2.0, "float32")
    t = measure(fn, a, b, c, min_time=min_time, warmup=0.0, min_sample=0.0, min_repeats=5, max_repeats=1000)
    if not np.all(a == 7.0):
        raise RuntimeError("the bandwidth kernel computed wrong values; the measurement is not trustworthy")
    moved = 3 * a.nbytes
    return moved / min(t.samples) / 1e9, {"array_bytes": int(a.nbytes)}


def machine_peak(target="llvm", *, refresh: bool = False, cache_dir=None, min_time: float = 0.3,
                 stream_bytes: int | None = None, acc: int | None = None) -> MachinePeak:
    """This machine's fp32 FMA peak (GFLOP/s) and memory bandwidth (GB/s), measured once and cached.

    The first call measures (a second or two) with kernels the workbench generates
    and builds (see the module doc); later calls read the cache file, keyed by the
    CPU, the core count, the target and the measuring parameters. ``refresh=True``
    measures again and rewrites the cache. ``stream_bytes`` (size of each triad
    array, default 4x the last-level cache, at least 64 MiB) and ``min_time``
    (seconds of samples per kernel) trade accuracy for time; ``acc`` overrides the
    number of independent FMA chains per thread.

    >>> import workbench as wb
    >>> p = wb.machine_peak()                     # doctest: +SKIP
    >>> print(p)                                  # doctest: +SKIP
    AMD EPYC, 2 core(s), llvm -mcpu=znver3: fp32 FMA peak 195.3 GFLOP/s (98.1 per core), memory bandwidth 21.8 GB/s
    """
    from ..backend import Target
    from ..backend.llvm.runtime import get_num_threads

    tgt = Target(target)
    threads = get_num_threads()
    cpu = _cpu_model()
    params = {"v": KERNEL_VERSION, "target": tgt.cache_key, "threads": threads, "cpu": cpu,
              "min_time": min_time, "stream_bytes": stream_bytes, "acc": acc}
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = _cache_dir(cache_dir) / f"peak-{_slug(tgt.cpu or cpu)}-{digest}.json"
    if not refresh and path.exists():
        try:
            data = json.loads(path.read_text())
            data.pop("from_cache", None)
            data.pop("path", None)
            return MachinePeak(**data, from_cache=True, path=str(path))
        except (OSError, ValueError, TypeError):
            pass  # a damaged cache file: measure again
    gflops, per_core, fdet = _measure_fma(tgt, threads, min_time, acc)
    gbps, bdet = _measure_triad(tgt, threads, min_time, stream_bytes)
    peak = MachinePeak(gflops=round(gflops, 2), gbps=round(gbps, 2), cores=threads,
                       cpu=f"{cpu} ({tgt.cpu})" if tgt.cpu and tgt.cpu not in cpu else cpu,
                       target=str(tgt), gflops_per_core=round(per_core, 2),
                       measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                       details={"fma": fdet, "triad": bdet, "params": params}, path=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        data = asdict(peak)
        data.pop("from_cache")
        data.pop("path")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the result is still returned, just not cached
    return peak


__all__ = ["machine_peak", "MachinePeak", "fma_kernel", "triad_kernel"]
