"""Search strategies and the search loop: propose candidates, measure them, learn, repeat.

* :class:`ReplaySearch` (the baseline): fresh random samples of the space.
* :class:`EvolutionarySearch`: mutants of the fastest candidates so far (one sampled
  decision changed) plus fresh samples; the online :class:`~workbench.tuning.cost_model.CostModel`
  ranks them and the best predicted (with a share picked at random, to keep exploring)
  are measured.

Equal programs (same structural hash) are measured once: proposals skip every program
already measured, in this search or in the database. Every random choice comes from one
``random.Random(seed)``, so with the same seed and the same measurements a search
proposes the same traces (:class:`ReplaySearch` proposes the same traces whatever the
measurements).

>>> import workbench as wb
>>> from workbench import te
>>> from workbench.tuning.measure import MeasureResult
>>> A = te.placeholder((64,), "float32", name="A")
>>> B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
>>> class Fake:          # a runner that "measures" without running anything
...     def run(self, inputs):
...         return [MeasureResult(True, 1e-6, None, 0.0) for _ in inputs]
>>> out = run_search(wb.create_prim_func([A, B]), "llvm", runner=Fake(), trials=4, seed=0)
>>> len(out), len({m.key for m in out})
(4, 4)
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..ir.function import PrimFunc
from ..schedule.errors import ScheduleError
from ..schedule.trace import Trace
from .cost_model import CostModel
from .database import Database, Record, workload_key
from .features import extract_features
from .space import Candidate, SearchSpace, as_space, mutate, program_key


@dataclass
class Measured:
    """A measured candidate: the candidate, its measurement, GFLOP/s (None when it failed), features."""

    candidate: Candidate
    ok: bool
    seconds: float | None
    error: str | None
    gflops: float | None
    features: np.ndarray = field(repr=False)
    from_database: bool = False
    build_seconds: float = 0.0

    @property
    def key(self) -> str:
        return self.candidate.key

    @property
    def speed(self) -> float:
        """Runs per second (0 when it failed): what the search ranks and learns. Unlike GFLOP/s it
        works for integer programs too, which do no floating-point operations."""
        return 1.0 / self.seconds if self.ok and self.seconds else 0.0


@dataclass
class SearchState:
    """What a strategy sees: the program, the space, the measured candidates by key, the model, the rng."""

    func: PrimFunc
    space: SearchSpace
    measured: dict
    model: CostModel
    rng: random.Random

    def fresh(self, n: int, tries: int = 4) -> list[Candidate]:
        """Up to ``n`` new random samples of the space, none measured, none equal to another."""
        out: dict[str, Candidate] = {}
        for _ in range(n * tries):
            if len(out) >= n:
                break
            try:
                cand = self.space.sample(self.func, self.rng.randrange(2 ** 31))
            except ScheduleError:
                continue
            if cand.key not in self.measured:
                out.setdefault(cand.key, cand)
        return list(out.values())


class ReplaySearch:
    """The baseline: measure fresh random samples of the space."""

    def propose(self, state: SearchState, n: int) -> list[Candidate]:
        return state.fresh(n)


class EvolutionarySearch:
    """Mutate the fastest candidates, rank the mutants (and some fresh samples) with the cost model,
    measure the best predicted; ``eps`` of each batch is picked at random instead."""

    def __init__(self, population: int = 16, mutants: int = 48, fresh: int = 16, eps: float = 0.25):
        self.population, self.mutants, self.fresh, self.eps = population, mutants, fresh, eps

    def propose(self, state: SearchState, n: int) -> list[Candidate]:
        pool: dict[str, Candidate] = {c.key: c for c in state.fresh(self.fresh)}
        good = sorted((m for m in state.measured.values() if m.ok), key=lambda m: -m.speed)
        parents = [m.candidate for m in good[:self.population]] or list(pool.values())
        for _ in range(self.mutants if parents else 0):
            child = mutate(state.rng.choice(parents), state.func, state.rng)
            if child is not None and child.key not in state.measured:
                pool.setdefault(child.key, child)
        cands = list(pool.values())
        if not state.model.trained:
            state.rng.shuffle(cands)
            return cands[:n]
        scores = state.model.predict(np.vstack([extract_features(c.func) for c in cands]))
        order = sorted(range(len(cands)), key=lambda k: -scores[k])
        n_best = n - int(round(self.eps * n))
        picked, rest = order[:n_best], order[n_best:]
        state.rng.shuffle(rest)
        return [cands[k] for k in picked + rest[:n - len(picked)]]


STRATEGIES = {"evolutionary": EvolutionarySearch, "replay": ReplaySearch, "random": ReplaySearch}


def _strategy(strategy):
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown search strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        return STRATEGIES[strategy]()
    if not hasattr(strategy, "propose"):
        raise TypeError(f"a search strategy needs a propose(state, n) method, got {type(strategy).__name__}")
    return strategy


def run_search(func: PrimFunc, target="llvm", *, runner, space=None, strategy="evolutionary",
               trials: int | None = None, time_budget: float | None = None, database: Database | None = None,
               seed: int = 0, batch_size: int = 8, progress=None, input_seed: int = 0,
               sizes: Mapping[str, int] | None = None, initial: Sequence[Candidate] = ()) -> list[Measured]:
    """Search schedules of ``func`` for ``target``; returns every candidate measured (database ones first).

    Stops after ``trials`` new measurements or ``time_budget`` seconds (whichever comes
    first; at least one of them must be given), or when the space has nothing new to offer.
    ``sizes`` (``{"seq": 128}``) are the values of ``func``'s symbolic sizes for measuring and
    counting FLOPs (the candidates and their traces stay symbolic); ``initial`` candidates (a
    known schedule, e.g. the default one) are measured first, unless already measured.
    """
    from ..backend.target import Target
    from .flops import count_flops
    from .measure import MeasureInput

    if trials is None and time_budget is None:
        raise ValueError("give trials= (a number of measurements) or time_budget= (seconds), or both")
    target_str = str(Target(target))
    space = as_space(space, target)
    strategy = _strategy(strategy)
    flops = count_flops(func, sizes=sizes)
    state = SearchState(func, space, {}, CostModel(seed=seed), random.Random(seed))
    workload, tkey = workload_key(func, target)
    out = _load_database(database, func, workload, tkey, state, flops)
    start, new = time.monotonic(), 0
    while (trials is None or new < trials) and (time_budget is None or time.monotonic() - start < time_budget):
        n = batch_size if trials is None else min(batch_size, trials - new)
        first = _unmeasured(initial, state, n)
        initial = ()
        rest = strategy.propose(state, n - len(first)) if n > len(first) else []
        batch = first + [c for c in rest if c.key not in {f.key for f in first}]
        if not batch:
            break
        inputs = [MeasureInput(c.func, target_str, c.trace.to_json(), reference=func, seed=input_seed, sizes=sizes)
                  for c in batch]
        for cand, res in zip(batch, runner.run(inputs)):
            m = _measured(cand, res.ok, res.seconds, res.error, res.build_seconds, flops)
            _learn(state, m)
            out.append(m)
            if database is not None:
                database.add(Record(workload, tkey, cand.trace.to_data(), m.key, res.ok, res.seconds, res.error,
                                    res.build_seconds, cand.sketch))
            if progress is not None:
                progress.update(res, _best(out), m.gflops)
        new += len(batch)
    return out


def _unmeasured(initial: Sequence[Candidate], state: SearchState, n: int) -> list[Candidate]:
    """The first ``n`` of ``initial`` not measured yet (none equal to another)."""
    out: dict[str, Candidate] = {}
    for cand in initial:
        if cand.key not in state.measured and len(out) < n:
            out.setdefault(cand.key, cand)
    return list(out.values())


def _measured(cand: Candidate, ok, seconds, error, build_seconds, flops, from_database=False) -> Measured:
    gflops = flops / seconds / 1e9 if ok and seconds else None
    return Measured(cand, bool(ok and seconds), seconds, error, gflops, extract_features(cand.func),
                    from_database, build_seconds or 0.0)


def _learn(state: SearchState, m: Measured) -> None:
    state.measured[m.key] = m
    state.model.update(m.features[None, :], [m.speed])


def _best(out: list[Measured]) -> float | None:
    good = [m.gflops for m in out if m.ok]
    return max(good) if good else None


def _load_database(database, func, workload, tkey, state, flops) -> list[Measured]:
    """The database's records of this workload, replayed (a record whose trace no longer replays to
    the recorded program is skipped), learned from and marked measured."""
    out: list[Measured] = []
    if database is None:
        return out
    for rec in database.records(workload, tkey):
        try:
            sch = Trace.from_data(rec.trace).apply(func)
        except (ScheduleError, ValueError):
            continue
        cand = Candidate(sch.trace, sch.func, rec.sketch)
        if program_key(sch.func) != rec.program or rec.program in state.measured:
            continue
        m = _measured(cand, rec.ok, rec.seconds, rec.error, rec.build_seconds, flops, from_database=True)
        _learn(state, m)
        out.append(m)
    return out


__all__ = ["Measured", "SearchState", "ReplaySearch", "EvolutionarySearch", "run_search", "STRATEGIES"]
