"""Regression tests: cache_write of predicated blocks, transform_layout padding and one-to-one maps,
storage_align of parameters. (Symbolic-size caches: tests/backend/test_symbolic_cache.py.)"""
import numpy as np
import pytest

import workbench as wb
from workbench.schedule import ScheduleArgumentError
from workbench.schedule.errors import DependenceError

from .programs import two_stage, two_stage_ref
from .util import refused, run

POISON = -7.0


def _build(func):
    pytest.importorskip("llvmlite")
    return wb.build(func, target="llvm")


# -- cache_write of a block whose writes are guarded by a predicate ---------------------------

@wb.prim_func
def first_50(A: wb.Buffer((64,), "float32"), B: wb.Buffer((64,), "float32")):
    for i_0, i_1 in wb.grid(8, 8):
        with wb.block("B"):
            vi = wb.axis.spatial(64, i_0 * 8 + i_1)
            wb.where(i_0 * 8 + i_1 < 50)
            B[vi] = A[vi] * 2.0


def _first_50_ref(a):
    out = np.full(64, POISON, "float32")
    out[:50] = a[:50] * 2.0
    return out


def _check_first_50(func):
    a = np.random.default_rng(0).standard_normal(64).astype("float32")
    for call in (lambda *args: run(func, *args), _build(func)):
        out = np.full(64, POISON, "float32")
        call(a, out)
        np.testing.assert_allclose(out, _first_50_ref(a), rtol=1e-6)   # B[50:] never written


def test_cache_write_of_predicated_block_copies_back_only_what_it_writes():
    @wb.prim_func
    def expected(A: wb.Buffer((64,), "float32"), B: wb.Buffer((64,), "float32")):
        B_local = wb.alloc_buffer((64,), "float32", scope="local")
        for i_0, i_1 in wb.grid(8, 8):
            with wb.block("B"):
                vi = wb.axis.spatial(64, i_0 * 8 + i_1)
                wb.where(i_0 * 8 + i_1 < 50)
                B_local[vi] = A[vi] * 2.0
        for ax0 in range(64):
            with wb.block("B_local"):
                v0 = wb.axis.spatial(64, ax0)
                if v0 < 50:
                    B[v0] = B_local[v0]

    sch = wb.Schedule(first_50)
    sch.cache_write(sch.get_block("B"), 0, "local")
    wb.assert_structural_equal(sch.func, expected.with_attr("global_symbol", sch.func.name))
    _check_first_50(sch.func)


def test_predicated_cache_write_moved_under_the_loop():
    sch = wb.Schedule(first_50)
    b = sch.get_block("B")
    copy = sch.cache_write(b, 0, "local")
    sch.reverse_compute_at(copy, sch.get_loops(b)[0])
    assert "if v0 < 50:" in sch.func.script()
    _check_first_50(sch.func)


def test_predicate_with_a_bound_on_the_other_side():
    """``i_1 < 50 - i_0 * 8`` is the same condition written differently."""
    @wb.prim_func
    def moved(A: wb.Buffer((64,), "float32"), B: wb.Buffer((64,), "float32")):
        for i_0, i_1 in wb.grid(8, 8):
            with wb.block("B"):
                vi = wb.axis.spatial(64, i_0 * 8 + i_1)
                wb.where(i_1 < 50 - i_0 * 8)
                B[vi] = A[vi] * 2.0

    sch = wb.Schedule(moved)
    sch.cache_write(sch.get_block("B"), 0, "local")
    _check_first_50(sch.func)


def test_cache_write_after_non_dividing_splits_needs_no_guard():
    """The predicate of a split that does not divide (here of i and of the reduction k) skips no
    element of the block's domain: the copy back stays a plain copy."""
    @wb.prim_func
    def mm(A: wb.Buffer((20, 10), "float32"), B: wb.Buffer((10, 12), "float32"), C: wb.Buffer((20, 12), "float32")):
        for i, j, k in wb.grid(20, 12, 10):
            with wb.block("C"):
                vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                with wb.init():
                    C[vi, vj] = 0.0
                C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]

    sch = wb.Schedule(mm)
    c = sch.get_block("C")
    i, _, k = sch.get_loops(c)
    io, _ = sch.split(i, factors=[None, 8])
    sch.split(k, factors=[None, 4])
    copy = sch.cache_write(c, 0, "local")
    assert "if " not in sch.func.script()
    sch.reverse_compute_at(copy, io)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((20, 10)).astype("float32"), rng.standard_normal((10, 12)).astype("float32")
    for call in (lambda *args: run(sch.func, *args), _build(sch.func)):
        out = np.full((20, 12), np.nan, "float32")
        call(a, b, out)
        np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-5)


def test_predicated_cache_write_2d():
    @wb.prim_func
    def left_cols(A: wb.Buffer((8, 32), "float32"), B: wb.Buffer((8, 32), "float32")):
        for i, j_0, j_1 in wb.grid(8, 4, 8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                vj = wb.axis.spatial(32, j_0 * 8 + j_1)
                wb.where(j_0 * 8 + j_1 < 20)
                B[vi, vj] = A[vi, vj] + 1.0

    sch = wb.Schedule(left_cols)
    sch.cache_write(sch.get_block("B"), 0, "local")
    a = np.random.default_rng(2).standard_normal((8, 32)).astype("float32")
    expected = np.full((8, 32), POISON, "float32")
    expected[:, :20] = a[:, :20] + 1.0
    for call in (lambda *args: run(sch.func, *args), _build(sch.func)):
        out = np.full((8, 32), POISON, "float32")
        call(a, out)
        np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_cache_write_refuses_a_predicate_not_on_the_iterators():
    @wb.prim_func
    def tile_heads(A: wb.Buffer((64,), "float32"), B: wb.Buffer((64,), "float32")):
        for i_0, i_1 in wb.grid(8, 8):
            with wb.block("B"):
                vi = wb.axis.spatial(64, i_0 * 8 + i_1)
                wb.where(i_1 < 5)
                B[vi] = A[vi] * 2.0

    sch = wb.Schedule(tile_heads)
    refused(sch, sch.cache_write, sch.get_block("B"), 0, "local", exc=DependenceError,
            match=r"cannot cache_write B of block B: its predicate `i_1 < 5` is not a condition on the block's")


# -- transform_layout: padding needs pad_value; maps must be one-to-one --------------------------

@wb.prim_func
def scale_100(A: wb.Buffer((100,), "float32"), C: wb.Buffer((100,), "float32")):
    B = wb.alloc_buffer((100,), "float32")
    for i in range(100):
        with wb.block("B"):
            vi = wb.axis.spatial(100, i)
            B[vi] = A[vi] * 2.0
    for i in range(100):
        with wb.block("C"):
            vi = wb.axis.spatial(100, i)
            C[vi] = B[vi] + 1.0


def test_transform_layout_padding_without_pad_value_is_refused():
    sch = wb.Schedule(scale_100)
    refused(sch, sch.transform_layout, sch.get_block("B"), ("write", 0), lambda i: (i // 16, i % 16),
            exc=ScheduleArgumentError, match=r"new shape \(7, 16\) has more elements than the old shape \(100,\).*"
                                             r"pass pad_value=")
    sch.transform_layout(sch.get_block("B"), ("write", 0), lambda i: (i // 16, i % 16), pad_value=0.0)
    a = np.random.default_rng(3).standard_normal(100).astype("float32")
    out = np.full(100, np.nan, "float32")
    run(sch.func, a, out)
    np.testing.assert_allclose(out, a * 2.0 + 1.0, rtol=1e-6)


def test_transform_layout_padding_of_a_symbolic_parameter_is_filled():
    n = wb.var("n")
    A = wb.te.placeholder((n, 32), "float32", name="A")
    B = wb.te.compute((n, 32), lambda i, j: A[i, j] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    refused(sch, sch.transform_layout, b, ("write", 0), lambda i, j: (i, j // 5, j % 5),
            exc=ScheduleArgumentError, match="pass pad_value=")
    sch.transform_layout(b, ("write", 0), lambda i, j: (i, j // 5, j % 5), pad_value=-1.0)
    a = np.random.default_rng(4).standard_normal((3, 32)).astype("float32")
    out = np.zeros((3, 7, 5), "float32")
    run(sch.func, a, out)
    flat = out.reshape(3, 35)
    np.testing.assert_allclose(flat[:, :32], a * 2.0, rtol=1e-6)
    assert (flat[:, 32:] == -1.0).all()


@pytest.mark.parametrize("index_map, pad, match", [
    (lambda i: (i // 2,), {}, "fewer elements than the old one, so the map cannot be one-to-one"),
    (lambda i: (i // 2, i // 2), {"pad_value": 0.0},
     "not one-to-one; i=0 and i=1 both give i // 2, i // 2 = 0, 0"),
    (lambda i: (i % 10, i % 10 + i // 50), {"pad_value": 0.0},
     r"not one-to-one; i=0 and i=10 both give i % 10, i % 10 \+ i // 50 = 0, 0"),
])
def test_transform_layout_refuses_maps_that_are_not_one_to_one_1d(index_map, pad, match):
    sch = wb.Schedule(scale_100)
    refused(sch, sch.transform_layout, sch.get_block("B"), ("write", 0), index_map, exc=ScheduleArgumentError,
            match=match, **pad)


@pytest.mark.parametrize("index_map, match", [
    (lambda i, j: (i,), "fewer elements than the old one, so the map cannot be one-to-one"),
    (lambda i, j: (i, i), "not one-to-one; it drops index j"),
    (lambda i, j: (i // 2, j * 4), "not one-to-one; i=0 and i=1 both give i // 2 = 0"),
])
def test_transform_layout_refuses_maps_that_are_not_one_to_one_2d(index_map, match):
    sch = wb.Schedule(two_stage)
    refused(sch, sch.transform_layout, sch.get_block("B"), ("write", 0), index_map, exc=ScheduleArgumentError,
            match=match, pad_value=0.0)


def test_transform_layout_one_to_one_maps_still_apply():
    sch = wb.Schedule(two_stage)
    sch.transform_layout(sch.get_block("B"), ("write", 0), lambda i, j: (j % 4, i, j // 4))
    a = np.random.default_rng(5).standard_normal((32, 32)).astype("float32")
    out = np.full((32, 32), np.nan, "float32")
    run(sch.func, a, out)
    np.testing.assert_allclose(out, two_stage_ref(a), rtol=1e-6)


# -- storage_align only on intermediate buffers --------------------------------------------------

def test_storage_align_of_a_parameter_is_refused():
    sch = wb.Schedule(two_stage)
    refused(sch, sch.storage_align, sch.get_block("C"), 0, axis=0, factor=32, offset=1, exc=ScheduleArgumentError,
            match="cannot storage_align C: it is a parameter of the function")
    sch.storage_align(sch.get_block("B"), 0, axis=0, factor=32, offset=1)   # B is intermediate
