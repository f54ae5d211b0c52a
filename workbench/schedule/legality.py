"""Legality helpers shared by the primitives: scopes, producers and consumers, regions, bindings."""
from __future__ import annotations

from typing import Iterable

from ..ir.expr import BufferLoad, IntImm, PrimExpr, Range, Var, as_int
from ..ir.functor import Mutator, collect_vars, post_order_visit, substitute, uses_var
from ..ir.buffer import Buffer
from ..ir.stmt import Block, BlockRealize, For, ForKind, IfThenElse, IterType
from ..ir.arith import Analyzer
from ..ir.arith.bound import const_bounds
from ..ir.arith.linear import AtomTable, const_of, lin_bounds, lin_sub, linear, linear_atoms
from .errors import NonAffineBindingError
from .tree import Index, child_blocks


def refresh_regions(block: Block) -> Block:
    """``block`` with reads/writes inferred again from its body (after a body change).

    A block holding other blocks (a blockize outer block) gets its regions cut to the buffers
    where they provably reach past an edge (:func:`~workbench.schedule.blockize.refresh_clamped`):
    inferred over its loops without the inner blocks' predicates and guards, they can cover
    more than the buffer, though the accesses themselves stay inside it."""
    from ..ir.arith import infer_block_access_regions

    if child_blocks(block.body):
        from .blockize import refresh_clamped

        return refresh_clamped(block)
    reads, writes = infer_block_access_regions(block)
    return block.replace(reads=reads, writes=writes)


def is_reduction(block: Block) -> bool:
    return block.init is not None or any(iv.iter_type == IterType.REDUCE for iv in block.iter_vars)


def loads_buffer(node, buf) -> bool:
    """True when the expression or statement ``node`` loads ``buf`` somewhere (looked up in the IR itself,
    not in a block's declared regions)."""
    found = []
    post_order_visit(node, lambda n: found.append(n) if isinstance(n, BufferLoad) and n.buffer is buf else None)
    return bool(found)


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


def region_under(realize: BlockRealize, regions, buf, relax: dict, full_dims,
                 atoms: AtomTable | None = None) -> list[tuple] | None:
    """Inclusive bounds (linear forms ``(lo, hi)`` or None per dim) of ``buf`` in ``regions`` of the realize.

    Iteration variables are replaced by the bindings; variables in ``relax`` range over
    their (inclusive, constant) bounds; the rest stay symbolic. A binding through a fused
    loop (``f % 8 * 4 + i1``) keeps ``f % 8`` as an opaque key of the linear forms, shared
    through ``atoms`` by every region bounded with the same table, so the box stays exact.
    """
    atoms = AtomTable() if atoms is None else atoms
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
                if b_lo is not None and b_hi is not None:
                    dims.append(({None: b_lo[0]}, {None: b_hi[1]}))
                    continue
                bounds = _bounds_through_atoms(lo_e, hi_e, relax, atoms)
                if bounds is None:
                    dims.append(None)
                    continue
                lo, hi, llo, lhi = bounds
            else:
                lo, _ = lin_bounds(llo, relax)
                _, hi = lin_bounds(lhi, relax)
            dims.append(_clamp(lo, hi, rng, realize, llo, lhi, relax))
        out = dims if out is None else union(out, dims)
    return out


def _bounds_through_atoms(lo_e: PrimExpr, hi_e: PrimExpr, relax: dict, atoms: AtomTable) -> tuple | None:
    """``(lo, hi, lin lo_e, lin hi_e)`` of a dimension whose bounds are not affine, or None.

    Both ends are simplified with the relaxed variables bound, then read as linear forms whose
    non-affine terms are opaque keys (``f // 8`` of a fixed fused loop stays symbolic). A term of
    relaxed variables only (``g % 4``) ranges over its constant bounds; where a term mixes relaxed
    and fixed variables, the symbolic interval of the whole end is taken instead.
    """
    an = Analyzer()
    for v, (lo, hi) in relax.items():
        an.bind(v, Range.from_begin_end(IntImm(lo, v.dtype), IntImm(hi + 1, v.dtype)))
    lo_e, hi_e = an.simplify(lo_e), an.simplify(hi_e)
    llo, lhi = linear_atoms(lo_e, atoms), linear_atoms(hi_e, atoms)
    ranges = _atom_ranges(list(llo) + list(lhi), relax)
    if ranges is not None:
        return lin_bounds(llo, ranges)[0], lin_bounds(lhi, ranges)[1], llo, lhi
    lo_s, hi_s = an.int_set(lo_e).min, an.int_set(hi_e).max
    if lo_s is None or hi_s is None:
        return None
    lo, hi = linear_atoms(lo_s, atoms), linear_atoms(hi_s, atoms)
    if any(k is not None and uses_var(k, lambda v: v in relax) for k in list(lo) + list(hi)):
        return None
    return lo, hi, llo, lhi


def _atom_ranges(keys: list, relax: dict) -> dict | None:
    """``relax`` plus the constant bounds of each opaque key of relaxed variables only; None when a
    key mixes relaxed and fixed variables (or one of relaxed variables cannot be bounded)."""
    out = dict(relax)
    for k in keys:
        if k is None or isinstance(k, Var) or not uses_var(k, lambda v: v in relax):
            continue
        b = const_bounds(k, relax)
        if b is None:
            return None
        out[k] = b
    return out


def _clamp(lo: dict, hi: dict, rng: Range, realize: BlockRealize, llo: dict, lhi: dict, relax: dict) -> tuple:
    """Constant bounds narrowed by what the block guarantees: its iteration variables stay in their
    domains, and its predicate holds (``wb.where(i * 32 + j < 100)`` stops ``i * 32 + j`` at 99)."""
    lo_c, hi_c = const_of(lo), const_of(hi)
    if lo_c is None and hi_c is None:
        return lo, hi
    an = Analyzer()
    for iv in realize.block.iter_vars:
        an.bind(iv.var, iv.dom)
    if lo_c is not None:
        lo_c = max(lo_c, an.const_int_bound(rng.min).min_value)
    if hi_c is not None:
        hi_c = min(hi_c, an.const_int_bound(rng.min + rng.extent - 1).max_value)
    for e, kind, c in _predicate_facts(realize, relax):
        side, cur = (llo, lo_c) if kind == "ge" else (lhi, hi_c)
        k = const_of(lin_sub(side, e) or {None: 0})
        if cur is None or k is None:
            continue
        if kind == "ge":
            lo_c = max(lo_c, c + k)
        else:
            hi_c = min(hi_c, c + k)
    return ({None: lo_c} if lo_c is not None else lo), ({None: hi_c} if hi_c is not None else hi)


def _predicate_facts(realize: BlockRealize, relax: dict) -> list[tuple]:
    """The block predicate as ``(linear e, "le"|"ge", constant c)`` facts over the loops."""
    from ..ir.arith.region import bounds_from_condition

    out = []
    for e, kind, c in bounds_from_condition(realize.predicate):
        le, lc = linear(e), linear(c)
        if le is None or lc is None:
            continue
        cc = const_of(lc)
        if cc is None:
            b = lin_bounds(lc, relax)
            cc = const_of(b[1] if kind == "le" else b[0])   # a bound that holds for every relaxed value
        if cc is not None:
            out.append((le, kind, cc))
    return out


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
        m, e = as_int(f.min), as_int(f.extent)
        if m is None or e is None:
            return None
        out[f.loop_var] = (m, m + e - 1)
    return out


def region_under_loops(realize: BlockRealize, regions, buf, loops: list[For], atoms: AtomTable) -> list | None:
    """``region_under`` with ``loops`` relaxed: those of constant bounds over their ranges; a dim that
    depends on a loop of symbolic bounds (``k < n``) is unbounded (None), the other dims stay exact."""
    relax = relax_map([lp for lp in loops if relax_map([lp]) is not None]) or {}
    symbolic = {lp.loop_var for lp in loops if lp.loop_var not in relax}
    dims = region_under(realize, regions, buf, relax, None, atoms)
    if dims is None or not symbolic:
        return dims

    def uses(lin: dict) -> bool:
        return any(k is not None and uses_var(k, lambda v: v in symbolic) for k in lin)

    return [None if d is None or uses(d[0]) or uses(d[1]) else d for d in dims]


def _thread_rank(tag: str) -> int:
    """0 for ``blockIdx.*``; 1 for ``threadIdx.*`` and ``vthread.*`` (a virtual thread is one thread's work)."""
    return 0 if tag.startswith("blockIdx") else 1


def _storage_rank(scope: str) -> int:
    """How private a storage scope is: 0 global, 1 shared (one block), 2 warp, 3 and more per thread."""
    return {"global": 0, "shared": 1, "shared.dyn": 1, "warp": 2}.get(scope, 3)


def shared_by_threads(loop: For, scope: str) -> bool:
    """True when one buffer of storage ``scope`` serves every iteration of the thread-bound ``loop``, so a
    producer computed under it must cover what all of them need (TVM's ``CanRelaxStorageUnderThread``).

    ``shared``: the ``threadIdx.*`` and ``vthread.*`` loops of one block; ``warp``: ``threadIdx.x``;
    ``local``: none (one thread's own). ``global`` relaxes none either, as in TVM: each thread computes
    what it reads itself, which is correct without synchronisation (relaxing ``blockIdx`` would make
    every block compute the whole buffer).
    """
    if loop.kind != ForKind.THREAD_BINDING:
        return False
    rank = _storage_rank(scope)
    if rank == 0:
        return False
    if rank == 2:
        return loop.thread == "threadIdx.x"
    return rank <= _thread_rank(loop.thread)


def relaxed_thread_loops(above: Iterable[For], scope: str) -> list[For]:
    """The loops of ``above`` (the compute-at loop and those around it) over which a buffer of
    ``scope`` is shared: see :func:`shared_by_threads`."""
    return [lp for lp in above if shared_by_threads(lp, scope)]


def check_thread_extents(loop: For, anc: tuple, tag: str) -> None:
    """Binding ``loop`` to ``tag`` must give one launch size: the loop's extent may not change from one
    iteration of the loops around it to the next (each block launches the same threads), and every loop
    bound to ``tag`` in the same kernel (below its outermost thread-bound loop) must have the same extent."""
    from .errors import ScheduleArgumentError

    around = [a for a in anc if isinstance(a, For) and a is not loop]
    varying = [a.loop_var.name for a in around if uses_var(loop.extent, a.loop_var)]
    if varying:
        raise ScheduleArgumentError(
            f"cannot bind loop {loop.loop_var.name} to {tag}: its extent `{loop.extent}` changes with loop "
            f"{varying[0]}, but a kernel launches the same number of threads for every block", node=loop)
    bound = [a for a in around if a.kind == ForKind.THREAD_BINDING]
    kernel = bound[0] if bound else loop
    an = Analyzer()
    for other in _loops_bound_to(kernel, tag):
        if other is loop or an.can_prove_equal(other.extent, loop.extent):
            continue
        raise ScheduleArgumentError(
            f"cannot bind loop {loop.loop_var.name} (extent {loop.extent}) to {tag}: loop {other.loop_var.name} "
            f"in the same kernel is bound to {tag} with extent {other.extent}, and a kernel has one size per "
            "thread axis", node=loop,
            detail="Split the loops so that every loop bound to one thread axis has the same extent.")


def _loops_bound_to(kernel: For, tag: str) -> list[For]:
    found: list[For] = []
    post_order_visit(kernel, lambda n: found.append(n) if isinstance(n, For) and n.kind == ForKind.THREAD_BINDING
                     and n.thread == tag else None)
    return found


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


def written_box(realize: BlockRealize, buf: Buffer):
    """The box of ``buf`` the block writes completely, as ``[(start, extent), ...]``, or ``None``.

    The block's write region must tile a box densely over the block's iteration domain:
    each dimension constant, or ``a * v + c`` with extent ``a`` for a spatial iterator ``v``
    used by no other dimension; and no condition in the block may skip a store.
    """
    blk = realize.block
    regions = [r for r in blk.writes if r.buffer is buf]
    if len(regions) != 1:
        return None
    guarded = []
    post_order_visit(blk.body, lambda n: guarded.append(n) if isinstance(n, IfThenElse) or (
        isinstance(n, BlockRealize) and not (isinstance(n.predicate, IntImm) and n.predicate.value)) else None)
    if guarded:
        return None
    an = Analyzer()
    spatial = {iv.var: iv for iv in blk.iter_vars if iv.iter_type == IterType.SPATIAL}
    others = {iv.var for iv in blk.iter_vars} - set(spatial)
    used: set = set()
    box = []
    for rng in regions[0].region:
        vs = [v for v in collect_vars(rng.min) if v in spatial or v in others]
        if uses_var(rng.extent, lambda x: x in spatial or x in others):
            return None
        if not vs:
            box.append((rng.min, rng.extent))
            continue
        if len(vs) != 1 or vs[0] not in spatial or vs[0] in used:   # collect_vars lists each once
            return None
        v = vs[0]
        used.add(v)
        c = an.simplify(substitute(rng.min, {v: IntImm(0, v.dtype)}))
        a = an.simplify(substitute(rng.min, {v: IntImm(1, v.dtype)}) - c)
        if not an.can_prove_equal(rng.min, a * v + c) or not an.can_prove_equal(a, rng.extent):
            return None
        dom = spatial[v].dom
        box.append((an.simplify(a * dom.min + c), an.simplify(a * dom.extent)))
    return box


def box_fits(box, buf: Buffer) -> str:
    """``"whole"`` if the box is all of ``buf``, ``"inside"`` if provably within it, else ``""``."""
    an = Analyzer()
    if all(an.can_prove_equal(start, 0) and an.can_prove_equal(ext, dim) for (start, ext), dim in zip(box, buf.shape)):
        return "whole"
    if all(an.can_prove(start >= 0) and an.can_prove(start + ext <= dim) for (start, ext), dim in zip(box, buf.shape)):
        return "inside"
    return ""
