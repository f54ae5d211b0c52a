"""OpenCL C code generation from a lowered, host/device-split program.

Each kernel (an outermost thread-bound loop marked by ``split_host_device``) becomes one
``__kernel`` function. Its parameters are the ``global`` buffers it touches (function
parameters and host-allocated intermediates) followed by the scalars it uses (size
variables, host loop variables); its launch dimensions are the extents of its
``blockIdx.*`` / ``threadIdx.*`` loops, expressions the host evaluates at call time.
``shared`` buffers become ``__local`` arrays at the top of the kernel, ``local`` ones
private arrays; ``storage_sync("shared")`` becomes ``barrier(CLK_LOCAL_MEM_FENCE)``.

>>> import workbench as wb
>>> from workbench import te
>>> from workbench.backend.lower import lower
>>> from workbench.backend.target import Target
>>> import workbench.backend.opencl
>>> A = te.placeholder((128,), "float32", name="A")
>>> B = te.compute((128,), lambda i: A[i] * 2.0, name="B")
>>> sch = wb.Schedule(wb.create_prim_func([A, B]))
>>> io, ii = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 64])
>>> sch.bind(io, "blockIdx.x"); sch.bind(ii, "threadIdx.x")
>>> print(generate(lower(sch.mod, Target("opencl"))).kernels[0].source, end="")
__kernel void main_kernel0(__global float* A, __global float* B) {
  const int i_0 = get_group_id(0);
  const int i_1 = get_local_id(0);
  B[i_0 * 64 + i_1] = A[i_0 * 64 + i_1] * 2.0f;
}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...ir import expr as E
from ...ir.dtype import bits_of, element_of, is_bool, is_float, is_uint, lanes_of
from ...ir.expr import as_int
from ...ir.function import PrimFunc
from ...ir.functor import post_order_visit, uses_var
from ...ir.stmt import (Allocate, AssertStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt, SeqStmt,
                        Stmt)
from .host_device import KERNEL_KEY, SHARED_SCOPES, is_barrier

#: IR dtype -> OpenCL C type (bool is stored in memory as uchar)
CL_TYPES = {"float32": "float", "float64": "double", "float16": "half", "int8": "char", "uint8": "uchar",
            "int16": "short", "uint16": "ushort", "int32": "int", "uint32": "uint", "int64": "long",
            "uint64": "ulong", "bool": "bool"}

#: dtype -> the device extension it needs
EXTENSIONS = {"float16": "cl_khr_fp16", "float64": "cl_khr_fp64"}

_INTRINSICS = {"exp": "exp", "exp2": "exp2", "exp10": "exp10", "log": "log", "log2": "log2", "log10": "log10",
               "log1p": "log1p", "sqrt": "sqrt", "rsqrt": "rsqrt", "tanh": "tanh", "erf": "erf", "sin": "sin",
               "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh",
               "cosh": "cosh", "floor": "floor", "ceil": "ceil", "round": "round", "trunc": "trunc",
               "nearbyint": "rint", "pow": "pow", "atan2": "atan2", "fmod": "fmod", "copysign": "copysign",
               "hypot": "hypot", "fma": "fma", "popcount": "popcount"}
_BITWISE = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^", "shift_left": "<<", "shift_right": ">>"}
_BINOPS = {E.EQ: "==", E.NE: "!=", E.LT: "<", E.LE: "<=", E.GT: ">",
           E.GE: ">=", E.And: "&&", E.Or: "||"}
_RESERVED = set("""auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while bool
half uchar ushort uint ulong size_t true false kernel global local private constant read_only write_only
__kernel __global __local __private __constant barrier min max abs exp log sqrt select clamp mad fabs fmin fmax
floor ceil round rint trunc pow sin cos tan erf tanh isnan isinf isfinite popcount get_group_id get_local_id
get_global_id get_local_size get_num_groups""".split())

_AXES = {"x": 0, "y": 1, "z": 2}


class OpenCLCodegenError(ValueError):
    """The program uses something the OpenCL backend cannot express (the message says what and where)."""


@dataclass
class Kernel:
    """One ``__kernel``: its source, its arguments in order and its launch dimensions (host expressions)."""

    name: str
    source: str
    buffers: list            # flat Buffers, in argument order
    scalars: list            # Vars, after the buffers
    grid: tuple              # (x, y, z) work-groups: PrimExprs over the scalars
    block: tuple             # (x, y, z) work-items per group
    shared: list             # (buffer name, bytes) of each __local array

    @property
    def shared_bytes(self) -> int:
        return sum(n for _, n in self.shared)


@dataclass
class ModuleSource:
    """The OpenCL C of one program: the preamble (extensions, helpers) and its kernels."""

    preamble: str
    kernels: list = field(default_factory=list)
    dtypes: set = field(default_factory=set)

    @property
    def text(self) -> str:
        return self.preamble + "\n".join(k.source for k in self.kernels)


def cl_type(dtype: str, where: str) -> str:
    if lanes_of(dtype) != 1:
        raise OpenCLCodegenError(f"{where}: vector dtype {dtype} (a vectorized loop); the opencl backend runs "
                                 "one element per thread: remove sch.vectorize for GPU targets")
    t = CL_TYPES.get(dtype)
    if t is None:
        raise OpenCLCodegenError(f"{where}: dtype {dtype} has no OpenCL C type; supported: {', '.join(CL_TYPES)}")
    return t


def storage_type(dtype: str, where: str) -> str:
    """The OpenCL C type of an element in memory (bool as uchar, as numpy stores it)."""
    return "uchar" if is_bool(dtype) else cl_type(dtype, where)


class _Names:
    """C identifiers for Vars and Buffers: unique, and never a keyword or a builtin."""

    def __init__(self, reserved: set = _RESERVED):
        self.reserved = reserved
        self.taken: set[str] = set()
        self.by_id: dict[int, str] = {}

    def get(self, obj, name: str) -> str:
        got = self.by_id.get(id(obj))
        if got is not None:
            return got
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "v"
        if base[0].isdigit() or base in self.reserved or base.startswith("wb_"):
            base = "v_" + base
        cand, k = base, 1
        while cand in self.taken:
            cand, k = f"{base}_{k}", k + 1
        self.taken.add(cand)
        self.by_id[id(obj)] = cand
        return cand


def _updates_in_place(body) -> bool:
    """True when ``body`` reads a buffer that it also writes (running it twice would not be the same as once)."""
    from ...ir.functor import Visitor

    class _Access(Visitor):
        def __init__(self):
            self.reads, self.writes = set(), set()

        def visit_BufferLoad(self, e):
            self.reads.add(id(e.buffer))
            self.generic_visit(e)

        def visit_BufferStore(self, st):
            self.writes.add(id(st.buffer))
            self.generic_visit(st)

    acc = _Access()
    acc.visit(body)
    return bool(acc.reads & acc.writes)


class CKernelGen:
    """Renders one kernel in OpenCL C. The C-family dialect is in the class attributes and the small methods
    after them (types, thread indices, barrier, signature); ``workbench.backend.cuda`` subclasses it for CUDA C."""

    TYPES = CL_TYPES
    INTRINSICS = _INTRINSICS
    Error = OpenCLCodegenError
    BACKEND = "opencl"
    LANGUAGE = "OpenCL C"
    BARRIER = "barrier(CLK_LOCAL_MEM_FENCE);"
    SHARED_PREFIX = "__local "
    RESERVED = _RESERVED

    def c_type(self, dtype: str, where: str) -> str:
        return cl_type(dtype, where)

    def storage_of(self, dtype: str, where: str) -> str:
        return storage_type(dtype, where)

    def nonfinite(self, v: float, dtype: str) -> str:
        return "NAN" if math.isnan(v) else "INFINITY" if v > 0 else "(-INFINITY)"

    def thread_index(self, tag: str) -> str:
        fn = "get_group_id" if tag.startswith("blockIdx") else "get_local_id"
        return f"{fn}({_AXES[tag[-1]]})"

    def buffer_param(self, buf) -> str:
        return f"__global {self.storage(buf.dtype)}* {self.names.get(buf, buf.name)}"

    def signature(self, params: list[str]) -> str:
        return f"__kernel void {self.name}({', '.join(params)}) {{"

    def __init__(self, module: ModuleSource, name: str):
        self.module, self.name = module, name
        self.names = _Names(self.RESERVED)
        self.lines: list[str] = []
        self.indent = 1
        self.defined: set[int] = set()
        self.thread_extent: dict[str, E.PrimExpr] = {}
        self.shared: list[tuple] = []
        self.local: set[int] = set()
        self.buffers: dict[int, object] = {}
        self.scalars: dict[int, E.Var] = {}
        self.thread_vars: set[int] = set()
        self.divergent = 0
        self.nonneg_vars: set[int] = set()

    # types -------------------------------------------------------------------------------------------------
    def t(self, dtype: str) -> str:
        """The OpenCL C type of ``dtype`` (recording it, so the preamble enables its extension)."""
        out = self.c_type(dtype, f"kernel {self.name}")
        self.module.dtypes.add(dtype)
        return out

    def storage(self, dtype: str) -> str:
        self.t(dtype)
        return self.storage_of(dtype, f"kernel {self.name}")

    def nonneg(self, e) -> bool:
        """True when ``e`` is provably >= 0: constants, loop variables counting up from a non-negative start,
        and sums, products, floor divisions and remainders of those."""
        if isinstance(e, E.IntImm):
            return e.value >= 0
        if isinstance(e, E.Var):
            return id(e) in self.nonneg_vars
        if isinstance(e, (E.Add, E.Mul, E.Min)):
            return self.nonneg(e.a) and self.nonneg(e.b)
        if isinstance(e, E.Max):
            return self.nonneg(e.a) or self.nonneg(e.b)
        if isinstance(e, (E.FloorDiv, E.FloorMod)):
            return self.nonneg(e.a) and _positive_const(e.b)
        return False

    # expressions -------------------------------------------------------------------------------------------
    def expr(self, e) -> str:
        if lanes_of(e.dtype) != 1:
            self.c_type(e.dtype, f"kernel {self.name}, expression `{e}`")
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            raise self.Error(f"kernel {self.name}: the {self.BACKEND} backend cannot express "
                                     f"{type(e).__name__} `{e}`")
        return m(e)

    def wrap(self, text: str, dtype: str) -> str:
        """Arithmetic on narrow integers is promoted to int in C: cast back so it wraps as the IR says."""
        if not is_float(dtype) and not is_bool(dtype) and bits_of(dtype) < 32:
            return f"(({self.t(dtype)})({text}))"
        return text

    def e_Var(self, v: E.Var) -> str:
        if id(v) not in self.defined:
            self.scalars.setdefault(id(v), v)
        return self.names.get(v, v.name)

    def e_IntImm(self, e: E.IntImm) -> str:
        dt, v = e.dtype, e.value
        if is_bool(dt):
            return "true" if v else "false"
        if dt == "int32":
            return str(v) if v != -2 ** 31 else "(-2147483647 - 1)"
        if dt == "int64":
            return f"{v}L" if v != -2 ** 63 else "(-9223372036854775807L - 1L)"
        if dt == "uint32":
            return f"{v}u"
        if dt == "uint64":
            return f"{v}UL"
        return f"(({self.t(dt)}){v})"

    def e_FloatImm(self, e: E.FloatImm) -> str:
        v, dt = e.value, e.dtype
        if math.isnan(v) or math.isinf(v):
            text = self.nonfinite(v, dt)
        else:
            text = repr(float(v)) + ("" if dt == "float64" else "f")
        return text if dt == "float32" else f"(({self.t(dt)}){text})"

    def _binary(self, e, op: str) -> str:
        return self.wrap(f"{self._operand(e.a, e)} {op} {self._operand(e.b, e)}", e.dtype)

    def _operand(self, x, parent) -> str:
        text = self.expr(x)
        if isinstance(x, E.BinaryOp) and not _binds_tighter(x, parent):
            return f"({text})"
        return text

    def e_Add(self, e):
        return self._binary(e, "+")

    def e_Sub(self, e):
        return self._binary(e, "-")

    def e_Mul(self, e):
        return self._binary(e, "*")

    def _compare(self, e) -> str:
        return f"{self._paren(e.a)} {_BINOPS[type(e)]} {self._paren(e.b)}"

    e_EQ = e_NE = e_LT = e_LE = e_GT = e_GE = e_And = e_Or = _compare

    def e_Div(self, e):
        return self._binary(e, "/")

    def e_Mod(self, e):
        if is_float(e.dtype):
            return f"fmod({self.expr(e.a)}, {self.expr(e.b)})"
        return self._binary(e, "%")

    def e_FloorDiv(self, e):
        if is_float(e.dtype):
            return f"floor({self.expr(e.a)} / {self.expr(e.b)})"
        if is_uint(e.dtype) or self.nonneg(e.a) and _positive_const(e.b):
            return self._binary(e, "/")
        return f"{self._helper('floordiv', e.dtype)}({self.expr(e.a)}, {self.expr(e.b)})"

    def e_FloorMod(self, e):
        if is_float(e.dtype):
            return f"{self._helper('floormod', e.dtype)}({self.expr(e.a)}, {self.expr(e.b)})"
        if is_uint(e.dtype) or self.nonneg(e.a) and _positive_const(e.b):
            return self._binary(e, "%")
        return f"{self._helper('floormod', e.dtype)}({self.expr(e.a)}, {self.expr(e.b)})"

    def _helper(self, what: str, dtype: str) -> str:
        self.module.dtypes.add(("helper", what, dtype))
        return f"wb_{what}_{dtype}"

    def e_Min(self, e):
        if is_float(e.dtype):
            return f"{self._helper('min', e.dtype)}({self.expr(e.a)}, {self.expr(e.b)})"
        return f"min({self.expr(e.a)}, {self.expr(e.b)})"

    def e_Max(self, e):
        if is_float(e.dtype):
            return f"{self._helper('max', e.dtype)}({self.expr(e.a)}, {self.expr(e.b)})"
        return f"max({self.expr(e.a)}, {self.expr(e.b)})"

    def e_Not(self, e):
        return f"(!{self._paren(e.a)})"

    def _paren(self, x) -> str:
        text = self.expr(x)
        return text if isinstance(x, (E.Var, E.IntImm, E.FloatImm, E.BufferLoad, E.Call)) else f"({text})"

    def e_Select(self, e):
        return f"({self._paren(e.condition)} ? {self.expr(e.true_value)} : {self.expr(e.false_value)})"

    def e_Cast(self, e):
        if is_bool(e.dtype):
            return f"({self._paren(e.value)} != 0)"
        return f"(({self.t(e.dtype)}){self._paren(e.value)})"

    def e_BufferLoad(self, e):
        buf = e.buffer
        self._use_buffer(buf)
        text = f"{self.names.get(buf, buf.name)}[{self.expr(e.indices[0])}]"
        return f"({text} != 0)" if is_bool(buf.dtype) else text

    def e_Let(self, e):
        from ...ir.functor import substitute

        return self.expr(substitute(e.body, {e.var: e.value}))

    def e_Call(self, e):
        op, args = e.op, e.args
        if op == "if_then_else":
            return f"({self._paren(args[0])} ? {self.expr(args[1])} : {self.expr(args[2])})"
        if op == "call_extern":
            return self._extern(e)
        if op in _BITWISE:
            return self.wrap(f"{self._paren(args[0])} {_BITWISE[op]} {self._paren(args[1])}", e.dtype)
        if op == "bitwise_not":
            return self.wrap(f"~{self._paren(args[0])}", e.dtype)
        if op == "sigmoid":
            one = self.e_FloatImm(E.FloatImm(1.0, e.dtype))
            return f"({one} / ({one} + exp(-{self._paren(args[0])})))"
        if op == "abs":
            if is_float(e.dtype):
                return f"fabs({self.expr(args[0])})"
            return f"(({self.t(e.dtype)})abs({self.expr(args[0])}))"
        if op in ("isnan", "isinf", "isfinite"):
            return f"({op}({self.expr(args[0])}) != 0)"
        fn = self.INTRINSICS.get(op)
        if fn is None:
            raise self.Error(f"kernel {self.name}: intrinsic {op} has no {self.LANGUAGE} counterpart")
        return f"{fn}({', '.join(self.expr(a) for a in args)})"

    def _extern(self, e):
        name = e.args[0].value
        base = name[:-1] if name.endswith("f") and name[:-1] in self.INTRINSICS else name
        fn = self.INTRINSICS.get(base)
        if fn is None:
            raise self.Error(f"kernel {self.name}: external function {name} is not available in "
                             f"{self.LANGUAGE} (only the C math functions are)")
        return f"{fn}({', '.join(self.expr(a) for a in e.args[1:])})"

    def _use_buffer(self, buf) -> None:
        if id(buf) in self.local or buf.scope in SHARED_SCOPES:
            return
        if buf.scope == "local":
            raise self.Error(f"kernel {self.name}: local buffer {buf.name} is used outside the "
                                     "thread-bound loops that own it")
        self.buffers.setdefault(id(buf), buf)

    # statements --------------------------------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("  " * self.indent + line)

    def stmt(self, s: Stmt) -> None:
        m = getattr(self, "s_" + type(s).__name__, None)
        if m is None:
            raise self.Error(f"kernel {self.name}: the {self.BACKEND} backend cannot express {type(s).__name__}")
        m(s)

    def s_SeqStmt(self, s: SeqStmt):
        for c in s.seq:
            self.stmt(c)

    def s_BufferStore(self, s: BufferStore):
        buf = s.buffer
        self._use_buffer(buf)
        value = self.expr(s.value)
        if is_bool(buf.dtype):
            value = f"({self.storage(buf.dtype)})({value})"
        self.emit(f"{self.names.get(buf, buf.name)}[{self.expr(s.indices[0])}] = {value};")

    def s_IfThenElse(self, s: IfThenElse):
        divergent = _uses_any(s.condition, self.thread_vars)
        self.divergent += divergent
        self.emit(f"if ({self.expr(s.condition)}) {{")
        self._block(s.then_case)
        if s.else_case is not None:
            self.emit("} else {")
            self._block(s.else_case)
        self.emit("}")
        self.divergent -= divergent

    def _block(self, s: Stmt) -> None:
        self.indent += 1
        self.stmt(s)
        self.indent -= 1

    def s_LetStmt(self, s: LetStmt):
        value = self.expr(s.value)
        self.defined.add(id(s.var))
        if _uses_any(s.value, self.thread_vars):
            self.thread_vars.add(id(s.var))
        self.emit(f"const {self.t(s.var.dtype)} {self.names.get(s.var, s.var.name)} = {value};")
        self.stmt(s.body)

    def s_Allocate(self, s: Allocate):
        buf = s.buffer
        n = as_int(buf.shape[0]) if buf.shape else 1
        where = f"kernel {self.name}"
        if buf.scope not in ("local",) + SHARED_SCOPES:
            raise self.Error(f"{where}: buffer {buf.name} (scope {buf.scope}) is allocated inside the "
                                     "kernel; inside thread-bound loops use scope \"shared\" or \"local\"")
        if n is None:
            raise self.Error(f"{where}: {buf.scope} buffer {buf.name} has symbolic size {buf.shape[0]}; "
                                     "shared and local buffers need a constant size")
        decl = f"{self.storage(buf.dtype)} {self.names.get(buf, buf.name)}[{max(n, 1)}];"
        if buf.scope in SHARED_SCOPES:
            self.shared.append((decl, buf.name, n * max(1, bits_of(buf.dtype) // 8)))
        else:
            self.local.add(id(buf))
            self.emit(decl)
        self.stmt(s.body)

    def s_Evaluate(self, s: Evaluate):
        if is_barrier(s):
            if self.divergent:
                raise self.Error(
                    f"kernel {self.name}: a barrier for shared memory is needed inside a branch that depends on "
                    "the thread index, where not every thread reaches it; move the condition into the "
                    "statements (e.g. a predicate on the copy only)")
            self.emit(self.BARRIER)
            return
        self.emit(f"{self.expr(s.value)};")

    def s_AssertStmt(self, s: AssertStmt):
        raise self.Error(f"kernel {self.name}: run-time checks (checks=True) cannot run inside a {self.BACKEND} "
                         "kernel; build without checks")

    def s_For(self, s: For):
        if s.kind == ForKind.THREAD_BINDING and not s.thread.startswith("vthread"):
            self._thread_loop(s)
            return
        if s.kind in (ForKind.PARALLEL, ForKind.VECTORIZED):
            raise self.Error(f"kernel {self.name}: loop {s.loop_var.name} is {s.kind.value}, a CPU "
                                     "annotation; inside a GPU kernel bind it to a thread axis or leave it serial")
        t = self.t(s.loop_var.dtype)
        v = self.names.get(s.loop_var, s.loop_var.name)
        self.defined.add(id(s.loop_var))
        if self.nonneg(s.min):
            self.nonneg_vars.add(id(s.loop_var))
        lo = self.expr(s.min)
        hi = self.expr(s.extent) if _is_zero(s.min) else self.expr(E.add(s.min, s.extent))
        if s.kind == ForKind.UNROLLED:
            self.emit("#pragma unroll")
        self.emit(f"for ({t} {v} = {lo}; {v} < {hi}; ++{v}) {{")
        self._block(s.body)
        self.emit("}")

    def _thread_loop(self, s: For):
        tag = s.thread
        if tag in self._open_tags:
            # TVM's convention: a loop bound to an axis that is already open is the same thread index (a
            # cooperative fetch under the compute threads). Sequential semantics would run its body once per
            # outer iteration too, which is the same only when repeating it changes nothing:
            outer = self._open_tags[tag]
            if uses_var(s.body, outer.loop_var) or _updates_in_place(s.body):
                raise self.Error(f"kernel {self.name}: loop {s.loop_var.name} is bound to {tag} inside loop "
                                 f"{outer.loop_var.name}, bound to {tag} too; that is allowed only for a body that "
                                 f"does not use {outer.loop_var.name} and updates nothing in place")
        old = self.thread_extent.get(tag)
        if old is None:
            self.thread_extent[tag] = s.extent
        elif str(old) != str(s.extent):
            raise self.Error(f"kernel {self.name}: loops bound to {tag} have different extents ({old} and "
                                     f"{s.extent}); every loop bound to one thread axis in a kernel must have the "
                                     "same extent")
        self.defined.add(id(s.loop_var))
        self.thread_vars.add(id(s.loop_var))
        if self.nonneg(s.min):
            self.nonneg_vars.add(id(s.loop_var))
        t = self.t(s.loop_var.dtype)
        v = self.names.get(s.loop_var, s.loop_var.name)
        idx = self.thread_index(tag) if t == "int" else f"({t}){self.thread_index(tag)}"
        if not _is_zero(s.min):
            idx = f"{self.expr(s.min)} + {idx}"
        self.emit(f"const {t} {v} = {idx};")
        if tag in self._open_tags:
            self.stmt(s.body)
            return
        self._open_tags[tag] = s
        self.stmt(s.body)
        del self._open_tags[tag]

    _open_tags: dict

    # the kernel --------------------------------------------------------------------------------------------
    def run(self, root: For, order: dict) -> Kernel:
        """The kernel of ``root``; its buffer arguments in ``order`` (id -> position), the others after."""
        self._open_tags = {}
        self.stmt(root)
        bufs = sorted(self.buffers.values(), key=lambda b: order.get(id(b), len(order)))
        scalars = [v for k, v in self.scalars.items() if k not in self.defined]
        params = [self.buffer_param(b) for b in bufs]
        params += [f"const {self.t(v.dtype)} {self.names.get(v, v.name)}" for v in scalars]
        head = [self.signature(params)]
        head += [f"  {self.SHARED_PREFIX}{decl}" for decl, _, _ in self.shared]
        source = "\n".join(head + self.lines + ["}"]) + "\n"
        one = E.IntImm(1)
        grid = tuple(self.thread_extent.get(f"blockIdx.{a}", one) for a in "xyz")
        block = tuple(self.thread_extent.get(f"threadIdx.{a}", one) for a in "xyz")
        return Kernel(self.name, source, bufs, scalars, grid, block, [(b, n) for _, b, n in self.shared])


def _binds_tighter(x, parent) -> bool:
    """True when ``x`` as an operand of ``parent`` needs no parentheses (``a * b`` inside ``+``)."""
    rank = {E.Mul: 3, E.Div: 3, E.Mod: 3, E.Add: 2, E.Sub: 2}
    rx, rp = rank.get(type(x)), rank.get(type(parent))
    if rx is None or rp is None:
        return False
    if isinstance(parent, (E.Sub, E.Div, E.Mod)) and x is parent.b:
        return rx > rp
    return rx >= rp


def _positive_const(e) -> bool:
    return isinstance(e, E.IntImm) and e.value > 0


def _is_zero(e) -> bool:
    return isinstance(e, E.IntImm) and e.value == 0


def _uses_any(e, ids: set) -> bool:
    hits = []
    post_order_visit(e, lambda n: hits.append(n) if isinstance(n, E.Var) and id(n) in ids else None)
    return bool(hits)


# ----------------------------------------------------------------------------------------------------------


_HELPERS = {
    "floordiv": "static inline {t} wb_floordiv_{d}({t} a, {t} b) {{ {t} q = a / b; "
                "return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q; }}",
    "floormod": "static inline {t} wb_floormod_{d}({t} a, {t} b) {{ {t} r = a % b; "
                "return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }}",
    "floormod_f": "static inline {t} wb_floormod_{d}({t} a, {t} b) {{ return a - floor(a / b) * b; }}",
    # NaN-propagating, like numpy's minimum/maximum
    "min": "static inline {t} wb_min_{d}({t} a, {t} b) {{ return (a < b || isnan(a)) ? a : b; }}",
    "max": "static inline {t} wb_max_{d}({t} a, {t} b) {{ return (a > b || isnan(a)) ? a : b; }}",
}


def _preamble(module: ModuleSource) -> str:
    lines = []
    for dt, ext in EXTENSIONS.items():
        if dt in module.dtypes:
            lines.append(f"#pragma OPENCL EXTENSION {ext} : enable")
    for item in sorted(x for x in module.dtypes if isinstance(x, tuple)):
        _, what, dt = item
        key = "floormod_f" if what == "floormod" and is_float(dt) else what
        lines.append(_HELPERS[key].format(t=CL_TYPES[element_of(dt)], d=dt))
    return "\n".join(lines) + ("\n\n" if lines else "")


def kernel_roots(s: Stmt) -> list[For]:
    out: list[For] = []

    def f(n):
        if isinstance(n, For) and KERNEL_KEY in n.annotations:
            out.append(n)
    post_order_visit(s, f)
    return out


def generate(lowered: PrimFunc, module: ModuleSource | None = None) -> ModuleSource:
    """Add the kernels of ``lowered`` (a program after the opencl pipeline) to ``module`` (a new one if None)."""
    module = module if module is not None else ModuleSource("")
    order = {id(b): k for k, b in enumerate(lowered.buffer_map.values())}
    for root in kernel_roots(lowered.body):
        gen = CKernelGen(module, root.annotations[KERNEL_KEY])
        module.kernels.append(gen.run(root, order))
    module.preamble = _preamble(module)
    return module


__all__ = ["generate", "CKernelGen", "kernel_roots", "Kernel", "ModuleSource", "OpenCLCodegenError", "CL_TYPES",
           "EXTENSIONS", "cl_type", "storage_type"]
