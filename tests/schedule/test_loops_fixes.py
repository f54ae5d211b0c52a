"""Regression tests: split/fuse of bound or annotated loops, init order under reorder, split factors,
over-covering splits, and parallel/vectorize of loops whose iterations depend on each other."""
import itertools

import numpy as np
import pytest

import workbench as wb
from workbench.ir.expr import IntImm
from workbench.ir.interpreter import evaluate
from workbench.schedule import DependenceError, ScheduleArgumentError

from .util import check_llvm, check_numeric, refused


@wb.prim_func
def add2d(A: wb.Buffer((16, 8), "float32"), B: wb.Buffer((16, 8), "float32")):
    for i, j in wb.grid(16, 8):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] + 1.0


@wb.prim_func
def rowsum(A: wb.Buffer((4, 3), "float32"), B: wb.Buffer((4,), "float32")):
    for i, k in wb.grid(4, 3):
        with wb.block("B"):
            vi, vk = wb.axis.remap("SR", [i, k])
            with wb.init():
                B[vi] = 0.0
            B[vi] = B[vi] + A[vi, vk]


@wb.prim_func
def matmul(A: wb.Buffer((6, 4), "float32"), B: wb.Buffer((4, 5), "float32"), C: wb.Buffer((6, 5), "float32")):
    for i, j, k in wb.grid(6, 5, 4):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                C[vi, vj] = 0.0
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]


@wb.prim_func
def scale10(A: wb.Buffer((10,), "float32"), B: wb.Buffer((10,), "float32")):
    for i in range(10):
        with wb.block("B"):
            vi = wb.axis.spatial(10, i)
            B[vi] = A[vi] * 2.0


@wb.prim_func
def vec(a: wb.handle, b: wb.handle):
    n = wb.int32()
    A = wb.match_buffer(a, (n,), "float32")
    B = wb.match_buffer(b, (n,), "float32")
    for i in range(n):
        with wb.block("B"):
            vi = wb.axis.spatial(n, i)
            B[vi] = A[vi] + 1.0


@wb.prim_func
def prefix(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
    for i in range(1, 16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = B[vi - 1] + A[vi]


@wb.prim_func
def shifted(A: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32")):
    T = wb.alloc_buffer((16,), "float32")
    for i in range(1, 16):
        with wb.block("T"):
            vi = wb.axis.spatial(16, i)
            T[vi] = A[vi] * 2.0
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = T[vi - 1] + T[vi]


@wb.prim_func
def blur(A: wb.Buffer((18,), "float32"), C: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((18,), "float32")
    for i in range(18):
        with wb.block("B"):
            vi = wb.axis.spatial(18, i)
            B[vi] = A[vi] * 2.0
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = B[vi] + B[vi + 1] + B[vi + 2]


def loops(sch, block):
    return sch.get_loops(sch.get_block(block))


# 1. split / fuse of loops that are not plain serial loops --------------------------------------
@pytest.mark.parametrize("prim", ["split", "fuse"])
@pytest.mark.parametrize("make, match", [
    (lambda s, i: s.bind(i, "threadIdx.x"), "it is bound to threadIdx.x"),
    (lambda s, i: s.annotate(i, "pragma_unroll", 4), "carries the annotations 'pragma_unroll'"),
    (lambda s, i: s.parallel(i), "it is parallel"),
    (lambda s, i: s.vectorize(i), "it is vectorized"),
    (lambda s, i: s.unroll(i), "it is unrolled"),
])
def test_split_fuse_refuse_loops_they_cannot_keep(prim, make, match):
    sch = wb.Schedule(add2d)
    i, j = loops(sch, "B")
    make(sch, j)
    call = (lambda: sch.split(j, factors=[None, 4])) if prim == "split" else (lambda: sch.fuse(i, j))
    err = refused(sch, call, exc=ScheduleArgumentError, match=match)
    assert err.message.startswith(f"cannot {prim} loop j")


def test_split_after_unannotate_works():
    sch = wb.Schedule(add2d)
    i, _ = loops(sch, "B")
    sch.annotate(i, "pragma_unroll", 4)
    sch.unannotate(i, "pragma_unroll")
    io, _ = sch.split(i, factors=[None, 4])
    sch.parallel(io)
    check_numeric(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))


# 2. the init must stay the first iteration of each output element ---------------------------
def test_reorder_refuses_parts_of_a_spatial_reduction_fusion():
    sch = wb.Schedule(rowsum)
    i, k = loops(sch, "B")
    f = sch.fuse(i, k)
    f0, f1 = sch.split(f, factors=[None, 2])
    err = refused(sch, sch.reorder, f1, f0, exc=DependenceError)
    assert "loop i_k_fused_0 feeds both a spatial and a reduction axis of block B" in err.message
    assert "init" in err.message


def test_no_fuse_split_reorder_sequence_runs_init_late():
    """Every order of the parts of a fused spatial-reduction loop: refused, or the right sums."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 3)).astype("float32")
    refusals = accepted = 0
    for factors in ([None, 2], [None, 3], [5, None], [2, 2, 3]):
        for perm in itertools.permutations(range(len(factors))):
            sch = wb.Schedule(rowsum)
            i, k = loops(sch, "B")
            parts = sch.split(sch.fuse(i, k), factors=factors)
            try:
                sch.reorder(*[parts[p] for p in perm])
            except DependenceError:
                refusals += 1
                continue
            accepted += 1
            out = np.full(4, np.nan, "float32")
            evaluate(sch.func, a, out)
            np.testing.assert_allclose(out, a.sum(1), rtol=1e-5, err_msg=f"factors {factors}, order {perm}")
    assert refusals and accepted


def _apply(sch, steps):
    """Run ``("fuse", [positions])``, ``("split", position, factors)``, ``("reorder", [positions])``
    on the loops of block C, by their positions at the time of the step."""
    for step in steps:
        ls = loops(sch, "C")
        if step[0] == "fuse":
            sch.fuse(*[ls[p] for p in step[1]])
        elif step[0] == "split":
            sch.split(ls[step[1]], factors=step[2])
        else:
            sch.reorder(*[ls[p] for p in step[1]])


@pytest.mark.parametrize("steps", [
    [("fuse", [1, 2]), ("split", 1, [None, 3]), ("reorder", [2, 1])],     # parts of a fused (j, k) swapped
    [("fuse", [1, 2]), ("split", 1, [None, 3]), ("reorder", [2, 0])],     # the inner part moved above i
    [("fuse", [0, 1, 2]), ("split", 0, [None, 8]), ("reorder", [1, 0])],  # all three fused
])
def test_matmul_sequences_refused(steps):
    sch = wb.Schedule(matmul)
    _apply(sch, steps[:-1])
    with pytest.raises(DependenceError, match="would run the block's init after updates"):
        _apply(sch, steps[-1:])


@pytest.mark.parametrize("steps", [
    [("fuse", [1, 2]), ("reorder", [1, 0])],                                # fused (j, k) moved above i
    [("split", 2, [None, 2]), ("reorder", [3, 2]), ("reorder", [2, 0])],    # reduction loops move freely
    [("split", 0, [None, 4]), ("split", 2, [None, 2]), ("reorder", [0, 2, 4, 1, 3])],  # ordinary tiling
])
def test_matmul_sequences_allowed_and_right(steps):
    sch = wb.Schedule(matmul)
    _apply(sch, steps)
    check_numeric(sch.func, lambda a, b: a @ b, [(6, 4), (4, 5)], (6, 5), rtol=1e-4)
    check_llvm(sch.func, lambda a, b: a @ b, [(6, 4), (4, 5)], (6, 5), rtol=1e-4)


# 3. split factors --------------------------------------------------------------------------
@pytest.mark.parametrize("factor, match", [
    (wb.var("m"), "uses m, which is not a size variable of the function"),
    (2 ** 40, "factor 0 is 1099511627776, more than a loop of dtype int32 can count"),
    (True, "factor 0 is True, expected an int or None"),
    (np.bool_(True), "factor 0 is .*True_?, expected an int or None"),
    (2.0, "factor 0 is 2.0, expected an int or None"),
    (wb.float32(2.0), "expected an int or None"),
    (-3, "factor 0 is -3, but factors must be positive"),
    (0, "factor 0 is 0, but factors must be positive"),
])
def test_split_bad_factor_values(factor, match):
    sch = wb.Schedule(scale10)
    (i,) = loops(sch, "B")
    refused(sch, sch.split, i, factors=[factor, None], exc=ScheduleArgumentError, match=match)


def test_split_product_too_big_for_the_loop_dtype():
    sch = wb.Schedule(scale10)
    (i,) = loops(sch, "B")
    refused(sch, sch.split, i, factors=[2 ** 20, 2 ** 20], exc=ScheduleArgumentError,
            match="multiply to 1099511627776, more than a loop of dtype int32 can count")


@pytest.mark.parametrize("factor", [np.int64(2), np.int32(2), np.uint8(2), IntImm(2, "int32")])
def test_split_accepts_numpy_ints(factor):
    sch = wb.Schedule(scale10)
    (i,) = loops(sch, "B")
    io, ii = sch.split(i, factors=[None, factor])
    assert [sch.get(l).extent.value for l in (io, ii)] == [5, 2]
    check_numeric(sch.func, lambda a: a * 2, [(10,)], (10,))
    check_llvm(sch.func, lambda a: a * 2, [(10,)], (10,))


def test_split_by_a_size_var_of_the_function():
    sch = wb.Schedule(vec)
    (i,) = loops(sch, "B")
    n = vec.buffer_map[vec.params[0]].shape[0]
    sch.split(i, factors=[None, n])
    for size in (1, 5):
        check_numeric(sch.func, lambda a: a + 1, [(size,)], (size,))


def test_split_symbolic_extent_needs_provable_cover():
    # [4, 4] covers 16 elements; n may be larger: refused rather than silently skipping elements
    sch = wb.Schedule(vec)
    (i,) = loops(sch, "B")
    refused(sch, sch.split, i, factors=[4, 4], exc=ScheduleArgumentError,
            match="multiply to `16`, which cannot be shown to reach the loop's extent `n`")


# 4. factors multiplying to more than the extent: a predicate, as in TVM ---------------------------
@pytest.mark.parametrize("factors", [[4, 4], [2, 2, 3], [16, 1]])
def test_split_over_covering_factors_add_a_predicate(factors):
    sch = wb.Schedule(scale10)
    (i,) = loops(sch, "B")
    new = sch.split(i, factors=factors)
    assert [sch.get(l).extent.value for l in new] == factors
    assert "wb.where(" in sch.func.script() and "< 10)" in sch.func.script()
    check_numeric(sch.func, lambda a: a * 2, [(10,)], (10,))
    check_llvm(sch.func, lambda a: a * 2, [(10,)], (10,))


def test_split_over_covering_with_nonzero_min():
    sch = wb.Schedule(prefix)
    (i,) = loops(sch, "B")
    sch.split(i, factors=[4, 4])  # 15 iterations starting at 1
    rng = np.random.default_rng(0)
    a = rng.standard_normal(16).astype("float32")
    out = np.zeros(16, "float32")
    evaluate(sch.func, a, out)
    expected = np.concatenate([[0.0], np.cumsum(a[1:])]).astype("float32")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# 5. parallel / vectorize of loops whose iterations depend on each other ------------------------
@pytest.mark.parametrize("prim", ["parallel", "vectorize"])
def test_refuse_loop_carried_dependence_in_one_block(prim):
    sch = wb.Schedule(prefix)
    (i,) = loops(sch, "B")
    err = refused(sch, getattr(sch, prim), i, exc=DependenceError)
    assert "block B reads elements of buffer B that another iteration writes" in err.message


def test_refuse_outer_part_of_a_split_carried_dependence():
    sch = wb.Schedule(prefix)
    (i,) = loops(sch, "B")
    io, ii = sch.split(i, factors=[None, 5])
    refused(sch, sch.parallel, io, exc=DependenceError, match="buffer B")
    refused(sch, sch.vectorize, ii, exc=DependenceError, match="buffer B")


@pytest.mark.parametrize("prim", ["parallel", "vectorize"])
def test_refuse_dependence_between_blocks(prim):
    sch = wb.Schedule(shifted)
    (i,) = loops(sch, "T")
    err = refused(sch, getattr(sch, prim), i, exc=DependenceError)
    assert "block C reads elements of buffer T that block T writes in another iteration" in err.message


def test_refuse_every_iteration_updating_the_same_elements():
    @wb.prim_func
    def total(A: wb.Buffer((8,), "float32"), S: wb.Buffer((1,), "float32")):
        for i in range(8):
            with wb.block("S"):
                vi = wb.axis.spatial(8, i)
                S[0] = S[0] + A[vi]

    sch = wb.Schedule(total)
    (i,) = loops(sch, "S")
    refused(sch, sch.parallel, i, exc=DependenceError, match="block S writes the same elements of buffer S")


def test_parallel_legitimate_cases_still_accepted():
    # reduction block, parallel spatial loop
    sch = wb.Schedule(matmul)
    i, j, _ = loops(sch, "C")
    sch.parallel(i)
    sch.vectorize(j)
    check_llvm(sch.func, lambda a, b: a @ b, [(6, 4), (4, 5)], (6, 5), rtol=1e-4)
    # fused spatial loops, parallel; split inner vectorized
    sch = wb.Schedule(add2d)
    f = sch.fuse(*loops(sch, "B"))
    fo, fi = sch.split(f, factors=[None, 8])
    sch.parallel(fo)
    sch.vectorize(fi)
    check_llvm(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))
    # a producer computed at the parallel loop with overlapping tiles (halo): redundant, not racing
    sch = wb.Schedule(blur)
    (ci,) = loops(sch, "C")
    c0, _ = sch.split(ci, factors=[None, 4])
    sch.compute_at(sch.get_block("B"), c0)
    sch.parallel(c0)

    def ref(a):
        b = a * 2
        return b[:16] + b[1:17] + b[2:18]
    check_numeric(sch.func, ref, [(18,)], (16,))
    check_llvm(sch.func, ref, [(18,)], (16,))



@wb.prim_func
def opaque_inc(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
    for i in range(1, 8):
        with wb.block("B"):
            B[i] = B[i] + A[i]


@wb.prim_func
def opaque_carried(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
    for i in range(1, 8):
        with wb.block("B"):
            B[i] = B[i - 1] + A[i]


@wb.prim_func
def repeated_sum(A: wb.Buffer((8,), "float32"), S: wb.Buffer((1,), "float32")):
    for r in range(4):
        for k in range(8):
            with wb.block("S"):
                vk = wb.axis.reduce(8, k)
                with wb.init():
                    S[0] = 0.0
                S[0] = S[0] + A[vk]


def test_blocks_whose_axes_do_not_use_the_loop_are_judged_by_loops():
    sch = wb.Schedule(opaque_inc)  # B[i] += A[i] in an opaque block: independent
    sch.parallel(loops(sch, "B")[0])
    a, b = np.arange(8, dtype="float32"), np.ones(8, "float32")
    evaluate(sch.func, a, b)
    np.testing.assert_allclose(b, np.r_[1.0, 1.0 + a[1:]])
    sch = wb.Schedule(opaque_carried)
    refused(sch, sch.parallel, loops(sch, "B")[0], exc=DependenceError,
            match="block B reads elements of buffer B that it writes in another iteration")
    sch = wb.Schedule(repeated_sum)  # every iteration of r re-runs the whole reduction into S[0]
    refused(sch, sch.parallel, loops(sch, "S")[0], exc=DependenceError, match="buffer S")
