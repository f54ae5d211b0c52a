"""``DefaultSchedule``: a reasonable schedule for every tensor program of a module, so an untuned
model is fast out of the box.

Each kernel (as LegalizeOps/FuseTIR make them: ``te``-generated, possibly with symbolic sizes,
possibly a fused chain) is scheduled with the schedule primitives, by the kind of its blocks:

* **matmul-like** blocks (a reduction whose output has two or more dimensions and which reads two
  inputs): the spatial loops are tiled into an ``MR x NR`` register tile (``NR`` a whole number of
  vector registers of the target), accumulated in a ``local`` buffer (``cache_write``) over the
  whole reduction (``k`` outside the tile), the tile's rows unrolled and its columns vectorized,
  the outer tile loops fused and parallel; an elementwise epilogue (bias, GELU) is inlined into the
  write-back (``reverse_compute_inline``) or computed at the tile (``reverse_compute_at``);
* **elementwise producers** (casts, reshapes, ``x - max``) are inlined into their consumer
  (``compute_inline``);
* **row-wise chains** (softmax, layer_norm): the last block's outer spatial loops are fused and
  parallel, every producer is computed per row under them (``compute_at``), and the inner spatial
  loops are vectorized;
* **attention** (the chain ``scaled_dot_product_attention`` legalizes to): per head, keys transposed
  once, the whole chain computed per tile of query rows (``schedule_attention.py``);
* **reductions** and **elementwise** blocks left over: outer spatial loops fused and parallel, the
  innermost spatial loop vectorized.

A refused primitive (a :class:`~workbench.schedule.errors.ScheduleError`) only drops that step: the
kernel keeps a correct, maybe less optimised program, and the pass never fails. A vectorized loop
the code generator would keep scalar (a ``VectorizeWarning``) is not vectorized at all. Kernels with
a ``"tuned"`` or ``"scheduled"`` attribute are left alone; a kernel with a record in the tuning
``database`` (same workload and target) gets the best record's trace replayed instead.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64, 64), "float32", name="A")
>>> B = te.placeholder((64, 64), "float32", name="B")
>>> k = te.reduce_axis(64, name="k")
>>> C = te.compute((64, 64), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
>>> mod = wb.IRModule({"mm": wb.create_prim_func([A, B, C])})
>>> out = DefaultSchedule("llvm -mcpu=znver3")(mod)
>>> sorted({str(f.kind) for f in loops_of(out["mm"])} - {"serial"})
['parallel', 'unrolled', 'vectorized']
>>> out["mm"].attrs["scheduled"]
True
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

from ..ir.expr import Call, Var, as_int
from ..ir.function import IRModule, PrimFunc
from ..ir.functor import post_order_visit
from ..ir.stmt import BlockRealize, For, ForKind, IterType
from ..schedule.errors import ScheduleError
from ..schedule.state import Schedule
from .pass_infra import Pass
from .schedule_attention import is_attention_kernel, schedule_attention

#: attributes that mark a kernel as already scheduled: DefaultSchedule leaves it alone
DONE_ATTRS = ("tuned", "scheduled")
#: below this many elements of work a kernel's loops stay serial (a thread-pool launch costs more)
MIN_PARALLEL_WORK = 4096


class DefaultSchedule(Pass):
    """The pass ``IRModule -> IRModule`` that schedules every tensor program of a module for ``target``.

    ``database`` (a :class:`~workbench.tuning.Database` or the path of one): a kernel with a record
    for its workload and target gets the fastest record's trace replayed instead of the default.
    Scheduled kernels get the attribute ``"scheduled"`` (``"tuned"`` for a replayed record).
    """

    name = "DefaultSchedule"

    def __init__(self, target="llvm", database=None):
        from ..backend.target import Target

        self.target = Target(target)
        self.database = _as_database(database)

    def transform(self, mod: IRModule) -> IRModule:
        funcs = dict(mod.functions)
        changed = False
        for name, func in mod.functions.items():
            if isinstance(func, PrimFunc):
                new = self.schedule_func(func)
                changed |= new is not func
                funcs[name] = new
        return mod.replace(functions=funcs) if changed else mod

    def schedule_func(self, func: PrimFunc) -> PrimFunc:
        """The scheduled program of one kernel (``func`` itself when it is marked done)."""
        if any(func.attrs.get(a) for a in DONE_ATTRS):
            return func
        tuned = self._replay_best_record(func)
        if tuned is not None:
            return tuned.with_attr("tuned", True)
        return schedule_kernel(func, self.target).with_attr("scheduled", True)

    def _replay_best_record(self, func: PrimFunc) -> PrimFunc | None:
        if self.database is None:
            return None
        from ..schedule.trace import Trace
        from ..tuning.database import workload_key
        from ..tuning.space import program_key

        workload, tkey = workload_key(func, self.target)
        good = [r for r in self.database.records(workload, tkey) if r.ok and r.seconds]
        for rec in sorted(good, key=lambda r: r.seconds):
            try:
                sch = Trace.from_data(rec.trace).apply(func)
            except (ScheduleError, ValueError):
                continue   # a record the current primitives no longer replay: try the next best
            if program_key(sch.func) == rec.program:
                return sch.func
        return None

    def __repr__(self) -> str:
        return f"DefaultSchedule({str(self.target)!r})"


def _as_database(database):
    if database is None:
        return None
    from ..tuning.database import Database

    if isinstance(database, Database):
        return database
    if isinstance(database, (str, os.PathLike)):
        return Database(database)
    raise TypeError(f"DefaultSchedule: database must be a workbench.tuning.Database or a path, "
                    f"got {type(database).__name__}")


# -- the per-kernel schedule --------------------------------------------------------------------

@dataclass
class _Plan:
    """What one scheduling run knows: the target's lanes and the loops not to vectorize."""

    target: object
    no_vectorize: set = field(default_factory=set)
    done: set = field(default_factory=set)

    def lanes(self, dtype: str) -> int:
        return self.target.vector_lanes(dtype)


def schedule_kernel(func: PrimFunc, target="llvm") -> PrimFunc:
    """``func`` with the default schedule for ``target`` (see the module docstring).

    Vectorized loops that the code generator would keep scalar are found by lowering the result;
    the schedule is then made again without vectorizing them.
    """
    from ..backend.target import Target

    plan = _Plan(Target(target))
    for _ in range(4):
        sch = Schedule(func)
        _schedule(sch, plan)
        scalar = _loops_kept_scalar(sch.func) - plan.no_vectorize
        if not scalar:
            return sch.func
        plan.no_vectorize |= scalar
        plan.done.clear()
    return _unvectorize(sch.func)


def _schedule(sch: Schedule, plan: _Plan) -> None:
    _inline_producers(sch)
    if is_attention_kernel(sch) and _attempt(sch, _schedule_attention, plan):
        return
    for name in _top_blocks(sch):
        if name in plan.done or not _exists(sch, name):
            continue
        if _is_matmul(sch, name):
            _attempt(sch, _schedule_matmul, name, plan)
    _schedule_rows(sch, plan)
    for name in _top_blocks(sch):
        if name not in plan.done and _exists(sch, name):
            _attempt(sch, _schedule_plain, name, plan)


def _attempt(sch: Schedule, step: Callable, *args) -> bool:
    """Run ``step(fork, *args)`` on a fork of ``sch`` and keep it when no primitive refused."""
    trial = sch.fork()
    try:
        step(trial, *args)
    except ScheduleError:
        return False
    sch.__dict__.update(trial.__dict__)
    return True


def _try(sch: Schedule, method: str, *args, **kwargs):
    """One primitive that may be refused: its result, or None (the schedule unchanged)."""
    try:
        return getattr(sch, method)(*args, **kwargs)
    except ScheduleError:
        return None


def _apply(sch: Schedule, method: str, *args, **kwargs) -> bool:
    """One primitive that may be refused: whether it applied (refused: the schedule unchanged)."""
    try:
        getattr(sch, method)(*args, **kwargs)
    except ScheduleError:
        return False
    return True


# -- looking at blocks --------------------------------------------------------------------------

def _top_blocks(sch: Schedule) -> list[str]:
    """Names of the blocks directly under the root block, in program order."""
    idx = sch.index()
    return [name for name in idx.order
            if name != "root" and sum(isinstance(a, BlockRealize) for a in idx.blocks[name][1]) == 1]


def _exists(sch: Schedule, name: str) -> bool:
    return name in sch.index().blocks


def _block(sch: Schedule, name: str):
    return sch.index().block(name)


def _is_reduction(blk) -> bool:
    return any(iv.iter_type == IterType.REDUCE for iv in blk.iter_vars)


def _writes_param(sch: Schedule, blk) -> bool:
    params = set(sch.func.buffer_map.values())
    return any(w.buffer in params for w in blk.writes)


def _loop_kinds(sch: Schedule, name: str) -> list[str] | None:
    """"S"/"R" for each loop around the block when its loops are its iteration variables one to one
    (as ``te`` makes them), else None."""
    realize, _ = sch.block_of(sch.get_block(name))
    blk = realize.block
    loops = [sch.get(rv) for rv in sch.get_loops(sch.get_block(name))]
    if len(loops) != len(blk.iter_vars):
        return None
    by_var = {}
    for iv, value in zip(blk.iter_vars, realize.iter_values):
        if not isinstance(value, Var):
            return None
        by_var[value] = iv
    kinds = []
    for f in loops:
        iv = by_var.get(f.loop_var)
        if iv is None:
            return None
        kinds.append("R" if iv.iter_type == IterType.REDUCE else "S")
    return kinds


def _is_matmul(sch: Schedule, name: str) -> bool:
    """A reduction with an output of two or more dimensions that reads two inputs."""
    blk = _block(sch, name)
    if not _is_reduction(blk) or len(blk.writes) != 1 or len(blk.writes[0].region) < 2:
        return False
    out = blk.writes[0].buffer
    inputs = {r.buffer for r in blk.reads if r.buffer is not out}
    kinds = _loop_kinds(sch, name)
    if len(inputs) < 2 or kinds is None or kinds.count("S") < 2:
        return False
    return _reads_like_matmul(blk, out)


def _reads_like_matmul(blk, out) -> bool:
    """Some input is read without the column variable (``A[i, k]``) and another without the row variable
    (``B[k, j]``), both along the reduction: a row-wise reduction such as layer_norm's variance
    (``X[i, j, k]`` and ``mean[i, j]``) is not a matmul."""
    spatial = [iv.var for iv in blk.iter_vars if iv.iter_type != IterType.REDUCE]
    reduce_ = {iv.var for iv in blk.iter_vars if iv.iter_type == IterType.REDUCE}
    row, col = spatial[-2], spatial[-1]
    used = []
    for r in blk.reads:
        if r.buffer is out:
            continue
        names = set()
        for rng in r.region:
            post_order_visit(rng.min, lambda n: names.add(n) if isinstance(n, Var) else None)
        if names & reduce_:
            used.append(names)
    return any(col not in u for u in used) and any(row not in u for u in used)


#: calls as cheap as arithmetic (bit manipulation of packed weights): they do not keep a block from inlining
CHEAP_CALLS = frozenset({"reinterpret", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "shift_left",
                         "shift_right"})


def _has_call(blk) -> bool:
    """Whether the block calls an expensive intrinsic (``exp``, ``sigmoid``; bit operations do not count)."""
    found = []
    post_order_visit(blk.body, lambda n: found.append(n)
                     if isinstance(n, Call) and n.op not in CHEAP_CALLS else None)
    return bool(found)


# -- inlining -----------------------------------------------------------------------------------

def _inline_producers(sch: Schedule) -> None:
    """Inline every elementwise block that writes an intermediate buffer read by one block only
    (into a reduction only when it is cheap: no calls such as ``exp``)."""
    changed = True
    while changed:
        changed = False
        for name in _top_blocks(sch):
            blk = _block(sch, name)
            if _is_reduction(blk) or _writes_param(sch, blk):
                continue
            consumers = sch.get_consumers(sch.get_block(name))
            if len(consumers) != 1:
                continue
            if _is_reduction(sch.get(consumers[0])) and _has_call(blk):
                continue
            if _apply(sch, "compute_inline", sch.get_block(name)):
                changed = True
                break


# -- matmul -------------------------------------------------------------------------------------

def _register_tile(lanes: int) -> tuple[int, int]:
    """(rows, columns) of the register tile: two vectors per row, as many rows as half the vector
    registers allow (4 x 16 with AVX2, 8 x 32 with AVX-512)."""
    return (8 if lanes >= 16 else 4), 2 * lanes


def _column_tile(extent: int | None, lanes: int) -> int | None:
    """The register tile's width for a column loop of ``extent``: two vectors, else one, else a
    divisor of the extent between one and four vectors wide; None when none divides it."""
    if extent is None:
        return None
    for nr in (2 * lanes, lanes):
        if extent % nr == 0:
            return nr
    for nr in range(4 * lanes, lanes - 1, -1):
        if extent % nr == 0:
            return nr
    return None


def _schedule_matmul(sch: Schedule, name: str, plan: _Plan) -> None:
    """Register-tile a matmul-like block (see the module docstring)."""
    blk = _block(sch, name)
    kinds = _loop_kinds(sch, name)
    block = sch.get_block(name)
    loops = sch.get_loops(block)
    spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
    reduce_ = [lp for lp, k in zip(loops, kinds) if k == "R"]
    lanes = plan.lanes(blk.writes[0].buffer.dtype)
    mr, _ = _register_tile(lanes)
    batch, i, j = spatial[:-2], spatial[-2], spatial[-1]
    nr = _column_tile(as_int(sch.get(j).extent), lanes)
    i_ext = as_int(sch.get(i).extent)
    if i_ext is not None and i_ext % mr:
        mr = next(m for m in (mr, 4, 2, 1) if i_ext % m == 0) if i_ext >= mr else i_ext
    io, ii = sch.split(i, factors=[None, mr])
    if nr is None:   # no register tile across columns: the whole row of j, vectorized (strip-mined)
        sch.reorder(*batch, io, *reduce_, ii, j)
        _apply(sch, "decompose_reduction", block, reduce_[0])
        _epilogue_at(sch, block, io, plan)   # before fusing: fused symbolic loops bind by // and %
        _parallel(sch, _fuse(sch, [*batch, io]), _work(sch, block))
        _apply(sch, "unroll", ii)
        _vectorize(sch, j, plan)
        _vectorize_init(sch, name, plan)
        plan.done.update({name, sch.get(block).name})
        return
    if nr % lanes == 0:
        _attempt(sch, _pack_transposed_b, name, plan, nr)
        loops = sch.get_loops(block)   # packing keeps the block's loops; refresh the handles' program
    jo, ji = sch.split(j, factors=[None, nr])
    jv_o, jv = sch.split(ji, factors=[None, lanes]) if nr % lanes == 0 and nr > lanes else (None, ji)
    tile = [x for x in (ii, jv_o, jv) if x is not None]
    # symbolic rows: the column panels (and constant batch loops such as heads) outermost and parallel, the
    # symbolic loops serial inside, so the row tile's position is never a fused symbolic `f % ((seq + 7) // 8)`
    symbolic_rows = any(as_int(sch.get(lp).extent) is None for lp in (*batch, io))
    const_batch = [lp for lp in batch if as_int(sch.get(lp).extent) is not None]
    if symbolic_rows:
        outer = [jo, *const_batch, *[lp for lp in batch if lp not in const_batch], io]
    else:
        outer = [*batch, jo, io]
    sch.reorder(*outer, *reduce_, *tile)
    write_back = _try(sch, "cache_write", block, 0, "local")
    if write_back is not None:
        sch.reverse_compute_at(write_back, io)
        _apply(sch, "decompose_reduction", block, reduce_[0])
        _epilogue_inline_or_at(sch, write_back, io, plan)
        _vectorize_innermost(sch, write_back, plan)
    else:
        _apply(sch, "decompose_reduction", block, reduce_[0])
        _epilogue_at(sch, block, io, plan)
    _vectorize_init(sch, name, plan)
    _parallel(sch, _fuse(sch, [jo, *const_batch] if symbolic_rows else outer), _work(sch, block))
    for loop in tile[:-1]:
        _apply(sch, "unroll", loop)
    _vectorize(sch, jv, plan)
    plan.done.update({name, sch.get(block).name})
    if write_back is not None:
        plan.done.add(sch.get(write_back).name)


def _schedule_attention(sch: Schedule, plan: _Plan) -> None:
    plan.done.update(schedule_attention(sch, lambda s, loop: _vectorize(s, loop, plan)))


def _pack_transposed_b(sch: Schedule, name: str, plan: _Plan, nr: int) -> None:
    """For ``C[i, j] += A[i, k] * W[j, k]`` (``W`` 2-D, as a linear layer's weight): copy ``W`` once
    into panels ``[j // nr, k, j % nr]`` so that the register tile reads ``nr`` contiguous columns."""
    realize, _ = sch.block_of(sch.get_block(name))
    blk = realize.block
    spatial = [iv.var for iv in blk.iter_vars if iv.iter_type != IterType.REDUCE]
    reduce_ = [iv.var for iv in blk.iter_vars if iv.iter_type == IterType.REDUCE]
    j = spatial[-1]
    for k_read, r in enumerate(blk.reads):
        idx = [rng.min for rng in r.region]
        if len(idx) == 2 and idx[0] is j and len(reduce_) == 1 and idx[1] is reduce_[0] \
                and r.buffer in set(sch.func.buffer_map.values()):
            break
    else:
        raise _NotApplicable(f"block {name} does not read a transposed 2-D weight")
    from ..schedule.trace import index_map_from_text

    packed = sch.cache_read(sch.get_block(name), k_read, "global")
    sch.transform_layout(packed, ("write", 0), index_map_from_text(f"lambda j, k: (j // {nr}, k, j % {nr})"))
    j_loop, k_loop = sch.get_loops(packed)
    jo, ji = sch.split(j_loop, factors=[None, nr])
    sch.reorder(jo, k_loop, ji)
    _parallel(sch, jo, _work(sch, packed))
    plan.done.add(sch.get(packed).name)


def _fuse(sch: Schedule, loops: list):
    return sch.fuse(*loops) if len(loops) > 1 else loops[0]


def _epilogue_inline_or_at(sch: Schedule, write_back, at, plan: _Plan) -> None:
    """The elementwise consumer of the matmul's write-back: inlined into it, else computed at the tile."""
    consumer = _single_spatial_consumer(sch, write_back)
    if consumer is None:
        return
    if not _apply(sch, "reverse_compute_inline", consumer):
        _epilogue_at(sch, write_back, at, plan)


def _epilogue_at(sch: Schedule, block, at, plan: _Plan) -> None:
    """Compute the single elementwise consumer of ``block`` under the tile loop ``at``."""
    consumer = _single_spatial_consumer(sch, block)
    if consumer is None or not _apply(sch, "reverse_compute_at", consumer, at):
        return
    _vectorize_innermost(sch, consumer, plan)
    plan.done.add(sch.get(consumer).name)


def _single_spatial_consumer(sch: Schedule, block):
    consumers = sch.get_consumers(block)
    if len(consumers) != 1 or _is_reduction(sch.get(consumers[0])):
        return None
    return consumers[0]


def _vectorize_init(sch: Schedule, name: str, plan: _Plan) -> None:
    """Vectorize the innermost loop of the init block ``decompose_reduction`` made."""
    init = f"{name}_init"
    if _exists(sch, init):
        _vectorize_innermost(sch, sch.get_block(init), plan)
        plan.done.add(init)


# -- row-wise chains (softmax, layer_norm) ------------------------------------------------------

def _schedule_rows(sch: Schedule, plan: _Plan) -> None:
    """For each output block with producers not yet scheduled: parallel over its outer spatial
    loops, each producer computed per row under them, inner spatial loops vectorized."""
    for name in reversed(_top_blocks(sch)):
        if name in plan.done or not _exists(sch, name):
            continue
        blk = _block(sch, name)
        producers = [p for p in sch.get_producers(sch.get_block(name)) if sch.get(p).name not in plan.done]
        if not _writes_param(sch, blk) or not producers:
            continue
        _attempt(sch, _schedule_row_chain, name, plan)


def _schedule_row_chain(sch: Schedule, name: str, plan: _Plan) -> None:
    kinds = _loop_kinds(sch, name)
    if kinds is None or kinds[0] != "S":
        raise _NotApplicable(f"block {name} does not start with spatial loops")
    block = sch.get_block(name)
    loops = sch.get_loops(block)
    lead = next((k for k, kind in enumerate(kinds) if kind != "S"), len(kinds))
    row_loops = loops[:max(1, min(lead, len(kinds) - 1))]
    row = row_loops[-1]   # producers move here before the row loops are fused (symbolic fusion binds by // n)
    chain = _producer_chain(sch, name, plan)
    if not chain:
        raise _NotApplicable(f"block {name} has no producer to compute per row")
    moved = []
    for prod in reversed(chain):      # nearest producer first: each compute_at needs its consumers placed
        if _apply(sch, "compute_at", sch.get_block(prod), row):
            moved.append(prod)
    if not moved:
        raise _NotApplicable(f"no producer of block {name} can be computed per row")
    for prod in moved:
        _vectorize_spatial_tail(sch, prod, plan)
        plan.done.add(prod)
    _vectorize_spatial_tail(sch, name, plan)
    _parallel(sch, _fuse(sch, row_loops), _work(sch, block))
    plan.done.add(name)


def _producer_chain(sch: Schedule, name: str, plan: _Plan) -> list[str]:
    """The blocks (not yet scheduled) whose results reach block ``name``, in program order."""
    order = _top_blocks(sch)
    want, stack = set(), [name]
    while stack:
        for p in sch.get_producers(sch.get_block(stack.pop())):
            pname = sch.get(p).name
            if pname not in want and pname not in plan.done:
                want.add(pname)
                stack.append(pname)
    return [b for b in order if b in want]


def _vectorize_spatial_tail(sch: Schedule, name: str, plan: _Plan) -> None:
    """Vectorize the block's innermost loop when it is spatial; a reduction whose innermost loop is a
    reduce loop stays scalar."""
    kinds = _loop_kinds(sch, name)
    loops = sch.get_loops(sch.get_block(name))
    if kinds is not None and kinds and kinds[-1] == "S":
        _vectorize(sch, loops[-1], plan)
    elif kinds is None and not _is_reduction(_block(sch, name)) and loops:
        _vectorize(sch, loops[-1], plan)


# -- everything else ----------------------------------------------------------------------------

def _schedule_plain(sch: Schedule, name: str, plan: _Plan) -> None:
    """Outer spatial loops fused and parallel, the innermost spatial loop vectorized: elementwise
    blocks as one fused loop split by the vector width, reductions over their leading spatial loops
    (with a spatial innermost loop moved inside the reduction and vectorized where it reads contiguously)."""
    kinds = _loop_kinds(sch, name)
    if kinds is None:
        raise _NotApplicable(f"block {name}'s loops are not its iteration variables")
    block = sch.get_block(name)
    loops = sch.get_loops(block)
    if not loops:
        return
    work = _work(sch, block)
    if "R" not in kinds:
        _schedule_elementwise(sch, name, loops, plan, work)
    else:
        _schedule_reduction(sch, name, loops, kinds, plan, work)
    plan.done.add(name)


def _schedule_elementwise(sch: Schedule, name: str, loops: list, plan: _Plan, work: int | None) -> None:
    lanes = plan.lanes(_block(sch, name).writes[0].buffer.dtype)
    total = _product([as_int(sch.get(lp).extent) for lp in loops])
    if total is not None and total % lanes == 0:
        fused = _fuse(sch, loops)
        chunk = next(c for c in (4 * lanes, 2 * lanes, lanes) if total % c == 0)
        outer, inner = sch.split(fused, factors=[None, chunk])
        _parallel(sch, outer, work)
        _vectorize(sch, inner, plan)
        return
    if len(loops) > 1:
        outer = _fuse(sch, loops[:-1])
        _parallel(sch, outer, work)
    _vectorize(sch, loops[-1], plan)


def _schedule_reduction(sch: Schedule, name: str, loops: list, kinds: list, plan: _Plan, work) -> None:
    spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
    reduce_ = [lp for lp, k in zip(loops, kinds) if k == "R"]
    inner = _contiguous_spatial_loop(sch, name, spatial)
    if inner is not None and len(spatial) > 1:
        rest = [lp for lp in spatial if lp is not inner]
        sch.reorder(*rest, *reduce_, inner)
        _parallel(sch, _fuse(sch, rest), work)
        _vectorize(sch, inner, plan)
    elif spatial:
        lead = loops[:next(k for k, kind in enumerate(kinds) if kind == "R")]
        if lead:
            _parallel(sch, _fuse(sch, lead), work)


def _contiguous_spatial_loop(sch: Schedule, name: str, spatial: list):
    """The spatial loop whose variable is the last index of the block's reads (moved innermost and
    vectorized), or None."""
    realize, _ = sch.block_of(sch.get_block(name))
    blk = realize.block
    by_iv = {iv.var: v for iv, v in zip(blk.iter_vars, realize.iter_values)}
    loop_of = {sch.get(lp).loop_var: lp for lp in spatial}
    for r in blk.reads:
        if not r.region:
            continue
        last = r.region[-1].min
        if isinstance(last, Var) and last in by_iv and by_iv[last] in loop_of:
            return loop_of[by_iv[last]]
    return None


def _product(values: list[int | None]) -> int | None:
    out = 1
    for v in values:
        if v is None:
            return None
        out *= v
    return out


def _work(sch: Schedule, block) -> int | None:
    """Iterations of the loops around ``block`` (None when a size is symbolic)."""
    return _product([as_int(sch.get(lp).extent) for lp in sch.get_loops(block)])


def _parallel(sch: Schedule, loop, work: int | None) -> None:
    if work is None or work >= MIN_PARALLEL_WORK:
        _apply(sch, "parallel", loop)


def _vectorize(sch: Schedule, loop, plan: _Plan) -> None:
    if sch.get(loop).loop_var.name not in plan.no_vectorize:
        _apply(sch, "vectorize", loop)


def _vectorize_innermost(sch: Schedule, block, plan: _Plan) -> None:
    loops = sch.get_loops(block)
    if loops:
        _vectorize(sch, loops[-1], plan)


class _NotApplicable(ScheduleError):
    """A schedule step does not fit a block (its fork is dropped, like a refused primitive)."""


# -- vectorization check ------------------------------------------------------------------------

def _loops_kept_scalar(func: PrimFunc) -> set[str]:
    """Names of the loops marked vectorized that lowering would keep scalar (a ``VectorizeWarning``)."""
    from ..backend.lower import pipeline_for
    from ..backend.lower.vectorize import VectorizeWarning

    if not any(f.kind == ForKind.VECTORIZED for f in loops_of(func)):
        return set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VectorizeWarning)
        f = func
        for p in pipeline_for(None):
            f = p(f)
            if p.name == "vectorize":
                break
    marked = {f.loop_var.name for f in loops_of(func) if f.kind == ForKind.VECTORIZED}
    names = set()
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, VectorizeWarning) and text.startswith("loop "):
            name = text[len("loop "):].split(" ", 1)[0]
            if name not in marked and name.endswith("_v"):   # a strip-mined loop's vectors
                name = name[:-2]
            names.add(name)
    return names


def _unvectorize(func: PrimFunc) -> PrimFunc:
    """``func`` with every vectorized loop made serial (the last resort of :func:`schedule_kernel`)."""
    from ..ir.functor import Mutator

    class _Serial(Mutator):
        def visit_For(self, f: For):
            f = f.replace(body=self.visit(f.body))
            return f.replace(kind=ForKind.SERIAL) if f.kind == ForKind.VECTORIZED else f

    return func.with_body(_Serial().visit(func.body))


def loops_of(func: PrimFunc) -> list[For]:
    """Every ``For`` of ``func``, outermost first."""
    out: list[For] = []
    post_order_visit(func.body, lambda n: out.append(n) if isinstance(n, For) else None)
    return out[::-1]


__all__ = ["DefaultSchedule", "schedule_kernel", "loops_of", "DONE_ATTRS"]
