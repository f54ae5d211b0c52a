"""One arithmetic engine: the schedule's bounds, the interpreter's intervals and the analyzer agree.

The cases named ``*_used_to_disagree`` were found by comparing the three former engines
(``schedule/bounds.py``, ``ir/interpreter/bounds.py`` and ``ir/arith``) on random affine
expressions with floordiv/floormod; the property tests sample concrete values and check
that every bound of the single engine contains them.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import workbench as wb
from workbench.ir.arith import Analyzer, const_int_bound, interval
from workbench.ir.arith.bound import const_bounds
from workbench.ir.arith.linear import lin_bounds, linear, to_expr
from workbench.ir.buffer import Buffer
from workbench.ir.expr import Add, Cast, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Sub, Var
from workbench.ir.interpreter import bounds as interp_bounds
from workbench.ir.interpreter import evaluate

I, J, K = Var("i"), Var("j"), Var("k")
VARS = (I, J, K)


def _analyzer(dom: dict) -> Analyzer:
    an = Analyzer()
    for v, (lo, hi) in dom.items():
        an.bind(v, (lo, hi + 1))
    return an


def _all_bounds(e, dom: dict) -> list[tuple]:
    """The bound of ``e`` from every entry point of the engine."""
    an = _analyzer(dom)
    return [tuple(const_int_bound(e, dom)), const_bounds(e, dom), tuple(an.const_int_bound(e))]


# cases where the former engines disagreed -----------------------------------------------------
def test_floormod_within_one_period_used_to_disagree():
    # schedule bounds: (1, 2); analyzer and interpreter: (0, 3)
    e, dom = (I + 5) % 4, {I: (0, 1)}
    assert _all_bounds(e, dom) == [(1, 2)] * 3
    assert interp_bounds.floormod((5, 6), (4, 4)) == (1, 2)
    assert sorted({(v + 5) % 4 for v in range(2)}) == [1, 2]


def test_floormod_by_a_varying_divisor_used_to_disagree():
    # schedule bounds: unknown; interpreter: (0, 7); analyzer: (0, 2)
    e, dom = I % (J + 4), {I: (0, 2), J: (0, 4)}
    assert _all_bounds(e, dom) == [(0, 2)] * 3
    assert interp_bounds.floormod((0, 2), (4, 8)) == (0, 2)


def test_narrowing_cast_used_to_be_unsound_in_schedule_bounds():
    # schedule bounds said (0, 300) for an int8 value
    e, dom = Cast("int8", I), {I: (0, 300)}
    values = np.arange(0, 301).astype("int8")
    for lo, hi in _all_bounds(e, dom):
        assert lo <= values.min() and values.max() <= hi


def test_negative_divisor_used_to_be_unknown_to_the_interpreter():
    assert interp_bounds.floordiv((0, 9), (-3, -1)) == (-9, 0)
    assert interp_bounds.floormod((0, 9), (-4, -4)) == (-3, 0)
    assert interval.floordiv((0, 9), (-3, 3)) is None


def test_const_bounds_needs_every_variable_and_no_data():
    A = Buffer("A", (8,), "int32")
    n = Var("n")
    assert const_bounds(I + n, {I: (0, 3)}) is None
    assert const_bounds(A[I] + 1, {I: (0, 7)}) is None
    assert const_bounds(wb.if_then_else(I < 2, I, 0), {I: (0, 7)}) == (0, 7)


def test_interpreter_elides_a_check_only_where_the_index_is_in_range():
    def program(index):
        A = wb.te.placeholder((4,), "float32", name="A")
        B = wb.te.compute((8,), lambda i: A[index(i)] * 2.0, name="B")
        return wb.create_prim_func([A, B])

    a = np.arange(4, dtype="float32") + 1
    b = np.zeros(8, "float32")
    evaluate(program(lambda i: (i + 5) % 4), a, b)
    np.testing.assert_allclose(b, a[(np.arange(8) + 5) % 4] * 2)
    with pytest.raises(IndexError):
        evaluate(program(lambda i: (i + 5) % 5), a, np.zeros(8, "float32"))


# properties of the single engine ------------------------------------------------------------
_OPS = {"add": Add, "sub": Sub, "mul": Mul, "floordiv": FloorDiv, "floormod": FloorMod, "min": Min, "max": Max}


@st.composite
def _exprs(draw, depth: int = 3):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return draw(st.sampled_from(VARS))
        return IntImm(draw(st.integers(-6, 9)))
    op = draw(st.sampled_from(sorted(_OPS)))
    a = draw(_exprs(depth - 1))
    if op in ("floordiv", "floormod", "mul") and draw(st.integers(0, 3)):
        b = IntImm(draw(st.sampled_from([1, 2, 3, 4, 8, -2, -3])))
    else:
        b = draw(_exprs(depth - 1))
    return _OPS[op](a, b)


def _eval(e, env: dict):
    """Value of ``e`` (None where it divides by zero)."""
    if isinstance(e, IntImm):
        return e.value
    if isinstance(e, Var):
        return env[e]
    a, b = _eval(e.a, env), _eval(e.b, env)
    if a is None or b is None:
        return None
    if isinstance(e, (FloorDiv, FloorMod)) and b == 0:
        return None
    return {Add: a + b, Sub: a - b, Mul: a * b, Min: min(a, b), Max: max(a, b),
            FloorDiv: a // b if b else None, FloorMod: a % b if b else None}[type(e)]


def _interp_interval(e, dom: dict):
    """The interval the interpreter's code generator tracks for ``e``."""
    if isinstance(e, IntImm):
        return (e.value, e.value)
    if isinstance(e, Var):
        return dom[e]
    a, b = _interp_interval(e.a, dom), _interp_interval(e.b, dom)
    if a is None or b is None:
        return None
    fn = {Add: interp_bounds.add, Sub: interp_bounds.sub, Mul: interp_bounds.mul, Min: interp_bounds.minimum,
          Max: interp_bounds.maximum, FloorDiv: interp_bounds.floordiv, FloorMod: interp_bounds.floormod}[type(e)]
    return fn(a, b)


_domains = st.fixed_dictionaries({v: st.tuples(st.integers(-6, 10), st.integers(0, 8)).map(
    lambda t: (t[0], t[0] + t[1])) for v in VARS})


@settings(max_examples=150, deadline=None)
@given(_exprs(), _domains, st.randoms(use_true_random=False))
def test_every_bound_contains_the_sampled_values(e, dom, rnd):
    samples = [_eval(e, {v: rnd.randint(*dom[v]) for v in VARS}) for _ in range(60)]
    samples = [s for s in samples if s is not None]
    bounds = _all_bounds(e, dom)
    assert bounds[0] == bounds[2]                       # the function and the analyzer: one engine
    assert bounds[1] is None or bounds[1] == bounds[0]  # closed expressions: the same numbers
    interp = _interp_interval(e, dom)
    for lo, hi in [b for b in bounds + [interp] if b is not None]:
        assert all(lo <= s <= hi for s in samples), (str(e), dom, (lo, hi))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=4, max_size=4), _domains, st.randoms(use_true_random=False))
def test_linear_bounds_contain_the_values_of_the_relaxed_variables(coeffs, dom, rnd):
    lin = linear(I * coeffs[0] + J * coeffs[1] + K * coeffs[2] + coeffs[3])
    relax = {I: dom[I], J: dom[J]}
    lo, hi = lin_bounds(lin, relax)
    for _ in range(30):
        env = {v: rnd.randint(*dom[v]) for v in VARS}
        value = _eval(to_expr(lin), env)
        k_env = {K: env[K]}
        assert _eval(to_expr(lo), k_env) <= value <= _eval(to_expr(hi), k_env)


@settings(max_examples=200, deadline=None)
@given(st.tuples(st.integers(-20, 20), st.integers(0, 12)), st.tuples(st.integers(-6, 6), st.integers(0, 5)),
       st.sampled_from(["add", "sub", "mul", "floordiv", "floormod", "truncdiv", "truncmod", "minimum", "maximum"]))
def test_interval_rules_hold_for_every_pair_of_values(a, b, op):
    a, b = (a[0], a[0] + a[1]), (b[0], b[0] + b[1])
    result = getattr(interval, op)(a, b)
    if result is None:
        assert op in ("floordiv", "floormod", "truncdiv", "truncmod")
        return
    exact = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
             "floordiv": lambda x, y: x // y, "floormod": lambda x, y: x % y,
             "truncdiv": lambda x, y: int(np.trunc(x / y)), "truncmod": lambda x, y: int(np.fmod(x, y)),
             "minimum": min, "maximum": max}[op]
    values = [exact(x, y) for x in range(a[0], a[1] + 1) for y in range(b[0], b[1] + 1)
              if y != 0 or op in ("add", "sub", "mul", "minimum", "maximum")]
    assert all(result[0] <= v <= result[1] for v in values), (a, b, result)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=4, max_size=4), _domains)
def test_parallel_legality_bounds_are_the_linear_form_bounds(coeffs, dom):
    from workbench.schedule.loop_legality import _bounds_of

    lin = linear(I * coeffs[0] + J * coeffs[1] + K * coeffs[2] + coeffs[3])
    lo, hi = lin_bounds(lin, dom)
    assert _bounds_of(lin, dom, None) == (lo.get(None, 0), hi.get(None, 0))


def test_parallel_legality_bounds_keep_the_constant_and_skip_the_key():
    from workbench.schedule.loop_legality import _bounds_of

    assert _bounds_of({I: 4, None: 3, K: 2}, {I: (0, 3)}, K) == (3, 15)
    assert _bounds_of({I: 4, K: 2}, {I: (0, 3)}, None) is None   # k is neither relaxed nor skipped
