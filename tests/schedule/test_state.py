"""Schedule state: history, undo, fork, handles that follow their loops and blocks, errors."""
import pytest

import workbench as wb
from workbench.schedule import InvalidHandleError, ScheduleArgumentError, ScheduleError

from .programs import matmul, mm_relu16, mm_relu_ref, two_stage
from .util import check_numeric, refused


def test_exports():
    assert wb.Schedule is wb.schedule.Schedule
    assert issubclass(wb.ScheduleError, ValueError)
    for name in ["InvalidHandleError", "ScheduleArgumentError", "NotAChainError", "ReductionLoopError",
                 "ComputeLocationError", "InlineError", "DependenceError", "BlockNotFoundError"]:
        assert issubclass(getattr(wb.schedule, name), wb.ScheduleError)
    assert "matmul_add_4x4" in wb.schedule.list_tensor_intrins().names()


def test_history_undo_fork():
    sch = wb.Schedule(matmul)
    assert len(sch.history) == 1 and sch.history[0].func is matmul
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, 4])
    after_split = sch.func
    sch.reorder(io, j, k, ii)
    assert [s.name for s in sch.history] == ["initial", "split", "reorder"]
    assert sch.history[1].func is after_split
    # fork is a cheap copy: it shares the programs and goes its own way
    other = sch.fork()
    other.parallel(io)
    assert len(other.history) == 4 and len(sch.history) == 3
    assert sch.get(io).kind.value == "serial" and other.get(io).kind.value == "parallel"
    sch.undo()
    assert sch.func is after_split and len(sch.history) == 2
    assert len(sch.trace) == 3  # get_block, get_loops, split (reorder undone)
    sch.undo()
    assert sch.func is matmul
    with pytest.raises(ScheduleError, match="nothing to undo"):
        sch.undo()
    # the fork still has its program and still runs correctly
    check_numeric(other.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_handles_follow_their_loops_across_primitives():
    sch = wb.Schedule(matmul)
    b = sch.get_block("C")
    i, j, k = sch.get_loops(b)
    sch.reorder(k, j, i)
    sch.split(j, factors=[None, 4])  # consumes j, leaves i and k alone
    assert sch.get(i).loop_var.name == "i" and sch.get(k).loop_var.name == "k"
    assert [sch.get(l).loop_var.name for l in sch.get_loops(b)] == ["k", "j_0", "j_1", "i"]
    assert sch.get(b).name == "C"
    err = refused(sch, sch.vectorize, j, exc=InvalidHandleError)
    assert "loop j was already split by step 2 (split)" in err.message


def test_undone_handles_are_refused():
    sch = wb.Schedule(matmul)
    (i, j, k) = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, 4])
    sch.undo()
    err = refused(sch, sch.parallel, io, exc=InvalidHandleError)
    assert "not known to this schedule" in err.message


def test_block_handle_after_inline_names_the_step():
    sch = wb.Schedule(two_stage)
    b = sch.get_block("B")
    sch.compute_inline(b)
    err = refused(sch, sch.get_loops, b, exc=InvalidHandleError)
    assert "block B was already inlined by step 1 (compute_inline)" in err.message


def test_wrong_handle_kinds():
    sch = wb.Schedule(matmul)
    b = sch.get_block("C")
    i, j, k = sch.get_loops(b)
    refused(sch, sch.split, b, factors=[None, 4], exc=ScheduleArgumentError, match="must be a loop handle")
    refused(sch, sch.get_loops, i, exc=ScheduleArgumentError, match="must be a block handle")
    refused(sch, sch.parallel, "i", exc=ScheduleArgumentError, match="must be a loop handle")


def test_error_shows_program_with_marker_and_html():
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    with pytest.raises(wb.ScheduleError) as info:
        sch.vectorize(k)
    err = info.value
    first = str(err).splitlines()[0]
    assert first.startswith("cannot vectorize loop k: block C uses it for its reduction axis")
    marked = [l for l in str(err).splitlines() if "# <-- here" in l]
    assert len(marked) == 1 and " k" in marked[0]
    assert "<pre>" in err._repr_html_()


def test_schedule_of_module_and_seed():
    mod = wb.IRModule({"mm": matmul})
    sch = wb.Schedule(mod)
    assert "mm" in sch.mod and sch.func is matmul
    with pytest.raises(wb.ScheduleError, match="PrimFunc or an IRModule"):
        wb.Schedule(42)


def test_full_sequence_stays_correct():
    sch = wb.Schedule(mm_relu16)
    y = sch.get_block("Y")
    i, j, k = sch.get_loops(y)
    j0, j1 = sch.split(j, factors=[None, 4])
    sch.reorder(j0, k, j1)
    sch.reverse_compute_at(sch.get_block("C"), j0)
    sch.decompose_reduction(y, k)
    sch.vectorize(j1)
    check_numeric(sch.func, mm_relu_ref, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    # every step of the history is a valid program computing the same thing
    for step in sch.history:
        check_numeric(step.func, mm_relu_ref, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_history_steps_say_what_they_did():
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.split(i, factors=[None, 4])
    sch.parallel(sch.get_loops(sch.get_block("C"))[0])
    assert [s.text for s in sch.history[1:]] == ["split(loop i, factors=[None, 4])", "parallel(loop i_0)"]
    assert "l4, l5 = sch.split(l1, factors=[None, 4])" in str(sch.trace)   # the trace keeps its replayable form


def test_scheduling_one_function_of_a_module_keeps_the_others():
    from workbench import te

    A = te.placeholder((8,), "float32", name="A")
    f = wb.create_prim_func([A, te.compute((8,), lambda i: A[i] * 2.0, name="B")]).with_attr("global_symbol", "f")
    g = wb.create_prim_func([A, te.compute((8,), lambda i: A[i] + 1.0, name="C")]).with_attr("global_symbol", "g")
    mod = wb.IRModule({"f": f, "g": g})
    sch = wb.Schedule(mod, func_name="g")
    (i,) = sch.get_loops(sch.get_block("C"))
    sch.split(i, factors=[None, 4])
    assert sorted(sch.mod.functions) == ["f", "g"]
    assert sch.mod["f"] is f and sch.mod["g"] is sch.func
    assert sorted(sch.fork().mod.functions) == ["f", "g"]
