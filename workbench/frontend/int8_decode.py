"""Decode steps with 8-bit activations: llama.cpp's arithmetic for a 4-bit matrix times one vector.

With ``activations="int8"`` (``wb.frontend.load_llm(path, activations="int8")``), each fused kernel of a
decode step that multiplies a Q4_1 weight matrix by the token's activation vector (and applies an
``add``, ``multiply`` or ``silu`` epilogue) is replaced by one that does what llama.cpp does on a CPU:

1. the activation vector ``x`` (length ``K``) is quantized per block of 32 values, as llama.cpp's Q8_1:
   ``d = max|x| / 127``, ``q = round_half_even(x / d)`` (int8), the scale ``d`` and the block's
   ``d * sum(q)`` both rounded to float16;
2. each output is ``sum over blocks of dw * d * isum + mw * d * sum(q)``, where ``isum`` is the exact
   integer dot product of the block's 4-bit codes with ``q`` and ``dw``, ``mw`` the block's float16 scale and
   minimum (so ``dw * code + mw`` is the weight): on x86 with AVX-512 VNNI two ``vpdpbusd`` per block
   (16 codes times 16 activations each), elsewhere on x86 ``pmaddubsw`` + ``pmaddwd`` (exact here: a
   code is at most 15, so a pair of products stays far inside int16).

The weights are never widened to float and the multiply-adds are 8-bit integer ones, so a decode step
does about a third less work than with float activations. The price is llama.cpp's: the activation is
rounded to 8 bits, so logits move by about 1 % against the exact float computation (the default,
``activations="float32"``). The prompt (prefill) is always computed in float32. Other kernels (the
float16-free Q8_0 output head, other quantization types, a GPU target) are left as they are.

Before (the fused kernel, scheduled by ``schedule_decode_linear``)::

    for ax0_ax1_fused in wb.parallel(1536):
        ... linear_rf[...] += lv20[0, k] * (cast(W[n, ...] >> s & 15) * d + m)   # float per weight
    for i0, i1 in wb.grid(1, 1536):
        silu[i0, i1] = linear[i0, i1] * wb.sigmoid(linear[i0, i1])

After (:func:`int8_decode_kernel`)::

    for b in wb.serial(18):                       # quantize x: 18 blocks of 32
        ... xq[b * 32 + j] = int8(round(x[0, b * 32 + j] / d)); xs[b * 2] = f16(d); xs[b * 2 + 1] = ...
    for n in wb.parallel(1536):
        for b in wb.serial(18):
            isum = vpdpbusd(vpdpbusd(0, W[n, b * 20 + 4: +16] & 15, xq[b * 32: +16]), ... >> 4, ...)
            acc[0:4] += float(isum) * (f16(W[n, b * 20: +2]) * xs[b * 2]); macc += ... * xs[b * 2 + 1]
        lin[n] = acc[0] + acc[1] + acc[2] + acc[3] + macc[0]
    for i in wb.vectorized(1536):
        silu[0, i] = lin[i] * wb.sigmoid(lin[i])
"""
from __future__ import annotations

from ..ir.function import IRModule, PrimFunc

ACTIVATIONS = ("float32", "int8")
#: epilogue block name -> the output as an expression of the matmul's ``y`` and the extra input ``e``
_EPILOGUES = {None: "{y}", "silu": "{y} * wb.sigmoid({y})", "multiply": "{y} * {e}", "add": "{y} + {e}"}
_Q4_1_BLOCK = 20


def check_activations(activations: str) -> str:
    """``activations`` if it is one of :data:`ACTIVATIONS`, else a ``ValueError`` naming them."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {', '.join(map(repr, ACTIVATIONS))}, got {activations!r}")
    return activations


def dot_kind(target) -> str | None:
    """How ``target`` multiplies 8-bit codes: ``"vnni"`` (AVX-512 VNNI), ``"ssse3"`` (x86 without it), or
    None (not an x86 CPU: int8 decode kernels are not made)."""
    from ..backend.target import Target

    t = Target(target)
    if t.kind != "llvm" or not t.has("ssse3"):   # ssse3: an x86 CPU
        return None
    return "vnni" if t.has("avx512vnni") and t.has("avx512vl") else "ssse3"


def use_int8_decode(mod: IRModule, target="llvm") -> IRModule:
    """``mod`` with every decode kernel that :func:`int8_decode_kernel` can replace replaced."""
    kind = dot_kind(target)
    if kind is None:
        return mod
    funcs = dict(mod.functions)
    for name, func in mod.prim_funcs.items():
        new = int8_decode_kernel(func, kind)
        if new is not None:
            funcs[name] = new
    return mod.replace(functions=funcs)


def int8_decode_kernel(func: PrimFunc, kind: str = "vnni") -> PrimFunc | None:
    """The int8-activation form of ``func`` (a fused ``decode_q4 -> linear [-> add | multiply | silu]
    [-> last_row]`` kernel over one activation row and Q4_1 weights, as FuseTIR makes it), with the same
    name and parameters; None when ``func`` is not such a kernel."""
    shape = _decode_matvec_shape(func)
    if shape is None:
        return None
    n, k, epilogue, names = shape
    return _parse(_kernel_text(func.name, names, n, k, epilogue, kind))


def _decode_matvec_shape(func: PrimFunc):
    """``(N, K, epilogue, parameter names)`` of a decode matvec kernel, else None."""
    from ..ir.expr import as_int
    from .llama import _block_names

    blocks = _block_names(func)
    if blocks[-1:] == ["last_row"]:   # the last row of a one-row result: the result itself
        blocks = blocks[:-1]
    if len(blocks) not in (2, 3) or blocks[0] != "decode_q4" or blocks[1] != "linear":
        return None
    epilogue = blocks[2] if len(blocks) == 3 else None
    if epilogue not in _EPILOGUES:
        return None
    bufs = [func.buffer_map.get(p) for p in func.params]
    if any(b is None for b in bufs) or len(bufs) != (4 if epilogue in ("add", "multiply") else 3):
        return None
    w, x, out = bufs[0], bufs[1], bufs[-1]
    dims = [tuple(as_int(d) for d in b.shape) for b in bufs]
    if w.dtype != "uint8" or None in dims[0] or len(dims[1]) != 2 or dims[1][0] != 1 or None in dims[1]:
        return None
    n, row_bytes = dims[0]
    k = dims[1][1]
    if k % 32 or row_bytes != k // 32 * _Q4_1_BLOCK or dims[-1] != (1, n) or x.dtype != "float32" \
            or out.dtype != "float32":
        return None
    if epilogue in ("add", "multiply") and (dims[2] != (1, n) or bufs[2].dtype != "float32"):
        return None
    return n, k, epilogue, [b.name for b in bufs]


def _dot(kind: str, codes: str, acts: str, acc: str) -> str:
    """``acc`` (int32x4) plus the dot products of 16 codes (uint8x16) with 16 activations (int8x16), by fours."""
    if kind == "vnni":
        return (f'wb.call_intrin("int32x4", "llvm.x86.avx512.vpdpbusd.128", {acc}, '
                f'wb.call_intrin("int8x16", "reinterpret", {codes}), {acts})')
    pairs = f'wb.call_intrin("int16x8", "llvm.x86.ssse3.pmadd.ub.sw.128", {codes}, {acts})'
    return f'{acc} + wb.call_intrin("int32x4", "llvm.x86.sse2.pmadd.wd", {pairs}, wb.broadcast(wb.int16(1), 8))'


def _half(w: str, at: str) -> str:
    """The float16 stored little-endian at byte ``at`` of row ``n`` of ``w``, as float32."""
    return (f'wb.cast(wb.call_intrin("float16", "reinterpret", wb.cast({w}[n, {at}], "uint16") | '
            f'(wb.cast({w}[n, {at} + 1], "uint16") << wb.uint16(8))), "float32")')


def _kernel_text(name: str, params: list[str], n: int, k: int, epilogue, kind: str) -> str:
    w, x, out = params[0], params[1], params[-1]
    e = params[2] if len(params) == 4 else None
    nb = k // 32
    sig = ", ".join([f'{w}: wb.Buffer(({n}, {nb * _Q4_1_BLOCK}), "uint8")', f'{x}: wb.Buffer((1, {k}), "float32")']
                    + ([f'{e}: wb.Buffer((1, {n}), "float32")'] if e else [])
                    + [f'{out}: wb.Buffer((1, {n}), "float32")'])
    lo = f"{w}[n, wb.ramp(b * 20 + 4, 1, 16)] & wb.broadcast(wb.uint8(15), 16)"
    hi = f"{w}[n, wb.ramp(b * 20 + 4, 1, 16)] >> wb.broadcast(wb.uint8(4), 16)"
    isum = _dot(kind, hi, "xq[wb.ramp(b * 32 + 16, 1, 16)]",
                _dot(kind, lo, "xq[wb.ramp(b * 32, 1, 16)]", "wb.broadcast(wb.int32(0), 4)"))
    result = _EPILOGUES[epilogue].format(y="lin[i]", e=f"{e}[0, i]" if e else "")
    return f'''
@wb.prim_func
def {name}({sig}):
    wb.func_attr({{"scheduled": True, "int8_activations": True}})
    xq = wb.alloc_buffer(({k},), "int8")
    xs = wb.alloc_buffer(({nb * 2},), "float32")
    lin = wb.alloc_buffer(({n},), "float32")
    fmax = wb.alloc_buffer((32,), "float32", scope="local")
    isum = wb.alloc_buffer((32,), "int32", scope="local")
    for b in wb.serial({nb}):
        v = wb.let({x}[0, wb.ramp(b * 32, 1, 32)])
        fmax[wb.ramp(0, 1, 32)] = wb.abs(v)
{_halving("fmax", "wb.max")}
        d = wb.let(wb.max(fmax[0], fmax[1]) / wb.float32(127))
        inv = wb.let(wb.if_then_else(d > wb.float32(0), wb.float32(1) / d, wb.float32(0)))
        q = wb.let(wb.cast(wb.round(v * wb.broadcast(inv, 32)), "int32x32"))
        xq[wb.ramp(b * 32, 1, 32)] = wb.cast(q, "int8x32")
        isum[wb.ramp(0, 1, 32)] = q
{_halving("isum", "+")}
        xs[b * 2] = wb.cast(wb.cast(d, "float16"), "float32")
        xs[b * 2 + 1] = wb.cast(wb.cast(d * wb.cast(isum[0] + isum[1], "float32"), "float16"), "float32")
    for n in wb.parallel({n}):
        acc = wb.alloc_buffer((4,), "float32", scope="local")
        macc = wb.alloc_buffer((1,), "float32", scope="local")
        acc[wb.ramp(0, 1, 4)] = wb.broadcast(wb.float32(0), 4)
        macc[0] = wb.float32(0)
        for b in wb.serial({nb}):
            acc[wb.ramp(0, 1, 4)] = acc[wb.ramp(0, 1, 4)] + wb.cast({isum}, "float32x4") * wb.broadcast(
                {_half(w, "b * 20")} * xs[b * 2], 4)
            macc[0] = macc[0] + {_half(w, "b * 20 + 2")} * xs[b * 2 + 1]
        lin[n] = acc[0] + acc[1] + acc[2] + acc[3] + macc[0]
    for i in wb.vectorized({n}):
        {out}[0, i] = {result}
'''


def _halving(buf: str, op: str) -> str:
    """Statements that fold the 32 values of local ``buf`` into its first two, by halves (no loop, so that
    LLVM keeps the code as written: vector operations on contiguous lanes)."""
    lines = []
    for width in (16, 8, 4, 2):
        a, b = f"{buf}[wb.ramp(0, 1, {width})]", f"{buf}[wb.ramp({width}, 1, {width})]"
        lines.append(f"        {a} = " + (f"{a} + {b}" if op == "+" else f"{op}({a}, {b})"))
    return "\n".join(lines)


def _parse(text: str) -> PrimFunc:
    from ..ir.parser import parse

    return parse(text)


__all__ = ["ACTIVATIONS", "check_activations", "dot_kind", "int8_decode_kernel", "use_int8_decode"]
