"""Block-quantized weights: ``decode_q4(packed, qtype="Q4_1")`` and ``decode_q8(packed)``.

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
"""
from __future__ import annotations

import numpy as np

from ... import te
from ...expr import Call, convert
from ..op import register_op
from ..types import GraphTypeError, TensorType
from ._common import as_type, check_arity, dim_str, exact_quotient, shape_str, simplify, tensor_arg

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

__all__ = ["BLOCK_BYTES", "BLOCK_SIZE", "Q4_TYPES"]
