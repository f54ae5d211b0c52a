"""A teaching intrinsic: ``matmul_add_4x4``, a 4 x 4 x 4 matrix multiply-accumulate done by plain loops.

It needs no special hardware, runs in the interpreter and on any CPU, and shows the
mechanics of ``sch.tensorize`` without vector instructions in the way::

    sch.tensorize(block_of_a_4x4x4_tile, "matmul_add_4x4")

Its implementation takes each tile as a strided view (``strides=(s, 1)``), so any
4 x 4 tile of a larger row-major matrix matches.
"""
from __future__ import annotations

from ... import ir  # noqa: F401
from ...ir.parser import prim_func
from .registry import register_tensor_intrin

import workbench as wb  # the script form's vocabulary (wb.grid, wb.block, ...)


@prim_func
def matmul_add_4x4_desc(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4, 4), "float32"),
                        C: wb.Buffer((4, 4), "float32")):
    for i, j, k in wb.grid(4, 4, 4):
        with wb.block("update"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]


@prim_func
def matmul_add_4x4_impl(a: wb.handle, b: wb.handle, c: wb.handle):
    sa = wb.int32()
    sb = wb.int32()
    sc = wb.int32()
    A = wb.match_buffer(a, (4, 4), "float32", strides=(sa, 1), offset_factor=1)
    B = wb.match_buffer(b, (4, 4), "float32", strides=(sb, 1), offset_factor=1)
    C = wb.match_buffer(c, (4, 4), "float32", strides=(sc, 1), offset_factor=1)
    for i in wb.unroll(4):
        for j in wb.unroll(4):
            for k in wb.serial(4):
                C[i, j] = C[i, j] + A[i, k] * B[k, j]


register_tensor_intrin("matmul_add_4x4", matmul_add_4x4_desc, matmul_add_4x4_impl, override=True,
                       notes="plain loops (i, j unrolled); for teaching: any CPU, and the interpreter",
                       precision="exact (the same operations in the same order as the description)")

__all__ = ["matmul_add_4x4_desc", "matmul_add_4x4_impl"]
