"""Loop kinds and annotations: ``parallel``, ``vectorize``, ``unroll``, ``bind``, ``annotate``, ``unannotate``."""
from __future__ import annotations

from typing import Any

from ..ir.functor import uses_var
from ..ir.node import FrozenDict
from ..ir.stmt import THREAD_TAGS, ForKind, IterType
from .errors import ReductionLoopError, ScheduleArgumentError
from .loop_legality import check_iterations_independent
from .state import Outcome
from .trace import BlockRV, LoopRV
from .tree import all_realizes, rebuild
from .primitive import primitive


def _check_spatial(sch, loop: LoopRV, what: str):
    f, anc = sch.loop_of(loop)
    for r in all_realizes(f.body):
        for iv, val in zip(r.block.iter_vars, r.iter_values):
            if iv.iter_type != IterType.SPATIAL and uses_var(val, f.loop_var):
                kind = "reduction" if iv.iter_type == IterType.REDUCE else "opaque"
                raise ReductionLoopError(
                    f"cannot {what} loop {f.loop_var.name}: block {r.block.name} uses it for its {kind} axis "
                    f"{iv.var.name}, and iterations of a {kind} axis depend on each other",
                    detail="Only loops that feed spatial axes can run their iterations in parallel; "
                           "use rfactor to parallelize a reduction.", node=f)
    return f, anc


def _set_kind(sch, loop, kind: ForKind, what: str, thread: str | None = None) -> Outcome:
    if kind == ForKind.UNROLLED:
        f, anc = sch.loop_of(loop)
    else:
        f, anc = _check_spatial(sch, loop, what)
    if kind in (ForKind.PARALLEL, ForKind.VECTORIZED):
        check_iterations_independent(f, what)
    new = f.replace(kind=kind, thread=thread)
    return Outcome(func=rebuild(sch.func, anc, f, new))


@primitive("annotations")
def parallel(sch, loop: LoopRV) -> None:
    """Run the iterations of ``loop`` in parallel on CPU threads.

    The loop must feed only spatial (data-parallel) block axes, and no iteration may
    read or write what another iteration writes: ``B[vi] = B[vi - 1] + A[vi]`` is refused,
    naming the buffer and the block. Buffers allocated inside the loop are private to
    each iteration. Between two blocks inside the loop, accesses whose indices are not
    linear in the loops (after ``fuse``) are not judged.

    Before: ``for i in range(128):``; after ``sch.parallel(i)``: ``for i in wb.parallel(128):``.
    """
    return _set_kind(sch, loop, ForKind.PARALLEL, "parallelize")


@primitive("annotations")
def vectorize(sch, loop: LoopRV) -> None:
    """Run the iterations of ``loop`` as SIMD lanes.

    Refused, like ``parallel``, when the loop feeds a reduction axis or one iteration
    reads or writes what another one writes.

    Before: ``for j in range(16):``; after ``sch.vectorize(j)``: ``for j in wb.vectorized(16):``.
    """
    return _set_kind(sch, loop, ForKind.VECTORIZED, "vectorize")


@primitive("annotations")
def unroll(sch, loop: LoopRV) -> None:
    """Unroll ``loop`` completely.

    Before: ``for k in range(4):``; after ``sch.unroll(k)``: ``for k in wb.unroll(4):``.
    """
    return _set_kind(sch, loop, ForKind.UNROLLED, "unroll")


@primitive("annotations")
def bind(sch, loop: LoopRV, thread_axis: str) -> None:
    """Bind ``loop`` to a GPU thread axis (``"blockIdx.x"``, ``"threadIdx.x"``, ...).

    Before: ``for i in range(256):``; after ``sch.bind(i, "threadIdx.x")``:
    ``for i in wb.thread_binding(256, thread="threadIdx.x"):``.
    """
    if thread_axis not in THREAD_TAGS:
        f, _ = sch.loop_of(loop)
        raise ScheduleArgumentError(f"cannot bind loop {f.loop_var.name}: unknown thread axis {thread_axis!r}; "
                                    f"expected one of {', '.join(THREAD_TAGS)}", node=f)
    return _set_kind(sch, loop, ForKind.THREAD_BINDING, f"bind to {thread_axis}", thread=thread_axis)


def _target(sch, loop_or_block):
    if isinstance(loop_or_block, LoopRV):
        node, anc = sch.loop_of(loop_or_block)
        return node, anc, node, f"loop {node.loop_var.name}"
    if isinstance(loop_or_block, BlockRV):
        realize, anc = sch.block_of(loop_or_block)
        return realize.block, anc + (realize,), realize.block, f"block {realize.block.name}"
    raise ScheduleArgumentError(f"annotate needs a block or loop handle, got {loop_or_block!r}")


@primitive("annotations")
def annotate(sch, loop_or_block, ann_key: str, ann_val: Any) -> None:
    """Attach the annotation ``ann_key = ann_val`` to a loop or block.

    Before: ``for i in range(128):``; after ``sch.annotate(i, "pragma_unroll", 4)``:
    ``for i in wb.serial(128, annotations={"pragma_unroll": 4}):``.
    """
    if not isinstance(ann_key, str) or not ann_key:
        raise ScheduleArgumentError(f"an annotation key must be a non-empty string, got {ann_key!r}")
    node, anc, _, _ = _target(sch, loop_or_block)
    ann = dict(node.annotations)
    ann[ann_key] = ann_val
    return Outcome(func=rebuild(sch.func, anc, node, node.replace(annotations=FrozenDict(ann))))


@primitive("annotations")
def unannotate(sch, loop_or_block, ann_key: str) -> None:
    """Remove the annotation ``ann_key`` from a loop or block (the error lists the keys there are)."""
    node, anc, _, what = _target(sch, loop_or_block)
    if ann_key not in node.annotations:
        raise ScheduleArgumentError(f"{what} has no annotation {ann_key!r}; its annotations are: "
                                    f"{', '.join(map(repr, node.annotations)) or 'none'}", node=node)
    ann = {k: v for k, v in node.annotations.items() if k != ann_key}
    return Outcome(func=rebuild(sch.func, anc, node, node.replace(annotations=FrozenDict(ann))))
