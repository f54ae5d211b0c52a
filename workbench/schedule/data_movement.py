"""Data movement: ``read_at`` and ``write_at``, caches of the region one loop's body touches.

Like TVM's primitives of the same names, they put the copy *inside* a loop: ``read_at``
copies, at the start of each iteration of the loop, the part of a buffer that the
blocks in the loop read, and makes them read the copy; ``write_at`` lets the blocks in
the loop write a cache and copies the part they wrote back at the end of each iteration.
The cache buffer has the shape of the buffer it caches (as in TVM); lowering
(``compact_buffers``) shrinks it to the region one iteration uses.

Both refuse what they cannot show correct: a copy-in that a later write in the loop
would make stale, a copy-back of elements the loop may not have written, a read of the
write cache that no earlier write of the same iteration fills.
"""
from __future__ import annotations

from ..ir.arith import Analyzer
from ..ir.arith.linear import linear, to_expr
from ..ir.buffer import Buffer
from ..ir.expr import GE, LT, BufferLoad, IntImm, Max, Min, Range, Var, logical_and
from ..ir.functor import collect_vars, post_order_visit, substitute, uses_var
from ..ir.stmt import (
    Block,
    BlockRealize,
    BufferStore,
    For,
    ForKind,
    IterType,
    IterVar,
    SeqStmt,
    Stmt,
    seq,
)
from ..ir.structural import structural_equal
from .caching import _buf_name, _check_scope, _region_buffer
from .errors import ScheduleArgumentError, DataMovementError
from .legality import refresh_regions
from .lookup import accessed
from .loops import loop_names
from .primitive import primitive
from .reduction import axis_off_start, conjuncts
from .state import Outcome
from .trace import BlockRV, LoopRV
from .tree import fresh_name, replace_many, stmt_children


# looking around a loop ---------------------------------------------------------------------------


def top_blocks(stmt: Stmt, loops: tuple = ()) -> list[tuple[BlockRealize, tuple]]:
    """The block realizes in ``stmt`` not nested in another block, each with the loops
    between ``stmt`` and it (outermost first)."""
    if isinstance(stmt, BlockRealize):
        return [(stmt, loops)]
    below = loops + (stmt,) if isinstance(stmt, For) else loops
    out = []
    for child in stmt_children(stmt):
        out.extend(top_blocks(child, below))
    return out


def _body_items(loop: For) -> list[Stmt]:
    return list(loop.body.seq) if isinstance(loop.body, SeqStmt) else [loop.body]


def _bindings(realize: BlockRealize) -> dict:
    return {iv.var: v for iv, v in zip(realize.block.iter_vars, realize.iter_values)}


def outer_analyzer(anc: tuple, loop: For | None = None) -> Analyzer:
    """An analyzer that knows the ranges of the loops in ``anc`` (and ``loop``)."""
    an = Analyzer()
    for a in (*anc, loop):
        if isinstance(a, For):
            an.bind(a.loop_var, Range(a.min, a.extent))
    return an


def relaxed_region(an: Analyzer, realize: BlockRealize, regions, buf: Buffer, loops) -> list | None:
    """Inclusive ``[(lo, hi), ...]`` of ``buf`` in the block's ``regions`` while the ``loops`` run
    (bindings substituted; a bound that cannot be found is None); None if the block does not list ``buf``."""
    vmap = _bindings(realize)
    dom = {f.loop_var: Range(f.min, f.extent) for f in loops}
    out = None
    for r in regions:
        if r.buffer is not buf:
            continue
        dims = []
        for rng in r.region:
            lo = an.int_set(substitute(rng.min, vmap), dom).min
            hi = an.int_set(substitute(rng.min + rng.extent - 1, vmap), dom).max
            dims.append((lo, hi))
        out = dims if out is None else union(an, out, dims)
    return out


def regions_of(blk: Block, kind: str, buf: Buffer) -> tuple:
    """The block's declared read (or write) regions followed by the inferred ones: their union covers
    explicit regions (``annotate_buffer_access``), accesses a hand-written region may have missed, and a
    reduction's update of its own output, which is not listed as a read (as in TVM)."""
    from ..ir.arith import infer_block_access_regions

    reads, writes = infer_block_access_regions(blk)
    return (blk.reads + reads) if kind == "read" else (blk.writes + writes)


def union(an: Analyzer, a: list, b: list) -> list:
    def pick(x, y, fn):
        if x is None or y is None:
            return None
        return x if an.can_prove_equal(x, y) else an.simplify(fn(x, y))
    return [(pick(la, lb, Min), pick(ha, hb, Max)) for (la, ha), (lb, hb) in zip(a, b)]


def box_contains(an: Analyzer, box: list, region: list) -> bool:
    """True when the inclusive ``region`` lies inside ``box`` (``[(start, extent), ...]``) for every value of the
    outer loops."""
    for (start, ext), (lo, hi) in zip(box, region):
        if lo is None or hi is None:
            return False
        if not (an.can_prove(lo >= start) and an.can_prove(hi <= start + ext - 1)):
            return False
    return True


def dense_write_box(realize: BlockRealize, loops, buf: Buffer) -> list | str:
    """The box ``[(start, extent), ...]`` of ``buf`` that the block writes completely while ``loops`` run
    (``start`` over the loops outside them), or the reason why it cannot be shown.

    The block must be one store to ``buf`` (its init, if any, storing to the same place) with no
    predicate, each index affine in the loops, and the loops that index a dimension must tile it
    densely (coefficients 1, e1, e1*e2, ... of extents e1, e2, ...)."""
    blk = realize.block
    if not (isinstance(realize.predicate, IntImm) and realize.predicate.value):
        return f"its predicate `{realize.predicate}` may skip elements"
    store = blk.body
    if not isinstance(store, BufferStore) or store.buffer is not buf:
        return f"its body is not a single store to {buf.name}"
    if blk.init is not None and not (isinstance(blk.init, BufferStore) and blk.init.buffer is buf
                                     and structural_equal(tuple(blk.init.indices), tuple(store.indices))):
        return f"its init does not store to the same element of {buf.name} as its body"
    inner = {}
    for f in loops:
        m, e = f.min, f.extent
        if not (isinstance(m, IntImm) and isinstance(e, IntImm) and e.value >= 1):
            return f"loop {f.loop_var.name} has no constant, non-empty range"
        inner[f.loop_var] = (m.value, e.value)
    vmap = _bindings(realize)
    seen: set = set()
    box = []
    for idx in store.indices:
        lin = linear(substitute(idx, vmap))
        if lin is None:
            return f"its index `{idx}` is not an affine function of the loops"
        dim = _dense_dim(lin, inner, seen)
        if isinstance(dim, str):
            return dim
        box.append(dim)
    return box


def _dense_dim(lin: dict, inner: dict, seen: set) -> tuple | str:
    terms = sorted(((c, v) for v, c in lin.items() if v in inner), key=lambda t: t[0])
    outer = {v: c for v, c in lin.items() if v not in inner}
    start, size = to_expr(outer) if outer else IntImm(0), 1
    for c, v in terms:
        if v in seen:
            return f"loop {v.name} indexes two dimensions"
        seen.add(v)
        lo, ext = inner[v]
        if c != size:
            return f"loop {v.name} steps by {c} where {size} is needed to fill the dimension without gaps"
        start, size = start + c * lo, size * ext
    return Analyzer().simplify(start), IntImm(size, start.dtype)


# building the copy ------------------------------------------------------------------------------


def copy_nest(func, name: str, src: Buffer, dst: Buffer, box: list, guards: list, when=None) -> For:
    """``for ax...: with block(name): dst[v] = src[v]`` with ``v = start + ax`` over the box
    (``[(start, extent), ...]`` over outer loops); ``guards[d]`` lists ``"lo"``/``"hi"`` where dimension
    ``d`` needs a predicate to stay inside the buffer; ``when`` (over outer loops) is added to the predicate."""
    taken = loop_names(func)
    loops, ivs, binds, conds = [], [], [], ([] if when is None else [when])
    for d, (start, ext) in enumerate(box):
        lv = Var(fresh_name(f"ax{d}", taken), ext.dtype)
        taken.add(lv.name)
        dim = src.shape[d]
        ivs.append(IterVar(Var(f"v{d}", ext.dtype), Range(IntImm(0, dim.dtype), dim), IterType.SPATIAL))
        at = Analyzer().simplify(start + lv)
        binds.append(at)
        loops.append((lv, ext))
        if "lo" in guards[d]:
            conds.append(GE(at, IntImm(0, at.dtype)))
        if "hi" in guards[d]:
            conds.append(LT(at, dim))
    idx = tuple(iv.var for iv in ivs)
    blk = refresh_regions(Block(name, tuple(ivs), (), (), BufferStore(dst, BufferLoad(src, idx), idx)))
    nest: Stmt = BlockRealize(tuple(binds), logical_and(*conds) if conds else IntImm(1, "bool"), blk)
    for lv, ext in reversed(loops):
        nest = For(lv, IntImm(0, ext.dtype), ext, ForKind.SERIAL, nest)
    return nest


def check_bindable(anc: tuple, box: list, when, what: str, buf: Buffer, f: For) -> None:
    """Refuse a copy whose box (or guard) uses an iteration variable of a block around loop ``f``.

    Inside a block, a region can start at the block's own variable (``x[v_i0_o, 0:8]`` inside a
    blockized ``gelu_tanh_o``), but a block binding may only use loops, and a block sees the loops
    outside an enclosing block only through that block's variables: the copy could not be bound."""
    outer = {}
    for a in anc:
        if isinstance(a, BlockRealize):
            outer.update({id(iv.var): (iv.var, a.block.name) for iv in a.block.iter_vars})
    if not outer:
        return
    for e in [x for start, ext in box for x in (start, ext)] + ([when] if when is not None else []):
        hit = [v for v in collect_vars(e) if id(v) in outer]
        if hit:
            var, name = outer[id(hit[0])]
            raise DataMovementError(
                f"cannot {what} {buf.name} at loop {f.loop_var.name}: the bounds of the region to copy use "
                f"{var.name} (in `{e}`), an iteration variable of the enclosing block {name}; a block binding can use only "
                f"loops inside {name}, so the copy cannot be bound there",
                detail=f"Apply {what} at a loop outside block {name} (or before the blockize that made it).",
                node=f)


def _clamped_box(an: Analyzer, region: list, buf: Buffer) -> tuple[list, list]:
    """The read region as a copy box, cut to the buffer: ``(box, guards)`` for :func:`copy_nest`."""
    box, guards = [], []
    for (lo, hi), dim in zip(region, buf.shape):
        if lo is None or hi is None:
            box.append((IntImm(0, dim.dtype), dim))
            guards.append(())
            continue
        ext = an.simplify(hi - lo + 1)
        box.append((lo, ext))
        guards.append(tuple(side for side, ok in (("lo", an.can_prove(lo >= 0)), ("hi", an.can_prove(hi < dim)))
                            if not ok))
    return box, guards


# the primitives ---------------------------------------------------------------------------------


def _setup(sch, loop: LoopRV, block: BlockRV, k: int, kind: str, scope: str, what: str):
    f, f_anc = sch.loop_of(loop)
    realize, anc = sch.block_of(block)
    blk = realize.block
    _check_scope(scope, f"cannot {what} for block {blk.name}")
    buf = _region_buffer(blk, blk.reads if kind == "read" else blk.writes, k, kind, realize)
    if not any(a is f for a in anc):
        raise ScheduleArgumentError(f"cannot {what}: block {blk.name} is not inside loop {f.loop_var.name}",
                                    node=f)
    if f.kind == ForKind.VECTORIZED:
        raise ScheduleArgumentError(f"cannot {what} at loop {f.loop_var.name}: it is vectorized, and a copy "
                                    "cannot run inside a vector lane", node=f)
    return f, f_anc, realize, buf


def _positions(items: list, buf: Buffer) -> tuple[list, list]:
    """Which items of the loop body read / write ``buf``."""
    reads, writes = [], []
    for n, item in enumerate(items):
        blocks = [r.block for r, _ in top_blocks(item)]
        if any(id(buf) in accessed(b, "read") for b in blocks):
            reads.append(n)
        if any(id(buf) in accessed(b, "write") for b in blocks):
            writes.append(n)
    return reads, writes


def _check_found(positions: list, kind: str, buf: Buffer, f: For, realize: BlockRealize) -> None:
    if not positions:
        raise DataMovementError(f"cannot {kind}_at {buf.name} at loop {f.loop_var.name}: {buf.name} is allocated "
                                f"inside the loop, so there is nothing outside it to copy", node=realize)


def _finish(sch, f: For, f_anc: tuple, items: list, dst: Buffer) -> object:
    """The function with loop ``f``'s body replaced by ``items`` and ``dst`` allocated in its scope."""
    new_loop = f.replace(body=seq(*items))
    scope = sch.index().scope_of(f_anc)
    new_scope = scope.replace(block=scope.block.replace(
        body=_replace_in(scope.block.body, f, new_loop), alloc_buffers=scope.block.alloc_buffers + (dst,)))
    return replace_many(sch.func, {id(scope): new_scope})


def _replace_in(stmt: Stmt, old: Stmt, new: Stmt) -> Stmt:
    from .tree import replace_in_stmt

    return replace_in_stmt(stmt, {id(old): new})


def _new_cache(sch, buf: Buffer, scope: str) -> tuple[Buffer, str]:
    cname = _buf_name(buf.name, scope, sch.func)
    return Buffer(cname, buf.shape, buf.dtype, scope=scope), fresh_name(cname, sch.index().blocks)


@primitive("data_movement")
def read_at(sch, loop: LoopRV, block: BlockRV, read_buffer_index: int, storage_scope: str) -> Outcome:
    """Copy the part of a buffer that the blocks in ``loop`` read into a cache at the start of each
    iteration, and make them read the cache; returns the copy block.

    The copy covers the union of the regions the blocks under ``loop`` read (cut to the
    buffer's shape). Refused when a block in the loop writes the buffer after (or while)
    the loop reads it, since the copy would then miss the new values.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 8), "float32", name="A")
    >>> B = te.compute((4, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((4, 8), "float32")):
        for i, j in wb.grid(4, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    >>> i, j = sch.get_loops(sch.get_block("B"))
    >>> copy = sch.read_at(i, sch.get_block("B"), 0, "local")
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((4, 8), "float32")):
        A_local = wb.alloc_buffer((4, 8), "float32", scope="local")
        for i in wb.serial(4):
            for ax0, ax1 in wb.grid(1, 8):
                with wb.block("A_local"):
                    v0 = wb.axis.spatial(4, i + ax0)
                    v1 = wb.axis.spatial(8, ax1)
                    wb.reads(A[v0, v1])
                    wb.writes(A_local[v0, v1])
                    A_local[v0, v1] = A[v0, v1]
            for j in wb.serial(8):
                with wb.block("B"):
                    v_i, v_j = wb.axis.remap("SS", [i, j])
                    wb.reads(A_local[v_i, v_j])
                    wb.writes(B[v_i, v_j])
                    B[v_i, v_j] = A_local[v_i, v_j] * 2.0
    """
    f, f_anc, realize, buf = _setup(sch, loop, block, read_buffer_index, "read", storage_scope, "read_at")
    items = _body_items(f)
    reads, writes = _positions(items, buf)
    _check_found(reads, "read", buf, f, realize)
    if any(w >= reads[0] for w in writes):
        raise DataMovementError(
            f"cannot read_at {buf.name} at loop {f.loop_var.name}: a block in the loop writes {buf.name} after "
            f"the loop first reads it, so a copy made at the start of each iteration would miss the new values",
            detail="read_at needs the blocks that write the buffer inside the loop to come before the first "
                   "block that reads it.", node=realize)
    an = outer_analyzer(f_anc, f)
    region = None
    for item in items[reads[0]:]:
        for r, loops in top_blocks(item):
            part = relaxed_region(an, r, regions_of(r.block, "read", buf), buf, loops)
            if part is not None:
                region = part if region is None else union(an, region, part)
    if region is None:
        raise DataMovementError(f"cannot read_at {buf.name} at loop {f.loop_var.name}: the blocks that read it "
                                "do not list it in their read regions", node=realize)
    box, guards = _clamped_box(an, region, buf)
    when = _readers_guard(items[reads[0]:], buf, f) if _data_dependent(region) else None
    check_bindable(f_anc, box, when, "read_at", buf, f)
    dst, bname = _new_cache(sch, buf, storage_scope)
    nest = copy_nest(sch.func, bname, buf, dst, box, guards, when)
    new_items = items[:reads[0]] + [nest] + [substitute(s, {}, {buf: dst}) for s in items[reads[0]:]]
    return Outcome(func=_finish(sch, f, f_anc, new_items, dst), outputs=("block", bname))


@primitive("data_movement")
def write_at(sch, loop: LoopRV, block: BlockRV, write_buffer_index: int, storage_scope: str) -> Outcome:
    """Let the blocks in ``loop`` write a cache, and copy the part they wrote back at the end of each
    iteration; returns the copy block.

    Refused unless one block under ``loop`` provably writes every element of the region the
    blocks write there (one store, affine indices, loops that tile the region densely, no
    predicate), so the copy-back never writes an element the iteration did not compute; and
    unless every read of the buffer in the loop reads what an earlier block of the same
    iteration wrote (or is the block's own reduction update, started by its init).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 8), "float32", name="A")
    >>> B = te.compute((4, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((4, 8), "float32")):
        for i, j in wb.grid(4, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    >>> i, j = sch.get_loops(sch.get_block("B"))
    >>> copy = sch.write_at(i, sch.get_block("B"), 0, "local")
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((4, 8), "float32")):
        B_local = wb.alloc_buffer((4, 8), "float32", scope="local")
        for i in wb.serial(4):
            for j in wb.serial(8):
                with wb.block("B"):
                    v_i, v_j = wb.axis.remap("SS", [i, j])
                    wb.reads(A[v_i, v_j])
                    wb.writes(B_local[v_i, v_j])
                    B_local[v_i, v_j] = A[v_i, v_j] * 2.0
            for ax0, ax1 in wb.grid(1, 8):
                with wb.block("B_local"):
                    v0 = wb.axis.spatial(4, i + ax0)
                    v1 = wb.axis.spatial(8, ax1)
                    wb.reads(B_local[v0, v1])
                    wb.writes(B[v0, v1])
                    B[v0, v1] = B_local[v0, v1]
    """
    f, f_anc, realize, buf = _setup(sch, loop, block, write_buffer_index, "write", storage_scope, "write_at")
    items = _body_items(f)
    reads, writes = _positions(items, buf)
    _check_found(writes, "write", buf, f, realize)
    if reads and reads[-1] > writes[-1]:
        raise DataMovementError(
            f"cannot write_at {buf.name} at loop {f.loop_var.name}: a block in the loop reads {buf.name} after "
            f"the last block that writes it, so it would have to read the cache before the copy back",
            detail="write_at needs every block that reads the buffer inside the loop to come no later than the "
                   "last block that writes it.", node=realize)
    end = writes[-1] + 1
    an = outer_analyzer(f_anc, f)
    box = _covering_box(an, f, items[:end], buf)
    _check_cache_reads(an, f, f_anc, items[:end], buf)
    check_bindable(f_anc, box, None, "write_at", buf, f)
    dst, bname = _new_cache(sch, buf, storage_scope)
    nest = copy_nest(sch.func, bname, dst, buf, box, [()] * len(box))
    new_items = [substitute(s, {}, {buf: dst}) for s in items[:end]] + [nest] + items[end:]
    return Outcome(func=_finish(sch, f, f_anc, new_items, dst), outputs=("block", bname))


def _data_dependent(region: list) -> bool:
    """Whether a region's bounds read a buffer (``table[ids[i], :]``): computing them can itself read out of
    bounds where the blocks' predicates would have skipped the iteration."""
    found = []
    for bounds in region:
        for e in bounds:
            if e is not None:
                post_order_visit(e, lambda n: found.append(n) if isinstance(n, BufferLoad) else None)
    return bool(found)


def _readers_guard(items: list, buf: Buffer, f: For):
    """The predicate under which the reads of ``buf`` below loop ``f`` happen at all, as a condition on the
    loops outside the copy (``f`` and above): the readers' predicate terms, which must not use the loops
    inside ``f`` and must be the same for every reader; None when they have no predicate."""
    from .reduction import split_predicate

    guards = []
    for item in items:
        for r, loops in top_blocks(item):
            if id(buf) not in accessed(r.block, "read"):
                continue
            inner = {id(lp.loop_var) for lp in loops}
            kept, rest = split_predicate(r.predicate, lambda v: id(v) in inner)
            if rest:
                raise DataMovementError(
                    f"cannot read_at {buf.name} at loop {f.loop_var.name}: the region read from {buf.name} "
                    f"depends on loaded values, and block {r.block.name} reads them only where `{rest[0]}`, which "
                    f"depends on loops inside {f.loop_var.name}; the copy would compute the region where it is "
                    "not valid", node=r)
            guards.append(kept)
    if any(not structural_equal(g, guards[0]) for g in guards[1:]):
        raise DataMovementError(
            f"cannot read_at {buf.name} at loop {f.loop_var.name}: the region read from {buf.name} depends on "
            f"loaded values, and its readers run under different predicates ({', '.join(map(str, guards))})")
    if not guards or (isinstance(guards[0], IntImm) and guards[0].value):
        return None
    return guards[0]


def _covering_box(an: Analyzer, f: For, items: list, buf: Buffer) -> list:
    """The box one writer under ``f`` writes completely, containing what every writer there writes."""
    writers = [(r, loops) for item in items for r, loops in top_blocks(item) if id(buf) in accessed(r.block, "write")]
    region = None
    for r, loops in writers:
        part = relaxed_region(an, r, regions_of(r.block, "write", buf), buf, loops)
        region = part if region is None else union(an, region, part)
    reasons = []
    for r, loops in writers:
        box = dense_write_box(r, loops, buf)
        if isinstance(box, str):
            reasons.append(f"block {r.block.name}: {box}")
        elif box_contains(an, box, region):
            return box
        else:
            reasons.append(f"block {r.block.name} writes only part of what the loop writes")
    raise DataMovementError(
        f"cannot write_at {buf.name} at loop {f.loop_var.name}: no block in the loop can be shown to write every "
        f"element of {buf.name} that would be copied back, so the copy could overwrite {buf.name} with values "
        "never computed", detail="; ".join(reasons) + ".", node=writers[0][0])


def _check_cache_reads(an: Analyzer, f: For, f_anc: tuple, items: list, buf: Buffer) -> None:
    """Every block in ``items`` that reads ``buf`` must read values written earlier in the same iteration."""
    written_before = []
    for n, item in enumerate(items):
        for r, loops in top_blocks(item):
            if id(buf) not in accessed(r.block, "read"):
                continue
            why = ""
            if _self_started(r, loops, f, f_anc, buf):
                why = _init_skipped(r, (f, *loops))
                if not why:
                    continue
            region = relaxed_region(an, r, regions_of(r.block, "read", buf), buf, loops)
            if any(box_contains(an, b, region) for b in written_before if region is not None):
                continue
            if why:
                raise DataMovementError(
                    f"cannot write_at {buf.name} at loop {f.loop_var.name}: block {r.block.name} adds to "
                    f"{buf.name}, and {why}, so it continues a partial result from before the loop, which the "
                    "cache would not hold", detail="apply write_at at a loop that also holds the block that "
                    "starts the reduction, before this one.", node=r)
            raise DataMovementError(
                f"cannot write_at {buf.name} at loop {f.loop_var.name}: block {r.block.name} reads {buf.name} in the "
                f"loop, and with write_at it would read the cache, which cannot be shown to hold what it reads",
                detail="Reads of the buffer inside the loop must be of elements that an earlier block of the same "
                       "iteration writes completely, or a reduction's own update started by its init.",
                node=r)
        for r, loops in top_blocks(item):
            box_r = dense_write_box(r, loops, buf) if id(buf) in accessed(r.block, "write") else ""
            if not isinstance(box_r, str):
                written_before.append(box_r)


def _self_started(r: BlockRealize, loops, f: For, f_anc: tuple, buf: Buffer) -> bool:
    """A reduction that reads only the element it updates, starts it with its init, and whose reduction
    loops all run inside the loop ``f`` (or are ``f``), so it never reads a value from before the loop."""
    blk = r.block
    if blk.init is None or not isinstance(blk.body, BufferStore) or blk.body.buffer is not buf:
        return False
    if not (isinstance(blk.init, BufferStore) and blk.init.buffer is buf):
        return False
    at = tuple(blk.body.indices)
    loads = []
    post_order_visit(blk.body, lambda n: loads.append(n) if isinstance(n, BufferLoad) and n.buffer is buf else None)
    if not all(structural_equal(tuple(x.indices), at) for x in loads + [blk.init]):
        return False
    outer = {id(a.loop_var) for a in f_anc if isinstance(a, For)}
    for iv, val in zip(blk.iter_vars, r.iter_values):
        if iv.iter_type == IterType.REDUCE and uses_var(val, lambda v: id(v) in outer):
            return False
    return True


def _init_skipped(r: BlockRealize, loops) -> str:
    """Why the reduction block ``r`` does not run its init at the first iteration of ``loops`` (the copy's loop
    and those inside it), or "": the init runs where every reduction axis is at its domain's start, which a loop
    that loop_partition started above it never reaches, nor a predicate that is false there."""
    reduce_vals = [(iv, val) for iv, val in zip(r.block.iter_vars, r.iter_values) if iv.iter_type == IterType.REDUCE]
    missed = axis_off_start(reduce_vals, loops)
    if missed is not None:
        iv, first = missed
        return (f"the first iteration there puts its reduction axis {iv.var.name} at {first}, not "
                f"at the start {iv.dom.min} of its domain, where its init runs")
    start = {lp.loop_var: lp.min for lp in loops}
    an = Analyzer()
    reduce_loops = {id(lp.loop_var) for lp in loops for _, val in reduce_vals if uses_var(val, lp.loop_var)}
    for term in conjuncts(r.predicate):
        if uses_var(term, lambda v: id(v) in reduce_loops) and not an.can_prove(substitute(term, start)):
            return (f"its predicate term `{term}` cannot be shown to hold at the first iteration there, where its "
                    "init would run")
    return ""


__all__ = ["read_at", "write_at", "DataMovementError"]
