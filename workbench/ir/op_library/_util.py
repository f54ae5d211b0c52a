"""Shape checks shared by the operator families (clear errors naming the operator and tensor)."""
from __future__ import annotations

from ..expr import IntImm
from ..te import Tensor


class OpShapeError(ValueError):
    """Operator inputs whose shapes do not fit together."""


def check_ndim(op: str, t: Tensor, ndim: int | tuple) -> None:
    want = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: expected a te tensor, got {type(t).__name__}")
    if t.ndim not in want:
        raise OpShapeError(f'{op}: the tensor "{t.name}" must have {" or ".join(map(str, want))} dimension(s), '
                           f"got shape {dims(t.shape)}")


def same_dim(a, b) -> bool:
    """True when two dimensions are known to be equal (equal constants, or provably equal expressions)."""
    if isinstance(a, int):
        a = IntImm(a)
    if isinstance(b, int):
        b = IntImm(b)
    if a is b:
        return True
    if isinstance(a, IntImm) and isinstance(b, IntImm):
        return a.value == b.value
    from ..arith import Analyzer

    return Analyzer().can_prove_equal(a, b)    # n * 4 built twice is still n * 4


def is_known_unequal(a, b) -> bool:
    return isinstance(a, IntImm) and isinstance(b, IntImm) and a.value != b.value


def check_dims_equal(op: str, a: Tensor, ia: int, b: Tensor, ib: int) -> None:
    da, db = a.shape[ia], b.shape[ib]
    if not same_dim(da, db):
        raise OpShapeError(f'{op}: dimension {ia} of "{a.name}" {dims(a.shape)} must equal dimension {ib} of '
                           f'"{b.name}" {dims(b.shape)} ({da} vs {db})')


def dims(shape) -> str:
    parts = [str(d.value) if isinstance(d, IntImm) else str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def const_int(d, what: str) -> int:
    if isinstance(d, int):
        return d
    if isinstance(d, IntImm):
        return d.value
    raise OpShapeError(f"{what} must be a constant size here, got `{d}`")


def norm_axis(op: str, axis: int, ndim: int) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise OpShapeError(f"{op}: axis {axis} is out of range for a tensor of {ndim} dimension(s)")
    return axis % ndim


def pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {v!r}")
    return (int(v[0]), int(v[1]))
