"""Regions: the rectangles of buffers that accesses touch, and a block's reads/writes.

>>> from workbench.ir.expr import Var, Range
>>> from workbench.ir.arith import region_of_access
>>> vi, k = Var("vi"), Var("k")
>>> print(region_of_access([vi, vi * 16 + k], {k: Range(0, 16)}))
(vi:vi + 1, vi * 16:vi * 16 + 16)
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..buffer import Buffer
from ..dtype import is_integer, max_value
from ..expr import (EQ, GE, GT, LE, LT, Add, And, BufferLoad, Call, IntImm, Let, Max, Min, Mul, Not, PrimExpr, Ramp,
                    Range, Sub, Var, as_int, convert)
from ..functor import Visitor, substitute, uses_var
from ..stmt import (Block, BlockRealize, BufferRegion, BufferStore, For, IfThenElse, LetStmt)
from .analyzer import Analyzer


def _index_bounds(an: Analyzer, idx: PrimExpr, dom: dict) -> tuple:
    """Symbolic inclusive [lo, hi] of one index over the relaxed domain (None: unbounded)."""
    if isinstance(idx, Ramp):
        last = Add(idx.base, Mul(idx.stride, IntImm(idx.lanes - 1, idx.stride.dtype)))
        a = an._int_set_of(idx.base, dom)
        b = an._int_set_of(last, dom)
        lo = None if a.min is None or b.min is None else an.simplify(Min(a.min, b.min))
        hi = None if a.max is None or b.max is None else an.simplify(Max(a.max, b.max))
        return (lo, hi)
    if not dom:
        e = an.simplify(idx)
        return (e, e)
    s = an._int_set_of(idx, dom)
    return (s.min, s.max)


def _to_range(an: Analyzer, lo, hi, buffer: Buffer | None, k: int) -> Range:
    if _wider_than_dtype(lo, hi):   # e.g. a float index cast to int32: bounds are the dtype's whole range
        lo = hi = None
    if lo is None or hi is None:
        if buffer is None:
            raise ValueError(f"cannot bound index {k} of the access: it depends on data or on unbounded variables; "
                             "pass buffer= to fall back to the full dimension")
        d = buffer.shape[k]
        return Range(IntImm(0, d.dtype), d)
    if lo is hi:
        return Range(lo, IntImm(1, lo.dtype))
    return Range(lo, an.simplify(Add(Sub(hi, lo), IntImm(1, lo.dtype))))


def _wider_than_dtype(lo, hi) -> bool:
    """Whether constant bounds ``[lo, hi]`` hold more values than their integer dtype can count (the extent
    ``hi - lo + 1`` would not be representable)."""
    a, b = as_int(lo) if lo is not None else None, as_int(hi) if hi is not None else None
    if a is None or b is None or not is_integer(lo.dtype):
        return False
    return b - a + 1 > max_value(lo.dtype)


def region_of_access(indices: Sequence, dom_map: Mapping[Var, Range], analyzer: Analyzer | None = None,
                     buffer: Buffer | None = None) -> tuple[Range, ...]:
    """The rectangle ``indices`` touch while the variables of ``dom_map`` range over their domains.

    Variables not in ``dom_map`` stay symbolic. With ``buffer`` a dimension that cannot be
    bounded (a data-dependent index) covers the whole buffer dimension.

    >>> from workbench.ir.expr import Var, Range
    >>> i, j = Var("i"), Var("j")
    >>> print(region_of_access([i * 4 + j], {j: Range(0, 4), i: Range(0, 8)}))
    (0:32,)
    """
    an = analyzer or Analyzer()
    dom = {}
    for v, r in dom_map.items():
        if isinstance(r, tuple):
            r = Range.from_begin_end(*r)
        dom[id(v)] = (v, r)
    out = []
    for k, idx in enumerate(indices):
        lo, hi = _index_bounds(an, convert(idx), dom)
        out.append(_to_range(an, lo, hi, buffer, k))
    return tuple(out)


def bounds_from_condition(cond: PrimExpr, negate: bool = False) -> list[tuple]:
    """``cond`` (or its negation) as facts ``(e, "le"|"ge", c)``: ``e <= c`` / ``e >= c`` for integers.

    Conjunctions split (their negation, a disjunction, gives nothing); other conditions give nothing.
    """
    if isinstance(cond, Not):
        return bounds_from_condition(cond.a, not negate)
    if isinstance(cond, And):
        return [] if negate else bounds_from_condition(cond.a) + bounds_from_condition(cond.b)
    if not isinstance(cond, (LT, LE, GT, GE, EQ)) or not cond.a.dtype.startswith(("int", "uint")):
        return []
    a, b = cond.a, cond.b
    kind = type(cond)
    if negate:
        kind = {LT: GE, LE: GT, GT: LE, GE: LT}.get(kind)
        if kind is None:
            return []
    one = IntImm(1, a.dtype)
    if kind is LT:
        return [(a, "le", Sub(b, one)), (b, "ge", Add(a, one))]
    if kind is LE:
        return [(a, "le", b), (b, "ge", a)]
    if kind is GT:
        return [(a, "ge", Add(b, one)), (b, "le", Sub(a, one))]
    if kind is GE:
        return [(a, "ge", b), (b, "le", a)]
    return [(a, "le", b), (a, "ge", b), (b, "le", a), (b, "ge", a)]


class _AccessDetector(Visitor):
    """Collects the relaxed accesses of one block (TVM's BlockReadWriteDetector).

    Conditions that guard an access (``if``, the lazy ``if_then_else``, a nested block's
    predicate and the domains of its iteration variables) bound the relaxed region: under
    ``wb.where(i * 32 + j < 100)`` the index ``i * 32 + j`` stops at 99.
    """

    def __init__(self, block: Block, an: Analyzer):
        self.an = an
        self.dom: dict = {}       # relaxed variables: id -> (var, Range)
        self.lets: dict = {}      # let variables -> value (inlined before relaxing)
        self.excluded = {id(b) for b in block.alloc_buffers}
        self.matched = {id(m.buffer): m.source for m in block.match_buffers}
        self.reads: dict = {}     # id(buffer) -> [buffer, [lo...], [hi...]]
        self.writes: dict = {}
        self.facts: list = []     # (e, "le"|"ge", c) known where the visit is

    # -- guarding conditions ------------------------------------------------------
    def _with_facts(self, facts: list, visit, *nodes) -> None:
        n = len(self.facts)
        self.facts.extend((self._inline(e), k, self._inline(c)) for e, k, c in facts)
        try:
            for node in nodes:
                visit(node)
        finally:
            del self.facts[n:]

    def _tighten(self, idx: PrimExpr, lo, hi) -> tuple:
        """``(lo, hi)`` of ``idx`` narrowed by the facts about ``idx + k`` (``k`` a constant)."""
        for e, kind, c in self.facts:
            if uses_var(c, lambda v: id(v) in self.dom):
                continue
            k = self.an.simplify(Sub(idx, e))
            if not isinstance(k, IntImm):
                continue
            bound = self.an.simplify(Add(c, k))
            if kind == "le" and (hi is None or self.an.can_prove(bound < hi)):
                hi = bound
            elif kind == "ge" and (lo is None or self.an.can_prove(bound > lo)):
                lo = bound
        return lo, hi

    def _bounds(self, idx: PrimExpr) -> tuple:
        lo, hi = _index_bounds(self.an, idx, self.dom)
        if self.facts and self.dom and not isinstance(idx, Ramp):
            lo, hi = self._tighten(idx, lo, hi)
        return lo, hi

    # -- recording -----------------------------------------------------------
    def _inline(self, e):
        if self.lets:
            e = substitute(e, {v: val for v, val in self.lets.values()})
        return e

    def _record(self, table: dict, buffer: Buffer, bounds: list) -> None:
        if id(buffer) in self.excluded:
            return
        hit = table.get(id(buffer))
        if hit is None:
            table[id(buffer)] = [buffer, bounds]
            return
        merged = []
        for (lo1, hi1), (lo2, hi2) in zip(hit[1], bounds):
            lo = None if lo1 is None or lo2 is None else (lo1 if lo1 is lo2 else self.an.simplify(Min(lo1, lo2)))
            hi = None if hi1 is None or hi2 is None else (hi1 if hi1 is hi2 else self.an.simplify(Max(hi1, hi2)))
            merged.append((lo, hi))
        hit[1] = merged

    def _access(self, table: dict, buffer: Buffer, indices) -> None:
        if id(buffer) in self.matched:
            self._region(table, self.matched[id(buffer)])
            return
        bounds = [self._bounds(self._inline(i)) for i in indices]
        self._record(table, buffer, bounds)

    def _region(self, table: dict, br: BufferRegion) -> None:
        bounds = []
        for r in br.region:
            mn = self._inline(r.min)
            last = self._inline(Sub(Add(r.min, r.extent), IntImm(1, r.extent.dtype)))
            lo = self._bounds(mn)[0]
            hi = self._bounds(last)[1]
            bounds.append((lo, hi))
        self._record(table, br.buffer, bounds)

    # -- walking -------------------------------------------------------------
    def visit_BufferLoad(self, e: BufferLoad) -> None:
        self._access(self.reads, e.buffer, e.indices)
        self.visit(e.indices)

    def visit_BufferStore(self, s: BufferStore) -> None:
        self.visit(s.value)
        self.visit(s.indices)
        self._access(self.writes, s.buffer, s.indices)

    def visit_For(self, s: For) -> None:
        self.visit(s.min)
        self.visit(s.extent)
        self.dom[id(s.loop_var)] = (s.loop_var, Range(self._inline(s.min), self._inline(s.extent)))
        self.visit(s.body)
        self.dom.pop(id(s.loop_var), None)

    def visit_LetStmt(self, s: LetStmt) -> None:
        self.visit(s.value)
        self.lets[id(s.var)] = (s.var, self._inline(s.value))
        self.visit(s.body)
        self.lets.pop(id(s.var), None)

    def visit_Let(self, e: Let) -> None:
        self.visit(e.value)
        self.lets[id(e.var)] = (e.var, self._inline(e.value))
        self.visit(e.body)
        self.lets.pop(id(e.var), None)

    def visit_IfThenElse(self, s: IfThenElse) -> None:
        self.visit(s.condition)
        self._with_facts(bounds_from_condition(s.condition), self.visit, s.then_case)
        if s.else_case is not None:
            self._with_facts(bounds_from_condition(s.condition, negate=True), self.visit, s.else_case)

    def visit_Call(self, e: Call) -> None:
        if e.op != "if_then_else" or len(e.args) != 3:
            self.visit(e.args)
            return
        cond, then, other = e.args
        self.visit(cond)
        self._with_facts(bounds_from_condition(cond), self.visit, then)
        self._with_facts(bounds_from_condition(cond, negate=True), self.visit, other)

    def visit_BlockRealize(self, s: BlockRealize) -> None:
        self.visit(s.iter_values)
        self.visit(s.predicate)
        child = s.block
        reads, writes = child.reads, child.writes
        if not reads and not writes:
            reads, writes = infer_block_access_regions(child)
        vmap = {iv.var: self._inline(v) for iv, v in zip(child.iter_vars, s.iter_values)}
        facts = bounds_from_condition(s.predicate)
        for iv, v in zip(child.iter_vars, s.iter_values):   # a binding stays inside its iteration domain
            last = Sub(Add(iv.dom.min, iv.dom.extent), IntImm(1, iv.dom.extent.dtype))
            facts += [(v, "ge", iv.dom.min), (v, "le", last)]
        self._with_facts(facts, self._child_regions, (reads, writes, vmap))

    def _child_regions(self, args) -> None:
        reads, writes, vmap = args
        for table, regions in ((self.reads, reads), (self.writes, writes)):
            for br in regions:
                self._region(table, BufferRegion(br.buffer, tuple(
                    Range(substitute(r.min, vmap), substitute(r.extent, vmap)) for r in br.region)))

    def visit_Block(self, b: Block) -> None:  # only reached through visit_BlockRealize's caller
        pass

    def regions(self, table: dict) -> tuple:
        out = []
        for buffer, bounds in table.values():
            out.append(BufferRegion(buffer, tuple(_to_range(self.an, lo, hi, buffer, k)
                                                  for k, (lo, hi) in enumerate(bounds))))
        return tuple(out)


def infer_block_access_regions(block: Block) -> tuple[tuple[BufferRegion, ...], tuple[BufferRegion, ...]]:
    """The ``(reads, writes)`` regions of ``block`` as TVM infers them.

    Accesses in the block's init and body count (nested blocks contribute their own
    regions with their bindings substituted); variables of loops inside the block are
    relaxed over their domains, the block's iteration variables stay symbolic; several
    accesses to one buffer merge into one covering rectangle; buffers appear in order of
    first access, and a buffer that is read and written (``Y[vi, vj] = Y[vi, vj] + ...``)
    appears in both. Buffers the block allocates are left out.

    >>> from workbench.ir import Buffer, Block, BufferStore, IterVar, Var
    >>> A, B = Buffer("A", (16, 16)), Buffer("B", (16,))
    >>> vi, vk = Var("vi"), Var("vk")
    >>> blk = Block("B", (IterVar(vi, 16), IterVar(vk, 16, "reduce")),
    ...             body=BufferStore(B, B[vi] + A[vi, vk], (vi,)))
    >>> reads, writes = infer_block_access_regions(blk)
    >>> print(reads[0], reads[1], writes[0])
    B[vi] A[vi, vk] B[vi]
    """
    if not isinstance(block, Block):
        raise TypeError(f"infer_block_access_regions needs a Block, got {type(block).__name__}")
    an = Analyzer()
    for iv in block.iter_vars:
        an.bind(iv.var, iv.dom)
    det = _AccessDetector(block, an)
    if block.init is not None:
        det.visit(block.init)
    det.visit(block.body)
    reads, writes = det.regions(det.reads), det.regions(det.writes)
    return (_keep_explicit(block, "read", block.reads, reads, an),
            _keep_explicit(block, "write", block.writes, writes, an))


def _keep_explicit(block: Block, kind: str, declared, inferred, an: Analyzer) -> tuple:
    """Regions a user declared with ``annotate_buffer_access`` (block annotation
    ``explicit_<kind>_region``: indices into the declared regions) survive re-inference, widened
    to cover what the body now accesses if it changed since."""
    indices = block.annotations.get(f"explicit_{kind}_region") if block.annotations else None
    if not indices:
        return inferred
    keep = {id(declared[k].buffer): declared[k] for k in indices if 0 <= k < len(declared)}
    out = []
    for br in inferred:
        ex = keep.get(id(br.buffer))
        if ex is None or len(ex.region) != len(br.region):
            out.append(br)
            continue
        rng = []
        for a, b in zip(ex.region, br.region):
            lo = an.simplify(Min(a.min, b.min))
            end = an.simplify(Max(Add(a.min, a.extent), Add(b.min, b.extent)))
            rng.append(Range(lo, an.simplify(Sub(end, lo))))
        out.append(BufferRegion(br.buffer, tuple(rng)))
    return tuple(out)


__all__ = ["region_of_access", "infer_block_access_regions"]
