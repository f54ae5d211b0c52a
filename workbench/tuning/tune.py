"""``wb.tune``: search schedules of a tensor program and return the fastest.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64,), "float32", name="A")
>>> B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
>>> result = wb.tune(wb.create_prim_func([A, B]), target="llvm", trials=4, progress=False)   # doctest: +SKIP
>>> result.best.gflops, result.table                                                           # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..ir.function import IRModule, PrimFunc
from .database import Database
from .search import Measured, run_search


@dataclass
class Best:
    """The fastest candidate: ``trace`` (the schedule as code), ``schedule`` (replayed on the untuned
    program, to continue by hand), ``seconds`` and ``gflops``."""

    trace: Any
    schedule: Any
    seconds: float
    gflops: float


class TuneResult:
    """What :func:`tune` found: ``best``, ``table`` (every candidate measured), ``plot()`` (GFLOP/s and
    the best so far against the trials)."""

    def __init__(self, func: PrimFunc, target: str, measured: list[Measured]):
        self.func, self.target, self.measured = func, target, measured

    @property
    def best(self) -> Best | None:
        """The fastest candidate that ran correctly (None when none did)."""
        good = [m for m in self.measured if m.ok]
        if not good:
            return None
        m = min(good, key=lambda m: m.seconds)
        return Best(m.candidate.trace, m.candidate.trace.apply(self.func), m.seconds, m.gflops)

    @property
    def table(self):
        """pandas DataFrame: one row per candidate, in measuring order, with the best-so-far GFLOP/s."""
        import pandas as pd

        rows, best = [], 0.0
        for k, m in enumerate(self.measured):
            best = max(best, m.gflops or 0.0)
            rows.append({"trial": k, "ok": m.ok, "seconds": m.seconds, "gflops": m.gflops, "best_gflops": best or None,
                         "error": m.error, "from_database": m.from_database, "program": m.key,
                         "sketch": m.candidate.sketch.get("choices") if m.candidate.sketch else None})
        return pd.DataFrame(rows)

    def plot(self, ax=None):
        """GFLOP/s of each candidate (dots; failed ones at 0 in red) and the best so far (line)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        t = self.table
        ok = t[t["ok"]]
        ax.scatter(ok["trial"], ok["gflops"], s=12, label="candidate")
        bad = t[~t["ok"]]
        if len(bad):
            ax.scatter(bad["trial"], [0] * len(bad), s=12, color="red", marker="x", label="failed")
        ax.plot(t["trial"], t["best_gflops"], color="black", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"tuning on {self.target}")
        ax.legend(loc="lower right")
        return ax

    def __repr__(self) -> str:
        b = self.best
        best = "no candidate ran correctly" if b is None else f"best {b.gflops:.2f} GFLOP/s ({b.seconds * 1e3:.3f} ms)"
        return f"TuneResult({len(self.measured)} candidates on {self.target}: {best})"


def _is_model(obj) -> bool:
    """A whole model: an IRModule with graph functions, or a loaded model (``wb.frontend.load``)."""
    if isinstance(obj, IRModule):
        return bool(obj.graph_functions)
    if isinstance(obj, (PrimFunc,)) or not hasattr(obj, "param_list"):
        return False
    from ..frontend.model import Model

    return isinstance(obj, Model)


def _prim_func(obj) -> PrimFunc:
    from ..schedule.state import Schedule

    if isinstance(obj, Schedule):
        return obj.func
    if isinstance(obj, IRModule):
        prims = [f for f in obj.functions.values() if isinstance(f, PrimFunc)]
        if len(prims) != 1:
            raise ValueError(f"wb.tune takes a module with one tensor program; this one has {len(prims)}: "
                             "pass mod['name']")
        return prims[0]
    if isinstance(obj, PrimFunc):
        return obj
    raise TypeError(f"wb.tune needs a PrimFunc, an IRModule, a Schedule or a model (wb.frontend.load), "
                    f"got {type(obj).__name__}")


def tune(func, target="llvm", *, trials: int | None = None, time_budget: float | None = None,
         database: str | os.PathLike | Database | None = None, runner=None, space=None,
         strategy="evolutionary", seed: int = 0, batch_size: int = 8, progress: bool | None = None,
         sizes: Mapping[str, int] | None = None, inputs: Sequence | None = None, **model_options) -> Any:
    """Search schedules of ``func`` (a PrimFunc, an IRModule with one, or a Schedule's current program)
    for ``target`` and return a :class:`TuneResult`.

    A whole model (a ``wb.frontend.load`` model or an IRModule with graph functions) has every
    distinct kernel tuned, the budget shared by each kernel's share of the model's time on the
    example ``inputs``: see :func:`~workbench.tuning.tune_model.tune_model` (``min_share``,
    ``min_trials``), which returns a :class:`~workbench.tuning.tune_model.ModelTuneResult`.
    ``sizes`` (``{"n": 128}``) gives a PrimFunc's symbolic sizes their values for measuring.

    ``trials`` new measurements and/or ``time_budget`` seconds (default: 64 trials; ``trials=0``
    or ``time_budget=0`` measures nothing: the result is what ``database`` holds, its ``best``
    the best record, so ``wb.tune(f, trials=0, database="tuning.jsonl").best.schedule`` reuses
    an earlier search); ``database`` a JSON-lines file (or :class:`Database`) to resume from and
    append to;
    ``runner`` measures (default: a :class:`~workbench.tuning.measure.LocalRunner`, closed at
    the end); ``space`` is None (the schedule rules), a schedule function ``fn(sch)`` with
    sampling primitives, or a :class:`~workbench.tuning.space.SearchSpace`; ``strategy``
    ``"evolutionary"`` (cost-model guided) or ``"replay"`` (random samples); ``progress``
    a tqdm bar and, in a notebook, a live best-so-far plot (None: when someone watches).
    """
    from .progress import Progress

    if _is_model(func):
        from .tune_model import tune_model

        if sizes is not None:
            raise TypeError("wb.tune of a model takes its sizes from the example inputs=(...), not sizes=")
        return tune_model(func, target, inputs=inputs, trials=trials, time_budget=time_budget, database=database,
                          runner=runner, space=space, strategy=strategy, seed=seed, batch_size=batch_size,
                          progress=progress, **model_options)
    if inputs is not None or model_options:
        extra = ["inputs"] * (inputs is not None) + sorted(model_options)
        raise TypeError(f"wb.tune: {', '.join(extra)} is for whole models (wb.frontend.load, or an IRModule with "
                        f"graph functions); a tensor program takes sizes={{...}} for its symbolic sizes")
    func = _prim_func(func)
    if trials is None and time_budget is None:
        trials = 64
    _check_limits(trials, time_budget)
    db = database if isinstance(database, Database) or database is None else Database(database)
    if trials == 0 or time_budget == 0:
        return _from_database(func, target, db, sizes)
    own_runner = runner is None
    if own_runner:
        from .measure import LocalRunner

        runner = LocalRunner()
    bar = Progress(total=trials, time_budget=time_budget, enable=progress, plot=None if progress is None else progress)
    try:
        measured = run_search(func, target, runner=runner, space=space, strategy=strategy, trials=trials,
                              time_budget=time_budget, database=db, seed=seed, batch_size=batch_size, progress=bar,
                              sizes=sizes)
    finally:
        bar.close()
        if own_runner:
            runner.close()
    return TuneResult(func, str(target), measured)


def _check_limits(trials, time_budget) -> None:
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 0):
        raise ValueError(f"wb.tune: trials must be a number of measurements >= 0 or None, got {trials!r}")
    if time_budget is not None and (isinstance(time_budget, bool) or not isinstance(time_budget, (int, float))
                                    or not time_budget >= 0):
        raise ValueError(f"wb.tune: time_budget must be a number of seconds >= 0 or None, got {time_budget!r}")


def _from_database(func: PrimFunc, target, db: Database | None, sizes=None) -> TuneResult:
    """No measurement (trials=0 or time_budget=0): the database's records of ``func`` on ``target``."""
    if db is None:
        raise ValueError("wb.tune with trials=0 or time_budget=0 measures nothing and only loads the best "
                         "record: give database= (the file of an earlier search)")
    measured = run_search(func, target, runner=None, trials=0, database=db, sizes=sizes)
    return TuneResult(func, str(target), measured)


__all__ = ["tune", "TuneResult", "Best"]
