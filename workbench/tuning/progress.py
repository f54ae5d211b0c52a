"""Progress of a tuning search: a tqdm bar with the best GFLOP/s so far and, in a notebook, a
live plot of the best-so-far GFLOP/s against the trials.

The search calls ``update`` once per measured candidate and ``close`` at the end::

    progress = Progress(total=trials, time_budget=budget)
    for result in results:
        progress.update(result, best_gflops)        # best so far, None while nothing succeeded
    progress.close()

The bar counts trials when ``total`` is given, else the seconds of ``time_budget``. It shows
by default when someone watches (a notebook, a terminal); ``enable=False`` silences it. The
plot shows by default in a notebook only (``plot=True`` forces it): the figure is drawn to a
PNG and shown through one IPython display handle that is updated in place, at most every
``min_interval`` seconds, so a fast search is not slowed down by drawing.

>>> from workbench.tuning.measure import MeasureResult
>>> p = Progress(total=3, enable=False)
>>> p.update(MeasureResult(True, 1e-3, None, 0.1), best_gflops=2.0)
>>> p.update(MeasureResult(False, None, "crash: signal 11 (SIGSEGV) while timing", 0.1), best_gflops=2.0)
>>> p.close(); p.trials, p.failed, p.best_gflops
(2, 1, 2.0)
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from typing import Any, TextIO

from .measure import MeasureResult


@dataclass(frozen=True)
class Point:
    """One trial as the progress saw it: when, whether it ran, its own and the best GFLOP/s."""

    trial: int
    elapsed: float
    ok: bool
    gflops: float | None
    best_gflops: float | None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a live plot can be shown)."""
    import sys

    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


class Progress:
    """A search's progress: a tqdm bar and, in a notebook, a live best-so-far plot (see the module doc)."""

    def __init__(self, total: int | None = None, time_budget: float | None = None, *, desc: str = "tune",
                 enable: bool | None = None, plot: bool | None = None, min_interval: float = 0.5,
                 file: TextIO | None = None):
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"Progress: total must be a number of trials >= 0 or None, got {total!r}")
        if time_budget is not None and (isinstance(time_budget, bool) or not isinstance(time_budget, (int, float))
                                        or not time_budget >= 0):
            raise ValueError(f"Progress: time_budget must be a number of seconds >= 0 or None, got {time_budget!r}")
        self.total, self.time_budget = total, time_budget
        self.history: list[Point] = []
        self.min_interval = min_interval
        self._start = time.monotonic()
        self._last_draw = -math.inf
        self._bar = self._make_bar(desc, enable, file)
        self._plot = _LivePlot(desc) if (in_notebook() if plot is None else plot) else None

    @property
    def trials(self) -> int:
        return len(self.history)

    @property
    def failed(self) -> int:
        return sum(not p.ok for p in self.history)

    @property
    def best_gflops(self) -> float | None:
        return self.history[-1].best_gflops if self.history else None

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def update(self, result: MeasureResult, best_gflops: float | None, gflops: float | None = None) -> None:
        """Record one measured candidate; ``gflops`` is its own throughput (when the search knows it)."""
        now = self.elapsed()
        self.history.append(Point(len(self.history) + 1, now, bool(result.ok), gflops, best_gflops))
        if self._bar is not None:
            if self.total is not None:
                self._bar.update(1)
            else:
                self._bar.n = min(round(now, 1), self._bar.total)
                self._bar.refresh()
            self._bar.set_postfix_str(self.status(), refresh=False)
        if self._plot is not None and now - self._last_draw >= self.min_interval:
            self._plot.draw(self.history, self.time_budget if self.total is None else None)
            self._last_draw = now

    def status(self) -> str:
        """One line: the best GFLOP/s so far, the trials and the failures."""
        best = "none yet" if self.best_gflops is None else f"{self.best_gflops:.4g} GFLOP/s"
        return f"best {best}, {self.trials} trials, {self.failed} failed"

    def close(self) -> None:
        """Finish the bar and draw the final plot."""
        if self._plot is not None:
            self._plot.draw(self.history, None)
            self._plot = None
        if self._bar is not None:
            if self.total is None:
                self._bar.n = min(round(self.elapsed(), 1), self._bar.total)
            self._bar.set_postfix_str(self.status(), refresh=False)
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _make_bar(self, desc: str, enable: bool | None, file: TextIO | None) -> Any:
        from .benchmark import _interactive

        if not (_interactive() if enable is None else enable):
            return None
        from tqdm.auto import tqdm

        if self.total is not None or self.time_budget is None:
            return tqdm(total=self.total, desc=desc, unit="trial", leave=True, file=file)
        return tqdm(total=float(self.time_budget), desc=desc, unit="s", leave=True, file=file,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")


class _LivePlot:
    """Best-so-far GFLOP/s against trials, redrawn in place through one IPython display handle."""

    def __init__(self, title: str):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(6, 3), dpi=90)
        FigureCanvasAgg(self.figure)
        self.title = title
        self.handle = None

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()

    def draw(self, history: list[Point], time_budget: float | None) -> None:
        from IPython.display import Image, display

        fig = self.figure
        fig.clear()
        ax = fig.add_subplot()
        best = [(p.trial, p.best_gflops) for p in history if p.best_gflops is not None]
        if best:
            ax.step([t for t, _ in best], [g for _, g in best], where="post", label="best so far")
        own = [(p.trial, p.gflops) for p in history if p.ok and p.gflops is not None]
        if own:
            ax.scatter([t for t, _ in own], [g for _, g in own], s=8, alpha=0.4, label="candidate")
        bad = [p.trial for p in history if not p.ok]
        if bad:
            ax.scatter(bad, [0.0] * len(bad), marker="x", color="tab:red", s=12, label="failed")
        ax.set_xlabel("trial")
        ax.set_ylabel("GFLOP/s")
        elapsed = history[-1].elapsed if history else 0.0
        budget = f" of {time_budget:.0f} s" if time_budget else ""
        ax.set_title(f"{self.title}: {len(history)} trials, {elapsed:.0f} s{budget}")
        if best or own or bad:
            ax.legend(loc="lower right", fontsize="small")
        image = Image(data=self.png(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


__all__ = ["Progress", "Point", "in_notebook"]
