"""Layout: ``transform_layout`` rewrites a buffer's shape and every access to it."""
from __future__ import annotations

import inspect

import numpy as np

from ..ir import expr as E
from ..ir.arith import detect_iter_map
from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, IntImm, PrimExpr, Var, as_int, convert
from ..ir.functor import Mutator, collect_vars, substitute
from ..ir.stmt import Block, BlockRealize, BufferStore, For, ForKind, IterType, IterVar, SeqStmt, seq
from ..ir.arith.bound import const_bounds
from .errors import NonAffineBindingError, NotAChainError, ScheduleArgumentError
from .blockize import refresh_clamped
from .legality import allocating_block, buffer_users, refresh_regions
from .state import Outcome
from .trace import IndexMapText
from .tree import Index, fresh_name, replace_many
from .primitive import primitive


def _resolve_buffer(sch, block, buffer):
    realize, anc = sch.block_of(block)
    blk = realize.block
    if isinstance(buffer, str):
        for r in tuple(blk.reads) + tuple(blk.writes):
            if r.buffer.name == buffer:
                return realize, r.buffer
        raise ScheduleArgumentError(f"block {blk.name} accesses no buffer named {buffer!r}", node=realize)
    if not (isinstance(buffer, tuple) and len(buffer) == 2 and buffer[0] in ("read", "write")):
        raise ScheduleArgumentError(f"transform_layout: the buffer is given as (\"read\" or \"write\", index) or by name,"
                                    f" got {buffer!r}", node=realize)
    kind, k = buffer
    regions = blk.reads if kind == "read" else blk.writes
    if not isinstance(k, int) or not (0 <= k < len(regions)):
        raise ScheduleArgumentError(f"block {blk.name} has no {kind} buffer number {k!r}; it has {len(regions)}",
                                    node=realize)
    return realize, regions[k].buffer


def _map_of(index_map, ndim: int, buf: Buffer, realize):
    if isinstance(index_map, IndexMapText):
        index_map = index_map.fn
    if not callable(index_map):
        raise ScheduleArgumentError(f"transform_layout needs a function such as lambda i, j: (j // 16, i, j % 16), "
                                    f"got {index_map!r}", node=realize)
    try:
        names = list(inspect.signature(index_map).parameters)
    except (TypeError, ValueError):
        names = [f"i{k}" for k in range(ndim)]
    if len(names) != ndim:
        raise ScheduleArgumentError(f"the index map takes {len(names)} indices but buffer {buf.name} has {ndim} "
                                    "dimensions", node=realize)
    vars_ = [Var(n, buf.shape[k].dtype) for k, n in enumerate(names)]
    out = index_map(*vars_)
    if not isinstance(out, (tuple, list)):
        out = (out,)
    out = tuple(convert(e) for e in out)
    return vars_, out


def _text(vars_, outs) -> str:
    body = ", ".join(str(e) for e in outs)
    if len(outs) == 1:
        body += ","
    return f"lambda {', '.join(v.name for v in vars_)}: ({body})"


class _Rewrite(Mutator):
    def __init__(self, old: Buffer, new: Buffer, fn):
        self.old, self.new, self.fn = old, new, fn
        self.loops: list[For] = []   # the loops around the node being visited

    def visit_For(self, s: For):
        self.loops.append(s)
        try:
            return self.generic_visit(s)
        finally:
            self.loops.pop()

    def visit_Buffer(self, b):
        return self.new if b is self.old else b

    def visit_BufferLoad(self, n: BufferLoad):
        idx = tuple(self.visit(i) for i in n.indices)
        if n.buffer is self.old:
            return BufferLoad(self.new, self.fn(idx))
        return n if all(a is b for a, b in zip(idx, n.indices)) else n.replace(indices=idx, dtype=None)

    def visit_BufferStore(self, n: BufferStore):
        value = self.visit(n.value)
        idx = tuple(self.visit(i) for i in n.indices)
        if n.buffer is self.old:
            return BufferStore(self.new, value, self.fn(idx))
        if value is n.value and all(a is b for a, b in zip(idx, n.indices)):
            return n
        return BufferStore(n.buffer, value, idx)

    def visit_Block(self, b: Block):
        body = self.visit(b.body)
        init = None if b.init is None else self.visit(b.init)
        allocs = tuple(self.visit_Buffer(x) for x in b.alloc_buffers)
        touches = any(r.buffer is self.old for r in tuple(b.reads) + tuple(b.writes))
        nb = b.replace(body=body, init=init, alloc_buffers=allocs)
        if touches:   # an outer block's guarded accesses may reach past the new shape: clamp to it
            nb = refresh_clamped(nb, self.loops)
        return nb


@primitive("layout")
def transform_layout(sch, block, buffer, index_map, pad_value=None) -> Outcome:
    """Store a buffer in a new layout: element ``[i, j]`` moves to ``index_map(i, j)``.

    Every access to the buffer is rewritten. On a function parameter this changes the
    function's signature (the caller passes the array in the new layout). Where the new
    shape has more elements than the old (padding), ``pad_value`` fills them; without
    ``pad_value`` such a map is refused (as in TVM). On an input (a parameter that no block
    writes) the padding belongs to the caller: as in TVM, ``pad_value`` states what the
    caller puts there and nothing is written into the input (the program never reads it). A map that sends two elements to the
    same place (``lambda i: (i // 2,)``, or one that drops an index) is refused.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((2, 4), "float32", name="A")
    >>> B = te.compute((2, 4), lambda i, j: A[i, j] * 2.0, name="B")
    >>> C = te.compute((2, 4), lambda i, j: B[i, j] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 4), "float32"), C: wb.Buffer((2, 4), "float32")):
        B = wb.alloc_buffer((2, 4), "float32")
        for i, j in wb.grid(2, 4):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(2, 4):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_i, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_i, v_j] + 1.0
    >>> sch.transform_layout(sch.get_block("B"), ("write", 0), lambda i, j: (j // 2, i, j % 2))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 4), "float32"), C: wb.Buffer((2, 4), "float32")):
        B = wb.alloc_buffer((2, 2, 2), "float32")
        for i, j in wb.grid(2, 4):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_j // 2, v_i, v_j % 2])
                B[v_j // 2, v_i, v_j % 2] = A[v_i, v_j] * 2.0
        for i, j in wb.grid(2, 4):
            with wb.block("C"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(B[v_j // 2, v_i, v_j % 2])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = B[v_j // 2, v_i, v_j % 2] + 1.0
    """
    realize, buf = _resolve_buffer(sch, block, buffer)
    _check_not_viewed(sch, buf, realize)
    vars_, outs = _map_of(index_map, len(buf.shape), buf, realize)
    dom = {}
    for v, s in zip(vars_, buf.shape):
        e = as_int(s)
        if e is not None:
            dom[v] = (0, e - 1)
    new_shape = []
    for k, e in enumerate(outs):
        if isinstance(e, Var) and e in vars_ and as_int(buf.shape[vars_.index(e)]) is None:
            new_shape.append(buf.shape[[n for n, v in enumerate(vars_) if v is e][0]])
            continue
        b = const_bounds(e, dom)
        if b is None:
            raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: the size of new dimension {k} "
                                        f"(`{e}`) cannot be bounded", node=realize)
        if b[0] < 0:
            raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: new dimension {k} (`{e}`) "
                                        "can be negative", node=realize)
        new_shape.append(IntImm(b[1] + 1, e.dtype))
    old_n = new_n = 1
    for s in buf.shape:
        old_n = old_n * as_int(s) if as_int(s) is not None and old_n is not None else None
    for s in new_shape:
        new_n = new_n * as_int(s) if as_int(s) is not None and new_n is not None else None
    if old_n is not None and new_n is not None and new_n < old_n:
        raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: the new shape "
                                    f"{tuple(as_int(s) for s in new_shape)} has fewer elements than the old one, so "
                                    "the map cannot be one-to-one", node=realize)
    _check_one_to_one(vars_, outs, buf, realize)
    padded = _has_padding(buf, new_shape)
    if padded and pad_value is None:
        raise ScheduleArgumentError(
            f"cannot transform the layout of {buf.name}: the new shape {_shape_text(new_shape)} has more elements "
            f"than the old shape {_shape_text(buf.shape)}, and the padding needs a value; pass pad_value= "
            f"(e.g. pad_value=0.0)", node=realize)
    new_buf = Buffer(buf.name, tuple(new_shape), buf.dtype, scope=buf.scope)

    def fn(idx):
        return tuple(substitute(e, dict(zip(vars_, idx))) for e in outs)

    rw = _Rewrite(buf, new_buf, fn)
    func = sch.func
    body = rw.visit(func.body)
    bmap = {p: (new_buf if b is buf else b) for p, b in func.buffer_map.items()}
    func = func.replace(body=body, buffer_map=type(func.buffer_map)(bmap))
    if padded and not _is_input(sch, buf):
        func = _fill(func, new_buf, pad_value)
    return Outcome(func=func)


def _check_not_viewed(sch, buf: Buffer, realize) -> None:
    """Refuse a buffer that a block views through ``match_buffer`` (a tensorized block): the view is a
    strided box of the old layout, which the new layout would in general not keep."""
    idx = sch.index()
    for name in idx.order:
        for m in idx.block(name).match_buffers:
            if m.source.buffer is buf:
                raise ScheduleArgumentError(
                    f"cannot transform the layout of {buf.name}: block {name} views it through "
                    f"match_buffer {m.buffer.name} (a strided box of the current layout, as a tensor intrinsic "
                    f"needs it); transform the layout before tensorize", node=realize)


def _is_input(sch, buf: Buffer) -> bool:
    """True for a parameter that no block writes: its padding is the caller's (never written here)."""
    if not any(b is buf for b in sch.func.buffer_map.values()):
        return False
    writers, _ = buffer_users(sch.index(), buf)
    return not writers


_ENUMERATE_LIMIT = 1 << 22   # index tuples enumerated to check that a map is one-to-one

_NUMPY_OPS = {E.Add: np.add, E.Sub: np.subtract, E.Mul: np.multiply, E.FloorDiv: np.floor_divide,
              E.FloorMod: np.mod, E.Min: np.minimum, E.Max: np.maximum}


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _eval_index(e: PrimExpr, env: dict):
    """The integer values of an index-map expression for the arrays of values in ``env`` (id(var) -> array),
    or None for an expression other than integer arithmetic."""
    if isinstance(e, IntImm):
        return np.int64(e.value)
    if isinstance(e, Var):
        return env.get(id(e))
    if isinstance(e, E.Cast):
        return _eval_index(e.value, env)
    if isinstance(e, (E.Div, E.Mod)):
        a, b = _eval_index(e.a, env), _eval_index(e.b, env)
        if a is None or b is None or np.any(b == 0):
            return None
        q = np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))   # truncating, as C
        return q if isinstance(e, E.Div) else a - b * q
    op = _NUMPY_OPS.get(type(e))
    if op is None:
        return None
    a, b = _eval_index(e.a, env), _eval_index(e.b, env)
    if a is None or b is None or (op in (np.floor_divide, np.mod) and np.any(b == 0)):
        return None
    return op(a, b)


def _groups(vars_, outs) -> list[tuple[list, list]]:
    """The index variables in groups that share no new dimension: ``[(variables, new dimensions)]``."""
    known = {id(v) for v in vars_}
    groups: list[tuple[set, list]] = []
    for e in outs:
        ids, mine = {id(v) for v in collect_vars(e)} & known, [e]
        rest = []
        for g_ids, g_outs in groups:
            if g_ids & ids:
                ids, mine = ids | g_ids, g_outs + mine
            else:
                rest.append((g_ids, g_outs))
        groups = rest + [(ids, mine)]
    return [([v for v in vars_ if id(v) in ids], mine) for ids, mine in groups if ids]


def _check_one_to_one(vars_, outs, buf: Buffer, realize) -> None:
    """Refuse an index map that sends two elements of ``buf`` to the same place (or drops an index)."""
    for v, ext in zip(vars_, buf.shape):
        if as_int(ext) != 1 and not any(any(w is v for w in collect_vars(e)) for e in outs):
            raise ScheduleArgumentError(
                f"cannot transform the layout of {buf.name}: the index map is not one-to-one; it drops index "
                f"{v.name}, so elements that differ only in {v.name} would share a place", node=realize)
    exts = {id(v): as_int(ext) for v, ext in zip(vars_, buf.shape)}
    for gvars, gouts in _groups(vars_, outs):
        if any(exts[id(v)] is None for v in gvars):
            continue  # a symbolic index is kept as a dimension of its own (checked by the caller)
        bad = first_collision(gvars, [exts[id(v)] for v in gvars], gouts)
        if bad is not None:
            raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: the index map is not "
                                        f"one-to-one; {bad}", node=realize)


def _point(gvars, env: dict, k: int) -> str:
    return ", ".join(f"{v.name}={int(env[id(v)][k])}" for v in gvars)


def _has_padding(buf: Buffer, new_shape) -> bool:
    """True when the new shape has more elements than the old (the map being one-to-one)."""
    old_const = new_const = 1
    symbolic: dict[int, int] = {}   # id(symbolic dim) -> occurrences in the new shape, minus in the old
    for d in buf.shape:
        if as_int(d) is None:
            symbolic[id(d)] = symbolic.get(id(d), 0) - 1
        else:
            old_const *= as_int(d)
    for d in new_shape:
        if as_int(d) is None:
            symbolic[id(d)] = symbolic.get(id(d), 0) + 1
        else:
            new_const *= as_int(d)
    return new_const > old_const or any(c > 0 for c in symbolic.values())


def _fill(func, buf: Buffer, value):
    """A block at the start of the scope of ``buf`` (the block allocating it, or the root for a parameter)
    writing ``value`` into the whole buffer (its padding survives)."""
    idx = Index(func)
    owner = idx.realize(allocating_block(idx, buf) or "root")
    taken = {v.name for v in idx.loops}
    ivs, loops = [], []
    for d, ext in enumerate(buf.shape):
        v = Var(f"v{d}", ext.dtype)
        lv = Var(fresh_name(f"ax{d}", taken), ext.dtype)
        taken.add(lv.name)
        ivs.append(IterVar(v, ext, IterType.SPATIAL))
        loops.append((lv, ext))
    vidx = tuple(iv.var for iv in ivs)
    blk = refresh_regions(Block(fresh_name(f"{buf.name}_pad", idx.blocks), tuple(ivs), (), (),
                                BufferStore(buf, convert(value, buf.dtype), vidx)))
    nest = BlockRealize(tuple(lv for lv, _ in loops), IntImm(1, "bool"), blk)
    for lv, ext in reversed(loops):
        nest = For(lv, IntImm(0, ext.dtype), ext, ForKind.SERIAL, nest)
    body = owner.block.body
    items = list(body.seq) if isinstance(body, SeqStmt) else [body]
    new_owner = owner.replace(block=owner.block.replace(body=seq(nest, *items)))
    return replace_many(func, {id(owner): new_owner})


# transform_block_layout --------------------------------------------------------------------

def index_map_outputs(index_map, iter_vars, what: str, node) -> tuple[list[Var], tuple]:
    """The index map applied to fresh variables standing for the block's iteration variables:
    ``(variables, output expressions)``; refuses a map of the wrong arity."""
    if isinstance(index_map, IndexMapText):
        index_map = index_map.fn
    if not callable(index_map):
        raise ScheduleArgumentError(f"{what}: the index map must be a function of the block's iteration variables "
                                    f"such as lambda i, j: (j, i), got {index_map!r}", node=node)
    try:
        names = list(inspect.signature(index_map).parameters)
    except (TypeError, ValueError):
        names = [iv.var.name for iv in iter_vars]
    if len(names) != len(iter_vars):
        raise ScheduleArgumentError(f"{what}: the index map takes {len(names)} indices but the block has "
                                    f"{len(iter_vars)} iteration variables "
                                    f"({', '.join(iv.var.name for iv in iter_vars) or 'none'})", node=node)
    vars_ = [Var(n, iv.var.dtype) for n, iv in zip(names, iter_vars)]
    outs = index_map(*vars_)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    try:
        outs = tuple(convert(e) for e in outs)
    except (TypeError, ValueError) as err:
        raise ScheduleArgumentError(f"{what}: the index map must return integer expressions ({err})",
                                    node=node) from None
    return vars_, outs


def first_collision(vars_, exts: list[int], outs) -> str | None:
    """None when ``outs`` (integer arithmetic of ``vars_`` over ``[0, ext)``) gives every point its own
    value; else a phrase naming two points with the same value. Checked point by point (a map too large
    to enumerate must be a plain split/fuse/reorder that ``detect_iter_map`` shows one-to-one)."""
    total = int(np.prod(exts, dtype=np.int64)) if exts else 1
    if total > _ENUMERATE_LIMIT:
        dom = {v: E.Range(0, e) for v, e in zip(vars_, exts)}
        if detect_iter_map(list(outs), dom, check_level="surjective") is not None:
            return None
        return (f"the map of {', '.join(v.name for v in vars_)} is too large to check element by element "
                f"({total} index tuples) and is not a plain split/fuse/reorder that can be shown one-to-one")
    grids = np.meshgrid(*[np.arange(e, dtype=np.int64) for e in exts], indexing="ij")
    env = {id(v): g.ravel() for v, g in zip(vars_, grids)}
    values = [_eval_index(e, env) for e in outs]
    if any(x is None for x in values):
        return "the index map must use integer arithmetic only (+ - * // % min max) on its indices"
    if not values:
        return None if total <= 1 else "it drops every index"
    places = np.stack([np.broadcast_to(x, (total,)) for x in values], axis=1)
    order = np.lexsort(places.T[::-1])
    same = np.nonzero(np.all(places[order[1:]] == places[order[:-1]], axis=1))[0]
    if not same.size:
        return None
    k1, k2 = order[same[0]], order[same[0] + 1]
    return (f"{_point(vars_, env, k1)} and {_point(vars_, env, k2)} both give "
            f"{', '.join(str(e) for e in outs)} = {', '.join(str(int(x)) for x in places[k1])}")


def _loops_for_block_layout(sch, realize: BlockRealize) -> list[For]:
    """The loops above the block, checked: they hold only this block, start at 0, are plain serial loops,
    and bind the block's iteration variables one to one (TVM's trivial binding)."""
    blk = realize.block
    loops = sch.index().loops_of(blk.name)
    for k, loop in enumerate(loops):
        inner = loops[k + 1] if k + 1 < len(loops) else realize
        if loop.body is not inner:
            raise NotAChainError(f"cannot transform the layout of block {blk.name}: loop {loop.loop_var.name} holds "
                                 "more than this block, and its loops are replaced by the new ones", node=loop)
        if as_int(loop.min) != 0:
            raise ScheduleArgumentError(f"cannot transform the layout of block {blk.name}: loop "
                                        f"{loop.loop_var.name} does not start at 0", node=loop)
        if loop.kind != ForKind.SERIAL or loop.annotations:
            raise ScheduleArgumentError(
                f"cannot transform the layout of block {blk.name}: loop {loop.loop_var.name} is {loop.kind.value}"
                f"{' and annotated' if loop.annotations else ''}, and its loops are replaced by plain serial ones",
                detail="transform_block_layout first, then parallelize, vectorize, bind or annotate.", node=loop)
    if not (isinstance(realize.predicate, IntImm) and realize.predicate.value):
        raise ScheduleArgumentError(f"cannot transform the layout of block {blk.name}: it has the predicate "
                                    f"`{realize.predicate}`, over loops that would be replaced", node=realize)
    trivial = len(loops) == len(blk.iter_vars) and all(
        val is loop.loop_var and as_int(iv.dom.min) == 0 and as_int(iv.dom.extent) == as_int(loop.extent)
        for iv, val, loop in zip(blk.iter_vars, realize.iter_values, loops))
    if not trivial:
        raise NonAffineBindingError(
            f"cannot transform the layout of block {blk.name}: its iteration variables are not bound one to one "
            "to the loops around it (each to its own loop, in order, over the same range)",
            detail="transform_block_layout needs TVM's trivial binding, such as vi, vj = wb.axis.remap(\"SS\", "
                   "[i, j]); apply it before split, fuse or reorder.", node=realize)
    return loops


def _new_iter_type(e: PrimExpr, extent: int, types: dict, blk: Block, node) -> IterType:
    """Spatial when ``e`` uses only spatial iteration variables (or has extent 1), reduce when only reduce."""
    used = {types[id(v)] for v in collect_vars(e) if id(v) in types}
    if extent == 1 or used <= {IterType.SPATIAL}:
        return IterType.SPATIAL
    if used == {IterType.REDUCE}:
        return IterType.REDUCE
    raise ScheduleArgumentError(f"cannot transform the layout of block {blk.name}: the new iterator `{e}` mixes "
                                "spatial and reduction (or opaque) iteration variables, so it is neither", node=node)


def _fused_marks(marks: list) -> list:
    """The fused marks reachable from ``marks``, every mark before the marks it is made of."""
    out, seen = [], set()

    def visit(m):
        if id(m) in seen or isinstance(m.source, Var):
            return
        seen.add(id(m))
        for s in m.source.args:
            visit(s.source)
        out.append(m)

    for m in marks:
        visit(m)
    return out[::-1]


def _inverse(res, new_values: list, vars_: list, exts: list[int]) -> list[PrimExpr] | None:
    """The original iteration variables as expressions of the new iterators' values, from the
    affine iterator map ``res`` of a bijective map (None when its form is not one this inverts)."""
    contrib: dict[int, PrimExpr] = {}
    marks: dict[int, object] = {}

    def add(mark, e):
        marks[id(mark)] = mark
        contrib[id(mark)] = contrib[id(mark)] + e if id(mark) in contrib else e

    for t, o in zip(res.indices, new_values):
        for s in t.args:
            if s.scale != 1:
                return None
            add(s.source, (o - convert(t.base, o.dtype)) * s.lower_factor)
    for m in _fused_marks(list(marks.values())):
        value = contrib[id(m)]
        for s in m.source.args:
            add(s.source, E.floormod(E.floordiv(value, s.scale), s.extent) * s.lower_factor)
    out = []
    for v, ext in zip(vars_, exts):
        hit = [m for m in marks.values() if m.source is v]
        if not hit:
            if ext != 1:
                return None
            out.append(IntImm(0, v.dtype))
            continue
        offset = hit[0].offset
        out.append(contrib[id(hit[0])] if offset is None else contrib[id(hit[0])] + offset)
    return out


def _checked_inverse(vars_, exts, outs, lows, new_vars, new_exts, blk, node) -> list[PrimExpr]:
    """The inverse of a one-to-one affine map onto the box of the new iterators, simplified, and checked
    (point by point where the box is small enough, else by proof)."""
    from ..ir.arith import Analyzer

    res = detect_iter_map(list(outs), {v: E.Range(0, e) for v, e in zip(vars_, exts)}, check_level="bijective")
    inv = None if res is None else _inverse(res, [nv + lo for nv, lo in zip(new_vars, lows)], vars_, exts)
    if inv is None:
        raise ScheduleArgumentError(f"cannot transform the layout of block {blk.name}: the index map is not an "
                                    "affine split/fuse/reorder of the iteration variables that can be inverted",
                                    node=node)
    an = Analyzer()
    for nv, e in zip(new_vars, new_exts):
        an.bind(nv, E.Range(0, e))
    inv = [an.simplify(e) for e in inv]
    total = int(np.prod(new_exts, dtype=np.int64)) if new_exts else 1
    if total <= _ENUMERATE_LIMIT:
        grids = np.meshgrid(*[np.arange(e, dtype=np.int64) for e in new_exts], indexing="ij")
        env = {id(v): g.ravel() for v, g in zip(new_vars, grids)}
        back = [np.broadcast_to(_eval_index(e, env), (total,)) for e in inv]
        env_old = {id(v): b for v, b in zip(vars_, back)}
        again = [np.broadcast_to(_eval_index(e, env_old), (total,)) for e in outs]
        ok = all(np.array_equal(a - lo, env[id(nv)]) for a, lo, nv in zip(again, lows, new_vars))
    else:
        ok = all(an.can_prove_equal(substitute(e, dict(zip(vars_, inv))) - lo, nv)
                 for e, lo, nv in zip(outs, lows, new_vars))
    if not ok:  # pragma: no cover - the affine form above is exact; this guards against a wrong inverse
        raise ScheduleArgumentError(f"cannot transform the layout of block {blk.name}: the index map could not be "
                                    "inverted exactly", node=node)
    return inv


class _SimplifyIndices(Mutator):
    """Simplify the indices of every access (``B[v0 * 16 // 16, ...]`` to ``B[v0, ...]``)."""

    def __init__(self, an):
        self.an = an

    def visit_BufferLoad(self, n: BufferLoad):
        n = self.generic_visit(n)
        return n.replace(indices=tuple(self.an.simplify(i) for i in n.indices))

    def visit_BufferStore(self, n: BufferStore):
        n = self.generic_visit(n)
        return n.replace(indices=tuple(self.an.simplify(i) for i in n.indices))


@primitive("layout")
def transform_block_layout(sch, block, index_map) -> Outcome:
    """Remap a block's iteration space: its iteration variables ``(vi, vj)`` become ``index_map(vi, vj)``.

    The loops around the block are replaced by one loop per new iterator (``ax0, ax1, ...``,
    serial, in the map's output order), and the body reads the old variables back through the
    inverse map. As in TVM the block must be the only thing under its loops, its iteration
    variables bound one to one to those loops (no split/fuse/reorder yet), and the map a
    bijective affine map (split, fuse, reorder) onto its new iteration space: a map that sends
    two points to the same place, or leaves holes, is refused. A new iterator is spatial, or
    reduction when it uses only reduction variables.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((2, 3), "float32", name="A")
    >>> B = te.compute((2, 3), lambda i, j: A[i, j] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 3), "float32"), B: wb.Buffer((2, 3), "float32")):
        for i, j in wb.grid(2, 3):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    >>> sch.transform_block_layout(sch.get_block("B"), lambda i, j: (i * 3 + j,))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((2, 3), "float32"), B: wb.Buffer((2, 3), "float32")):
        for ax0 in wb.serial(6):
            with wb.block("B"):
                v0, = wb.axis.remap("S", [ax0])
                wb.reads(A[v0 // 3, v0 % 3])
                wb.writes(B[v0 // 3, v0 % 3])
                B[v0 // 3, v0 % 3] = A[v0 // 3, v0 % 3] * 2.0
    """
    realize, _ = sch.block_of(block)
    blk = realize.block
    loops = _loops_for_block_layout(sch, realize)
    what = f"cannot transform the layout of block {blk.name}"
    vars_, outs = index_map_outputs(index_map, blk.iter_vars, what, realize)
    exts = [as_int(iv.dom.extent) for iv in blk.iter_vars]
    if any(e is None for e in exts):
        raise ScheduleArgumentError(f"{what}: its iteration domain has a symbolic extent; transform_block_layout "
                                    "needs constant extents", node=realize)
    bounds = [const_bounds(e, {v: (0, x - 1) for v, x in zip(vars_, exts)}) for e in outs]
    for e, b in zip(outs, bounds):
        if b is None:
            raise ScheduleArgumentError(f"{what}: the new iterator `{e}` cannot be bounded (it must be integer "
                                        "arithmetic of the iteration variables)", node=realize)
    new_exts = [hi - lo + 1 for lo, hi in bounds]
    bad = first_collision(vars_, exts, outs)
    if bad is not None or int(np.prod(new_exts, dtype=np.int64)) != int(np.prod(exts, dtype=np.int64)):
        reason = bad or (f"its values fill only part of the new iteration space of extents "
                         f"{_shape_text(new_exts)}")
        raise ScheduleArgumentError(f"{what}: the index map is not bijective; {reason}", node=realize)
    types = {id(v): iv.iter_type for v, iv in zip(vars_, blk.iter_vars)}
    new_ivs = [IterVar(Var(f"v{k}", e.dtype), IntImm(x, e.dtype), _new_iter_type(e, x, types, blk, realize))
               for k, (e, x) in enumerate(zip(outs, new_exts))]
    new_vars = [iv.var for iv in new_ivs]
    inv = _checked_inverse(vars_, exts, outs, [lo for lo, _ in bounds], new_vars, new_exts, blk, realize)
    new_blk = _remapped_block(blk, {iv.var: e for iv, e in zip(blk.iter_vars, inv)}, new_ivs)
    nest = _serial_nest(sch, new_blk, new_exts)
    target = loops[0] if loops else realize
    return Outcome(func=replace_many(sch.func, {id(target): nest}))


def _remapped_block(blk: Block, vmap: dict, new_ivs: list) -> Block:
    from ..ir.arith import Analyzer

    an = Analyzer()
    for iv in new_ivs:
        an.bind(iv.var, iv.dom)
    simp = _SimplifyIndices(an)
    body = simp.visit(substitute(blk.body, vmap))
    init = None if blk.init is None else simp.visit(substitute(blk.init, vmap))
    nb = blk.replace(iter_vars=tuple(new_ivs), body=body, init=init,
                     match_buffers=substitute(blk.match_buffers, vmap))
    return refresh_regions(nb)


def _serial_nest(sch, blk: Block, exts: list[int]):
    """``for ax0, ax1, ... in wb.grid(*exts)`` around ``blk``, binding its k-th iterator to ``ax_k``."""
    from .loops import loop_names

    taken = loop_names(sch.func)
    loop_vars = []
    for k, iv in enumerate(blk.iter_vars):
        lv = Var(fresh_name(f"ax{k}", taken), iv.var.dtype)
        taken.add(lv.name)
        loop_vars.append(lv)
    nest = BlockRealize(tuple(loop_vars), IntImm(1, "bool"), blk)
    for lv, ext in reversed(list(zip(loop_vars, exts))):
        nest = For(lv, IntImm(0, lv.dtype), IntImm(ext, lv.dtype), ForKind.SERIAL, nest)
    return nest
