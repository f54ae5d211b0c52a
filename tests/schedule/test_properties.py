"""Property: random sequences of primitives on the te operator corpus never change the result.

Each drawn request is either applied or refused with a ScheduleError that leaves the schedule
exactly as it was; whatever was applied, the program still matches numpy (interpreter, small
shapes) and the printed trace replays to the same program.
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.ir.structural import assert_structural_equal, structural_equal  # noqa: E402

from .util import run  # noqa: E402

CASES = wb.ir.op_library.corpus()
SCOPES = ["global", "shared", "local"]
MOVES = ["split", "fuse", "reorder", "parallel", "vectorize", "unroll", "compute_inline", "reverse_compute_inline",
         "compute_at", "reverse_compute_at", "decompose_reduction", "cache_read", "cache_write", "rfactor",
         "add_unit_loop", "annotate"]


def _blocks(sch):
    return [n for n in sch.index().order if n != "root"]


def _one_move(sch, data):
    names = _blocks(sch)
    if not names:
        return
    b = sch.get_block(data.draw(st.sampled_from(names), label="block"))
    loops = sch.get_loops(b)
    move = data.draw(st.sampled_from(MOVES), label="move")
    pick = lambda xs, label: data.draw(st.sampled_from(xs), label=label)  # noqa: E731
    if move in ("split", "parallel", "vectorize", "unroll", "rfactor", "annotate") and not loops:
        return
    if move == "split":
        sch.split(pick(loops, "loop"), factors=[None, pick([1, 2, 3, 4, 5], "factor")])
    elif move == "fuse" and len(loops) >= 2:
        p = data.draw(st.integers(0, len(loops) - 2), label="pos")
        sch.fuse(loops[p], loops[p + 1])
    elif move == "reorder" and len(loops) >= 2:
        sch.reorder(*data.draw(st.permutations(loops), label="perm"))
    elif move in ("parallel", "vectorize", "unroll"):
        getattr(sch, move)(pick(loops, "loop"))
    elif move == "annotate":
        sch.annotate(pick(loops, "loop"), "pragma_test", 1)
    elif move in ("compute_inline", "reverse_compute_inline"):
        getattr(sch, move)(b)
    elif move in ("compute_at", "reverse_compute_at"):
        other = sch.get_block(pick(names, "other"))
        other_loops = sch.get_loops(other)
        if other_loops:
            getattr(sch, move)(b, pick(other_loops, "loop"), preserve_unit_loops=pick([False, True], "unit"))
    elif move == "decompose_reduction" and loops:
        sch.decompose_reduction(b, pick(loops, "loop"))
    elif move == "cache_read" and sch.get(b).reads:
        sch.cache_read(b, data.draw(st.integers(0, len(sch.get(b).reads) - 1), label="idx"), pick(SCOPES, "scope"))
    elif move == "cache_write":
        sch.cache_write(b, 0, pick(SCOPES, "scope"))
    elif move == "rfactor":
        sch.rfactor(pick(loops, "loop"), 0)
    elif move == "add_unit_loop":
        sch.add_unit_loop(b)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(case_index=st.integers(0, len(CASES) - 1), data=st.data())
def test_random_primitives_keep_results(case_index, data):
    case = CASES[case_index]
    sch = wb.Schedule(case.func, seed=0)
    steps = data.draw(st.integers(1, 5), label="steps")
    for _ in range(steps):
        before, n_hist, n_trace = sch.func, len(sch.history), len(sch.trace)
        try:
            _one_move(sch, data)
        except wb.ScheduleError as err:
            assert isinstance(err, ValueError)
            assert sch.func is before and len(sch.history) == n_hist
            assert structural_equal(sch.func, before)
            # look-ups made before the refused request stay in the trace; nothing else does
            assert len(sch.trace) >= n_trace
    inputs, outs, expected = case.make_arrays(np.random.default_rng(1))
    run(sch.func, *inputs, *outs)
    case.assert_close(outs, expected)
    replay = wb.Schedule(case.func)
    exec(str(sch.trace), {"sch": replay})
    assert_structural_equal(replay.func, sch.func)
