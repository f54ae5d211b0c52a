"""Types of graph-level values: tensors with a dtype and a (possibly symbolic) shape, and tuples.

A dimension is a loop-level integer expression (``workbench.ir.expr.PrimExpr``): an
``IntImm`` for a known size, a size ``Var`` (``wb.var("n")``) for a symbolic one, or an
expression of them (``n * 4``). One ``Var`` per name across a function, so shape
arithmetic stays exact through ``workbench.ir.arith``.

>>> import workbench as wb
>>> n = wb.var("n")
>>> t = TensorType((n, 4), "float32")
>>> t, t.ndim
(Tensor((n, 4), "float32"), 2)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..expr import IntImm, PrimExpr, Var, convert
from ..node import Node


class GraphTypeError(ValueError):
    """A graph-level value of the wrong type: an op's shape or dtype check, a bad match_cast."""


def _dim(d) -> PrimExpr:
    if isinstance(d, bool):
        raise GraphTypeError(f"a tensor dimension must be an int or an integer expression, got {d!r}")
    if isinstance(d, int):
        if d < 0:
            raise GraphTypeError(f"a tensor dimension cannot be negative, got {d}")
        return IntImm(d, "int32")
    if isinstance(d, str):
        raise GraphTypeError(f"a symbolic dimension must be a size variable (wb.var({d!r})), not the string {d!r}")
    if isinstance(d, PrimExpr):
        if not d.dtype.startswith("int"):
            raise GraphTypeError(f"a tensor dimension must be an integer expression, got {d} of type {d.dtype}")
        return d
    raise GraphTypeError(f"a tensor dimension must be an int or an integer expression, got {type(d).__name__}")


@dataclass(frozen=True, eq=False)
class GraphType(Node):
    """Base of the types of graph-level values (IR nodes: structural equality maps their size variables)."""


@dataclass(frozen=True, eq=False)
class TensorType(GraphType):
    """A tensor: ``dtype`` and ``shape`` (a tuple of integer expressions; ``None`` when the rank is unknown)."""

    shape: tuple | None
    dtype: str
    _fields = ("shape", "dtype")

    def __post_init__(self):
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(_dim(d) for d in self.shape))

    @property
    def ndim(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def __repr__(self) -> str:
        if self.shape is None:
            return f'Tensor(None, "{self.dtype}")'
        dims = ", ".join(str(d) for d in self.shape)
        return f'Tensor(({dims}{"," if len(self.shape) == 1 else ""}), "{self.dtype}")'


@dataclass(frozen=True, eq=False)
class TupleType(GraphType):
    """A tuple of values (an op with several results, a function returning several tensors)."""

    fields: tuple
    _fields = ("fields",)

    def __post_init__(self):
        object.__setattr__(self, "fields", tuple(self.fields))
        for f in self.fields:
            if not isinstance(f, GraphType):
                raise GraphTypeError(f"a tuple type holds types, got {type(f).__name__}")

    def __repr__(self) -> str:
        return f"Tuple({', '.join(repr(f) for f in self.fields)})"


def tensor_type(shape: Sequence, dtype: str) -> TensorType:
    """``TensorType`` from a shape whose entries are ints or size variables."""
    return TensorType(tuple(shape), dtype)


def shape_vars(t: GraphType) -> list[Var]:
    """The size variables in a type's shapes, in order of first appearance."""
    from ..functor import collect_vars

    out: list[Var] = []
    seen: set[int] = set()
    if isinstance(t, TupleType):
        for f in t.fields:
            for v in shape_vars(f):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out
    if isinstance(t, TensorType) and t.shape is not None:
        for d in t.shape:
            for v in collect_vars(convert(d)):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
    return out


__all__ = ["GraphType", "TensorType", "TupleType", "GraphTypeError", "tensor_type", "shape_vars"]
