"""``Analyzer``: what is known about variables, and the questions it answers.

>>> from workbench.ir.expr import Var, Range
>>> from workbench.ir.arith import Analyzer
>>> i, n = Var("i"), Var("n")
>>> an = Analyzer()
>>> an.bind(i, Range(0, 128))
>>> an.can_prove(i < 128), an.const_int_bound(i * 2)
(True, ConstIntBound(min_value=0, max_value=254))
>>> with an.constraint(i < 16):
...     print(an.simplify(i // 16))
0
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Mapping

from ..expr import (Add, And, BufferLoad, Call, CmpOp, Div, EQ, FloorDiv, FloorMod, GE, GT, IntImm, LE, LT, Max, Min,
                    Mul, PrimExpr, Range, Select, Sub, Var, convert)
from ..functor import Visitor
from .bound import BoundEvaluator, ConstIntBound, IntervalSet
from .simplify import Simplifier, _is_index


class Analyzer:
    """Holds variable domains, known values and branch conditions; simplifies and proves.

    ``bind(var, Range(0, n))`` for a loop or iteration variable, ``bind(var, expr)``
    for a known value; ``with analyzer.constraint(cond):`` while inside a branch.
    """

    def __init__(self) -> None:
        self._bounds: dict[int, tuple] = {}   # id(var) -> (var, lo, hi)
        self._ranges: dict[int, tuple] = {}   # id(var) -> (var, Range)
        self._values: dict[int, tuple] = {}   # id(var) -> (var, value)
        self._facts: list[tuple] = []         # (expr, key) known to hold
        self._simp = Simplifier(self)
        self._beval = BoundEvaluator(self._var_bound)

    # -- facts ---------------------------------------------------------------
    def _var_bound(self, v: Var):
        hit = self._bounds.get(id(v))
        if hit is not None and hit[0] is v:
            return (hit[1], hit[2])
        return None

    def _bound(self, e: PrimExpr) -> tuple:
        if len(self._beval.memo) > 100000:
            self._reset()
        return self._beval(e)

    def _reset(self) -> None:
        self._simp.reset()
        if self._beval.memo:
            self._beval = BoundEvaluator(self._var_bound)

    def bind(self, var: Var, value) -> None:
        """Record a loop/iteration domain (``Range`` or ``(lo, hi_exclusive)``) or a known value of ``var``.

        >>> from workbench.ir.expr import Var, Range
        >>> i = Var("i"); an = Analyzer(); an.bind(i, Range(0, 8))
        >>> an.const_int_bound(i)
        ConstIntBound(min_value=0, max_value=7)
        """
        if not isinstance(var, Var):
            raise TypeError(f"Analyzer.bind needs a Var, got {type(var).__name__} `{var}`")
        if isinstance(value, tuple) and len(value) == 2:
            value = Range.from_begin_end(convert(value[0], var.dtype), convert(value[1], var.dtype))
        if isinstance(value, Range):
            self._ranges[id(var)] = (var, value)
            self._values.pop(id(var), None)
            if isinstance(value.min, IntImm) and isinstance(value.extent, IntImm):
                lo = value.min.value
                self._bounds[id(var)] = (var, lo, max(lo, lo + value.extent.value - 1))
                self._reset()
                return
            lo = self._bound(value.min)[0]
            hi = self._bound(Sub(Add(value.min, value.extent), IntImm(1, value.extent.dtype)))[1] \
                if value.min.dtype == value.extent.dtype else math.inf
            if not math.isinf(lo) and not math.isinf(hi) and hi < lo:
                hi = lo
            self._bounds[id(var)] = (var, lo, hi)
        else:
            value = convert(value, var.dtype)
            if value.dtype != var.dtype:
                raise TypeError(f"Analyzer.bind: {var.name} is {var.dtype} but the value `{value}` is {value.dtype}")
            self._values[id(var)] = (var, value)
            self._ranges.pop(id(var), None)
            lo, hi = self._bound(value)
            self._bounds[id(var)] = (var, lo, hi)
        self._reset()

    def update_bound(self, var: Var, lo, hi) -> None:
        """Narrow the constant bounds of ``var`` to ``[lo, hi]`` (inclusive)."""
        old = self._var_bound(var) or (-math.inf, math.inf)
        self._bounds[id(var)] = (var, max(old[0], lo), min(old[1], hi))
        self._reset()

    @contextlib.contextmanager
    def constraint(self, cond) -> Iterator[None]:
        """Within the ``with`` block, ``cond`` is assumed true (a branch condition, a predicate).

        >>> from workbench.ir.expr import Var
        >>> x = Var("x"); an = Analyzer()
        >>> with an.constraint((x >= 0) & (x < 4)):
        ...     an.can_prove(x % 4 == x)
        True
        """
        saved = (dict(self._bounds), list(self._facts))
        try:
            self._assume(self.simplify(convert(cond, "bool")))
            self._reset()
            yield
        finally:
            self._bounds, self._facts = saved
            self._reset()

    def _assume(self, c: PrimExpr) -> None:
        if isinstance(c, And):
            self._assume(c.a)
            self._assume(c.b)
            return
        if isinstance(c, IntImm):
            return
        self._facts.append((c, self._simp.key(c)))
        if isinstance(c, CmpOp) and _is_index(c.a.dtype):
            a, b, cls = c.a, c.b, type(c)
            if isinstance(a, IntImm) and isinstance(b, Var):
                a, b = b, a
                cls = {LT: GT, LE: GE, GT: LT, GE: LE}.get(cls, cls)
            if isinstance(a, Var):
                bb = self._bound(b)
                lo, hi = -math.inf, math.inf
                if cls is LT:
                    hi = bb[1] - 1
                elif cls is LE:
                    hi = bb[1]
                elif cls is GT:
                    lo = bb[0] + 1
                elif cls is GE:
                    lo = bb[0]
                elif cls is EQ:
                    lo, hi = bb
                self.update_bound(a, lo, hi)

    # -- questions -----------------------------------------------------------
    def simplify(self, expr) -> PrimExpr:
        """The simplified form of ``expr`` under what is known (see ``workbench.ir.arith.simplify``)."""
        return self._simp.simplify(convert(expr))

    def const_int_bound(self, expr) -> ConstIntBound:
        """Constant bounds of an integer expression (``float('inf')`` where unknown)."""
        lo, hi = self._bound(convert(expr))
        return ConstIntBound(lo, hi)

    def can_prove(self, cond) -> bool:
        """True when ``cond`` holds for every value the variables may take (False: unknown or false)."""
        c = self.simplify(convert(cond, "bool"))
        if isinstance(c, IntImm):
            return bool(c.value)
        if isinstance(c, And):
            return self.can_prove(c.a) and self.can_prove(c.b)
        return False

    def can_prove_equal(self, a, b) -> bool:
        """True when ``a`` and ``b`` always have the same value."""
        a, b = convert(a), convert(b)
        if _is_index(a.dtype) and a.dtype == b.dtype:
            d = self.simplify(Sub(a, b))
            return isinstance(d, IntImm) and d.value == 0
        from ..structural import structural_equal

        return structural_equal(self.simplify(a), self.simplify(b))

    def int_set(self, expr, dom_map: Mapping[Var, Range] | None = None) -> IntervalSet:
        """The symbolic interval of ``expr`` when the variables of ``dom_map`` range over their domains.

        Without ``dom_map`` every variable bound to a ``Range`` in this analyzer is relaxed.

        >>> from workbench.ir.expr import Var, Range
        >>> vi, k = Var("vi"), Var("k")
        >>> s = Analyzer().int_set(vi * 16 + k, {k: Range(0, 16)})
        >>> print(s.min, s.max)
        vi * 16 vi * 16 + 15
        """
        dom = None
        if dom_map is not None:
            dom = {}
            for v, r in dom_map.items():
                if isinstance(r, tuple):
                    r = Range.from_begin_end(*r)
                dom[id(v)] = (v, r)
        return self._int_set_of(convert(expr), dom)

    def _int_set_of(self, e: PrimExpr, dom) -> IntervalSet:
        dom = self._ranges if dom is None else dom
        e = self.simplify(e)
        if not dom:
            return IntervalSet(e, e)
        s = _IntSet(self, dom).eval(e)
        lo = None if s[0] is None else self.simplify(s[0])
        hi = None if s[1] is None else self.simplify(s[1])
        return IntervalSet(lo, hi)


class _Uses(Visitor):
    def __init__(self, ids):
        self.ids = ids
        self.found = False

    def visit_Var(self, v):
        if id(v) in self.ids and self.ids[id(v)][0] is v:
            self.found = True

    def visit(self, n):
        if not self.found:
            super().visit(n)


class _IntSet:
    """Symbolic interval evaluation (bounds as expressions; ``None`` = unbounded)."""

    def __init__(self, an: Analyzer, dom: dict):
        self.an = an
        self.dom = dom
        self.memo: dict = {}
        self.active: set = set()

    def uses(self, e) -> bool:
        u = _Uses(self.dom)
        u.visit(e)
        return u.found

    def const_bound(self, e) -> tuple:
        dom = self.dom
        an = self.an

        def vb(v):
            hit = dom.get(id(v))
            if hit is not None and hit[0] is v:
                r = hit[1]
                lo = an._bound(r.min)[0]
                hi = an._bound(Sub(Add(r.min, r.extent), IntImm(1, r.extent.dtype)))[1]
                return (lo, hi)
            return an._var_bound(v)

        return BoundEvaluator(vb)(e)

    def from_const(self, e) -> tuple:
        lo, hi = self.const_bound(e)
        dt = e.dtype
        return (None if math.isinf(lo) else IntImm(int(lo), dt), None if math.isinf(hi) else IntImm(int(hi), dt))

    def eval(self, e: PrimExpr) -> tuple:
        hit = self.memo.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        r = self._eval(e)
        self.memo[id(e)] = (e, r)
        return r

    def _eval(self, e: PrimExpr) -> tuple:
        if isinstance(e, IntImm) or not self.uses(e):
            return (e, e)
        if isinstance(e, BufferLoad) or isinstance(e, Call) and e.op != "if_then_else":
            return (None, None)  # data-dependent: no useful bound
        if not _is_index(e.dtype):
            return self.from_const(e)
        if isinstance(e, Var):
            r = self.dom[id(e)][1]
            lo, hi = r.min, Sub(Add(r.min, r.extent), IntImm(1, r.extent.dtype))
            if self.uses(lo) or self.uses(hi):  # a domain that depends on other relaxed variables
                if id(e) in self.active:
                    return (None, None)
                self.active.add(id(e))
                try:
                    lo, hi = self.eval(self.an.simplify(lo))[0], self.eval(self.an.simplify(hi))[1]
                finally:
                    self.active.discard(id(e))
            return (lo, hi)
        if isinstance(e, Add):
            a, b = self.eval(e.a), self.eval(e.b)
            return (_opt(Add, a[0], b[0]), _opt(Add, a[1], b[1]))
        if isinstance(e, Sub):
            a, b = self.eval(e.a), self.eval(e.b)
            return (_opt(Sub, a[0], b[1]), _opt(Sub, a[1], b[0]))
        if isinstance(e, Mul):
            x, y = e.a, e.b
            if self.uses(y) and not self.uses(x):
                x, y = y, x
            if not self.uses(y):
                a = self.eval(x)
                lo, hi = self.an._bound(y)
                if lo >= 0:
                    return (_opt(Mul, a[0], y), _opt(Mul, a[1], y))
                if hi <= 0:
                    return (_opt(Mul, a[1], y), _opt(Mul, a[0], y))
            return self.from_const(e)
        if isinstance(e, (FloorDiv, Div)):
            if not self.uses(e.b):
                lo, hi = self.an._bound(e.b)
                a = self.eval(e.a)
                if lo > 0:
                    if isinstance(e, Div) and self.const_bound(e.a)[0] < 0:
                        return self.from_const(e)
                    return (_opt(FloorDiv, a[0], e.b), _opt(FloorDiv, a[1], e.b))
            return self.from_const(e)
        if isinstance(e, FloorMod):
            if isinstance(e.b, IntImm) and e.b.value > 0:
                d = e.b
                a = self.eval(e.a)
                if a[0] is not None and a[1] is not None:
                    same = self.an.simplify(Sub(FloorDiv(a[1], d), FloorDiv(a[0], d)))
                    if isinstance(same, IntImm) and same.value == 0:
                        return (FloorMod(a[0], d), FloorMod(a[1], d))
                return (IntImm(0, e.dtype), IntImm(d.value - 1, e.dtype))
            return self.from_const(e)
        if isinstance(e, (Min, Max)):
            a, b = self.eval(e.a), self.eval(e.b)
            cls = type(e)
            if cls is Min:
                return (_opt(Min, a[0], b[0]), _opt(Min, a[1], b[1]) if a[1] is not None and b[1] is not None
                        else (a[1] if b[1] is None else b[1]))
            return (_opt(Max, a[0], b[0]) if a[0] is not None and b[0] is not None
                    else (a[0] if b[0] is None else b[0]), _opt(Max, a[1], b[1]))
        if isinstance(e, Select) or isinstance(e, Call) and e.op == "if_then_else":
            t, f = (e.true_value, e.false_value) if isinstance(e, Select) else e.args[1:]
            a, b = self.eval(t), self.eval(f)
            return (_opt(Min, a[0], b[0]), _opt(Max, a[1], b[1]))
        return self.from_const(e)


def _opt(cls, a, b):
    if a is None or b is None:
        return None
    return cls(a, b)


__all__ = ["Analyzer"]
