"""The expression simplifier: constant folding and a canonical linear form of integers.

Integer expressions (signed dtypes) are rewritten as a sum of monomials with
folded coefficients (``i*4 + j*1 + 0 - i*4`` becomes ``j``), terms ordered by
descending coefficient, then by first appearance, the constant last.
Floor division and modulo by constants use the bounds the analyzer knows
(``(io*32 + ii) // 32`` is ``io`` when ``0 <= ii < 32``). Floats are only folded
(in their dtype) and never reassociated; division by zero is left alone.

>>> from workbench.ir.expr import Var, Range
>>> from workbench.ir.arith import simplify
>>> io, ii = Var("io"), Var("ii")
>>> print(simplify((io * 32 + ii) // 32, {ii: Range(0, 32)}))
io
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..dtype import is_bool, is_float, is_int, is_integer, lanes_of, max_value, min_value, to_numpy
from ..expr import (EQ, GE, GT, LE, LT, NE, Add, And, BufferLoad, Call, Cast, CmpOp, Div, FloatImm,
                    FloorDiv, FloorMod, IntImm, Let, Max, Min, Mod, Mul, Not, Or, PrimExpr, Select,
                    StringImm, Sub, Var, _fold_float)
from ..node import Node

if TYPE_CHECKING:  # pragma: no cover
    from .analyzer import Analyzer

_MAX_TERMS = 24  # distribute products only while they stay small


# ---------------------------------------------------------------------------
# structural keys of expressions (variables by identity)


def expr_key(e, memo: dict) -> tuple:
    """A hashable key equal for structurally identical expressions (same variables)."""
    hit = memo.get(id(e))
    if hit is not None:
        return hit[1]
    if isinstance(e, Var):
        k: tuple = ("V", id(e))
    elif isinstance(e, IntImm):
        k = ("I", e.value, e.dtype)
    elif isinstance(e, FloatImm):
        k = ("F", e.value, e.dtype)
    elif isinstance(e, StringImm):
        k = ("S", e.value)
    elif isinstance(e, BufferLoad):
        k = ("L", id(e.buffer), e.dtype) + tuple(expr_key(x, memo) for x in e.indices)
    else:
        parts: list = [type(e).__name__]
        for name in e._fields:
            v = getattr(e, name)
            if isinstance(v, Node):
                parts.append(expr_key(v, memo))
            elif isinstance(v, tuple):
                parts.append(tuple(expr_key(x, memo) if isinstance(x, Node) else x for x in v))
            else:
                parts.append(v)
        k = tuple(parts)
    memo[id(e)] = (e, k)
    return k


# ---------------------------------------------------------------------------
# linear sums


class _Sum:
    """``sum(coeff * monomial) + const``; a monomial is a product of atoms."""

    __slots__ = ("terms", "const", "dtype")

    def __init__(self, dtype: str, const: int = 0, terms: dict | None = None):
        self.dtype = dtype
        self.const = const
        # mkey -> [coeff, atoms(tuple of exprs), atom keys(tuple)]
        self.terms: dict = terms if terms is not None else {}

    def copy(self) -> "_Sum":
        return _Sum(self.dtype, self.const, {k: list(v) for k, v in self.terms.items()})

    @property
    def is_const(self) -> bool:
        return not self.terms

    def add_term(self, mkey, coeff, atoms, akeys) -> None:
        t = self.terms.get(mkey)
        if t is None:
            if coeff:
                self.terms[mkey] = [coeff, atoms, akeys]
        else:
            t[0] += coeff
            if t[0] == 0:
                del self.terms[mkey]

    def iadd(self, other: "_Sum", scale: int = 1) -> "_Sum":
        self.const += other.const * scale
        for mkey, (c, atoms, akeys) in other.terms.items():
            self.add_term(mkey, c * scale, atoms, akeys)
        return self

    def scaled(self, s: int) -> "_Sum":
        if s == 0:
            return _Sum(self.dtype)
        return _Sum(self.dtype, self.const * s, {k: [c * s, a, ak] for k, (c, a, ak) in self.terms.items()})

    def single_atom(self):
        """The atom when the sum is exactly ``1 * atom``, else None."""
        if self.const == 0 and len(self.terms) == 1:
            (c, atoms, _), = self.terms.values()
            if c == 1 and len(atoms) == 1:
                return atoms[0]
        return None

    def fits(self) -> bool:
        lo, hi = _limits(self.dtype)
        if not lo <= self.const <= hi:
            return False
        return all(lo <= c <= hi for c, _, _ in self.terms.values())


_LIMITS: dict = {}


def _limits(dtype: str) -> tuple:
    r = _LIMITS.get(dtype)
    if r is None:
        r = _LIMITS[dtype] = (min_value(dtype), max_value(dtype))
    return r


def _mkey(akeys) -> tuple:
    return tuple(sorted(akeys, key=hash))


def _atom_sum(e: PrimExpr, key) -> _Sum:
    s = _Sum(e.dtype)
    s.terms[(key,)] = [1, (e,), (key,)]
    return s


def _mono_expr(atoms, dtype) -> PrimExpr:
    out = atoms[0]
    for a in atoms[1:]:
        out = Mul(out, a)
    return out


def build(s: _Sum) -> PrimExpr:
    """The expression of a sum: positive terms by descending coefficient, then negatives, constant last."""
    dt = s.dtype
    items = sorted(s.terms.values(), key=lambda t: -t[0])
    res = None
    const_used = False

    def term(c, atoms):
        m = _mono_expr(atoms, dt)
        return m if c == 1 else Mul(m, IntImm(c, dt))

    for c, atoms, _ in items:
        if c > 0:
            t = term(c, atoms)
            res = t if res is None else Add(res, t)
    for c, atoms, _ in items:
        if c < 0:
            t = term(-c, atoms)
            if res is None:
                if s.const > 0:
                    res = Sub(IntImm(s.const, dt), t)
                    const_used = True
                else:
                    res = Sub(IntImm(0, dt), t)
            else:
                res = Sub(res, t)
    if res is None:
        return IntImm(s.const, dt)
    if not const_used and s.const:
        # `x - c` reads best, but -c may not fit where c is the dtype's minimum (x + -2147483648)
        res = Sub(res, IntImm(-s.const, dt)) if 0 < -s.const <= max_value(dt) else Add(res, IntImm(s.const, dt))
    return res


def _mul_sums(a: _Sum, b: _Sum) -> _Sum | None:
    if (len(a.terms) + 1) * (len(b.terms) + 1) > _MAX_TERMS:
        return None
    out = _Sum(a.dtype, a.const * b.const)
    for ka, (ca, atoms_a, akeys_a) in a.terms.items():
        if b.const:
            out.add_term(ka, ca * b.const, atoms_a, akeys_a)
    for kb, (cb, atoms_b, akeys_b) in b.terms.items():
        if a.const:
            out.add_term(kb, cb * a.const, atoms_b, akeys_b)
    for ka, (ca, atoms_a, akeys_a) in a.terms.items():
        for kb, (cb, atoms_b, akeys_b) in b.terms.items():
            akeys = akeys_a + akeys_b
            out.add_term(_mkey(akeys), ca * cb, atoms_a + atoms_b, akeys)
    return out


_INDEX: dict = {}


def _is_index(dtype: str) -> bool:
    r = _INDEX.get(dtype)
    if r is None:
        r = _INDEX[dtype] = is_int(dtype) and lanes_of(dtype) == 1
    return r


_FLIP = {LT: GT, LE: GE, GT: LT, GE: LE, EQ: EQ, NE: NE}
_NEGATE = {LT: GE, LE: GT, GT: LE, GE: LT, EQ: NE, NE: EQ}


class Simplifier:
    """Rewrites expressions using the facts an ``Analyzer`` holds (bounds, values, ranges)."""

    def __init__(self, analyzer: "Analyzer"):
        self.an = analyzer
        self.keys: dict = {}
        self.cache: dict = {}       # id(expr) -> (expr, simplified)
        self.sums: dict = {}        # id(expr) -> (expr, _Sum)
        self.depth = 0

    def reset(self) -> None:
        self.cache.clear()
        self.sums.clear()

    def key(self, e) -> tuple:
        if len(self.keys) > 200000:
            self.keys.clear()
        return expr_key(e, self.keys)

    # -- entry ---------------------------------------------------------------
    def simplify(self, e: PrimExpr) -> PrimExpr:
        hit = self.cache.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        if _is_index(e.dtype):
            r = build(self.to_sum(e))
        elif is_bool(e.dtype) and lanes_of(e.dtype) == 1:
            r = self._bool(e)
        else:
            r = self._other(e)
        if _same(r, e):
            r = e
        if len(self.cache) > 100000:
            self.cache.clear()
        self.cache[id(e)] = (e, r)
        return r

    # -- integers ------------------------------------------------------------
    def to_sum(self, e: PrimExpr) -> _Sum:
        hit = self.sums.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        s = self._to_sum(e)
        if not s.fits():
            s = _atom_sum(e, self.key(e))
        if len(self.sums) > 100000:
            self.sums.clear()
        self.sums[id(e)] = (e, s)
        return s

    def _to_sum(self, e: PrimExpr) -> _Sum:
        if isinstance(e, IntImm):
            return _Sum(e.dtype, e.value)
        if isinstance(e, Add):
            return self.to_sum(e.a).copy().iadd(self.to_sum(e.b))
        if isinstance(e, Sub):
            return self.to_sum(e.a).copy().iadd(self.to_sum(e.b), -1)
        if isinstance(e, Mul):
            a, b = self.to_sum(e.a), self.to_sum(e.b)
            if b.is_const:
                return a.scaled(b.const)
            if a.is_const:
                return b.scaled(a.const)
            m = _mul_sums(a, b)
            if m is not None:
                return m
            return self._atom(Mul(build(a), build(b)))
        r = self._int_node(e)
        if isinstance(r, _Sum):
            return r
        return self._atom(r)

    def _atom(self, e: PrimExpr) -> _Sum:
        if isinstance(e, IntImm):
            return _Sum(e.dtype, e.value)
        return _atom_sum(e, self.key(e))

    def bound_of_sum(self, s: _Sum) -> tuple:
        lo = hi = s.const
        bnd = self.an._bound
        for c, atoms, _ in s.terms.values():
            if len(atoms) == 1:
                b = bnd(atoms[0])
            else:
                b = bnd(_mono_expr(atoms, s.dtype))
            if c > 0:
                lo, hi = lo + _m(c, b[0]), hi + _m(c, b[1])
            else:
                lo, hi = lo + _m(c, b[1]), hi + _m(c, b[0])
            if math.isinf(lo) and math.isinf(hi):
                return (lo, hi)
        return (lo, hi)

    def _sym_bound_of_sum(self, s: _Sum) -> tuple:
        """Bounds via symbolic intervals over the analyzer's variable ranges (for ``i < n``)."""
        if self.depth > 2 or not self.an._ranges:
            return (-math.inf, math.inf)
        self.depth += 1
        try:
            iset = self.an._int_set_of(build(s), None)
            lo, hi = -math.inf, math.inf
            if iset.min is not None:
                lo = self.an._bound(iset.min)[0]
            if iset.max is not None:
                hi = self.an._bound(iset.max)[1]
            return (lo, hi)
        finally:
            self.depth -= 1

    def sum_bound(self, s: _Sum) -> tuple:
        b = self.bound_of_sum(s)
        if math.isinf(b[0]) or math.isinf(b[1]):
            b2 = self._sym_bound_of_sum(s)
            b = (max(b[0], b2[0]), min(b[1], b2[1]))
        return b

    def _int_node(self, e: PrimExpr):
        """Simplify a non-linear integer node; returns an expression or a ``_Sum``."""
        if isinstance(e, Var):
            v = self.an._values.get(id(e))
            if v is not None and v[0] is e:
                return self.to_sum(v[1])
            return e
        if isinstance(e, (FloorDiv, FloorMod)):
            return self._floor_divmod(e)
        if isinstance(e, (Div, Mod)):
            return self._trunc_divmod(e)
        if isinstance(e, (Min, Max)):
            return self._minmax(e)
        if isinstance(e, Select):
            c = self.simplify(e.condition)
            if isinstance(c, IntImm):
                return self.to_sum(e.true_value if c.value else e.false_value)
            t, f = self.simplify(e.true_value), self.simplify(e.false_value)
            if self.key(t) == self.key(f):
                return self.to_sum(t)
            return Select(c, t, f)
        if isinstance(e, Call) and e.op == "if_then_else":
            c = self.simplify(e.args[0])
            if isinstance(c, IntImm):
                return self.to_sum(e.args[1] if c.value else e.args[2])
            return e.replace(args=(c, self.simplify(e.args[1]), self.simplify(e.args[2])))
        if isinstance(e, Cast):
            return self._cast(e)
        return self._children(e)

    def _floor_divmod(self, e):
        is_div = isinstance(e, FloorDiv)
        a, b = self.to_sum(e.a), self.to_sum(e.b)
        dt = e.dtype
        if b.is_const:
            d = b.const
            if d == 0:
                return type(e)(build(a), build(b))
            if a.is_const:
                return _Sum(dt, a.const // d if is_div else a.const % d)
            if d == 1:
                return a if is_div else _Sum(dt, 0)
            if d < 0:
                return type(e)(build(a), build(b))
            return self._divmod_const(a, d, is_div, FloorDiv if is_div else FloorMod)
        # symbolic divisor: a = q * b + r with 0 <= r < b provable
        return self._divmod_sym(e, a, b, is_div) or type(e)(build(a), build(b))

    def _divmod_const(self, a: _Sum, d: int, is_div: bool, cls):
        dt = a.dtype
        q = _Sum(dt)
        r = _Sum(dt)
        for mkey, (c, atoms, akeys) in a.terms.items():
            if c % d == 0:
                q.add_term(mkey, c // d, atoms, akeys)
            else:
                r.add_term(mkey, c, atoms, akeys)
        q.const, r0 = divmod(a.const, d)
        r.const = r0
        lo, hi = self.sum_bound(r)
        if not math.isinf(lo) and not math.isinf(hi):
            k = lo // d
            if hi // d == k:  # the remainder stays inside one period
                if is_div:
                    q.const += k
                    return q
                r.const -= k * d
                return r
        # a common factor g of the remainder's coefficients and d:
        #   (g*X + r2) // (g*d2) == X // d2 and (g*X + r2) % (g*d2) == g*(X % d2) + r2, for 0 <= r2 < g
        g = d
        for c, _, _ in r.terms.values():
            g = math.gcd(g, c)
        if g > 1:
            d2 = d // g
            r1, r2 = divmod(r.const, g)
            x = _Sum(dt, r1, {k: [c // g, at, ak] for k, (c, at, ak) in r.terms.items()})
            inner = self._divmod_const(x, d2, is_div, cls) if d2 != 1 else (x if is_div else _Sum(dt, 0))
            inner = inner if isinstance(inner, _Sum) else self._atom(inner)
            if is_div:
                return q.iadd(inner)
            return inner.scaled(g).iadd(_Sum(dt, r2))
        # nested floor division / modulo of a single atom
        atom = r.single_atom()
        if atom is not None:
            if is_div and isinstance(atom, FloorDiv) and isinstance(atom.b, IntImm) and atom.b.value > 0:
                prod = atom.b.value * d
                if prod <= max_value(dt):
                    return q.iadd(self._atom(FloorDiv(atom.a, IntImm(prod, dt))))
            if not is_div and isinstance(atom, FloorMod) and isinstance(atom.b, IntImm) and atom.b.value > 0:
                if atom.b.value % d == 0:
                    return self._atom(FloorMod(atom.a, IntImm(d, dt)))
        if is_div:
            if q.const and r.terms:  # keep the offset inside: (n - 1) // 4 rather than (n + 3) // 4 - 1
                qc = q.const
                r.const += qc * d
                q.const = 0
                if not r.fits():
                    r.const -= qc * d
                    q.const = qc
            return q.iadd(self._atom(cls(build(r), IntImm(d, dt))))
        return self._atom(cls(build(r), IntImm(d, dt)))

    def _divmod_sym(self, e, a: _Sum, b: _Sum, is_div: bool):
        den = b.single_atom()
        if den is None:
            return None
        dk = self.key(den)
        q, r = _Sum(a.dtype), _Sum(a.dtype, a.const)
        for mkey, (c, atoms, akeys) in a.terms.items():
            if dk in akeys:
                i = akeys.index(dk)
                rest_atoms = atoms[:i] + atoms[i + 1:]
                rest_keys = akeys[:i] + akeys[i + 1:]
                if rest_atoms:
                    q.add_term(_mkey(rest_keys), c, rest_atoms, rest_keys)
                else:
                    q.const += c
            else:
                r.add_term(mkey, c, atoms, akeys)
        if self.sum_bound(r)[0] < 0:
            return None
        diff = r.copy().iadd(b, -1)
        if self.sum_bound(diff)[1] < 0:
            if not q.terms and q.const == 0 and not r.terms and r.const == 0:
                return None
            return q if is_div else r
        return None

    def _trunc_divmod(self, e):
        is_div = isinstance(e, Div)
        a, b = self.to_sum(e.a), self.to_sum(e.b)
        dt = e.dtype
        if b.is_const:
            d = b.const
            if d == 0:
                return type(e)(build(a), build(b))
            if a.is_const:
                qv = abs(a.const) // abs(d) * (1 if (a.const >= 0) == (d > 0) else -1)
                return _Sum(dt, qv if is_div else a.const - qv * d)
            if d == 1:
                return a if is_div else _Sum(dt, 0)
            if d > 0 and self.sum_bound(a)[0] >= 0:
                # non-negative dividend: truncation is floor division
                return self._divmod_const(a, d, is_div, FloorDiv if is_div else FloorMod)
        return type(e)(build(a), build(b))

    def _minmax(self, e):
        is_min = isinstance(e, Min)
        a, b = self.to_sum(e.a), self.to_sum(e.b)
        if a.is_const and b.is_const:
            return _Sum(e.dtype, min(a.const, b.const) if is_min else max(a.const, b.const))
        diff = a.copy().iadd(b, -1)
        lo, hi = self.sum_bound(diff)
        if hi <= 0:
            return a if is_min else b
        if lo >= 0:
            return b if is_min else a
        ea, eb = build(a), build(b)
        # min(min(x, c1), c2) -> min(x, min(c1, c2))
        if b.is_const and isinstance(ea, type(e)) and isinstance(ea.b, IntImm):
            c = min(ea.b.value, b.const) if is_min else max(ea.b.value, b.const)
            return type(e)(ea.a, IntImm(c, e.dtype))
        return type(e)(ea, eb)

    def _cast(self, e: Cast):
        v = self.simplify(e.value)
        if v.dtype == e.dtype:
            return v
        if isinstance(v, IntImm):
            if is_integer(e.dtype) or is_bool(e.dtype):
                val = v.value
                if is_bool(e.dtype):
                    return IntImm(int(val != 0), e.dtype)
                if min_value(e.dtype) <= val <= max_value(e.dtype):
                    return IntImm(val, e.dtype)
            elif is_float(e.dtype):
                return FloatImm(float(to_numpy(e.dtype).type(v.value)), e.dtype)
        if isinstance(v, FloatImm):
            if is_float(e.dtype):
                return FloatImm(float(to_numpy(e.dtype).type(v.value)), e.dtype)
            if is_integer(e.dtype) and math.isfinite(v.value):
                t = int(v.value)  # C truncation
                if min_value(e.dtype) <= t <= max_value(e.dtype):
                    return IntImm(t, e.dtype)
        return e if v is e.value else Cast(e.dtype, v)

    def _children(self, e: PrimExpr) -> PrimExpr:
        changes = {}
        for name in e._fields:
            x = getattr(e, name)
            if isinstance(x, PrimExpr) and not (isinstance(e, Let) and name == "var"):
                y = self.simplify(x)
                if y is not x:
                    changes[name] = y
            elif isinstance(x, tuple) and x and any(isinstance(y, PrimExpr) for y in x):
                ys = tuple(self.simplify(y) if isinstance(y, PrimExpr) else y for y in x)
                if any(p is not q for p, q in zip(ys, x)):
                    changes[name] = ys
        return e.replace(**changes) if changes else e

    # -- booleans ------------------------------------------------------------
    def _bool(self, e: PrimExpr) -> PrimExpr:
        if isinstance(e, IntImm):
            return e
        for fact in self.an._facts:
            if fact[0] is e:
                return IntImm(1, "bool")
        if isinstance(e, CmpOp):
            r = self._compare(e)
        elif isinstance(e, And):
            a, b = self.simplify(e.a), self.simplify(e.b)
            if isinstance(a, IntImm):
                r = b if a.value else a
            elif isinstance(b, IntImm):
                r = a if b.value else b
            elif self.key(a) == self.key(b):
                r = a
            elif self._negates(a, b):
                r = IntImm(0, "bool")
            else:
                r = And(a, b)
        elif isinstance(e, Or):
            a, b = self.simplify(e.a), self.simplify(e.b)
            if isinstance(a, IntImm):
                r = a if a.value else b
            elif isinstance(b, IntImm):
                r = b if b.value else a
            elif self.key(a) == self.key(b):
                r = a
            elif self._negates(a, b):
                r = IntImm(1, "bool")
            else:
                r = Or(a, b)
        elif isinstance(e, Not):
            a = self.simplify(e.a)
            if isinstance(a, IntImm):
                r = IntImm(int(not a.value), "bool")
            elif isinstance(a, Not):
                r = a.a
            elif isinstance(a, CmpOp) and _is_index(a.a.dtype):
                r = self.simplify(_NEGATE[type(a)](a.a, a.b))
            else:
                r = Not(a)
        elif isinstance(e, Select) or isinstance(e, Call) and e.op == "if_then_else":
            r = self._select(e)
        elif isinstance(e, Cast):
            r = self._cast(e)
        else:
            r = self._children(e)
        if not isinstance(r, IntImm):
            k = self.key(r)
            for fact in self.an._facts:
                if fact[1] == k:
                    return IntImm(1, "bool")
        return r

    def _negates(self, a, b) -> bool:
        if (isinstance(a, Not) and self.key(a.a) == self.key(b)) or \
                (isinstance(b, Not) and self.key(b.a) == self.key(a)):
            return True
        if isinstance(a, CmpOp) and isinstance(b, CmpOp) and _is_index(a.a.dtype):
            neg = self.simplify(_NEGATE[type(a)](a.a, a.b))
            return self.key(neg) == self.key(b)
        return False

    def _compare(self, e: CmpOp) -> PrimExpr:
        cls = type(e)
        if not _is_index(e.a.dtype):
            a, b = self.simplify(e.a), self.simplify(e.b)
            if isinstance(a, (IntImm, FloatImm)) and isinstance(b, (IntImm, FloatImm)):
                import operator

                fn = {EQ: operator.eq, NE: operator.ne, LT: operator.lt, LE: operator.le,
                      GT: operator.gt, GE: operator.ge}[cls]
                return IntImm(int(fn(a.value, b.value)), e.dtype)
            if a is e.a and b is e.b:
                return e
            return cls(a, b)
        a, b = self.to_sum(e.a), self.to_sum(e.b)
        d = a.copy().iadd(b, -1)
        lo, hi = self.sum_bound(d)
        dec = _decide(cls, lo, hi)
        if dec is not None:
            return IntImm(int(dec), "bool")
        # canonical form: positive terms on the left, the rest on the right
        pos = _Sum(d.dtype, 0, {k: list(v) for k, v in d.terms.items() if v[0] > 0})
        neg = _Sum(d.dtype, -d.const, {k: [-v[0], v[1], v[2]] for k, v in d.terms.items() if v[0] < 0})
        op = cls
        if not pos.terms:
            # -N + c OP 0  <=>  N OP' c
            pos, neg, op = _Sum(d.dtype, 0, neg.terms), _Sum(d.dtype, d.const), _FLIP[cls]
        if not neg.terms:
            g = 0
            for c, _, _ in pos.terms.values():
                g = math.gcd(g, c)
            if g > 1:
                c = neg.const
                pos = _Sum(d.dtype, 0, {k: [v[0] // g, v[1], v[2]] for k, v in pos.terms.items()})
                if op in (EQ, NE):
                    if c % g:
                        return IntImm(int(op is NE), "bool")
                    neg.const = c // g
                elif op in (LT, GE):
                    neg.const = -((-c) // g)  # ceil
                else:
                    neg.const = c // g
        if not pos.fits() or not neg.fits():
            return self._children(e)
        return op(build(pos), build(neg))

    def _select(self, e):
        if isinstance(e, Select):
            c, t, f = e.condition, e.true_value, e.false_value
        else:
            c, t, f = e.args
        c = self.simplify(c)
        if isinstance(c, IntImm):
            return self.simplify(t if c.value else f)
        t, f = self.simplify(t), self.simplify(f)
        if self.key(t) == self.key(f):
            return t
        if isinstance(e, Select):
            return Select(c, t, f)
        return e.replace(args=(c, t, f))

    # -- floats and everything else -----------------------------------------
    def _other(self, e: PrimExpr) -> PrimExpr:
        if isinstance(e, (FloatImm, IntImm, StringImm, Var)):
            if isinstance(e, Var):
                v = self.an._values.get(id(e))
                if v is not None and v[0] is e:
                    return self.simplify(v[1])
            return e
        if lanes_of(e.dtype) > 1:
            return self._children(e)
        if isinstance(e, (Add, Sub, Mul, Div, Min, Max)) and is_float(e.dtype):
            a, b = self.simplify(e.a), self.simplify(e.b)
            if isinstance(a, FloatImm) and isinstance(b, FloatImm):
                op = {Add: "+", Sub: "-", Mul: "*", Div: "/", Min: "min", Max: "max"}[type(e)]
                r = _fold_float(op, a.value, b.value, e.dtype)
                if r is not None:
                    return r
            # exact identities only: x * 1 == x, x / 1 == x, x - 0 == x
            if isinstance(e, (Mul, Div)) and isinstance(b, FloatImm) and b.value == 1.0:
                return a
            if isinstance(e, Mul) and isinstance(a, FloatImm) and a.value == 1.0:
                return b
            if isinstance(e, Sub) and isinstance(b, FloatImm) and b.value == 0.0:
                return a
            if a is e.a and b is e.b:
                return e
            return type(e)(a, b)
        if isinstance(e, (Add, Sub, Mul, FloorDiv, FloorMod, Div, Mod, Min, Max)) and is_integer(e.dtype):
            # unsigned integers: fold constants only (wrap-around semantics)
            a, b = self.simplify(e.a), self.simplify(e.b)
            if isinstance(a, IntImm) and isinstance(b, IntImm):
                from ..expr import _fold_int

                op = {Add: "+", Sub: "-", Mul: "*", FloorDiv: "//", FloorMod: "%", Div: "/",
                      Min: "min", Max: "max"}.get(type(e))
                if op is not None:
                    r = _fold_int(op, a.value, b.value, e.dtype)
                    if r is not None:
                        return r
                if isinstance(e, Mod) and b.value != 0:
                    q = abs(a.value) // abs(b.value) * (1 if (a.value >= 0) == (b.value >= 0) else -1)
                    return IntImm(a.value - q * b.value, e.dtype)
            if a is e.a and b is e.b:
                return e
            return type(e)(a, b)
        if isinstance(e, Select) or isinstance(e, Call) and e.op == "if_then_else":
            return self._select(e)
        if isinstance(e, Cast):
            return self._cast(e)
        return self._children(e)


def _m(c, x):
    if x == 0:
        return 0
    return c * x


def _decide(cls, lo, hi):
    if cls is LT:
        return True if hi < 0 else False if lo >= 0 else None
    if cls is LE:
        return True if hi <= 0 else False if lo > 0 else None
    if cls is GT:
        return True if lo > 0 else False if hi <= 0 else None
    if cls is GE:
        return True if lo >= 0 else False if hi < 0 else None
    if cls is EQ:
        return True if lo == hi == 0 else False if (lo > 0 or hi < 0) else None
    if cls is NE:
        return False if lo == hi == 0 else True if (lo > 0 or hi < 0) else None
    return None


def _same(a, b) -> bool:
    return a is b


def simplify(expr, var_ranges: dict | None = None) -> PrimExpr:
    """Simplify ``expr``; ``var_ranges`` maps variables to their ``Range`` (loop domains).

    >>> from workbench.ir.expr import Var, Range
    >>> i, j = Var("i"), Var("j")
    >>> print(simplify(i * 4 + j * 1 + 0 - i * 4))
    j
    >>> print(simplify(i < 128, {i: Range(0, 128)}))
    True
    """
    from ..expr import convert
    from .analyzer import Analyzer

    an = Analyzer()
    for v, r in (var_ranges or {}).items():
        an.bind(v, r)
    return an.simplify(convert(expr))


__all__ = ["simplify", "Simplifier", "expr_key"]
