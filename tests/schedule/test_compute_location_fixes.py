"""Fixes to compute_at / reverse_compute_at / reverse_compute_inline from an outside review and a fuzzer,
and TVM parity: several writes, reshaping consumers, regions bounded by predicates and conditions."""
import numpy as np
import pytest

import workbench as wb
from workbench.ir.arith import infer_block_access_regions
from workbench.schedule import (ComputeLocationError, DependenceError, InlineError, RegionCoverError,
                                ScheduleArgumentError)

from .programs import two_stage, two_stage_ref
from .util import check_llvm, check_numeric, refused, run


@wb.prim_func
def concat(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32"), C: wb.Buffer((16,), "float32")):
    T = wb.alloc_buffer((16,), "float32")
    for i in range(8):
        with wb.block("T0"):
            vi = wb.axis.spatial(8, i)
            T[vi] = A[vi]
    for i in range(8):
        with wb.block("T1"):
            vi = wb.axis.spatial(8, i)
            T[vi + 8] = B[vi]
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = T[vi] * 2.0


def concat_ref(a, b):
    return np.concatenate([a, b]) * 2.0


@wb.prim_func
def padded(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
    P = wb.alloc_buffer((10,), "float32")
    for i in range(10):
        with wb.block("border"):
            vi = wb.axis.spatial(10, i)
            P[vi] = 0.0
    for i in range(8):
        with wb.block("interior"):
            vi = wb.axis.spatial(8, i)
            P[vi + 1] = A[vi]
    for i in range(8):
        with wb.block("C"):
            vi = wb.axis.spatial(8, i)
            C[vi] = P[vi] + P[vi + 1] + P[vi + 2]


def padded_ref(a):
    p = np.pad(a, 1)
    return p[:-2] + p[1:-1] + p[2:]


def _both(func, ref, shapes_in, shape_out):
    check_numeric(func, ref, shapes_in, shape_out)
    check_llvm(func, ref, shapes_in, shape_out)


# 1. blocks that each write part of one buffer ---------------------------------------------------

def test_compute_at_refuses_border_block_that_an_interior_block_overwrites():
    sch = wb.Schedule(padded)
    (i,) = sch.get_loops(sch.get_block("C"))
    err = refused(sch, sch.compute_at, sch.get_block("border"), i, exc=DependenceError)
    assert err.message.startswith("cannot compute block border at loop i: block interior writes P too")


def test_compute_at_interior_block_of_padding_is_tight_and_correct():
    sch = wb.Schedule(padded)
    (i,) = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("interior"), i)
    # P[vi + 1] is matched to the stencil's window: three rows per iteration, guarded at the edges
    assert [sch.get(lp).extent.value for lp in sch.get_loops(sch.get_block("interior"))] == [8, 3]
    _both(sch.func, padded_ref, [(8,)], (8,))


@pytest.mark.parametrize("order", [("T0", "T1"), ("T1", "T0")])
def test_compute_at_halves_of_a_concatenation(order):
    sch = wb.Schedule(concat)
    for name in order:
        (i,) = sch.get_loops(sch.get_block("C"))
        sch.compute_at(sch.get_block(name), i)
    for name in order:
        assert len(sch.get_loops(sch.get_block(name))) == 1   # one element per iteration of i
    _both(sch.func, concat_ref, [(8,), (8,)], (16,))


def test_compute_at_refuses_overlapping_writer_between_block_and_loop():
    @wb.prim_func
    def overwrite(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        T = wb.alloc_buffer((8,), "float32")
        for i in range(8):
            with wb.block("T0"):
                vi = wb.axis.spatial(8, i)
                T[vi] = A[vi]
        for i in range(4):
            with wb.block("T1"):
                vi = wb.axis.spatial(4, i)
                T[vi + 2] = 0.0
        for i in range(8):
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = T[vi] + 1.0

    sch = wb.Schedule(overwrite)
    (i,) = sch.get_loops(sch.get_block("C"))
    refused(sch, sch.compute_at, sch.get_block("T0"), i, exc=DependenceError, match="block T1 writes T too")
    sch.compute_at(sch.get_block("T1"), i)          # T0 stays first: the order of the writes is kept

    def ref(a):
        t = a.copy()
        t[2:6] = 0.0
        return t + 1.0
    _both(sch.func, ref, [(8,)], (8,))


def test_compute_at_refuses_block_writing_an_output_read_only_in_part():
    @wb.prim_func
    def half(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32"), C: wb.Buffer((8,), "float32")):
        for i in range(16):
            with wb.block("B"):
                vi = wb.axis.spatial(16, i)
                B[vi] = A[vi] * 2.0
        for i in range(8):
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = B[vi] + 1.0

    sch = wb.Schedule(half)
    (i,) = sch.get_loops(sch.get_block("C"))
    refused(sch, sch.compute_at, sch.get_block("B"), i, exc=ComputeLocationError,
            match="it writes B, an output of the function")


def test_compute_at_block_writing_an_output_read_whole_is_allowed():
    @wb.prim_func
    def both_out(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32"), C: wb.Buffer((16,), "float32")):
        for i in range(16):
            with wb.block("B"):
                vi = wb.axis.spatial(16, i)
                B[vi] = A[vi] * 2.0
        for i in range(16):
            with wb.block("C"):
                vi = wb.axis.spatial(16, i)
                C[vi] = B[vi] + 1.0

    sch = wb.Schedule(both_out)
    (i,) = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("B"), i)
    a = np.random.default_rng(0).standard_normal(16).astype("float32")
    b, c = np.zeros(16, "float32"), np.zeros(16, "float32")
    run(sch.func, a, b, c)
    np.testing.assert_allclose(b, a * 2.0, rtol=1e-6)
    np.testing.assert_allclose(c, a * 2.0 + 1.0, rtol=1e-6)


# 2. a block handle where a loop is expected ------------------------------------------------------

def test_compute_at_with_a_block_handle_as_the_loop_is_refused():
    sch = wb.Schedule(two_stage)
    b, c = sch.get_block("B"), sch.get_block("C")
    err = refused(sch, sch.compute_at, b, c, exc=ScheduleArgumentError)
    assert "the second argument of compute_at must be a loop handle" in err.message
    refused(sch, sch.reverse_compute_at, c, b, exc=ScheduleArgumentError,
            match="the second argument of reverse_compute_at must be a loop handle")
    (i, _) = sch.get_loops(c)
    refused(sch, sch.compute_at, i, i, exc=ScheduleArgumentError, match="first argument of compute_at")


def test_root_location_is_still_a_no_op():
    sch = wb.Schedule(two_stage)
    b = sch.get_block("B")
    root = sch.sample_compute_location(b, decision=-1)
    before = sch.func
    sch.compute_at(b, root)
    sch.reverse_compute_at(sch.get_block("C"), root)
    assert sch.func is before


# 3. reverse_compute_inline into a smaller producer -------------------------------------------------

@wb.prim_func
def concat_one_block(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32"), C: wb.Buffer((16,), "float32")):
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = wb.if_then_else(vi < 8, A[vi], B[vi - 8])


def test_reverse_compute_inline_refuses_producer_smaller_than_the_consumer():
    sch = wb.Schedule(concat_one_block)
    c = sch.get_block("C")
    sch.cache_read(c, 0, "global")
    err = refused(sch, sch.reverse_compute_inline, c, exc=InlineError)
    assert "it reads A_global[0:16] in dimension 0, but its producer A_global writes A_global[0:8]" in err.message
    check_numeric(sch.func, lambda a, b: np.concatenate([a, b]), [(8,), (8,)], (16,))


def test_reverse_compute_inline_refuses_producer_larger_than_the_consumer():
    @wb.prim_func
    def head(A: wb.Buffer((16,), "float32"), C: wb.Buffer((8,), "float32")):
        B = wb.alloc_buffer((16,), "float32")
        for i in range(16):
            with wb.block("B"):
                vi = wb.axis.spatial(16, i)
                B[vi] = A[vi] * 2.0
        for i in range(8):
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = B[vi] + 1.0

    sch = wb.Schedule(head)
    refused(sch, sch.reverse_compute_inline, sch.get_block("C"), exc=InlineError,
            match=r"it reads B\[0:8\] in dimension 0, but its producer B writes B\[0:16\]")


def test_reverse_compute_at_refuses_consumer_reading_more_than_the_producer_writes():
    sch = wb.Schedule(concat_one_block)
    c = sch.get_block("C")
    cache = sch.cache_read(c, 0, "global")
    (ax0,) = sch.get_loops(cache)
    refused(sch, sch.reverse_compute_at, c, ax0, exc=RegionCoverError,
            match="it reads A_global\\[0:16\\] in dimension 0, but its producer A_global writes less of it")


# 4. parity with TVM ---------------------------------------------------------------------------

@wb.prim_func
def two_outputs(A: wb.Buffer((16, 16), "float32"), C: wb.Buffer((16, 16), "float32")):
    B = wb.alloc_buffer((16, 16), "float32")
    B2 = wb.alloc_buffer((16, 16), "float32")
    for i, j in wb.grid(16, 16):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] * 2.0
            B2[vi, vj] = A[vi, vj] * 3.0
    for i, j in wb.grid(16, 16):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = B[vi, vj] + B2[vj, vi]


def two_outputs_ref(a):
    return a * 2.0 + (a * 3.0).T


def test_compute_at_block_with_two_writes():
    sch = wb.Schedule(two_outputs)
    i, j = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("B"), j)
    # C reads B[i, j] and B2[j, i]: the union over both writes is the whole 16 x 16 square
    assert [sch.get(lp).extent.value for lp in sch.get_loops(sch.get_block("B"))] == [16, 16, 16, 16]
    _both(sch.func, two_outputs_ref, [(16, 16)], (16, 16))

    sch = wb.Schedule(two_outputs)
    i, j = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("B"), i)
    _both(sch.func, two_outputs_ref, [(16, 16)], (16, 16))


def test_reverse_compute_at_block_with_two_writes():
    @wb.prim_func
    def split_out(A: wb.Buffer((16, 16), "float32"), C: wb.Buffer((16, 16), "float32"),
                  D: wb.Buffer((16, 16), "float32")):
        B = wb.alloc_buffer((16, 16), "float32")
        for i, j in wb.grid(16, 16):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0
        for i, j in wb.grid(16, 16):
            with wb.block("CD"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[vi, vj] + 1.0
                D[vi, vj] = B[vi, vj] - 1.0

    sch = wb.Schedule(split_out)
    i, j = sch.get_loops(sch.get_block("B"))
    sch.reverse_compute_at(sch.get_block("CD"), i)
    assert [sch.get(lp).extent.value for lp in sch.get_loops(sch.get_block("CD"))] == [16, 16]
    a = np.random.default_rng(0).standard_normal((16, 16)).astype("float32")
    for out in ("interp", "llvm"):
        c, d = np.zeros((16, 16), "float32"), np.zeros((16, 16), "float32")
        if out == "interp":
            run(sch.func, a, c, d)
        else:
            wb.build(sch.mod, target="llvm")(a, c, d)
        np.testing.assert_allclose(c, a * 2.0 + 1.0, rtol=1e-6)
        np.testing.assert_allclose(d, a * 2.0 - 1.0, rtol=1e-6)


@wb.prim_func
def reshape(A: wb.Buffer((4, 4), "float32"), C: wb.Buffer((16,), "float32")):
    B = wb.alloc_buffer((4, 4), "float32")
    for i, j in wb.grid(4, 4):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] * 2.0
    for i in range(16):
        with wb.block("C"):
            vi = wb.axis.spatial(16, i)
            C[vi] = B[vi // 4, vi % 4] + 1.0


def test_reverse_compute_inline_reshape():
    @wb.prim_func
    def expected(A: wb.Buffer((4, 4), "float32"), C: wb.Buffer((16,), "float32")):
        for i, j in wb.grid(4, 4):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi * 4 + vj] = A[vi, vj] * 2.0 + 1.0

    from .util import assert_program

    sch = wb.Schedule(reshape)
    sch.reverse_compute_inline(sch.get_block("C"))
    assert_program(sch.func, expected)
    _both(sch.func, lambda a: (a * 2.0 + 1.0).reshape(16), [(4, 4)], (16,))


def test_reverse_compute_inline_flatten_and_fused_split():
    @wb.prim_func
    def regroup(A: wb.Buffer((2, 8), "float32"), C: wb.Buffer((4, 4), "float32")):
        B = wb.alloc_buffer((2, 8), "float32")
        for i, j in wb.grid(2, 8):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = A[vi, vj] * 2.0
        for i, j in wb.grid(4, 4):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[(vi * 4 + vj) // 8, (vi * 4 + vj) % 8] + A[(vi * 4 + vj) // 8, (vi * 4 + vj) % 8]

    sch = wb.Schedule(regroup)
    sch.reverse_compute_inline(sch.get_block("C"))
    assert [b.name for b in [sch.get(sch.get_block("B"))]] == ["B"]
    _both(sch.func, lambda a: (a * 3.0).reshape(4, 4), [(2, 8)], (4, 4))


def test_reverse_compute_inline_refuses_non_invertible_read():
    @wb.prim_func
    def pairs(A: wb.Buffer((8,), "float32"), C: wb.Buffer((16,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = A[vi] * 2.0
        for i in range(16):
            with wb.block("C"):
                vi = wb.axis.spatial(16, i)
                C[vi] = B[vi // 2] + 1.0

    sch = wb.Schedule(pairs)
    refused(sch, sch.reverse_compute_inline, sch.get_block("C"), exc=InlineError,
            match="not an invertible affine map of its iteration variables")


def test_reverse_compute_inline_keeps_a_domain_predicate_and_refuses_a_stronger_one():
    sch = wb.Schedule(two_stage)
    i, j = sch.get_loops(sch.get_block("C"))
    sch.split(j, factors=[None, 5])                 # predicate j_0 * 5 + j_1 < 32: just the domain
    sch.reverse_compute_inline(sch.get_block("C"))
    _both(sch.func, two_stage_ref, [(32, 32)], (32, 32))

    @wb.prim_func
    def guarded(A: wb.Buffer((32,), "float32"), C: wb.Buffer((32,), "float32")):
        B = wb.alloc_buffer((32,), "float32")
        for i in range(32):
            with wb.block("B"):
                vi = wb.axis.spatial(32, i)
                B[vi] = A[vi] * 2.0
        for i in range(32):
            with wb.block("C"):
                vi = wb.axis.spatial(32, i)
                wb.where(i < 20)
                C[vi] = B[vi] + 1.0

    sch = wb.Schedule(guarded)
    refused(sch, sch.reverse_compute_inline, sch.get_block("C"), exc=InlineError, match="its predicate")


def test_compute_at_non_dividing_split_gives_a_tight_region():
    sch = wb.Schedule(two_stage)
    i, j = sch.get_loops(sch.get_block("C"))
    sch.split(j, factors=[None, 5])                 # 7 * 5 = 35 > 32
    b = sch.get_block("B")
    sch.compute_at(b, i)
    assert [sch.get(lp).extent.value for lp in sch.get_loops(b)] == [32, 32]
    assert "ax0 < 32" not in sch.func.script()
    _both(sch.func, two_stage_ref, [(32, 32)], (32, 32))


def test_compute_at_uses_a_predicate_stronger_than_the_domain():
    @wb.prim_func
    def first100(A: wb.Buffer((128,), "float32"), C: wb.Buffer((128,), "float32")):
        B = wb.alloc_buffer((128,), "float32")
        for i in range(128):
            with wb.block("B"):
                vi = wb.axis.spatial(128, i)
                B[vi] = A[vi] * 2.0
        for o in range(1):
            for i in range(128):
                with wb.block("C"):
                    vi = wb.axis.spatial(128, i)
                    wb.where(i < 100)
                    C[vi] = B[vi] + 1.0

    sch = wb.Schedule(first100)
    o, _ = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("B"), o)
    assert [sch.get(lp).extent.value for lp in sch.get_loops(sch.get_block("B"))] == [1, 100]
    a = np.random.default_rng(0).standard_normal(128).astype("float32")
    c = np.zeros(128, "float32")
    run(sch.func, a, c)
    np.testing.assert_allclose(c[:100], a[:100] * 2.0 + 1.0, rtol=1e-6)


def test_region_inference_bounded_by_predicate_and_conditions():
    @wb.prim_func
    def guarded(A: wb.Buffer((100,), "float32"), B: wb.Buffer((100,), "float32")):
        for i, j in wb.grid(4, 32):
            with wb.block("B"):
                vi = wb.axis.spatial(100, i * 32 + j)
                wb.where(i * 32 + j < 100)
                B[vi] = A[vi] * 2.0

    reads, writes = infer_block_access_regions(guarded.body.block)
    assert [str(r) for r in reads] == ["A[0:100]"] and [str(w) for w in writes] == ["B[0:100]"]

    from workbench.ir import Block, BufferStore, For, IfThenElse, IterVar, Var
    from workbench.ir.expr import Call

    A, C = wb.ir.Buffer("A", (100,)), wb.ir.Buffer("C", (4, 32))
    vo, j = Var("vo"), Var("j")
    idx = vo * 32 + j
    body = For(j, 0, 32, "serial", IfThenElse(idx < 100, BufferStore(C, A[idx], (vo, j))))
    reads, _ = infer_block_access_regions(Block("b", (IterVar(vo, 4),), body=body))
    assert str(reads[0]) == "A[vo * 32:vo * 32 + 32]"      # symbolic: the condition cannot narrow it
    body = For(j, 0, 32, "serial", BufferStore(C, Call("if_then_else", (j < 8, A[j + 4], A[j]), "float32"),
                                               (vo, j)))
    reads, _ = infer_block_access_regions(Block("b", (IterVar(vo, 4),), body=body))
    assert str(reads[0]) == "A[4:32]"                        # A[4:12] under j < 8, A[8:32] otherwise
