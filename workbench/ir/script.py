"""The script-form vocabulary: what ``wb.<name>`` means inside a ``@wb.prim_func``.

The parser reads a decorated function's *source* and recognises constructs by
name (``wb.grid``, ``wb.block``, ``wb.axis.remap``, ...), so most of these are
never run. Python still evaluates parameter annotations when it defines the
function, so ``wb.Buffer((128, 128), "float32")`` and ``wb.handle`` must exist and
work; the value-building ones (``wb.float16(0.5)``, ``wb.max``, ``wb.exp``,
``wb.cast``) are also useful outside a script:

>>> import workbench as wb
>>> wb.float16(0.5).dtype
'float16'
>>> x = wb.int32()          # a fresh size variable
>>> print(wb.max(x, 0))
wb.max(v, 0)

Constructs that only make sense inside a script (``wb.block``, ``wb.reads``, ...)
raise ``ScriptOnlyError`` when run directly.
"""
from __future__ import annotations

import ast
import sys
import types
from typing import Any

from . import expr as _e
from .buffer import Buffer as _Buffer
from .dtype import SCALAR_DTYPES, normalize_dtype
from .expr import (
    INTRINSICS, Broadcast as _Broadcast, PrimExpr, Ramp as _Ramp, Var as _Var, call as _call,
    cast as _cast, const as _const,
)


class ScriptOnlyError(RuntimeError):
    """A script-only construct (``wb.block``, ``wb.reads``, ...) was run as ordinary Python."""


def _script_only(name: str):
    def fn(*args, **kwargs):
        raise ScriptOnlyError(
            f"wb.{name} only has a meaning inside a @wb.prim_func function (the parser reads it from the "
            f"source; it is not run). Put it in a function decorated with @wb.prim_func, or pass the text "
            f"to wb.parse(...).")

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"Script-form construct ``wb.{name}``; only meaningful inside ``@wb.prim_func``."
    return fn


class _DType:
    """``wb.float32``: ``wb.float32()`` a fresh variable, ``wb.float32(0.5)`` a constant,
    ``wb.float32("inf")`` infinity, ``wb.float32(x)`` a cast; bare, a parameter annotation."""

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.__name__ = dtype
        self.__doc__ = (f"The dtype {dtype}: ``wb.{dtype}()`` is a fresh {dtype} variable, "
                        f"``wb.{dtype}(v)`` a constant (or a cast of an expression).")

    def __call__(self, value: Any = None, name: str = "v"):
        if value is None:
            return _Var(name, self.dtype)
        if isinstance(value, str):
            return _const(float(value), self.dtype)
        if isinstance(value, PrimExpr):
            return _cast(value, self.dtype)
        return _const(value, self.dtype)

    def __repr__(self) -> str:
        return f"wb.{self.dtype}"


class _Handle:
    """``wb.handle``: the annotation of a parameter declared by ``wb.match_buffer`` in the body."""

    dtype = "handle"

    def __call__(self, name: str = "handle"):
        return _Var(name, "handle")

    def __repr__(self) -> str:
        return "wb.handle"


handle = _Handle()
_dtypes = {d: _DType(d) for d in SCALAR_DTYPES}
int8, int16, int32, int64 = (_dtypes[d] for d in ("int8", "int16", "int32", "int64"))
uint8, uint16, uint32, uint64 = (_dtypes[d] for d in ("uint8", "uint16", "uint32", "uint64"))
float16, bfloat16, float32, float64 = (_dtypes[d] for d in ("float16", "bfloat16", "float32", "float64"))
bool = _dtypes["bool"]  # noqa: A001 - the script form spells the dtype wb.bool


def Buffer(shape, dtype: str = "float32", name: str = "buffer", *, strides=(), elem_offset=None,
           scope: str = "global", offset_factor: int = 0, align: int = 0) -> _Buffer:
    """A buffer parameter's annotation: ``wb.Buffer((128, 128), "float32")``.

    Symbolic dimensions are strings (``wb.Buffer(("n", 16), "float32")``) because the
    size variable is declared inside the body (``n = wb.int32()``).

    >>> import workbench as wb
    >>> wb.Buffer(("n", 16), "float32").shape[0].name
    'n'
    """
    if isinstance(shape, (int, str, PrimExpr)):
        shape = (shape,)
    names: dict[str, _Var] = {}
    dims = []
    for d in shape:
        if isinstance(d, str):
            dims.append(_dim_from_text(d, names))
        else:
            dims.append(d)
    return _Buffer(name, tuple(dims), normalize_dtype(dtype), tuple(strides), elem_offset, scope,
                   offset_factor, align)


def _dim_from_text(text: str, names: dict) -> PrimExpr:
    tree = ast.parse(text.strip(), mode="eval").body

    def ev(n):
        if isinstance(n, ast.Name):
            return names.setdefault(n.id, _Var(n.id))
        if isinstance(n, ast.Constant) and isinstance(n.value, int):
            return n.value
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            ops = {ast.Add: _e.add, ast.Sub: _e.sub, ast.Mult: _e.mul, ast.FloorDiv: _e.floordiv,
                   ast.Mod: _e.floormod}
            if type(n.op) in ops:
                return ops[type(n.op)](a, b)
        raise ValueError(f"cannot read the dimension {text!r}; use a name such as \"n\" or an expression of names")

    return _e.convert(ev(tree))


# values ---------------------------------------------------------------------


def max(a, b) -> PrimExpr:  # noqa: A001
    """``wb.max(a, b)``: the larger of two expressions."""
    return _e.max_(a, b)


def min(a, b) -> PrimExpr:  # noqa: A001
    """``wb.min(a, b)``: the smaller of two expressions."""
    return _e.min_(a, b)


def cast(value, dtype: str) -> PrimExpr:
    """``wb.cast(x, "float16")``: convert ``x`` to ``dtype``."""
    return _cast(value, dtype)


def Select(condition, true_value, false_value) -> PrimExpr:  # noqa: N802 - TVM's name
    """``wb.Select(c, a, b)``: ``a`` where ``c`` holds else ``b``; both sides are evaluated."""
    return _e.Select(condition, true_value, false_value)


def if_then_else(condition, true_value, false_value) -> PrimExpr:
    """``wb.if_then_else(c, a, b)``: only the chosen side is evaluated (guards out-of-bounds loads)."""
    return _e.if_then_else(condition, true_value, false_value)


def ramp(base, stride, lanes: int) -> PrimExpr:
    """``wb.ramp(base, stride, lanes)``: the vector ``base, base + stride, ...``."""
    return _Ramp(base, stride, lanes)


def broadcast(value, lanes: int) -> PrimExpr:
    """``wb.broadcast(v, lanes)``: ``v`` in every lane."""
    return _Broadcast(value, lanes)


truncmod = _e.truncmod
truncdiv = _e.truncdiv
floordiv = _e.floordiv
floormod = _e.floormod


def call_extern(dtype: str, name: str, *args) -> PrimExpr:
    """``wb.call_extern("float32", "expf", x)``: a call to an external C function."""
    return _e.call_extern(dtype, name, *args)


def call_intrin(dtype: str, op: str, *args) -> PrimExpr:
    """``wb.call_intrin("float32", "llvm.fma", a, b, c)``: a target intrinsic with a given result dtype."""
    return _e.Call(op, tuple(_e.convert(a) for a in args), dtype)


def Let(binding, body):  # noqa: N802
    """``wb.Let(x := value, body)``: a let-expression; only meaningful inside a script."""
    return _script_only("Let")()


def _intrinsic(op: str):
    def fn(*args) -> PrimExpr:
        return _call(op, *args)

    fn.__name__ = op
    fn.__qualname__ = op
    fn.__doc__ = f"``wb.{op}(...)``: the intrinsic {op}."
    return fn


_INTRINSIC_NAMES = [op for op in INTRINSICS if op != "if_then_else"]
for _op in _INTRINSIC_NAMES:
    globals()[_op] = _intrinsic(_op)


# loops: markers (the parser reads them; iterating them outside a script is an error) ------------


class LoopMarker:
    """What ``wb.grid(...)`` and friends return outside a script; iterating it explains the mistake."""

    def __init__(self, kind: str, args: tuple, kwargs: dict):
        self.kind, self.args, self.kwargs = kind, args, kwargs

    def __iter__(self):
        raise ScriptOnlyError(
            f"wb.{self.kind}(...) loops only run inside a @wb.prim_func function (they become IR loops); "
            f"in plain Python use range(...).")

    def __repr__(self) -> str:
        inner = ", ".join([repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()])
        return f"wb.{self.kind}({inner})"


def _loop(kind: str):
    def fn(*args, **kwargs) -> LoopMarker:
        return LoopMarker(kind, args, kwargs)

    fn.__name__ = kind
    fn.__doc__ = f"``for i in wb.{kind}(...)``: a loop in the script form."
    return fn


grid = _loop("grid")
serial = _loop("serial")
parallel = _loop("parallel")
vectorized = _loop("vectorized")
unroll = _loop("unroll")
thread_binding = _loop("thread_binding")


class _Axis:
    """``wb.axis.spatial / reduce / opaque / remap``: block iteration variables (script only)."""

    spatial = staticmethod(_script_only("axis.spatial"))
    reduce = staticmethod(_script_only("axis.reduce"))
    opaque = staticmethod(_script_only("axis.opaque"))
    remap = staticmethod(_script_only("axis.remap"))

    def __repr__(self) -> str:
        return "wb.axis"


axis = _Axis()

block = _script_only("block")
init = _script_only("init")
where = _script_only("where")
reads = _script_only("reads")
writes = _script_only("writes")
block_attr = _script_only("block_attr")
func_attr = _script_only("func_attr")
alloc_buffer = _script_only("alloc_buffer")
match_buffer = _script_only("match_buffer")
let = _script_only("let")
evaluate = _script_only("evaluate")
allocate = _script_only("allocate")
assert_ = _script_only("assert_")


def prim_func(fn=None, *, private: bool = False):
    """``@wb.prim_func``: parse the decorated function into a ``PrimFunc`` (see ``workbench.ir.parser``)."""
    from .parser import prim_func as _pf

    return _pf(fn, private=private)


def ir_module(cls):
    """``@wb.ir_module``: a class whose ``@wb.prim_func`` methods become an ``IRModule``."""
    from .parser import ir_module as _im

    return _im(cls)


def function(fn=None, *, private: bool = False):
    """``@wb.function``: a graph function (see ``workbench.ir.graph.parser``); inside a ``@wb.ir_module``
    class it is parsed when the module is made, so ``Module.<name>`` refers to its siblings."""
    from .graph.parser import function as _f

    return _f(fn, private=private)


# graph functions: types and values work as plain Python too (workbench.ir.graph.script)
def Tensor(shape=None, dtype: str = "float32"):  # noqa: N802 - the script spelling
    """``wb.Tensor(("n", 784), "float32")``: a graph tensor type; string dimensions are size variables."""
    from .graph.script import Tensor as _t

    return _t(shape, dtype)


def Tuple(*fields):  # noqa: N802 - the script spelling
    """``wb.Tuple(wb.Tensor(...), ...)``: a graph tuple type."""
    from .graph.script import Tuple as _t

    return _t(*fields)


def call_tir(func, args, out):
    """``wb.call_tir(Module.f, (x, w), out=wb.Tensor(...))``: a tensor program called in destination-passing style."""
    from .graph.script import call_tir as _c

    return _c(func, args, out)


def call_dps_library(name: str, args, out):
    """``wb.call_dps_library("numpy.matmul", (a, b), out=wb.Tensor(...))``: an external routine, destination-passing."""
    from .graph.script import call_dps_library as _c

    return _c(name, args, out)


def const(value, dtype: str | None = None):
    """``wb.const([1.0, 2.0], "float32")``: a graph constant."""
    from .graph.script import const as _c

    return _c(value, dtype)


def meta(key: str, shape=None, dtype: str | None = None):
    """``wb.meta(key, shape, dtype)``: a large graph constant printed by reference."""
    from .graph.script import meta as _m

    return _m(key, shape, dtype)


class _LazyOp:
    """``wb.op.<name>(*args, **attrs)``: a call of a registered graph op."""

    def __getattr__(self, name: str):
        from .graph.script import op as _op

        return getattr(_op, name)

    def __dir__(self):
        from .graph.script import op as _op

        return dir(_op)

    def __repr__(self) -> str:
        return "wb.op"


op = _LazyOp()


def _graph_only(name: str, builder: str):
    def fn(*args, **kwargs):
        raise ScriptOnlyError(f"wb.{name} only has a meaning inside a @wb.function graph function (the parser "
                              f"reads it from the source); when building in Python use {builder}")

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Script-form construct ``wb.{name}``; only meaningful inside ``@wb.function``."
    return fn


dataflow = _graph_only("dataflow", "`with bb.dataflow():` of a wb.BlockBuilder")
output = _graph_only("output", "bb.emit_output(value) of a wb.BlockBuilder")
match_cast = _graph_only("match_cast", "bb.match_cast(value, type) of a wb.BlockBuilder")


def parse(text: str, globals: dict | None = None):  # noqa: A002
    """``wb.parse(text)``: read script-form text back into a ``PrimFunc`` or ``IRModule``."""
    from .parser import parse as _p

    return _p(text, globals)


__all__ = [
    "Buffer", "handle", *SCALAR_DTYPES, "max", "min", "cast", "Select", "if_then_else", "ramp", "broadcast",
    "truncmod", "truncdiv", "floordiv", "floormod", "call_extern", "call_intrin", "Let", *_INTRINSIC_NAMES,
    "grid", "serial", "parallel", "vectorized", "unroll", "thread_binding", "axis", "block", "init", "where",
    "reads", "writes", "block_attr", "func_attr", "alloc_buffer", "match_buffer", "let", "evaluate",
    "allocate", "assert_", "prim_func", "ir_module", "parse", "LoopMarker", "ScriptOnlyError",
    "function", "Tensor", "Tuple", "call_tir", "call_dps_library", "const", "meta", "op", "dataflow", "output",
    "match_cast",
]


class _CallableModule(types.ModuleType):
    """``workbench.ir.script`` is also the printer's ``script(node)``.

    ``workbench.ir`` exposes ``script`` (the printer) lazily; importing this module
    would otherwise replace that attribute with the module. Calling the module
    prints, so ``workbench.ir.script(node)`` keeps working either way.
    """

    def __call__(self, node) -> str:
        from .printer import script as _script

        return _script(node)


sys.modules[__name__].__class__ = _CallableModule
