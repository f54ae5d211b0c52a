"""The well-formedness verifier and the schedule's debug mode (WORKBENCH_VERIFY=1)."""
from __future__ import annotations

import os

from dataclasses import replace

import numpy as np
import pytest

import workbench as wb
from workbench.schedule.primitive import PRIMITIVES
from workbench import te
from workbench.ir import (
    Block, BlockRealize, Buffer, BufferRegion, BufferStore, For, IntImm, IterVar, LetStmt, PrimFunc, Range,
    SeqStmt, Var,
)
from workbench.ir.interpreter import evaluate
from workbench.ir.op_library import corpus
from workbench.ir.verify import (
    VERIFY_AFTER_PRIMITIVES, IllFormedProgramError, WellFormedError, verify_well_formed,
)
from workbench.schedule.state import Outcome


def func(body, *buffers) -> PrimFunc:
    params = tuple(Var(b.name + "_h", "handle") for b in buffers)
    root = BlockRealize((), True, Block("root", body=body))
    return PrimFunc(params, dict(zip(params, buffers)), root, {"global_symbol": "f"})


def block(name, out, value_fn, loop_vars, extents, *, iter_vars=None, bindings=None, reads=()):
    """``out[v...] = value_fn(*v)`` in a block with one spatial iter var per loop, bound to the loops."""
    ivs = iter_vars or [Var("v" + lv.name) for lv in loop_vars]
    store = BufferStore(out, value_fn(*ivs), tuple(ivs))
    writes = (BufferRegion(out, tuple(Range(v, 1) for v in ivs)),)
    blk = Block(name, tuple(IterVar(v, Range(0, e)) for v, e in zip(ivs, extents)), tuple(reads), writes, store)
    return BlockRealize(tuple(bindings or loop_vars), True, blk)


def nest(loop_vars, extents, body):
    for v, e in reversed(list(zip(loop_vars, extents))):
        body = For(v, 0, e, "serial", body)
    return body


def problems_of(f) -> list[str]:
    with pytest.raises(WellFormedError) as info:
        verify_well_formed(f)
    assert isinstance(info.value, ValueError)
    return info.value.problems


A, B = Buffer("A", (8,), "float32"), Buffer("B", (8,), "float32")


# --- well-formed programs pass -------------------------------------------------------------------


@pytest.mark.parametrize("case", corpus(), ids=lambda c: c.name)
def test_every_operator_of_the_corpus_is_well_formed(case):
    verify_well_formed(case.func)


def test_a_scheduled_matmul_stays_well_formed():
    a = te.placeholder((64, 64), "float32", name="A")
    b = te.placeholder((64, 64), "float32", name="B")
    k = te.reduce_axis(64, name="k")
    c = te.compute((64, 64), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    sch = wb.Schedule(wb.create_prim_func([a, b, c]))
    blk = sch.get_block("C")
    i, _, kk = sch.get_loops(blk)
    io, ii = sch.split(i, factors=[None, 16])
    sch.reorder(io, kk, ii)
    sch.cache_write(blk, 0, "local")
    sch.decompose_reduction(blk, kk)
    for step in sch.history:
        verify_well_formed(step.func)


def test_the_padding_reads_of_a_guarded_block_are_not_out_of_bounds():
    # x[v - 1] under if_then_else(v >= 1, ...): the region sticks out in one iteration only (as in TVM)
    x = te.placeholder((6,), "float32", name="x")
    y = te.compute((8,), lambda v: te.if_then_else(te.all(v >= 1, v < 7), x[v - 1], 0.0), name="y")
    verify_well_formed(wb.create_prim_func([x, y]))


# --- each invariant ----------------------------------------------------------------------------------


def test_duplicate_block_names():
    i, j = Var("i"), Var("j")
    body = SeqStmt((nest([i], [8], block("B", B, lambda v: A[v], [i], [8])),
                    nest([j], [8], block("B", B, lambda v: B[v] * 2.0, [j], [8]))))
    assert problems_of(func(body, A, B)) == ["2 blocks are named 'B'; block names must be unique"]


def test_a_loop_reusing_the_variable_of_an_enclosing_loop():
    i = Var("i")
    C = Buffer("C", (8, 8), "float32")
    body = For(i, 0, 8, "serial", For(i, 0, 8, "serial", BufferStore(C, 0.0, (i, i))))
    f = PrimFunc((Var("C_h", "handle"),), {}, body)
    f = f.replace(buffer_map={f.params[0]: C})
    assert problems_of(f) == ["loop i rebinds the variable i, already bound as loop i, in the function body"]


def test_a_loop_reusing_the_variable_of_an_earlier_loop():
    i = Var("i")
    body = SeqStmt((For(i, 0, 8, "serial", BufferStore(A, 0.0, (i,))),
                    For(i, 0, 8, "serial", BufferStore(B, 0.0, (i,)))))
    (problem,) = problems_of(func(body, A, B))
    assert problem.startswith("loop i rebinds the variable i")


def test_an_iteration_variable_shared_by_two_blocks():
    i, j, v = Var("i"), Var("j"), Var("v")
    body = SeqStmt((nest([i], [8], block("B1", A, lambda x: 1.0, [i], [8], iter_vars=[v])),
                    nest([j], [8], block("B2", B, lambda x: 2.0, [j], [8], iter_vars=[v]))))
    assert problems_of(func(body, A, B)) == [
        ("iteration variable v of block 'B2' rebinds the variable v, already bound as iteration variable v "
         "of block 'B1', in block 'B2'")]


def test_a_binding_that_uses_a_let_variable_instead_of_a_loop():
    i, t = Var("i"), Var("t")
    body = nest([i], [8], LetStmt(t, i, block("B", B, lambda v: A[v], [i], [8], bindings=[t])))
    (problem,) = problems_of(func(body, A, B))
    assert "the binding of vi in block 'B' uses t, which is not a loop variable of an enclosing loop" in problem


def test_a_block_body_using_an_outer_loop_directly():
    i = Var("i")
    vi = Var("vi")
    blk = Block("B", (IterVar(vi, Range(0, 8)),), (), (BufferRegion(B, (Range(vi, 1),)),),
                BufferStore(B, A[i], (vi,)))
    body = nest([i], [8], BlockRealize((i,), True, blk))
    (problem,) = problems_of(func(body, A, B))
    assert "uses the loop variable i of a loop outside block 'B'" in problem


def test_an_undefined_variable():
    i, k = Var("i"), Var("k")
    body = nest([i], [8], block("B", B, lambda v: A[k], [i], [8]))
    (problem,) = problems_of(func(body, A, B))
    assert problem == "the store to B uses the variable k, which is not defined there, in block 'B'"


def test_a_buffer_allocated_by_another_block():
    i, j = Var("i"), Var("j")
    T = Buffer("T", (8,), "float32")
    first = nest([i], [8], block("B1", T, lambda v: A[v], [i], [8]))
    owner = BlockRealize((), True, Block("owner", body=first, alloc_buffers=(T,)))
    second = nest([j], [8], block("B2", B, lambda v: T[v], [j], [8]))
    problems = problems_of(func(SeqStmt((owner, second)), A, B))
    assert any("uses the buffer T, which is not declared there" in p and "block 'B2'" in p for p in problems)


def test_constant_indices_outside_the_shape():
    i = Var("i")
    body = SeqStmt((BufferStore(A, B[9], (0,)), nest([i], [8], BufferStore(B, 0.0, (i,))),
                    BufferStore(B, 1.0, (IntImm(-1),))))
    f = PrimFunc((Var("A_h", "handle"), Var("B_h", "handle")), {}, body)
    f = f.replace(buffer_map=dict(zip(f.params, (A, B))))
    assert problems_of(f) == [
        "B[9]: index 9 of dimension 0 is outside the shape (8,), in the function body",
        "B[-1]: index -1 of dimension 0 is outside the shape (8,), in the function body"]


def test_a_region_that_always_reaches_outside_the_buffer():
    i = Var("i")
    reads = (BufferRegion(A, (Range(Var("vi") * 0 + 4, 8),)),)   # A[4:12] of an 8-element buffer
    body = nest([i], [8], block("B", B, lambda v: A[v], [i], [8], reads=reads))
    (problem,) = problems_of(func(body, A, B))
    assert problem.startswith("the read region A[4:12] always reaches outside the shape (8,) in dimension 0")


def test_every_problem_is_listed_in_one_error():
    i, k = Var("i"), Var("k")
    body = SeqStmt((nest([i], [8], block("B", B, lambda v: A[k], [i], [8])),
                    nest([i], [8], block("B", B, lambda v: A[v], [i], [8]))))
    with pytest.raises(WellFormedError) as info:
        verify_well_formed(func(body, A, B))
    text = str(info.value)
    assert text.startswith("function f is not well formed (3 problems):\n  - ")
    assert "variable k" in text and "rebinds the variable i" in text and "2 blocks are named 'B'" in text


def test_verify_takes_a_primfunc():
    with pytest.raises(TypeError, match="checks a PrimFunc, got IRModule"):
        verify_well_formed(wb.IRModule({}))


# --- the schedule's debug mode ---------------------------------------------------------------------------


def test_the_suite_runs_with_verification_on():
    # tests/conftest.py sets WORKBENCH_VERIFY=1 before workbench is imported; the flag is read then
    assert VERIFY_AFTER_PRIMITIVES == (os.environ.get("WORKBENCH_VERIFY", "").strip() not in ("", "0"))


def _ill_formed_split(sch, loop, factors, preserve_unit_iters=True):
    """A broken 'split': the new program reuses the loop variable in a nested loop."""
    f = sch.func
    loop_node = sch.get(loop)
    bad = For(loop_node.loop_var, 0, 1, "serial", loop_node)
    from workbench.ir import Mutator

    class Wrap(Mutator):
        def visit_For(self, s):
            return bad if s is loop_node else self.generic_visit(s)

    return Outcome(func=f.replace(body=Wrap().visit(f.body)), outputs=None)


def test_a_primitive_producing_an_ill_formed_program_is_an_internal_error(monkeypatch):
    x = te.placeholder((16,), "float32", name="x")
    y = te.compute((16,), lambda v: x[v] + 1.0, name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    (loop,) = sch.get_loops(sch.get_block("y"))
    monkeypatch.setattr("workbench.ir.verify.VERIFY_AFTER_PRIMITIVES", True)
    monkeypatch.setitem(PRIMITIVES, "split", replace(PRIMITIVES["split"], fn=_ill_formed_split))
    with pytest.raises(IllFormedProgramError) as info:
        sch.split(loop, factors=[None, 4])
    assert isinstance(info.value, AssertionError)
    assert str(info.value).startswith("internal error: the primitive split produced an ill-formed program")
    assert "loop v rebinds the variable v, already bound as loop v" in str(info.value)
    assert len(sch.history) == 1   # the schedule is unchanged
    a, b = np.arange(16, dtype="float32"), np.zeros(16, "float32")
    evaluate(sch.func, a, b)
    np.testing.assert_allclose(b, a + 1.0)


def test_without_the_debug_mode_the_verifier_is_not_run(monkeypatch):
    x = te.placeholder((16,), "float32", name="x")
    y = te.compute((16,), lambda v: x[v] + 1.0, name="y")
    sch = wb.Schedule(wb.create_prim_func([x, y]))
    (loop,) = sch.get_loops(sch.get_block("y"))
    monkeypatch.setattr("workbench.ir.verify.VERIFY_AFTER_PRIMITIVES", False)
    monkeypatch.setitem(PRIMITIVES, "split", replace(PRIMITIVES["split"], fn=_ill_formed_split))
    sch.split(loop, factors=[None, 4])
    assert len(sch.history) == 2
