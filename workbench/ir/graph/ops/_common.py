"""Helpers shared by the op families: argument checks, symbolic dimension logic, error text.

Dimensions are loop-level integer expressions (``IntImm``, size ``Var`` s, expressions of them).
Two dimensions are *equal* when :class:`~workbench.ir.arith.Analyzer` proves it; a dimension
*is one* when it is provably 1. Everything else is refused with a :class:`GraphTypeError`
whose message starts with the op name, then names the argument and its shape.

>>> import workbench as wb
>>> n = wb.var("n")
>>> broadcast_shape("add", [("x", TensorType((n, 1), "float32")), ("y", TensorType((4,), "float32"))])
(n, 4)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...arith import Analyzer
from ...dtype import DTypeError, is_bool, is_float, is_integer, normalize_dtype
from ...expr import IntImm, PrimExpr, convert
from ..types import GraphTypeError, TensorType, TupleType


def shape_str(shape) -> str:
    """``(n, 784)``: a shape as the messages show it."""
    if shape is None:
        return "(unknown rank)"
    parts = [str(d.value) if isinstance(d, IntImm) else str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def dim_str(d) -> str:
    return str(d.value) if isinstance(d, IntImm) else str(d)


def simplify(e) -> PrimExpr:
    """The simplified form of a dimension expression."""
    return Analyzer().simplify(convert(e))


def dims_equal(a, b) -> bool:
    """True when two dimensions are provably equal."""
    return Analyzer().can_prove_equal(convert(a), convert(b))


def dims_differ(a, b) -> bool:
    """True when two dimensions are provably different (e.g. 784 vs 128)."""
    return Analyzer().can_prove(convert(a) != convert(b))


def is_one(d) -> bool:
    return dims_equal(d, 1)


def const_value(d) -> int | None:
    """The value of a dimension that simplifies to a constant, else None."""
    s = simplify(d)
    return s.value if isinstance(s, IntImm) else None


def product(dims) -> PrimExpr:
    total: PrimExpr = IntImm(1, "int32")
    for d in dims:
        total = total * convert(d)
    return simplify(total)


# -- arguments -----------------------------------------------------------------------------------

def check_arity(op: str, args: Sequence, names: Sequence[str], optional: int = 0) -> None:
    """``args`` holds ``len(names) - optional`` to ``len(names)`` values."""
    lo, hi = len(names) - optional, len(names)
    if not lo <= len(args) <= hi:
        want = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise GraphTypeError(f"{op}: expects {want} argument(s) ({', '.join(names)}), got {len(args)}")


def tensor_arg(op: str, t, name: str, ranked: bool = True) -> TensorType:
    """``t`` as a tensor type (with a known rank when ``ranked``), or a clear error."""
    if not isinstance(t, TensorType):
        raise GraphTypeError(f"{op}: the argument {name} must be a tensor, got {t!r}")
    if ranked and t.shape is None:
        raise GraphTypeError(f"{op}: the argument {name} must have a known rank, got {t!r}")
    return t


def require_float(op: str, t: TensorType, name: str) -> None:
    if not is_float(t.dtype):
        raise GraphTypeError(f"{op}: the argument {name} must be a float tensor, got {t.dtype} "
                             f"{shape_str(t.shape)}")


def require_numeric(op: str, t: TensorType, name: str) -> None:
    if is_bool(t.dtype):
        raise GraphTypeError(f"{op}: the argument {name} must be a numeric tensor, got bool {shape_str(t.shape)}")


def require_integer(op: str, t: TensorType, name: str) -> None:
    if not is_integer(t.dtype):
        raise GraphTypeError(f"{op}: the argument {name} must be an integer tensor, got {t.dtype} "
                             f"{shape_str(t.shape)}")


def same_dtype(op: str, named: Sequence[tuple[str, TensorType]]) -> str:
    """The common dtype of the named tensors; an error naming both when two differ."""
    (n0, t0) = named[0]
    for n1, t1 in named[1:]:
        if t1.dtype != t0.dtype:
            raise GraphTypeError(f"{op}: the arguments {n0} {shape_str(t0.shape)} and {n1} {shape_str(t1.shape)} "
                                 f"have different dtypes ({t0.dtype} vs {t1.dtype}); cast one with astype")
    return t0.dtype


def dtype_attr(op: str, value) -> str:
    try:
        return normalize_dtype(value)
    except (DTypeError, TypeError, ValueError):
        raise GraphTypeError(f"{op}: dtype must be a dtype name such as 'float32', got {value!r}") from None


def tensor_list(op: str, args: Sequence) -> list:
    """Operands of a variadic op: ``[(a, b, c)]`` (one tuple) or ``[a, b, c]``."""
    if len(args) == 1 and isinstance(args[0], (TupleType, tuple, list)):
        return list(args[0].fields) if isinstance(args[0], TupleType) else list(args[0])
    return list(args)


# -- axes ----------------------------------------------------------------------------------------

def norm_axis(op: str, axis, ndim: int, what: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise GraphTypeError(f"{op}: {what} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise GraphTypeError(f"{op}: {what} {axis} is out of range for a tensor of {ndim} dimension(s)")
    return int(axis) % ndim


def norm_axes(op: str, axes, ndim: int, what: str = "axis") -> list[int]:
    """Sorted distinct axes from None (all), an int or a list of ints."""
    if axes is None:
        return list(range(ndim))
    items = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
    out = [norm_axis(op, a, ndim, what) for a in items]
    if len(set(out)) != len(out):
        raise GraphTypeError(f"{op}: {what} {axes} names an axis twice")
    return sorted(out)


# -- broadcasting --------------------------------------------------------------------------------

def broadcast_shape(op: str, named: Sequence[tuple[str, TensorType]], parts: Sequence[Sequence] | None = None) -> tuple:
    """The numpy broadcast of the named tensors' shapes (symbolic: equal if provably equal, 1 broadcasts).

    ``parts`` broadcasts those dimension lists instead (e.g. the batch dimensions of a matmul); the
    error message still shows the full shapes."""
    parts = [t.shape for _, t in named] if parts is None else [tuple(p) for p in parts]
    ndim = max(len(p) for p in parts)
    out = []
    for k in range(ndim):
        cur = None  # (name, tensor, dim)
        for (name, t), shape in zip(named, parts):
            off = ndim - len(shape)
            if k < off:
                continue
            d = shape[k - off]
            if cur is None or (is_one(cur[2]) and not is_one(d)):
                cur = (name, t, d)
            elif not is_one(d) and not dims_equal(cur[2], d):
                why = "differ" if dims_differ(cur[2], d) else "are not provably equal"
                raise GraphTypeError(
                    f"{op}: the shapes of {cur[0]} {shape_str(cur[1].shape)} and {name} {shape_str(t.shape)} cannot "
                    f"be broadcast together: dimensions {dim_str(cur[2])} and {dim_str(d)} {why}")
        out.append(cur[2])
    return tuple(out)


def broadcast_index(shape: Sequence, out_ndim: int, idx: Sequence) -> tuple:
    """The index into a tensor of ``shape`` broadcast to an output index ``idx``."""
    off = out_ndim - len(shape)
    return tuple(IntImm(0, "int32") if is_one(d) else idx[off + k] for k, d in enumerate(shape))


def as_type(t) -> TensorType:
    """The tensor type of a te tensor (for legalizations that reuse ``infer``)."""
    return TensorType(tuple(t.shape), t.dtype)


def float_count(n, dtype: str):
    """A dimension (or product of them) as a float constant/expression of ``dtype``."""
    from ... import te

    v = const_value(n)
    return te.const(float(v), dtype) if v is not None else te.cast(simplify(n), dtype)


def _factors(e: PrimExpr) -> tuple[int, list]:
    """``e`` as a constant coefficient times a list of non-constant factors (its ``*`` tree)."""
    from ...expr import Mul

    if isinstance(e, IntImm):
        return e.value, []
    if isinstance(e, Mul):
        ca, fa = _factors(e.a)
        cb, fb = _factors(e.b)
        return ca * cb, fa + fb
    return 1, [e]


def exact_quotient(total, divisor) -> PrimExpr | None:
    """``total / divisor`` when it is provably a whole product (``n * 12 / (n * 3)`` is 4), else None.

    Factors of the two products are cancelled one by one; what cannot be cancelled is left to the
    analyzer, which must prove the remainder zero."""
    from ...structural import structural_equal

    ct, ft = _factors(simplify(total))
    cd, fd = _factors(simplify(divisor))
    rest = list(ft)
    for f in fd:
        hit = next((k for k, g in enumerate(rest) if structural_equal(f, g)), None)
        if hit is None:
            break
        rest.pop(hit)
    else:
        if cd != 0 and ct % cd == 0:
            return product([IntImm(ct // cd, "int32")] + rest)
        return None
    t, d = convert(total), convert(divisor)
    if const_value(d) != 0 and Analyzer().can_prove(t % d == 0):
        return simplify(t // d)
    return None
