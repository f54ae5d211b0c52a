"""pad_einsum, decompose_padding and can_decompose_padding: results against numpy (reference interpreter and
LLVM build), the structure TVM gives, and refusals that leave the schedule unchanged."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.interpreter import evaluate
from workbench.ir.op_library.corpus import (batch_matmul_case, conv2d_case, matmul_case, matmul_symbolic_case,
                                            max_pool2d_case)
from workbench.ir.structural import structural_equal
from workbench.schedule import DependenceError, ScheduleArgumentError
from workbench.schedule import primitive as prim
from workbench.schedule.padding import LoopPositionError, NotEinsumError, NotPaddingError

from .util import refused


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _run_both(func, inputs, out_shape):
    """The output of ``func`` from the interpreter and from the LLVM build (both start from NaN)."""
    outs = []
    for runner in (evaluate, wb.build(func, target="llvm")):
        out = np.full(out_shape, np.nan, "float32")
        runner(*(([func] if runner is evaluate else []) + list(inputs) + [out]))
        outs.append(out)
    return outs


def _shapes(sch):
    idx = sch.index()
    return {b.name: tuple(int(d.value) for d in b.shape) for n in idx.order for b in idx.block(n).alloc_buffers}


def _loop_extents(sch, block):
    return [int(sch.get(lp).extent.value) for lp in sch.get_loops(sch.get_block(block))]


# pad_einsum ---------------------------------------------------------------------------------------------------------
def test_pad_einsum_matmul_100_to_32s_matches_numpy():
    sch = wb.Schedule(matmul_case(100, 100, 100).func)
    sch.pad_einsum(sch.get_block("C"), [32, 32, 32])
    assert _shapes(sch) == {"A_pad": (128, 128), "B_pad": (128, 128), "C_pad": (128, 128)}
    assert _loop_extents(sch, "C") == [128, 128, 128]
    assert [n for n in sch.index().order if n != "root"] == ["A_pad", "B_pad", "C", "C_pad"]
    a, b = _randn(100, 100), _randn(100, 100, seed=1)
    for out in _run_both(sch.func, [a, b], (100, 100)):
        np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


def test_pad_einsum_then_even_tiles_matches_numpy():
    sch = wb.Schedule(matmul_case(100, 100, 100).func)
    c = sch.get_block("C")
    sch.pad_einsum(c, [32, 32, 32])
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, [None, 32])
    jo, ji = sch.split(j, [None, 32])
    ko, ki = sch.split(k, [None, 32])
    sch.reorder(io, jo, ko, ii, ki, ji)
    sch.vectorize(ji)
    assert all(sch.get(lp).extent.value in (4, 32) for lp in sch.get_loops(c))
    a, b = _randn(100, 100), _randn(100, 100, seed=1)
    fn = wb.build(sch.func, target="llvm -mcpu=znver3")
    out = np.full((100, 100), np.nan, "float32")
    fn(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


def test_pad_einsum_only_the_padded_axes_get_buffers():
    sch = wb.Schedule(matmul_case(10, 8, 6).func)   # C (10, 8) = A (10, 6) @ B (6, 8)
    sch.pad_einsum(sch.get_block("C"), [4, 1, 1])
    assert _shapes(sch) == {"A_pad": (12, 6), "C_pad": (12, 8)}
    a, b = _randn(10, 6), _randn(6, 8, seed=1)
    for out in _run_both(sch.func, [a, b], (10, 8)):
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def test_pad_einsum_spatial_axes_of_a_max_reduction():
    x = te.placeholder((10, 7), "float32", name="x")
    k = te.reduce_axis((0, 7), name="k")
    y = te.compute((10,), lambda i: te.max(x[i, k], axis=k), name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    sch.pad_einsum(sch.get_block("y"), [4, 1])
    a = _randn(10, 7) - 5.0          # all negative: zero padding in a max would show
    for out in _run_both(sch.func, [a], (10,)):
        np.testing.assert_allclose(out, a.max(axis=1), rtol=1e-6)


def test_pad_einsum_of_a_batch_matmul():
    sch = wb.Schedule(batch_matmul_case(2, 5, 7, 3).func)
    sch.pad_einsum(sch.get_block("C"), [1, 8, 8, 4])
    assert _shapes(sch) == {"A_pad": (2, 8, 4), "B_pad": (2, 4, 8), "C_pad": (2, 8, 8)}
    a, b = _randn(2, 5, 3), _randn(2, 3, 7, seed=2)
    for out in _run_both(sch.func, [a, b], (2, 5, 7)):
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def test_pad_einsum_that_pads_nothing_leaves_the_program():
    f = matmul_case(8, 8, 8).func
    sch = wb.Schedule(f)
    sch.pad_einsum(sch.get_block("C"), [4, 2, 8])
    assert sch.func is f
    assert "pad_einsum" in str(sch.trace)


def test_pad_einsum_in_the_trace_and_as_a_pure_function():
    f = matmul_case(10, 10, 10).func
    sch = wb.Schedule(f)
    sch.pad_einsum(sch.get_block("C"), [4, 4, 4])
    assert 'sch.pad_einsum(b0, padding=[4, 4, 4])' in str(sch.trace)
    assert structural_equal(sch.trace.apply(f).func, sch.func)
    g, _ = prim.apply(f, "pad_einsum", wb.Schedule(f).index().block("C"), padding=[4, 4, 4])
    assert structural_equal(g, sch.func)


@pytest.mark.parametrize("padding", [[32, 32], [32, 0, 32], [32, True, 32], [32, 2.0, 32], 32, "abc"])
def test_pad_einsum_refuses_bad_padding(padding):
    sch = wb.Schedule(matmul_case(10, 10, 10).func)
    refused(sch, sch.pad_einsum, sch.get_block("C"), padding, exc=ScheduleArgumentError,
            match="padding must be a list of 3 positive ints")


def test_pad_einsum_refuses_a_conv2d():
    sch = wb.Schedule(conv2d_case().func)
    refused(sch, sch.pad_einsum, sch.get_block("conv2d"), [1, 1, 8, 8, 1, 1, 1], exc=NotEinsumError,
            match="block conv2d: it reads conv2d_pad at indices that are not plain iteration variables")


def test_pad_einsum_refuses_an_update_without_init():
    sch = wb.Schedule(matmul_case(10, 10, 10).func)
    i, _, _ = sch.get_loops(sch.get_block("C"))
    sch.decompose_reduction(sch.get_block("C"), i)
    refused(sch, sch.pad_einsum, sch.get_block("C_update"), [4, 4, 4], exc=NotEinsumError,
            match="reads the buffer C it writes")


def test_pad_einsum_refuses_to_pad_the_reduce_axis_of_a_max():
    """TVM pads it with zeros and so takes max(0, row) for rows of negative numbers."""
    x = te.placeholder((10, 7), "float32", name="x")
    k = te.reduce_axis((0, 7), name="k")
    y = te.compute((10,), lambda i: te.max(x[i, k], axis=k), name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    refused(sch, sch.pad_einsum, sch.get_block("y"), [1, 4], exc=NotEinsumError, match="needs a sum reduction")


def test_pad_einsum_refuses_a_reduce_axis_whose_padded_terms_are_not_zero():
    x = te.placeholder((10, 7), "float32", name="x")
    k = te.reduce_axis((0, 7), name="k")
    y = te.compute((10,), lambda i: te.sum(x[i, k] + 1.0, axis=k), name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    refused(sch, sch.pad_einsum, sch.get_block("y"), [1, 4], exc=NotEinsumError, match="not 0 when the padded")
    sch.pad_einsum(sch.get_block("y"), [4, 1])     # the spatial axis alone is fine
    a = _randn(10, 7)
    for out in _run_both(sch.func, [a], (10,)):
        np.testing.assert_allclose(out, (a + 1.0).sum(axis=1), rtol=1e-5, atol=1e-5)


def test_pad_einsum_refuses_a_producer_in_the_same_nest():
    a = te.placeholder((10, 10), "float32", name="A")
    a2 = te.compute((10, 10), lambda i, j: a[i, j] * 2.0, name="A2")
    b = te.placeholder((10, 10), "float32", name="B")
    k = te.reduce_axis((0, 10), name="k")
    c = te.compute((10, 10), lambda i, j: te.sum(a2[i, k] * b[k, j], axis=k), name="C")
    sch = wb.Schedule(wb.create_prim_func([a, b, c]))
    i, _, _ = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("A2"), i)
    refused(sch, sch.pad_einsum, sch.get_block("C"), [4, 4, 4], exc=DependenceError,
            match="block A2 writes its input A2 in the same loop nest")


def test_pad_einsum_refuses_a_consumer_in_the_same_nest():
    a, b = te.placeholder((10, 10), "float32", name="A"), te.placeholder((10, 10), "float32", name="B")
    k = te.reduce_axis((0, 10), name="k")
    c = te.compute((10, 10), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    d = te.compute((10, 10), lambda i, j: c[i, j] + 1.0, name="D")
    sch = wb.Schedule(wb.create_prim_func([a, b, d]))
    i, _, _ = sch.get_loops(sch.get_block("C"))
    sch.reverse_compute_at(sch.get_block("D"), i)
    refused(sch, sch.pad_einsum, sch.get_block("C"), [4, 4, 4], exc=DependenceError,
            match="block D uses its output C in the same loop nest")


def test_pad_einsum_keeps_a_split_loop_and_stays_correct():
    """A padded variable bound to a split loop: the loops keep their extents (TVM's behaviour), the padded
    iterations are simply not run, and the result is still right."""
    sch = wb.Schedule(matmul_case(10, 10, 10).func)
    c = sch.get_block("C")
    i, _, _ = sch.get_loops(c)
    sch.split(i, [None, 5])
    sch.pad_einsum(c, [4, 4, 4])
    assert _loop_extents(sch, "C") == [2, 5, 12, 12]
    a, b = _randn(10, 10), _randn(10, 10, seed=1)
    for out in _run_both(sch.func, [a, b], (10, 10)):
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def _check_llvm(case, func):
    built = wb.build(func, target="llvm")
    case.check(lambda _f, *arrays: built(*arrays))


# decompose_padding --------------------------------------------------------------------------------------------------
def _decomposed(case_fn, at: int):
    case = case_fn()
    sch = wb.Schedule(case.func)
    name = f"{case.name}_pad"
    fill = sch.decompose_padding(sch.get_block(name), sch.get_loops(sch.get_block(name))[at])
    return case, sch, fill, name


@pytest.mark.parametrize("case_fn", [conv2d_case, max_pool2d_case])
@pytest.mark.parametrize("at, interior", [(0, [7, 7]), (2, [7, 7]), (3, [9, 7])])
def test_decompose_padding_of_the_corpus_matches_numpy(case_fn, at, interior):
    """At the innermost loop only that loop narrows (the fill block sits beside it inside i2), as in TVM; i2's
    bound goes to the interior block's predicate."""
    case, sch, fill_block, name = _decomposed(case_fn, at)
    assert sch.get(fill_block).name == f"{name}_pad_const"
    assert _loop_extents(sch, name)[-2:] == interior
    assert _loop_extents(sch, f"{name}_pad_const")[-2:] == [9, 9]
    assert "if_then_else" not in str(sch.get(sch.get_block(name)).body)
    case.func = sch.func
    case.check(evaluate)
    _check_llvm(case, sch.func)


def test_decompose_padding_structure():
    x = te.placeholder((4,), "float32", name="X")
    p = te.compute((6,), lambda i: te.if_then_else(te.all(i >= 1, i < 5), x[i - 1], -1.0), name="P")
    sch = wb.Schedule(wb.create_prim_func([x, p]))
    blk = sch.get_block("P")
    (i,) = sch.get_loops(blk)
    sch.decompose_padding(blk, i)

    @wb.prim_func
    def expected(X: wb.Buffer((4,), "float32"), P: wb.Buffer((6,), "float32")):
        for i_pad in range(6):
            with wb.block("P_pad_const"):
                v_i = wb.axis.remap("S", [i_pad])
                P[v_i] = -1.0
        for i in range(4):
            with wb.block("P"):
                v_i = wb.axis.remap("S", [i])
                P[v_i + 1] = X[v_i]

    from .util import assert_program
    assert_program(sch.func, expected)
    assert sch.get(blk).name == "P"            # the handle follows the interior block


@pytest.mark.parametrize("factor", [3, 4])
def test_decompose_padding_under_a_split_loop(factor):
    """The binding is not a loop of its own: shifted, with the box's bounds in the predicate."""
    case = conv2d_case()
    sch = wb.Schedule(case.func)
    blk = sch.get_block("conv2d_pad")
    loops = sch.get_loops(blk)
    sch.split(loops[2], [None, factor])
    sch.decompose_padding(blk, loops[0])
    case.func = sch.func
    case.check(evaluate)
    _check_llvm(case, sch.func)


def test_decompose_padding_in_the_trace_and_replayed():
    case = max_pool2d_case()
    sch = wb.Schedule(case.func)
    blk = sch.get_block("max_pool2d_pad")
    sch.decompose_padding(blk, sch.get_loops(blk)[1])
    assert "sch.decompose_padding(b0, l2)" in str(sch.trace)
    assert structural_equal(sch.trace.apply(case.func).func, sch.func)


def test_can_decompose_padding():
    case = conv2d_case()
    sch = wb.Schedule(case.func)
    pad, conv = sch.get_block("conv2d_pad"), sch.get_block("conv2d")
    pad_loops, conv_loops = sch.get_loops(pad), sch.get_loops(conv)
    f0 = sch.func
    assert sch.can_decompose_padding(pad, pad_loops[0]) == 1
    assert sch.can_decompose_padding(conv, conv_loops[0]) == 0        # not a padding block
    assert sch.can_decompose_padding(pad, conv_loops[0]) == 0         # the loop is not above it
    assert sch.func is f0
    assert "can_decompose_padding" in str(sch.trace)


def test_decompose_padding_refuses_a_block_that_is_not_padding():
    sch = wb.Schedule(conv2d_case().func)
    conv = sch.get_block("conv2d")
    refused(sch, sch.decompose_padding, conv, sch.get_loops(conv)[0], exc=NotPaddingError, match="reduction")
    x = te.placeholder((6,), "float32", name="X")
    y = te.compute((6,), lambda i: x[i] * 2.0, name="Y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    b = sch.get_block("Y")
    refused(sch, sch.decompose_padding, b, sch.get_loops(b)[0], exc=NotPaddingError,
            match=r"not wb.if_then_else\(in_bounds, value, pad_value\)")
    assert sch.can_decompose_padding(b, sch.get_loops(b)[0]) == 0


def test_decompose_padding_refuses_a_loop_that_is_not_above_the_block():
    sch = wb.Schedule(conv2d_case().func)
    pad, conv = sch.get_block("conv2d_pad"), sch.get_block("conv2d")
    refused(sch, sch.decompose_padding, pad, sch.get_loops(conv)[1], exc=LoopPositionError,
            match="at loop ff: the loop is not above the block")


@pytest.mark.parametrize("cond, pad, match", [
    (lambda i, j: i + j < 5, 0.0, "does not bound one iteration variable"),
    (lambda i, j: te.all(i >= 0, i < 6), 0.0, "holds on its whole domain"),
    (lambda i, j: te.all(i >= 4, i < 2), 0.0, "never holds"),
    (lambda i, j: i < 3, "load", "is not a constant"),
])
def test_decompose_padding_refuses_conditions_that_are_not_a_box(cond, pad, match):
    x = te.placeholder((6, 6), "float32", name="X")
    p = te.compute((6, 6), lambda i, j: te.if_then_else(cond(i, j), x[i, j], x[0, 0] if pad == "load" else pad),
                   name="P")
    sch = wb.Schedule(wb.create_prim_func([x, p]))
    b = sch.get_block("P")
    refused(sch, sch.decompose_padding, b, sch.get_loops(b)[0], exc=NotPaddingError, match=match)
    assert sch.can_decompose_padding(b, sch.get_loops(b)[0]) == 0


def test_decompose_padding_of_a_one_sided_box_with_a_loop_sibling():
    """Only the upper edge is padded, and the in-bound block shares its outer loop with another block."""
    x = te.placeholder((5, 4), "float32", name="X")
    p = te.compute((8, 4), lambda i, j: te.if_then_else(i < 5, x[i, j], 0.0), name="P")
    y = te.compute((8, 4), lambda i, j: p[i, j] * 3.0, name="Y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    i, _ = sch.get_loops(sch.get_block("P"))
    sch.reverse_compute_at(sch.get_block("Y"), i)
    pb = sch.get_block("P")
    sch.decompose_padding(pb, sch.get_loops(pb)[0])
    a = _randn(5, 4)
    ref = np.concatenate([a, np.zeros((3, 4), "float32")]) * 3.0
    for out in _run_both(sch.func, [a], (8, 4)):
        np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_pad_einsum_of_a_symbolic_matmul():
    sch = wb.Schedule(matmul_symbolic_case().func)     # C (m, 6) = A (m, 5) @ B (5, 6)
    sch.pad_einsum(sch.get_block("C"), [4, 4, 4])
    a, b = _randn(7, 5), _randn(5, 6, seed=1)
    for out in _run_both(sch.func, [a, b], (7, 6)):
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def test_decompose_padding_refuses_a_symbolic_domain():
    n = te.var("n")
    x = te.placeholder((n,), "float32", name="X")
    p = te.compute((n + 2,), lambda i: te.if_then_else(te.all(i >= 1, i < n + 1), x[i - 1], 0.0), name="P")
    sch = wb.Schedule(wb.create_prim_func([x, p]))
    b = sch.get_block("P")
    refused(sch, sch.decompose_padding, b, sch.get_loops(b)[0], exc=NotPaddingError, match="symbolic domain")


def test_can_decompose_padding_replays_from_json():
    case = conv2d_case()
    sch = wb.Schedule(case.func)
    pad = sch.get_block("conv2d_pad")
    assert sch.can_decompose_padding(pad, sch.get_loops(pad)[0])
    sch.decompose_padding(pad, sch.get_loops(pad)[0])
    trace = wb.schedule.Trace.from_json(sch.trace.to_json())
    assert structural_equal(trace.apply(case.func).func, sch.func)


def test_pad_einsum_refuses_an_extent_its_dtype_cannot_count():
    sch = wb.Schedule(matmul_case(10, 10, 10).func)
    refused(sch, sch.pad_einsum, sch.get_block("C"), [2**31, 1, 1], exc=ScheduleArgumentError,
            match="more than its dtype int32 can count")


# pad_einsum on a block that covers only part of its buffers (fuzzer seed 55123000214) --------------------------------
def _partitioned_multiply(rows: int):
    """``multiply[i, j] = a[i, j] * b[j]`` with its row loop partitioned: row 0 in ``multiply_i0``, the rest in
    ``multiply_i1``."""
    a = te.placeholder((rows, 5), name="a")
    b = te.placeholder((5,), name="b")
    m = te.compute((rows, 5), lambda i, j: a[i, j] * b[j], name="multiply")
    sch = wb.Schedule(wb.create_prim_func([a, b, m]))
    i, _ = sch.get_loops(sch.get_block("multiply"))
    sch.loop_partition(i, factors=[1])
    return sch


def _copy_extents(sch, block):
    return [int(sch.get(lp).extent.value) for lp in sch.get_loops(sch.get_block(block))]


@pytest.mark.parametrize("rows, padding", [(4, [1, 4]), (5, [3, 4])])
def test_pad_einsum_on_one_part_of_a_partitioned_loop_copies_only_that_part(rows, padding):
    """The copy-back covered the whole output and overwrote row 0 (computed by the other part) with the
    uninitialised padded buffer; the input copies read rows the block never reads."""
    sch = _partitioned_multiply(rows)
    sch.pad_einsum(sch.get_block("multiply_i1"), padding=padding)
    assert _copy_extents(sch, "multiply_pad") == [rows - 1, 5]
    assert _copy_extents(sch, "a_pad") == [rows - 1, 8]
    a, b = _randn(rows, 5), _randn(5, seed=1)
    for out in _run_both(sch.func, [a, b], (rows, 5)):
        np.testing.assert_allclose(out, a * b, rtol=1e-6)


def test_pad_einsum_copies_only_the_element_a_constant_index_reads():
    a = te.placeholder((4, 5), name="a")
    w = te.placeholder((3, 5), name="w")
    m = te.compute((4, 5), lambda i, j: a[i, j] * w[2, j], name="m")
    sch = wb.Schedule(wb.create_prim_func([a, w, m]))
    sch.pad_einsum(sch.get_block("m"), [1, 4])
    assert _copy_extents(sch, "w_pad") == [1, 8]
    x, y = _randn(4, 5), _randn(3, 5, seed=1)
    for out in _run_both(sch.func, [x, y], (4, 5)):
        np.testing.assert_allclose(out, x * y[2], rtol=1e-6)


def test_pad_einsum_under_a_split_with_a_predicate_copies_only_the_predicated_rows():
    sch = wb.Schedule(matmul_case(10, 10, 10).func)
    c = sch.get_block("C")
    sch.split(sch.get_loops(c)[0], [None, 4])
    sch.pad_einsum(c, [4, 4, 4])
    assert _copy_extents(sch, "C_pad") == [10, 10] and _copy_extents(sch, "A_pad") == [10, 12]
    a, b = _randn(10, 10), _randn(10, 10, seed=1)
    for out in _run_both(sch.func, [a, b], (10, 10)):
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("binding, where, match", [
    ("i * 2", "", "v_i = i \\* 2 steps by 2"),
    ("i", "            wb.where(i + j < 6)\n", "predicate term `i \\+ j < 6` does not bound"),
])
def test_pad_einsum_refuses_a_block_whose_touched_part_is_not_a_box(binding, where, match):
    from workbench.ir.parser import parse
    from workbench.schedule.errors import NonAffineBindingError

    func = parse(f'''
@wb.prim_func
def main(a: wb.Buffer((8, 5), "float32"), m: wb.Buffer((8, 5), "float32")):
    for i, j in wb.grid(4, 5):
        with wb.block("m"):
            v_i = wb.axis.spatial(8, {binding})
            v_j = wb.axis.spatial(5, j)
{where}            m[v_i, v_j] = a[v_i, v_j] * 2.0
''')
    sch = wb.Schedule(func)
    refused(sch, sch.pad_einsum, sch.get_block("m"), [1, 4], exc=NonAffineBindingError, match=match)


def test_pad_einsum_of_a_copy_block_pad_einsum_made_stays_in_bounds():
    # fuzzer 1205001407:multiply: padding the block `a_pad` (which reads `a` only under `v0 < 4` over 8 rows)
    # copied `a` over all 8 rows into a 4-row buffer, reading and writing out of bounds.
    a = te.placeholder((4, 3), name="a")
    m = te.compute((4, 3), lambda i, j: a[i, j] * 2.0, name="multiply")
    sch = wb.Schedule(wb.create_prim_func([a, m]))
    sch.pad_einsum(sch.get_block("multiply"), [8, 1])
    sch.pad_einsum(sch.get_block("a_pad"), [8, 2])
    assert _shapes(sch)["a_pad_1"] == (8, 4)
    x = _randn(4, 3)
    for out in _run_both(sch.func, [x], (4, 3)):
        np.testing.assert_allclose(out, x * 2.0, rtol=1e-6)
