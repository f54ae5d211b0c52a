"""x86 tensor intrinsics: int8 and bfloat16 dot products, and fp32 broadcast-FMA micro-kernels.

=========================  ==================  ==============================================================
name                       needs               computes (one call)
=========================  ==================  ==============================================================
``dot_u8s8_vnni``          avx512f, avx512vnni C[16] int32 += sum over 4 of uint8 A[k] * int8 B[i, k]
                                               (one ``vpdpbusd zmm``)
``dot_u8s8_avx2``          avx2                C[8] int32 += sum over 4 of uint8 A[k] * int8 B[i, k]
                                               (bytes widened to int16 in place, two ``vpmaddwd``)
``dot_bf16_avx512``        avx512f, avx512bf16 C[16] float32 += sum over 2 of bf16 A[k] * bf16 B[i, k]
                                               (one ``vdpbf16ps zmm``)
``dot_bf16_avx2_emulated`` avx2, fma           the same over 8 lanes, emulated: bf16 -> fp32 by shifts and
                                               masks, then two FMAs (x86 has no bf16 dot before AVX512-BF16)
``fma_f32x16_avx512``      avx512f             C[16] += A[0] * B[16] (broadcast + one ``vfmadd zmm``)
``fma_f32x8_avx2``         avx2, fma           C[8] += A[0] * B[8] (broadcast + one ``vfmadd ymm``)
=========================  ==================  ==============================================================

``B`` is packed: the 4 (int8) or 2 (bf16) values of ``k`` that one lane sums are
adjacent in memory, so ``B``'s region must be one contiguous block, as in a
``[N // 16, K // 4, 16, 4]`` layout (``sch.transform_layout`` makes one). ``A``'s
``k`` values must be contiguous too; ``C``'s lanes are one contiguous row piece.

**Precision contract** (``wb.list_tensor_intrins()`` shows it in its ``precision`` column).

* The int8 dots are **exact** for every input (u8 0..255, s8 -128..127): the same
  int32 result as the description, wrapping modulo 2**32 like it. ``vpdpbusd``
  sums the four 17-bit products in int32. The AVX2 dot does *not* use
  ``vpmaddubsw``: that instruction adds two ``u8 * s8`` products into a
  *saturating* int16 (``2 * 255 * 127 = 64770`` does not fit), so it is wrong for
  large inputs. Instead each int16 word of ``A`` and ``B`` (two adjacent bytes) is
  split into its low byte (``(w << 8) >> 8``: sign-extended for B; ``w & 0xFF`` for A)
  and high byte (``w >> 8``, arithmetic for B, logical for A); one ``vpmaddwd``
  multiplies the low bytes (``k`` = 0 and 2) and one the high bytes (``k`` = 1 and 3),
  each pair summed exactly into int32. Two ``vpmaddwd`` + two ``vpaddd`` per call
  (plus shifts of A and B that a register tile shares between calls) against the
  inexact ``vpmaddubsw + vpmaddwd + vpaddd``: the fastest exact AVX2 form we found
  (``vpmaddubsw`` on A split into ``A & 0x7F`` and ``A & 0x80`` needs four
  multiplies per call, and widening with ``vpmovzxbw``/``vpmovsxbw`` needs a
  horizontal add and a lane permute).
* ``dot_bf16_avx2_emulated`` is **bit-exact** with the description's order
  (``C + A[0] * B[i, 0]``, then ``+ A[1] * B[i, 1]``, in float32): a product of two
  bf16 values has at most 16 significant bits, so the FMA's unrounded product is the
  float32 product, except where that product is below float32's normal range
  (< 2**-126 in magnitude), where the FMA rounds once instead of twice.
* ``dot_bf16_avx512`` (``vdpbf16ps``) is **not bit-exact**: Intel's definition adds the
  ``k = 1`` product before the ``k = 0`` one (a different float32 rounding, up to an
  ulp of the partial sum per call), treats denormal inputs as zero and flushes
  denormal results to zero. Compare it with a tolerance.
* The fp32 FMA kernels round ``A[0] * B[j] + C[j]`` once where the description
  rounds the product and then the sum: at least as accurate, but it may differ from
  an uncontracted description in the last bit.
"""
from __future__ import annotations

from ...ir.parser import prim_func
from .registry import register_tensor_intrin

import workbench as wb


def _dot_desc(lanes: int, group: int, in_a: str, in_b: str, acc: str):
    text = f'''
@wb.prim_func
def dot_desc(A: wb.Buffer(({group},), "{in_a}"), B: wb.Buffer(({lanes}, {group}), "{in_b}"),
             C: wb.Buffer(({lanes},), "{acc}")):
    for i, k in wb.grid({lanes}, {group}):
        with wb.block("update"):
            vi, vk = wb.axis.remap("SR", [i, k])
            C[vi] = C[vi] + wb.cast(A[vk], "{acc}") * wb.cast(B[vi, vk], "{acc}")
'''
    return wb.parse(text)


# int8: VNNI (AVX-512) -------------------------------------------------------------------------

dot_u8s8_vnni_desc = _dot_desc(16, 4, "uint8", "int8", "int32")


@prim_func
def dot_u8s8_vnni_impl(A: wb.Buffer((4,), "uint8"), B: wb.Buffer((16, 4), "int8"),
                       C: wb.Buffer((16,), "int32")):
    # the 4 bytes of A as one int32, in all 16 lanes; B's 64 bytes as one vector
    C[wb.ramp(0, 1, 16)] = wb.call_intrin(
        "int32x16", "llvm.x86.avx512.vpdpbusd.512", C[wb.ramp(0, 1, 16)],
        wb.call_intrin("uint8x64", "reinterpret",
                       wb.broadcast(wb.call_intrin("int32", "reinterpret", A[wb.ramp(0, 1, 4)]), 16)),
        B[0, wb.ramp(0, 1, 64)])


# int8: AVX2, exact (bytes widened in place + pmaddwd) ----------------------------------------------

dot_u8s8_avx2_desc = _dot_desc(8, 4, "uint8", "int8", "int32")


@prim_func
def dot_u8s8_avx2_impl(A: wb.Buffer((4,), "uint8"), B: wb.Buffer((8, 4), "int8"),
                       C: wb.Buffer((8,), "int32")):
    # as int16 words: b[2i] = (B[i, 0], B[i, 1]), b[2i + 1] = (B[i, 2], B[i, 3]); a repeats (A[0], A[1]), (A[2], A[3])
    b = wb.let(wb.call_intrin("int16x16", "reinterpret", B[0, wb.ramp(0, 1, 32)]))
    a = wb.let(wb.call_intrin("uint16x16", "reinterpret",
                              wb.broadcast(wb.call_intrin("int32", "reinterpret", A[wb.ramp(0, 1, 4)]), 8)))
    # low bytes (k = 0, 2) and high bytes (k = 1, 3) as int16; pmaddwd: 8 exact int32 sums of 2 products each
    C[wb.ramp(0, 1, 8)] = C[wb.ramp(0, 1, 8)] + wb.call_intrin(
        "int32x8", "llvm.x86.avx2.pmadd.wd",
        (b << wb.broadcast(wb.int16(8), 16)) >> wb.broadcast(wb.int16(8), 16),
        wb.call_intrin("int16x16", "reinterpret", a & wb.broadcast(wb.uint16(255), 16))) + wb.call_intrin(
        "int32x8", "llvm.x86.avx2.pmadd.wd",
        b >> wb.broadcast(wb.int16(8), 16),
        wb.call_intrin("int16x16", "reinterpret", a >> wb.broadcast(wb.uint16(8), 16)))


# bfloat16: AVX512-BF16 ---------------------------------------------------------------------------

dot_bf16_avx512_desc = _dot_desc(16, 2, "bfloat16", "bfloat16", "float32")


@prim_func
def dot_bf16_avx512_impl(A: wb.Buffer((2,), "bfloat16"), B: wb.Buffer((16, 2), "bfloat16"),
                         C: wb.Buffer((16,), "float32")):
    C[wb.ramp(0, 1, 16)] = wb.call_intrin(
        "float32x16", "llvm.x86.avx512bf16.dpbf16ps.512", C[wb.ramp(0, 1, 16)],
        wb.call_intrin("bfloat16x32", "reinterpret",
                       wb.broadcast(wb.call_intrin("int32", "reinterpret", A[wb.ramp(0, 1, 2)]), 16)),
        B[0, wb.ramp(0, 1, 32)])


# bfloat16: emulated with AVX2 + FMA ------------------------------------------------------------

dot_bf16_avx2_emulated_desc = _dot_desc(8, 2, "bfloat16", "bfloat16", "float32")


@prim_func
def dot_bf16_avx2_emulated_impl(A: wb.Buffer((2,), "bfloat16"), B: wb.Buffer((8, 2), "bfloat16"),
                                C: wb.Buffer((8,), "float32")):
    # each int32 word of B holds (B[i, 0], B[i, 1]); a bf16 is the top half of a float32:
    # B[i, 0] = word << 16, B[i, 1] = word & 0xFFFF0000
    w = wb.let(wb.call_intrin("int32x8", "reinterpret", B[0, wb.ramp(0, 1, 16)]))
    C[wb.ramp(0, 1, 8)] = wb.fma(
        wb.broadcast(wb.cast(A[1], "float32"), 8),
        wb.call_intrin("float32x8", "reinterpret", wb.call_intrin("int32x8", "bitwise_and", w, wb.broadcast(-65536, 8))),
        wb.fma(wb.broadcast(wb.cast(A[0], "float32"), 8),
               wb.call_intrin("float32x8", "reinterpret", wb.call_intrin("int32x8", "shift_left", w, wb.broadcast(16, 8))),
               C[wb.ramp(0, 1, 8)]))


# fp32 broadcast + FMA micro-kernels -------------------------------------------------------------

def _fma_desc(lanes: int):
    return wb.parse(f'''
@wb.prim_func
def fma_desc(A: wb.Buffer((1,), "float32"), B: wb.Buffer(({lanes},), "float32"),
             C: wb.Buffer(({lanes},), "float32")):
    for j in range({lanes}):
        with wb.block("update"):
            vj = wb.axis.spatial({lanes}, j)
            C[vj] = C[vj] + A[0] * B[vj]
''')


def _fma_impl(lanes: int):
    return wb.parse(f'''
@wb.prim_func
def fma_impl(A: wb.Buffer((1,), "float32"), B: wb.Buffer(({lanes},), "float32"),
             C: wb.Buffer(({lanes},), "float32")):
    C[wb.ramp(0, 1, {lanes})] = wb.fma(wb.broadcast(A[0], {lanes}), B[wb.ramp(0, 1, {lanes})],
                                       C[wb.ramp(0, 1, {lanes})])
''')


fma_f32x16_avx512_desc, fma_f32x16_avx512_impl = _fma_desc(16), _fma_impl(16)
fma_f32x8_avx2_desc, fma_f32x8_avx2_impl = _fma_desc(8), _fma_impl(8)

EXACT = "exact"
_FMA_PRECISION = "FMA: one rounding where the description has two"
register_tensor_intrin("dot_u8s8_vnni", dot_u8s8_vnni_desc, dot_u8s8_vnni_impl,
                       target_features=("avx512f", "avx512vnni"), override=True, precision=EXACT,
                       notes="one vpdpbusd zmm: 16 lanes x 4 u8*s8 products into int32")
register_tensor_intrin("dot_u8s8_avx2", dot_u8s8_avx2_desc, dot_u8s8_avx2_impl,
                       target_features=("avx2",), override=True, precision=EXACT,
                       notes="bytes widened to int16 in place (shifts/mask), two vpmaddwd + two vpaddd: "
                             "8 lanes x 4, exact for all inputs (no saturating vpmaddubsw)")
register_tensor_intrin("dot_bf16_avx512", dot_bf16_avx512_desc, dot_bf16_avx512_impl,
                       target_features=("avx512f", "avx512bf16"), override=True,
                       precision="not bit-exact: adds k=1 before k=0, flushes denormals to zero",
                       notes="one vdpbf16ps zmm: 16 lanes x 2 bf16 products into float32")
register_tensor_intrin("dot_bf16_avx2_emulated", dot_bf16_avx2_emulated_desc, dot_bf16_avx2_emulated_impl,
                       target_features=("avx2", "fma"), override=True,
                       precision="bit-exact unless a product is subnormal",
                       notes="no native bf16 dot on AVX2: shifts/masks to fp32, then two FMAs (8 lanes x 2)")
register_tensor_intrin("fma_f32x16_avx512", fma_f32x16_avx512_desc, fma_f32x16_avx512_impl,
                       target_features=("avx512f",), override=True, precision=_FMA_PRECISION,
                       notes="broadcast A[0] + one vfmadd over 16 lanes (zmm)")
register_tensor_intrin("fma_f32x8_avx2", fma_f32x8_avx2_desc, fma_f32x8_avx2_impl,
                       target_features=("avx2", "fma"), override=True, precision=_FMA_PRECISION,
                       notes="broadcast A[0] + one vfmadd over 8 lanes (ymm)")
