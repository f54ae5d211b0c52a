"""measure(): warm-up, calibrated repeats, median and spread (with a fake clock, so exact)."""
import pytest

from workbench.tuning.timing import measure


class FakeClock:
    """Time advances only when the measured function runs: each call costs ``cost`` seconds."""

    def __init__(self, costs):
        self.now, self.costs, self.calls = 0.0, list(costs), 0

    def timer(self):
        return self.now

    def fn(self):
        self.now += self.costs[self.calls % len(self.costs)]
        self.calls += 1


def test_fast_calls_are_batched_to_the_minimum_sample_time():
    c = FakeClock([1e-6])
    t = measure(c.fn, min_time=0.01, warmup=0.001, min_sample=1e-3, timer=c.timer)
    assert t.number == pytest.approx(1000, rel=0.01)     # 1 us calls, 1 ms samples
    assert t.median == pytest.approx(1e-6) and t.spread_pct == pytest.approx(0, abs=1e-6)
    assert 5 <= t.repeats <= 11                          # ~10 ms of 1 ms samples


def test_median_and_percentiles_ignore_outliers():
    c = FakeClock([1.0] * 9 + [50.0])                    # one call in ten is disturbed
    t = measure(c.fn, min_time=0, warmup=0, min_sample=0, min_repeats=10, max_repeats=10, timer=c.timer,
                max_time=None)  # the fake 50 s call must not trip the default 10 s cap
    assert t.number == 1 and t.repeats == 10
    assert t.median == 1.0 and t.p10 == 1.0
    assert t.mean == pytest.approx((9 + 50) / 10)


def test_slow_calls_still_get_min_repeats_and_max_repeats_caps():
    c = FakeClock([2.0])
    t = measure(c.fn, min_time=0.1, warmup=0.0, min_repeats=3, timer=c.timer)
    assert t.repeats == 3 and t.number == 1
    c = FakeClock([1e-3])
    t = measure(c.fn, min_time=100, warmup=0, min_sample=0, max_repeats=7, timer=c.timer)
    assert t.repeats == 7


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="min_time"):
        measure(lambda: None, min_time=-1)
    with pytest.raises(ValueError, match="max_repeats"):
        measure(lambda: None, min_repeats=5, max_repeats=2)


def test_a_previous_slow_call_counts_as_the_warm_up():
    c = FakeClock([0.5])
    t = measure(c.fn, min_time=0.0, warmup=0.05, min_repeats=3, timer=c.timer, estimate=0.5)
    assert c.calls == 3 and t.repeats == 3                 # no extra warm-up call
    c = FakeClock([1e-6])
    measure(c.fn, min_time=0.0, warmup=0.05, min_repeats=1, min_sample=0, timer=c.timer, estimate=1e-6)
    assert c.calls > 1000                                  # a fast one still warms up for 50 ms


def test_max_time_caps_the_samples_of_a_slow_call():
    from workbench.tuning.timing import measure

    clock = [0.0]

    def slow():  # each call takes 4 s on the fake clock
        clock[0] += 4.0

    t = measure(slow, min_time=0.2, min_repeats=5, max_time=10.0, timer=lambda: clock[0], estimate=4.0)
    assert t.repeats == 3  # 4 + 4 + 4 s >= 10 s: stop before the 5 the minimum asks for
    t = measure(slow, min_time=0.2, min_repeats=5, max_time=None, timer=lambda: clock[0], estimate=4.0)
    assert t.repeats == 5


def test_benchmark_notes_a_variant_cut_short_by_max_time():
    import time

    import numpy as np

    import workbench as wb

    def slow(a, b):
        time.sleep(0.05)
        np.copyto(b, a)

    res = wb.benchmark({"copy": lambda a, b: np.copyto(b, a), "slow": slow},
                       args=[np.ones(8, "float32"), np.zeros(8, "float32")], outputs=[1],
                       min_time=0.01, min_repeats=5, max_time=0.08, peak=None, progress=False)
    row = res.table.set_index("variant").loc["slow"]
    assert row["status"] == "ok" and row["repeats"] < 5
    assert "timed run(s) only" in row["note"]
