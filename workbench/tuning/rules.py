"""Schedule rules: how the tuner's generated search space schedules each block of a program.

A rule looks at one block of a :class:`~workbench.schedule.Schedule` and applies
primitives to it, drawing tile sizes with sampling primitives (``sample_perfect_tile``)
so that every decision is in the trace and can be mutated. *Structural* choices (where
the accumulator is written back, whether ``B`` is packed) are drawn from the
:class:`RuleContext`'s Python random generator instead: they shape the trace itself, and
the search keeps them fixed while it mutates the sampled decisions.

The rules, in the order :func:`apply_rules` runs them:

* :func:`auto_inline`: elementwise producers (padding, casts, ``exp`` before a sum) are
  inlined into their consumers;
* :func:`multi_level_tiling`: blocks with spatial and reduction loops (matmul, conv2d)
  are tiled ``S0 S1 R0 S2 R1 S3`` with sampled tile sizes, the innermost spatial tile a
  whole number of vector registers; the accumulator is cached in a ``local`` buffer written
  back under a chosen tile level; optionally ``B`` is packed into vector-wide panels
  (``cache_read`` + ``transform_layout``); the outer spatial tiles are fused and parallel,
  the register tile unrolled and its lanes vectorized. An elementwise consumer (a bias,
  a ReLU) is moved under the same tile as the write-back. For ``uint8 x int8 -> int32``
  the inner ``lanes x 4`` tile is tensorized with a registered dot-product intrinsic the
  target supports (VNNI on AVX-512);
* :func:`add_rfactor`: reductions with little spatial work split their reduction loop and
  ``rfactor`` it, so that the partial sums run in parallel;
* :func:`parallel_vectorize`: every other block gets its outer spatial loops fused and
  parallel and its innermost spatial loop split and vectorized.

Each rule works on a fork of the schedule and is dropped when a primitive refuses, so
one rule that does not fit a block never spoils the candidate.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64, 64), "float32", name="A")
>>> B = te.placeholder((64, 64), "float32", name="B")
>>> k = te.reduce_axis(64, name="k")
>>> C = te.compute((64, 64), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
>>> sch = wb.Schedule(wb.create_prim_func([A, B, C]), seed=0)
>>> ctx = RuleContext("llvm -mcpu=znver3", seed=0)
>>> apply_rules(sch, ctx)
>>> sorted(ctx.applied)
['multi_level_tiling:C']
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..ir.expr import Var, as_int
from ..ir.stmt import BlockRealize, IterType
from ..schedule.errors import ScheduleError

#: intrinsics that are not exact for every input (``vpmaddubsw`` saturates pair sums at int16):
#: the rules never pick them, since a candidate must compute what the program says
INEXACT_INTRINS = frozenset({"dot_u8s8_avx2"})


@dataclass
class RuleContext:
    """What the rules need to know: the target, the random generator of structural choices,
    and a record of the choices made and the rules applied (the candidate's *sketch*)."""

    target: object
    seed: int = 0
    choices: dict = field(default_factory=dict)
    applied: list = field(default_factory=list)
    done: set = field(default_factory=set)

    def __post_init__(self):
        from ..backend.target import Target

        self.target = Target(self.target)
        self.rng = random.Random(self.seed)

    def lanes(self, dtype: str) -> int:
        """Elements of ``dtype`` in one vector register of the target."""
        return self.target.vector_lanes(dtype)

    def choose(self, key: str, options: list):
        """A structural choice, recorded in ``choices`` under ``key``."""
        value = options[self.rng.randrange(len(options))]
        self.choices[key] = value
        return value


# -- block analysis -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockInfo:
    """A block whose loops are one-to-one with its iteration variables (as ``te`` makes them)."""

    name: str
    kinds: tuple       # "S" / "R" per loop, outermost first
    extents: tuple     # constant extent per loop
    iter_vars: tuple   # the block's iteration Vars, in loop order
    block: object


def block_info(sch, block) -> BlockInfo | None:
    """The block's loop structure, or None when its loops are not its iteration variables one to one
    or an extent is not constant."""
    realize, _ = sch.block_of(block)
    loops = [sch.get(rv) for rv in sch.get_loops(block)]
    blk = realize.block
    if len(loops) != len(blk.iter_vars):
        return None
    by_loop = {}
    for iv, value in zip(blk.iter_vars, realize.iter_values):
        if not isinstance(value, Var):
            return None
        by_loop[value] = iv
    kinds, extents, ivs = [], [], []
    for f in loops:
        iv = by_loop.get(f.loop_var)
        ext = as_int(f.extent)
        if iv is None or ext is None:
            return None
        kinds.append("R" if iv.iter_type == IterType.REDUCE else "S")
        extents.append(ext)
        ivs.append(iv.var)
    return BlockInfo(blk.name, tuple(kinds), tuple(extents), tuple(ivs), blk)


def _writes_param(sch, blk) -> bool:
    params = set(sch.func.buffers)
    return any(w.buffer in params for w in blk.writes)


def _try(sch, fn, *args) -> object | None:
    """Run ``fn(fork, *args)`` on a fork of ``sch``; the fork when every primitive applied, else None."""
    trial = sch.fork()
    try:
        fn(trial, *args)
    except ScheduleError:
        return None
    return trial


# -- rules --------------------------------------------------------------------------------------

def auto_inline(sch, ctx: RuleContext):
    """Inline every spatial block that writes an intermediate buffer into its consumers."""
    changed = True
    while changed:
        changed = False
        for name in _top_blocks(sch):
            blk = sch.index().block(name)
            if any(iv.iter_type == IterType.REDUCE for iv in blk.iter_vars) or _writes_param(sch, blk):
                continue
            trial = _try(sch, lambda s, n: s.compute_inline(s.get_block(n)), name)
            if trial is not None:
                sch = trial
                ctx.applied.append(f"auto_inline:{name}")
                changed = True
                break
    return sch


def _top_blocks(sch) -> list[str]:
    """Names of the blocks directly under the root block, in program order."""
    idx = sch.index()
    return [name for name in idx.order
            if name != "root" and sum(isinstance(a, BlockRealize) for a in idx.blocks[name][1]) == 1]


def _dot_intrin(ctx: RuleContext, a_dtype: str, b_dtype: str, acc: str):
    """The widest registered ``C[lanes] += A[group] * B[lanes, group]`` intrinsic for these dtypes that the
    target supports: ``(name, lanes, group)``, or None."""
    from ..schedule.tensor_intrin.registry import _REGISTRY, _load_builtins

    _load_builtins()
    best = None
    for name, intrin in sorted(_REGISTRY.items()):
        bufs = intrin.desc.buffers
        if name in INEXACT_INTRINS or len(bufs) != 3 or not all(ctx.target.has(f) for f in intrin.target_features):
            continue
        a, b, c = bufs
        if (a.dtype, b.dtype, c.dtype) != (a_dtype, b_dtype, acc) or len(a.shape) != 1 or len(b.shape) != 2 \
                or len(c.shape) != 1:
            continue
        group, lanes = as_int(a.shape[0]), as_int(c.shape[0])
        if (as_int(b.shape[0]), as_int(b.shape[1])) != (lanes, group):
            continue
        if best is None or lanes > best[1]:
            best = (name, lanes, group)
    return best


def _read_index(blk, buffer) -> int:
    return next(k for k, r in enumerate(blk.reads) if r.buffer is buffer)


def _matmul_operands(info: BlockInfo):
    """For ``C[i, j] (+)= A[i, k] * B[k, j]`` shaped blocks: ``(A, B)`` buffers (B indexed ``[k, j]`` with
    ``j`` the last spatial loop), else None."""
    spatial = [v for v, kind in zip(info.iter_vars, info.kinds) if kind == "S"]
    reduce_ = [v for v, kind in zip(info.iter_vars, info.kinds) if kind == "R"]
    if len(reduce_) != 1 or len(info.block.reads) < 2:
        return None
    j, k = spatial[-1], reduce_[0]
    a = b = None
    for r in info.block.reads:
        idx = [rng.min for rng in r.region]
        if len(idx) == 2 and idx[0] is k and idx[1] is j:
            b = r.buffer
        elif len(idx) == 2 and idx[1] is k and any(idx[0] is v for v in spatial[:-1]):
            a = r.buffer
    return None if a is None or b is None else (a, b)


def multi_level_tiling(sch, block, ctx: RuleContext) -> None:
    """Tile a block with spatial and reduction loops ``S0 S1 R0 S2 R1 S3`` (see the module docstring)."""
    info = block_info(sch, block)
    if info is None or "R" not in info.kinds or "S" not in info.kinds or _spatial_work(info) < 64:
        raise _NotApplicable("the rule does not fit this block")
    name = info.name
    last_s = max(k for k, kind in enumerate(info.kinds) if kind == "S")
    out_dtype = info.block.writes[0].buffer.dtype
    operands = _matmul_operands(info)
    intrin = None
    if operands is not None:
        intrin = _dot_intrin(ctx, operands[0].dtype, operands[1].dtype, out_dtype)
    lanes = ctx.lanes(out_dtype) if intrin is None else intrin[1]
    group = 1 if intrin is None else intrin[2]
    if intrin is not None:
        _pack_b(sch, block, operands[1], lanes, group)
    elif operands is not None and info.extents[last_s] % lanes == 0 and ctx.choose(f"{name}.pack_b", [False, True]):
        _pack_b(sch, block, operands[1], lanes, 1)
    loops = sch.get_loops(block)
    levels = {"S": ([], [], [], []), "R": ([], [])}
    vec = None
    inner_r = None
    for k, (loop, kind, ext) in enumerate(zip(loops, info.kinds, info.extents)):
        if kind == "R" and intrin is not None:
            loop, inner_r = sch.split(loop, factors=[None, group])
        if k == last_s and ext % lanes == 0 and ext >= lanes:
            loop, vec = sch.split(loop, factors=[None, lanes])
        n = 4 if kind == "S" else 2
        inner_max = (4 if k == last_s else 8) if kind == "S" else 64
        factors = sch.sample_perfect_tile(loop, n=n, max_innermost_factor=inner_max)
        for level, piece in zip(levels[kind], sch.split(loop, factors=factors)):
            level.append(piece)
    s0, s1, s2, s3 = levels["S"]
    r0, r1 = levels["R"]
    tail = [x for x in (vec, inner_r) if x is not None]
    sch.reorder(*s0, *s1, *r0, *s2, *r1, *s3, *tail)
    write_level = ctx.choose(f"{name}.write_level", [0, 1])   # under the S0 or the S1 tiles (outside R0)
    at = (s0 if write_level == 0 else s1)[-1]
    write_back = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(write_back, at)
    consumer = _elementwise_consumer(sch, write_back)
    if info.block.init is not None:
        sch.decompose_reduction(block, r0[0])
    if consumer is not None:
        sch.reverse_compute_at(consumer, at)
        _vectorize_innermost(sch, consumer)
    _vectorize_innermost(sch, write_back)
    outer = sch.fuse(*s0) if len(s0) > 1 else s0[0]
    sch.parallel(outer)
    for loop in s3[-2:]:
        sch.unroll(loop)
    if intrin is not None:
        sch.tensorize(vec, intrin[0])
        ctx.applied.append(f"tensorize:{intrin[0]}")
    elif vec is not None:
        sch.vectorize(vec)
    else:
        sch.vectorize(s3[-1])
    if consumer is not None:
        ctx.done.add(sch.get(consumer).name)


def _pack_b(sch, block, b_buffer, lanes: int, group: int) -> None:
    """Copy ``B[k, j]`` once into panels ``[j // lanes, k, j % lanes]`` (``[j // lanes, k // group, j % lanes,
    k % group]`` for a dot-product intrinsic), copied in parallel."""
    from ..schedule.trace import index_map_from_text

    bp = sch.cache_read(block, _read_index(sch.get(block), b_buffer), "global")
    if group == 1:
        text = f"lambda k, j: (j // {lanes}, k, j % {lanes})"
    else:
        text = f"lambda k, j: (j // {lanes}, k // {group}, j % {lanes}, k % {group})"
    sch.transform_layout(bp, ("write", 0), index_map_from_text(text))
    k_loop, j_loop = sch.get_loops(bp)
    jo, ji = sch.split(j_loop, factors=[None, lanes])
    sch.reorder(jo, k_loop, ji)
    sch.parallel(jo)
    if group == 1:
        sch.vectorize(ji)


def _elementwise_consumer(sch, write_back):
    """The single spatial consumer of the write-back block that writes an output, if any."""
    consumers = sch.get_consumers(write_back)
    if len(consumers) != 1:
        return None
    blk = sch.get(consumers[0])
    if any(iv.iter_type == IterType.REDUCE for iv in blk.iter_vars):
        return None
    return consumers[0]


def _vectorize_innermost(sch, block) -> None:
    loops = sch.get_loops(block)
    if loops:
        sch.vectorize(loops[-1])


def add_rfactor(sch, block, ctx: RuleContext) -> None:
    """Split a reduction with little spatial work and ``rfactor`` it: the partial sums run in parallel."""
    info = block_info(sch, block)
    if info is None or "R" not in info.kinds:
        raise _NotApplicable("the rule does not fit this block")
    spatial = 1
    for kind, ext in zip(info.kinds, info.extents):
        spatial *= ext if kind == "S" else 1
    reduce_ext = 1
    for kind, ext in zip(info.kinds, info.extents):
        reduce_ext *= ext if kind == "R" else 1
    if spatial >= 64 or reduce_ext < 4 or info.kinds[-1] != "R":
        raise _NotApplicable("the rule does not fit this block")
    loops = sch.get_loops(block)
    r_loops = [lp for lp, kind in zip(loops, info.kinds) if kind == "R"]
    r = sch.fuse(*r_loops) if len(r_loops) > 1 else r_loops[0]
    factors = sch.sample_perfect_tile(r, n=2, max_innermost_factor=64)
    ro, _ = sch.split(r, factors=factors)
    rf = sch.rfactor(ro, 0)
    rf_loops = sch.get_loops(rf)
    sch.parallel(rf_loops[0])


def parallel_vectorize(sch, block, ctx: RuleContext) -> None:
    """Fuse the outer spatial loops and run them in parallel; split the innermost spatial loop of a
    spatial block with a sampled factor and vectorize its inside."""
    info = block_info(sch, block)
    if info is None:
        raise _NotApplicable("the rule does not fit this block")
    loops = sch.get_loops(block)
    lead = 0
    while lead < len(info.kinds) and info.kinds[lead] == "S":
        lead += 1
    if lead == 0:
        raise _NotApplicable("the rule does not fit this block")
    spatial_loops = loops[:lead]
    if lead == len(loops):   # all spatial: vectorize the inner part of the innermost loop
        lanes = ctx.lanes(info.block.writes[0].buffer.dtype)
        factors = sch.sample_perfect_tile(spatial_loops[-1], n=2, max_innermost_factor=4 * lanes)
        lo, li = sch.split(spatial_loops[-1], factors=factors)
        sch.vectorize(li)
        spatial_loops = spatial_loops[:-1] + [lo]
    outer = sch.fuse(*spatial_loops) if len(spatial_loops) > 1 else spatial_loops[0]
    sch.parallel(outer)


class _NotApplicable(ScheduleError):
    """A rule does not fit a block (its fork is dropped, like a refused primitive)."""


#: rules tried on each block in turn, first that applies wins; ``auto_inline`` runs before them
BLOCK_RULES = (multi_level_tiling, add_rfactor, parallel_vectorize)


def apply_rules(sch, ctx: RuleContext, rules=BLOCK_RULES) -> None:
    """Schedule every block of ``sch`` in place with the first of ``rules`` that applies to it
    (after :func:`auto_inline`); ``ctx.applied`` records which rule scheduled which block."""
    result = auto_inline(sch, ctx)
    for name in _top_blocks(result):
        for rule in rules:
            if name in ctx.done or not _exists(result, name):
                break   # scheduled along with another block, or removed by an earlier rule
            trial = _try(result, rule, result.get_block(name), ctx)
            if trial is not None:
                result = trial
                ctx.applied.append(f"{rule.__name__}:{name}")
                ctx.done.add(name)
                break
    _adopt(sch, result)


def _exists(sch, name: str) -> bool:
    return name in sch.index().blocks


def _spatial_work(info: BlockInfo) -> int:
    out = 1
    for kind, ext in zip(info.kinds, info.extents):
        out *= ext if kind == "S" else 1
    return out


def _adopt(sch, other) -> None:
    """Make ``sch`` the schedule ``other`` (a fork of it that went further)."""
    sch.__dict__.update(other.__dict__)


__all__ = ["RuleContext", "BlockInfo", "block_info", "apply_rules", "auto_inline", "multi_level_tiling",
           "add_rfactor", "parallel_vectorize", "BLOCK_RULES", "INEXACT_INTRINS"]
