"""Block-quantized weights: ``decode_q4(packed, qtype="Q4_1")``, ``decode_q8(packed)`` and
``decode_q4f32(q_weight, q_scale)``.

The argument is a GGUF tensor as stored (``uint8``, the last dimension holding the row's blocks; see
:mod:`workbench.frontend.gguf_quants` for the block layouts): ``(..., cols // 32 * block_bytes)``. The
result is the float32 weights ``(..., cols)``. The legalization reads the packed bytes directly (the
``f16`` scale and minimum assembled from two bytes and reinterpreted, the 4-bit codes shifted out of
their byte), so once :class:`~workbench.transform.FuseTIR` puts a decode in the kernel of the matmul
that reads it and the schedule inlines it, that kernel reads only the packed weights: no float copy of
the weight matrix exists. The pattern is ``injective``: ``FuseOps`` fuses a decode of a weight into the
``matmul``/``linear`` that consumes it (and ``take`` of packed rows into it, for an embedding).

========  ============================================================  ========
op        weight ``j`` of a block (``q`` its code, ``d``/``m`` f16 fields)  block
========  ============================================================  ========
Q4_0      ``(q_j - 8) * d``                                             18 B
Q4_1      ``q_j * d + m``                                               20 B
Q8_0      ``int8 q_j * d``                                              34 B
========  ============================================================  ========

>>> from workbench.ir.graph.op import get_op
>>> from workbench.ir.graph.types import TensorType
>>> get_op("decode_q4").infer([TensorType((1536, 18 * 20), "uint8")], {"qtype": "Q4_1"})
Tensor((1536, 576), "float32")
>>> get_op("decode_q8").infer([TensorType((49152, 612), "uint8")], {})
Tensor((49152, 576), "float32")

``decode_q4f32(q_weight, q_scale)`` decodes MLC-LLM's ``q4f32_1`` group quantization (what
:func:`workbench.frontend.quantize` writes): symmetric 4-bit codes in groups of 32 along the last
dimension, eight codes to a little-endian ``uint32`` word (code ``j`` in bits ``4j .. 4j+3``), one
float32 scale per group; weight ``j`` of a row is ``(q_j - 7) * scale[j // 32]``. ``q_weight`` is
``(..., cols // 8)`` uint32, ``q_scale`` ``(..., cols // 32)`` float32, the result ``(..., cols)`` float32.

>>> get_op("decode_q4f32").infer([TensorType((1536, 48), "uint32"), TensorType((1536, 12), "float32")], {})
Tensor((1536, 384), "float32")
"""
from __future__ import annotations

import numpy as np

from ... import te
from ...expr import Call, convert
from ..op import register_op
from ..types import GraphTypeError, TensorType
from ._common import as_type, check_arity, dim_str, dims_equal, exact_quotient, shape_str, simplify, tensor_arg

#: weights per block, and bytes per block of each type (the same table as frontend/gguf_quants.py)
BLOCK_SIZE = 32
BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}
Q4_TYPES = ("Q4_0", "Q4_1")


def _qtype(op: str, attrs) -> str:
    qtype = attrs.get("qtype", "Q4_1" if op == "decode_q4" else "Q8_0")
    allowed = Q4_TYPES if op == "decode_q4" else ("Q8_0",)
    if qtype not in allowed:
        raise GraphTypeError(f"{op}: qtype must be one of {', '.join(allowed)}, got {qtype!r}")
    return qtype


def _infer(op: str):
    def infer(args, attrs):
        check_arity(op, args, ("packed",))
        packed = tensor_arg(op, args[0], "packed")
        qtype = _qtype(op, attrs)
        if packed.dtype != "uint8" or packed.ndim < 1:
            raise GraphTypeError(f"{op}: the argument packed must be the stored blocks, a uint8 tensor of at least "
                                 f"one dimension, got {packed.dtype} {shape_str(packed.shape)}")
        nbytes = packed.shape[-1]
        blocks = exact_quotient(nbytes, BLOCK_BYTES[qtype])
        if blocks is None:
            raise GraphTypeError(f"{op}: the last dimension of packed {shape_str(packed.shape)} must be a whole number "
                                 f"of {qtype} blocks ({BLOCK_BYTES[qtype]} bytes each), got {dim_str(nbytes)}")
        return TensorType(tuple(packed.shape[:-1]) + (simplify(blocks * BLOCK_SIZE),), "float32")
    return infer


def _f16_at(packed: te.Tensor, row: tuple, offset) -> object:
    """The little-endian float16 at byte ``offset`` of a packed row, widened to float32."""
    lo = te.cast(packed[row + (offset,)], "uint16")
    hi = te.cast(packed[row + (offset + 1,)], "uint16")
    half = Call("reinterpret", (lo | (hi << convert(8).astype("uint16")),), "float16")
    return te.cast(half, "float32")


def _legalize(op: str):
    def legalize(tensors, attrs):
        (packed,) = tensors
        qtype = _qtype(op, attrs)
        out = _infer(op)([as_type(packed)], attrs)
        nbytes = BLOCK_BYTES[qtype]

        def weight(*idx):
            row, j = tuple(idx[:-1]), idx[-1]
            base = (j // BLOCK_SIZE) * nbytes
            r = j % BLOCK_SIZE
            d = _f16_at(packed, row, base)
            if qtype == "Q8_0":
                q = te.cast(te.cast(packed[row + (base + 2 + r,)], "int8"), "float32")
                return q * d
            first = 4 if qtype == "Q4_1" else 2
            byte = te.cast(packed[row + (base + first + r % 16,)], "int32")
            q = te.cast((byte >> ((r // 16) * 4)) & 15, "float32")
            if qtype == "Q4_1":
                return q * d + _f16_at(packed, row, base + 2)
            return (q - 8.0) * d

        return te.compute(out.shape, weight, name=op)
    return legalize


def _reference(op: str):
    def reference(arrays, attrs):
        from ....frontend.gguf_quants import dequantize_blocks

        (packed,) = arrays
        qtype = _qtype(op, attrs)
        cols = packed.shape[-1] // BLOCK_BYTES[qtype] * BLOCK_SIZE
        rows = packed.reshape(-1, packed.shape[-1])
        w = dequantize_blocks(rows, qtype, (rows.shape[0], cols))
        return np.asarray(w, np.float32).reshape(packed.shape[:-1] + (cols,))
    return reference


register_op("decode_q4", infer=_infer("decode_q4"), legalize=_legalize("decode_q4"), reference=_reference("decode_q4"),
            pattern="injective",
            doc="decode_q4(packed, qtype='Q4_1'|'Q4_0'): float32 weights (..., cols) of GGUF 4-bit blocks "
                "(..., cols // 32 * block_bytes) uint8")
register_op("decode_q8", infer=_infer("decode_q8"), legalize=_legalize("decode_q8"), reference=_reference("decode_q8"),
            pattern="injective",
            doc="decode_q8(packed): float32 weights (..., cols) of GGUF Q8_0 blocks (..., cols // 32 * 34) uint8")



# -- q4f32_1 (MLC-LLM group quantization): uint32 words of eight 4-bit codes, a float32 scale per 32 --------

#: codes per uint32 word, weights per scale group, and the code of zero (MLC's max_int = 2**(4-1) - 1)
Q4F32_CODES_PER_WORD = 8
Q4F32_GROUP_SIZE = 32
Q4F32_ZERO_CODE = 7


def _q4f32_infer(args, attrs):
    op = "decode_q4f32"
    check_arity(op, args, ("q_weight", "q_scale"))
    words = tensor_arg(op, args[0], "q_weight")
    scale = tensor_arg(op, args[1], "q_scale")
    if words.dtype != "uint32" or words.ndim < 1:
        raise GraphTypeError(f"{op}: the argument q_weight must be the packed codes, a uint32 tensor of at least one "
                             f"dimension (eight 4-bit codes a word), got {words.dtype} {shape_str(words.shape)}")
    if scale.dtype != "float32" or scale.ndim != words.ndim:
        raise GraphTypeError(f"{op}: the argument q_scale must be a float32 tensor of the same rank as q_weight "
                             f"{shape_str(words.shape)}, got {scale.dtype} {shape_str(scale.shape)}")
    per_group = Q4F32_GROUP_SIZE // Q4F32_CODES_PER_WORD
    same_rows = all(dims_equal(a, b) for a, b in zip(words.shape[:-1], scale.shape[:-1]))
    if not same_rows or not dims_equal(scale.shape[-1] * per_group, words.shape[-1]):
        raise GraphTypeError(f"{op}: q_scale {shape_str(scale.shape)} must hold one scale per {Q4F32_GROUP_SIZE} "
                             f"weights of q_weight {shape_str(words.shape)} ({per_group} words a group): expected "
                             f"{shape_str(tuple(words.shape[:-1]) + (simplify(words.shape[-1] // per_group),))}")
    return TensorType(tuple(words.shape[:-1]) + (simplify(words.shape[-1] * Q4F32_CODES_PER_WORD),), "float32")


def _q4f32_legalize(tensors, attrs):
    words, scale = tensors
    out = _q4f32_infer([as_type(words), as_type(scale)], attrs)

    def weight(*idx):
        row, j = tuple(idx[:-1]), idx[-1]
        shift = ((j % Q4F32_CODES_PER_WORD) * 4).astype("uint32")
        code = (words[row + (j // Q4F32_CODES_PER_WORD,)] >> shift) & convert(15).astype("uint32")
        return (te.cast(code, "float32") - float(Q4F32_ZERO_CODE)) * scale[row + (j // Q4F32_GROUP_SIZE,)]

    return te.compute(out.shape, weight, name="decode_q4f32")


def _q4f32_reference(arrays, attrs):
    words, scale = (np.asarray(a) for a in arrays)
    shifts = np.arange(Q4F32_CODES_PER_WORD, dtype=np.uint32) * 4
    codes = (words[..., None] >> shifts) & np.uint32(15)
    codes = codes.reshape(words.shape[:-1] + (-1, Q4F32_GROUP_SIZE))
    w = (codes.astype(np.float32) - np.float32(Q4F32_ZERO_CODE)) * scale[..., None].astype(np.float32)
    return w.reshape(words.shape[:-1] + (-1,))


register_op("decode_q4f32", infer=_q4f32_infer, legalize=_q4f32_legalize, reference=_q4f32_reference,
            pattern="injective",
            doc="decode_q4f32(q_weight, q_scale): float32 weights (..., cols) of MLC q4f32_1 group quantization: "
                "q_weight (..., cols // 8) uint32 (eight 4-bit codes a word), q_scale (..., cols // 32) float32; "
                "w = (code - 7) * scale")

__all__ = ["BLOCK_BYTES", "BLOCK_SIZE", "Q4_TYPES", "Q4F32_CODES_PER_WORD", "Q4F32_GROUP_SIZE", "Q4F32_ZERO_CODE"]
