"""Reductions in compute descriptions: ``reduce_axis``, ``sum``, ``max``, ``min``, ``comm_reducer``.

    >>> from workbench import te
    >>> A = te.placeholder((4, 8), name="A")
    >>> k = te.reduce_axis(8, name="k")
    >>> M = te.compute((4,), lambda i: te.max(A[i, k], axis=k), name="M")
    >>> M.op.body[0].combiner.name
    'max'

As in TVM, a reducer called with ``axis=`` a reduce axis (or a list of them) reduces;
called with two plain values it combines them elementwise: ``te.max(x, y)`` is the
larger of ``x`` and ``y`` and ``te.sum(x, y)`` is ``x + y``. (``te.max_value(dtype)``
is the largest value of a dtype, not a reduction.)
"""
from __future__ import annotations

from typing import Any, Callable

from ..dtype import max_value as _max_value
from ..dtype import min_value as _min_value
from ..expr import IntImm, PrimExpr, Range, const, convert, max_, min_
from ..functor import Visitor
from ..node import node, set_field
from .tensor import AxisVar, TEError, Tensor, normalize_shape


def reduce_axis(dom, name: str = "rv") -> AxisVar:
    """A reduction axis over ``range(dom)`` or ``range(lo, hi)`` for ``dom=(lo, hi)``.

    >>> from workbench import te
    >>> k = te.reduce_axis(1024, name="k")
    >>> r = te.reduce_axis((2, 10), name="r")
    >>> int(r.dom.min), int(r.dom.extent)
    (2, 8)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"reduce_axis: the name must be a Python identifier, got {name!r}")
    if isinstance(dom, Range):
        lo, extent = dom.min, dom.extent
    elif isinstance(dom, (tuple, list)):
        if len(dom) != 2:
            raise ValueError(f"reduce_axis {name}: give an extent (te.reduce_axis(16)) or a pair (lo, hi), "
                             f"got {dom!r}")
        lo_e, hi_e = normalize_shape(tuple(dom), f"reduce_axis {name}")
        lo, extent = lo_e, hi_e - lo_e
    else:
        (extent,) = normalize_shape((dom,), f"reduce_axis {name}")
        lo = IntImm(0, extent.dtype)
    if isinstance(extent, IntImm) and extent.value <= 0:
        raise ValueError(f"reduce_axis {name}: the range is empty (extent {extent.value})")
    dtype = extent.dtype
    if lo.dtype != dtype:
        lo = convert(lo, dtype) if isinstance(lo, IntImm) else lo
    return AxisVar(name, dtype, Range(lo, extent), "reduce")


class CommReducer:
    """A commutative reducer: ``combine(acc, x)`` and the ``identity`` for a dtype."""

    def __init__(self, fcombine: Callable[[PrimExpr, PrimExpr], PrimExpr],
                 fidentity: Callable[[str], Any], name: str = "reduce"):
        self.fcombine = fcombine
        self.fidentity = fidentity
        self.name = name

    def identity(self, dtype: str) -> PrimExpr:
        v = self.fidentity(dtype)
        return v if isinstance(v, PrimExpr) else const(v, dtype)

    def combine(self, acc: PrimExpr, x: PrimExpr) -> PrimExpr:
        return convert(self.fcombine(acc, x))

    def __call__(self, expr, axis=None, where=None, init=None, *args) -> PrimExpr:
        if _is_axis_arg(axis):
            if args:
                raise TypeError(f"te.{self.name}: extra positional arguments after axis=")
            return _make_reduce(self, expr, axis, where, init)
        if axis is None:
            raise TypeError(f"te.{self.name} needs axis= (a reduce axis from te.reduce_axis, or a list of them) "
                            f"to reduce, or a second value to combine elementwise: te.{self.name}(x, y)")
        if where is not None:  # te.max(a, b, c): the third value arrives as `where`
            args = (where,) + args
        if init is not None:
            raise TypeError(f"te.{self.name}(x, y): init= only applies to reductions")
        out = convert(expr)
        for v in (axis,) + tuple(args):
            if isinstance(v, Tensor) or isinstance(out, Tensor):
                raise TypeError(f"te.{self.name}: got a tensor; pass elements such as A[i, j]")
            out = self.combine(out, v)
        return out

    def __repr__(self) -> str:
        return f"CommReducer({self.name})"


def _is_axis_arg(axis) -> bool:
    if isinstance(axis, AxisVar):
        return True
    if isinstance(axis, (list, tuple)) and axis and all(isinstance(a, AxisVar) for a in axis):
        return True
    return False


@node
class Reduce(PrimExpr):
    """A reduction of ``source`` over ``axis`` where ``condition`` holds, starting at ``init``
    (the reducer's identity when None). Lives only inside compute descriptions; ``create_prim_func``
    turns it into a block with an ``init`` statement."""

    combiner: Any
    source: PrimExpr
    axis: tuple
    condition: PrimExpr
    init: PrimExpr | None = None
    dtype: str = None  # type: ignore[assignment]

    def __post_init__(self):
        set_field(self, "dtype", self.source.dtype)

    def script(self) -> str:
        axes = ", ".join(a.name for a in self.axis)
        extra = ""
        if not (isinstance(self.condition, IntImm) and self.condition.value == 1):
            extra += f", where={self.condition}"
        if self.init is not None:
            extra += f", init={self.init}"
        return f"te.{self.combiner.name}({self.source}, axis=[{axes}]{extra})"


def uses_var(expr, v) -> bool:
    """True when ``expr`` mentions the variable ``v`` (index variables included)."""
    found = False

    class V(Visitor):
        def visit_Var(self, x):
            nonlocal found
            found = found or x is v

        visit_AxisVar = visit_Var

    V().visit(expr)
    return found


def _make_reduce(combiner: CommReducer, expr, axis, where, init) -> Reduce:
    axes = (axis,) if isinstance(axis, AxisVar) else tuple(axis)
    what = f"te.{combiner.name}"
    for a in axes:
        if a.kind != "reduce":
            raise TEError(f"{what}: axis {a.name} is an index of the compute, not a reduce axis; "
                          f"make one with te.reduce_axis(extent, name=...)")
    if len({id(a) for a in axes}) != len(axes):
        raise TEError(f"{what}: the same reduce axis is listed twice in axis=")
    if isinstance(expr, Tensor):
        raise TypeError(f"{what}: got the tensor \"{expr.name}\"; reduce an element such as {expr.name}[i, k]")
    source = convert(expr)
    cond = convert(True if where is None else where, "bool")
    if cond.dtype != "bool":
        raise TEError(f"{what}: where= must be a bool condition, got `{cond}` ({cond.dtype})")
    for a in axes:
        if not uses_var(source, a) and not uses_var(cond, a):
            raise TEError(f"{what}: the reduce axis {a.name} is not used in the reduced expression `{source}`; "
                          f"index with it (e.g. A[i, {a.name}]) or drop it from axis=")
    init_e = None
    if init is not None:
        if isinstance(init, Tensor):
            raise TypeError(f"{what}: init= got the tensor \"{init.name}\"; pass an element such as "
                            f"{init.name}[i, j] or a number")
        init_e = convert(init, source.dtype)
        if init_e.dtype != source.dtype:
            raise TEError(f"{what}: init= has dtype {init_e.dtype} but the reduced values are {source.dtype}")
        for a in axes:
            if uses_var(init_e, a):
                raise TEError(f"{what}: init= uses the reduce axis {a.name}; the initial value may only depend "
                              f"on the output index")
    return Reduce(combiner, source, axes, cond, init_e)


def comm_reducer(fcombine: Callable[[PrimExpr, PrimExpr], PrimExpr], fidentity: Callable[[str], Any],
                 name: str = "reduce") -> CommReducer:
    """Make a reducer from a combining function and an identity (a function of the dtype).

    >>> from workbench import te
    >>> prod = te.comm_reducer(lambda x, y: x * y, lambda dtype: 1, name="prod")
    >>> A = te.placeholder((3, 4), name="A")
    >>> k = te.reduce_axis(4, name="k")
    >>> P = te.compute((3,), lambda i: prod(A[i, k], axis=k), name="P")
    """
    return CommReducer(fcombine, fidentity, name)


sum = comm_reducer(lambda x, y: x + y, lambda dtype: 0, name="sum")  # noqa: A001
max = comm_reducer(lambda x, y: max_(x, y), _min_value, name="max")  # noqa: A001
min = comm_reducer(lambda x, y: min_(x, y), _max_value, name="min")  # noqa: A001

sum.__doc__ = "Sum over axis= (te.sum(A[i, k], axis=k)), or x + y for te.sum(x, y)."

__all__ = ["reduce_axis", "Reduce", "CommReducer", "comm_reducer", "sum", "max", "min"]
