"""Tests of workbench.ir.arith: simplifier, bounds, regions.

The simplifier is checked two ways: exact expected forms for the named cases, and
random expressions evaluated before and after simplification (a small Python
evaluator below, independent of the simplifier) on random points of the domains.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from workbench.ir.arith import Analyzer, ConstIntBound, infer_block_access_regions, region_of_access, simplify
from workbench.ir.buffer import Buffer
from workbench.ir.expr import (EQ, GE, GT, LE, LT, NE, Add, And, Call, Cast, Div, FloatImm, FloorDiv, FloorMod,
                               IntImm, Max, Min, Mod, Mul, Not, Or, PrimExpr, Range, Select, Sub, Var,
                               if_then_else)
from workbench.ir.stmt import Block, BlockRealize, BufferStore, For, IterVar, LetStmt, SeqStmt
from workbench.ir.structural import structural_equal


# ---------------------------------------------------------------------------
# a tiny reference evaluator (Python integers, floor/trunc semantics spelled out)

def _trunc_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def ev(e, env):
    if isinstance(e, IntImm):
        return e.value
    if isinstance(e, FloatImm):
        return np.dtype(e.dtype).type(e.value)
    if isinstance(e, Var):
        return env[e]
    if isinstance(e, Add):
        return ev(e.a, env) + ev(e.b, env)
    if isinstance(e, Sub):
        return ev(e.a, env) - ev(e.b, env)
    if isinstance(e, Mul):
        return ev(e.a, env) * ev(e.b, env)
    if isinstance(e, FloorDiv):
        b = ev(e.b, env)
        if b == 0:
            raise ZeroDivisionError
        return ev(e.a, env) // b
    if isinstance(e, FloorMod):
        b = ev(e.b, env)
        if b == 0:
            raise ZeroDivisionError
        return ev(e.a, env) % b
    if isinstance(e, Div):
        b = ev(e.b, env)
        if b == 0:
            raise ZeroDivisionError
        a = ev(e.a, env)
        if isinstance(a, np.floating):
            return a / b
        return _trunc_div(a, b)
    if isinstance(e, Mod):
        a, b = ev(e.a, env), ev(e.b, env)
        if b == 0:
            raise ZeroDivisionError
        return a - _trunc_div(a, b) * b
    if isinstance(e, Min):
        return min(ev(e.a, env), ev(e.b, env))
    if isinstance(e, Max):
        return max(ev(e.a, env), ev(e.b, env))
    if isinstance(e, Select):
        c, t, f = ev(e.condition, env), ev(e.true_value, env), ev(e.false_value, env)
        return t if c else f
    if isinstance(e, Call) and e.op == "if_then_else":
        return ev(e.args[1], env) if ev(e.args[0], env) else ev(e.args[2], env)
    ops = {LT: lambda a, b: a < b, LE: lambda a, b: a <= b, GT: lambda a, b: a > b,
           GE: lambda a, b: a >= b, EQ: lambda a, b: a == b, NE: lambda a, b: a != b}
    if type(e) in ops:
        return int(ops[type(e)](ev(e.a, env), ev(e.b, env)))
    if isinstance(e, And):
        return int(bool(ev(e.a, env)) and bool(ev(e.b, env)))
    if isinstance(e, Or):
        return int(bool(ev(e.a, env)) or bool(ev(e.b, env)))
    if isinstance(e, Not):
        return int(not ev(e.a, env))
    raise NotImplementedError(type(e).__name__)


def s(e, **ranges):
    return str(simplify(e, ranges_of(ranges)))


def ranges_of(r):
    names = {"i": I, "j": J, "k": K, "x": X, "y": Y, "n": N}
    return {names[v]: Range(lo, hi - lo) for v, (lo, hi) in r.items()}


I, J, K, X, Y, N = (Var(n) for n in ("i", "j", "k", "x", "y", "n"))
IO, II = Var("io"), Var("ii")


# ---------------------------------------------------------------------------
# named cases with exact expected forms

def test_linear_canonical_form():
    assert str(simplify(I * 4 + J * 1 + 0 - I * 4)) == "j"
    assert str(simplify(Sub(Add(X, 3), 3))) == "x"
    assert str(simplify(Add(J, Mul(I, 4)))) == "i * 4 + j"          # descending coefficient
    assert str(simplify(Add(Add(I, I), I))) == "i * 3"
    assert str(simplify(Sub(IntImm(3), I))) == "3 - i"
    assert str(simplify(Mul(Add(I, 1), 4))) == "i * 4 + 4"
    assert str(simplify(Sub(Mul(I, 2), Mul(I, 2)))) == "0"


def test_floordiv_floormod_with_bounds():
    r = {II: Range(0, 32)}
    assert str(simplify(FloorDiv(IO * 32 + II, 32), r)) == "io"
    assert str(simplify(FloorMod(IO * 32 + II, 32), r)) == "ii"
    assert str(simplify(FloorDiv(I * 8 + J, 4), {J: Range(0, 8)})) == "i * 2 + j // 4"
    assert str(simplify(FloorDiv(X, 1))) == "x"
    assert str(simplify(FloorMod(X, 1))) == "0"
    assert str(simplify(FloorDiv(FloorDiv(X, 4), 8))) == "x // 32"
    assert str(simplify(FloorMod(FloorMod(X, 32), 8))) == "x % 8"
    assert str(simplify(FloorDiv(I, 16), {I: Range(0, 16)})) == "0"
    assert str(simplify(FloorMod(I, 16), {I: Range(0, 16)})) == "i"
    # without bounds nothing unsound happens
    assert str(simplify(FloorDiv(I + 3, 4))) == "(i + 3) // 4"
    assert str(simplify(FloorMod(IO * 32 + II, 32))) == "ii % 32"
    # common factor with the divisor
    assert str(simplify(FloorDiv(I * 16 + 15, 32))) == "i // 2"
    assert str(simplify(FloorMod(I * 16 + 15, 32))) == "i % 2 * 16 + 15"


def test_division_by_zero_left_alone():
    e = FloorDiv(X, IntImm(0))
    assert isinstance(simplify(e), FloorDiv)
    assert isinstance(simplify(FloorMod(IntImm(7), IntImm(0))), FloorMod)
    assert isinstance(simplify(Div(FloatImm(1.0), FloatImm(0.0))), Div)


def test_min_max_and_comparisons():
    assert s(Min(I, I + 1)) == "i"
    assert s(Max(I, I + 1)) == "i + 1"
    assert s(Min(I, 200), i=(0, 128)) == "i"
    assert s(Max(I, 200), i=(0, 128)) == "200"
    assert s(I < 128, i=(0, 128)) == "True"
    assert s(I >= 128, i=(0, 128)) == "False"
    assert s(I * 4 + J < 64, i=(0, 16), j=(0, 4)) == "True"
    assert s(I < 100, i=(0, 128)) == "i < 100"
    assert s(I + 1 < 5) == "i < 4"
    assert s(I * 4 < 8) == "i < 2"
    assert s(EQ(I * 2, 3)) == "False"
    an = Analyzer()
    an.bind(I, Range(0, N))
    assert an.can_prove(I < N)
    assert not an.can_prove(I < N - 1)


def test_logic_and_select():
    c = I < J
    assert s(And(c, IntImm(1, "bool"))) == "i < j"
    assert s(And(c, IntImm(0, "bool"))) == "False"
    assert s(Or(c, IntImm(1, "bool"))) == "True"
    assert s(And(c, Not(c))) == "False"
    assert s(Or(c, Not(c))) == "True"
    assert s(Not(Not(c))) == "i < j"
    assert s(Not(I < J)) == "i >= j"
    assert s(Select(IntImm(1, "bool"), I, J)) == "i"
    assert s(Select(I < 200, I, J), i=(0, 128)) == "i"
    assert s(if_then_else(IntImm(0, "bool"), I, J)) == "j"
    assert s(Select(c, I + 1, 1 + I)) == "i + 1"


def test_constant_folding_respects_dtypes():
    # int32 overflow is not folded
    big = Add(IntImm(2**31 - 1), IntImm(1))
    assert isinstance(simplify(big), Add)
    # float folding happens in the dtype: float16 rounds
    e = Add(FloatImm(0.1, "float16"), FloatImm(0.2, "float16"))
    r = simplify(e)
    assert isinstance(r, FloatImm)
    assert r.value == float(np.float16(0.1) + np.float16(0.2))
    f = Mul(FloatImm(3.0, "float32"), FloatImm(1.0 / 3.0, "float32"))
    assert simplify(f).value == float(np.float32(3.0) * np.float32(1.0 / 3.0))
    # casts of constants
    assert str(simplify(Cast("float32", IntImm(3)))) == str(FloatImm(3.0, "float32"))
    assert simplify(Cast("int32", FloatImm(-2.7))).value == -2
    assert isinstance(simplify(Cast("int8", IntImm(300))), Cast)  # would wrap: left alone
    assert simplify(Cast("int64", IntImm(5))).dtype == "int64"


def test_floats_are_not_reassociated():
    a, b = Var("a", "float32"), Var("b", "float32")
    e = Sub(Add(a, b), b)
    assert structural_equal(simplify(e), e)
    assert structural_equal(simplify(Add(a, FloatImm(0.0))), Add(a, FloatImm(0.0)))  # -0.0 + 0.0 != -0.0
    assert simplify(Mul(a, FloatImm(1.0))) is a


def test_truncdiv_negative_values():
    # truncating division of a possibly negative value is not turned into floor division
    e = Div(X, IntImm(4))
    r = simplify(e, {X: Range(-8, 16)})
    for v in range(-8, 8):
        assert ev(r, {X: v}) == _trunc_div(v, 4)
    assert s(Div(I * 4 + J, 4), i=(0, 8), j=(0, 4)) == "i"
    assert s(Mod(I * 4 + J, 4), i=(0, 8), j=(0, 4)) == "j"


def test_const_int_bound():
    an = Analyzer()
    an.bind(I, Range(0, 16))
    an.bind(J, Range(-4, 8))
    assert an.const_int_bound(I * 4 + J) == ConstIntBound(-4, 63)
    assert an.const_int_bound(FloorDiv(I, 4)) == ConstIntBound(0, 3)
    assert an.const_int_bound(FloorMod(J, 5)) == ConstIntBound(0, 4)
    assert an.const_int_bound(Mul(J, J)) == ConstIntBound(-12, 16)
    assert an.const_int_bound(X).max_value == math.inf
    assert an.const_int_bound(Min(I, 3)) == ConstIntBound(0, 3)


def test_int_set_symbolic():
    an = Analyzer()
    s1 = an.int_set(I, {I: Range(0, N)})
    assert str(s1.min) == "0" and str(s1.max) == "n - 1"
    vi = Var("vi")
    s2 = an.int_set(vi * 16 + K, {K: Range(0, 16)})
    assert str(s2.min) == "vi * 16" and str(s2.max) == "vi * 16 + 15"
    s3 = an.int_set(FloorDiv(I, 4), {I: Range(0, 64)})
    assert (str(s3.min), str(s3.max)) == ("0", "15")


def test_constraint_context():
    an = Analyzer()
    an.bind(I, Range(0, 64))
    with an.constraint(I < 16):
        assert str(an.simplify(FloorDiv(I, 16))) == "0"
        assert an.can_prove(I < 32)
    assert str(an.simplify(FloorDiv(I, 16))) == "i // 16"
    with an.constraint(I * 2 + J < N):
        assert an.can_prove(I * 2 + J < N)


def test_can_prove_equal():
    an = Analyzer()
    assert an.can_prove_equal(I * 4 + J, J + I * 2 + I * 2)
    assert not an.can_prove_equal(I, J)
    an.bind(J, Range(0, 4))
    assert an.can_prove_equal(FloorDiv(I * 4 + J, 4), I)


def test_bind_value():
    an = Analyzer()
    an.bind(I, 3)
    assert str(an.simplify(I * 2 + J)) == "j + 6"


def test_matmul_index_of_split_loops_simplifies_to_linear_form():
    # speed is measured in benchmarks/ir_speed.py, not asserted here
    an = Analyzer()
    io, ii, jo, ji = (Var(n) for n in ("io", "ii", "jo", "ji"))
    for v, ext in ((io, 32), (ii, 32), (jo, 16), (ji, 64)):
        an.bind(v, Range(0, ext))
    e = (FloorDiv(io * 32 + ii, 32) * 32 + FloorMod(io * 32 + ii, 32)) * 1024 + jo * 64 + ji
    assert str(an.simplify(e)) == "io * 32768 + ii * 1024 + jo * 64 + ji"


# ---------------------------------------------------------------------------
# random expressions: meaning is preserved

def _rand_expr(rng: random.Random, vars_, depth: int) -> PrimExpr:
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.6:
            return rng.choice(vars_)
        return IntImm(rng.randint(-9, 9))
    kind = rng.choice(["add", "sub", "mul", "fdiv", "fmod", "tdiv", "tmod", "min", "max", "select", "mulc"])
    a = _rand_expr(rng, vars_, depth - 1)
    b = _rand_expr(rng, vars_, depth - 1)
    if kind == "add":
        return Add(a, b)
    if kind == "sub":
        return Sub(a, b)
    if kind == "mul":
        return Mul(a, b)
    if kind == "mulc":
        return Mul(a, IntImm(rng.choice([-3, -1, 2, 4, 8, 16])))
    c = IntImm(rng.choice([-4, -3, 1, 2, 3, 4, 8, 16, 32]))
    if kind == "fdiv":
        return FloorDiv(a, c if rng.random() < 0.8 else b)
    if kind == "fmod":
        return FloorMod(a, c if rng.random() < 0.8 else b)
    if kind == "tdiv":
        return Div(a, c)
    if kind == "tmod":
        return Mod(a, c)
    if kind == "min":
        return Min(a, b)
    if kind == "max":
        return Max(a, b)
    cmp = rng.choice([LT, LE, GT, GE, EQ, NE])(a, b)
    return Select(cmp, a, b)


@pytest.mark.parametrize("seed", range(6))
def test_random_expressions_keep_their_meaning(seed):
    rng = random.Random(seed)
    x, y, z = Var("x"), Var("y"), Var("z")
    doms = [{x: (0, 32), y: (0, 8), z: (-5, 6)}, {x: (-20, 20), y: (1, 4), z: (0, 1)}, {}]
    checked = 0
    for trial in range(120):
        dom = doms[trial % 3]
        e = _rand_expr(rng, [x, y, z], 4)
        if rng.random() < 0.3:
            e = rng.choice([LT, LE, EQ, NE])(e, _rand_expr(rng, [x, y, z], 2))
        r = simplify(e, {v: Range(lo, hi - lo) for v, (lo, hi) in dom.items()})
        for _ in range(12):
            env = {v: rng.randrange(*dom[v]) if v in dom else rng.randint(-40, 40) for v in (x, y, z)}
            try:
                want = ev(e, env)
            except ZeroDivisionError:
                continue
            got = ev(r, env)
            assert got == want, f"{e}  ->  {r}  at {({k.name: v for k, v in env.items()})}: {want} != {got}"
            checked += 1
    assert checked > 500


def test_random_linear_forms_cancel():
    rng = random.Random(7)
    vs = [I, J, K]
    for _ in range(50):
        coeffs = [rng.randint(-5, 5) for _ in vs]
        e: PrimExpr = IntImm(rng.randint(-10, 10))
        terms = [(c, v) for c, v in zip(coeffs, vs)] * 2
        rng.shuffle(terms)
        for c, v in terms:
            e = Add(e, Mul(v, IntImm(c)))
        for c, v in zip(coeffs, vs):
            e = Sub(e, Mul(IntImm(2 * c), v))
        r = simplify(e)
        assert isinstance(r, IntImm), f"{e} -> {r}"


# ---------------------------------------------------------------------------
# regions

def test_region_of_access():
    vi = Var("vi")
    r = region_of_access([vi, vi * 16 + K], {K: Range(0, 16)})
    assert [str(x.min) for x in r] == ["vi", "vi * 16"]
    assert [str(x.extent) for x in r] == ["1", "16"]
    r2 = region_of_access([I * 4 + J], {J: Range(0, 4), I: Range(0, 8)})
    assert (str(r2[0].min), str(r2[0].extent)) == ("0", "32")
    r3 = region_of_access([I], {I: Range(0, N)})
    assert (str(r3[0].min), str(r3[0].extent)) == ("0", "n")


def _mm_block():
    A, B, Y = Buffer("A", (128, 128)), Buffer("B", (128, 128)), Buffer("Y", (128, 128))
    vi, vj, vk = Var("vi"), Var("vj"), Var("vk")
    blk = Block("Y", (IterVar(vi, 128), IterVar(vj, 128), IterVar(vk, 128, "reduce")),
                body=BufferStore(Y, Y[vi, vj] + A[vi, vk] * B[vk, vj], (vi, vj)),
                init=BufferStore(Y, FloatImm(0.0), (vi, vj)))
    return blk, (A, B, Y), (vi, vj, vk)


def test_block_regions_matmul():
    blk, (A, B, Y), _ = _mm_block()
    reads, writes = infer_block_access_regions(blk)
    assert [str(r) for r in reads] == ["Y[vi, vj]", "A[vi, vk]", "B[vk, vj]"]
    assert [str(w) for w in writes] == ["Y[vi, vj]"]
    assert [r.buffer for r in reads] == [Y, A, B]


def test_block_regions_inner_loops_are_relaxed_and_merged():
    A, C = Buffer("A", (128, 130)), Buffer("C", (8, 16))
    T = Buffer("T", (16,))
    vi, k = Var("vi"), Var("k")
    body = SeqStmt((
        For(k, 0, 16, "serial", BufferStore(T, A[vi * 16 + k, k] + A[vi * 16 + k, k + 2], (k,))),
        For(k2 := Var("k2"), 0, 16, "serial", BufferStore(C, T[k2], (vi, k2))),
    ))
    blk = Block("C", (IterVar(vi, 8),), body=body, alloc_buffers=(T,))
    reads, writes = infer_block_access_regions(blk)
    assert [str(r) for r in reads] == ["A[vi * 16:vi * 16 + 16, 0:18]"]
    assert [str(w) for w in writes] == ["C[vi, 0:16]"]


def test_block_regions_nested_block_and_let():
    A, B = Buffer("A", (64,)), Buffer("B", (64,))
    vo, vi_ = Var("vo"), Var("vi")
    inner = Block("inner", (IterVar(vi_, 64),), reads=(A[vi_:vi_ + 1],), writes=(B[vi_:vi_ + 1],),
                  body=BufferStore(B, A[vi_], (vi_,)))
    ii = Var("ii")
    x = Var("x")
    body = For(ii, 0, 16, "serial", LetStmt(x, vo * 16 + ii, BlockRealize((x,), True, inner)))
    outer = Block("outer", (IterVar(vo, 4),), body=body)
    reads, writes = infer_block_access_regions(outer)
    assert [str(r) for r in reads] == ["A[vo * 16:vo * 16 + 16]"]
    assert [str(w) for w in writes] == ["B[vo * 16:vo * 16 + 16]"]


def test_block_regions_symbolic_extent():
    n = Var("n")
    A, B = Buffer("A", (n, 16)), Buffer("B", (16,))
    vj, i = Var("vj"), Var("i")
    blk = Block("B", (IterVar(vj, 16),), body=For(i, 0, n, "serial", BufferStore(B, B[vj] + A[i, vj], (vj,))))
    reads, writes = infer_block_access_regions(blk)
    assert [str(r) for r in reads] == ["B[vj]", "A[0:n, vj]"]


def test_symbolic_divisor_and_intervals():
    r = {J: Range(0, N)}
    assert str(simplify(FloorDiv(I * N + J, N), r)) == "i"
    assert str(simplify(FloorMod(I * N + J, N), r)) == "j"
    assert str(simplify(Min(J, N), r)) == "j"
    an = Analyzer()
    an.bind(I, Range(0, N))
    s_ = an.int_set(FloorDiv(I, 4))
    assert (str(s_.min), str(s_.max)) == ("0", "(n - 1) // 4")
    # with an unknown sign nothing is claimed
    assert isinstance(simplify(FloorDiv(I * N + J, N)), FloorDiv)


def test_vector_index_region():
    from workbench.ir.expr import Ramp

    vi = Var("vi")
    r = region_of_access([Ramp(vi * 4, IntImm(1), 4)], {})
    assert (str(r[0].min), str(r[0].extent)) == ("vi * 4", "4")


def test_bad_input_errors():
    an = Analyzer()
    with pytest.raises(TypeError, match="needs a Var"):
        an.bind("i", Range(0, 4))
    with pytest.raises(TypeError, match="needs a Block"):
        infer_block_access_regions(BufferStore(Buffer("A", (4,)), FloatImm(0.0), (0,)))
    A = Buffer("A", (8,))
    idx = Buffer("idx", (8,), "int32")
    with pytest.raises(ValueError, match="cannot bound index 0"):
        region_of_access([idx[I]], {I: Range(0, 8)})
    # with the buffer given, a data-dependent index covers the whole dimension
    r = region_of_access([idx[I]], {I: Range(0, 8)}, buffer=A)
    assert (str(r[0].min), str(r[0].extent)) == ("0", "8")


def test_regions_do_not_change_the_block():
    blk, _, _ = _mm_block()
    before = blk.reads, blk.writes, blk.body
    infer_block_access_regions(blk)
    assert (blk.reads, blk.writes, blk.body) == before or all(a is b for a, b in zip((blk.reads, blk.writes, blk.body), before))
