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
from .bounds import const_bounds
from .errors import ScheduleArgumentError
from .legality import refresh_regions
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
        if touches:
            nb = refresh_regions(nb)
        return nb


@primitive("layout")
def transform_layout(sch, block, buffer, index_map, pad_value=None) -> Outcome:
    """Store a buffer in a new layout: element ``[i, j]`` moves to ``index_map(i, j)``.

    Every access to the buffer is rewritten. On a function parameter this changes the
    function's signature (the caller passes the array in the new layout). Where the new
    shape has more elements than the old (padding), ``pad_value`` fills them; without
    ``pad_value`` such a map is refused (as in TVM). A map that sends two elements to the
    same place (``lambda i: (i // 2,)``, or one that drops an index) is refused.

    Before::

        B = wb.alloc_buffer((64, 64))
        ... B[vi, vj] = A[vi, vj] * 2.0 ...
        ... C[vi, vj] = B[vi, vj] + 1.0 ...

    ``sch.transform_layout(b, ("write", 0), lambda i, j: (j // 16, i, j % 16))`` gives::

        B = wb.alloc_buffer((4, 64, 16))
        ... B[vj // 16, vi, vj % 16] = A[vi, vj] * 2.0 ...
        ... C[vi, vj] = B[vj // 16, vi, vj % 16] + 1.0 ...
    """
    realize, buf = _resolve_buffer(sch, block, buffer)
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
    if padded:
        func = _fill(func, new_buf, pad_value)
    return Outcome(func=func)


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
        total = int(np.prod([exts[id(v)] for v in gvars], dtype=np.int64))
        if total > _ENUMERATE_LIMIT:
            dom = {v: E.Range(0, exts[id(v)]) for v in gvars}
            if detect_iter_map(gouts, dom, check_level="bijective") is not None:
                continue
            raise ScheduleArgumentError(
                f"cannot transform the layout of {buf.name}: the map of {', '.join(v.name for v in gvars)} is too "
                f"large to check element by element ({total} index tuples) and is not a plain split/fuse/reorder "
                "that can be shown one-to-one", node=realize)
        grids = np.meshgrid(*[np.arange(exts[id(v)], dtype=np.int64) for v in gvars], indexing="ij")
        env = {id(v): g.ravel() for v, g in zip(gvars, grids)}
        values = [_eval_index(e, env) for e in gouts]
        if any(x is None for x in values):
            raise ScheduleArgumentError(f"cannot transform the layout of {buf.name}: the index map must use integer "
                                        "arithmetic only (+ - * // % min max) on its indices", node=realize)
        places = np.stack([np.broadcast_to(x, (total,)) for x in values], axis=1)
        order = np.lexsort(places.T[::-1])
        same = np.nonzero(np.all(places[order[1:]] == places[order[:-1]], axis=1))[0]
        if same.size:
            k1, k2 = order[same[0]], order[same[0] + 1]
            raise ScheduleArgumentError(
                f"cannot transform the layout of {buf.name}: the index map is not one-to-one; "
                f"{_point(gvars, env, k1)} and {_point(gvars, env, k2)} both give "
                f"{', '.join(str(e) for e in gouts)} = {', '.join(str(int(x)) for x in places[k1])}", node=realize)


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
    """A block at the start of the root scope writing ``value`` into the whole buffer (its padding survives)."""
    idx = Index(func)
    root = idx.realize("root")
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
    body = root.block.body
    items = list(body.seq) if isinstance(body, SeqStmt) else [body]
    new_root = root.replace(block=root.block.replace(body=seq(nest, *items)))
    return replace_many(func, {id(root): new_root})
