"""Target-specific intrinsics in LLVM code generation: ``llvm.x86.*`` calls, ``reinterpret``, feature checks.

Tensor intrinsics (``workbench.schedule.tensor_intrin``) implement their computation
with calls such as ``wb.call_intrin("int32x16", "llvm.x86.avx512.vpdpbusd.512", c, a, b)``.
Code generation hands every ``Call`` to :func:`emit_call` first; it handles

* ``reinterpret`` -- the same bits seen as another dtype (``uint8x4`` -> ``int32``),
  as C's ``memcpy`` or LLVM's ``bitcast``; the total number of bits must agree;
* ``llvm.*`` calls whose arguments are ``bfloat16`` vectors: code generation keeps
  bfloat16 values in ``float`` registers, so here they are passed as their raw
  16-bit patterns, packed two per ``i32`` (LLVM upgrades that form of
  ``llvm.x86.avx512bf16.dpbf16ps.512`` to its ``bfloat`` signature).

:func:`check_target_intrinsics` refuses, before any code is generated, a program
that calls an ``llvm.x86.*`` intrinsic the target's CPU lacks (a call of
``vpdpbusd`` on an AVX2-only CPU would otherwise die with an LLVM selection error
or an illegal-instruction signal).

>>> from workbench.backend import Target
>>> missing_features("llvm.x86.avx512.vpdpbusd.512", Target("llvm -mcpu=znver3"))
['avx512f', 'avx512vnni']
>>> missing_features("llvm.x86.avx512.vpdpbusd.512", Target("llvm -mcpu=sapphirerapids"))
[]
"""
from __future__ import annotations

import llvmlite.ir as ir

from ...ir import expr as E
from ...ir.dtype import bits_of, element_of, lanes_of
from ...ir.functor import post_order_visit
# the feature tables are pure data and live with the target, so that the schedule layer reads them
# without importing this backend; they are re-exported here for code that imported them from here
from ..target import CPU_FEATURES, INTRINSIC_FEATURES, TargetFeatureError, cpu_features, missing_features


def check_target_intrinsics(funcs: dict, target) -> None:
    """Raise :class:`TargetFeatureError` when a function calls an ``llvm.x86.*`` intrinsic the target lacks."""
    for name, f in funcs.items():
        ops: dict[str, None] = {}

        def visit(n):
            if isinstance(n, E.Call) and n.op.startswith("llvm.x86."):
                ops[n.op] = None

        post_order_visit(f.body, visit)
        for op in ops:
            miss = missing_features(op, target)
            if miss:
                raise TargetFeatureError(
                    f"{name} calls {op}, which needs {', '.join(miss)}, but target {target} lacks "
                    f"{'it' if len(miss) == 1 else 'them'}; build for a CPU that has it (e.g. "
                    f"target=\"llvm -mcpu=sapphirerapids\" to look at the assembly) or tensorize with an "
                    f"intrinsic this CPU has (wb.list_tensor_intrins() shows each one's features)")


# code generation ----------------------------------------------------------------------------


def _mem_vec(dtype: str) -> ir.Type:
    from .codegen import mem_type

    t = mem_type(element_of(dtype))
    n = lanes_of(dtype)
    return t if n == 1 else ir.VectorType(t, n)


def raw_bits(gen, e: E.PrimExpr) -> ir.Value:
    """The value of ``e`` in its memory representation (bfloat16 as i16, bool as i8)."""
    el = element_of(e.dtype)
    if el not in ("bfloat16", "bool"):
        return gen.expr(e)
    b = gen.b
    if isinstance(e, E.BufferLoad) and len(e.indices) == 1:
        idx = e.indices[0]
        if lanes_of(idx.dtype) == 1:
            return b.load(gen._addr(e.buffer, gen.expr(idx)), typ=_mem_vec(el), align=bits_of(el) // 8 or 1)
        if isinstance(idx, E.Ramp) and isinstance(idx.stride, E.IntImm) and idx.stride.value == 1:
            return b.load(gen._addr(e.buffer, gen.expr(idx.base)), typ=_mem_vec(e.dtype), align=bits_of(el) // 8 or 1)
    if isinstance(e, E.Broadcast):
        return gen.splat_value(raw_bits(gen, e.value), e.lanes)
    if isinstance(e, E.Call) and e.op == "reinterpret":
        return b.bitcast(raw_bits(gen, e.args[0]), _mem_vec(e.dtype))
    return gen._to_mem(gen.expr(e), e.dtype)


def _reinterpret(gen, e: E.Call) -> ir.Value:
    if len(e.args) != 1:
        raise TypeError(f"reinterpret takes one argument, got {len(e.args)}")
    src = e.args[0]
    sb = bits_of(src.dtype) * lanes_of(src.dtype) if element_of(src.dtype) != "bool" else 8 * lanes_of(src.dtype)
    db = bits_of(e.dtype) * lanes_of(e.dtype)
    if sb != db:
        raise TypeError(f"reinterpret of `{src}` ({src.dtype}, {sb} bits) as {e.dtype} ({db} bits): "
                        "the sizes must agree")
    v = gen.b.bitcast(raw_bits(gen, src), _mem_vec(e.dtype))
    return gen._from_mem(v, e.dtype)


def emit_call(gen, e: E.Call) -> ir.Value | None:
    """LLVM code for ``e`` when it is a target-specific call, else None (the generic path handles it)."""
    if e.op == "reinterpret":
        return _reinterpret(gen, e)
    if e.op.startswith("llvm.") and any(element_of(a.dtype) == "bfloat16" for a in e.args):
        from .codegen import value_type

        args = []
        for a in e.args:
            if element_of(a.dtype) == "bfloat16":
                n = lanes_of(a.dtype)
                if n % 2:
                    raise TypeError(f"{e.op}: a bfloat16 argument needs an even number of lanes, got {a.dtype}")
                args.append(gen.b.bitcast(raw_bits(gen, a), ir.VectorType(ir.IntType(32), n // 2)))
            else:
                args.append(gen.expr(a))
        fn = gen.cg.declare(e.op, value_type(e.dtype), [a.type for a in args])
        return gen.b.call(fn, args)
    return None


__all__ = ["INTRINSIC_FEATURES", "CPU_FEATURES", "TargetFeatureError", "cpu_features", "missing_features",
           "check_target_intrinsics", "emit_call", "raw_bits"]
