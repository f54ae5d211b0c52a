"""Build OpenCL C with pyopencl and launch its kernels; device memory for ``wb.nd`` arrays.

The device is chosen explicitly (never through pyopencl's interactive prompt): the
devices of every platform, GPUs first; ``-device=<word>`` in the target picks the
first whose name, platform or type contains the word.

The command queue has profiling enabled: every kernel launch returns an event, and
``f.last_device_seconds`` is the sum of the kernel events' durations of ``f``'s last
call (device time only: copies of numpy arguments in and out are not in it).
"""
from __future__ import annotations

import copy
import numbers
from functools import lru_cache

import numpy as np

from ...ir import expr as E
from ...ir.dtype import DTypeError, from_numpy, is_bool, is_float, to_numpy
from ...ir.function import PrimFunc
from ...ir.stmt import Allocate, AssertStmt, For, IfThenElse, LetStmt, SeqStmt, Stmt
from ..ndarray import NDArray, register_device_api
from ..target import BackendUnavailableError, Target
from .codegen import EXTENSIONS, Kernel, ModuleSource
from .host_device import KERNEL_KEY


class DeviceLimitError(ValueError):
    """A kernel needs more of something (threads per block, shared memory) than the device has."""


def _cl():
    try:
        import pyopencl
    except ImportError:
        raise BackendUnavailableError("the opencl backend needs pyopencl (pip install pyopencl) and an OpenCL "
                                      "driver (PoCL runs kernels on the CPU: apt install pocl-opencl-icd)") from None
    return pyopencl


@lru_cache(maxsize=None)
def all_devices() -> tuple:
    """Every OpenCL device of every platform, GPUs first (each as a pyopencl Device)."""
    cl = _cl()
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    devs = [d for p in platforms for d in p.get_devices()]
    if not devs:
        raise BackendUnavailableError("no OpenCL device found: install an OpenCL driver "
                                      "(PoCL runs kernels on the CPU: apt install pocl-opencl-icd)")
    gpu = cl.device_type.GPU
    return tuple(sorted(devs, key=lambda d: 0 if d.type & gpu else 1))


def device_index_for(tgt: Target) -> int:
    """The index (in :func:`all_devices`) of the device ``tgt`` names with ``-device=``, else 0."""
    word = tgt.options.get("device")
    if not word:
        return 0
    cl = _cl()
    for k, d in enumerate(all_devices()):
        if word.lower() in f"{d.name} {d.platform.name} {cl.device_type.to_string(d.type)}".lower():
            return k
    names = "; ".join(d.name for d in all_devices())
    raise BackendUnavailableError(f"target {tgt}: no OpenCL device matches {word!r}; devices: {names}")


class _DeviceState:
    def __init__(self, index: int):
        cl = _cl()
        devs = all_devices()
        if index >= len(devs):
            raise ValueError(f"OpenCL device {index} does not exist; there are {len(devs)}: "
                             + "; ".join(d.name for d in devs))
        self.device = devs[index]
        self.context = cl.Context([self.device])
        self.queue = cl.CommandQueue(self.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
        self.programs: dict[str, object] = {}

    def describe(self) -> str:
        return f"{self.device.name} ({self.device.platform.name.strip()})"

    def build(self, source: str):
        prog = self.programs.get(source)
        if prog is None:
            cl = _cl()
            try:
                prog = cl.Program(self.context, source).build(options=["-cl-std=CL1.2"])
            except cl.RuntimeError as e:
                raise RuntimeError(f"the OpenCL compiler rejected the generated code (a workbench bug; please "
                                   f"report it with this source):\n{e}\n--- source ---\n{source}") from None
            self.programs[source] = prog
        return prog


@lru_cache(maxsize=None)
def device_state(index: int = 0) -> _DeviceState:
    return _DeviceState(index)


class _OpenCLAPI:
    """Device memory for ``wb.nd`` arrays on OpenCL devices."""

    def alloc(self, index: int, nbytes: int):
        cl = _cl()
        return cl.Buffer(device_state(index).context, cl.mem_flags.READ_WRITE, size=max(1, nbytes))

    def upload(self, index: int, handle, host: np.ndarray) -> None:
        _cl().enqueue_copy(device_state(index).queue, handle, np.ascontiguousarray(host), is_blocking=True)

    def download(self, index: int, handle, host: np.ndarray) -> None:
        _cl().enqueue_copy(device_state(index).queue, host, handle, is_blocking=True)

    def describe(self, index: int) -> str:
        return device_state(index).describe()


register_device_api("opencl", _OpenCLAPI())


# ----------------------------------------------------------------------------------------------------------
# host-side evaluation of launch dimensions and host code


_OPS = {E.Add: lambda a, b: a + b, E.Sub: lambda a, b: a - b, E.Mul: lambda a, b: a * b,
        E.FloorDiv: lambda a, b: a // b, E.FloorMod: lambda a, b: a % b, E.Min: min, E.Max: max,
        E.EQ: lambda a, b: a == b, E.NE: lambda a, b: a != b, E.LT: lambda a, b: a < b,
        E.LE: lambda a, b: a <= b, E.GT: lambda a, b: a > b, E.GE: lambda a, b: a >= b,
        E.And: lambda a, b: a and b, E.Or: lambda a, b: a or b}


def host_eval(e, binds: dict):
    """The value of a host expression (sizes, launch dimensions, host conditions) with the bound variables."""
    if isinstance(e, (E.IntImm, E.FloatImm)):
        return e.value
    if isinstance(e, E.Var):
        if id(e) not in binds:
            raise ValueError(f"the host cannot work out `{e.name}`: it is not bound from the arguments")
        return binds[id(e)]
    fn = _OPS.get(type(e))
    if fn is not None:
        return fn(host_eval(e.a, binds), host_eval(e.b, binds))
    if isinstance(e, (E.Div, E.Mod)):
        a, b = host_eval(e.a, binds), host_eval(e.b, binds)
        if is_float(e.dtype):
            return a / b if isinstance(e, E.Div) else float(np.fmod(a, b))
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return q if isinstance(e, E.Div) else a - q * b
    if isinstance(e, E.Not):
        return not host_eval(e.a, binds)
    if isinstance(e, E.Select) or (isinstance(e, E.Call) and e.op == "if_then_else"):
        c, t, f = (e.condition, e.true_value, e.false_value) if isinstance(e, E.Select) else e.args
        return host_eval(t, binds) if host_eval(c, binds) else host_eval(f, binds)
    if isinstance(e, E.Cast):
        v = host_eval(e.value, binds)
        return bool(v) if is_bool(e.dtype) else float(v) if is_float(e.dtype) else int(v)
    raise ValueError(f"the host cannot evaluate `{e}` ({type(e).__name__}) before launching kernels")


# ----------------------------------------------------------------------------------------------------------


class OpenCLModule:
    """Built OpenCL programs: ``m["fname"](...)``, ``m.fname(...)``, or ``m(...)`` when there is one;
    ``m.source("cl")`` is the OpenCL C, ``m.source("lowered")`` the lowered programs."""

    def __init__(self, target: Target, source: ModuleSource, device_index: int, times: dict):
        self.target, self.cl_source, self.device_index, self.times = target, source, device_index, times
        self.functions: dict[str, OpenCLFunction] = {}
        self.last_called: OpenCLFunction | None = None
        self.program = None
        self._kernels: dict = {}

    @property
    def last_device_seconds(self) -> float | None:
        """Device time of the last call of one of this module's functions (see
        :attr:`OpenCLFunction.last_device_seconds`); None before the first call."""
        fn = self.__dict__.get("last_called")
        return fn.last_device_seconds if fn is not None else None

    def share(self) -> "OpenCLModule":
        new = copy.copy(self)
        new.last_called = None
        new.times = dict(self.times)
        new._kernels = {}
        new.functions = {n: f.copy_for(new) for n, f in self.functions.items()}
        return new

    @property
    def state(self) -> _DeviceState:
        return device_state(self.device_index)

    def kernel(self, name: str):
        """The pyopencl kernel object (made once per module: each retrieval builds a new one)."""
        kern = self._kernels.get(name)
        if kern is None:
            kern = self._kernels[name] = _cl().Kernel(self.program, name)
        return kern

    def source(self, kind: str = "cl") -> str:
        if kind == "cl":
            return self.cl_source.text
        if kind == "lowered":
            return "\n\n".join(f.source("lowered") for f in self.functions.values())
        raise ValueError(f"unknown source kind {kind!r} for an opencl module; expected 'cl' or 'lowered'")

    def __getitem__(self, name: str) -> "OpenCLFunction":
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"the built module has no function {name!r}; it has "
                           f"{', '.join(self.functions) or 'none'}") from None

    def __getattr__(self, name: str):
        fns = self.__dict__.get("functions", {})
        if name in fns:
            return fns[name]
        raise AttributeError(f"the built module has no function or attribute {name!r}")

    def __contains__(self, name) -> bool:
        return name in self.functions

    def __call__(self, *args):
        if len(self.functions) != 1:
            raise TypeError(f"this module holds {len(self.functions)} functions; call one by name: "
                            f"m[{next(iter(self.functions), 'name')!r}](...)")
        return next(iter(self.functions.values()))(*args)

    def __repr__(self) -> str:
        return f"<OpenCLModule [{', '.join(self.functions)}] for {self.target} on {self.state.describe()}>"


class OpenCLFunction:
    """A built GPU program: ``f(a, b, c)`` with ``wb.nd`` device arrays (used in place) or numpy arrays
    (copied to the device before the run and, when the program writes them, back after it), and
    numbers for scalar parameters."""

    def __init__(self, module: OpenCLModule, name: str, func: PrimFunc, lowered: PrimFunc, kernels: dict):
        from ..llvm.module import param_specs

        self.module, self.name, self.func, self.lowered = module, name, func, lowered
        self.kernels = kernels            # kernel name -> codegen Kernel
        self.params = param_specs(func, lowered)
        self.flat = [lowered.buffer_map.get(p) for p in func.params]
        self._events: list | None = None       # the kernel events of the last call
        self._device_seconds: float | None = None

    def copy_for(self, module: OpenCLModule) -> "OpenCLFunction":
        new = copy.copy(self)
        new.module = module
        new._events, new._device_seconds = None, None
        return new

    @property
    def last_device_seconds(self) -> float | None:
        """Seconds the device spent running the kernels of the last call: the sum of their profiling events'
        durations (``end - start``), waiting for them to finish when they have not. Copies of numpy arguments in
        and out, and the host's launch overhead, are not counted. None before the first call."""
        if self._device_seconds is None and self._events is not None:
            self._device_seconds = self._event_seconds(self._events)
        return self._device_seconds

    def _event_seconds(self, events: list) -> float:
        total_ns = 0
        for ev in events:
            ev.wait()
            total_ns += ev.profile.end - ev.profile.start
        return total_ns * 1e-9

    def _start_timing(self) -> None:
        """Begin a call: forget the last call's events; this function is its module's last called."""
        self._events, self._device_seconds = [], None
        self.module.last_called = self

    def source(self, kind: str = "cl") -> str:
        if kind == "lowered":
            return self.lowered.script()
        if kind == "cl":
            return self.module.cl_source.preamble + "\n".join(k.source for k in self.kernels.values())
        raise ValueError(f"unknown source kind {kind!r} for an opencl function; expected 'cl' or 'lowered'")

    def __repr__(self) -> str:
        return f"<OpenCLFunction {self.name} for {self.module.target}>"

    # arguments ---------------------------------------------------------------------------------------------
    def _bind(self, args) -> tuple[dict, list]:
        if len(args) != len(self.params):
            want = ", ".join(p.buffer.name if p.buffer is not None else p.var.name for p in self.params)
            raise TypeError(f"{self.name}() takes {len(self.params)} argument(s) ({want}) but got {len(args)}")
        binds: dict = {}
        deferred = []
        arrays = []
        for pos, (a, p) in enumerate(zip(args, self.params)):
            if p.buffer is None:
                binds[id(p.var)] = self._scalar(pos, p.var, a)
                continue
            self._check_array(pos, p.buffer, a)
            for d, (dim, n) in enumerate(zip(p.buffer.shape, a.shape)):
                what = f"{p.buffer.name}.shape[{d}]"
                if isinstance(dim, E.IntImm):
                    if dim.value != n:
                        raise ValueError(f"{self.name}(): argument {pos} ({p.buffer.name}): {what} must be "
                                         f"{dim.value}, got {n}")
                elif isinstance(dim, E.Var) and id(dim) not in binds:
                    binds[id(dim)] = n
                else:
                    deferred.append((dim, n, what, pos))
            arrays.append((pos, p, a))
        for dim, n, what, pos in deferred:
            v = host_eval(dim, binds)
            if v != n:
                raise ValueError(f"{self.name}(): argument {pos}: {what} is {n} but `{dim}` = {v} from the other "
                                 "arguments")
        return binds, arrays

    def _check_array(self, pos: int, buf, a) -> None:
        want = f"{buf.dtype} with shape ({', '.join(map(str, buf.shape))})"
        if not isinstance(a, (np.ndarray, NDArray)):
            raise TypeError(f"{self.name}(): argument {pos} ({buf.name}) must be a numpy array or a wb.nd array "
                            f"of {want}, got {type(a).__name__}")
        if isinstance(a, NDArray):
            got = a.dtype
            if a.device.kind != "opencl" or a.device.index != self.module.device_index:
                raise ValueError(f"{self.name}(): argument {pos} ({buf.name}) lives on {a.device!r}, but this "
                                 f"function runs on device('opencl', {self.module.device_index})")
        else:
            try:
                got = from_numpy(a.dtype)
            except DTypeError:
                got = str(a.dtype)
        if got != buf.dtype:
            raise TypeError(f"{self.name}(): argument {pos} ({buf.name}) has dtype {got} but the buffer is "
                            f"{buf.dtype}; convert it with .astype({str(to_numpy(buf.dtype))!r})")
        if len(a.shape) != len(buf.shape):
            raise ValueError(f"{self.name}(): argument {pos} ({buf.name}) has {len(a.shape)} dimension(s) "
                             f"{tuple(a.shape)} but the buffer has {len(buf.shape)}: {want}")
        if buf.strides:
            raise ValueError(f"{self.name}(): buffer {buf.name} has explicit strides; the opencl backend takes "
                             "compact (row-major) buffers only")

    def _scalar(self, pos: int, var, x):
        if isinstance(x, np.bool_):
            x = bool(x)
        if is_float(var.dtype) and isinstance(x, numbers.Real):
            return float(x)
        if isinstance(x, numbers.Integral):
            return int(x)
        kind = "a number" if is_float(var.dtype) else "an integer"
        raise TypeError(f"{self.name}(): argument {pos} ({var.name}) must be {kind} ({var.dtype}), got "
                        f"{type(x).__name__} {x!r}")

    # running -----------------------------------------------------------------------------------------------
    def __call__(self, *args) -> None:
        binds, arrays = self._bind(args)
        self._start_timing()
        api = _OpenCLAPI()
        index = self.module.device_index
        device_bufs: dict = {}
        copies = []
        seen: dict[int, int] = {}
        for pos, p, a in arrays:
            flat = self.flat[pos]
            if isinstance(a, NDArray):
                if id(a) in seen and (p.written or self.params[seen[id(a)]].written):
                    raise ValueError(f"{self.name}(): arguments {seen[id(a)]} and {pos} are the same device array "
                                     f"and the program writes {p.buffer.name if p.written else 'it'}; pass a "
                                     "separate output array")
                seen[id(a)] = pos
                device_bufs[id(flat)] = a.handle
                continue
            handle = api.alloc(index, a.nbytes)
            if a.nbytes:
                api.upload(index, handle, a)
            device_bufs[id(flat)] = handle
            if p.written:
                copies.append((a, handle))
        self._run(self.lowered.body, binds, device_bufs)
        for a, handle in copies:
            if not a.nbytes:
                continue
            if a.flags.c_contiguous and a.flags.writeable:
                api.download(index, handle, a)
            else:
                tmp = np.empty(a.shape, a.dtype)
                api.download(index, handle, tmp)
                a[...] = tmp

    def _run(self, s: Stmt, binds: dict, bufs: dict) -> None:
        """Interpret the host code: allocate intermediates, run host loops, launch kernels."""
        if isinstance(s, For) and KERNEL_KEY in s.annotations:
            self._launch(self.kernels[s.annotations[KERNEL_KEY]], binds, bufs)
        elif isinstance(s, SeqStmt):
            for c in s.seq:
                self._run(c, binds, bufs)
        elif isinstance(s, Allocate):
            n = host_eval(s.buffer.shape[0], binds) if s.buffer.shape else 1
            bufs[id(s.buffer)] = _OpenCLAPI().alloc(self.module.device_index,
                                                    n * to_numpy(s.buffer.dtype).itemsize)
            self._run(s.body, binds, bufs)
        elif isinstance(s, For):
            lo = host_eval(s.min, binds)
            for i in range(lo, lo + host_eval(s.extent, binds)):
                binds[id(s.loop_var)] = i
                self._run(s.body, binds, bufs)
        elif isinstance(s, LetStmt):
            binds[id(s.var)] = host_eval(s.value, binds)
            self._run(s.body, binds, bufs)
        elif isinstance(s, AssertStmt):
            if not host_eval(s.condition, binds):
                raise ValueError(f"{self.name}(): {s.message}")
            self._run(s.body, binds, bufs)
        elif isinstance(s, IfThenElse):
            branch = s.then_case if host_eval(s.condition, binds) else s.else_case
            if branch is not None:
                self._run(branch, binds, bufs)
        else:
            raise RuntimeError(f"{self.name}(): unexpected host statement {type(s).__name__} (a workbench bug)")

    def _launch(self, k: Kernel, binds: dict, bufs: dict) -> None:
        grid = [int(host_eval(g, binds)) for g in k.grid]
        block = [int(host_eval(b, binds)) for b in k.block]
        if min(grid + block) <= 0:
            return  # an empty launch: nothing to do
        check_threads(k, block, self.module.target, self.module.state.device)
        kern = self.module.kernel(k.name)
        args = [bufs[id(b)] for b in k.buffers]
        args += [to_numpy(v.dtype).type(binds[id(v)]) if id(v) in binds else _unbound(k, v) for v in k.scalars]
        kern.set_args(*args)
        global_size = tuple(g * b for g, b in zip(grid, block))
        self._events.append(_cl().enqueue_nd_range_kernel(self.module.state.queue, kern, global_size,
                                                           tuple(block)))


def _unbound(k: Kernel, v):
    raise ValueError(f"kernel {k.name} uses `{v.name}`, which the host cannot bind from the arguments")


# ----------------------------------------------------------------------------------------------------------
# device limits


def max_threads(tgt: Target, device) -> tuple[int, str]:
    """The threads-per-block limit and where it comes from (the target's option when given, else the device)."""
    dev_limit = int(device.max_work_group_size)
    given = tgt.options.get("max_num_threads")
    if given is not None and given < dev_limit:
        return given, f"-max_num_threads of target {tgt}"
    return dev_limit, f"max_work_group_size of OpenCL device {device.name!r}"


def max_shared(tgt: Target, device) -> tuple[int, str]:
    dev_limit = int(device.local_mem_size)
    given = tgt.options.get("max_shared_memory_per_block")
    if given is not None and given < dev_limit:
        return given, f"-max_shared_memory_per_block of target {tgt}"
    return dev_limit, f"local_mem_size of OpenCL device {device.name!r}"


def check_threads(k: Kernel, block: list, tgt: Target, device) -> None:
    total = int(np.prod(block))
    limit, source = max_threads(tgt, device)
    dims = ", ".join(f"threadIdx.{a} = {n}" for a, n in zip("xyz", block) if n != 1) or "1"
    if total > limit:
        raise DeviceLimitError(f"kernel {k.name} launches {total} threads per block ({dims}), more than the limit "
                               f"of {limit} threads per block ({source}); split the thread-bound loop further")
    for a, n, cap in zip("xyz", block, device.max_work_item_sizes):
        if n > cap:
            raise DeviceLimitError(f"kernel {k.name}: threadIdx.{a} = {n} is more than the limit of {cap} for "
                                   f"that axis (max_work_item_sizes of OpenCL device {device.name!r})")


def check_static_limits(source: ModuleSource, tgt: Target, device) -> None:
    """Refuse, at build time, what the device cannot run: a missing extension, too much shared memory, too many
    threads per block (when the block size is a constant)."""
    exts = set(device.extensions.split())
    for dt, ext in EXTENSIONS.items():
        if dt in source.dtypes and ext not in exts:
            raise DeviceLimitError(f"the program uses {dt}, which needs the OpenCL extension {ext}; device "
                                   f"{device.name!r} does not have it")
    for k in source.kernels:
        limit, where = max_shared(tgt, device)
        if k.shared_bytes > limit:
            parts = ", ".join(f"{n}: {b}" for n, b in k.shared)
            raise DeviceLimitError(f"kernel {k.name} uses {k.shared_bytes} bytes of shared memory ({parts}), more "
                                   f"than the limit of {limit} bytes per block ({where})")
        block = [E.as_int(b) for b in k.block]
        if all(b is not None for b in block):
            check_threads(k, block, tgt, device)


__all__ = ["OpenCLModule", "OpenCLFunction", "DeviceLimitError", "device_state", "all_devices", "host_eval",
           "check_static_limits", "device_index_for"]
