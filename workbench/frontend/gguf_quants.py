"""Block layouts of the GGUF quantization types workbench reads, and numpy dequantization of them.

A quantized matrix of logical shape ``[rows, cols]`` (numpy order: GGUF/ggml lists the dimensions the other
way round, ``ne = [cols, rows]``) is stored row by row; each row is cut into blocks of 32 consecutive
weights, and each block is stored as a fixed number of bytes. The packed tensor is held as a ``uint8``
array ``[rows, cols // 32 * block_bytes]``, exactly the file's bytes. All multi-byte fields are
little-endian; ``f16`` is IEEE half precision. Within a block, weight ``j`` (0 <= j < 32) is:

========  ===========  =====================================================================================
type      block bytes  layout (byte offsets) and value of weight j
========  ===========  =====================================================================================
``Q4_0``  18           ``d: f16 @0``, ``qs: u8[16] @2``.
                       ``q_j = qs[j] & 0xF`` for j < 16, ``qs[j-16] >> 4`` for j >= 16; ``w_j = (q_j - 8) * d``
``Q4_1``  20           ``d: f16 @0``, ``m: f16 @2``, ``qs: u8[16] @4``.
                       ``q_j`` as for Q4_0 (low nibbles are weights 0..15, high nibbles 16..31);
                       ``w_j = q_j * d + m``
``Q8_0``  34           ``d: f16 @0``, ``qs: i8[32] @2``.  ``w_j = qs[j] * d``
========  ===========  =====================================================================================

So a 4-bit block puts weights ``j`` and ``j + 16`` into the same byte (low and high nibble), not adjacent
weights. Every product is computed in float32 (``d``, ``m`` widened from f16 first) in the order written
above, which makes these functions bit-identical to ``gguf.quants.dequantize`` and to ggml's reference.

>>> import numpy as np
>>> block = np.zeros(20, dtype=np.uint8)               # one Q4_1 block: d = 0.5, m = -1.0
>>> block[0:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
>>> block[2:4] = np.frombuffer(np.float16(-1.0).tobytes(), np.uint8)
>>> block[4] = 0x3A                                     # weight 0: nibble 0xA, weight 16: nibble 0x3
>>> w = dequantize_blocks(block.reshape(1, 20), "Q4_1", (1, 32))
>>> float(w[0, 0]), float(w[0, 16]), float(w[0, 1])
(4.0, 0.5, -1.0)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BlockLayout", "BLOCK_LAYOUTS", "packed_row_bytes", "unpack_q4", "unpack_q8", "dequantize_blocks"]


@dataclass(frozen=True)
class BlockLayout:
    """One quantization type: ``block_size`` weights stored in ``block_bytes`` bytes."""

    name: str
    block_size: int
    block_bytes: int


#: the block-quantized types workbench reads and computes with
BLOCK_LAYOUTS: dict[str, BlockLayout] = {
    "Q4_0": BlockLayout("Q4_0", 32, 18),
    "Q4_1": BlockLayout("Q4_1", 32, 20),
    "Q8_0": BlockLayout("Q8_0", 32, 34),
}


def packed_row_bytes(quant_type: str, cols: int) -> int:
    """Bytes of one packed row of ``cols`` weights (``cols`` must be a multiple of the block size)."""
    layout = _layout(quant_type)
    if cols % layout.block_size:
        raise ValueError(f"a {quant_type} row of {cols} weights is not a whole number of "
                         f"{layout.block_size}-weight blocks")
    return cols // layout.block_size * layout.block_bytes


def unpack_q4(blocks: np.ndarray, quant_type: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The fields of Q4_0/Q4_1 blocks ``uint8[..., block_bytes]``: ``(d, m, q)`` with ``d`` and ``m`` float32
    ``[..., 1]`` (``m`` None for Q4_0) and ``q`` uint8 ``[..., 32]`` (the 4-bit codes in weight order)."""
    layout = _layout(quant_type)
    if quant_type not in ("Q4_0", "Q4_1"):
        raise ValueError(f"unpack_q4 reads Q4_0 or Q4_1 blocks, not {quant_type}")
    blocks = _as_blocks(blocks, layout)
    d = _f16_field(blocks, 0)
    m = _f16_field(blocks, 2) if quant_type == "Q4_1" else None
    qs = blocks[..., layout.block_bytes - 16:]
    q = np.concatenate([qs & np.uint8(0x0F), qs >> np.uint8(4)], axis=-1)
    return d, m, q


def unpack_q8(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fields of Q8_0 blocks ``uint8[..., 34]``: ``(d, q)``, ``d`` float32 ``[..., 1]``, ``q`` int8 ``[..., 32]``."""
    blocks = _as_blocks(blocks, BLOCK_LAYOUTS["Q8_0"])
    return _f16_field(blocks, 0), blocks[..., 2:].view(np.int8)


def dequantize_blocks(packed: np.ndarray, quant_type: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 tensor of logical ``shape`` whose packed rows are ``packed`` (uint8, the file's bytes)."""
    layout = _layout(quant_type)
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    row_bytes = packed_row_bytes(quant_type, shape[-1])
    if packed.dtype != np.uint8 or packed.size != rows * row_bytes:
        raise ValueError(f"{quant_type} data of shape {tuple(shape)} needs {rows * row_bytes} uint8 bytes, got "
                         f"{packed.size} {packed.dtype} values")
    blocks = np.ascontiguousarray(packed).reshape(-1, layout.block_bytes)
    if quant_type == "Q8_0":
        d, q = unpack_q8(blocks)
        values = q.astype(np.float32) * d
    else:
        d, m, q = unpack_q4(blocks, quant_type)
        if m is None:
            values = d * (q.astype(np.int8) - np.int8(8)).astype(np.float32)
        else:
            values = d * q.astype(np.float32) + m
    return values.reshape(shape)


def _layout(quant_type: str) -> BlockLayout:
    if quant_type not in BLOCK_LAYOUTS:
        raise ValueError(f"unknown block quantization type {quant_type!r}; known: {', '.join(BLOCK_LAYOUTS)}")
    return BLOCK_LAYOUTS[quant_type]


def _as_blocks(blocks: np.ndarray, layout: BlockLayout) -> np.ndarray:
    if blocks.dtype != np.uint8 or blocks.shape[-1] != layout.block_bytes:
        raise ValueError(f"{layout.name} blocks are uint8 [..., {layout.block_bytes}], got {blocks.dtype} "
                         f"{tuple(blocks.shape)}")
    return blocks


def _f16_field(blocks: np.ndarray, offset: int) -> np.ndarray:
    return np.ascontiguousarray(blocks[..., offset:offset + 2]).view(np.float16).astype(np.float32)
