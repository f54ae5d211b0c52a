"""A library of common operators written in te, one module per family, and a test corpus.

- ``linalg``: matmul, batch_matmul, dense
- ``nn``: conv2d_nchw, depthwise_conv2d_nchw, max_pool2d, avg_pool2d, softmax, log_softmax,
  layer_norm, rms_norm, relu, gelu, silu
- ``transform``: pad, transpose, reshape, add / subtract / multiply / divide / maximum
  (numpy broadcasting), take, concatenate, rope_tables, rotary_embedding
- ``reduce``: sum, max, min, mean (numpy ``axis`` / ``keepdims``)

Each operator takes te tensors and returns the output tensor; ``OPS[name]()`` gives a
ready ``OpCase`` (function, random inputs, numpy reference) and ``corpus()`` all of them::

    >>> from workbench import te
    >>> from workbench.ir import op_library
    >>> x = te.placeholder((4, 10), name="x")
    >>> y = op_library.nn.softmax(x)
    >>> f = te.create_prim_func([x, y])
    >>> [c.name for c in op_library.corpus()][:3]
    ['matmul', 'matmul_symbolic', 'batch_matmul']
"""
from __future__ import annotations

from . import linalg, nn, reduce, transform
from ._util import OpShapeError
from .corpus import OPS, OpCase, corpus

__all__ = ["linalg", "nn", "reduce", "transform", "OPS", "OpCase", "corpus", "OpShapeError"]
