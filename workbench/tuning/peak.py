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

**GPU targets** (``"opencl"``, ``"cuda"``) measure the device with GPU versions of the
same two kernels (:func:`gpu_fma_kernel`, :func:`gpu_triad_kernel`): loops bound to
``blockIdx.x``/``threadIdx.x``, enough blocks to fill every compute unit several times,
``acc`` independent FMA chains per thread in registers; both are timed by the device's
events (kernel time only: no copies, no launch overhead). Under PoCL, which runs OpenCL
on the CPU, the figures are the CPU's as PoCL's compiler gets it (scalar code per work
item, vectorised across work items where PoCL manages), usually below ``machine_peak("llvm")``.

Results are cached on disk per machine and target (for GPU targets: per device name), under
``~/.cache/workbench/peak-<cpu or device>-<hash>.json`` (``$XDG_CACHE_HOME`` and ``cache_dir=``
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
#: the same for the GPU kernels
GPU_KERNEL_VERSION = 1

#: threads per block of the GPU measuring kernels (fewer where the target or the device allows fewer)
GPU_THREADS = 256
#: blocks per compute unit (SM / OpenCL compute unit) of the FMA kernel: several waves of resident blocks
GPU_BLOCKS_PER_UNIT = 16
#: independent FMA chains per GPU thread
GPU_ACC = 8


@dataclass
class MachinePeak:
    """The measured peak of this machine for a target.

    ``gflops``: fp32 FMA peak over all ``cores`` (GFLOP/s); ``gflops_per_core``: the same
    kernel on one thread; ``gbps``: triad memory bandwidth over all cores (GB/s,
    1 GB = 1e9 bytes); ``ridge``: the arithmetic intensity (FLOP/byte) where the
    roofline's slope meets its flat top. For a GPU target, ``device`` names the device,
    ``cpu`` is that name too (what plots show), ``cores`` its compute units (SMs, OpenCL
    compute units), ``gflops_per_core`` is not measured (NaN), and both figures are device
    time from events.
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
    device: str = ""

    @property
    def ridge(self) -> float:
        return self.gflops / self.gbps if self.gbps > 0 else float("inf")

    def __str__(self) -> str:
        if self.device:
            return (f"{self.device}, {self.cores} compute unit(s), {self.target}: fp32 FMA peak {self.gflops:.1f} "
                    f"GFLOP/s, memory bandwidth {self.gbps:.1f} GB/s (device time)"
                    + (" (cached)" if self.from_cache else ""))
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


def gpu_fma_kernel(acc: int, threads: int) -> PrimFunc:
    """The GPU FMA-peak program: ``X`` is ``(blocks, acc, threads)``, ``iters`` a scalar parameter.

    Block ``b`` (``blockIdx.x``), thread ``t`` (``threadIdx.x``) loads ``X[b, :, t]`` into ``acc``
    registers (a ``local`` buffer, its loops unrolled), runs ``iters`` rounds of ``acc``
    independent FMAs and stores them back; the ``threads`` neighbours of one block touch
    neighbouring elements. ``2 * blocks * threads * iters * acc`` FLOPs.

    >>> print(gpu_fma_kernel(2, 32).script())   # doctest: +ELLIPSIS
    @wb.prim_func
    def peak_fma_gpu(...
    ...
    """
    blocks, iters = E.Var("blocks"), E.Var("iters")
    x = E.Var("x", "handle")
    X = Buffer("X", (blocks, acc, threads), "float32")
    R = Buffer("R", (acc,), "float32", scope="local")
    b, t = E.Var("b"), E.Var("t")

    def over_acc(name: str, body_of):
        a = E.Var(name)
        return For(a, 0, acc, "unrolled", body_of(a))

    mul, add = E.FloatImm(0.999999, "float32"), E.FloatImm(1e-6, "float32")  # fixed point 1.0, as fma_kernel
    load = over_acc("a0", lambda k: BufferStore(R, X[b, k, t], [k]))
    it = E.Var("it")
    chain = For(it, 0, iters, "serial", over_acc("a1", lambda k: BufferStore(R, E.call("fma", R[k], mul, add), [k])))
    store = over_acc("a2", lambda k: BufferStore(X, R[k], [b, k, t]))
    body = For(b, 0, blocks, "thread_binding",
               For(t, 0, threads, "thread_binding", Allocate(R, SeqStmt([load, chain, store])), thread="threadIdx.x"),
               thread="blockIdx.x")
    return PrimFunc([x, iters], {x: X}, body, {"global_symbol": "peak_fma_gpu"})


def gpu_triad_kernel(threads: int) -> PrimFunc:
    """The GPU bandwidth program: ``a[r, t] = b[r, t] + 3 * c[r, t]`` over ``(rows, threads)`` arrays,
    one row per block (``blockIdx.x``), one element per thread (``threadIdx.x``).

    >>> print(gpu_triad_kernel(32).script())   # doctest: +ELLIPSIS
    @wb.prim_func
    def peak_triad_gpu(...
    ...
    """
    rows = E.Var("rows")
    handles = [E.Var(n, "handle") for n in ("a", "b", "c")]
    A, B, C = (Buffer(n.upper(), (rows, threads), "float32") for n in ("a", "b", "c"))
    r, t = E.Var("r"), E.Var("t")
    store = BufferStore(A, B[r, t] + E.FloatImm(3.0, "float32") * C[r, t], [r, t])
    body = For(r, 0, rows, "thread_binding", For(t, 0, threads, "thread_binding", store, thread="threadIdx.x"),
               thread="blockIdx.x")
    return PrimFunc(handles, dict(zip(handles, (A, B, C))), body, {"global_symbol": "peak_triad_gpu"})


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


# ---------------------------------------------------------------------------
# GPU devices


@dataclass
class _GPUFacts:
    """What the GPU measurement needs to know of the device."""

    name: str          # the device, in words
    index: int         # for wb.device(kind, index)
    units: int         # compute units (SMs)
    max_threads: int   # threads per block
    cache_bytes: int   # the last-level (L2 / global memory) cache
    max_alloc: int     # the largest array to allocate (bytes)


def _gpu_facts(tgt) -> _GPUFacts:
    """The target's device; for CUDA without a driver, BackendUnavailableError saying so."""
    if tgt.kind == "opencl":
        from ..backend.opencl.runtime import device_index_for, device_state

        index = device_index_for(tgt)
        state = device_state(index)
        d = state.device
        return _GPUFacts(state.describe(), index, int(d.max_compute_units), int(d.max_work_group_size),
                         int(d.global_mem_cache_size), int(d.max_mem_alloc_size))
    from ..backend.cuda.runtime import _check, _driver_api, device_state, require_driver

    require_driver()
    state = device_state(0)
    drv = _driver_api()
    a = drv.CUdevice_attribute

    def attr(which) -> int:
        return int(_check(drv.cuDeviceGetAttribute(which, state.device), "cuDeviceGetAttribute"))

    total = int(_check(drv.cuDeviceTotalMem(state.device), "cuDeviceTotalMem"))
    return _GPUFacts(state.describe(), 0, attr(a.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), state.max_threads,
                     attr(a.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE), total // 8)


def _device_timed(fn):
    return lambda: fn.last_device_seconds


def _measure_gpu_fma(tgt, facts: _GPUFacts, threads: int, min_time: float, acc: int | None):
    from ..backend import build, ndarray as nd
    from .timing import measure

    acc = acc or GPU_ACC
    blocks = max(1, facts.units) * GPU_BLOCKS_PER_UNIT
    fn = build(gpu_fma_kernel(acc, threads), target=tgt)["peak_fma_gpu"]
    X = nd.array(np.ones((blocks, acc, threads), "float32"), nd.device(tgt.kind, facts.index))
    iters = 64
    goal = max(2e-3, min_time / 50)   # device seconds per call, as for the CPU kernel
    while True:
        fn(X, iters)
        dt = fn.last_device_seconds
        if dt >= goal or iters >= 2 ** 30:
            break
        iters = min(2 ** 30, int(iters * max(2.0, 1.2 * goal / max(dt, 1e-7))))
    t = measure(fn, X, iters, min_time=min_time, warmup=0.0, min_sample=0.0, min_repeats=5, max_repeats=1000,
                device_seconds=_device_timed(fn))
    if not np.allclose(X.numpy(), 1.0, atol=1e-2):
        raise RuntimeError("the GPU FMA peak kernel computed wrong values; the measurement is not trustworthy")
    flops = 2.0 * blocks * threads * iters * acc
    return flops / min(t.samples) / 1e9, {"acc": acc, "threads": threads, "blocks": blocks, "iters": iters}


def _measure_gpu_triad(tgt, facts: _GPUFacts, threads: int, min_time: float, stream_bytes: int | None):
    from ..backend import build, ndarray as nd
    from .timing import measure

    if stream_bytes is None:
        stream_bytes = min(max(4 * facts.cache_bytes, 64 * 1024 ** 2), 1024 ** 3, facts.max_alloc)
    rows = max(facts.units, stream_bytes // (4 * threads))
    fn = build(gpu_triad_kernel(threads), target=tgt)["peak_triad_gpu"]
    dev = nd.device(tgt.kind, facts.index)
    a = nd.empty((rows, threads), "float32", dev)
    b = nd.array(np.ones((rows, threads), "float32"), dev)
    c = nd.array(np.full((rows, threads), 2.0, "float32"), dev)
    t = measure(fn, a, b, c, min_time=min_time, warmup=0.0, min_sample=0.0, min_repeats=5, max_repeats=1000,
                device_seconds=_device_timed(fn))
    if not np.all(a.numpy() == 7.0):
        raise RuntimeError("the GPU bandwidth kernel computed wrong values; the measurement is not trustworthy")
    nbytes = rows * threads * 4
    return 3 * nbytes / min(t.samples) / 1e9, {"array_bytes": int(nbytes), "threads": threads}


def _gpu_peak(tgt, *, refresh: bool, cache_dir, min_time: float, stream_bytes: int | None,
              acc: int | None) -> MachinePeak:
    facts = _gpu_facts(tgt)
    threads = min(GPU_THREADS, tgt.max_num_threads, facts.max_threads)
    params = {"v": GPU_KERNEL_VERSION, "target": tgt.cache_key, "device": facts.name, "min_time": min_time,
              "stream_bytes": stream_bytes, "acc": acc}
    path = _cache_path(cache_dir, facts.name, params)
    cached = None if refresh else _read_cache(path)
    if cached is not None:
        return cached
    gflops, fdet = _measure_gpu_fma(tgt, facts, threads, min_time, acc)
    gbps, bdet = _measure_gpu_triad(tgt, facts, threads, min_time, stream_bytes)
    peak = MachinePeak(gflops=round(gflops, 2), gbps=round(gbps, 2), cores=facts.units, cpu=facts.name,
                       target=str(tgt), measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                       details={"fma": fdet, "triad": bdet, "params": params, "timing": "device events"},
                       path=str(path), device=facts.name)
    _write_cache(path, peak)
    return peak


def _cache_path(cache_dir, who: str, params: dict) -> Path:
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return _cache_dir(cache_dir) / f"peak-{_slug(who)}-{digest}.json"


def _read_cache(path: Path) -> MachinePeak | None:
    """The cached result at ``path``, or None when there is none or it is damaged."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        data.pop("from_cache", None)
        data.pop("path", None)
        return MachinePeak(**data, from_cache=True, path=str(path))
    except (OSError, ValueError, TypeError):
        return None  # a damaged cache file: measure again


def _write_cache(path: Path, peak: MachinePeak) -> None:
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

    For a GPU target (``"opencl"``, ``"cuda"``) the device is measured instead, with
    thread-bound kernels timed by device events (see the module doc), and cached per device
    name; ``stream_bytes`` defaults to 4x the device's cache (64 MiB to 1 GiB). Under PoCL
    (OpenCL on the CPU) these are CPU figures. ``"cuda"`` on a machine without an NVIDIA
    driver raises ``BackendUnavailableError`` saying so.

    >>> import workbench as wb
    >>> p = wb.machine_peak()                     # doctest: +SKIP
    >>> print(p)                                  # doctest: +SKIP
    AMD EPYC, 2 core(s), llvm -mcpu=znver3: fp32 FMA peak 195.3 GFLOP/s (98.1 per core), memory bandwidth 21.8 GB/s
    """
    from ..backend import Target
    from ..backend.llvm.runtime import get_num_threads

    tgt = Target(target)
    if tgt.is_gpu:
        return _gpu_peak(tgt, refresh=refresh, cache_dir=cache_dir, min_time=min_time, stream_bytes=stream_bytes,
                         acc=acc)
    threads = get_num_threads()
    cpu = _cpu_model()
    params = {"v": KERNEL_VERSION, "target": tgt.cache_key, "threads": threads, "cpu": cpu,
              "min_time": min_time, "stream_bytes": stream_bytes, "acc": acc}
    path = _cache_path(cache_dir, tgt.cpu or cpu, params)
    cached = None if refresh else _read_cache(path)
    if cached is not None:
        return cached
    gflops, per_core, fdet = _measure_fma(tgt, threads, min_time, acc)
    gbps, bdet = _measure_triad(tgt, threads, min_time, stream_bytes)
    peak = MachinePeak(gflops=round(gflops, 2), gbps=round(gbps, 2), cores=threads,
                       cpu=f"{cpu} ({tgt.cpu})" if tgt.cpu and tgt.cpu not in cpu else cpu,
                       target=str(tgt), gflops_per_core=round(per_core, 2),
                       measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                       details={"fma": fdet, "triad": bdet, "params": params}, path=str(path))
    _write_cache(path, peak)
    return peak


__all__ = ["machine_peak", "MachinePeak", "fma_kernel", "triad_kernel", "gpu_fma_kernel", "gpu_triad_kernel"]
