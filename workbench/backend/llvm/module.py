"""Compile LLVM IR with llvmlite and wrap the machine code as Python callables.

``LLVMModule`` holds one JIT-compiled object with every function of an
IRModule; ``m["fname"]`` / ``m.fname`` is a :class:`BuiltFunction` that checks
its numpy arguments against the buffers (count, dtype, shape, contiguity),
binds symbolic sizes from the arrays, runs the native code, and turns a failed
run-time check into a Python exception.
"""
from __future__ import annotations

import copy
import ctypes
import numbers
import threading
import time
from typing import Any

import numpy as np

from ...ir import expr as E
from ...ir.dtype import DTypeError, from_numpy, is_float, max_value, min_value, to_numpy
from ...ir.function import PrimFunc
from ...ir.functor import post_order_visit
from ...ir.stmt import BufferStore
from .codegen import ERR_SLOTS

ENTRY_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

_init_lock = threading.Lock()
_initialized = False


def init_llvm():
    """Initialise LLVM's native target once and make libm's symbols visible to the JIT."""
    global _initialized
    with _init_lock:
        if _initialized:
            return
        import ctypes.util

        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        for lib in ("m", "c"):
            path = ctypes.util.find_library(lib)
            if path:
                try:
                    llvm.load_library_permanently(path)
                except RuntimeError:  # already in the process: symbols resolve anyway
                    pass
        _initialized = True


def target_machine(target):
    import llvmlite.binding as llvm

    init_llvm()
    triple = llvm.get_process_triple()
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=target.cpu or "", features=target.mattr, opt=min(3, target.opt_level), jit=True)


class CompileTimes(dict):
    """Seconds spent in each phase: ``{"lower": ..., "codegen": ..., "optimize": ..., "jit": ...}``."""


def optimize_ir(ir_text: str, target, tm):
    """Parse and optimise (new pass manager, the target's opt level) for target machine ``tm``."""
    import llvmlite.binding as llvm

    init_llvm()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=min(3, target.opt_level))
    pb = llvm.create_pass_builder(tm, pto)
    mpm = pb.getModulePassManager()
    mpm.run(mod, pb)
    return mod


def compile_ir(ir_text: str, target, times: CompileTimes):
    """Parse, optimise (new pass manager, O3) and JIT-compile; returns (engine, optimised IR text, target
    machine, object code). The object code (what MCJIT compiled, caught by its object cache; empty if
    it made other than one object) rebuilds the engine in another process with :func:`load_object`."""
    import llvmlite.binding as llvm

    init_llvm()
    t0 = time.perf_counter()
    tm = target_machine(target)
    mod = optimize_ir(ir_text, target, tm)
    t1 = time.perf_counter()
    opt_text = str(mod)
    engine = llvm.create_mcjit_compiler(mod, tm)
    objects: list[bytes] = []
    engine.set_object_cache(lambda _module, buffer: objects.append(bytes(buffer)), lambda _module: None)
    engine.finalize_object()
    t2 = time.perf_counter()
    times["optimize"] = t1 - t0
    times["jit"] = t2 - t1
    return engine, opt_text, tm, objects[0] if len(objects) == 1 else b""


def load_object(obj: bytes, target, times: CompileTimes):
    """An engine running the object code ``obj`` (from :func:`compile_ir`) without compiling anything;
    returns (engine, target machine)."""
    import llvmlite.binding as llvm

    init_llvm()
    t0 = time.perf_counter()
    tm = target_machine(target)
    empty = llvm.parse_assembly("")
    empty.triple, empty.data_layout = tm.triple, str(tm.target_data)
    engine = llvm.create_mcjit_compiler(empty, tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    times["load"] = time.perf_counter() - t0
    return engine, tm


# argument binding ------------------------------------------------------------------


def eval_int(e, binds: dict) -> int | None:
    """Evaluate an integer shape expression with the bound size variables (None if unknown)."""
    if isinstance(e, E.IntImm):
        return e.value
    if isinstance(e, E.Var):
        return binds.get(id(e))
    ops = {E.Add: lambda a, b: a + b, E.Sub: lambda a, b: a - b, E.Mul: lambda a, b: a * b,
           E.FloorDiv: lambda a, b: a // b, E.FloorMod: lambda a, b: a % b, E.Min: min, E.Max: max,
           E.Div: lambda a, b: int(a / b)}
    fn = ops.get(type(e))
    if fn is None:
        return None
    a, b = eval_int(e.a, binds), eval_int(e.b, binds)
    return None if a is None or b is None else fn(a, b)


class ParamSpec:
    """One parameter: a buffer (name, shape, dtype, strides) or a scalar variable; ``written``: whether the
    program stores to the buffer."""

    def __init__(self, var, buffer=None, written: bool = False):
        self.var, self.buffer, self.written = var, buffer, written

    @property
    def name(self) -> str:
        return self.buffer.name if self.buffer is not None else self.var.name


def param_specs(func: PrimFunc, lowered: PrimFunc) -> list[ParamSpec]:
    written: set[str] = set()
    post_order_visit(lowered.body, lambda n: written.add(n.buffer.name) if isinstance(n, BufferStore) else None)
    return [ParamSpec(p, func.buffer_map.get(p), func.buffer_map[p].name in written if p in func.buffer_map else False)
            for p in func.params]


def restored_param_specs(func: PrimFunc, written: list[bool]) -> list[ParamSpec]:
    """The parameters of ``func`` with the ``written`` flags a cached build recorded (one per parameter)."""
    if len(written) != len(func.params):
        raise ValueError(f"{func.name}: {len(written)} written flags for {len(func.params)} parameters")
    return [ParamSpec(p, func.buffer_map.get(p), bool(w) and p in func.buffer_map) for p, w in zip(func.params, written)]


def size_vars(func: PrimFunc) -> list:
    """The Vars to pass in the scalar slots: sizes from buffer shapes/strides/offsets, then scalar params."""
    seen: dict[int, Any] = {}
    for p in func.params:
        b = func.buffer_map.get(p)
        if b is None:
            continue
        for e in list(b.shape) + list(b.strides) + [b.elem_offset]:
            def f(n):
                if isinstance(n, E.Var):
                    seen.setdefault(id(n), n)
            post_order_visit(e, f)
    out = list(seen.values())
    out += [p for p in func.params if p not in func.buffer_map and id(p) not in seen]
    return out


class BuiltFunction:
    """A compiled tensor program: call it with numpy arrays, ``f(a, b, c)``.

    >>> f(a, b, c)                # doctest: +SKIP
    >>> print(f.source("lowered"))  # doctest: +SKIP
    """

    def __init__(self, module: "LLVMModule", name: str, symbol: str, func: PrimFunc, lowered: PrimFunc,
                 info, var_order: list, *, params: list[ParamSpec] | None = None, lower=None):
        """``params`` and ``lower`` (a function returning the lowered program, called when it is first
        asked for) stand in for ``lowered`` (None) when the build was read from the disk cache."""
        self.module, self.name, self.entry_name = module, name, symbol
        self.func, self.info = func, info
        self._lowered, self._lower = lowered, lower
        self.params = param_specs(func, lowered) if params is None else params
        self.var_order = var_order
        self._var_pos = {id(v): k for k, v in enumerate(var_order)}
        self._nbuf = sum(1 for p in self.params if p.buffer is not None)
        self._cfn = self._entry()

    @property
    def lowered(self) -> PrimFunc:
        """The program after lowering (lowered again on first use when the build came from the disk cache)."""
        if self._lowered is None:
            self._lowered = self._lower()
        return self._lowered

    def _entry(self):
        address = self.module.engine.get_function_address(self.entry_name)
        if not address:  # calling address 0 would crash the process
            raise RuntimeError(f"{self.name}: the compiled code has no function {self.entry_name!r}")
        return ENTRY_FN(address)

    def _copy_for(self, module: LLVMModule) -> BuiltFunction:
        """A copy of this function belonging to ``module`` (sharing the compiled code)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.module = module
        return new

    def __repr__(self) -> str:
        sig = ", ".join(f"{p.name}: {p.buffer.dtype}{list(map(str, p.buffer.shape))}" if p.buffer is not None
                        else f"{p.name}: {p.var.dtype}" for p in self.params)
        return f"<BuiltFunction {self.name}({sig}) for {self.module.target}>"

    def source(self, kind: str = "ll") -> str:
        """The code: ``"ll"`` (optimised LLVM IR), ``"ll-raw"`` (before optimisation), ``"asm"``,
        or ``"lowered"`` (the script form after lowering)."""
        if kind == "lowered":
            return _script(self.lowered)
        return self.module.source(kind)

    # calling -------------------------------------------------------------------
    def _bind(self, args):
        name = self.name
        if len(args) != len(self.params):
            want = ", ".join(p.name for p in self.params)
            raise TypeError(f"{name}() takes {len(self.params)} argument(s) ({want}) but got {len(args)}")
        binds: dict[int, int] = {}
        where: dict[int, str] = {}
        deferred = []
        bufs = (ctypes.c_void_p * max(1, self._nbuf))()
        scal = (ctypes.c_int64 * max(1, len(self.var_order)))()
        k = 0
        keep = []
        for pos, (a, p) in enumerate(zip(args, self.params)):
            if p.buffer is None:
                value = self._scalar_arg(pos, p.var, a)
                self._bind_dim(p.var, value, binds, where, f"argument {pos} ({p.var.name})", deferred, pos)
                continue
            buf = p.buffer
            self._check_array(pos, buf, a)
            for d, (dim, n) in enumerate(zip(buf.shape, a.shape)):
                self._bind_dim(dim, n, binds, where, f"{buf.name}.shape[{d}]", deferred, pos)
            isz = a.itemsize
            if buf.strides:
                for d, (st, s) in enumerate(zip(buf.strides, a.strides)):
                    if s % isz:
                        raise ValueError(f"{name}(): argument {pos} ({buf.name}) has strides not a multiple "
                                         f"of its element size")
                    self._bind_dim(st, s // isz, binds, where, f"{buf.name}.strides[{d}]", deferred, pos)
            elif not a.flags.c_contiguous:
                raise ValueError(f"{name}(): argument {pos} ({buf.name}) must be C-contiguous (row-major); "
                                 "pass np.ascontiguousarray(x)")
            if isinstance(buf.elem_offset, E.Var):
                binds.setdefault(id(buf.elem_offset), 0)
            if p.written and not a.flags.writeable:
                raise ValueError(f"{name}(): argument {pos} ({buf.name}) is written by the program but the "
                                 "array is read-only")
            bufs[k] = a.ctypes.data
            keep.append(a)
            k += 1
        self._check_overlap(args)
        for dim, n, what, pos in deferred:
            v = eval_int(dim, binds)
            if v is None:
                raise ValueError(f"{name}(): cannot work out {what} = `{dim}` from the arguments")
            if v != n:
                raise ValueError(f"{name}(): argument {pos}: {what} is {n} but `{dim}` = {v} from the other "
                                 "arguments")
        for j, v in enumerate(self.var_order):
            if id(v) not in binds:
                raise ValueError(f"{name}(): the size variable {v.name} cannot be bound from the arguments")
            scal[j] = self._slot_value(v, binds[id(v)], where.get(id(v)))
        return bufs, scal, keep

    def _check_array(self, pos: int, buf, a) -> None:
        """Refuse an array argument that is not a numpy array of the buffer's dtype, rank and byte order."""
        name = self.name
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name}(): argument {pos} ({buf.name}) must be a numpy array of "
                            f"{buf.dtype} with shape {_shape_text(buf)}, got {type(a).__name__}")
        try:
            got = from_numpy(a.dtype)
        except DTypeError:
            got = str(a.dtype)
        if got != buf.dtype:
            raise TypeError(f"{name}(): argument {pos} ({buf.name}) has dtype {got} but the buffer is "
                            f"{buf.dtype}; convert it with .astype({str(to_numpy(buf.dtype))!r})")
        if not a.dtype.isnative:
            raise TypeError(f"{name}(): argument {pos} ({buf.name}) has non-native byte order "
                            f"({a.dtype.str!r}); the program reads and writes native {buf.dtype}: pass "
                            f"x.astype({a.dtype.newbyteorder('=').str!r}) and convert the result back if needed")
        if a.ndim != len(buf.shape):
            raise ValueError(f"{name}(): argument {pos} ({buf.name}) has {a.ndim} dimension(s) "
                             f"{a.shape} but the buffer has {len(buf.shape)}: {_shape_text(buf)}")

    def _check_overlap(self, args) -> None:
        """Refuse two array arguments that share memory when the program writes either of them
        (it reads and writes them as distinct buffers, so the result would be wrong)."""
        arrays = [(pos, p, a) for pos, (a, p) in enumerate(zip(args, self.params)) if p.buffer is not None]
        for k, (pos1, p1, a1) in enumerate(arrays):
            for pos2, p2, a2 in arrays[k + 1:]:
                if (p1.written or p2.written) and _overlap(a1, a2):
                    out = p1 if p1.written else p2
                    raise ValueError(
                        f"{self.name}(): arguments {pos1} ({p1.buffer.name}) and {pos2} ({p2.buffer.name}) "
                        f"share memory, and the program writes {out.buffer.name}; the program treats them as "
                        "distinct buffers, so pass a separate output array (or a copy of the input)")

    def _scalar_arg(self, pos: int, var, x):
        """A scalar argument as a Python number of ``var``'s kind (int or float); refuses anything else."""
        if isinstance(x, np.bool_):
            x = bool(x)
        ok = isinstance(x, numbers.Real)
        if is_float(var.dtype):
            if ok:
                return float(x)
        elif isinstance(x, numbers.Integral) or (ok and float(x).is_integer()):
            return int(x)
        kind = "a number" if is_float(var.dtype) else "an integer"
        raise TypeError(f"{self.name}(): argument {pos} ({var.name}) must be {kind} ({var.dtype}), got "
                        f"{type(x).__name__} {x!r}")

    def _slot_value(self, var, x, bound_from: str | None) -> int:
        """The 64-bit slot holding ``var = x``; refuses an integer that ``var``'s dtype cannot hold."""
        if is_float(var.dtype):
            return ctypes.c_int64.from_buffer_copy(ctypes.c_double(float(x))).value
        lo, hi = int(min_value(var.dtype)), int(max_value(var.dtype))
        if not lo <= x <= hi:
            raise ValueError(f"{self.name}(): {bound_from or var.name} = {x} does not fit the dtype of "
                             f"{var.name}, {var.dtype} [{lo}, {hi}]; the program would compute with a "
                             "truncated value")
        return x - (1 << 64) if x >= 1 << 63 else x

    def _bind_dim(self, dim, n, binds, where, what, deferred, pos):
        if isinstance(dim, E.IntImm):
            if dim.value != n:
                raise ValueError(f"{self.name}(): argument {pos}: {what} must be {dim.value}, got {n}")
        elif isinstance(dim, E.Var):
            old = binds.get(id(dim))
            if old is None:
                binds[id(dim)] = n
                where[id(dim)] = what
            elif old != n:
                raise ValueError(f"{self.name}(): inconsistent size {dim.name}: {where[id(dim)]} = {old} but "
                                 f"{what} = {n}")
        else:
            deferred.append((dim, n, what, pos))

    def __call__(self, *args) -> None:
        missing = self.module.host_lacks
        if missing:
            from ..target import Target

            raise RuntimeError(
                f"{self.name}(): this code was built for {self.module.target}, which uses "
                f"{', '.join(missing)}; this CPU ({Target('llvm').cpu}) lacks {'it' if len(missing) == 1 else 'them'}, "
                "so running it natively would die of an illegal instruction. Build with "
                "wb.build(..., emulate=True) to run it in the CPU emulator, or read it with .source('asm')")
        bufs, scal, keep = self._bind(args)
        err = (ctypes.c_int64 * ERR_SLOTS)()
        rc = self._invoke(bufs, scal, err, keep)
        if rc:
            self._raise(rc, err)

    def _invoke(self, bufs, scal, err, arrays) -> int:
        return self._cfn(ctypes.addressof(bufs), ctypes.addressof(scal), ctypes.addressof(err))

    def _raise(self, rc, err):
        code, mid, value, extent = (err[k] for k in range(ERR_SLOTS))
        msgs = self.info.messages
        msg = msgs[mid] if code and 0 <= mid < len(msgs) else ""
        if code == 1 and msg.startswith("bounds:"):
            _, buf, dim = msg.split(":")
            raise IndexError(f"{self.name}(): out-of-bounds access to buffer {buf}: index {value} is outside "
                             f"dimension {dim} of extent {extent}")
        if code == 1:
            raise AssertionError(f"{self.name}(): run-time check failed: {msg}")
        if code == 2:
            raise MemoryError(f"{self.name}(): could not allocate {value} bytes for buffer {msg.split(':')[-1]}")
        raise RuntimeError(f"{self.name}(): native code returned error code {rc}")

    def time(self, *args, number: int = 10) -> float:
        """Median seconds per call over ``number`` calls (after one warm-up call)."""
        self(*args)
        ts = []
        for _ in range(number):
            t = time.perf_counter()
            self(*args)
            ts.append(time.perf_counter() - t)
        return float(np.median(ts))


def host_lacks(target) -> list[str]:
    """The features ``target`` enables that the host CPU does not have (sorted)."""
    from ..target import Target

    host = Target("llvm")
    if target.features <= host.features:
        return []
    return sorted(target.features - host.features)


def _shape_text(buf) -> str:
    return "(" + ", ".join(str(d) for d in buf.shape) + ("," if len(buf.shape) == 1 else "") + ")"


def _script(func) -> str:
    return func.script()


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share memory (exactly; assumed when numpy finds the question too hard)."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=100_000))
    except np.exceptions.TooHardError:
        return True


class LLVMModule:
    """One compiled object holding every function of a module.

    ``m["fname"](...)`` or ``m.fname(...)``; calling the module itself works when it
    holds a single function.
    """

    def __init__(self, target, engine, ir_text: str, opt_text: str, tm, times):
        self.target, self.engine = target, engine
        self._ir, self._opt, self._tm = ir_text, opt_text, tm
        self._asm: str | None = None
        self.times = times
        self.functions: dict[str, BuiltFunction] = {}
        #: CPU features the target uses that this machine lacks (calling natively refuses when non-empty)
        self.host_lacks: list[str] = host_lacks(target)

    def share(self) -> LLVMModule:
        """A fresh module object sharing this one's compiled code: attributes set on one (a setting
        such as ``max_seconds``, anything a user stores) do not show on the other. The compile cache
        hands out one per build."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.times = copy.copy(self.times)
        new.host_lacks = list(self.host_lacks)
        new.functions = {n: f._copy_for(new) for n, f in self.functions.items()}
        return new

    def source(self, kind: str = "ll") -> str:
        if kind == "ll":
            return self._opt
        if kind == "ll-raw":
            return self._ir
        if kind == "asm":
            if self._asm is None:
                import llvmlite.binding as llvm

                mod = llvm.parse_assembly(self._opt)
                self._asm = self._tm.emit_assembly(mod)
            return self._asm
        if kind == "lowered":
            return "\n\n".join(f.source("lowered") for f in self.functions.values())
        raise ValueError(f"unknown source kind {kind!r}; expected 'll', 'll-raw', 'asm' or 'lowered'")

    def __getitem__(self, name: str) -> BuiltFunction:
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

    @property
    def entry_name(self) -> str:
        return next(iter(self.functions.values())).entry_name

    def __repr__(self) -> str:
        return f"<LLVMModule [{', '.join(self.functions)}] for {self.target}>"


__all__ = ["LLVMModule", "BuiltFunction", "compile_ir", "load_object", "optimize_ir", "init_llvm", "size_vars",
           "param_specs", "restored_param_specs", "eval_int", "host_lacks"]
