"""Sampling: random choices recorded in the trace as decisions that can be replaced.

A schedule made with ``seed=`` samples reproducibly. ``decision=`` forces a choice
(that is how ``trace.apply(func, decisions=...)`` replays a changed decision).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..ir.expr import as_int
from ..ir.stmt import For
from .errors import ScheduleArgumentError
from .lookup import consumers_of, producers_of
from .primitive import primitive
from .state import Outcome


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

    The innermost factor is at most ``max_innermost_factor`` when given. The decision is
    the list of factors; ``decision=`` replays or forces one.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((16,), "float32", name="A")
    >>> B = te.compute((16,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]), seed=0)
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i in wb.serial(16):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> factors = sch.sample_perfect_tile(i, n=2, max_innermost_factor=4)
    >>> io, ii = sch.split(i, factors=factors)
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i_0, i_1 in wb.grid(4, 4):
            with wb.block("B"):
                v_i = wb.axis.spatial(16, i_0 * 4 + i_1)
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> print(sch.trace)
    b0 = sch.get_block("B")
    l1, = sch.get_loops(b0)
    v2, v3 = sch.sample_perfect_tile(l1, n=2, max_innermost_factor=4, decision=[4, 4])
    l4, l5 = sch.split(l1, [v2, v3])
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


def _tile_loop_extent(sch, loop, what: str) -> tuple[For, int]:
    f, _ = sch.loop_of(loop)
    ext = as_int(f.extent)
    if ext is None:
        raise ScheduleArgumentError(f"cannot {what} of loop {f.loop_var.name}: its extent `{f.extent}` is not a "
                                    "constant", node=f)
    return f, ext


def _positive_int(value, name: str, f: For, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScheduleArgumentError(f"cannot {what} of loop {f.loop_var.name}: {name} must be a positive int, "
                                    f"got {value!r}", node=f)
    return int(value)


def _product(xs) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


@primitive("sampling")
def sample_partitioned_tile(sch, loop, n: int, partition_pos: int = 0, innerpart_factor: int = 1,
                            decision=None) -> Outcome:
    """Sample ``n`` factors whose product is the loop's extent, where the factors from
    ``partition_pos`` on multiply to a multiple of ``innerpart_factor`` (TVM's
    ``sample_partitioned_tile``, used to keep an inner tile a multiple of a tensor-core
    size). The decision is the list of factors; ``decision=`` replays or forces one.

    Unlike TVM, which falls back to ``[None, 1, ...]`` when the extent is not a constant
    multiple of ``innerpart_factor``, and silently repairs a decision that does not fit,
    workbench refuses both with a message.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((16,), "float32", name="A")
    >>> B = te.compute((16,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]), seed=0)
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i in wb.serial(16):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> factors = sch.sample_partitioned_tile(i, n=2, partition_pos=1, innerpart_factor=4)
    >>> io, ii = sch.split(i, factors=factors)     # the inner factor is a multiple of 4
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i_0, i_1 in wb.grid(2, 8):
            with wb.block("B"):
                v_i = wb.axis.spatial(16, i_0 * 8 + i_1)
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> print(sch.trace)
    b0 = sch.get_block("B")
    l1, = sch.get_loops(b0)
    v2, v3 = sch.sample_partitioned_tile(l1, n=2, partition_pos=1, innerpart_factor=4, decision=[2, 8])
    l4, l5 = sch.split(l1, [v2, v3])
    """
    what = "sample partitioned tiles"
    f, ext = _tile_loop_extent(sch, loop, what)
    ln = f.loop_var.name
    n = _positive_int(n, "n", f, what)
    innerpart_factor = _positive_int(innerpart_factor, "innerpart_factor", f, what)
    if isinstance(partition_pos, bool) or not isinstance(partition_pos, int) or not 0 <= partition_pos < n:
        raise ScheduleArgumentError(f"cannot {what} of loop {ln}: partition_pos must be an int in 0..{n - 1}, "
                                    f"got {partition_pos!r}", node=f)
    if ext % innerpart_factor:
        raise ScheduleArgumentError(f"cannot {what} of loop {ln}: its extent {ext} is not a multiple of "
                                    f"innerpart_factor={innerpart_factor}", node=f)
    if decision is not None:
        dec = _checked_decision(decision, n, ext, f)
        if _product(dec[partition_pos:]) % innerpart_factor:
            raise ScheduleArgumentError(
                f"cannot use the decision {dec!r} for loop {ln}: its factors from position {partition_pos} on "
                f"multiply to {_product(dec[partition_pos:])}, not a multiple of innerpart_factor={innerpart_factor}",
                node=f)
    else:
        dec = [1] * n
        inner = _prime_factors(innerpart_factor)
        for p in inner:   # the inner part's primes go to the inner part, the rest anywhere
            dec[sch._rng.randrange(partition_pos, n)] *= p
        for p in _prime_factors(ext // innerpart_factor):
            dec[sch._rng.randrange(n)] *= p
    return Outcome(outputs=[("expr", x) for x in dec], decision=list(dec))


def _checked_decision(decision, n: int, ext: int, f: For) -> list[int]:
    try:
        dec = [int(x) for x in decision]
    except (TypeError, ValueError):
        raise ScheduleArgumentError(f"cannot use the decision {decision!r} for loop {f.loop_var.name}: it must be a "
                                    f"list of {n} ints", node=f) from None
    if len(dec) != n or any(x < 1 for x in dec) or _product(dec) != ext:
        raise ScheduleArgumentError(f"cannot use the decision {list(decision)!r} for loop {f.loop_var.name}: it must "
                                    f"be {n} positive factors multiplying to {ext}", node=f)
    return dec


@primitive("sampling")
def sample_categorical(sch, candidates: Sequence[int], probs: Sequence[float], decision=None) -> Outcome:
    """Sample one of ``candidates`` with probabilities ``probs``; the decision is the index.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((16,), "float32", name="A")
    >>> B = te.compute((16,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]), seed=0)
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i in wb.serial(16):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> v = sch.sample_categorical([2, 4, 8], [0.25, 0.5, 0.25])
    >>> io, ii = sch.split(i, factors=[None, v])
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
        for i_0, i_1 in wb.grid(2, 8):
            with wb.block("B"):
                v_i = wb.axis.spatial(16, i_0 * 8 + i_1)
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> print(sch.trace)
    b0 = sch.get_block("B")
    l1, = sch.get_loops(b0)
    v2 = sch.sample_categorical([2, 4, 8], probs=[0.25, 0.5, 0.25], decision=2)
    l3, l4 = sch.split(l1, factors=[None, v2])
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
    The candidates are the loops around all consumers of the block and around none of its
    producers, outermost first.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> C = te.compute((8,), lambda i: B[i] + 1.0, name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]), seed=0)
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
        for i in wb.serial(8):
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = B[v_i] + 1.0
    >>> b = sch.get_block("B")
    >>> loc = sch.sample_compute_location(b, decision=0)   # the first candidate: C's loop i
    >>> sch.compute_at(b, loc)
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
            with wb.block("C"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(B[v_i])
                wb.writes(C[v_i])
                C[v_i] = B[v_i] + 1.0
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
