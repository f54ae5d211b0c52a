"""The trace: printed as Python that replays, and replay with changed decisions."""
import workbench as wb
from workbench.ir.structural import assert_structural_equal

from .programs import matmul, mm_relu16


def _schedule():
    sch = wb.Schedule(mm_relu16)
    y = sch.get_block("Y")
    i, j, k = sch.get_loops(y)
    j0, j1 = sch.split(j, factors=[None, 4])
    sch.reorder(j0, k, j1)
    sch.reverse_compute_at(sch.get_block("C"), j0)
    sch.decompose_reduction(y, k)
    sch.parallel(i)
    return sch


def test_trace_prints_python():
    sch = _schedule()
    text = str(sch.trace)
    assert text.splitlines()[:4] == [
        'b0 = sch.get_block("Y")',
        "l1, l2, l3 = sch.get_loops(b0)",
        "l4, l5 = sch.split(l2, factors=[None, 4])",
        "sch.reorder(l4, l3, l5)",
    ]
    assert "sch.decompose_reduction(b0, l3)" in text


def test_printed_trace_reproduces_the_schedule():
    sch = _schedule()
    replay = wb.Schedule(mm_relu16)
    exec(str(sch.trace), {"sch": replay})
    assert_structural_equal(replay.func, sch.func)


def test_trace_apply():
    sch = _schedule()
    again = sch.trace.apply(mm_relu16)
    assert_structural_equal(again.func, sch.func)
    assert len(again.history) == len(sch.history)


def test_trace_with_sampling_and_changed_decision():
    sch = wb.Schedule(matmul, seed=3)
    b = sch.get_block("C")
    i, j, k = sch.get_loops(b)
    t = sch.sample_perfect_tile(i, n=2, max_innermost_factor=8)
    sch.split(i, factors=t)
    text = str(sch.trace)
    assert "sch.sample_perfect_tile(l1, n=2, max_innermost_factor=8, decision=[" in text
    assert "sch.split(l1, [v4, v5])" in text
    # replay as is: same program
    assert_structural_equal(sch.trace.apply(matmul).func, sch.func)
    # replay with another decision: the split follows it
    (idx,) = sch.trace.decisions
    other = sch.trace.apply(matmul, decisions={idx: [2, 8]})
    extents = [other.get(l).extent.value for l in other.get_loops(other.get_block("C"))]
    assert extents == [2, 8, 16, 16]


# traces as data ------------------------------------------------------------------------
def _replayed_from_json(sch, original):
    import json

    text = sch.trace.to_json()
    json.loads(text)  # plain JSON
    return wb.schedule.trace.Trace.from_json(text).apply(original)


def test_trace_json_round_trip_replays_to_the_same_program():
    sch = _schedule()
    again = _replayed_from_json(sch, mm_relu16)
    assert_structural_equal(again.func, sch.func)
    assert str(again.trace) == str(sch.trace)


def test_trace_json_keeps_decisions_and_index_maps():
    sch = wb.Schedule(matmul, seed=5)
    b = sch.get_block("C")
    i, j, k = sch.get_loops(b)
    t = sch.sample_perfect_tile(j, n=2, max_innermost_factor=16)
    sch.split(j, factors=t)
    sch.transform_layout(b, ("read", 1), lambda kk, jj: (jj // 16, kk, jj % 16))
    again = _replayed_from_json(sch, matmul)
    assert_structural_equal(again.func, sch.func)
    assert again.trace.decisions == sch.trace.decisions


def test_trace_json_bad_input_is_a_clear_error():
    import pytest

    from workbench.schedule.trace import Trace, index_map_from_text

    with pytest.raises(ValueError, match="not JSON"):
        Trace.from_json("{")
    with pytest.raises(ValueError, match="workbench-trace"):
        Trace.from_json('{"insts": []}')
    with pytest.raises(ValueError, match="before any instruction made it"):
        Trace.from_json('{"format": "workbench-trace", "version": 1, "insts": '
                        '[{"name": "get_loops", "inputs": [{"rv": "b7"}], "outputs": ["l0"]}]}')
    # index maps are read without eval: no names, calls or attributes but the lambda's own
    with pytest.raises(ValueError, match="may only use"):
        index_map_from_text("lambda i: (__import__('os').system('true'),)")


def test_numpy_integer_arguments_are_recorded_as_python_ints():
    import numpy as np

    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.split(i, factors=[None, np.int64(2)])
    assert "factors=[None, 2]" in str(sch.trace)
    replay = wb.Schedule(matmul)
    exec(str(sch.trace), {"sch": replay})   # no numpy in scope
    assert_structural_equal(replay.func, sch.func)
