"""Search spaces: where the tuner's candidates come from.

A candidate is a :class:`~workbench.schedule.trace.Trace`: the primitives that schedule
the program, with the decisions of its sampling instructions (``sample_perfect_tile``,
``sample_categorical``, ``sample_compute_location``, ``sample_partitioned_tile``). Two
kinds of space make them:

* :class:`ScheduleFnSpace`: a user's function ``fn(sch)`` that schedules a
  ``Schedule`` with sampling primitives; each call with a new seed is a new candidate;
* :class:`RuleSpace`: generated for any program by the schedule rules of
  :mod:`workbench.tuning.rules` for a target.

Both mutate a candidate the same way (:func:`mutate`): one sampled decision changes and
the trace replays with it; the structure of the trace stays.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64,), "float32", name="A")
>>> B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
>>> def my_schedule(sch):
...     (i,) = sch.get_loops(sch.get_block("B"))
...     io, ii = sch.split(i, factors=sch.sample_perfect_tile(i, n=2, max_innermost_factor=16))
...     sch.vectorize(ii)
>>> space = ScheduleFnSpace(my_schedule)
>>> cand = space.sample(wb.create_prim_func([A, B]), seed=3)
>>> print(cand.trace)
b0 = sch.get_block("B")
l1, = sch.get_loops(b0)
v2, v3 = sch.sample_perfect_tile(l1, n=2, max_innermost_factor=16, decision=[16, 4])
l4, l5 = sch.split(l1, [v2, v3])
sch.vectorize(l5)
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from ..ir.function import PrimFunc
from ..ir.structural import structural_hash
from ..schedule.errors import ScheduleError
from ..schedule.state import Schedule
from ..schedule.trace import Trace


@dataclass
class Candidate:
    """One point of a search space: its trace, the program it makes, and its structural choices."""

    trace: Trace
    func: PrimFunc
    sketch: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The program's structural hash (hex): equal programs have equal keys."""
        return program_key(self.func)

    @property
    def decisions(self) -> dict:
        return self.trace.decisions


def program_key(func: PrimFunc) -> str:
    """A stable text key of a program: its structural hash in hex (the same in every process)."""
    return f"{structural_hash(func):016x}"


class SearchSpace:
    """A search space: ``sample(func, seed)`` makes a fresh candidate."""

    def sample(self, func: PrimFunc, seed: int) -> Candidate:
        raise NotImplementedError


class ScheduleFnSpace(SearchSpace):
    """The candidates a user's schedule function makes: ``fn(sch)`` schedules ``sch`` (a fresh
    ``Schedule`` of the program, seeded) with sampling primitives where it wants the search to choose."""

    def __init__(self, fn: Callable[[Schedule], Any]):
        if not callable(fn):
            raise TypeError(f"a schedule-function space needs a function fn(sch), got {type(fn).__name__}")
        self.fn = fn

    def sample(self, func: PrimFunc, seed: int) -> Candidate:
        sch = Schedule(func, seed=seed)
        self.fn(sch)
        return Candidate(sch.trace, sch.func)

    def __repr__(self) -> str:
        return f"ScheduleFnSpace({getattr(self.fn, '__name__', self.fn)!r})"


class RuleSpace(SearchSpace):
    """The space the schedule rules generate for a target (see :mod:`workbench.tuning.rules`)."""

    def __init__(self, target="llvm", rules=None):
        from ..backend.target import Target
        from .rules import BLOCK_RULES

        self.target = Target(target)
        self.rules = BLOCK_RULES if rules is None else tuple(rules)

    def sample(self, func: PrimFunc, seed: int) -> Candidate:
        from .rules import RuleContext, apply_rules

        sch = Schedule(func, seed=seed)
        ctx = RuleContext(self.target, seed=seed)
        apply_rules(sch, ctx, self.rules)
        return Candidate(sch.trace, sch.func, {"choices": dict(ctx.choices), "applied": list(ctx.applied)})

    def __repr__(self) -> str:
        return f"RuleSpace({str(self.target)!r})"


def as_space(space, target) -> SearchSpace:
    """``None`` -> the rule space of ``target``; a function -> :class:`ScheduleFnSpace`; a space as it is."""
    if space is None:
        return RuleSpace(target)
    if isinstance(space, SearchSpace):
        return space
    if callable(space):
        return ScheduleFnSpace(space)
    raise TypeError(f"space must be None (rules), a schedule function fn(sch) or a SearchSpace, "
                    f"got {type(space).__name__}")


# -- mutation ----------------------------------------------------------------------------------

def mutate(cand: Candidate, func: PrimFunc, rng: random.Random, tries: int = 8) -> Candidate | None:
    """A candidate with one sampled decision of ``cand`` changed, replayed on ``func``; None when
    no changed decision replays (every try refused) or the trace has no decisions."""
    decisions = cand.trace.decisions
    if not decisions:
        return None
    for _ in range(tries):
        k = rng.choice(sorted(decisions))
        inst = cand.trace.insts[k]
        new = _mutate_decision(inst, decisions[k], rng)
        if new is None or new == decisions[k]:
            continue
        try:
            sch = cand.trace.apply(func, decisions={k: new})
        except ScheduleError:
            continue
        return Candidate(sch.trace, sch.func, cand.sketch)
    return None


def _mutate_decision(inst, decision, rng: random.Random):
    if inst.name in ("sample_perfect_tile", "sample_partitioned_tile"):
        return _move_prime(list(decision), rng)
    if inst.name == "sample_categorical":
        n = len(inst.args[0]) if inst.args else len(inst.kwargs.get("candidates", ()))
        return rng.randrange(n) if n > 1 else None
    if inst.name == "sample_compute_location":
        return decision + rng.choice((-1, 1))   # neighbouring location; replay refuses one out of range
    return None


def _move_prime(factors: list[int], rng: random.Random) -> list[int] | None:
    """Move one prime factor from one tile level to another (the product stays)."""
    sources = [k for k, f in enumerate(factors) if f > 1]
    if not sources or len(factors) < 2:
        return None
    src = rng.choice(sources)
    dst = rng.choice([k for k in range(len(factors)) if k != src])
    p = _smallest_prime(factors[src])
    out = list(factors)
    out[src] //= p
    out[dst] *= p
    return out


def _smallest_prime(n: int) -> int:
    p = 2
    while p * p <= n:
        if n % p == 0:
            return p
        p += 1
    return n


__all__ = ["Candidate", "SearchSpace", "ScheduleFnSpace", "RuleSpace", "as_space", "mutate", "program_key"]
