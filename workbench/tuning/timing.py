"""Honest timing of one callable: warm-up, a repeat count calibrated to a minimum time,
median and spread.

How ``measure(fn, *args)`` works:

1. **Warm-up**: call ``fn`` until ``warmup`` seconds have passed (at least once), so
   caches, page faults and lazy compilation are out of the way.
2. **Calibration**: from the warm-up, estimate the time of one call and choose
   ``number``, the calls per sample, so that one sample lasts at least
   ``min_sample`` seconds (fast kernels are timed in batches: ``perf_counter``'s
   own cost and jitter would swamp a single microsecond call).
3. **Repeats**: take samples until ``min_time`` seconds of samples are collected,
   with at least ``min_repeats`` and at most ``max_repeats`` samples.
4. **Statistics**: the median per-call time and the 10th/90th percentiles
   (``spread_pct`` is ``(p90 - p10) / median`` in percent). The median, not the
   mean: a shared machine produces outliers that only ever make a run slower.

**Device time**: for a built GPU function, ``device_seconds=lambda: f.last_device_seconds``
makes the samples the device's own time of each call (the GPU backends time their
kernels with events), read after every call; the result's ``clock`` is ``"device"``
and its ``wall`` holds the wall-clock times of the same calls (which include copies of
numpy arguments and launch overhead). Warm-up, calibration and the time budget still go
by the wall clock.

>>> import numpy as np
>>> a = np.ones(1000)
>>> t = measure(lambda: a.sum(), min_time=0.01)
>>> t.median > 0 and t.repeats >= 5
True
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Timing:
    """Per-call times of one callable, in seconds.

    ``samples`` holds the per-call time of each sample (a sample is ``number`` calls).
    ``clock`` says what was measured: ``"wall"`` (the host's clock around the calls) or
    ``"device"`` (the device's own time of its kernels, from events); for the latter,
    ``wall`` is the wall-clock ``Timing`` of the same calls.
    """

    median: float
    p10: float
    p90: float
    mean: float
    repeats: int
    number: int
    samples: tuple = field(repr=False, default=())
    clock: str = "wall"
    wall: "Timing | None" = field(repr=False, default=None)

    @property
    def spread_pct(self) -> float:
        """``(p90 - p10) / median`` in percent: the width of the middle 80% of the samples."""
        return 100.0 * (self.p90 - self.p10) / self.median if self.median > 0 else float("nan")

    @property
    def median_ms(self) -> float:
        return self.median * 1e3

    def __str__(self) -> str:
        clock = " device time" if self.clock == "device" else ""
        return (f"{_fmt_time(self.median)} median{clock} (p10 {_fmt_time(self.p10)}, p90 {_fmt_time(self.p90)}; "
                f"{self.repeats} x {self.number} calls)")


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.2f} us"


def _percentile(sorted_vals: list, q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default rule)."""
    n = len(sorted_vals)
    if n == 1:
        return sorted_vals[0]
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def measure(fn: Callable, *args, min_time: float = 0.2, warmup: float = 0.05, min_sample: float = 1e-3,
            min_repeats: int = 5, max_repeats: int = 200, timer: Callable[[], float] = time.perf_counter,
            estimate: float | None = None, max_time: float | None = 10.0,
            device_seconds: Callable[[], float] | None = None) -> Timing:
    """Time ``fn(*args)``: warm-up, calibrated repeats, median and spread (see the module doc).

    ``min_time`` is the total measuring time to aim for (seconds, after warm-up);
    ``min_repeats``/``max_repeats`` bound the number of samples. A call slower than
    ``min_time`` is still repeated ``min_repeats`` times, unless the samples already took
    ``max_time`` seconds (``None``: no cap): a 10 s kernel is then timed once, and
    ``Timing.repeats`` says so. ``estimate`` is the time of
    a call made just before (e.g. a correctness check): when it is at least ``warmup``,
    that call was the warm-up and none is repeated (slow kernels are not run twice for nothing).
    ``device_seconds``, read after each call, gives that call's device time: the samples are
    then device times and ``Timing.wall`` the wall-clock ones (see the module doc).

    >>> import numpy as np
    >>> a = np.random.rand(64, 64).astype("float32")
    >>> t = measure(np.matmul, a, a, min_time=0.02)
    >>> t.p10 <= t.median <= t.p90
    True
    """
    for name, v in (("min_time", min_time), ("warmup", warmup), ("min_sample", min_sample),
                    ("max_time", 0.0 if max_time is None else max_time)):
        if not (isinstance(v, (int, float)) and v >= 0):
            raise ValueError(f"measure(): {name} must be a number of seconds >= 0, got {v!r}")
    if device_seconds is not None and not callable(device_seconds):
        raise TypeError(f"measure(): device_seconds must be a callable returning seconds, got "
                        f"{type(device_seconds).__name__}")
    if not (isinstance(min_repeats, int) and min_repeats >= 1):
        raise ValueError(f"measure(): min_repeats must be a positive integer, got {min_repeats!r}")
    if not (isinstance(max_repeats, int) and max_repeats >= min_repeats):
        raise ValueError(f"measure(): max_repeats must be an integer >= min_repeats ({min_repeats}), "
                         f"got {max_repeats!r}")
    # 1. warm-up (also the first estimate of one call)
    if estimate is not None and estimate >= warmup and estimate > 0:
        per_call = estimate
    else:
        calls, t_start = 0, timer()
        while True:
            fn(*args)
            calls += 1
            elapsed = timer() - t_start
            if elapsed >= warmup or calls >= 10_000:
                break
        per_call = max(elapsed / calls, 1e-9)
    # 2. calibrate the calls per sample
    number = max(1, int(math.ceil(min_sample / per_call))) if per_call < min_sample else 1
    # 3. samples
    samples: list[float] = []
    device: list[float] = []
    budget_start = timer()
    while True:
        t0 = timer()
        if device_seconds is None:
            for _ in range(number):
                fn(*args)
        else:
            device.append(_device_sample(fn, args, number, device_seconds))
        samples.append((timer() - t0) / number)
        n = len(samples)
        if n >= max_repeats:
            break
        spent = timer() - budget_start
        if n >= min_repeats and spent >= min_time:
            break
        if max_time is not None and spent >= max_time:
            break
    # 4. statistics
    wall = _statistics(samples, number)
    if device_seconds is None:
        return wall
    return _statistics(device, number, clock="device", wall=wall)


def _device_sample(fn: Callable, args: tuple, number: int, device_seconds: Callable[[], float]) -> float:
    """The mean device time of ``number`` calls, each read right after the call."""
    total = 0.0
    for _ in range(number):
        fn(*args)
        t = device_seconds()
        if not (isinstance(t, (int, float)) and t >= 0):
            raise ValueError(f"measure(): device_seconds() must return seconds >= 0 after a call, got {t!r}")
        total += t
    return total / number


def _statistics(samples: list, number: int, **extra) -> Timing:
    s = sorted(samples)
    return Timing(median=_percentile(s, 50), p10=_percentile(s, 10), p90=_percentile(s, 90),
                  mean=sum(s) / len(s), repeats=len(s), number=number, samples=tuple(samples), **extra)


__all__ = ["measure", "Timing"]
