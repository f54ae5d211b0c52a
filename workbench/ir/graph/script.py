"""The graph-function vocabulary of the script form (``wb.Tensor``, ``wb.op.<name>``, ``wb.call_tir``, ...).

These also work as plain Python, which is how :class:`~workbench.ir.graph.block_builder.BlockBuilder`
users build values:

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> y = wb.op.demo.negative(x)
>>> y.type, y.op.name
(Tensor((n, 4), "float32"), 'demo.negative')
>>> wb.Tensor(("n",), "float32").shape[0] is x.type.shape[0]     # "n" is one size variable
True
"""
from __future__ import annotations

import ast
import weakref
from typing import Any

import numpy as np

from .. import expr as _e
from ..expr import PrimExpr, Var as _SizeVar
from .expr import Call, Constant, ExternFunc, GlobalVar, Op, as_expr
from .types import GraphTypeError, TensorType, TupleType

#: size variables of ``wb.Tensor`` string dimensions, one per name (see :func:`size_var`)
_SIZE_VARS: dict[str, _SizeVar] = {}


def size_var(name: str) -> _SizeVar:
    """The size variable ``name`` shared by every ``wb.Tensor`` that spells a dimension ``"name"``.

    Graph functions are closed over their size variables, so sharing one object between
    functions is harmless (structural equality and the parser scope them per function).

    >>> size_var("batch") is size_var("batch")
    True
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise GraphTypeError(f"a size variable's name must be an identifier, got {name!r}")
    v = _SIZE_VARS.get(name)
    if v is None:
        v = _SIZE_VARS[name] = _SizeVar(name, "int32")
    return v


def _dim_of_text(text: str) -> PrimExpr:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise GraphTypeError(f"cannot read the dimension {text!r}; expected a name such as \"n\" or an "
                             f"expression such as \"n * 4\"") from None
    ops = {ast.Add: _e.add, ast.Sub: _e.sub, ast.Mult: _e.mul, ast.FloorDiv: _e.floordiv, ast.Mod: _e.floormod}

    def ev(n):
        if isinstance(n, ast.Name):
            return size_var(n.id)
        if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in ops:
            return ops[type(n.op)](ev(n.left), ev(n.right))
        raise GraphTypeError(f"cannot read the dimension {text!r}; use names, integers and + - * // %")

    return _e.convert(ev(tree))


def Tensor(shape=None, dtype: str = "float32") -> TensorType:  # noqa: N802 - the script spelling
    """``wb.Tensor(("n", 784), "float32")``: a tensor type; string dimensions are size variables.

    ``shape=None`` is a tensor of unknown rank.

    >>> import workbench as wb
    >>> wb.Tensor(("n", "n * 4", 2), "float16")
    Tensor((n, n * 4, 2), "float16")
    """
    from ..dtype import normalize_dtype

    if shape is None:
        return TensorType(None, normalize_dtype(dtype))
    if isinstance(shape, (int, str, PrimExpr)):
        shape = (shape,)
    dims = tuple(_dim_of_text(d) if isinstance(d, str) else d for d in shape)
    return TensorType(dims, normalize_dtype(dtype))


def Tuple(*fields) -> TupleType:  # noqa: N802 - the script spelling
    """``wb.Tuple(wb.Tensor(...), wb.Tensor(...))``: a tuple type.

    >>> import workbench as wb
    >>> wb.Tuple(wb.Tensor((2,), "float32"), wb.Tensor((), "int32"))
    Tuple(Tensor((2,), "float32"), Tensor((), "int32"))
    """
    return TupleType(tuple(fields))


def _target(f, what: str) -> GlobalVar:
    if isinstance(f, GlobalVar):
        return f
    if isinstance(f, str):
        return GlobalVar(f)
    name = getattr(f, "name", None)
    if isinstance(name, str):
        return GlobalVar(name)
    raise GraphTypeError(f"{what} takes the tensor program to call (a GlobalVar or its name), got {type(f).__name__}")


def call_tir(func, args, out) -> Call:
    """``wb.call_tir(Module.fused, (x, w), out=wb.Tensor(...))``: call a tensor program of the module in
    destination-passing style; ``out`` is the output type (``wb.Tuple(...)`` for several outputs).

    >>> import workbench as wb
    >>> x = wb.graph.Var("x", wb.Tensor((4,), "float32"))
    >>> wb.call_tir("add_one", (x,), out=wb.Tensor((4,), "float32")).op
    Module.add_one
    """
    return Call(_target(func, "wb.call_tir"), _args(args), None, out)


def call_dps_library(name: str, args, out) -> Call:
    """``wb.call_dps_library("numpy.matmul", (a, b), out=wb.Tensor(...))``: call a named external routine
    that writes its result into a preallocated output.

    >>> import workbench as wb
    >>> a = wb.graph.Var("a", wb.Tensor((2, 3), "float32"))
    >>> wb.call_dps_library("numpy.matmul", (a, a), out=wb.Tensor((2, 2), "float32")).op.name
    'numpy.matmul'
    """
    if not isinstance(name, str):
        raise GraphTypeError(f"wb.call_dps_library takes the routine's name as a string, got {type(name).__name__}")
    return Call(ExternFunc(name), _args(args), None, out)


def _args(args) -> tuple:
    if not isinstance(args, (tuple, list)):
        args = (args,)
    return tuple(args)


#: constants printed by reference (``wb.meta(key, ...)``), by content hash; they live while their node does
_META: "weakref.WeakValueDictionary[str, Constant]" = weakref.WeakValueDictionary()

#: constants with at most this many elements print inline (``wb.const([...], dtype)``)
INLINE_CONSTANT_LIMIT = 32


def register_constant(c: Constant) -> str:
    """Make ``c`` findable by ``wb.meta(c.key, ...)`` (the printer does this for large constants)."""
    _META[c.key] = c
    return c.key


def const(value, dtype: str | None = None) -> Constant:
    """``wb.const([[1.0, 2.0]], "float32")``: a constant tensor (numpy arrays and nested lists).

    >>> import workbench as wb
    >>> wb.const([1, 2, 3], "int64").type
    Tensor((3,), "int64")
    """
    arr = np.asarray(value, dtype=None if dtype is None else np.dtype(dtype))
    return Constant(arr)


def meta(key: str, shape=None, dtype: str | None = None) -> Constant:
    """``wb.meta("5f1c...", (784, 128), "float32")``: a large constant printed by reference.

    The key is the constant's content hash; the constant is found while a program holding
    it is alive in this process. ``shape`` and ``dtype`` (for the reader) are checked.
    """
    c = _META.get(key)
    if c is None:
        raise GraphTypeError(f"there is no constant {key!r} in this process: large constants print by reference "
                             f"(wb.meta) and parse back only while the program that holds them is alive")
    if shape is not None and tuple(shape) != tuple(c.data.shape):
        raise GraphTypeError(f"constant {key!r} has shape {tuple(c.data.shape)}, the script says {tuple(shape)}")
    if dtype is not None and np.dtype(dtype) != c.data.dtype:
        raise GraphTypeError(f"constant {key!r} has dtype {c.data.dtype}, the script says {dtype}")
    return c


class _OpNamespace:
    """``wb.op.<name>(*args, **attrs)``: a call of the registered graph op ``<name>`` (dots allowed:
    ``wb.op.demo.negative``)."""

    def __init__(self, prefix: str = ""):
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _OpNamespace(f"{self._prefix}.{name}" if self._prefix else name)

    def __call__(self, *args, **attrs) -> Call:
        if not self._prefix:
            raise GraphTypeError("wb.op is the namespace of graph ops: call wb.op.<name>(...)")
        return Call(Op(self._prefix), tuple(as_expr(a, f"argument {k} of wb.op.{self._prefix}")
                                            for k, a in enumerate(args)), attrs)

    def __dir__(self):
        from .op import list_ops

        names = list_ops()
        if self._prefix:
            p = self._prefix + "."
            return sorted({n[len(p):].split(".")[0] for n in names if n.startswith(p)})
        return sorted({n.split(".")[0] for n in names})

    def __repr__(self) -> str:
        return f"wb.op.{self._prefix}" if self._prefix else "wb.op"


op = _OpNamespace()

__all__ = ["Tensor", "Tuple", "size_var", "call_tir", "call_dps_library", "const", "meta", "op",
           "register_constant", "INLINE_CONSTANT_LIMIT"]
