"""``scaled_dot_product_attention(q, k, v, mask=None, causal=False, scale=None)``.

Layout ``(batch, heads, seq, head_dim)`` as PyTorch's ``F.scaled_dot_product_attention``:
``q`` is ``(B, H, Sq, D)``, ``k`` ``(B, Hk, Skv, D)``, ``v`` ``(B, Hk, Skv, Dv)``, the result
``(B, H, Sq, Dv)``. ``Hk`` may divide ``H`` (grouped-query attention: query head ``h`` reads key
head ``h // (H / Hk)``; constant head counts only).

``out = softmax(q @ k^T * scale + mask) @ v`` over the key axis, with ``scale`` defaulting to
``1 / sqrt(D)``. The optional ``mask`` broadcasts to ``(B, H, Sq, Skv)``: a float mask (same dtype
as ``q``) is added to the scores; a bool mask keeps the scores where it is True and sets the others
to ``-inf``. ``causal=True`` hides key ``j`` from query ``i`` when ``j > i + (Skv - Sq)`` (aligned
at the bottom right, so a query block at the end of a longer key cache sees every earlier key; the
same as PyTorch's ``is_causal`` when ``Sq == Skv``). Scores, softmax and sums are float32.

>>> import workbench as wb
>>> from workbench.ir.graph.op import get_op
>>> from workbench.ir.graph.types import TensorType
>>> s = wb.var("s")
>>> q = TensorType((1, 12, s, 32), "float32")
>>> get_op("scaled_dot_product_attention").infer([q, q, q], {"causal": True})
Tensor((1, 12, s, 32), "float32")
"""
from __future__ import annotations

import math

import numpy as np

from ... import te
from ..op import register_op
from ..types import GraphTypeError, TensorType
from ._common import (as_type, broadcast_index, check_arity, const_value, dim_str, dims_equal, float_count,
                      is_one, require_float, same_dtype, shape_str, tensor_arg)

_OP = "scaled_dot_product_attention"


def _same(a: TensorType, an: str, ia: int, b: TensorType, bn: str, ib: int, what: str) -> None:
    if not dims_equal(a.shape[ia], b.shape[ib]):
        raise GraphTypeError(f"{_OP}: the {what} of {an} {shape_str(a.shape)} and {bn} {shape_str(b.shape)} differ "
                             f"or are not provably equal: {dim_str(a.shape[ia])} vs {dim_str(b.shape[ib])}")


def _group(q: TensorType, k: TensorType) -> int:
    """How many query heads share one key head."""
    if dims_equal(q.shape[1], k.shape[1]):
        return 1
    h, hk = const_value(q.shape[1]), const_value(k.shape[1])
    if h is None or hk is None or hk == 0 or h % hk:
        raise GraphTypeError(f"{_OP}: the head count of k {shape_str(k.shape)} must equal or divide that of q "
                             f"{shape_str(q.shape)}: {dim_str(k.shape[1])} vs {dim_str(q.shape[1])}")
    return h // hk


def _infer(args, attrs):
    check_arity(_OP, args, ("q", "k", "v", "mask"), optional=1)
    names = ("q", "k", "v")
    q, k, v = (tensor_arg(_OP, a, n) for a, n in zip(args[:3], names))
    for t, n in zip((q, k, v), names):
        if t.ndim != 4:
            raise GraphTypeError(f"{_OP}: the argument {n} must be 4-D (batch, heads, seq, head_dim), got "
                                 f"{shape_str(t.shape)}")
        require_float(_OP, t, n)
    same_dtype(_OP, list(zip(names, (q, k, v))))
    _same(q, "q", 0, k, "k", 0, "batch sizes")
    _same(q, "q", 0, v, "v", 0, "batch sizes")
    _same(k, "k", 1, v, "v", 1, "head counts")
    _same(k, "k", 2, v, "v", 2, "key lengths")
    _same(q, "q", 3, k, "k", 3, "head dimensions")
    _group(q, k)
    if len(args) == 4 and args[3] is not None:
        _check_mask(tensor_arg(_OP, args[3], "mask"), q, k)
    return TensorType((q.shape[0], q.shape[1], q.shape[2], v.shape[3]), q.dtype)


def _check_mask(mask: TensorType, q: TensorType, k: TensorType) -> None:
    if mask.dtype not in ("bool", q.dtype):
        raise GraphTypeError(f"{_OP}: the mask must be bool or {q.dtype} like q, got {mask.dtype} "
                             f"{shape_str(mask.shape)}")
    scores = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    off = 4 - mask.ndim
    if off < 0 or not all(is_one(d) or dims_equal(d, scores[off + i]) for i, d in enumerate(mask.shape)):
        raise GraphTypeError(f"{_OP}: the mask {shape_str(mask.shape)} does not broadcast to the scores "
                             f"(batch, heads, q_len, kv_len) = {shape_str(scores)}")


def _legalize(tensors, attrs):
    q, k, v = tensors[:3]
    mask = tensors[3] if len(tensors) == 4 else None
    out = _infer([as_type(t) for t in tensors if t is not None], attrs)
    group = _group(as_type(q), as_type(k))
    f32 = "float32"

    def cast(e):
        return e if e.dtype == f32 else te.cast(e, f32)

    scale = attrs.get("scale")
    scale = te.const(float(scale), f32) if scale is not None else (
        te.const(1.0 / math.sqrt(const_value(q.shape[3])), f32) if const_value(q.shape[3]) is not None
        else te.rsqrt(float_count(q.shape[3], f32)))
    B, H, Sq, Skv = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    shape = (B, H, Sq, Skv)
    d = te.reduce_axis(q.shape[3], name="d")

    def kv_head(h):
        return h if group == 1 else h // group

    qk = te.compute(shape, lambda b, h, i, j: te.sum(cast(q[b, h, i, d]) * cast(k[b, kv_head(h), j, d]), axis=d),
                    name="attention_qk")

    def logit(b, h, i, j):
        s = qk[b, h, i, j] * scale
        if mask is not None:
            m = mask[broadcast_index(mask.shape, 4, (b, h, i, j))]
            s = te.if_then_else(m, s, te.min_value(f32)) if mask.dtype == "bool" else s + cast(m)
        if attrs.get("causal", False):
            s = te.if_then_else(j <= i + (Skv - Sq), s, te.min_value(f32))
        return s

    # the scaled, masked scores are recomputed where they are read (max, then exp): no buffer of their own
    j1 = te.reduce_axis(Skv, name="j")
    mx = te.compute((B, H, Sq), lambda b, h, i: te.max(logit(b, h, i, j1), axis=j1), name="attention_max")
    ex = te.compute(shape, lambda b, h, i, j: te.exp(logit(b, h, i, j) - mx[b, h, i]), name="attention_exp")
    j2 = te.reduce_axis(Skv, name="j")
    total = te.compute((B, H, Sq), lambda b, h, i: te.sum(ex[b, h, i, j2], axis=j2), name="attention_sum")
    j3 = te.reduce_axis(Skv, name="j")
    pv = te.compute(out.shape, lambda b, h, i, e: te.sum(ex[b, h, i, j3] * cast(v[b, kv_head(h), j3, e]), axis=j3),
                    name="attention_pv")

    def result(b, h, i, e):
        r = pv[b, h, i, e] / total[b, h, i]
        return r if q.dtype == f32 else te.cast(r, q.dtype)

    return te.compute(out.shape, result, name="attention")


def _reference(arrays, attrs):
    q, k, v = (a.astype(np.float64) for a in arrays[:3])
    mask = arrays[3] if len(arrays) == 4 else None
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scale = attrs.get("scale")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == np.bool_ else s + mask.astype(np.float64)
    if attrs.get("causal", False):
        sq, skv = s.shape[-2], s.shape[-1]
        keep = np.arange(skv)[None, :] <= np.arange(sq)[:, None] + (skv - sq)
        s = np.where(keep, s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bhje->bhie", p, v).astype(arrays[0].dtype)


register_op(_OP, infer=_infer, legalize=_legalize, reference=_reference, pattern="out_ewise_fusible",
            doc="scaled_dot_product_attention(q, k, v, mask=None, causal=False, scale=None): softmax(q k^T * scale "
                "+ mask) v in the (batch, heads, seq, head_dim) layout")
