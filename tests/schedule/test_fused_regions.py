"""Regions under a fused loop: compute_at / reverse_compute_at bound ``f // c`` and ``f % c`` of the
fused loop exactly, and buffer compaction shrinks a tile indexed through them (issue 16)."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.lower import lower_blocks
from workbench.backend.lower.compact import compact_buffers
from workbench.ir.arith.linear import AtomTable, lin_sub, const_of
from workbench.ir.interpreter import evaluate
from workbench.schedule.legality import region_under

AVX2 = "llvm -mcpu=znver3"


def _matmul(n: int):
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def _fused_tiles(n: int):
    """i split by 4, j by 32, reordered (j0, i0, k, i1, j1), j0 and i0 fused: bindings ``f % (n/4) * 4 + i1``."""
    sch = wb.Schedule(_matmul(n))
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    i0, i1 = sch.split(i, factors=[None, 4])
    j0, j1 = sch.split(j, factors=[None, 32])
    sch.reorder(j0, i0, k, i1, j1)
    f = sch.fuse(j0, i0)
    return sch, c, f


def _inputs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)).astype("float32")
    b = rng.standard_normal((n, n)).astype("float32")
    return a, b


def _check_interpreted(func, n: int) -> None:
    a, b = _inputs(n)
    c = np.zeros((n, n), "float32")
    evaluate(func, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


def _check_built(mod, n: int) -> None:
    a, b = _inputs(n, seed=1)
    c = np.zeros((n, n), "float32")
    wb.build(mod, target=AVX2)(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-3, atol=1e-3)


def _extents_under(loop_var_name: str, func, block: str) -> list[int]:
    """Extents of the loops between the loop named ``loop_var_name`` and ``block``."""
    from workbench.ir.stmt import BlockRealize, For

    out: list[int] = []

    def walk(s, chain):
        if isinstance(s, For):
            walk(s.body, chain + [s])
        elif isinstance(s, BlockRealize):
            if s.block.name == block:
                names = [lp.loop_var.name for lp in chain]
                out.extend(lp.extent.value for lp in chain[names.index(loop_var_name) + 1:])
                return
            walk(s.block.body, chain)
        elif hasattr(s, "seq"):
            for x in s.seq:
                walk(x, chain)
    walk(func.body, [])
    return out


def test_region_under_keeps_fused_pieces_exact():
    sch, c, f = _fused_tiles(64)
    realize = sch.index().blocks["C"][0]
    i1, j1 = sch.get_loops(c)[2:]
    relax = {sch.loop_of(i1)[0].loop_var: (0, 3), sch.loop_of(j1)[0].loop_var: (0, 31)}
    atoms = AtomTable()
    dims = region_under(realize, realize.block.writes, realize.block.writes[0].buffer, relax, None, atoms)
    assert [const_of(lin_sub(hi, lo)) for lo, hi in dims] == [3, 31]      # a 4 x 32 box per fused iteration
    assert all(k is None or "fused" in str(k) for lo, _ in dims for k in lo)


def test_reverse_compute_at_cache_write_under_fused_loop_issue_case():
    sch, c, f = _fused_tiles(256)
    sch.parallel(f)
    cl = sch.cache_write(c, 0, "local")
    sch.reverse_compute_at(cl, f)      # was: "the region of C_local its producer writes there cannot be bounded"
    assert _extents_under("j_0_i_0_fused", sch.func, "C_local") == [4, 32]
    assert "j_0_i_0_fused % 64 * 4 + ax0" in sch.func.script()
    _check_built(sch.mod, 256)


def test_reverse_compute_at_under_fused_loop_matches_numpy_interpreted():
    sch, c, f = _fused_tiles(64)
    cl = sch.cache_write(c, 0, "local")
    sch.reverse_compute_at(cl, f)
    assert _extents_under("j_0_i_0_fused", sch.func, "C_local") == [4, 32]
    _check_interpreted(sch.func, 64)


def test_compute_at_packed_cache_read_under_fused_loop_is_tight():
    sch, c, f = _fused_tiles(64)
    ap = sch.cache_read(c, 0, "global")
    bp = sch.cache_read(c, 1, "global")
    sch.transform_layout(bp, ("write", 0), lambda kk, jj: (jj // 16, kk, jj % 16))
    sch.compute_at(bp, f)       # was: the whole 64 x 64 panel packed at every fused iteration
    assert _extents_under("j_0_i_0_fused", sch.func, "B_global") == [64, 32]
    sch.compute_at(ap, f)
    assert _extents_under("j_0_i_0_fused", sch.func, "A_global") == [4, 64]
    _check_interpreted(sch.func, 64)
    _check_built(sch.mod, 64)


def test_compute_at_under_loop_fused_inside_the_consumer():
    """The consumer's inner loops are fused too: ``g // 32`` and ``g % 32`` of a relaxed loop."""
    sch, c, f = _fused_tiles(64)
    i1, j1 = sch.get_loops(c)[2:]
    sch.fuse(i1, j1)
    ap = sch.cache_read(c, 0, "global")
    sch.compute_at(ap, f)
    assert _extents_under("j_0_i_0_fused", sch.func, "A_global") == [4, 64]
    _check_interpreted(sch.func, 64)


def register_tiled_matmul(n: int, lanes: int = 16) -> wb.Schedule:
    """Issue 16's schedule (as tests/backend/test_codegen_alias.py): C_local at j1, packed B, i0 and j0 fused."""
    sch = wb.Schedule(_matmul(n))
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    i0, i1, i2 = sch.split(i, factors=[None, 8, 8])
    j0, j1, j2 = sch.split(j, factors=[None, 16, lanes])
    sch.reorder(i0, j0, i1, j1, k, i2, j2)
    cl = sch.cache_write(c, 0, "local")
    sch.reverse_compute_at(cl, j1)
    bp = sch.cache_read(c, 1, "global")
    sch.transform_layout(bp, ("write", 0), lambda kk, jj: (jj // lanes, kk, jj % lanes))
    sch.parallel(sch.fuse(i0, j0))
    sch.unroll(i2)
    sch.vectorize(j2)
    sch.decompose_reduction(c, k)
    return sch


@pytest.mark.parametrize("n", [256, 512, 1024])
def test_compaction_shrinks_tile_indexed_through_fused_loop(n):
    f = compact_buffers(lower_blocks(register_tiled_matmul(n).mod["main"]))
    assert f.attrs["compacted"]["C_local"] == (8, 16)     # was the full n x n heap buffer at 512 and 1024


@pytest.mark.parametrize("mins, apart", [
    (lambda f: [f // 2 * 4, f % 2 * 8], True),       # (f // 2, f % 2) tells every iteration apart
    (lambda f: [f // 2 * 4, f * 0], False),          # iterations 2t and 2t + 1 share a tile
    (lambda f: [f // 2 * 4, f % 2 * 4], False),      # f % 2 moves by less than the extent 8: overlap
    (lambda f: [f % 4 * 4, f // 2 * 8], False),      # f // 2 and f % 4 overlap: not one split of f
])
def test_fused_loop_disjointness_for_compaction(mins, apart):
    """A buffer becomes fresh per iteration of a fused loop only when iterations use disjoint tiles."""
    from workbench.backend.lower.compact import _disjoint_over
    from workbench.ir import expr as E
    from workbench.ir.arith import Analyzer
    from workbench.ir.stmt import Evaluate, For, ForKind

    f = E.Var("f")
    region = [(lo, lo + (ext - 1)) for lo, ext in zip(mins(f), (4, 8))]
    loop = For(f, E.IntImm(0), E.IntImm(16), ForKind.SERIAL, Evaluate(E.IntImm(0)))
    assert _disjoint_over(Analyzer(), region, loop) is apart


@pytest.mark.parametrize("n", [256, 512])
def test_register_tiled_matmul_compacted_matches_numpy(n):
    _check_built(register_tiled_matmul(n).mod, n)


def test_compute_at_init_with_symbolic_reduction_inside_keeps_updates():
    """Fuzzer seed 9413000264: a loop of symbolic extent (k < n) inside the target loop made every dim
    unbounded, so the decomposed init zeroed all of y at each i_0 and wiped the rows already summed."""
    n = te.var("n")
    x = te.placeholder((6, n), "float32", name="x")
    k = te.reduce_axis((0, n), name="k")
    y = te.compute((6,), lambda i: te.sum(x[i, k], axis=k), name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    i, kk = sch.get_loops(sch.get_block("y"))
    init = sch.decompose_reduction(sch.get_block("y"), i)
    i0, _ = sch.split(sch.get_loops(sch.get_block("y_update"))[0], factors=[None, 2])
    sch.compute_at(init, i0)
    assert _extents_under("i_0", sch.func, "y_init") == [2]
    xs = np.random.default_rng(2).standard_normal((6, 5)).astype("float32")
    out = np.zeros(6, "float32")
    evaluate(sch.func, xs, out)
    np.testing.assert_allclose(out, xs.sum(axis=1), rtol=1e-5, atol=1e-5)
    out = np.zeros(6, "float32")
    wb.build(sch.mod, target=AVX2)(xs, out)
    np.testing.assert_allclose(out, xs.sum(axis=1), rtol=1e-5, atol=1e-5)
