"""``loop_partition``: cut a loop's range into consecutive loops, each with its own copy of the body.

Unlike ``split`` (nested loops), the partitions are loops one after the other, so each
can be scheduled on its own (a main part and a remainder, for instance).
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from ..ir.expr import IntImm, Let, Var, as_int
from ..ir.functor import Mutator
from ..ir.stmt import Allocate, Block, For, ForKind, LetStmt, Stmt
from .errors import ScheduleArgumentError
from .loop_legality import check_plain_loop
from .loops import loop_names
from .primitive import primitive
from .state import Outcome
from .trace import LoopRV
from .tree import Index, all_realizes, fresh_name, rebuild


def _partition_sizes(f_loop: For, factors) -> list[int]:
    """The extents of the partitions: the factors, the ``None`` one inferred, the rest of the range added."""
    name = f_loop.loop_var.name
    extent = as_int(f_loop.extent)
    if isinstance(factors, (numbers.Integral, str, bytes, type(None))) or not hasattr(factors, "__len__"):
        raise ScheduleArgumentError(f"cannot partition loop {name}: factors must be a list such as [None, 32], "
                                    f"got {factors!r}", node=f_loop)
    sizes: list[int | None] = []
    for k, f in enumerate(factors):
        if isinstance(f, IntImm):
            f = f.value
        if f is not None and (isinstance(f, (bool, np.bool_)) or not isinstance(f, numbers.Integral)):
            raise ScheduleArgumentError(f"cannot partition loop {name}: factor {k} is {f!r}, expected an int or None "
                                        "(loop_partition needs constant partition sizes)", node=f_loop)
        if f is not None and int(f) <= 0:
            raise ScheduleArgumentError(f"cannot partition loop {name}: factor {k} is {int(f)}, but partition sizes "
                                        "must be positive (use None for the one size to infer)", node=f_loop)
        sizes.append(None if f is None else int(f))
    if not sizes:
        raise ScheduleArgumentError(f"cannot partition loop {name}: give at least one partition size", node=f_loop)
    if sizes.count(None) > 1:
        raise ScheduleArgumentError(f"cannot partition loop {name}: at most one factor may be None, "
                                    f"got {list(factors)!r}", node=f_loop)
    given = sum(s for s in sizes if s is not None)
    if given > extent or (None in sizes and given >= extent):
        raise ScheduleArgumentError(
            f"cannot partition loop {name}: the sizes {list(factors)!r} add up to {given}, "
            f"{'more than' if given > extent else 'all of'} the loop's extent {extent}"
            f"{'' if given > extent else ', leaving nothing for the None partition'}", node=f_loop)
    if None in sizes:
        sizes[sizes.index(None)] = extent - given
    elif given < extent:
        sizes.append(extent - given)   # as in TVM: the rest of the range is one more partition
    return sizes


def _refuse_allocations(f_loop: For) -> None:
    """Copies of a block that allocates a buffer would allocate the same buffer twice."""
    for realize in all_realizes(f_loop.body):
        blk = realize.block
        if blk.alloc_buffers or blk.match_buffers:
            kind = "allocates" if blk.alloc_buffers else "matches"
            buf = (blk.alloc_buffers or [m.buffer for m in blk.match_buffers])[0]
            raise ScheduleArgumentError(
                f"cannot partition loop {f_loop.loop_var.name}: block {blk.name} inside it {kind} buffer "
                f"{buf.name}, which each partition's copy would need its own version of", node=realize)


class _Copy(Mutator):
    """A copy of a loop body for one partition: fresh variables for everything it binds (loops, iteration
    variables, lets), blocks renamed ``<name>_<suffix>``."""

    def __init__(self, vmap: dict, suffix: str, taken_blocks: set[str]):
        self.vmap = {id(k): v for k, v in vmap.items()}
        self.suffix = suffix
        self.taken = taken_blocks

    def _renew(self, v: Var) -> None:
        self.vmap[id(v)] = Var(v.name, v.dtype)

    def visit_Var(self, v: Var):
        return self.vmap.get(id(v), v)

    def visit_For(self, s: For):
        self._renew(s.loop_var)
        return self.generic_visit(s)

    def visit_LetStmt(self, s: LetStmt):
        self._renew(s.var)
        return self.generic_visit(s)

    def visit_Let(self, e: Let):
        self._renew(e.var)
        return self.generic_visit(e)

    def visit_Block(self, b: Block):
        for iv in b.iter_vars:
            self._renew(iv.var)
        new = self.generic_visit(b)
        name = fresh_name(f"{b.name}_{self.suffix}", self.taken)
        self.taken.add(name)
        return new.replace(name=name)


def _refuse_allocate_stmts(f_loop: For) -> None:
    from ..ir.functor import post_order_visit

    found: list[Stmt] = []
    post_order_visit(f_loop.body, lambda n: found.append(n) if isinstance(n, Allocate) else None)
    if found:
        raise ScheduleArgumentError(f"cannot partition loop {f_loop.loop_var.name}: it contains an allocation of "
                                    f"{found[0].buffer.name}, which each partition would need its own version of",
                                    node=f_loop)


@primitive("loops")
def loop_partition(sch, loop: LoopRV, factors: Sequence, preserve_unit_iters: bool = True) -> Outcome:
    """Cut ``loop`` into consecutive loops over the parts of its range; returns the new loops.

    ``factors`` are the sizes of the parts in order; at most one may be ``None`` (the
    rest of the range). When the sizes add up to less than the extent, the rest is one
    more part (as in TVM: ``[2, 64]`` on 128 gives parts of 2, 64 and 62). Each part
    gets its own copy of the loop body: loop ``i`` becomes ``i0, i1, ...`` and each block
    ``B`` inside ``B_i0, B_i1, ...`` (TVM's names; TVM also wraps the parts in extra
    opaque blocks, workbench does not). The loop must be serial, unannotated, with a
    constant range. With ``preserve_unit_iters=False``, a part of size 1 binds its blocks
    to the constant instead of its loop variable.

    The order of iterations is unchanged, so every program keeps its meaning; a reduction
    block's init stays in the part where its reduction axes start (its domains are kept).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())        # before
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> i0, i1 = sch.loop_partition(sch.get_loops(sch.get_block("B"))[0], factors=[None, 3])
    >>> print(sch.func.script())        # after
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i0 in wb.serial(5):
            with wb.block("B_i0"):
                v_i = wb.axis.spatial(8, i0)
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
        for i1 in wb.serial(5, 8):
            with wb.block("B_i1"):
                v_i = wb.axis.spatial(8, i1)
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    """
    f_loop, anc = sch.loop_of(loop)
    name = f_loop.loop_var.name
    check_plain_loop(f_loop, "partition")
    lo, extent = as_int(f_loop.min), as_int(f_loop.extent)
    if lo is None or extent is None:
        raise ScheduleArgumentError(f"cannot partition loop {name}: its range `{f_loop.min}`, extent "
                                    f"`{f_loop.extent}` is not constant; split it instead", node=f_loop)
    if not isinstance(preserve_unit_iters, (bool, np.bool_)):
        raise ScheduleArgumentError(f"cannot partition loop {name}: preserve_unit_iters must be True or False, "
                                    f"got {preserve_unit_iters!r}", node=f_loop)
    sizes = _partition_sizes(f_loop, factors)
    _refuse_allocations(f_loop)
    _refuse_allocate_stmts(f_loop)
    taken_loops = loop_names(sch.func)
    taken_blocks = set(Index(sch.func).order)
    dtype = f_loop.loop_var.dtype
    parts, start = [], lo
    for k, size in enumerate(sizes):
        var = Var(fresh_name(f"{name}{k}", taken_loops), dtype)
        taken_loops.add(var.name)
        value = IntImm(start, dtype) if size == 1 and not preserve_unit_iters else var
        body = _Copy({f_loop.loop_var: value}, var.name, taken_blocks).visit(f_loop.body)
        parts.append(For(var, IntImm(start, dtype), IntImm(size, dtype), ForKind.SERIAL, body))
        start += size
    new_func = rebuild(sch.func, anc, f_loop, parts)
    return Outcome(func=new_func, outputs=[("loop", p.loop_var) for p in parts])
