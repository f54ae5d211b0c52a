"""``detect_iter_map`` with symbolic iterator extents: splits and fuses are accepted where the analyzer
proves what they need (an extent that is a multiple of the divisor), as TVM's iter-map does.

Each accepted map is also checked point by point at a few sizes of the symbolic extent.
"""
import itertools

import pytest

from workbench.ir.arith import Analyzer, detect_iter_map
from workbench.ir.expr import IntImm, Range, Var
from workbench.ir.functor import substitute


def _eval(e, env: dict) -> int:
    out = Analyzer().simplify(substitute(e, {v: IntImm(x, v.dtype) for v, x in env.items()}))
    assert isinstance(out, IntImm), f"{e} did not evaluate at {env}"
    return out.value


def _is_one_to_one(indices, iters: dict, sizes: dict) -> bool:
    """Whether ``indices`` give every point of the domain (symbolic extents at ``sizes``) its own value."""
    doms = [range(_eval(r.extent, sizes)) for r in iters.values()]
    seen = set()
    for point in itertools.product(*doms):
        env = dict(sizes)
        env.update(zip(iters, point))
        seen.add(tuple(_eval(i, env) for i in indices))
    return len(seen) == len(list(itertools.product(*doms)))


f, b, n, i, j = Var("f"), Var("b"), Var("n"), Var("i"), Var("j")


def test_split_of_a_symbolic_multiple_is_bijective():   # the reproducer
    res = detect_iter_map([f // 48, f % 48], {f: Range(0, b * 48)}, check_level="bijective")
    assert res is not None
    assert [str(e) for e in res.exprs] == ["f // 48", "f % 48"]
    outer, inner = (t.args[0] for t in res.indices)
    assert str(outer.extent) == "b" and inner.extent == 48


@pytest.mark.parametrize("indices, check_level", [
    (lambda: [f // 48, f % 48], "bijective"),
    (lambda: [f // 8 // 6, f // 8 % 6, f % 8], "bijective"),
    (lambda: [f // 96, f % 96 // 48, f % 48], "bijective"),
])
def test_splits_of_symbolic_extents_are_detected_and_one_to_one(indices, check_level):
    idx = indices()
    dom = {f: Range(0, b * 96)}
    assert detect_iter_map(idx, dom, check_level=check_level) is not None
    for size in (1, 2):
        assert _is_one_to_one(idx, dom, {b: size})


def test_partial_use_is_surjective_not_bijective():
    dom = {f: Range(0, b * 96)}
    assert detect_iter_map([f // 8 % 6, f % 8], dom, check_level="surjective") is not None
    errs: list = []
    assert detect_iter_map([f // 8 % 6, f % 8], dom, check_level="bijective", errors=errs) is None
    assert "only partly used" in errs[0]


def test_fuse_with_a_symbolic_outer_extent():
    dom = {i: Range(0, n), j: Range(0, 16)}
    res = detect_iter_map([(i * 16 + j) // 8, (i * 16 + j) % 8], dom, check_level="bijective")
    assert res is not None and [str(e) for e in res.exprs] == ["i * 2 + j // 8", "j % 8"]
    res = detect_iter_map([i * 16 + j], dom, check_level="bijective")
    assert res is not None and str(res.indices[0].args[0].extent) == "n * 16"


def test_fused_then_split_by_a_larger_divisor_needs_a_provable_multiple():
    idx = [(i * 16 + j) // 32, (i * 16 + j) % 32]
    assert detect_iter_map(idx, {i: Range(0, n * 2), j: Range(0, 16)}, check_level="bijective") is not None
    assert _is_one_to_one(idx, {i: Range(0, n * 2), j: Range(0, 16)}, {n: 2})
    errs: list = []
    assert detect_iter_map(idx, {i: Range(0, n), j: Range(0, 16)}, check_level="bijective", errors=errs) is None
    assert "n * 16 is not (provably) divisible by 32" in errs[0]


@pytest.mark.parametrize("extent, why", [
    (lambda: b * 40, "b * 40 is not (provably) divisible by 48"),
    (lambda: b, "b is not (provably) divisible by 48"),
])
def test_extents_not_known_to_be_multiples_are_refused_with_the_reason(extent, why):
    errs: list = []
    assert detect_iter_map([f // 48, f % 48], {f: Range(0, extent())}, check_level="bijective", errors=errs) is None
    assert why in errs[0]


def test_overlap_and_dependent_domains_are_refused():
    errs: list = []
    assert detect_iter_map([f // 48, f % 48, f // 48], {f: Range(0, b * 48)}, errors=errs) is None
    assert "used twice" in errs[0]
    errs = []
    assert detect_iter_map([i, j], {i: Range(0, n), j: Range(0, i)}, errors=errs) is None
    assert "depends on an iterator" in errs[0]


def test_plain_symbolic_iterators_and_constant_extents_still_work():
    assert detect_iter_map([f], {f: Range(0, b)}, check_level="bijective") is not None
    assert detect_iter_map([f * 2], {f: Range(0, b)}) is not None
    assert detect_iter_map([f // 8, f % 8], {f: Range(0, 32)}, check_level="bijective") is not None
    assert detect_iter_map([f // 8, f % 8], {f: Range(0, 36)}, check_level="bijective") is None


def test_subspace_divide_keeps_refusing_symbolic_extents():
    from workbench.ir.arith import subspace_divide

    assert subspace_divide([i * 16 + j], {i: Range(0, n), j: Range(0, 16)}, [j]) is None
    assert subspace_divide([i * 16 + j], {i: Range(0, 4), j: Range(0, 16)}, [j]) is not None
