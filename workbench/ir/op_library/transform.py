"""Data movement in te: ``pad``, ``transpose``, ``reshape``, broadcasting elementwise ops, ``take``,
``concatenate`` and the rotary position embedding.

    >>> from workbench import te
    >>> from workbench.ir.op_library import transform
    >>> A = te.placeholder((2, 3), name="A")
    >>> B = te.placeholder((3,), name="B")
    >>> transform.add(A, B).shape     # numpy broadcasting
    (2, 3)
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from .. import te
from ..expr import IntImm, PrimExpr, convert
from ..te import Tensor
from ._util import OpShapeError, check_ndim, const_int, dims, is_known_unequal, norm_axis, same_dim


def pad(data: Tensor, pad_before: Sequence[int], pad_after: Sequence[int] | None = None, pad_value=0.0,
        name: str = "pad") -> Tensor:
    """Pad every dimension: ``out[i] = data[i - before]`` inside, ``pad_value`` outside.

    The bounds test uses the lazy ``if_then_else``, so no out-of-bounds element is ever loaded.

    >>> from workbench import te
    >>> A = te.placeholder((4, 4), name="A")
    >>> pad(A, (1, 1), (1, 1)).shape
    (6, 6)
    """
    n = data.ndim
    before = [int(b) for b in pad_before]
    after = [int(a) for a in (pad_after if pad_after is not None else pad_before)]
    if len(before) != n or len(after) != n:
        raise OpShapeError(f'pad: "{data.name}" has {n} dimension(s) but {len(before)} / {len(after)} pad widths '
                           f"were given")
    if any(b < 0 for b in before + after):
        raise ValueError(f"pad: pad widths must be non-negative, got {before} / {after}")
    out_shape = tuple(d + b + a for d, b, a in zip(data.shape, before, after))
    value = te.const(pad_value, data.dtype)

    def f(*idx):
        conds, src = [], []
        for k, i in enumerate(idx):
            b, a = before[k], after[k]
            if b > 0:
                conds.append(i >= b)
            if a > 0:
                conds.append(i < data.shape[k] + b)
            src.append(i - b if b else i)
        if not conds:
            return data[tuple(src)]
        return te.if_then_else(te.all(*conds), data[tuple(src)], value)

    return te.compute(out_shape, f, name=name)


def transpose(x: Tensor, axes: Sequence[int] | None = None, name: str = "transpose") -> Tensor:
    """Permute the dimensions: ``out.shape[k] == x.shape[axes[k]]`` (reversed when ``axes`` is None).

    >>> from workbench import te
    >>> transpose(te.placeholder((2, 3, 4), name="A"), (1, 2, 0)).shape
    (3, 4, 2)
    """
    n = x.ndim
    axes = list(range(n))[::-1] if axes is None else [norm_axis("transpose", a, n) for a in axes]
    if sorted(axes) != list(range(n)):
        raise OpShapeError(f"transpose: axes {list(axes)} are not a permutation of 0..{n - 1}")
    inv = [axes.index(k) for k in range(n)]
    return te.compute(tuple(x.shape[a] for a in axes), lambda *i: x[tuple(i[inv[k]] for k in range(n))], name=name)


def reshape(x: Tensor, newshape: Sequence, name: str = "reshape") -> Tensor:
    """Same elements in row-major order, new shape (one ``-1`` is inferred; sizes must be constants).

    >>> from workbench import te
    >>> reshape(te.placeholder((2, 6), name="A"), (3, -1)).shape
    (3, 4)
    """
    old = [const_int(d, f'reshape of "{x.name}": dimension') for d in x.shape]
    new = [int(d) for d in newshape]
    total = math.prod(old)
    if new.count(-1) > 1:
        raise OpShapeError("reshape: at most one dimension may be -1")
    if -1 in new:
        rest = math.prod(d for d in new if d != -1)
        if rest == 0 or total % rest:
            raise OpShapeError(f'reshape: cannot reshape "{x.name}" {dims(x.shape)} into {tuple(newshape)}')
        new[new.index(-1)] = total // rest
    if math.prod(new) != total or any(d < 0 for d in new):
        raise OpShapeError(f'reshape: cannot reshape "{x.name}" {dims(x.shape)} ({total} elements) into '
                           f"{tuple(newshape)} ({math.prod(new)} elements)")

    def f(*idx):
        flat: PrimExpr | int = 0
        for i, d in zip(idx, new):
            flat = flat * d + i
        flat = convert(flat)
        src = []
        for k in range(len(old) - 1, -1, -1):
            src.append(flat % old[k] if k > 0 else flat)
            flat = flat // old[k]
        return x[tuple(reversed(src))]

    return te.compute(tuple(new), f, name=name)


def broadcast_shape(a_shape, b_shape, op: str = "broadcast") -> tuple:
    """The numpy broadcast of two shapes (a symbolic dimension matches only itself or 1)."""
    a, b = [convert(d) for d in a_shape], [convert(d) for d in b_shape]
    n = max(len(a), len(b))
    a = [IntImm(1)] * (n - len(a)) + a
    b = [IntImm(1)] * (n - len(b)) + b
    out = []
    for k, (da, db) in enumerate(zip(a, b)):
        if same_dim(da, db):
            out.append(da)
        elif isinstance(da, IntImm) and da.value == 1:
            out.append(db)
        elif isinstance(db, IntImm) and db.value == 1:
            out.append(da)
        else:
            why = "different sizes" if is_known_unequal(da, db) else "sizes not known to be equal"
            raise OpShapeError(f"{op}: shapes {dims(a_shape)} and {dims(b_shape)} cannot be broadcast together "
                               f"({why} at aligned dimension {k}: {da} vs {db})")
    return tuple(out)


def _bcast_index(t: Tensor, out_ndim: int, idx) -> tuple:
    off = out_ndim - t.ndim
    return tuple(0 if (isinstance(d, IntImm) and d.value == 1) else idx[off + k] for k, d in enumerate(t.shape))


def broadcast_binary(a: Tensor, b: Tensor, fn: Callable[[PrimExpr, PrimExpr], PrimExpr], name: str) -> Tensor:
    """``out = fn(a, b)`` elementwise with numpy broadcasting of the shapes."""
    for t in (a, b):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected te tensors, got {type(t).__name__}")
    if a.dtype != b.dtype:
        raise OpShapeError(f'{name}: "{a.name}" is {a.dtype} but "{b.name}" is {b.dtype}; cast one with .astype')
    shape = broadcast_shape(a.shape, b.shape, name)
    n = len(shape)
    return te.compute(shape, lambda *i: fn(a[_bcast_index(a, n, i)], b[_bcast_index(b, n, i)]), name=name)


def add(a: Tensor, b: Tensor, name: str = "add") -> Tensor:
    """``a + b`` with numpy broadcasting.

    >>> from workbench import te
    >>> add(te.placeholder((4, 1), name="A"), te.placeholder((3,), name="B")).shape
    (4, 3)
    """
    return broadcast_binary(a, b, lambda x, y: x + y, name)


def subtract(a: Tensor, b: Tensor, name: str = "subtract") -> Tensor:
    """``a - b`` with numpy broadcasting."""
    return broadcast_binary(a, b, lambda x, y: x - y, name)


def multiply(a: Tensor, b: Tensor, name: str = "multiply") -> Tensor:
    """``a * b`` with numpy broadcasting.

    >>> from workbench import te
    >>> multiply(te.placeholder((2, 3), name="A"), te.placeholder((2, 1), name="B")).shape
    (2, 3)
    """
    return broadcast_binary(a, b, lambda x, y: x * y, name)


def divide(a: Tensor, b: Tensor, name: str = "divide") -> Tensor:
    """``a / b`` with numpy broadcasting."""
    return broadcast_binary(a, b, lambda x, y: x / y, name)


def maximum(a: Tensor, b: Tensor, name: str = "maximum") -> Tensor:
    """Elementwise larger value, with numpy broadcasting."""
    return broadcast_binary(a, b, lambda x, y: te.max(x, y), name)


def take(data: Tensor, indices: Tensor, axis: int = 0, mode: str = "clip", name: str = "take") -> Tensor:
    """``numpy.take``: an embedding lookup for ``axis=0`` (``out[s, :] = table[ids[s], :]``).

    ``mode="clip"`` clamps indices into range (as TVM's default), ``"wrap"`` wraps them
    (Python's ``%``), ``"fast"`` trusts them.

    >>> from workbench import te
    >>> table = te.placeholder((100, 16), name="table")
    >>> ids = te.placeholder((5,), "int32", name="ids")
    >>> take(table, ids).shape
    (5, 16)
    """
    from ..dtype import is_integer

    if not is_integer(indices.dtype):
        raise OpShapeError(f'take: the indices "{indices.name}" must be integers, got {indices.dtype}')
    if mode not in ("clip", "wrap", "fast"):
        raise ValueError(f"take: mode must be 'clip', 'wrap' or 'fast', got {mode!r}")
    axis = norm_axis("take", axis, data.ndim)
    dim = data.shape[axis]
    shape = tuple(data.shape[:axis]) + tuple(indices.shape) + tuple(data.shape[axis + 1:])
    m = indices.ndim

    def f(*idx):
        pre, mid, post = idx[:axis], idx[axis:axis + m], idx[axis + m:]
        ix = te.cast(indices[tuple(mid)], dim.dtype)
        if mode == "clip":
            ix = te.min(te.max(ix, 0), dim - 1)
        elif mode == "wrap":
            ix = ix % dim
        return data[tuple(pre) + (ix,) + tuple(post)]

    return te.compute(shape, f, name=name)


def concatenate(tensors: Sequence[Tensor], axis: int = 0, name: str = "concatenate") -> Tensor:
    """Join tensors along ``axis`` (other dimensions must agree).

    >>> from workbench import te
    >>> concatenate([te.placeholder((2, 3), name="A"), te.placeholder((4, 3), name="B")]).shape
    (6, 3)
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    first = tensors[0]
    axis = norm_axis("concatenate", axis, first.ndim)
    for t in tensors[1:]:
        if t.ndim != first.ndim or t.dtype != first.dtype:
            raise OpShapeError(f'concatenate: "{t.name}" {dims(t.shape)} {t.dtype} does not match "{first.name}" '
                               f"{dims(first.shape)} {first.dtype}")
        for k in range(first.ndim):
            if k != axis and not same_dim(t.shape[k], first.shape[k]):
                raise OpShapeError(f'concatenate: "{t.name}" {dims(t.shape)} and "{first.name}" '
                                   f"{dims(first.shape)} differ in dimension {k} (joining along {axis})")
    offsets = []
    off: PrimExpr = IntImm(0)
    for t in tensors:
        offsets.append(off)
        off = off + t.shape[axis]
    shape = tuple(off if k == axis else d for k, d in enumerate(first.shape))

    def f(*idx):
        def at(t, o):
            return t[tuple(i - o if k == axis else i for k, i in enumerate(idx))]

        expr = at(tensors[-1], offsets[-1])
        for t, o in zip(reversed(tensors[:-1]), reversed(offsets[:-1])):
            expr = te.if_then_else(idx[axis] < o + t.shape[axis], at(t, o), expr)
        return expr

    return te.compute(shape, f, name=name)


def rope_tables(seq_len, head_dim: int, base: float = 10000.0, dtype: str = "float32",
                name: str = "rope") -> tuple[Tensor, Tensor]:
    """The cos/sin tables of the rotary embedding (llama's layout, ``(seq_len, head_dim)``):
    ``cos[s, d] = cos(s * base ** (-2 (d % half) / head_dim))``.

    >>> c, s = rope_tables(8, 16)
    >>> c.shape
    (8, 16)
    """
    half = head_dim // 2

    def angle(s, d):
        inv_freq = te.pow(te.const(base, dtype), te.cast(d % half, dtype) * te.const(-2.0 / head_dim, dtype))
        return te.cast(s, dtype) * inv_freq

    cos = te.compute((seq_len, head_dim), lambda s, d: te.cos(angle(s, d)), name=f"{name}_cos")
    sin = te.compute((seq_len, head_dim), lambda s, d: te.sin(angle(s, d)), name=f"{name}_sin")
    return cos, sin


def rotary_embedding(x: Tensor, cos: Tensor, sin: Tensor, name: str = "rotary") -> Tensor:
    """Rotary position embedding, rotate-half form (llama): ``x * cos + rotate_half(x) * sin`` where
    ``rotate_half(x)[..., d] = -x[..., d + half]`` for ``d < half`` and ``x[..., d - half]`` after.

    ``x`` is ``(..., seq, heads, head_dim)``; ``cos`` and ``sin`` are ``(seq, head_dim)``
    (inputs, or from ``rope_tables``).

    >>> from workbench import te
    >>> x = te.placeholder((1, 8, 2, 16), name="x")
    >>> c, s = rope_tables(8, 16)
    >>> rotary_embedding(x, c, s).shape
    (1, 8, 2, 16)
    """
    if x.ndim < 3:
        raise OpShapeError(f'rotary_embedding: "{x.name}" must be (..., seq, heads, head_dim), got {dims(x.shape)}')
    check_ndim("rotary_embedding", cos, 2)
    check_ndim("rotary_embedding", sin, 2)
    d = const_int(x.shape[-1], "rotary_embedding: head_dim")
    if d % 2:
        raise OpShapeError(f"rotary_embedding: head_dim must be even, got {d}")
    for t in (cos, sin):
        if not (same_dim(t.shape[0], x.shape[-3]) and same_dim(t.shape[1], x.shape[-1])):
            raise OpShapeError(f'rotary_embedding: table "{t.name}" {dims(t.shape)} must be (seq, head_dim) = '
                               f"({x.shape[-3]}, {x.shape[-1]})")
    half = d // 2

    def f(*idx):
        s, dd = idx[-3], idx[-1]
        lead = tuple(idx[:-1])
        rot = te.if_then_else(dd < half, -x[lead + (dd + half,)], x[lead + (dd - half,)])
        return x[idx] * cos[s, dd] + rot * sin[s, dd]

    return te.compute(x.shape, f, name=name)


__all__ = ["pad", "transpose", "reshape", "broadcast_shape", "broadcast_binary", "add", "subtract", "multiply",
           "divide", "maximum", "take", "concatenate", "rope_tables", "rotary_embedding"]
