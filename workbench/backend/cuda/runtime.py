"""Load and launch CUDA kernels with the driver API (``cuda.bindings.driver``); device memory for ``wb.nd``.

Everything here needs an NVIDIA driver, and asks for it only when used: building to
PTX works without one, and calling a built function (or ``wb.device("cuda")``) on a
machine without one raises :class:`~workbench.backend.target.BackendUnavailableError`
saying so. Kernels run in the device's *primary* context, the one CuPy and PyTorch use,
so their arrays (anything with ``__cuda_array_interface__``) are passed by pointer,
without a copy. Launches go to the legacy default stream, which waits for other work
of those libraries on their default streams; each call synchronises before it returns,
so a kernel fault is reported by the call that caused it. Each launch is bracketed by a
pair of CUDA events, and ``f.last_device_seconds`` is the sum of the pairs' elapsed
times of ``f``'s last call (kernels only: copies of numpy arguments are not in it).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...ir import expr as E
from ...ir.dtype import DTypeError, from_numpy, to_numpy
from ...ir.function import PrimFunc
from ...ir.stmt import Allocate
from ..ndarray import NDArray, register_device_api
from ..opencl.codegen import ModuleSource
from ..opencl.runtime import DeviceLimitError, OpenCLFunction, OpenCLModule, host_eval
from ..target import BackendUnavailableError, Target
from .compile import CompiledCUDA, max_ptx_isa

NO_DRIVER = "no CUDA driver on this machine"
_INSTALL = 'pip install "workbench[cuda]"'


class CUDAError(RuntimeError):
    """A CUDA driver call failed (the message names the call and the driver's error)."""


def _driver_api():
    try:
        from cuda.bindings import driver
    except ImportError:
        raise BackendUnavailableError(f"the cuda backend needs cuda-python: {_INSTALL}") from None
    return driver


def _check(result, what: str):
    """Unpack a cuda.bindings driver result tuple; raise :class:`CUDAError` on an error code."""
    drv = _driver_api()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != drv.CUresult.CUDA_SUCCESS:
        _, name = drv.cuGetErrorName(err)
        _, text = drv.cuGetErrorString(err)
        name = name.decode() if isinstance(name, bytes) else name
        text = text.decode() if isinstance(text, bytes) else text
        raise CUDAError(f"{what} failed: {name} ({text})")
    return values[0] if len(values) == 1 else tuple(values)


@lru_cache(maxsize=None)
def _probe() -> tuple:
    """(driver version, device count) after ``cuInit``, or (None, why) where there is no usable driver."""
    drv = _driver_api()
    try:
        err, = drv.cuInit(0)
    except RuntimeError as e:   # cuda.pathfinder cannot find libcuda.so
        return None, f"{NO_DRIVER} (libcuda could not be loaded: {e})"
    if err == drv.CUresult.CUDA_ERROR_NO_DEVICE:
        return None, "the CUDA driver found no GPU on this machine"
    if err != drv.CUresult.CUDA_SUCCESS:
        return None, f"{NO_DRIVER} that works (cuInit returned {err.name})"
    return _check(drv.cuDriverGetVersion(), "cuDriverGetVersion"), _check(drv.cuDeviceGetCount(), "cuDeviceGetCount")


def driver_version() -> int | None:
    """The driver's CUDA version (``12040`` for 12.4), or None where there is no driver."""
    version, _ = _probe()
    return version


def require_driver() -> int:
    """The driver version; :class:`BackendUnavailableError` naming the cause where there is none."""
    version, detail = _probe()
    if version is None:
        raise BackendUnavailableError(f"{detail}; wb.build(..., target=\"cuda\") still makes CUDA C and PTX "
                                      "(f.source(\"cuda\"), f.source(\"ptx\")), but running needs an NVIDIA GPU")
    return version


class _DeviceState:
    """One GPU: its primary context, name, compute capability and limits."""

    def __init__(self, index: int):
        drv = _driver_api()
        require_driver()
        count = _probe()[1]
        if index >= count:
            raise ValueError(f"CUDA device {index} does not exist; there are {count}")
        self.index = index
        self.device = _check(drv.cuDeviceGet(index), "cuDeviceGet")
        self.context = _check(drv.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
        raw = _check(drv.cuDeviceGetName(256, self.device), "cuDeviceGetName")
        self.name = raw.split(b"\0")[0].decode()
        a = drv.CUdevice_attribute
        attr = lambda which: _check(drv.cuDeviceGetAttribute(which, self.device), "cuDeviceGetAttribute")
        self.capability = (attr(a.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                           attr(a.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))
        self.max_threads = attr(a.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
        self.max_block = (attr(a.CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X), attr(a.CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y),
                          attr(a.CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z))
        self.max_shared = attr(a.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)

    @property
    def arch(self) -> str:
        major, minor = self.capability
        return f"sm_{major}{minor}" + ("a" if (major, minor) == (9, 0) else "")

    def make_current(self) -> None:
        _check(_driver_api().cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def describe(self) -> str:
        return f"{self.name} (sm_{self.capability[0]}{self.capability[1]})"


@lru_cache(maxsize=None)
def device_state(index: int = 0) -> _DeviceState:
    return _DeviceState(index)


def device_arch_or_none(index: int = 0) -> str | None:
    """The architecture of CUDA device ``index`` (``"sm_90a"``), or None where there is no driver or device."""
    if driver_version() is None:
        return None
    return device_state(index).arch


class DeviceMemory:
    """``nbytes`` of device memory (``cuMemAlloc``), freed when the object goes."""

    def __init__(self, index: int, nbytes: int):
        state = device_state(index)
        state.make_current()
        self.index, self.nbytes = index, nbytes
        drv = _driver_api()
        self.ptr = _check(drv.cuMemAlloc(max(1, nbytes)), f"cuMemAlloc({nbytes} bytes)")
        # kept for __del__: at interpreter exit `from cuda.bindings import driver` no longer works
        self._free = drv.cuMemFree

    def __int__(self) -> int:
        return int(self.ptr)

    def __del__(self):
        ptr = getattr(self, "ptr", None)
        if ptr is not None:
            self.ptr = None
            self._free(ptr)


class EventPool:
    """Pairs of CUDA events (``cuEventCreate``), reused from call to call and destroyed with the pool."""

    def __init__(self):
        self.pairs: list[tuple] = []
        self._destroy = None

    def pair(self, k: int) -> tuple:
        """The ``k``-th (start, end) pair, made when there are not that many yet."""
        drv = _driver_api()
        # kept for __del__: at interpreter exit `from cuda.bindings import driver` no longer works
        self._destroy = drv.cuEventDestroy
        while len(self.pairs) <= k:
            flags = drv.CUevent_flags.CU_EVENT_DEFAULT
            self.pairs.append((_check(drv.cuEventCreate(flags), "cuEventCreate"),
                               _check(drv.cuEventCreate(flags), "cuEventCreate")))
        return self.pairs[k]

    def __del__(self):
        pairs = getattr(self, "pairs", ())
        self.pairs = []
        for pair in pairs:
            for ev in pair:
                self._destroy(ev)


class _CUDAAPI:
    """Device memory for ``wb.nd`` arrays on CUDA devices."""

    def alloc(self, index: int, nbytes: int) -> DeviceMemory:
        return DeviceMemory(index, nbytes)

    def upload(self, index: int, handle, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        device_state(index).make_current()
        _check(_driver_api().cuMemcpyHtoD(int(handle), host.ctypes.data, host.nbytes), "cuMemcpyHtoD")

    def download(self, index: int, handle, host: np.ndarray) -> None:
        device_state(index).make_current()
        _check(_driver_api().cuMemcpyDtoH(host.ctypes.data, int(handle), host.nbytes), "cuMemcpyDtoH")

    def describe(self, index: int) -> str:
        return device_state(index).describe()


register_device_api("cuda", _CUDAAPI())


# ----------------------------------------------------------------------------------------------------------
# arrays of other libraries


class ForeignArray:
    """A view of another library's GPU array through ``__cuda_array_interface__``: shape, dtype, pointer."""

    def __init__(self, obj, who: str):
        iface = obj.__cuda_array_interface__
        self.shape = tuple(int(n) for n in iface["shape"])
        try:
            self.dtype = from_numpy(np.dtype(iface["typestr"]))
        except (DTypeError, TypeError):
            self.dtype = str(iface["typestr"])
        self.ptr = int(iface["data"][0])
        itemsize = np.dtype(iface["typestr"]).itemsize
        strides = iface.get("strides")
        if strides is not None and tuple(strides) != _contiguous_strides(self.shape, itemsize):
            raise ValueError(f"{who} is a strided view (strides {tuple(strides)} for shape {self.shape}); the cuda "
                             "backend takes compact row-major arrays: pass .contiguous() / cupy.ascontiguousarray(x)")
        if iface.get("mask") is not None:
            raise ValueError(f"{who} is a masked array; pass a plain one")

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * to_numpy(self.dtype).itemsize


def _contiguous_strides(shape: tuple, itemsize: int) -> tuple:
    out, step = [], itemsize
    for n in reversed(shape):
        out.append(step)
        step *= max(n, 1)
    return tuple(reversed(out))


# ----------------------------------------------------------------------------------------------------------


class CUDAModule(OpenCLModule):
    """Built CUDA kernels: ``m["fname"](...)``, ``m.fname(...)``, or ``m(...)`` when there is one;
    ``m.source("cuda")`` is the CUDA C, ``m.source("ptx")`` the PTX, ``m.source("lowered")`` the programs."""

    def __init__(self, target: Target, source: ModuleSource, compiled: CompiledCUDA, device_index: int,
                 times: dict):
        super().__init__(target, source, device_index, times)
        self.compiled = compiled
        self.handle = None

    def share(self) -> "CUDAModule":
        new = super().share()
        new.handle = self.handle
        return new

    @property
    def state(self) -> _DeviceState:
        return device_state(self.device_index)

    def load(self) -> None:
        """Load the module on the device (once): the cubin when it is for this device, else the PTX."""
        if self.handle is not None:
            return
        version = require_driver()
        state = self.state
        state.make_current()
        image = self.compiled.cubin if self.compiled.arch == state.arch else None
        if image is None:
            isa, top = self.compiled.ptx_isa, max_ptx_isa(version)
            if isa > top:
                nv = self.compiled.nvrtc_version
                raise BackendUnavailableError(
                    f"the PTX is ISA {isa[0]}.{isa[1]} (NVRTC {nv[0]}.{nv[1]}) but the driver (CUDA "
                    f"{version // 1000}.{version % 1000 // 10}) loads PTX up to ISA {top[0]}.{top[1]}: install the "
                    f"NVRTC of the driver's version (pip install \"nvidia-cuda-nvrtc=={version // 1000}."
                    f"{version % 1000 // 10}.*\") or build for the device's own arch ({state.arch})")
            image = self.compiled.ptx.encode() + b"\0"
        self.handle = _check(_driver_api().cuModuleLoadData(image), f"cuModuleLoadData ({self.compiled.arch})")

    def kernel(self, name: str):
        fn = self._kernels.get(name)
        if fn is None:
            self.load()
            fn = self._kernels[name] = _check(_driver_api().cuModuleGetFunction(self.handle, name.encode()),
                                              f"cuModuleGetFunction({name})")
        return fn

    def source(self, kind: str = "cuda") -> str:
        if kind == "cuda":
            return self.cl_source.text
        if kind == "ptx":
            return self.compiled.ptx
        if kind == "lowered":
            return "\n\n".join(f.source("lowered") for f in self.functions.values())
        raise ValueError(f"unknown source kind {kind!r} for a cuda module; expected 'cuda', 'ptx' or 'lowered'")

    def __repr__(self) -> str:
        where = self.state.describe() if driver_version() is not None else "no device (PTX only)"
        return f"<CUDAModule [{', '.join(self.functions)}] for {self.target} ({self.compiled.arch}) on {where}>"


class CUDAFunction(OpenCLFunction):
    """A built CUDA program: ``f(a, b, c)`` with ``wb.nd`` CUDA arrays or any GPU array with
    ``__cuda_array_interface__`` (CuPy, PyTorch, pycuda; used in place, no copy), or numpy arrays (copied
    to the device before the run and, when the program writes them, back after it); numbers for scalars."""

    def __init__(self, module: CUDAModule, name: str, func: PrimFunc, lowered: PrimFunc, kernels: dict):
        super().__init__(module, name, func, lowered, kernels)
        self._pool = EventPool()
        called = {n for k in kernels.values() for n in k.call_writes}
        for p in self.params:
            if p.buffer is not None and not p.written and self.flat[self.params.index(p)].name in called:
                p.written = True

    def copy_for(self, module: OpenCLModule) -> "CUDAFunction":
        new = super().copy_for(module)
        new._pool = EventPool()
        return new

    def _event_seconds(self, events: list) -> float:
        """The sum of the elapsed times of the (start, end) event pairs of the last call (it has synchronised)."""
        drv = _driver_api()
        ms = sum(_check(drv.cuEventElapsedTime(start, end), "cuEventElapsedTime") for start, end in events)
        return ms * 1e-3

    def source(self, kind: str = "cuda") -> str:
        if kind == "lowered":
            return self.lowered.script()
        if kind == "cuda":
            return self.module.cl_source.preamble + "\n".join(k.source for k in self.kernels.values())
        if kind == "ptx":
            return self.module.compiled.ptx
        raise ValueError(f"unknown source kind {kind!r} for a cuda function; expected 'cuda', 'ptx' or 'lowered'")

    def __repr__(self) -> str:
        return f"<CUDAFunction {self.name} for {self.module.target}>"

    def _check_array(self, pos: int, buf, a) -> None:
        want = f"{buf.dtype} with shape ({', '.join(map(str, buf.shape))})"
        if isinstance(a, ForeignArray):
            got = a.dtype
        elif isinstance(a, NDArray):
            got = a.dtype
            if a.device.kind != "cuda" or a.device.index != self.module.device_index:
                raise ValueError(f"{self.name}(): argument {pos} ({buf.name}) lives on {a.device!r}, but this "
                                 f"function runs on device('cuda', {self.module.device_index})")
        elif isinstance(a, np.ndarray):
            try:
                got = from_numpy(a.dtype)
            except DTypeError:
                got = str(a.dtype)
        else:
            raise TypeError(f"{self.name}(): argument {pos} ({buf.name}) must be a numpy array, a wb.nd array or "
                            f"a GPU array with __cuda_array_interface__, of {want}; got {type(a).__name__}")
        if got != buf.dtype:
            raise TypeError(f"{self.name}(): argument {pos} ({buf.name}) has dtype {got} but the buffer is "
                            f"{buf.dtype}; convert it with .astype({str(to_numpy(buf.dtype))!r})")
        if len(a.shape) != len(buf.shape):
            raise ValueError(f"{self.name}(): argument {pos} ({buf.name}) has {len(a.shape)} dimension(s) "
                             f"{tuple(a.shape)} but the buffer has {len(buf.shape)}: {want}")
        if buf.strides:
            raise ValueError(f"{self.name}(): buffer {buf.name} has explicit strides; the cuda backend takes "
                             "compact (row-major) buffers only")

    def __call__(self, *args) -> None:
        require_driver()
        args = tuple(ForeignArray(a, f"argument {k}") if _is_foreign(a) else a for k, a in enumerate(args))
        binds, arrays = self._bind(args)
        index = self.module.device_index
        self.module.load()
        self._start_timing()
        api = _CUDAAPI()
        device_bufs: dict = {}
        copies = []
        seen: dict[int, int] = {}
        for pos, p, a in arrays:
            flat = self.flat[pos]
            if isinstance(a, (NDArray, ForeignArray)):
                key = int(a.handle) if isinstance(a, NDArray) else a.ptr
                if key in seen and a.nbytes and (p.written or self.params[seen[key]].written):
                    raise ValueError(f"{self.name}(): arguments {seen[key]} and {pos} are the same device array "
                                     f"and the program writes {p.buffer.name if p.written else 'it'}; pass a "
                                     "separate output array")
                seen[key] = pos
                device_bufs[id(flat)] = key
                continue
            mem = api.alloc(index, a.nbytes)
            if a.nbytes:
                api.upload(index, mem, a)
            device_bufs[id(flat)] = mem
            if p.written:
                copies.append((a, mem))
        self._run(self.lowered.body, binds, device_bufs)
        _check(_driver_api().cuCtxSynchronize(), f"{self.name}(): running its kernels (cuCtxSynchronize)")
        for a, mem in copies:
            if not a.nbytes:
                continue
            if a.flags.c_contiguous and a.flags.writeable:
                api.download(index, mem, a)
            else:
                tmp = np.empty(a.shape, a.dtype)
                api.download(index, mem, tmp)
                a[...] = tmp

    def _run(self, s, binds: dict, bufs: dict) -> None:
        if isinstance(s, Allocate):     # a global intermediate: device memory for the call
            n = host_eval(s.buffer.shape[0], binds) if s.buffer.shape else 1
            bufs[id(s.buffer)] = DeviceMemory(self.module.device_index, n * to_numpy(s.buffer.dtype).itemsize)
            self._run(s.body, binds, bufs)
            return
        super()._run(s, binds, bufs)

    def _launch(self, k, binds: dict, bufs: dict) -> None:
        grid = [int(host_eval(g, binds)) for g in k.grid]
        block = [int(host_eval(b, binds)) for b in k.block]
        if min(grid + block) <= 0:
            return  # an empty launch: nothing to do
        check_threads(k, block, self.module.target, self.module.state)
        fn = self.module.kernel(k.name)
        holders = [np.array([int(bufs[id(b)])], np.uint64) for b in k.buffers]
        for v in k.scalars:
            if id(v) not in binds:
                raise ValueError(f"kernel {k.name} uses `{v.name}`, which the host cannot bind from the arguments")
            holders.append(np.array([binds[id(v)]], to_numpy(v.dtype)))
        pointers = np.array([h.ctypes.data for h in holders], np.uint64)
        drv = _driver_api()
        start, end = self._pool.pair(len(self._events))
        _check(drv.cuEventRecord(start, 0), "cuEventRecord")
        _check(drv.cuLaunchKernel(fn, *grid, *block, 0, 0, pointers.ctypes.data, 0),
               f"launching kernel {k.name} (grid {tuple(grid)}, block {tuple(block)})")
        _check(drv.cuEventRecord(end, 0), "cuEventRecord")
        self._events.append((start, end))


def _is_foreign(a) -> bool:
    return not isinstance(a, (np.ndarray, NDArray)) and hasattr(a, "__cuda_array_interface__")


# ----------------------------------------------------------------------------------------------------------
# device limits


def check_threads(k, block: list, tgt: Target, state: _DeviceState | None) -> None:
    """Refuse a block of more threads than the target (or the device) allows, naming the limit."""
    total = int(np.prod(block))
    limit, source = tgt.max_num_threads, f"-max_num_threads of target {tgt}"
    if state is not None and state.max_threads < limit:
        limit, source = state.max_threads, f"MAX_THREADS_PER_BLOCK of {state.name}"
    dims = ", ".join(f"threadIdx.{a} = {n}" for a, n in zip("xyz", block) if n != 1) or "1"
    if total > limit:
        raise DeviceLimitError(f"kernel {k.name} launches {total} threads per block ({dims}), more than the limit "
                               f"of {limit} threads per block ({source}); split the thread-bound loop further")
    caps = state.max_block if state is not None else (1024, 1024, 64)
    for a, n, cap in zip("xyz", block, caps):
        if n > cap:
            raise DeviceLimitError(f"kernel {k.name}: threadIdx.{a} = {n} is more than the limit of {cap} for "
                                   "that axis")


def check_static_limits(source: ModuleSource, tgt: Target, state: _DeviceState | None) -> None:
    """Refuse, at build time, a kernel with more shared memory or (constant) threads than a block may have."""
    limit, where = tgt.max_shared_memory_per_block, f"-max_shared_memory_per_block of target {tgt}"
    if state is not None and state.max_shared < limit:
        limit, where = state.max_shared, f"MAX_SHARED_MEMORY_PER_BLOCK of {state.name}"
    for k in source.kernels:
        if k.shared_bytes > limit:
            parts = ", ".join(f"{n}: {b}" for n, b in k.shared)
            raise DeviceLimitError(f"kernel {k.name} uses {k.shared_bytes} bytes of shared memory ({parts}), more "
                                   f"than the limit of {limit} bytes per block ({where})")
        block = [E.as_int(b) for b in k.block]
        if all(b is not None for b in block):
            check_threads(k, block, tgt, state)


__all__ = ["CUDAModule", "CUDAFunction", "CUDAError", "DeviceMemory", "EventPool", "ForeignArray", "NO_DRIVER",
           "device_state", "driver_version", "require_driver", "check_static_limits", "device_arch_or_none"]
