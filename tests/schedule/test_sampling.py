"""sample_perfect_tile, sample_categorical, sample_compute_location: seeded, recorded, replaceable."""
import numpy as np

import workbench as wb
from workbench.schedule import ScheduleArgumentError

from .programs import matmul, two_stage, two_stage_ref
from .util import check_numeric, refused


def test_perfect_tile_products_and_seed():
    seen = set()
    for seed in range(20):
        sch = wb.Schedule(matmul, seed=seed)
        i, j, k = sch.get_loops(sch.get_block("C"))
        t = sch.sample_perfect_tile(i, n=3, max_innermost_factor=4)
        assert len(t) == 3 and int(np.prod([int(x) for x in t])) == 16 and int(t[-1]) <= 4
        seen.add(tuple(int(x) for x in t))
        again = wb.Schedule(matmul, seed=seed)
        i2, _, _ = again.get_loops(again.get_block("C"))
        assert [int(x) for x in again.sample_perfect_tile(i2, n=3, max_innermost_factor=4)] == [int(x) for x in t]
    assert len(seen) > 3  # it does explore


def test_perfect_tile_decision_and_split():
    sch = wb.Schedule(matmul, seed=0)
    i, j, k = sch.get_loops(sch.get_block("C"))
    t = sch.sample_perfect_tile(i, n=2, decision=[4, 4])
    io, ii = sch.split(i, factors=t)
    assert sch.get(io).extent.value == 4
    check_numeric(sch.func, lambda a, b: a @ b, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    refused(sch, sch.sample_perfect_tile, j, n=2, decision=[3, 5], exc=ScheduleArgumentError,
            match="must be 2 positive factors multiplying to 16")
    refused(sch, sch.sample_perfect_tile, j, n=0, exc=ScheduleArgumentError, match="n must be a positive int")


def test_categorical():
    sch = wb.Schedule(matmul, seed=1)
    v = sch.sample_categorical([1, 2, 4, 8], [0.0, 0.0, 1.0, 0.0])
    assert int(v) == 4
    assert sch.trace.decisions == {0: 2}
    v2 = sch.sample_categorical([1, 2], [0.5, 0.5], decision=1)
    assert int(v2) == 2
    refused(sch, sch.sample_categorical, [1, 2], [1.0], exc=ScheduleArgumentError, match="as many probabilities")
    refused(sch, sch.sample_categorical, [1, 2], [0.5, 0.5], decision=2, exc=ScheduleArgumentError)


def test_compute_location():
    sch = wb.Schedule(two_stage, seed=0)
    b = sch.get_block("B")
    loc = sch.sample_compute_location(b, decision=1)  # candidates: i, j of C
    sch.compute_at(b, loc)
    assert [sch.get(l).loop_var.name for l in sch.get_loops(b)] == ["i", "j"]
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    # decision -1: stay at the root; compute_at with it changes nothing
    sch2 = wb.Schedule(two_stage, seed=0)
    b2 = sch2.get_block("B")
    root = sch2.sample_compute_location(b2, decision=-1)
    sch2.compute_at(b2, root)
    assert sch2.func is two_stage
    refused(sch2, sch2.sample_compute_location, b2, decision=5, exc=ScheduleArgumentError)


def test_random_compute_location_is_always_legal():
    for seed in range(6):
        sch = wb.Schedule(two_stage, seed=seed)
        b = sch.get_block("B")
        sch.compute_at(b, sch.sample_compute_location(b))
        check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
        replay = sch.trace.apply(two_stage)
        wb.assert_structural_equal(replay.func, sch.func)
