"""Data-movement (injective) ops: reshape, permute_dims, expand_dims, squeeze, concat, split,
strided_slice, take and embedding.

* ``reshape(x, shape=...)``: ``shape`` may hold size variables, expressions of them and one ``-1``;
  the element counts must be provably equal (``(n, 4) -> (n * 4,)`` is fine, ``(n, 4) -> (m, 4)`` is
  refused because nothing says ``m == n``).
* ``concat`` takes its tensors either as one tuple argument (``concat((a, b), axis=0)``, as TVM Relax)
  or as several arguments (``concat(a, b, axis=0)``); both mean the same.
* ``split(x, indices_or_sections, axis)`` returns a ``TupleType`` (numpy's ``split``: equal sections,
  which must provably divide the dimension, or split points).
* ``strided_slice(x, axes, begin, end, strides=None)``: numpy slicing on the listed axes; on a
  constant dimension bounds are clamped as numpy does, on a symbolic one they are taken as given
  (negative values count from the end; ``end=None`` means to the end) and steps must be positive.
* ``take(data, indices, axis=0, mode="clip")`` is ``numpy.take`` (``mode`` "clip" or "wrap");
  ``embedding(table, ids)`` is ``take(table, ids, axis=0)`` for a 2-D table.

>>> import workbench as wb
>>> from workbench.ir.graph.op import get_op
>>> from workbench.ir.graph.types import TensorType
>>> n = wb.var("n")
>>> get_op("reshape").infer([TensorType((n, 12), "float32")], {"shape": (n, 3, -1)})
Tensor((n, 3, 4), "float32")
>>> get_op("split").infer([TensorType((n, 12), "float32")], {"indices_or_sections": 3, "axis": 1})
Tuple(Tensor((n, 4), "float32"), Tensor((n, 4), "float32"), Tensor((n, 4), "float32"))
"""
from __future__ import annotations

import numpy as np

from ... import te
from ...expr import IntImm, PrimExpr, convert
from ...op_library import transform as transform_lib
from ..op import register_op
from ..types import GraphTypeError, TensorType, TupleType
from ._common import (as_type, check_arity, exact_quotient, const_value, dim_str, dims_differ, dims_equal, is_one, norm_axes,
                      norm_axis, product, require_integer, same_dtype, shape_str, simplify, tensor_arg, tensor_list)

_INT32_MAX = 2 ** 31 - 1


def as_type_np(a: np.ndarray) -> TensorType:
    """The tensor type of a numpy array (for references that reuse the axis logic of ``infer``)."""
    return TensorType(a.shape, str(a.dtype))


# -- reshape -------------------------------------------------------------------------------------

def _shape_entries(op: str, shape) -> list:
    if shape is None:
        raise GraphTypeError(f"{op}: the attribute shape is missing (reshape(x, shape=(n, -1)))")
    entries = [shape] if isinstance(shape, (int, PrimExpr)) else list(shape)
    out = []
    for d in entries:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer, PrimExpr)):
            raise GraphTypeError(f"{op}: shape entries must be ints, size variables or -1, got {d!r}")
        if isinstance(d, (int, np.integer)) and d < -1:
            raise GraphTypeError(f"{op}: shape entries cannot be negative other than -1, got {d}")
        out.append(int(d) if isinstance(d, (int, np.integer)) else d)
    if sum(1 for d in out if isinstance(d, int) and d == -1) > 1:
        raise GraphTypeError(f"{op}: at most one shape entry may be -1, got {tuple(out)}")
    return out


def _reshape_infer(args, attrs):
    check_arity("reshape", args, ("x",))
    x = tensor_arg("reshape", args[0], "x")
    entries = _shape_entries("reshape", attrs.get("shape"))
    total = product(x.shape)
    known = product(d for d in entries if not (isinstance(d, int) and d == -1))
    if any(isinstance(d, int) and d == -1 for d in entries):
        inferred = exact_quotient(total, known)
        if inferred is None:
            raise GraphTypeError(f"reshape: cannot reshape x {shape_str(x.shape)} into {shape_str(entries)}: "
                                 f"{dim_str(total)} elements are not provably a multiple of {dim_str(known)}")
        entries = [inferred if isinstance(d, int) and d == -1 else d for d in entries]
    new_total = product(entries)
    if not dims_equal(total, new_total):
        why = "differ" if dims_differ(total, new_total) else "are not provably equal"
        raise GraphTypeError(f"reshape: cannot reshape x {shape_str(x.shape)} into {shape_str(entries)}: the "
                             f"element counts {dim_str(total)} and {dim_str(new_total)} {why}")
    return TensorType(tuple(entries), x.dtype)


def _reshape_legalize(tensors, attrs):
    (x,) = tensors
    out = _reshape_infer([as_type(x)], attrs)

    def body(*idx):
        flat = IntImm(0, "int32")
        for i, d in zip(idx, out.shape):
            flat = flat * d + i
        src = []
        for k in range(x.ndim - 1, 0, -1):
            src.append(flat % x.shape[k])
            flat = flat // x.shape[k]
        if x.ndim:
            src.append(flat)
        return x[tuple(reversed(src))]

    return te.compute(out.shape, body, name="reshape")


def _reshape_reference(arrays, attrs):
    entries = _shape_entries("reshape", attrs.get("shape"))
    unknown = [k for k, d in enumerate(entries) if not isinstance(d, int) and const_value(d) is None
               or isinstance(d, int) and d == -1]
    if len(unknown) > 1:
        raise GraphTypeError(f"reshape: the numpy reference cannot evaluate the symbolic shape {shape_str(entries)} "
                             f"(more than one unknown entry); substitute the size variables' values in attrs first")
    shape = [-1 if k in unknown else (d if isinstance(d, int) else const_value(d)) for k, d in enumerate(entries)]
    return np.reshape(arrays[0], shape)


register_op("reshape", infer=_reshape_infer, legalize=_reshape_legalize, reference=_reshape_reference,
            pattern="injective", doc="reshape(x, shape): same elements, new shape (size variables and one -1 allowed)")


# -- permute_dims / expand_dims / squeeze -----------------------------------------------------------

def _perm(op: str, x: TensorType, axes) -> list[int]:
    if axes is None:
        return list(range(x.ndim))[::-1]
    perm = [norm_axis(op, a, x.ndim, "axes") for a in axes]
    if sorted(perm) != list(range(x.ndim)):
        raise GraphTypeError(f"{op}: axes {list(axes)} are not a permutation of the {x.ndim} dimensions of x "
                             f"{shape_str(x.shape)}")
    return perm


def _permute_infer(args, attrs):
    check_arity("permute_dims", args, ("x",))
    x = tensor_arg("permute_dims", args[0], "x")
    return TensorType(tuple(x.shape[a] for a in _perm("permute_dims", x, attrs.get("axes"))), x.dtype)


register_op("permute_dims", infer=_permute_infer,
            legalize=lambda t, attrs: transform_lib.transpose(t[0], _perm("permute_dims", as_type(t[0]),
                                                                          attrs.get("axes")), name="permute_dims"),
            reference=lambda a, attrs: np.transpose(a[0], attrs.get("axes")),
            pattern="injective", doc="permute_dims(x, axes=None): numpy.transpose (None reverses the dimensions)")


def _expand_axes(x: TensorType, attrs) -> list[int]:
    axis = attrs.get("axis")
    if axis is None:
        raise GraphTypeError("expand_dims: the attribute axis is missing (an int or a list of ints)")
    n_new = 1 if isinstance(axis, (int, np.integer)) else len(list(axis))
    return norm_axes("expand_dims", axis, x.ndim + n_new)


def _expand_infer(args, attrs):
    check_arity("expand_dims", args, ("x",))
    x = tensor_arg("expand_dims", args[0], "x")
    axes = _expand_axes(x, attrs)
    it = iter(x.shape)
    return TensorType(tuple(IntImm(1, "int32") if k in axes else next(it) for k in range(x.ndim + len(axes))),
                      x.dtype)


def _expand_legalize(tensors, attrs):
    (x,) = tensors
    axes = _expand_axes(as_type(x), attrs)
    out = _expand_infer([as_type(x)], attrs)
    return te.compute(out.shape, lambda *i: x[tuple(v for k, v in enumerate(i) if k not in axes)],
                      name="expand_dims")


register_op("expand_dims", infer=_expand_infer, legalize=_expand_legalize,
            reference=lambda a, attrs: np.expand_dims(a[0], tuple(_expand_axes(as_type_np(a[0]), attrs))),
            pattern="injective", doc="expand_dims(x, axis): insert unit dimensions at axis (positions in the result)")


def _squeeze_axes(x: TensorType, attrs) -> list[int]:
    axis = attrs.get("axis")
    if axis is None:
        return [k for k, d in enumerate(x.shape) if is_one(d)]
    axes = norm_axes("squeeze", axis, x.ndim)
    for a in axes:
        if not is_one(x.shape[a]):
            raise GraphTypeError(f"squeeze: dimension {a} of x {shape_str(x.shape)} is {dim_str(x.shape[a])}, "
                                 f"not {'1' if const_value(x.shape[a]) is not None else 'provably 1'}")
    return axes


def _squeeze_infer(args, attrs):
    check_arity("squeeze", args, ("x",))
    x = tensor_arg("squeeze", args[0], "x")
    axes = _squeeze_axes(x, attrs)
    return TensorType(tuple(d for k, d in enumerate(x.shape) if k not in axes), x.dtype)


def _squeeze_legalize(tensors, attrs):
    (x,) = tensors
    axes = _squeeze_axes(as_type(x), attrs)

    def body(*i):
        it = iter(i)
        return x[tuple(IntImm(0, "int32") if k in axes else next(it) for k in range(x.ndim))]

    return te.compute(_squeeze_infer([as_type(x)], attrs).shape, body, name="squeeze")


register_op("squeeze", infer=_squeeze_infer, legalize=_squeeze_legalize,
            reference=lambda a, attrs: np.squeeze(a[0], axis=None if attrs.get("axis") is None else tuple(
                _squeeze_axes(as_type_np(a[0]), attrs))),
            pattern="injective", doc="squeeze(x, axis=None): drop unit dimensions (None: every provably-1 one)")


# -- concat / split ----------------------------------------------------------------------------------

def _concat_infer(args, attrs):
    items = tensor_list("concat", args)
    if not items:
        raise GraphTypeError("concat: needs at least one tensor")
    named = [(f"x{k}", tensor_arg("concat", t, f"x{k}")) for k, t in enumerate(items)]
    first = named[0][1]
    same_dtype("concat", named)
    axis = norm_axis("concat", attrs.get("axis", 0), first.ndim)
    for name, t in named[1:]:
        if t.ndim != first.ndim:
            raise GraphTypeError(f"concat: x0 {shape_str(first.shape)} and {name} {shape_str(t.shape)} have different "
                                 f"ranks")
        for k in range(first.ndim):
            if k != axis and not dims_equal(t.shape[k], first.shape[k]):
                raise GraphTypeError(f"concat: x0 {shape_str(first.shape)} and {name} {shape_str(t.shape)} differ in "
                                     f"dimension {k} (joining along axis {axis}): {dim_str(first.shape[k])} vs "
                                     f"{dim_str(t.shape[k])}")
    total = simplify(sum((convert(t.shape[axis]) for _, t in named[1:]), convert(first.shape[axis])))
    return TensorType(tuple(total if k == axis else d for k, d in enumerate(first.shape)), first.dtype)


def _concat_legalize(tensors, attrs):
    items = tensor_list("concat", tensors)
    out = _concat_infer([as_type(t) for t in items], attrs)
    axis = norm_axis("concat", attrs.get("axis", 0), items[0].ndim)
    offsets, off = [], IntImm(0, "int32")
    for t in items:
        offsets.append(off)
        off = simplify(off + t.shape[axis])

    def body(*idx):
        def at(t, o):
            return t[tuple(i - o if k == axis else i for k, i in enumerate(idx))]

        expr = at(items[-1], offsets[-1])
        for t, o in zip(reversed(items[:-1]), reversed(offsets[:-1])):
            expr = te.if_then_else(idx[axis] < simplify(o + t.shape[axis]), at(t, o), expr)
        return expr

    return te.compute(out.shape, body, name="concat")


register_op("concat", infer=_concat_infer, legalize=_concat_legalize,
            reference=lambda a, attrs: np.concatenate(tensor_list("concat", a), axis=attrs.get("axis", 0)),
            pattern="injective", doc="concat((x0, x1, ...), axis=0) or concat(x0, x1, ..., axis=0): join along axis")


def _split_pieces(x: TensorType, attrs) -> tuple[int, list, list]:
    """(axis, start offsets, lengths) of the pieces."""
    axis = norm_axis("split", attrs.get("axis", 0), x.ndim)
    d = x.shape[axis]
    ios = attrs.get("indices_or_sections")
    if isinstance(ios, (int, np.integer)) and not isinstance(ios, bool):
        if ios <= 0:
            raise GraphTypeError(f"split: indices_or_sections must be a positive number of sections, got {ios}")
        size = exact_quotient(d, int(ios))
        if size is None:
            raise GraphTypeError(f"split: dimension {axis} of x {shape_str(x.shape)} ({dim_str(d)}) is not provably "
                                 f"divisible into {ios} equal sections")
        return axis, [simplify(size * k) for k in range(int(ios))], [size] * int(ios)
    if ios is None or isinstance(ios, bool) or not all(isinstance(i, (int, np.integer)) for i in list(ios)):
        raise GraphTypeError(f"split: indices_or_sections must be an int or a list of ints, got {ios!r}")
    points = [int(i) for i in ios]
    dc = const_value(d)
    if dc is not None:
        bounds = [0] + [max(0, min(p if p >= 0 else dc + p, dc)) for p in points] + [dc]
        return axis, [IntImm(b, "int32") for b in bounds[:-1]], [IntImm(max(0, e - b), "int32") for b, e in
                                                                  zip(bounds[:-1], bounds[1:])]
    if any(p < 0 for p in points) or points != sorted(points):
        raise GraphTypeError(f"split: split points {points} along the symbolic dimension {dim_str(d)} of x "
                             f"{shape_str(x.shape)} must be non-negative and increasing")
    starts = [IntImm(0, "int32")] + [IntImm(p, "int32") for p in points]
    ends = [IntImm(p, "int32") for p in points] + [d]
    return axis, starts, [simplify(convert(e) - s) for s, e in zip(starts, ends)]


def _split_infer(args, attrs):
    check_arity("split", args, ("x",))
    x = tensor_arg("split", args[0], "x")
    axis, _, lengths = _split_pieces(x, attrs)
    return TupleType([TensorType(tuple(n if k == axis else dd for k, dd in enumerate(x.shape)), x.dtype)
                      for n in lengths])


def _split_legalize(tensors, attrs):
    (x,) = tensors
    axis, starts, lengths = _split_pieces(as_type(x), attrs)
    outs = []
    for s, n in zip(starts, lengths):
        shape = tuple(n if k == axis else d for k, d in enumerate(x.shape))
        outs.append(te.compute(shape, lambda *i, s=s: x[tuple(v + s if k == axis else v for k, v in enumerate(i))],
                               name="split"))
    return outs


register_op("split", infer=_split_infer, legalize=_split_legalize,
            reference=lambda a, attrs: tuple(np.split(a[0], attrs["indices_or_sections"], attrs.get("axis", 0))),
            pattern="injective",
            doc="split(x, indices_or_sections, axis=0): numpy.split; returns a tuple of tensors")


# -- strided_slice ----------------------------------------------------------------------------------

def _slice_plan(x: TensorType, attrs) -> dict:
    """axis -> (start, step, length) for every sliced axis."""
    axes = list(attrs.get("axes", []))
    begin, end = list(attrs.get("begin", [])), list(attrs.get("end", []))
    strides = list(attrs.get("strides") or [1] * len(axes))
    if not len(axes) == len(begin) == len(end) == len(strides):
        raise GraphTypeError(f"strided_slice: axes {axes}, begin {begin}, end {end} and strides {strides} must have "
                             f"the same length")
    plan = {}
    for a, b, e, s in zip(axes, begin, end, strides):
        a = norm_axis("strided_slice", a, x.ndim, "axes")
        if a in plan:
            raise GraphTypeError(f"strided_slice: axes {axes} name axis {a} twice")
        if s == 0:
            raise GraphTypeError(f"strided_slice: the stride on axis {a} cannot be 0")
        plan[a] = _slice_axis(x, a, b, e, int(s))
    return plan


def _is_symbolic(v) -> bool:
    return isinstance(v, PrimExpr) and const_value(v) is None


def _slice_axis(x: TensorType, a: int, b, e, s: int) -> tuple:
    d = x.shape[a]
    if _is_symbolic(b) or _is_symbolic(e):
        # a symbolic bound (``end=[seq]``) is taken as inside the dimension, as TVM's assume_inbound
        if s < 1:
            raise GraphTypeError(f"strided_slice: a symbolic begin or end on axis {a} of x {shape_str(x.shape)} "
                                 f"needs a positive stride, got {s}")
        start = IntImm(0, "int32") if b is None else convert(b)
        stop = d if e is None else convert(e)
        return start, s, simplify((stop - start + (s - 1)) // s)
    b = None if b is None else int(const_value(b) if isinstance(b, PrimExpr) else b)
    e = None if e is None else int(const_value(e) if isinstance(e, PrimExpr) else e)
    dc = const_value(d)
    if dc is not None:
        start, stop, step = slice(b, e, s).indices(dc)
        return IntImm(start, "int32"), step, IntImm(len(range(start, stop, step)), "int32")
    if s < 0:
        raise GraphTypeError(f"strided_slice: a negative stride ({s}) on the symbolic dimension {a} of x "
                             f"{shape_str(x.shape)} is not supported")
    start = 0 if b is None else (simplify(d + b) if b < 0 else IntImm(int(b), "int32"))
    stop = d if e is None or e >= _INT32_MAX else (simplify(d + e) if e < 0 else IntImm(int(e), "int32"))
    return start, s, simplify((convert(stop) - start + (s - 1)) // s)


def _slice_infer(args, attrs):
    check_arity("strided_slice", args, ("x",))
    x = tensor_arg("strided_slice", args[0], "x")
    plan = _slice_plan(x, attrs)
    return TensorType(tuple(plan[k][2] if k in plan else d for k, d in enumerate(x.shape)), x.dtype)


def _slice_legalize(tensors, attrs):
    (x,) = tensors
    plan = _slice_plan(as_type(x), attrs)
    out = _slice_infer([as_type(x)], attrs)
    return te.compute(out.shape, lambda *i: x[tuple(plan[k][0] + v * plan[k][1] if k in plan else v
                                                   for k, v in enumerate(i))], name="strided_slice")


def _slice_reference(arrays, attrs):
    x = arrays[0]
    idx = [slice(None)] * x.ndim
    strides = attrs.get("strides") or [1] * len(attrs["axes"])
    for a, b, e, s in zip(attrs["axes"], attrs["begin"], attrs["end"], strides):
        idx[a] = slice(_plain_bound(b), _plain_bound(e), s)
    return x[tuple(idx)]


def _plain_bound(v):
    if v is None or isinstance(v, int):
        return v
    c = const_value(v)
    if c is None:
        raise GraphTypeError(f"strided_slice: the reference needs the value of the bound `{v}`; put the size "
                             "variables' values into attrs first")
    return int(c)


register_op("strided_slice", infer=_slice_infer, legalize=_slice_legalize, reference=_slice_reference,
            pattern="injective",
            doc="strided_slice(x, axes, begin, end, strides=None): numpy slicing x[begin:end:stride] on axes")


# -- take / embedding -----------------------------------------------------------------------------

def _mode(op: str, attrs) -> str:
    mode = attrs.get("mode", "clip")
    if mode not in ("clip", "wrap"):
        raise GraphTypeError(f"{op}: mode must be 'clip' or 'wrap', got {mode!r}")
    return mode


def _take_type(op: str, data: TensorType, indices: TensorType, axis: int) -> TensorType:
    require_integer(op, indices, "indices")
    return TensorType(tuple(data.shape[:axis]) + tuple(indices.shape) + tuple(data.shape[axis + 1:]), data.dtype)


def _take_infer(args, attrs):
    check_arity("take", args, ("data", "indices"))
    data, indices = tensor_arg("take", args[0], "data"), tensor_arg("take", args[1], "indices")
    _mode("take", attrs)
    return _take_type("take", data, indices, norm_axis("take", attrs.get("axis", 0), data.ndim))


register_op("take", infer=_take_infer,
            legalize=lambda t, attrs: transform_lib.take(t[0], t[1], axis=attrs.get("axis", 0),
                                                         mode=_mode("take", attrs)),
            reference=lambda a, attrs: np.take(a[0], a[1], axis=attrs.get("axis", 0), mode=_mode("take", attrs)),
            pattern="injective", doc="take(data, indices, axis=0, mode='clip'): numpy.take")


def _embedding_infer(args, attrs):
    check_arity("embedding", args, ("table", "ids"))
    table, ids = tensor_arg("embedding", args[0], "table"), tensor_arg("embedding", args[1], "ids")
    if table.ndim != 2:
        raise GraphTypeError(f"embedding: the table must be 2-D (num_embeddings, dim), got {shape_str(table.shape)}")
    if ids.dtype not in ("int32", "int64"):
        raise GraphTypeError(f"embedding: the argument ids must be an int32 or int64 tensor, got {ids.dtype} "
                             f"{shape_str(ids.shape)}")
    return _take_type("embedding", table, ids, 0)


register_op("embedding", infer=_embedding_infer,
            legalize=lambda t, attrs: transform_lib.take(t[0], t[1], axis=0, mode="clip", name="embedding"),
            reference=lambda a, attrs: np.take(a[0], a[1], axis=0, mode="clip"),
            pattern="injective", doc="embedding(table, ids): rows of table, i.e. take(table, ids, axis=0)")
