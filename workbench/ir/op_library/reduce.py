"""Reductions over axes in te: ``sum``, ``max``, ``min``, ``mean`` (numpy's ``axis`` / ``keepdims``).

    >>> from workbench import te
    >>> from workbench.ir.op_library import reduce
    >>> x = te.placeholder((2, 3, 4), name="x")
    >>> reduce.sum(x, axis=1).shape, reduce.max(x, axis=(0, 2), keepdims=True).shape
    ((2, 4), (1, 3, 1))
"""
from __future__ import annotations

from .. import te
from ..expr import IntImm
from ..te import Tensor
from ._util import OpShapeError, norm_axis


def _axes(op: str, x: Tensor, axis) -> list[int]:
    if axis is None:
        return list(range(x.ndim))
    axes = [axis] if isinstance(axis, int) else list(axis)
    out = sorted({norm_axis(op, a, x.ndim) for a in axes})
    if len(out) != len(axes):
        raise OpShapeError(f"{op}: axis {axis} lists an axis twice")
    return out


def _reduce(op: str, reducer, x: Tensor, axis, keepdims: bool, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a te tensor, got {type(x).__name__}")
    axes = _axes(op, x, axis)
    raxes = [te.reduce_axis(x.shape[a], name=f"k{a}") for a in axes]
    if keepdims:
        shape = tuple(IntImm(1, d.dtype) if k in axes else d for k, d in enumerate(x.shape))
    else:
        shape = tuple(d for k, d in enumerate(x.shape) if k not in axes)

    def f(*idx):
        it, r, full = iter(idx), iter(raxes), []
        for k in range(x.ndim):
            if k in axes:
                full.append(next(r))
                if keepdims:
                    next(it)
            else:
                full.append(next(it))
        return reducer(x[tuple(full)], axis=raxes)

    return te.compute(shape, f, name=name)


def sum(x: Tensor, axis=None, keepdims: bool = False, name: str = "sum") -> Tensor:  # noqa: A001
    """Sum over ``axis`` (an int, a tuple, or None for all).

    >>> from workbench import te
    >>> sum(te.placeholder((2, 3), name="x"), axis=1, keepdims=True).shape
    (2, 1)
    """
    return _reduce("sum", te.sum, x, axis, keepdims, name)


def max(x: Tensor, axis=None, keepdims: bool = False, name: str = "max") -> Tensor:  # noqa: A001
    """Maximum over ``axis``.

    >>> from workbench import te
    >>> max(te.placeholder((2, 3), name="x"), axis=0).shape
    (3,)
    """
    return _reduce("max", te.max, x, axis, keepdims, name)


def min(x: Tensor, axis=None, keepdims: bool = False, name: str = "min") -> Tensor:  # noqa: A001
    """Minimum over ``axis``."""
    return _reduce("min", te.min, x, axis, keepdims, name)


def mean(x: Tensor, axis=None, keepdims: bool = False, name: str = "mean") -> Tensor:
    """Mean over ``axis`` (a sum stage ``{name}_sum`` then a divide)."""
    axes = _axes("mean", x, axis)
    s = sum(x, axis, keepdims, name=f"{name}_sum")
    count = 1
    for a in axes:
        d = x.shape[a]
        count = count * d
    denom = te.cast(count, x.dtype) if not isinstance(count, int) else te.const(count, x.dtype)
    if isinstance(count, IntImm):
        denom = te.const(float(count.value), x.dtype)
    return te.compute(s.shape, lambda *i: s[i] / denom, name=name)


__all__ = ["sum", "max", "min", "mean"]
