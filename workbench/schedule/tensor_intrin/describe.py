"""One-line descriptions of what a block computes (used by the registry table and tensorize's errors).

>>> import workbench as wb
>>> from workbench.schedule.tensor_intrin import get_tensor_intrin
>>> print(describe_desc(get_tensor_intrin("dot_u8s8_avx2").desc))
C[i] += A[k] * B[i, k]  (int32 accumulation of uint8 * int8; i: 8, k: 4)
"""
from __future__ import annotations

from ...ir import expr as E
from ...ir.functor import post_order_visit
from ...ir.stmt import Block, BlockRealize, BufferStore, For


def innermost(stmt) -> tuple[list[For], BlockRealize | None]:
    """The chain of loops from ``stmt`` down to its single innermost block realize (or None)."""
    loops: list[For] = []
    s = stmt
    while True:
        if isinstance(s, For):
            loops.append(s)
            s = s.body
        elif isinstance(s, BlockRealize) and s.block.name == "root" and not s.block.iter_vars:
            s = s.block.body
        elif isinstance(s, BlockRealize):
            return loops, s
        else:
            return loops, None


def _strip(e):
    while isinstance(e, E.Cast):
        e = e.value
    return e


def _same_load(a, store: BufferStore) -> bool:
    from ...ir.structural import structural_equal

    a = _strip(a)
    return (isinstance(a, E.BufferLoad) and a.buffer is store.buffer
            and structural_equal(tuple(a.indices), tuple(store.indices)))


def _text(e, names: dict) -> str:
    """The expression as text with casts left out (``A[k] * B[i, k]``)."""
    from ...ir.functor import substitute

    prec = {E.Add: 1, E.Sub: 1, E.Mul: 2}

    def fmt(x, outer: int = 0) -> str:
        x = _strip(x)
        if isinstance(x, E.BufferLoad):
            return f"{x.buffer.name}[{', '.join(str(substitute(i, names)) for i in x.indices)}]"
        p = prec.get(type(x))
        if p is not None:
            t = f"{fmt(x.a, p)} {x.symbol} {fmt(x.b, p + 1)}"
            return f"({t})" if p < outer else t
        return str(substitute(x, names))

    return fmt(e)


def describe_store(store: BufferStore, names: dict | None = None) -> tuple[str, str]:
    """``("C[i] += A[k] * B[i, k]", "int32 accumulation of uint8 * int8")`` for a store."""
    names = names or {}

    lhs = _text(E.BufferLoad(store.buffer, store.indices), names)
    v = store.value
    if isinstance(v, E.Add) and _same_load(v.a, store):
        rest, op = v.b, "+="
    elif isinstance(v, E.Add) and _same_load(v.b, store):
        rest, op = v.a, "+="
    else:
        rest, op = v, "="
    loads: list[str] = []

    def visit(n):
        if isinstance(n, E.BufferLoad):
            loads.append(n.buffer.dtype)

    post_order_visit(rest, visit)
    rhs_dtypes = " * ".join(loads) if isinstance(_strip(rest), E.Mul) else ", ".join(loads)
    kind = f"{store.buffer.dtype} accumulation of {rhs_dtypes}" if op == "+=" else \
        f"{store.buffer.dtype} from {rhs_dtypes or 'constants'}"
    return f"{lhs} {op} {_text(rest, names)}", kind


def describe_block(realize: BlockRealize, loops=()) -> str:
    """``C[i] += A[k] * B[i, k]  (int32 accumulation of uint8 * int8; i: 16, k: 4)``."""
    block: Block = realize.block
    body = block.body
    names = {}
    for iv in block.iter_vars:
        n = iv.var.name
        short = n[1:] if n.startswith("v") and len(n) > 1 else n
        names[iv.var] = E.Var(short, iv.var.dtype)
    if not isinstance(body, BufferStore):
        return f"block {block.name} (a body of {type(body).__name__})"
    comp, kind = describe_store(body, names)
    exts = ", ".join(f"{names[iv.var].name}: {iv.dom.extent}" for iv in block.iter_vars)
    return f"{comp}  ({kind}; {exts})"


def describe_desc(desc) -> str:
    """The one-line summary of a tensor intrinsic's description PrimFunc."""
    loops, realize = innermost(desc.body)
    if realize is None:
        return "(no block found in the description)"
    return describe_block(realize, loops)


__all__ = ["describe_desc", "describe_block", "describe_store", "innermost"]
