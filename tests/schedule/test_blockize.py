"""blockize: structure of the result (script form), numerics against numpy, and its errors."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.schedule.blockize import BindingDivisionError, BlockizeError


def _matmul(n=16):
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


@wb.prim_func
def _acc(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"), C: wb.Buffer((16, 16), "float32")):
    for i, j, k in wb.grid(16, 16, 16):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]


@wb.prim_func
def _acc_blockized(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
                   C: wb.Buffer((16, 16), "float32")):
    for i_0, j_0, k_0 in wb.grid(4, 4, 4):
        with wb.block("C_o"):
            vi_o, vj_o, vk_o = wb.axis.remap("SSR", [i_0, j_0, k_0])
            wb.reads(C[vi_o * 4:vi_o * 4 + 4, vj_o * 4:vj_o * 4 + 4], A[vi_o * 4:vi_o * 4 + 4, vk_o * 4:vk_o * 4 + 4],
                     B[vk_o * 4:vk_o * 4 + 4, vj_o * 4:vj_o * 4 + 4])
            wb.writes(C[vi_o * 4:vi_o * 4 + 4, vj_o * 4:vj_o * 4 + 4])
            for i_1, j_1, k_1 in wb.grid(4, 4, 4):
                with wb.block("C"):
                    vi_i, vj_i, vk_i = wb.axis.remap("SSR", [i_1, j_1, k_1])
                    wb.reads(C[vi_o * 4 + vi_i, vj_o * 4 + vj_i], A[vi_o * 4 + vi_i, vk_o * 4 + vk_i],
                             B[vk_o * 4 + vk_i, vj_o * 4 + vj_i])
                    wb.writes(C[vi_o * 4 + vi_i, vj_o * 4 + vj_i])
                    C[vi_o * 4 + vi_i, vj_o * 4 + vj_i] = (C[vi_o * 4 + vi_i, vj_o * 4 + vj_i]
                                                           + A[vi_o * 4 + vi_i, vk_o * 4 + vk_i]
                                                           * B[vk_o * 4 + vk_i, vj_o * 4 + vj_i])


def _tile(sch, f=4):
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, f])
    jo, ji = sch.split(j, factors=[None, f])
    ko, ki = sch.split(k, factors=[None, f])
    sch.reorder(io, jo, ko, ii, ji, ki)
    return io, jo, ko, ii, ji, ki


def test_blockize_matches_the_hand_written_program():
    sch = wb.Schedule(_acc)
    *_, ii, ji, ki = _tile(sch)
    outer = sch.blockize(ii)
    assert sch.get(outer).name == "C_o"
    wb.assert_structural_equal(sch.func.body, _acc_blockized.body)
    # the printed program parses back to the same program
    wb.assert_structural_equal(wb.parse(sch.func.script()).body, sch.func.body)


def test_blockize_keeps_the_results_and_moves_the_init():
    rng = np.random.default_rng(0)
    a, b = rng.random((16, 16), dtype="float32"), rng.random((16, 16), dtype="float32")
    sch = wb.Schedule(_matmul())
    *_, ii, ji, ki = _tile(sch)
    outer = sch.blockize(ii)
    blk = sch.get(outer)
    assert blk.init is not None, "the reduction's init belongs to the outer block"
    assert sch.get(sch.get_block("C")).init is None
    assert [iv.iter_type.value for iv in blk.iter_vars] == ["spatial", "spatial", "reduce"]
    assert [int(iv.dom.extent) for iv in blk.iter_vars] == [4, 4, 4]
    c = np.full((16, 16), 7.0, "float32")
    wb.ir.evaluate(sch.func, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    c2 = np.full((16, 16), 7.0, "float32")
    wb.build(sch.func)(a, b, c2)
    np.testing.assert_allclose(c2, a @ b, rtol=1e-5)


def test_blockize_inner_loop_only_and_regions():
    sch = wb.Schedule(_acc)
    io, jo, ko, ii, ji, ki = _tile(sch)
    outer = sch.blockize(ji)          # i stays outside: the tile is a 4 x 4 (j, k) piece of one row
    blk = sch.get(outer)
    assert [iv.var.name for iv in blk.iter_vars] == ["vi_o", "vj_o", "vk_o"]
    assert [int(iv.dom.extent) for iv in blk.iter_vars] == [16, 4, 4]
    w = blk.writes[0]
    assert [int(r.extent) for r in w.region] == [1, 4]
    inner = sch.get(sch.get_block("C"))
    assert [iv.var.name for iv in inner.iter_vars] == ["vj_i", "vk_i"]


def test_blockize_a_list_of_blocks():
    @wb.prim_func
    def two(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = A[vi] + 1.0
        for i in range(8):
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = B[vi] * 2.0

    sch = wb.Schedule(two)
    outer = sch.blockize([sch.get_block("B"), sch.get_block("C")])
    blk = sch.get(outer)
    assert blk.name == "B_C_o" and blk.iter_vars == ()
    assert {r.buffer.name for r in blk.writes} >= {"C"}
    a = np.arange(8, dtype="float32")
    b, c = np.zeros(8, "float32"), np.zeros(8, "float32")
    wb.build(sch.func)(a, b, c)
    np.testing.assert_allclose(c, (a + 1) * 2)


def test_blockize_refuses_bindings_that_do_not_divide():
    @wb.prim_func
    def tr(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i, j in wb.grid(4, 4):
            with wb.block("B"):
                vi = wb.axis.spatial(16, j * 4 + i)   # the inner loop j is the *high* part
                B[vi] = A[vi]

    sch = wb.Schedule(tr)
    before = sch.func
    i, j = sch.get_loops(sch.get_block("B"))
    with pytest.raises(BindingDivisionError) as info:
        sch.blockize(j)
    msg = str(info.value)
    assert "do not divide into a part outside loop j and a part inside it" in msg
    assert "vi = j * 4 + i" in msg
    assert isinstance(info.value, ValueError)
    assert sch.func is before


def test_blockize_refuses_a_loop_with_two_blocks():
    @wb.prim_func
    def two(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = A[vi] + 1.0
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = A[vi] * 2.0

    sch = wb.Schedule(two)
    (i,) = sch.get_loops(sch.get_block("B"))
    with pytest.raises(BlockizeError, match="holds 2 blocks"):
        sch.blockize(i)
