"""Affine iterator maps (TVM's ``DetectIterMap``): are these indices affine in the loops?

Each index is rewritten as a sum of *splits* ``(mark // lower_factor) % extent * scale``
of *marks* (an input iterator, or a fused sum of splits such as ``i * 16 + j``), plus
a base. The map is valid when every mark's splits do not overlap (surjective) or
exactly tile it (bijective). Scales and divisors must be constants; an extent may be
symbolic (``batch * 48``) when the analyzer proves what the map needs of it (that it is
a multiple of a divisor, as in TVM).

>>> from workbench.ir.expr import Var, Range
>>> from workbench.ir.arith import detect_iter_map
>>> i, j = Var("i"), Var("j")
>>> res = detect_iter_map([(i * 16 + j) // 8, (i * 16 + j) % 8], {i: Range(0, 4), j: Range(0, 16)})
>>> [str(e) for e in res.exprs]
['i * 2 + j // 8', 'j % 8']
>>> detect_iter_map([i + j], {i: Range(0, 4), j: Range(0, 16)}) is None   # overlapping
True
>>> f, b = Var("f"), Var("b")
>>> res = detect_iter_map([f // 48, f % 48], {f: Range(0, b * 48)}, check_level="bijective")
>>> [str(e) for e in res.exprs], res.indices[0].args[0].extent
(['f // 48', 'f % 48'], b)
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

from ..expr import (Add, FloorDiv, FloorMod, IntImm, LE, Mul, PrimExpr, Range, Sub, Var, as_int, convert)
from ..functor import uses_var
from .analyzer import Analyzer

#: an iterator extent: an ``int`` when constant, else the (simplified) expression
Extent = "int | PrimExpr"


def _norm(an: Analyzer, x) -> "int | PrimExpr":
    """``x`` simplified: an ``int`` when it is a constant."""
    if isinstance(x, int):
        return x
    x = an.simplify(x)
    return x.value if isinstance(x, IntImm) else x


def _as_expr(x, dtype: str = "int32") -> PrimExpr:
    return IntImm(x, dtype) if isinstance(x, int) else x


def _mul(an: Analyzer, a, b) -> "int | PrimExpr":
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    return _norm(an, Mul(_as_expr(a), _as_expr(b)))


def _exact_div(an: Analyzer, a, b: int) -> "int | PrimExpr":
    """``a // b`` where ``a`` is known to be a multiple of ``b``."""
    if isinstance(a, int):
        return a // b
    return _norm(an, FloorDiv(a, IntImm(b, a.dtype)))


def _eq(an: Analyzer, a, b) -> bool:
    """``a == b`` provably."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return an.can_prove_equal(_as_expr(a), _as_expr(b))


def _le(an: Analyzer, a, b) -> bool:
    """``a <= b`` provably."""
    if isinstance(a, int) and isinstance(b, int):
        return a <= b
    return an.can_prove(LE(_as_expr(a), _as_expr(b)))


def _divides(an: Analyzer, a, c) -> bool:
    """``a`` is provably a multiple of ``c`` (a positive constant or extent)."""
    if isinstance(a, int) and isinstance(c, int):
        return a % c == 0
    return _eq(an, a, c) or _eq(an, _norm(an, FloorMod(_as_expr(a), _as_expr(c))), 0)


def _key(x):
    """A dictionary key for an extent (expressions compare by their text)."""
    return x if isinstance(x, int) else str(x)


class IterMark:
    """An iterator ``[0, extent)``: an input variable, or a fused ``IterSum``."""

    __slots__ = ("source", "extent", "offset")

    def __init__(self, source, extent: Extent, offset=None):
        self.source = source
        self.extent = extent
        self.offset = offset  # an input variable's domain minimum (the mark is ``var - offset``)

    def __repr__(self) -> str:
        return f"IterMark({self.source!r}, extent={self.extent})"


class IterSplit:
    """``(source // lower_factor) % extent * scale``."""

    __slots__ = ("source", "lower_factor", "extent", "scale")

    def __init__(self, source: IterMark, lower_factor: int, extent: Extent, scale: int):
        self.source, self.lower_factor, self.extent, self.scale = source, lower_factor, extent, scale

    def with_scale(self, scale: int) -> "IterSplit":
        return IterSplit(self.source, self.lower_factor, self.extent, scale)

    def __repr__(self) -> str:
        return f"IterSplit({self.source!r}, lf={self.lower_factor}, ext={self.extent}, scale={self.scale})"


class IterSum:
    """``sum(args) + base``; ``base`` is an expression free of input iterators."""

    __slots__ = ("args", "base")

    def __init__(self, args: tuple, base: PrimExpr):
        self.args = tuple(args)
        self.base = base

    def __repr__(self) -> str:
        return f"IterSum({list(self.args)!r}, base={self.base})"


class IterMapResult:
    """The detected map: ``indices`` (one ``IterSum`` per index) and ``exprs`` (their normal forms)."""

    def __init__(self, indices: list, exprs: list):
        self.indices = indices
        self.exprs = exprs

    def __repr__(self) -> str:
        return f"IterMapResult({[str(e) for e in self.exprs]})"


class IterMapError(ValueError):
    """An index is not an affine map of the input iterators (the message says why)."""


class _Rewriter:
    def __init__(self, input_iters: Mapping[Var, Range], an: Analyzer):
        self.an = an
        self.inputs: dict = {}
        self.marks: dict = {}     # id(var) -> mark
        self.fused: dict = {}     # key of a fused sum -> mark
        iter_ids = {id(v) for v in input_iters}
        for v, r in input_iters.items():
            if isinstance(r, tuple):
                r = Range.from_begin_end(*r)
            if uses_var(r.extent, lambda x: id(x) in iter_ids) or uses_var(r.min, lambda x: id(x) in iter_ids):
                raise IterMapError(f"the domain of iterator {v.name} depends on an iterator")
            ext = _norm(an, r.extent)
            mn = an.simplify(r.min)
            self.inputs[id(v)] = (v, mn, ext)
            self.marks[id(v)] = IterMark(v, ext, None if isinstance(mn, IntImm) and mn.value == 0 else mn)
            an.bind(v, r)

    def uses_input(self, e) -> bool:
        return uses_var(e, lambda v: id(v) in self.inputs and self.inputs[id(v)][0] is v)

    def const_int(self, e) -> int | None:
        e = self.an.simplify(e)
        return e.value if isinstance(e, IntImm) else None

    def rewrite(self, e: PrimExpr) -> IterSum:
        dt = e.dtype
        if not self.uses_input(e):
            return IterSum((), e)
        if isinstance(e, Var):
            v, mn, ext = self.inputs[id(e)]
            if _eq(self.an, ext, 1):
                return IterSum((), mn)
            return IterSum((IterSplit(self.marks[id(e)], 1, ext, 1),), mn)
        if isinstance(e, (Add, Sub)):
            a, b = self.rewrite(e.a), self.rewrite(e.b)
            if isinstance(e, Add):
                return IterSum(a.args + b.args, Add(a.base, b.base))
            return IterSum(a.args + tuple(s.with_scale(-s.scale) for s in b.args), Sub(a.base, b.base))
        if isinstance(e, Mul):
            x, y = e.a, e.b
            if self.uses_input(y):
                x, y = y, x
            if self.uses_input(y):
                raise IterMapError(f"`{e}` multiplies two iterators")
            c = self.const_int(y)
            if c is None:
                raise IterMapError(f"`{e}` has the non-constant scale `{y}`")
            a = self.rewrite(x)
            if c == 0:
                return IterSum((), IntImm(0, dt))
            return IterSum(tuple(s.with_scale(s.scale * c) for s in a.args), Mul(a.base, y))
        if isinstance(e, (FloorDiv, FloorMod)):
            if self.uses_input(e.b):
                raise IterMapError(f"`{e}` divides by an iterator")
            c = self.const_int(e.b)
            if c is None or c <= 0:
                raise IterMapError(f"`{e}` divides by `{e.b}`, which is not a positive constant")
            a = self.rewrite(e.a)
            return self.divmod(a, c, isinstance(e, FloorDiv), e)
        raise IterMapError(f"`{e}` ({type(e).__name__}) is not an affine expression of the iterators")

    def divmod(self, a: IterSum, c: int, is_div: bool, e) -> IterSum:
        dt = e.dtype
        base = self.const_int(a.base)
        if base is None:
            raise IterMapError(f"`{e}`: the offset `{a.base}` is not a constant")
        if not a.args:
            raise IterMapError(f"`{e}`: internal error, no iterators")
        split = self.to_split(a, e)
        bq, br = divmod(base, c)
        if br != 0:
            # (split + br) // c with 0 < br < c is affine only when the split's values are multiples of c
            raise IterMapError(f"`{e}`: the offset {base} is not a multiple of {c}")
        sc = split.scale
        if sc % c == 0:
            if is_div:
                return IterSum((split.with_scale(sc // c),), IntImm(bq, dt))
            return IterSum((), IntImm(0, dt))
        if c % sc != 0:
            raise IterMapError(f"`{e}`: the divisor {c} and the iterator's scale {sc} do not divide each other")
        f = c // sc
        below = _le(self.an, split.extent, f)  # the whole split lies below the divisor
        if not below and not _divides(self.an, split.extent, f):
            raise IterMapError(f"`{e}`: the iterator's extent {split.extent} is not (provably) divisible by {f}")
        if is_div:
            if below:
                return IterSum((), IntImm(bq, dt))
            return IterSum((IterSplit(split.source, split.lower_factor * f, _exact_div(self.an, split.extent, f), 1),),
                           IntImm(bq, dt))
        if below:
            return IterSum((split,), IntImm(0, dt))
        return IterSum((IterSplit(split.source, split.lower_factor, f, sc),), IntImm(0, dt))

    def to_split(self, a: IterSum, e) -> IterSplit:
        """One split equivalent to the iterator part of ``a`` (fusing a sum when needed)."""
        args = [s for s in a.args if s.scale != 0]
        if len(args) == 1:
            return args[0]
        # fuse: the smallest scale is the unit; each next scale is the previous scale times its extent
        args = self.merge(args)
        if len(args) == 1:
            return args[0]
        unit = min(abs(s.scale) for s in args)
        if any(s.scale < 0 for s in args):
            raise IterMapError(f"`{e}`: an iterator appears with a negative scale")
        chain = []
        expected = unit
        extent = 1
        left = list(args)
        while left:
            hit = [s for s in left if isinstance(expected, int) and s.scale == expected]
            if len(hit) != 1:
                raise IterMapError(f"`{e}`: the iterators do not fuse into one (no term with scale {expected}, "
                                   "or several)")
            s = hit[0]
            left.remove(s)
            chain.append(s)
            expected = _mul(self.an, expected, s.extent)
            extent = _mul(self.an, extent, s.extent)
        norm = tuple(reversed([s.with_scale(s.scale // unit) for s in chain]))  # descending scale
        # all splits of one mark tiling it exactly: that is the mark itself
        src = norm[0].source
        if all(s.source is src for s in norm):
            lf = 1
            ok = True
            for s in reversed(norm):
                if not _eq(self.an, s.lower_factor, lf):
                    ok = False
                    break
                lf = _mul(self.an, lf, s.extent)
            if ok:
                return IterSplit(src, 1, lf, unit)
        return IterSplit(self._fused(norm, extent), 1, extent, unit)

    def merge(self, args):
        """Combine ``(x // (f*e)) % E * (s*e)`` and ``(x // f) % e * s`` of one mark into one split."""
        changed = True
        args = list(args)
        while changed:
            changed = False
            for p in args:
                for q in args:
                    if p is q or p.source is not q.source:
                        continue
                    if not isinstance(q.extent, int):
                        continue  # p's lower factor and scale are constants: never above a symbolic split
                    if p.lower_factor == q.lower_factor * q.extent and p.scale == q.scale * q.extent:
                        m = IterSplit(p.source, q.lower_factor, _mul(self.an, q.extent, p.extent), q.scale)
                        args = [x for x in args if x is not p and x is not q] + [m]
                        changed = True
                        break
                if changed:
                    break
        return args

    def _fused(self, norm, extent) -> IterMark:
        key = tuple((id(s.source), s.lower_factor, _key(s.extent), s.scale) for s in norm)
        m = self.fused.get(key)
        if m is None:
            m = IterMark(IterSum(norm, IntImm(0)), extent)
            self.fused[key] = m
        return m


def _mark_expr(m: IterMark, dtype: str) -> PrimExpr:
    if isinstance(m.source, Var):
        return m.source if m.offset is None else Sub(m.source, m.offset)
    return _sum_expr(m.source, dtype)


def _split_expr(s: IterSplit, dtype: str) -> PrimExpr:
    x = _mark_expr(s.source, dtype)
    if s.lower_factor != 1:
        x = FloorDiv(x, IntImm(s.lower_factor, dtype))
    if not _covers_mark(s):
        x = FloorMod(x, _as_expr(s.extent, dtype))
    if s.scale != 1:
        x = Mul(x, IntImm(s.scale, dtype))
    return x


def _covers_mark(s: IterSplit) -> bool:
    """The split reaches the top of its mark (``lower_factor * extent`` is the mark's extent)."""
    if isinstance(s.extent, int) and isinstance(s.source.extent, int):
        return s.lower_factor * s.extent == s.source.extent
    an = Analyzer()
    return _eq(an, _mul(an, s.lower_factor, s.extent), s.source.extent)


def _sum_expr(t: IterSum, dtype: str) -> PrimExpr:
    out = t.base if isinstance(t.base, PrimExpr) else IntImm(int(t.base), dtype)
    for s in t.args:
        out = Add(out, _split_expr(s, dtype))
    return out


def iter_map_to_expr(x, analyzer: Analyzer | None = None, dtype: str = "int32") -> PrimExpr:
    """The expression of an ``IterSum``/``IterSplit``/``IterMark``, simplified."""
    an = analyzer or Analyzer()
    if isinstance(x, IterSum):
        e = _sum_expr(x, dtype)
    elif isinstance(x, IterSplit):
        e = _split_expr(x, dtype)
    else:
        e = _mark_expr(x, dtype)
    return an.simplify(e)


def _check(results: list, rw: _Rewriter, level: str) -> str | None:
    """None when the splits of every mark do not overlap (and tile it exactly for bijective)."""
    uses: dict = {}
    marks: dict = {}
    todo = []
    for r in results:
        todo.extend(r.args)
    seen_fused = set()
    while todo:
        s = todo.pop()
        m = s.source
        uses.setdefault(id(m), []).append(s)
        marks[id(m)] = m
        if isinstance(m.source, IterSum) and id(m) not in seen_fused:
            seen_fused.add(id(m))
            todo.extend(m.source.args)
    for mid, splits in uses.items():
        m = marks[mid]
        # identical splits used twice (the same index twice) overlap
        splits = sorted(splits, key=lambda s: s.lower_factor)
        expected = 1
        an = rw.an
        for s in splits:
            if not _le(an, expected, s.lower_factor):
                return f"iterator `{_mark_name(m)}` is used twice (overlapping splits, or not provably apart)"
            if not _eq(an, s.lower_factor, expected):
                if level == "bijective":
                    return f"iterator `{_mark_name(m)}` is not fully used (a gap at factor {expected})"
                if not _divides(an, s.lower_factor, expected):
                    return f"iterator `{_mark_name(m)}` is split unevenly"
            expected = _mul(an, s.lower_factor, s.extent)
        if level == "bijective" and not _eq(an, expected, m.extent):
            return f"iterator `{_mark_name(m)}` of extent {m.extent} is only partly used ({expected})"
        if level == "surjective" and not _divides(an, m.extent, expected):
            return f"iterator `{_mark_name(m)}` of extent {m.extent} is not (provably) split evenly"
    if level == "bijective":
        for v, _, ext in rw.inputs.values():
            if not _eq(rw.an, ext, 1) and id(rw.marks[id(v)]) not in uses:
                return f"iterator `{v.name}` is not used"
    return None


def _mark_name(m: IterMark) -> str:
    return m.source.name if isinstance(m.source, Var) else str(_mark_expr(m, "int32"))


def detect_iter_map(indices: Sequence, input_iters: Mapping[Var, Range], predicate=True,
                    check_level: str = "surjective", errors: list | None = None) -> IterMapResult | None:
    """Express each index as an affine map of the input iterators, or return None.

    ``check_level`` is ``"surjective"`` (splits of an iterator never overlap; the default,
    as in TVM) or ``"bijective"`` (the indices also use every iterator exactly). Pass a list
    as ``errors`` to receive the reason of a failure.

    >>> from workbench.ir.expr import Var, Range
    >>> f = Var("f")
    >>> r = detect_iter_map([f // 8, f % 8], {f: Range(0, 32)}, check_level="bijective")
    >>> r is not None
    True
    """
    an = Analyzer()
    try:
        if check_level not in ("surjective", "bijective"):
            raise ValueError(f"check_level must be 'surjective' or 'bijective', got {check_level!r}")
        rw = _Rewriter(input_iters, an)
        results = []
        for idx in indices:
            idx = convert(idx)
            t = rw.rewrite(idx)
            args = [s for s in t.args if s.scale != 0]
            if len(args) > 1:
                # each index must be one (possibly fused) iterator: that is what makes indices independent
                split = rw.to_split(IterSum(args, t.base), idx)
                t = IterSum((split,), t.base)
            results.append(IterSum(tuple(args) if len(args) <= 1 else t.args, an.simplify(t.base)))
        err = _check(results, rw, check_level)
        if err is not None:
            raise IterMapError(err)
    except IterMapError as ex:
        if errors is not None:
            errors.append(str(ex))
        return None
    exprs = [iter_map_to_expr(r, an, convert(i).dtype) for r, i in zip(results, indices)]
    return IterMapResult(results, exprs)


def is_affine_binding(block_realize, loop_domains: Mapping[Var, Range]) -> bool:
    """True when the block's bindings are an affine, non-overlapping map of the loops (TVM's rule).

    >>> from workbench.ir import Block, BlockRealize, IterVar, Var, Range, Evaluate
    >>> i, vi = Var("i"), Var("vi")
    >>> br = BlockRealize((i // 2,), True, Block("b", (IterVar(vi, 8),), body=Evaluate(0)))
    >>> is_affine_binding(br, {i: Range(0, 16)})
    True
    """
    return detect_iter_map(list(block_realize.iter_values), loop_domains, block_realize.predicate) is not None


class DividedBinding(tuple):
    """``(outer, inner)``: a binding equals ``outer * inner_extent + inner``."""

    def __new__(cls, outer, inner, outer_extent, inner_extent):
        t = super().__new__(cls, (outer, inner))
        t.outer_extent = outer_extent
        t.inner_extent = inner_extent
        return t

    @property
    def outer(self):
        return self[0]

    @property
    def inner(self):
        return self[1]


def subspace_divide(bindings: Sequence, input_iters: Mapping[Var, Range], sub_iters: Sequence[Var],
                    predicate=True) -> list | None:
    """Divide each binding into a part over the outer iterators and one over ``sub_iters``.

    Each result ``(outer, inner)`` satisfies ``binding == outer * inner_extent + inner``
    (``.outer_extent`` and ``.inner_extent`` are attributes); None when the bindings do
    not divide (an inner iterator is not in the low part of a fused index) or an
    iterator's extent is symbolic.

    >>> from workbench.ir.expr import Var, Range
    >>> io, ii = Var("io"), Var("ii")
    >>> d = subspace_divide([io * 32 + ii], {io: Range(0, 4), ii: Range(0, 32)}, [ii])
    >>> [(str(o), str(i), o_i.inner_extent) for o_i in d for o, i in [o_i]]
    [('io', 'ii', 32)]
    """
    doms = [r if isinstance(r, Range) else Range.from_begin_end(*r) for r in input_iters.values()]
    if any(as_int(Analyzer().simplify(r.extent)) is None for r in doms):
        return None
    res = detect_iter_map(bindings, input_iters, predicate)
    if res is None:
        return None
    an = Analyzer()
    for v, r in input_iters.items():
        an.bind(v, r if isinstance(r, Range) else Range.from_begin_end(*r))
    inner_ids = {id(v) for v in sub_iters}
    out = []
    try:
        for t, b in zip(res.indices, bindings):
            dt = convert(b).dtype
            if not t.args:
                out.append(DividedBinding(an.simplify(t.base), IntImm(0, dt), 1, 1))
                continue
            (s,) = t.args
            o, oe, i, ie = _divide_split(s, inner_ids, dt)
            base = an.simplify(t.base)
            if not (isinstance(base, IntImm) and base.value == 0):
                if ie == 1:
                    o = Add(o, base)
                elif oe == 1:
                    i = Add(i, base)
                else:
                    return None
            out.append(DividedBinding(an.simplify(o), an.simplify(i), oe, ie))
    except IterMapError:
        return None
    return out


def _divide_mark(m: IterMark, inner_ids: set, dt: str):
    """(outer_expr, outer_extent, inner_expr, inner_extent) with mark == outer * inner_extent + inner."""
    if isinstance(m.source, Var):
        x = _mark_expr(m, dt)
        if id(m.source) in inner_ids:
            return IntImm(0, dt), 1, x, m.extent
        return x, m.extent, IntImm(0, dt), 1
    parts = [_divide_split(s.with_scale(1), inner_ids, dt) + (s.scale,) for s in m.source.args]  # descending scale
    # inner parts must occupy the lowest scales: a mixed split (lowest only), inner-only, then outer-only
    outer_e, inner_e = IntImm(0, dt), IntImm(0, dt)
    outer_ext, inner_ext = 1, 1
    in_outer = False
    for k, (o, oe, i, ie, sc) in enumerate(reversed(parts)):  # ascending scale
        if oe == 1 and ie == 1:
            continue
        if oe == 1:  # purely inner
            if in_outer:
                raise IterMapError("an inner iterator sits above an outer one")
            inner_e = Add(inner_e, Mul(i, IntImm(sc, dt)))
            inner_ext = sc * ie
        elif ie == 1:  # purely outer
            in_outer = True
            if sc % inner_ext != 0:
                raise IterMapError("an outer iterator does not sit above the inner part")
            outer_e = Add(outer_e, Mul(o, IntImm(sc // inner_ext, dt)))
            outer_ext = sc // inner_ext * oe
        else:  # mixed: only as the lowest part
            if k != 0 or sc != 1:
                raise IterMapError("a mixed inner/outer iterator in the middle of a fused index")
            outer_e, outer_ext, inner_e, inner_ext = o, oe, i, ie
            in_outer = True
    return outer_e, outer_ext, inner_e, inner_ext


def _divide_split(s: IterSplit, inner_ids: set, dt: str):
    o, oe, i, ie = _divide_mark(s.source, inner_ids, dt)
    lf, ext = s.lower_factor, s.extent
    if ie == 1:
        x = _wrap(o, lf, ext, oe, dt)
        return _scale(x, s.scale, dt), ext, IntImm(0, dt), 1
    if oe == 1:
        x = _wrap(i, lf, ext, ie, dt)
        if s.scale != 1:
            raise IterMapError("scaled inner split")
        return IntImm(0, dt), 1, x, ext
    if lf % ie == 0:  # only the outer part
        x = _wrap(o, lf // ie, ext, oe, dt)
        return _scale(x, s.scale, dt), ext, IntImm(0, dt), 1
    if lf == 1 and ext % ie == 0:
        if s.scale != 1:
            raise IterMapError("scaled mixed split")
        return _wrap(o, 1, ext // ie, oe, dt), ext // ie, i, ie
    if lf * ext <= ie and ie % (lf * ext) == 0:
        if s.scale != 1:
            raise IterMapError("scaled inner split")
        return IntImm(0, dt), 1, _wrap(i, lf, ext, ie, dt), ext
    raise IterMapError("a split crosses the inner/outer boundary")


def _wrap(x, lf, ext, total, dt):
    if lf != 1:
        x = FloorDiv(x, IntImm(lf, dt))
    if lf * ext != total:
        x = FloorMod(x, IntImm(ext, dt))
    return x


def _scale(x, sc, dt):
    return x if sc == 1 else Mul(x, IntImm(sc, dt))


class AffineInverse(NamedTuple):
    """The inverse of a one-to-one affine index map (see ``inverse_affine_map``)."""

    outputs: list       #: fresh variables ``q0, q1, ...``, one per index of the map
    values: dict        #: each input variable -> its value as an expression of ``outputs``
    image: list         #: ``(start, extent)`` per index: the box the map covers


def inverse_affine_map(indices: Sequence, input_iters: Mapping[Var, Range]) -> AffineInverse | None:
    """Invert an affine map of ``input_iters`` that is one-to-one onto a box (TVM's ``InverseAffineIterMap``).

    Each index gets a fresh variable ``q<k>`` ranging over the index's part of the box; the
    result gives every input variable as an expression of those variables. None when the map
    is not a bijection onto a box (an index scaled, two indices overlapping, a variable left
    out) or a domain is symbolic.

    >>> from workbench.ir.expr import Var, Range
    >>> i, j = Var("i"), Var("j")
    >>> inv = inverse_affine_map([j + 1, i // 4, i % 4], {i: Range(0, 16), j: Range(0, 3)})
    >>> [str(v) for v in inv.outputs], [(str(a), str(b)) for a, b in inv.image]
    (['q0', 'q1', 'q2'], [('1', '3'), ('0', '4'), ('0', '4')])
    >>> print(inv.values[i], "|", inv.values[j])
    q1 * 4 + q2 | q0 - 1
    >>> inverse_affine_map([i * 2], {i: Range(0, 4)}) is None        # not onto a box
    True
    """
    if any(as_int(r.extent) is None for r in input_iters.values()):
        return None
    res = detect_iter_map(list(indices), input_iters, check_level="bijective")
    if res is None:
        return None
    qs = [Var(f"q{d}", convert(idx).dtype) for d, idx in enumerate(indices)]
    known: dict = {}      # id(mark) -> (mark, [(split, value expr)])
    image = []
    for q, t in zip(qs, res.indices):
        if not t.args:
            image.append((t.base, IntImm(1, q.dtype)))
            continue
        s = t.args[0]
        if s.scale != 1:
            return None
        image.append((t.base, IntImm(s.extent, q.dtype)))
        known.setdefault(id(s.source), (s.source, []))[1].append((s, q - t.base))
    _expand_fused_marks(known)
    an = Analyzer()
    for q, (start, ext) in zip(qs, image):
        an.bind(q, Range(start, ext))
    by_var = {id(m.source): (m, sp) for m, sp in known.values() if isinstance(m.source, Var)}
    values = {}
    for v, dom in input_iters.items():
        hit = by_var.get(id(v))
        if hit is None:
            if as_int(dom.extent) != 1:
                return None
            values[v] = dom.min
            continue
        mark, splits = hit
        val = _mark_value(splits)
        values[v] = an.simplify(val if mark.offset is None else val + mark.offset)
    return AffineInverse(qs, values, image)


def _expand_fused_marks(known: dict) -> None:
    """Split each fused mark (``i * 4 + j``) whose value is known back into the values of its terms."""
    expanded: set = set()
    changed = True
    while changed:
        changed = False
        for mid, (mark, splits) in list(known.items()):
            if mid in expanded or not isinstance(mark.source, IterSum):
                continue
            expanded.add(mid)
            changed = True
            total = _mark_value(splits)
            for a in mark.source.args:
                part = (total // a.scale if a.scale != 1 else total) % a.extent
                known.setdefault(id(a.source), (a.source, []))[1].append((a, part))


def _mark_value(splits) -> PrimExpr:
    """The value of a mark from the values of the splits that tile it."""
    out = None
    for s, v in sorted(splits, key=lambda sv: sv[0].lower_factor):
        term = v if s.lower_factor == 1 else v * s.lower_factor
        out = term if out is None else out + term
    return out


__all__ = ["IterMark", "IterSplit", "IterSum", "IterMapResult", "IterMapError", "detect_iter_map",
           "is_affine_binding", "subspace_divide", "iter_map_to_expr", "DividedBinding", "AffineInverse",
           "inverse_affine_map"]
