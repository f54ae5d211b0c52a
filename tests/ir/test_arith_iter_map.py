"""Tests of affine iterator-map detection and subspace division (checked by brute force)."""
from __future__ import annotations

import itertools
import random

from workbench.ir.arith import detect_iter_map, is_affine_binding, subspace_divide
from workbench.ir.expr import FloorDiv, FloorMod, IntImm, Range, Var
from workbench.ir.functor import uses_var
from workbench.ir.stmt import Block, BlockRealize, Evaluate, IterVar



def ev(e, env):
    """Reference evaluation of an affine index expression (Python integers)."""
    from workbench.ir.expr import Add, Mul, Sub

    if isinstance(e, IntImm):
        return e.value
    if isinstance(e, Var):
        return env[e]
    a, b = ev(e.a, env), ev(e.b, env)
    if isinstance(e, Add):
        return a + b
    if isinstance(e, Sub):
        return a - b
    if isinstance(e, Mul):
        return a * b
    if isinstance(e, FloorDiv):
        return a // b
    if isinstance(e, FloorMod):
        return a % b
    raise NotImplementedError(type(e).__name__)


def _points(dom):
    vs = list(dom)
    for vals in itertools.product(*[range(r.min.value, r.min.value + r.extent.value) for r in dom.values()]):
        yield dict(zip(vs, vals))


def _check_exprs(res, indices, dom):
    for env in _points(dom):
        for e, idx in zip(res.exprs, indices):
            assert ev(e, env) == ev(idx, env), f"{idx} normalised to {e}"


I, J, K, F = Var("i"), Var("j"), Var("k"), Var("f")


def test_fused_and_split_indices():
    dom = {I: Range(0, 4), J: Range(0, 16)}
    idx = [(I * 16 + J) // 8, (I * 16 + J) % 8]
    res = detect_iter_map(idx, dom, check_level="bijective")
    assert res is not None
    assert [str(e) for e in res.exprs] == ["i * 2 + j // 8", "j % 8"]
    _check_exprs(res, idx, dom)
    res2 = detect_iter_map([I * 16 + J], dom, check_level="bijective")
    assert [str(e) for e in res2.exprs] == ["i * 16 + j"]


def test_split_of_one_iterator():
    dom = {F: Range(0, 32)}
    assert detect_iter_map([F // 8, F % 8], dom, check_level="bijective") is not None
    assert detect_iter_map([F // 8], dom) is not None                       # surjective: ok
    assert detect_iter_map([F // 8], dom, check_level="bijective") is None  # f % 8 unused
    assert detect_iter_map([F % 8, F // 4], dom) is None                    # overlapping bits
    assert detect_iter_map([F // 3], dom) is None                           # uneven split
    # split then fuse again gives f back
    res = detect_iter_map([(F // 16) * 16 + F % 16], dom, check_level="bijective")
    assert [str(e) for e in res.exprs] == ["f"]


def test_non_affine_and_overlapping():
    dom = {I: Range(0, 4), J: Range(0, 16)}
    errors: list = []
    assert detect_iter_map([I + J], dom, errors=errors) is None
    assert errors and "fuse" in errors[0]
    assert detect_iter_map([I, I], dom) is None
    assert detect_iter_map([I * J], dom) is None
    n = Var("n")
    assert detect_iter_map([I * n], dom) is None
    assert detect_iter_map([I // n], dom) is None


def test_offsets_and_unit_iterators():
    dom = {I: Range(2, 8), J: Range(0, 1)}
    idx = [I + 4, J]
    res = detect_iter_map(idx, dom)
    assert res is not None
    _check_exprs(res, idx, dom)
    res = detect_iter_map([(I - 2) // 2, (I - 2) % 2], dom, check_level="bijective")
    assert res is not None


def test_random_bijective_maps_are_injective():
    rng = random.Random(0)
    a, b, c = Var("a"), Var("b"), Var("c")
    dom = {a: Range(0, 4), b: Range(0, 6), c: Range(0, 8)}
    found = 0
    for _ in range(300):
        leaves = [a, b, c, a * 6 + b, b * 8 + c, a * 48 + b * 8 + c, c // 2, c % 2, c // 4, b // 3, b % 3]
        idx = [rng.choice(leaves) for _ in range(rng.randint(1, 3))]
        idx = [FloorDiv(x, IntImm(rng.choice([2, 3, 4]))) if rng.random() < 0.2 else x for x in idx]
        idx = [FloorMod(x, IntImm(rng.choice([2, 4, 6]))) if rng.random() < 0.2 else x for x in idx]
        res = detect_iter_map(idx, dom, check_level="bijective")
        if res is None:
            continue
        found += 1
        _check_exprs(res, idx, dom)
        seen = set()
        for env in _points(dom):
            seen.add(tuple(ev(x, env) for x in idx))
        assert len(seen) == 4 * 6 * 8, f"{[str(x) for x in idx]} is not a bijection"
    assert found >= 5


def test_is_affine_binding():
    vi, vj = Var("vi"), Var("vj")
    blk = Block("b", (IterVar(vi, 8), IterVar(vj, 8)), body=Evaluate(0))
    dom = {I: Range(0, 8), J: Range(0, 8)}
    assert is_affine_binding(BlockRealize((I, J), True, blk), dom)
    assert not is_affine_binding(BlockRealize((I, I), True, blk), dom)
    assert not is_affine_binding(BlockRealize((I * J % 8, J), True, blk), dom)


def test_subspace_divide():
    io, ii, jo, ji = Var("io"), Var("ii"), Var("jo"), Var("ji")
    dom = {io: Range(0, 4), ii: Range(0, 8), jo: Range(0, 2), ji: Range(0, 16)}
    bindings = [io * 8 + ii, jo * 16 + ji]
    d = subspace_divide(bindings, dom, [ii, ji])
    assert d is not None
    assert [(str(o), str(i), x.inner_extent) for x in d for o, i in [x]] == [("io", "ii", 8), ("jo", "ji", 16)]
    # inner iterators of a fused loop: (f // 8, f % 8) with f = io * 8 + ii fused
    f = Var("f")
    d2 = subspace_divide([f // 4, f % 4], {f: Range(0, 32)}, [f])
    assert d2 is not None
    for x, b in zip(d2, [f // 4, f % 4]):
        for env in _points({f: Range(0, 32)}):
            assert ev(x.outer, env) * x.inner_extent + ev(x.inner, env) == ev(b, env)
    # the inner iterator above an outer one cannot be divided
    assert subspace_divide([ii * 4 + io], dom, [ii]) is None


def test_subspace_divide_identity_numerically():
    a, b, c = Var("a"), Var("b"), Var("c")
    dom = {a: Range(0, 4), b: Range(0, 4), c: Range(0, 8)}
    bindings = [a * 4 + b, c // 2, c % 2]
    d = subspace_divide(bindings, dom, [b, c])
    assert d is not None
    for x, bnd in zip(d, bindings):
        assert not uses_var(x.outer, lambda v: v is b or v is c)
        assert not uses_var(x.inner, lambda v: v is a)
        for env in _points(dom):
            assert ev(x.outer, env) * x.inner_extent + ev(x.inner, env) == ev(bnd, env)
