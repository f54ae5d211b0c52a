"""Tensor-core intrinsics for ``sch.tensorize`` on CUDA targets (fp16 in, fp32 accumulate; ``wmma`` m16n16k16).

* ``wmma_16x16x16_f16f32``: ``C[16, 16] += float(A[16, 16]) @ float(B[16, 16])``, all row-major tiles
  of larger matrices (any row strides): one warp loads the three fragments, runs
  ``wmma.mma.sync`` and stores ``C`` back;
* ``wmma_fill_16x16_f32``: ``C[16, 16] = 0``, by one warp (``wmma`` fill and store).

Each is warp-collective: the 32 threads of a warp run it together on one tile, so the
tensorized block must not be inside a loop bound to ``threadIdx.x`` (bind warps to
``threadIdx.y``/``z``; the kernel then gets ``threadIdx.x = 32``). The helpers are
inline PTX (``wmma.load``, ``wmma.mma.sync``, ``wmma.store``: sm_70 and newer), so NVRTC
needs no headers. Each helper takes the addresses of a tile's elements ``[0, 0]`` and
``[1, 0]``: their difference is the row stride (the views' stride variables stay for
matching only). Tile pointers must be 32-byte aligned and strides multiples of 8
(16-byte rows), as the PTX ISA asks: 16-aligned tiles of matrices whose row length is
a multiple of 16 satisfy both.

>>> import workbench as wb
>>> import workbench.backend.cuda
>>> from workbench.schedule.tensor_intrin import get_tensor_intrin
>>> print(get_tensor_intrin("wmma_16x16x16_f16f32").summary)
C[i, j] += A[i, k] * B[k, j]  (float32 accumulation of float16 * float16; i: 16, j: 16, k: 16)
"""
from __future__ import annotations

from ...ir.parser import prim_func
from ...schedule.tensor_intrin.registry import register_tensor_intrin
from .codegen import WARP_HELPERS

import workbench as wb  # the script form's vocabulary (wb.grid, wb.block, ...)


def _regs(first: int, n: int = 8) -> str:
    return "{" + ",".join(f"%{first + k}" for k in range(n)) + "}"


def _outs(kind: str, name: str) -> str:
    return ", ".join(f'"={kind}"({name}[{k}])' for k in range(8))


_WMMA = (
    "__device__ __forceinline__ int wb_wmma_m16n16k16_f16f32(float* C, const float* C1, const unsigned short* A, "
    "const unsigned short* A1, const unsigned short* B, const unsigned short* B1) {\n"
    "  const int ldc = (int)(C1 - C), lda = (int)(A1 - A), ldb = (int)(B1 - B);\n"
    "  unsigned a[8], b[8]; float c[8];\n"
    "  __syncwarp();\n"
    f'  asm volatile("wmma.load.a.sync.aligned.row.m16n16k16.f16 {_regs(0)}, [%8], %9;" : {_outs("r", "a")} '
    ': "l"(A), "r"(lda));\n'
    f'  asm volatile("wmma.load.b.sync.aligned.row.m16n16k16.f16 {_regs(0)}, [%8], %9;" : {_outs("r", "b")} '
    ': "l"(B), "r"(ldb));\n'
    f'  asm volatile("wmma.load.c.sync.aligned.row.m16n16k16.f32 {_regs(0)}, [%8], %9;" : {_outs("f", "c")} '
    ': "l"(C), "r"(ldc));\n'
    f'  asm volatile("wmma.mma.sync.aligned.row.row.m16n16k16.f32.f32 {_regs(0)}, {_regs(8)}, {_regs(16)}, '
    f'{_regs(0)};" : ' + ", ".join(f'"+f"(c[{k}])' for k in range(8)) + " : "
    + ", ".join(f'"r"(a[{k}])' for k in range(8)) + ", " + ", ".join(f'"r"(b[{k}])' for k in range(8)) + ");\n"
    f'  asm volatile("wmma.store.d.sync.aligned.row.m16n16k16.f32 [%0], {_regs(1)}, %9;" :: "l"(C), '
    + ", ".join(f'"f"(c[{k}])' for k in range(8)) + ', "r"(ldc) : "memory");\n'
    "  __syncwarp();\n"
    "  return 0;\n"
    "}\n")

_FILL = (
    "__device__ __forceinline__ int wb_wmma_fill_m16n16_f32(float* C, const float* C1) {\n"
    "  const int ldc = (int)(C1 - C);\n"
    "  __syncwarp();\n"
    f'  asm volatile("wmma.store.d.sync.aligned.row.m16n16k16.f32 [%0], {_regs(1)}, %9;" :: "l"(C), '
    + ", ".join('"f"(0.0f)' for _ in range(8)) + ', "r"(ldc) : "memory");\n'
    "  __syncwarp();\n"
    "  return 0;\n"
    "}\n")

WARP_HELPERS["wb_wmma_m16n16k16_f16f32"] = (0, _WMMA)   # writes its first argument, C
WARP_HELPERS["wb_wmma_fill_m16n16_f32"] = (0, _FILL)


@prim_func
def wmma_mma_desc(A: wb.Buffer((16, 16), "float16"), B: wb.Buffer((16, 16), "float16"),
                  C: wb.Buffer((16, 16), "float32")):
    for i, j, k in wb.grid(16, 16, 16):
        with wb.block("update"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + wb.cast(A[vi, vk], "float32") * wb.cast(B[vk, vj], "float32")


@prim_func
def wmma_mma_impl(a: wb.handle, b: wb.handle, c: wb.handle):
    sa = wb.int32()
    sb = wb.int32()
    sc = wb.int32()
    A = wb.match_buffer(a, (16, 16), "float16", strides=(sa, 1), offset_factor=1)
    B = wb.match_buffer(b, (16, 16), "float16", strides=(sb, 1), offset_factor=1)
    C = wb.match_buffer(c, (16, 16), "float32", strides=(sc, 1), offset_factor=1)
    wb.evaluate(wb.call_extern("int32", "wb_wmma_m16n16k16_f16f32", C[0, 0], C[1, 0], A[0, 0], A[1, 0], B[0, 0],
                               B[1, 0]))


@prim_func
def wmma_fill_desc(C: wb.Buffer((16, 16), "float32")):
    for i, j in wb.grid(16, 16):
        with wb.block("init"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = 0.0


@prim_func
def wmma_fill_impl(c: wb.handle):
    sc = wb.int32()
    C = wb.match_buffer(c, (16, 16), "float32", strides=(sc, 1), offset_factor=1)
    wb.evaluate(wb.call_extern("int32", "wb_wmma_fill_m16n16_f32", C[0, 0], C[1, 0]))


_CUDA_ONLY = "CUDA targets only (sm_70+): a warp-collective inline-PTX helper; not in the interpreter or on a CPU"

register_tensor_intrin("wmma_16x16x16_f16f32", wmma_mma_desc, wmma_mma_impl, override=True, notes=_CUDA_ONLY,
                       precision="fp32 accumulation of exact fp16 products; the 16 products of each k step are "
                                 "summed in the tensor core's order, not the loop's")
register_tensor_intrin("wmma_fill_16x16_f32", wmma_fill_desc, wmma_fill_impl, override=True, notes=_CUDA_ONLY,
                       precision="exact")

__all__ = ["wmma_mma_desc", "wmma_mma_impl", "wmma_fill_desc", "wmma_fill_impl"]
