"""Regressions for defects the random-schedule fuzzer found (benchmarks/fuzz_schedules.py).

Each test replays a minimised reproducer from the fuzzer's findings and checks the scheduled
program against numpy, with the reference interpreter and with an LLVM build.
"""
import numpy as np
import pytest

import workbench as wb
from workbench.ir import op_library
from workbench.ir.interpreter import evaluate


def _check_case(case, func) -> None:
    """``func`` (a schedule of ``case``) matches numpy in the interpreter and in an LLVM build."""
    for run in (lambda *a: evaluate(func, *a), wb.build(func, target="llvm")):
        ins, outs, expected = case.make_arrays(np.random.default_rng(0))
        run(*ins, *outs)
        case.assert_close(outs, expected)


# -- blockize: the outer block's regions stay inside the buffers -----------------------------------------

def _region_text(block) -> str:
    return " ".join(str(r) for r in block.reads + block.writes)


@pytest.mark.parametrize("name, block", [("conv2d", "conv2d_pad"), ("max_pool2d", "max_pool2d_pad")])
def test_blockize_of_a_padding_block_clamps_the_outer_read_region(name, block):
    case = op_library.OPS[name]()
    sch = wb.Schedule(case.func)
    pad = sch.get_block(block)
    outer = sch.blockize(sch.get_loops(pad)[1])
    text = _region_text(sch.get(outer))
    assert "-1" not in text, text
    _check_case(case, sch.func)


@pytest.mark.parametrize("level", [0, 2, 3])
def test_blockize_of_a_padding_block_at_any_level_is_well_formed_and_correct(level):
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    sch.blockize(sch.get_loops(sch.get_block("conv2d_pad"))[level])
    _check_case(case, sch.func)


def test_blockize_under_an_overshooting_split_keeps_regions_inside_the_buffer():
    case = op_library.OPS["gelu_tanh"]()
    sch = wb.Schedule(case.func)
    i0, i1 = sch.get_loops(sch.get_block("gelu_tanh"))
    sch.split(i1, factors=[None, 3, 8])
    outer = sch.blockize(i0)
    assert _region_text(sch.get(outer)) == "x[0:4, 0:8] gelu_tanh[0:4, 0:8]"
    _check_case(case, sch.func)



def test_blockize_of_sibling_blocks_under_a_non_dividing_split_clamps_to_the_buffer():
    """Fuzzer seed 4242000549: the outer block's regions use the (unit) loops around it."""
    case = op_library.OPS["batch_matmul"]()
    sch = wb.Schedule(case.func)
    c = sch.get_block("C")
    _, i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, 4])
    jo, ji = sch.split(j, factors=[None, 4])
    ko, ki = sch.split(k, factors=[None, 4])
    sch.reorder(io, jo, ko, ii, ji, ki)
    sch.decompose_reduction(c, ko)
    sch.blockize([sch.get_block("C_init"), sch.get_block("C_update")])
    _check_case(case, sch.func)


def test_transform_layout_under_a_blockized_padding_block_clamps_the_outer_region():
    """Fuzzer seed 4242000476: transform_layout re-infers the outer block's regions."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    outer = sch.blockize([sch.get_block("conv2d_pad"), sch.get_block("conv2d")])
    sch.transform_layout(outer, ("read", 0), lambda i0, i1, i2, i3: (i0, i1, i2, i3))
    assert "x[0, 0:3, 0:7, 0:7]" in _region_text(sch.get(outer))
    _check_case(case, sch.func)


def test_transform_layout_of_a_parameter_read_under_an_overshooting_split():
    """Fuzzer seed 4242000018: the re-inferred outer region must fit the new shape (4, 2, 3)."""
    case = op_library.OPS["reshape"]()
    sch = wb.Schedule(case.func)
    outer = sch.blockize(sch.get_loops(sch.get_block("reshape"))[0], preserve_unit_iters=False)
    sch.split(sch.get_loops(sch.get_block("reshape"))[1], factors=[None, 2, 16])
    sch.transform_layout(outer, ("read", 0), lambda i0, i1, i2: (i2, i0, i1))
    assert "x[0:4, 0:2, 0:3]" in _region_text(sch.get(outer))
    for run in (lambda *a: evaluate(sch.func, *a), wb.build(sch.func, target="llvm")):
        (x,), (out,), (expected,) = case.make_arrays(np.random.default_rng(0))
        run(np.ascontiguousarray(x.transpose(2, 0, 1)), out)
        case.assert_close([out], [expected])

# -- transform_layout with pad_value on an input: the caller's array is not written ------------------------

def test_transform_layout_pad_value_on_an_input_leaves_the_input_alone():
    case = op_library.OPS["concatenate"]()
    sch = wb.Schedule(case.func)
    sch.transform_layout(sch.get_block("concatenate"), ("read", 1), lambda i0, i1: (i0 + 1, i1), pad_value=0.0)
    assert not any(name.endswith("_pad") for name in sch.index().blocks)
    for run in (lambda *a: evaluate(sch.func, *a), wb.build(sch.func, target="llvm")):
        (x0, x1, x2), (out,), _ = case.make_arrays(np.random.default_rng(0))
        x1_padded = np.full((5, 3), np.nan, "float32")   # row 0 is padding: the caller's to fill
        x1_padded[1:] = x1
        given = x1_padded.copy()
        run(x0, x1_padded, x2, out)
        np.testing.assert_array_equal(x1_padded, given)
        np.testing.assert_allclose(out, np.concatenate([x0, x1, x2]), rtol=1e-6)


def test_transform_layout_pad_value_on_an_output_still_fills_the_padding():
    case = op_library.OPS["relu"]()
    sch = wb.Schedule(case.func)
    sch.transform_layout(sch.get_block("relu"), ("write", 0), lambda i0, i1: (i0, i1 // 3, i1 % 3), pad_value=-1.0)
    for run in (lambda *a: evaluate(sch.func, *a), wb.build(sch.func, target="llvm")):
        (x,), _, (expected,) = case.make_arrays(np.random.default_rng(0))
        out = np.full((4, 3, 3), np.nan, "float32")      # 4 x 8 stored as 4 x 9: one padding column per row
        run(x, out)
        flat = out.reshape(4, 9)
        np.testing.assert_allclose(flat[:, :8], expected, rtol=1e-6)
        assert (flat[:, 8] == -1.0).all()


# -- transform_layout of a buffer a tensorized block views through match_buffer: refused -----------------

def _tensorized_matmul16():
    """The fuzzer's matmul16_relu (Y = A @ B, C = relu(Y)) with Y's update tensorized by 4x4 tiles."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import fuzz_schedules

    sch = wb.Schedule(fuzz_schedules.program("matmul16_relu").func)
    y = sch.get_block("Y")
    i, j, k = sch.get_loops(y)
    io, ii = sch.split(i, [None, 4])
    jo, ji = sch.split(j, [None, 4])
    ko, ki = sch.split(k, [None, 4])
    sch.reorder(io, jo, ko, ii, ji, ki)
    sch.decompose_reduction(y, ko)
    sch.tensorize(ii, "matmul_add_4x4")
    return sch


def _check_matmul16(func) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 16, 16)).astype("float32")
    for run in (lambda *args: evaluate(func, *args), wb.build(func, target="llvm")):
        c = np.full((16, 16), np.nan, "float32")
        run(a, b, c)
        np.testing.assert_allclose(c, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("block, buffer, index_map, pad", [
    ("Y_init", ("write", 0), lambda i0, i1: (i0 // 3, i1, i0 % 3), 0.0),   # seed 7000665
    ("Y_update_o", ("read", 1), lambda i0, i1: (15 - i0, i1), None),       # seed 11000090
])
def test_transform_layout_of_a_buffer_viewed_by_match_buffer_is_refused(block, buffer, index_map, pad):
    sch = _tensorized_matmul16()
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="views it through match_buffer"):
        sch.transform_layout(sch.get_block(block), buffer, index_map, pad_value=pad)
    assert sch.func is before
    _check_matmul16(sch.func)


def test_cache_read_through_a_tensorized_block_rewrites_its_match_buffer():
    sch = _tensorized_matmul16()
    sch.cache_read(sch.get_block("Y_update_o"), 1, "shared")
    assert "match_buffer(A_shared[" in sch.func.script()
    _check_matmul16(sch.func)


# -- compute_at / reverse_compute_at keep the moved block's own predicate ---------------------------------

_GUARDED_PRODUCER = '''
@wb.prim_func
def f(A: wb.Buffer((50,), "float32"), C: wb.Buffer((64,), "float32")):
    B = wb.alloc_buffer((64,), "float32")
    for i in range(64):
        with wb.block("B"):
            vi = wb.axis.spatial(64, i)
            wb.where(i < 50)
            B[vi] = A[vi] * 2.0
    for i in range(64):
        with wb.block("C"):
            vi = wb.axis.spatial(64, i)
            wb.where(i < 50)
            C[vi] = B[vi] + 1.0
'''


def _check_guarded(func) -> None:
    a = np.random.default_rng(0).standard_normal(50).astype("float32")
    for run in (lambda *args: evaluate(func, *args), wb.build(func, target="llvm")):
        c = np.full(64, -7.0, "float32")
        run(a, c)
        np.testing.assert_allclose(c[:50], a * 2.0 + 1.0, rtol=1e-6)
        assert (c[50:] == -7.0).all()


def test_compute_at_keeps_the_producers_own_predicate():
    sch = wb.Schedule(wb.parse(_GUARDED_PRODUCER))
    io, _ = sch.split(sch.get_loops(sch.get_block("C"))[0], [None, 16])
    sch.compute_at(sch.get_block("B"), io)
    assert "wb.where(i_0 * 16 + ax0 < 50)" in sch.func.script()
    _check_guarded(sch.func)


def test_reverse_compute_at_keeps_the_consumers_own_predicate():
    sch = wb.Schedule(wb.parse(_GUARDED_PRODUCER))
    io, _ = sch.split(sch.get_loops(sch.get_block("B"))[0], [None, 16])
    sch.reverse_compute_at(sch.get_block("C"), io)
    assert "wb.where(i_0 * 16 + ax0 < 50)" in sch.func.script()
    _check_guarded(sch.func)


def test_compute_at_keeps_a_predicate_next_to_the_split_guard():
    """A non-dividing split's guard is derived again for the new loops; the block's own term stays."""
    sch = wb.Schedule(wb.parse(_GUARDED_PRODUCER))
    sch.split(sch.get_loops(sch.get_block("B"))[0], [None, 10])
    io, _ = sch.split(sch.get_loops(sch.get_block("C"))[0], [None, 8])
    sch.compute_at(sch.get_block("B"), io)
    _check_guarded(sch.func)


# -- storage_align is honoured by lowering ------------------------------------------------------------------

def _allocations(func) -> dict:
    from workbench.ir.functor import Visitor

    found = {}

    class _V(Visitor):
        def visit_Allocate(self, a):
            found[a.buffer.name] = a.buffer
            self.generic_visit(a)

    _V().visit(func.body)
    return found


def _transposed_double():
    from workbench import te

    A = te.placeholder((64, 64), "float32", name="A")
    B = te.compute((64, 64), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((64, 64), lambda i, j: B[j, i] + 1.0, name="C")
    return wb.Schedule(wb.create_prim_func([A, C]))


def _check_transposed_double(func) -> None:
    a = np.random.default_rng(0).standard_normal((64, 64)).astype("float32")
    for run in (lambda *args: evaluate(func, *args), wb.build(func, target="llvm")):
        c = np.full((64, 64), np.nan, "float32")
        run(a, c)
        np.testing.assert_allclose(c, (a * 2.0).T + 1.0, rtol=1e-6)


def test_storage_align_pads_the_stride_of_the_allocation():
    from workbench.backend.lower import lower

    sch = _transposed_double()
    sch.storage_align(sch.get_block("B"), 0, axis=0, factor=32, offset=1)
    func = sch.func          # lowering (and so wb.build) honours the alignment by itself
    stages = dict(lower(func, stages=True))
    b = _allocations(stages["compact_buffers"])["B"]
    assert [int(s) for s in b.strides] == [65, 1]
    flat = _allocations(stages["flatten_buffers"])["B"]
    assert [int(d) for d in flat.shape] == [63 * 65 + 64]      # rows 65 apart, not 64
    assert "B[j * 65 + i]" in stages["flatten_buffers"].script()
    _check_transposed_double(func)


def test_storage_align_applies_to_the_compacted_tile():
    from workbench.backend.lower import lower

    sch = _transposed_double()
    c = sch.get_block("C")
    i, j = sch.get_loops(c)
    io, ii = sch.split(i, [None, 8])
    jo, ji = sch.split(j, [None, 8])
    sch.reorder(io, jo, ii, ji)
    sch.compute_at(sch.get_block("B"), jo)
    sch.storage_align(sch.get_block("B"), 0, axis=0, factor=16, offset=4)
    func = sch.func
    b = _allocations(dict(lower(func, stages=True))["compact_buffers"])["B"]
    assert [int(d) for d in b.shape] == [8, 8] and [int(s) for s in b.strides] == [20, 1]
    _check_transposed_double(func)


@pytest.mark.parametrize("axis, factor, offset, expected", [
    (0, 32, 1, (65, 1)), (0, 64, 0, (64, 1)), (1, 8, 3, (3 * 64, 3)), (0, 16, 15, (79, 1))])
def test_aligned_strides_follow_k_times_factor_plus_offset(axis, factor, offset, expected):
    from workbench.backend.lower.compact import aligned_strides
    from workbench.ir.arith import Analyzer
    from workbench.ir.expr import IntImm

    strides = aligned_strides((IntImm(64), IntImm(64)), [(axis, factor, offset)], Analyzer())
    assert tuple(int(s) for s in strides) == expected


# -- inverse_affine_map (moved from compute_location to workbench.ir.arith.iter_map) ------------------------

def test_inverse_affine_map_undoes_a_split_and_a_shift():
    from workbench.ir.arith import Analyzer
    from workbench.ir.arith.iter_map import inverse_affine_map
    from workbench.ir.expr import IntImm, Range, Var
    from workbench.ir.functor import substitute

    i, j = Var("i"), Var("j")
    inv = inverse_affine_map([j + 1, i // 4, i % 4], {i: Range(0, 16), j: Range(0, 3)})
    an = Analyzer()
    for vi in range(16):
        for vj in range(3):
            q = {qk: IntImm(x) for qk, x in zip(inv.outputs, (vj + 1, vi // 4, vi % 4))}
            assert int(an.simplify(substitute(inv.values[i], q))) == vi
            assert int(an.simplify(substitute(inv.values[j], q))) == vj
    assert inverse_affine_map([i + j], {i: Range(0, 4), j: Range(0, 4)}) is None
