"""Compile a legalized graph function once into a flat program for the virtual machine.

The program has registers (one per value; parameters first, constants preloaded),
integer slots for the size variables, argument checks (run once per call: dtype, rank,
dimensions; the first occurrence of a size variable binds it) and a list of
instructions, each a Python closure ``ins(regs, sizes)``: allocate outputs, call a
kernel or library routine, build or index a tuple, check a ``match_cast``. Running a
call is one loop over that list; nothing walks the IR again.

>>> import workbench as wb
>>> n = wb.var("n")
>>> fn = compile_int(n * 4 + 1, {id(n): 0}, "a shape")
>>> fn([3])
13
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

import numpy as np

from ..ir import expr as E
from ..ir.dtype import DTypeError, to_numpy
from ..ir.functor import collect_vars
from ..ir.graph.expr import (
    Call, Constant, Expr, Function, MatchCast, Op, SeqExpr, Tuple, TupleGetItem, Var, VarBinding,
)
from ..ir.graph.types import GraphType, TensorType, TupleType
from .vm_kernel import KernelCall
from .vm_library import ALIGNMENT, LIBRARY, aligned_empty, aligned_storage

#: an instruction: ``ins(regs, sizes)``
Instruction = Callable[[list, list], None]
#: makes an instruction; ``record`` is None, or a dict ``label -> [calls, seconds]`` to time kernel calls into
InstructionBuilder = Callable[[dict | None], Instruction]


class VMError(ValueError):
    """A graph function the virtual machine cannot run (found when the VM is constructed)."""


_INT_OPS = {E.Add: lambda a, b: a + b, E.Sub: lambda a, b: a - b, E.Mul: lambda a, b: a * b,
            E.FloorDiv: lambda a, b: a // b, E.FloorMod: lambda a, b: a % b, E.Min: min, E.Max: max,
            E.Div: lambda a, b: int(a / b), E.Mod: lambda a, b: int(np.fmod(a, b))}


def compile_int(e, slots: dict, what: str) -> Callable[[list], int]:
    """``e`` (an integer expression of size variables) as ``fn(sizes) -> int``; ``slots`` maps ``id(var)`` to
    its index in ``sizes``. A variable without a slot is a :class:`VMError` naming ``what``."""
    if isinstance(e, int):
        return lambda sizes, c=e: c
    if isinstance(e, E.IntImm):
        return lambda sizes, c=e.value: c
    if isinstance(e, E.Var):
        k = slots.get(id(e))
        if k is None:
            raise VMError(f"{what} uses the size variable {e.name}, which no parameter or earlier match_cast "
                          f"binds")
        return lambda sizes: sizes[k]
    op = _INT_OPS.get(type(e))
    if op is None:
        raise VMError(f"{what} uses `{e}`, which the VM cannot evaluate (integer + - * // % min max only)")
    fa, fb = compile_int(e.a, slots, what), compile_int(e.b, slots, what)
    return lambda sizes: op(fa(sizes), fb(sizes))


def compile_shape(shape: tuple, slots: dict, what: str) -> Callable[[list], tuple]:
    """A static or symbolic shape as ``fn(sizes) -> tuple of ints``."""
    if all(isinstance(d, E.IntImm) for d in shape):
        const = tuple(d.value for d in shape)
        return lambda sizes: const
    dims = [compile_int(d, slots, what) for d in shape]
    return lambda sizes: tuple(f(sizes) for f in dims)


def type_text(t: GraphType) -> str:
    return repr(t).replace("Tensor(", "wb.Tensor(").replace("Tuple(", "wb.Tuple(")


def _numpy_dtype(t: TensorType, what: str) -> np.dtype:
    try:
        return to_numpy(t.dtype)
    except DTypeError as err:
        raise VMError(f"{what} has dtype {t.dtype}, which has no numpy equivalent: {err}") from None


# checking values against types ------------------------------------------------------------
_CONST, _BIND, _EQUAL = 0, 1, 2


class SizeScope:
    """The size variables a function binds: their slots and where each is bound (for error messages)."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix  # of every error message: "forward(): "
        self.slots: dict[int, int] = {}
        self.origin: list[str] = []
        self.names: list[str] = []

    def bind(self, var, origin: str) -> int:
        self.slots[id(var)] = len(self.origin)
        self.origin.append(origin)
        self.names.append(var.name)
        return self.slots[id(var)]


def compile_match(t: GraphType, where: str, scope: SizeScope, deferred: list, contiguous: bool = False,
                  path: tuple = ()):
    """``check(value, sizes) -> value`` raising a clear error when ``value`` is not of type ``t``.

    Dimensions that are new size variables bind them; dimensions that are expressions of
    size variables become entries ``(where, path, dim_index, dim)`` of ``deferred``, checked by
    :func:`compile_deferred` once every variable is bound (``path``: tuple indices down to the
    tensor). ``contiguous=True`` returns a C-contiguous copy of a strided array.
    """
    if isinstance(t, TupleType):
        return _compile_tuple_match(t, where, scope, deferred, contiguous, path)
    if not isinstance(t, TensorType):
        raise VMError(f"{scope.prefix}{where} has type {t!r}, which the VM does not support")
    dtype = _numpy_dtype(t, scope.prefix + where)
    want = type_text(t)
    dims: list = []
    if t.shape is not None:
        for d, dim in enumerate(t.shape):
            if isinstance(dim, E.IntImm):
                dims.append((_CONST, d, dim.value))
            elif isinstance(dim, E.Var) and id(dim) in scope.slots:
                dims.append((_EQUAL, d, scope.slots[id(dim)]))
            elif isinstance(dim, E.Var):
                dims.append((_BIND, d, scope.bind(dim, f"{where} dimension {d}")))
            else:
                deferred.append((where, path, d, dim))
    rank = None if t.shape is None else len(t.shape)
    origin, names = scope.origin, scope.names
    where = scope.prefix + where

    def check(value, sizes):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{where} must be a numpy array of type {want}, got {type(value).__name__}")
        if value.dtype != dtype:
            got = value.dtype.name if value.dtype.isnative else f"{value.dtype.str} (non-native byte order)"
            raise TypeError(f"{where} has dtype {got} but {want} is expected; convert it with "
                            f".astype({dtype.name!r})")
        if rank is not None and value.ndim != rank:
            raise ValueError(f"{where} has {value.ndim} dimension(s), shape {value.shape}, but {want} has {rank}")
        shape = value.shape
        for kind, d, x in dims:
            n = shape[d]
            if kind == _BIND:
                sizes[x] = n
            elif kind == _CONST:
                if n != x:
                    raise ValueError(f"{where} has shape {shape}: dimension {d} is {n} but {want} requires {x}")
            elif n != sizes[x]:
                raise ValueError(f"{where} has shape {shape}: dimension {d} is {n} but {names[x]} = {sizes[x]} "
                                 f"from {origin[x]} ({want})")
        if contiguous and not value.flags.c_contiguous:
            return np.ascontiguousarray(value)
        return value

    return check


def _compile_tuple_match(t: TupleType, where: str, scope: SizeScope, deferred: list, contiguous: bool,
                         path: tuple):
    fields = [compile_match(f, f"{where}[{k}]", scope, deferred, contiguous, (*path, k))
              for k, f in enumerate(t.fields)]
    n, want = len(fields), type_text(t)
    where = scope.prefix + where

    def check(value, sizes):
        if not isinstance(value, (tuple, list)) or len(value) != n:
            got = f"a {type(value).__name__} of {len(value)}" if isinstance(value, (tuple, list)) else \
                type(value).__name__
            raise TypeError(f"{where} must be a tuple of {n} value(s) of type {want}, got {got}")
        return tuple(f(v, sizes) for f, v in zip(fields, value))

    return check


def compile_deferred(deferred: list, scope: SizeScope, reg: int) -> list:
    """Checks ``chk(regs, sizes)`` of the expression dimensions in ``deferred`` of the value in register ``reg``."""
    checks = []
    for where, path, d, dim in deferred:
        where = scope.prefix + where
        fn = compile_int(dim, scope.slots, f"{where} dimension {d} (`{dim}`)")

        def chk(regs, sizes, where=where, path=path, d=d, dim=dim, fn=fn):
            value = regs[reg]
            for k in path:
                value = value[k]
            n, v = value.shape[d], fn(sizes)
            if n != v:
                raise ValueError(f"{where}: dimension {d} is {n} but `{dim}` = {v}")

        checks.append(chk)
    return checks


# the program ----------------------------------------------------------------------------------
#: memory-plan storages up to this size are kept from one call to the next (small kernels' calls then reuse
#: the same arrays and pointers); bigger ones are allocated per call, so they do not stay resident between calls
KEEP_STORAGE_BYTES = 1 << 16


class Program:
    """A compiled graph function: run it with :meth:`run`; :meth:`instructions` gives its instruction list
    (timed into ``record`` when one is given)."""

    def __init__(self, name: str, func: Function, n_regs: int, init_regs: list, scope: SizeScope,
                 param_checks: list, deferred: list, builders: list, result: int, labels: list):
        self.name, self.func = name, func
        self.params = list(func.params)
        self.n_sizes = len(scope.origin)
        self.init_regs = init_regs + [None] * (n_regs - len(init_regs))
        self.param_checks, self.deferred = param_checks, deferred
        self.builders, self.result = builders, result
        self.labels = labels
        self.storage_sizes: list = []
        self.kept_storages_reg = n_regs - 1
        self._local = threading.local()
        self.code = self.instructions()

    def _kept_storages(self) -> list:
        """This thread's storages of the memory plan (up to :data:`KEEP_STORAGE_BYTES` each), kept from one
        call to the next (planned tensors never escape into a result, so a call may write over the last
        call's; each thread has its own)."""
        kept = getattr(self._local, "storages", None)
        if kept is None:
            kept = self._local.storages = [None] * len(self.storage_sizes)
        return kept

    def instructions(self, record: dict | None = None) -> list:
        return [b(record) for b in self.builders]

    def run(self, args: tuple, code: list | None = None):
        if len(args) != len(self.param_checks):
            names = ", ".join(p.name for p in self.params)
            raise TypeError(f"{self.name}() takes {len(self.param_checks)} argument(s) ({names}) but got "
                            f"{len(args)}")
        sizes = [0] * self.n_sizes
        regs = self.init_regs.copy()
        regs[self.kept_storages_reg] = self._kept_storages()
        for k, check in enumerate(self.param_checks):
            regs[k] = check(args[k], sizes)
        for chk in self.deferred:
            chk(regs, sizes)
        for ins in self.code if code is None else code:
            ins(regs, sizes)
        return regs[self.result]


class FunctionCompiler:
    """Compiles one graph function of an :class:`~workbench.backend.executable.Executable`."""

    def __init__(self, name: str, func: Function, executable):
        self.name, self.func, self.ex = name, func, executable
        self.scope = SizeScope(f"{name}(): ")
        self.regs: dict[int, int] = {}
        self.init: list = []
        self.builders: list = []
        self.labels: list = []
        self.kernel_calls: dict[str, KernelCall] = {}
        self.n_regs = 0
        self.storage_sizes: list = []      # the memory plan's size per storage (bytes; int or size expression)
        self.storage_regs: list[int] = []  # the register holding each storage during a call
        self.storage_size_fns: dict[int, Callable] = {}
        self.storage_of: dict[int, int] = {}  # id(planned binding var) -> storage id

    def _new_reg(self) -> int:
        self.n_regs += 1
        return self.n_regs - 1

    def compile(self) -> Program:
        func = self.func
        deferred: list = [[] for _ in func.params]
        checks = []
        for k, p in enumerate(func.params):
            self.regs[id(p)] = self._new_reg()
            checks.append(compile_match(p.type, f"parameter {p.name} (argument {k})", self.scope,
                                        deferred[k], contiguous=True))
        self.init = [None] * len(func.params)
        deferred_checks = [chk for k, entries in enumerate(deferred)
                           for chk in compile_deferred(entries, self.scope, k)]
        self._plan_storages(func)
        body = func.body if isinstance(func.body, SeqExpr) else SeqExpr((), func.body)
        for block in body.blocks:
            for binding in block.bindings:
                self._binding(binding)
        result = self._expr(body.body, "the function's result")
        program = Program(self.name, func, self.n_regs, self.init, self.scope, checks, deferred_checks,
                          self.builders, result, self.labels)
        program.storage_sizes, program.planned = list(self.storage_sizes), len(self.storage_of)
        program.kept_storages_reg = self.kept_storages_reg
        return program

    def _plan_storages(self, func: Function) -> None:
        from .vm_plan import storage_assignment

        self.storage_sizes, self.storage_of = storage_assignment(func, self.name)
        self.storage_regs = [self._new_reg() for _ in self.storage_sizes]
        self.kept_storages_reg = self._new_reg()
        self.init.extend([None] * (len(self.storage_regs) + 1))

    # bindings -------------------------------------------------------------------------------
    def _binding(self, b) -> None:
        what = f"binding {b.var.name}"
        if isinstance(b, MatchCast):
            self.regs[id(b.var)] = self._match_cast(b, what)
        elif isinstance(b, VarBinding) and id(b.var) in self.storage_of:
            self.regs[id(b.var)] = self._call(b.value, what, self.storage_of[id(b.var)])
        elif isinstance(b, VarBinding):
            self.regs[id(b.var)] = self._expr(b.value, what)
        else:
            raise VMError(f"{self.name}: {what} is a {type(b).__name__}, which the VM does not run")

    def _match_cast(self, b: MatchCast, what: str) -> int:
        src = self._expr(b.value, what)
        deferred: list = []
        where = f"match_cast of {b.var.name}"
        check = compile_match(b.type, where, self.scope, deferred)
        extra = compile_deferred(deferred, self.scope, src)

        def build(record):
            def ins(regs, sizes):
                check(regs[src], sizes)
                for chk in extra:
                    chk(regs, sizes)
            return ins

        self.builders.append(build)
        return src

    # values ---------------------------------------------------------------------------------
    def _expr(self, e: Expr, what: str) -> int:
        if isinstance(e, Var):
            reg = self.regs.get(id(e))
            if reg is None:
                raise VMError(f"{self.name}: {what} uses {e.name} before it is defined")
            return reg
        if isinstance(e, Constant):
            return self._constant(e)
        if isinstance(e, Tuple):
            return self._tuple(e, what)
        if isinstance(e, TupleGetItem):
            return self._get_item(e, what)
        if isinstance(e, Call):
            return self._call(e, what)
        raise VMError(f"{self.name}: {what} is a {type(e).__name__}, which the VM does not run (it runs call_tir, "
                      f"call_dps_library, tuples, match_cast, constants and variables)")

    def _constant(self, c: Constant) -> int:
        reg = self.regs.get(id(c))
        if reg is None:
            reg = self.regs[id(c)] = self._new_reg()
            self._set_init(reg, _aligned_constant(c.data))
        return reg

    def _set_init(self, reg: int, value) -> None:
        self.init.extend([None] * (reg + 1 - len(self.init)))
        self.init[reg] = value

    def _tuple(self, t: Tuple, what: str) -> int:
        srcs = [self._expr(f, what) for f in t.fields]
        dst = self._new_reg()

        def build(record):
            def ins(regs, sizes):
                regs[dst] = tuple(regs[s] for s in srcs)
            return ins

        self.builders.append(build)
        return dst

    def _get_item(self, g: TupleGetItem, what: str) -> int:
        return self._get_item_reg(self._expr(g.tuple_value, what), g.index)

    def _flat_args(self, args: tuple, what: str) -> tuple[list, list]:
        """Registers and types of a call's tensor arguments (tuple-typed arguments are spread)."""
        regs, types = [], []
        for a in args:
            reg = self._expr(a, what)
            self._spread(reg, a.type, regs, types)
        return regs, types

    def _spread(self, reg: int, t: GraphType, regs: list, types: list) -> None:
        if not isinstance(t, TupleType):
            regs.append(reg)
            types.append(t)
            return
        for k, f in enumerate(t.fields):
            self._spread(self._get_item_reg(reg, k), f, regs, types)

    def _get_item_reg(self, src: int, index: int) -> int:
        dst = self._new_reg()

        def build(record):
            def ins(regs, sizes):
                regs[dst] = regs[src][index]
            return ins

        self.builders.append(build)
        return dst

    def _call(self, call: Call, what: str, storage: int | None = None) -> int:
        if isinstance(call.op, Op):
            raise VMError(f"{self.name}: {what} calls the graph operator wb.op.{call.op.name}; the VM runs only "
                          f"call_tir and call_dps_library: legalize the module first, "
                          f"mod = wb.transform.LegalizeOps()(mod), then build it")
        label = call.op.name
        context = f"{self.name}(): {what} = " + \
            (f"call_tir({label})" if call.is_call_tir else f"call_dps_library({label!r})")
        in_regs, in_types = self._flat_args(call.args, what)
        out_types = _output_types(call.type, context)
        allocs = [self._allocator(t, f"{context}: output {k}") for k, t in enumerate(out_types)] \
            if storage is None else [self._planned_allocator(out_types[0], storage, context)]
        fn = self._kernel(call, in_types, out_types, context) if call.is_call_tir else \
            self._routine(call, in_types, out_types, context)
        dst = self._new_reg()
        single = isinstance(call.type, TensorType)
        self.builders.append(_call_builder(fn, in_regs, allocs, dst, single, label, context))
        self.labels.append(label)
        return dst

    def _allocator(self, t: TensorType, what: str) -> Callable[[list, list], np.ndarray]:
        """``alloc(regs, sizes)``: a fresh aligned array of type ``t``."""
        shape_fn = compile_shape(t.shape, self.scope.slots, what)
        dtype = _numpy_dtype(t, what)
        return lambda regs, sizes: aligned_empty(shape_fn(sizes), dtype)

    def _planned_allocator(self, t: TensorType, sid: int, what: str) -> Callable[[list, list], np.ndarray]:
        """``alloc(regs, sizes)``: a view of type ``t`` at the start of storage ``sid`` (the storage is
        allocated by its first tensor in the call)."""
        shape_fn = compile_shape(t.shape, self.scope.slots, what)
        dtype = _numpy_dtype(t, what)
        size_fn = self._storage_size_fn(sid, what)
        sreg, itemsize = self.storage_regs[sid], dtype.itemsize

        kept_reg = self.kept_storages_reg
        # (storage, shape, view) of the last call, one tuple read once and replaced whole: a thread never
        # takes another thread's view (each thread has its own storages)
        last_view: list = [None]

        def alloc(regs, sizes):
            store = regs[sreg]
            if store is None:   # the first tensor of this storage in the call: reuse the last call's storage
                need = size_fn(sizes)
                kept = regs[kept_reg]
                store = kept[sid]
                if store is None or store.shape[0] < need:
                    store = aligned_storage(need)
                    kept[sid] = store if need <= KEEP_STORAGE_BYTES else None
                regs[sreg] = store
            shape = shape_fn(sizes)
            view = last_view[0]
            if view is not None and view[0] is store and view[1] == shape:
                return view[2]      # the same array object as last time: kernels skip re-reading its pointer
            nbytes = math.prod(shape) * itemsize
            if nbytes > store.shape[0]:
                raise ValueError(f"{what}: the memory plan gives storage {sid} {store.shape[0]} bytes, but the "
                                 f"output {shape} of {dtype.name} needs {nbytes}")
            out = store[:nbytes].view(dtype).reshape(shape)
            last_view[0] = (store, shape, out)
            return out

        return alloc

    def _storage_size_fn(self, sid: int, what: str) -> Callable[[list], int]:
        fn = self.storage_size_fns.get(sid)
        if fn is None:
            size = self.storage_sizes[sid]
            slots = dict(self.scope.slots)
            by_name = {name: k for k, name in enumerate(self.scope.names)}
            if isinstance(size, E.PrimExpr):  # size variables that parsed back as other objects: match by name
                for v in collect_vars(size):
                    if id(v) not in slots and v.name in by_name:
                        slots[id(v)] = by_name[v.name]
            fn = self.storage_size_fns[sid] = compile_int(size, slots, f"{what}: memory plan storage {sid}")
        return fn

    def _kernel(self, call: Call, in_types: list, out_types: list, context: str):
        name = call.op.name
        kernels = self.ex.kernels
        if kernels is None or name not in kernels.functions:
            have = ", ".join(self.ex.kernel_names) or "none"
            raise VMError(f"{context}: the module has no tensor program {name!r} (it has: {have})")
        kernel = kernels[name]
        _check_kernel_signature(kernel, in_types + out_types, len(in_types), context)
        call = self.kernel_calls.get(name)
        if call is None:
            call = self.kernel_calls[name] = KernelCall(kernel)
        return call.site()

    @staticmethod
    def _routine(call: Call, in_types: list, out_types: list, context: str):
        routine = LIBRARY.get(call.op.name)
        if routine is None:
            raise VMError(f"{context}: unknown library function {call.op.name!r}; the VM provides "
                          f"{', '.join(sorted(LIBRARY))}")
        if len(in_types) != routine.arity or len(out_types) != 1:
            raise VMError(f"{context}: {routine.name} takes {routine.arity} input(s) and writes 1 output, got "
                          f"{len(in_types)} input(s) and {len(out_types)} output(s)")
        return routine


def _aligned_constant(data: np.ndarray) -> np.ndarray:
    if data.flags.c_contiguous and data.ctypes.data % ALIGNMENT == 0:
        return data
    arr = aligned_empty(data.shape, data.dtype)
    arr[...] = data
    arr.flags.writeable = False
    return arr


def _output_types(t: GraphType, context: str) -> list:
    types = list(t.fields) if isinstance(t, TupleType) else [t]
    for k, f in enumerate(types):
        if not isinstance(f, TensorType):
            raise VMError(f"{context}: output {k} has type {f!r}; outputs must be tensors (a tuple of tensors "
                          f"for several)")
        if f.shape is None:
            raise VMError(f"{context}: output {k} has unknown rank ({f!r}); give its shape so the VM can "
                          f"allocate it")
    return types


def _check_kernel_signature(kernel, types: list, n_in: int, context: str) -> None:
    """Refuse a call_tir whose arguments and outputs do not match the tensor program's buffers."""
    func = kernel.func
    bufs = [func.buffer_map.get(p) for p in func.params]
    if any(b is None for b in bufs):
        scalars = ", ".join(p.name for p, b in zip(func.params, bufs) if b is None)
        raise VMError(f"{context}: the tensor program has scalar parameters ({scalars}); call_tir passes only "
                      f"tensors")
    if len(bufs) != len(types):
        raise VMError(f"{context}: the tensor program has {len(bufs)} buffer parameter(s) "
                      f"({', '.join(b.name for b in bufs)}) but the call passes {n_in} argument(s) and "
                      f"{len(types) - n_in} output(s)")
    for k, (b, t) in enumerate(zip(bufs, types)):
        role = f"argument {k}" if k < n_in else f"output {k - n_in}"
        if b.dtype != t.dtype or (t.shape is not None and len(t.shape) != len(b.shape)):
            raise VMError(f"{context}: {role} is {type_text(t)} but the tensor program's buffer {b.name} is "
                          f"{b.dtype} of rank {len(b.shape)}")


_KERNEL_ERRORS = (ValueError, TypeError, IndexError, AssertionError, MemoryError, RuntimeError, ArithmeticError)


def _reraise(err: Exception, context: str):
    try:
        new = type(err)(f"{context}: {err}")
    except TypeError:  # an exception class with another constructor
        new = RuntimeError(f"{context}: {err}")
    raise new from err


def _call_builder(fn, in_regs: list, allocs: list, dst: int, single: bool, label: str,
                  context: str) -> InstructionBuilder:
    def build(record):
        if record is None:
            def ins(regs, sizes):
                outs = [a(regs, sizes) for a in allocs]
                try:
                    fn(*[regs[r] for r in in_regs], *outs)
                except _KERNEL_ERRORS as err:
                    _reraise(err, context)
                regs[dst] = outs[0] if single else tuple(outs)
            return ins

        entry = record.setdefault(label, [0, 0.0])
        clock = time.perf_counter

        def timed(regs, sizes):
            outs = [a(regs, sizes) for a in allocs]
            args = [regs[r] for r in in_regs]
            t0 = clock()
            try:
                fn(*args, *outs)
            except _KERNEL_ERRORS as err:
                _reraise(err, context)
            entry[1] += clock() - t0
            entry[0] += 1
            regs[dst] = outs[0] if single else tuple(outs)
        return timed

    return build


def compile_function(name: str, func: Function, executable) -> Program:
    """Compile graph function ``func`` (named ``name``) of ``executable`` into a :class:`Program`."""
    return FunctionCompiler(name, func, executable).compile()


__all__ = ["VMError", "Program", "FunctionCompiler", "compile_function", "compile_int", "compile_shape",
           "compile_match", "SizeScope"]
