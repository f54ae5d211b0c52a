"""Sampling: random choices recorded in the trace as decisions that can be replaced.

A schedule made with ``seed=`` samples reproducibly. ``decision=`` forces a choice
(that is how ``trace.apply(func, decisions=...)`` replays a changed decision).
"""
from __future__ import annotations

from typing import Sequence

from ..ir.expr import as_int
from ..ir.stmt import For
from .errors import ScheduleArgumentError
from .lookup import consumers_of, producers_of
from .state import Outcome
from .primitive import primitive


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


@primitive("sampling")
def sample_perfect_tile(sch, loop, n: int, max_innermost_factor: int | None = None, decision=None) -> Outcome:
    """Sample ``n`` factors whose product is the loop's extent (for ``split``).

    >>> # v0, v1 = sch.sample_perfect_tile(i, n=2, max_innermost_factor=16)
    >>> # sch.split(i, factors=[v0, v1])
    """
    f, _ = sch.loop_of(loop)
    ln = f.loop_var.name
    ext = as_int(f.extent)
    if ext is None:
        raise ScheduleArgumentError(f"cannot sample tiles of loop {ln}: its extent `{f.extent}` is not a constant",
                                    node=f)
    if not isinstance(n, int) or n < 1:
        raise ScheduleArgumentError(f"cannot sample tiles of loop {ln}: n must be a positive int, got {n!r}", node=f)
    if max_innermost_factor is not None and (not isinstance(max_innermost_factor, int) or max_innermost_factor < 1):
        raise ScheduleArgumentError(f"cannot sample tiles of loop {ln}: max_innermost_factor must be a positive int, "
                                    f"got {max_innermost_factor!r}", node=f)
    if decision is not None:
        dec = [int(x) for x in decision]
        prod = 1
        for x in dec:
            prod *= x
        if len(dec) != n or any(x < 1 for x in dec) or prod != ext:
            raise ScheduleArgumentError(f"cannot use the decision {list(decision)!r} for loop {ln}: it must be {n} "
                                        f"positive factors multiplying to {ext}", node=f)
        if max_innermost_factor is not None and dec[-1] > max_innermost_factor:
            raise ScheduleArgumentError(f"cannot use the decision {dec!r} for loop {ln}: its innermost factor exceeds "
                                        f"max_innermost_factor={max_innermost_factor}", node=f)
    else:
        primes = _prime_factors(ext)
        for _ in range(100):
            dec = [1] * n
            for p in primes:
                dec[sch._rng.randrange(n)] *= p
            if max_innermost_factor is None or dec[-1] <= max_innermost_factor:
                break
        else:
            # move the innermost factor's primes outwards until it fits
            inner = dec[-1]
            dec[-1] = 1
            for p in sorted(_prime_factors(inner)):
                if dec[-1] * p <= max_innermost_factor:
                    dec[-1] *= p
                else:
                    dec[0] *= p
    return Outcome(outputs=[("expr", x) for x in dec], decision=list(dec))


@primitive("sampling")
def sample_categorical(sch, candidates: Sequence[int], probs: Sequence[float], decision=None) -> Outcome:
    """Sample one of ``candidates`` with probabilities ``probs``; the decision is the index.

    >>> # v = sch.sample_categorical([1, 2, 4, 8], [0.25] * 4)
    """
    cands = list(candidates)
    ps = [float(p) for p in probs]
    if not cands or len(cands) != len(ps):
        raise ScheduleArgumentError(f"sample_categorical needs as many probabilities as candidates, got "
                                    f"{len(cands)} candidates and {len(ps)} probabilities")
    if any(p < 0 for p in ps) or sum(ps) <= 0:
        raise ScheduleArgumentError(f"sample_categorical needs non-negative probabilities with a positive sum, got {ps}")
    if not all(isinstance(c, int) for c in cands):
        raise ScheduleArgumentError(f"sample_categorical candidates must be ints, got {cands!r}")
    if decision is not None:
        if not isinstance(decision, int) or not (0 <= decision < len(cands)):
            raise ScheduleArgumentError(f"the decision {decision!r} is not an index into the {len(cands)} candidates")
        k = decision
    else:
        k = sch._rng.choices(range(len(cands)), weights=ps)[0]
    return Outcome(outputs=("expr", int(cands[k])), decision=k)


def compute_location_candidates(sch, block) -> list[For]:
    """Loops where ``compute_at(block, loop)`` is legal: around all consumers, not around the block or a producer."""
    realize, anc = sch.block_of(block)
    idx = sch.index()
    scope = idx.scope_of(anc)
    name = realize.block.name
    cons = consumers_of(idx, scope, name)
    if not cons:
        return []
    prods = producers_of(idx, scope, name)
    first_anc = idx.blocks[cons[0]][1]
    out = []
    for a in first_anc:
        if not isinstance(a, For) or idx.scope_of(idx.loops[a.loop_var][1]) is not scope:
            continue
        if any(x is a for x in anc):
            continue
        if all(any(x is a for x in idx.blocks[c][1]) for c in cons) and \
                not any(any(x is a for x in idx.blocks[p][1]) for p in prods):
            out.append(a)
    return out


@primitive("sampling")
def sample_compute_location(sch, block, decision=None) -> Outcome:
    """Sample a loop to ``compute_at`` the block under; decision ``-1`` is the root (leave it where it is).

    The returned handle can be passed to ``compute_at`` directly (the root makes it a no-op).
    """
    cands = compute_location_candidates(sch, block)
    if decision is not None:
        if not isinstance(decision, int) or not (-1 <= decision < len(cands)):
            raise ScheduleArgumentError(f"the decision {decision!r} is not -1 (root) or an index into the "
                                        f"{len(cands)} candidate loops")
        k = decision
    else:
        k = sch._rng.randrange(-1, len(cands))
    if k == -1:
        return Outcome(outputs=("loop", "root"), decision=-1)
    return Outcome(outputs=("loop", cands[k].loop_var), decision=k)
