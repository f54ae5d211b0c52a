"""The graph-level operator library: importing this package registers every op with
:func:`workbench.ir.graph.op.register_op` (``get_op`` imports it on first use).

One module per family:

- ``elementwise``: add, subtract, multiply, divide, where (numpy broadcasting); negative, exp, tanh,
  erf, sqrt, rsqrt, gelu, silu, relu, astype
- ``linalg``: matmul (batched, numpy semantics), linear
- ``nn``: softmax, log_softmax, layer_norm, rms_norm
- ``manipulate``: reshape, permute_dims, expand_dims, squeeze, concat, split, strided_slice, take, embedding
- ``reduce``: sum, mean, max
- ``attention``: scaled_dot_product_attention
- ``quant``: decode_q4, decode_q8 (GGUF block-quantized weights), decode_q4f32 (group-quantized q4f32_1), packed -> float32

>>> from workbench.ir.graph.op import get_op, list_ops
>>> "softmax" in list_ops(), get_op("matmul").pattern
(True, 'out_ewise_fusible')
"""
from __future__ import annotations

from . import attention, elementwise, linalg, manipulate, nn, quant, reduce

__all__ = ["attention", "elementwise", "linalg", "manipulate", "nn", "quant", "reduce"]
