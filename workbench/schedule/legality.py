"""Legality helpers shared by the primitives: scopes, producers and consumers, regions, bindings."""
from __future__ import annotations

from typing import Iterable

from ..ir.expr import BufferLoad, IntImm, PrimExpr, Range, Var, as_int
from ..ir.functor import Mutator, Visitor, collect_vars, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferStore, For, IterType
from .bounds import const_bounds, const_of, lin_bounds, lin_sub, linear, loop_range
from .errors import NonAffineBindingError
from .tree import Index


def refresh_regions(block: Block) -> Block:
    """``block`` with reads/writes inferred again from its body (after a body change)."""
    from ..ir.arith import infer_block_access_regions

    reads, writes = infer_block_access_regions(block)
    return block.replace(reads=reads, writes=writes)


def is_reduction(block: Block) -> bool:
    return block.init is not None or any(iv.iter_type == IterType.REDUCE for iv in block.iter_vars)


def reads_buffer(block: Block, buf) -> bool:
    return any(r.buffer is buf for r in block.reads)


def writes_buffer(block: Block, buf) -> bool:
    return any(r.buffer is buf for r in block.writes)


def buffer_users(idx: Index, buf) -> tuple[list[str], list[str]]:
    """``(writers, readers)`` block names of ``buf`` anywhere in the program (root excluded)."""
    from .lookup import accessed

    writers, readers = [], []
    for n in idx.order:
        if n == "root":
            continue
        b = idx.block(n)
        if id(buf) in accessed(b, "write"):
            writers.append(n)
        if id(buf) in accessed(b, "read"):
            readers.append(n)
    return writers, readers


def allocating_block(idx: Index, buf) -> str | None:
    for n in idx.order:
        if any(b is buf for b in idx.block(n).alloc_buffers):
            return n
    return None


def check_affine(realizes: Iterable[BlockRealize], what: str) -> None:
    """Every binding of the blocks must be affine (floordiv/floormod by constants allowed) in the loops."""
    for realize in realizes:
        for iv, val in zip(realize.block.iter_vars, realize.iter_values):
            if not _quasi_affine(val):
                raise NonAffineBindingError(
                    f"cannot {what}: block {realize.block.name} binds {iv.var.name} to `{val}`, which is not an "
                    "affine expression of its loops", node=realize,
                    detail="Primitives that move loops or blocks need bindings such as i * 4 + j or i // 8.")


def _quasi_affine(e: PrimExpr) -> bool:
    from ..ir.expr import Add, FloorDiv, FloorMod, Mul, Sub

    if isinstance(e, (Var, IntImm)):
        return True
    if isinstance(e, (Add, Sub)):
        return _quasi_affine(e.a) and _quasi_affine(e.b)
    if isinstance(e, Mul):
        return (_quasi_affine(e.a) and isinstance(e.b, IntImm)) or (_quasi_affine(e.b) and isinstance(e.a, IntImm))
    if isinstance(e, (FloorDiv, FloorMod)):
        return _quasi_affine(e.a) and isinstance(e.b, IntImm)
    return False


def region_under(realize: BlockRealize, regions, buf, relax: dict, full_dims) -> list[tuple] | None:
    """Inclusive bounds (linear forms ``(lo, hi)`` or None per dim) of ``buf`` in ``regions`` of the realize.

    Iteration variables are replaced by the bindings; variables in ``relax`` range over
    their (inclusive, constant) bounds; the rest stay symbolic.
    """
    vmap = {iv.var: val for iv, val in zip(realize.block.iter_vars, realize.iter_values)}
    out = None
    for r in regions:
        if r.buffer is not buf:
            continue
        dims = []
        for rng in r.region:
            lo_e = substitute(rng.min, vmap)
            hi_e = substitute(rng.min + rng.extent - 1, vmap)
            llo, lhi = linear(lo_e), linear(hi_e)
            if llo is None or lhi is None:
                b_lo = const_bounds(lo_e, relax)
                b_hi = const_bounds(hi_e, relax)
                if b_lo is None or b_hi is None or collect_free(lo_e, relax) or collect_free(hi_e, relax):
                    dims.append(None)
                else:
                    dims.append(({None: b_lo[0]}, {None: b_hi[1]}))
                continue
            lo, _ = lin_bounds(llo, relax)
            _, hi = lin_bounds(lhi, relax)
            dims.append((lo, hi))
        out = dims if out is None else union(out, dims)
    return out


def collect_free(e, relax: dict) -> bool:
    return any(v not in relax for v in collect_vars(e))


def union(a: list, b: list) -> list:
    out = []
    for x, y in zip(a, b):
        if x is None or y is None:
            out.append(None)
            continue
        dlo, dhi = const_of(lin_sub(x[0], y[0]) or {None: 0}), const_of(lin_sub(x[1], y[1]) or {None: 0})
        if dlo is None or dhi is None:
            out.append(None)
            continue
        out.append((x[0] if dlo <= 0 else y[0], x[1] if dhi >= 0 else y[1]))
    return out


def relax_map(loops: Iterable[For]) -> dict | None:
    """``{loop var: (lo, hi)}`` for loops of constant bounds; None if one is symbolic."""
    out = {}
    for f in loops:
        r = loop_range(f)
        if r is None:
            return None
        out[f.loop_var] = r
    return out


def loops_between(anc: tuple, top: For | None) -> list[For]:
    """Loops in ``anc`` strictly below ``top`` (all loops when ``top`` is None), up to the nearest block."""
    out: list[For] = []
    for a in reversed(anc):
        if a is top:
            break
        if isinstance(a, (Block, BlockRealize)):
            break
        if isinstance(a, For):
            out.append(a)
    return out[::-1]


class ReplaceLoads(Mutator):
    """Replace loads of one buffer: ``fn(load) -> expr``."""

    def __init__(self, buf, fn):
        self.buf = buf
        self.fn = fn

    def visit_BufferLoad(self, n: BufferLoad):
        n2 = self.generic_visit(n)
        if n2.buffer is self.buf:
            return self.fn(n2)
        return n2
