"""Loop kinds and annotations: ``parallel``, ``vectorize``, ``unroll``, ``bind``, ``annotate``, ``unannotate``,
and explicit access regions of a block: ``annotate_buffer_access``."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from ..ir.arith import Analyzer, infer_block_access_regions
from ..ir.buffer import Buffer
from ..ir.expr import Range, convert
from ..ir.functor import uses_var
from ..ir.node import FrozenDict
from ..ir.stmt import THREAD_TAGS, Block, BlockRealize, BufferRegion, ForKind, IterType
from .errors import ReductionLoopError, ScheduleArgumentError, AccessRegionError
from .legality import check_thread_extents
from .loop_legality import check_iterations_independent, check_no_reuse_across
from .state import Outcome
from .trace import BlockRV, IndexMapText, LoopRV
from .tree import all_realizes, rebuild, replace_many
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
    if kind != ForKind.UNROLLED:
        check_no_reuse_across(f, what)
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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> sch.parallel(i)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.parallel(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    """
    return _set_kind(sch, loop, ForKind.PARALLEL, "parallelize")


@primitive("annotations")
def vectorize(sch, loop: LoopRV) -> None:
    """Run the iterations of ``loop`` as SIMD lanes.

    Refused, like ``parallel``, when the loop feeds a reduction axis or one iteration
    reads or writes what another one writes.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> sch.vectorize(i)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.vectorized(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    """
    return _set_kind(sch, loop, ForKind.VECTORIZED, "vectorize")


@primitive("annotations")
def unroll(sch, loop: LoopRV) -> None:
    """Unroll ``loop`` completely.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> sch.unroll(i)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.unroll(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    """
    return _set_kind(sch, loop, ForKind.UNROLLED, "unroll")


@primitive("annotations")
def bind(sch, loop: LoopRV, thread_axis: str) -> None:
    """Bind ``loop`` to a GPU thread axis (``"blockIdx.x"``, ``"threadIdx.x"``, ``"vthread"``, ...).

    One kernel (everything under its outermost thread-bound loop) has one size per thread axis:
    binding is refused when another loop of the kernel is bound to the same axis with another
    extent, or when the loop's extent changes with a loop around it. Loops bound to ``threadIdx``
    inside another one bound to the same axis (a cooperative fetch) run on the same threads.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> sch.bind(i, "threadIdx.x")
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.thread_binding(8, thread="threadIdx.x"):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    """
    f, anc = sch.loop_of(loop)
    if thread_axis == "vthread":
        thread_axis = "vthread.x"
    if thread_axis not in THREAD_TAGS:
        raise ScheduleArgumentError(f"cannot bind loop {f.loop_var.name}: unknown thread axis {thread_axis!r}; "
                                    f"expected one of {', '.join(THREAD_TAGS)} or \"vthread\"", node=f)
    check_thread_extents(f, anc, thread_axis)
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

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> sch.annotate(i, "pragma_unroll", 4)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8, annotations={"pragma_unroll": 4}):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    """
    if not isinstance(ann_key, str) or not ann_key:
        raise ScheduleArgumentError(f"an annotation key must be a non-empty string, got {ann_key!r}")
    node, anc, _, _ = _target(sch, loop_or_block)
    ann = dict(node.annotations)
    ann[ann_key] = ann_val
    return Outcome(func=rebuild(sch.func, anc, node, node.replace(annotations=FrozenDict(ann))))


@primitive("annotations")
def unannotate(sch, loop_or_block, ann_key: str) -> None:
    """Remove the annotation ``ann_key`` from a loop or block (the error lists the keys there are).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> sch.annotate(sch.get_block("B"), "note", 1)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                wb.block_attr({"note": 1})
                B[v_i] = A[v_i] * 2.0
    >>> sch.unannotate(sch.get_block("B"), "note")
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
        for i in wb.serial(8):
            with wb.block("B"):
                v_i, = wb.axis.remap("S", [i])
                wb.reads(A[v_i])
                wb.writes(B[v_i])
                B[v_i] = A[v_i] * 2.0
    """
    node, anc, _, what = _target(sch, loop_or_block)
    if ann_key not in node.annotations:
        raise ScheduleArgumentError(f"{what} has no annotation {ann_key!r}; its annotations are: "
                                    f"{', '.join(map(repr, node.annotations)) or 'none'}", node=node)
    ann = {k: v for k, v in node.annotations.items() if k != ann_key}
    return Outcome(func=rebuild(sch.func, anc, node, node.replace(annotations=FrozenDict(ann))))


@primitive("annotations")
def annotate_buffer_access(sch, block: BlockRV, buffer_index: int, buf_type: str,
                           gen_new_ranges: Callable) -> Outcome:
    """Set the region of the ``buffer_index``-th read (``buf_type="read"``) or write (``"write"``) buffer of
    ``block`` explicitly, as TVM's primitive does: later primitives (``read_at``, ``compute_at``, ...) use it
    instead of the inferred one.

    ``gen_new_ranges`` takes the block's iteration variables and returns one entry per buffer
    dimension: ``(begin, end)`` for the range ``[begin, end)``, or one index. Refused when the new
    region does not provably cover what the block accesses (the inferred region) or may reach
    outside the buffer, since later primitives would then copy or compute the wrong elements.
    The block gets the annotation ``explicit_read_region`` / ``explicit_write_region`` (the
    buffer indices set), as in TVM.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 8), "float32", name="A")
    >>> B = te.compute((4, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((4, 8), "float32")):
        for i, j in wb.grid(4, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, v_j])
                wb.writes(B[v_i, v_j])
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    >>> sch.annotate_buffer_access(sch.get_block("B"), 0, "read", lambda vi, vj: (vi, (0, 8)))
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 8), "float32"), B: wb.Buffer((4, 8), "float32")):
        for i, j in wb.grid(4, 8):
            with wb.block("B"):
                v_i, v_j = wb.axis.remap("SS", [i, j])
                wb.reads(A[v_i, 0:8])
                wb.writes(B[v_i, v_j])
                wb.block_attr({"explicit_read_region": [0]})
                B[v_i, v_j] = A[v_i, v_j] * 2.0
    """
    realize, _ = sch.block_of(block)
    blk = realize.block
    if buf_type not in ("read", "write"):
        raise ScheduleArgumentError(f"annotate_buffer_access: buf_type must be \"read\" or \"write\", got {buf_type!r}",
                                    node=realize)
    regions = blk.reads if buf_type == "read" else blk.writes
    if not isinstance(buffer_index, int) or isinstance(buffer_index, bool) \
            or not 0 <= buffer_index < len(regions):
        names = ", ".join(f"{k}: {r.buffer.name}" for k, r in enumerate(regions)) or "none"
        raise ScheduleArgumentError(f"block {blk.name} has no {buf_type} buffer number {buffer_index!r}; its "
                                    f"{buf_type} buffers are {names}", node=realize)
    buf = regions[buffer_index].buffer
    new = BufferRegion(buf, _new_ranges(blk, buf, gen_new_ranges, realize))
    _check_new_region(blk, buf_type, new, realize)
    key = f"explicit_{buf_type}_region"
    ann = dict(blk.annotations)
    ann[key] = sorted(set(ann.get(key, [])) | {buffer_index})
    changed = tuple(new if k == buffer_index else r for k, r in enumerate(regions))
    fields = {"reads": changed} if buf_type == "read" else {"writes": changed}
    new_blk = blk.replace(annotations=FrozenDict(ann), **fields)
    return Outcome(func=replace_many(sch.func, {id(realize): realize.replace(block=new_blk)}))


def _new_ranges(blk: Block, buf: Buffer, gen_new_ranges, realize: BlockRealize) -> tuple:
    fn = gen_new_ranges.fn if isinstance(gen_new_ranges, IndexMapText) else gen_new_ranges
    what = f"annotate_buffer_access of {buf.name} in block {blk.name}"
    if not callable(fn):
        raise ScheduleArgumentError(f"{what}: gen_new_ranges must be a function of the block's iteration variables "
                                    f"such as lambda vi, vj: ((vi, vi + 2), vj), got {gen_new_ranges!r}", node=realize)
    names = [iv.var.name for iv in blk.iter_vars]
    try:
        inspect.signature(fn).bind(*names)
    except TypeError:
        raise ScheduleArgumentError(f"{what}: gen_new_ranges must take the block's {len(names)} iteration variables "
                                    f"({', '.join(names)})", node=realize) from None
    except ValueError:
        pass  # no signature to check (a builtin): the call below reports a mismatch
    try:
        out = fn(*[iv.var for iv in blk.iter_vars])
    except (TypeError, ValueError) as err:
        raise ScheduleArgumentError(f"{what}: gen_new_ranges failed on the iteration variables ({err})",
                                    node=realize) from None
    out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    if len(out) != len(buf.shape):
        raise ScheduleArgumentError(f"{what}: gen_new_ranges gave {len(out)} ranges for a buffer of "
                                    f"{len(buf.shape)} dimensions", node=realize)
    return tuple(_one_range(x, what, realize) for x in out)


def _one_range(x, what: str, realize: BlockRealize) -> Range:
    try:
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise TypeError
            begin, end = convert(x[0]), convert(x[1])
            return Range(begin, Analyzer().simplify(end - begin))
        return Range(convert(x), convert(1))
    except (TypeError, ValueError):
        raise ScheduleArgumentError(f"{what}: each range must be (begin, end) or one index, got {x!r}",
                                    node=realize) from None


def _check_new_region(blk: Block, buf_type: str, new: BufferRegion, realize: BlockRealize) -> None:
    """The new region covers the inferred accesses and stays inside the buffer."""
    buf = new.buffer
    an = Analyzer()
    for iv in blk.iter_vars:
        an.bind(iv.var, iv.dom)
    reads, writes = infer_block_access_regions(blk)
    actual = next((r for r in (reads if buf_type == "read" else writes) if r.buffer is buf), None)
    verb = "reads" if buf_type == "read" else "writes"
    for d, (rng, dim) in enumerate(zip(new.region, buf.shape)):
        end = rng.min + rng.extent
        if not (an.can_prove(rng.min >= 0) and an.can_prove(end <= dim)):
            raise AccessRegionError(
                f"cannot annotate the {buf_type} region of {buf.name} in block {blk.name}: {new} may reach outside "
                f"{buf.name}'s shape in dimension {d} ({rng.min} to {end} against {dim})", node=realize)
        if actual is None:
            continue
        got = actual.region[d]
        if not (an.can_prove(rng.min <= got.min) and an.can_prove(got.min + got.extent <= end)):
            raise AccessRegionError(
                f"cannot annotate the {buf_type} region of {buf.name} in block {blk.name}: {new} does not cover "
                f"{actual}, which the block {verb}, in dimension {d} ([{got.min}, {got.min + got.extent}) is not "
                f"inside [{rng.min}, {end}))",
                detail="Later primitives copy or compute only the annotated region, so a region smaller than the "
                       "accesses would give wrong results.", node=realize)
