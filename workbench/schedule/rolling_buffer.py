"""``rolling_buffer``: keep only the sliding window of an intermediate buffer, indexed modulo its size.

For chains of sliding-window operators (pooling after pooling, convolution after
convolution) tiled with ``compute_at``: consecutive tiles of the consumer need windows
of the producer that overlap. The rolling buffer keeps one window along the rolling
axis, addresses it modulo the window, and computes only the rows a tile adds.
"""
from __future__ import annotations

from ..ir.arith.linear import linear
from ..ir.buffer import Buffer
from ..ir.expr import (
    GE,
    LT,
    BufferLoad,
    FloorMod,
    IntImm,
    Range,
    logical_and,
    logical_or,
)
from ..ir.functor import Mutator, post_order_visit, substitute
from ..ir.stmt import BlockRealize, BufferRegion, BufferStore, For, ForKind, SeqStmt
from ..ir.structural import structural_equal
from .caching import _region_buffer
from .data_movement import (
    box_contains,
    dense_write_box,
    outer_analyzer,
    regions_of,
    relaxed_region,
)
from .errors import RollingBufferError
from .legality import allocating_block, buffer_users, loops_between
from .primitive import primitive
from .state import Outcome
from .trace import BlockRV


def _fail(blk_name: str, buf: Buffer, reason: str, node, detail: str = "") -> RollingBufferError:
    return RollingBufferError(f"cannot roll buffer {buf.name} of block {blk_name}: {reason}", detail=detail, node=node)


@primitive("rolling_buffer")
def rolling_buffer(sch, block: BlockRV, write_buffer_index: int) -> Outcome:
    """Shrink the intermediate buffer that ``block`` writes to its sliding window along one loop, indexed
    modulo the window, so that each iteration computes only the elements the previous one did not.

    Preconditions (as TVM's): the buffer is an intermediate written only by ``block``; the block
    and its consumers share a loop (``compute_at`` the producer into the consumer's tile loop);
    the region the block writes per iteration of that loop starts at ``stride * loop + c`` along
    some dimension and is longer than the stride (consecutive windows overlap). The outermost
    such loop is the rolling axis; along other overlapping dimensions only new elements are
    computed too. Refused also when the block does not provably write its whole window, a
    consumer reads outside the window of the same iteration, or the loop is not sequential.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((10,), "float32", name="A")
    >>> r = te.reduce_axis(3, name="r")
    >>> B = te.compute((8,), lambda i: te.max(A[i + r], axis=r), name="B")
    >>> s = te.reduce_axis(3, name="s")
    >>> C = te.compute((6,), lambda i: te.max(B[i + s], axis=s), name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> io, ii = sch.split(sch.get_loops(sch.get_block("C"))[0], factors=[None, 2])
    >>> sch.compute_at(sch.get_block("B"), io)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((10,), "float32"), C: wb.Buffer((6,), "float32")):
        B = wb.alloc_buffer((8,), "float32")
        for i_0 in wb.serial(3):
            for ax0, ax1 in wb.grid(4, 3):
                with wb.block("B"):
                    v_i = wb.axis.spatial(8, i_0 * 2 + ax0)
                    v_r = wb.axis.reduce(3, ax1)
                    wb.reads(A[v_i + v_r])
                    wb.writes(B[v_i])
                    with wb.init():
                        B[v_i] = wb.float32("-inf")
                    B[v_i] = wb.max(B[v_i], A[v_i + v_r])
            for i_1, s in wb.grid(2, 3):
                with wb.block("C"):
                    v_i = wb.axis.spatial(6, i_0 * 2 + i_1)
                    v_s = wb.axis.reduce(3, s)
                    wb.reads(B[v_i + v_s])
                    wb.writes(C[v_i])
                    with wb.init():
                        C[v_i] = wb.float32("-inf")
                    C[v_i] = wb.max(C[v_i], B[v_i + v_s])
    >>> sch.rolling_buffer(sch.get_block("B"), 0)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((10,), "float32"), C: wb.Buffer((6,), "float32")):
        B = wb.alloc_buffer((4,), "float32")
        for i_0 in wb.serial(3):
            for ax0, ax1 in wb.grid(4, 3):
                with wb.block("B"):
                    v_i = wb.axis.spatial(8, i_0 * 2 + ax0)
                    v_r = wb.axis.reduce(3, ax1)
                    wb.where(i_0 < 1 or ax0 >= 2)
                    wb.reads(A[v_i + v_r])
                    wb.writes(B[v_i % 4])
                    with wb.init():
                        B[v_i % 4] = wb.float32("-inf")
                    B[v_i % 4] = wb.max(B[v_i % 4], A[v_i + v_r])
            for i_1, s in wb.grid(2, 3):
                with wb.block("C"):
                    v_i = wb.axis.spatial(6, i_0 * 2 + i_1)
                    v_s = wb.axis.reduce(3, s)
                    wb.reads(B[(v_i + v_s) % 4])
                    wb.writes(C[v_i])
                    with wb.init():
                        C[v_i] = wb.float32("-inf")
                    C[v_i] = wb.max(C[v_i], B[(v_i + v_s) % 4])
    """
    realize, anc = sch.block_of(block)
    blk = realize.block
    buf = _region_buffer(blk, blk.writes, write_buffer_index, "write", realize)
    idx = sch.index()
    _check_intermediate(sch, idx, realize, buf)
    consumers = [idx.blocks[n] for n in buffer_users(idx, buf)[1] if n != blk.name]
    if not consumers:
        raise _fail(blk.name, buf, "no other block reads it, so there is no window to keep", realize)
    lca = _lowest_common_loop(blk.name, buf, realize, anc, consumers)
    loops = idx.loops_of(blk.name)
    inner = loops[loops.index(lca) + 1:]
    box = dense_write_box(realize, inner, buf)
    if isinstance(box, str):
        raise _fail(blk.name, buf, f"it cannot be shown to write its whole window in each iteration of loop "
                                   f"{lca.loop_var.name} ({box})", realize)
    axes = _sliding_axes(blk.name, buf, realize, box, loops)
    _check_consumers(blk.name, buf, realize, anc, lca, box, consumers)
    roll = min(axes, key=lambda a: loops.index(a[1]))
    new_func = _rewrite(sch.func, realize, buf, box, axes, roll)
    return Outcome(func=new_func)


def _check_intermediate(sch, idx, realize: BlockRealize, buf: Buffer) -> None:
    blk = realize.block
    if allocating_block(idx, buf) is None:
        raise _fail(blk.name, buf, "it is a parameter of the function, whose memory the caller reads in full",
                    realize, detail="Only intermediate buffers (wb.alloc_buffer) can be rolled.")
    writers = buffer_users(idx, buf)[0]
    other = [w for w in writers if w != blk.name]
    if other:
        raise _fail(blk.name, buf, f"block {other[0]} writes it too", realize)
    loads = []
    post_order_visit(blk.body, lambda n: loads.append(n) if isinstance(n, BufferLoad) and n.buffer is buf else None)
    store = blk.body
    if loads and not (isinstance(store, BufferStore) and
                      all(structural_equal(tuple(x.indices), tuple(store.indices)) for x in loads)):
        raise _fail(blk.name, buf, "the block reads other elements of the buffer than the one it writes", realize)


def _lowest_common_loop(name: str, buf: Buffer, realize, anc: tuple, consumers: list) -> For:
    """The innermost loop around the producer and all its consumers (they must share one scope)."""
    chains = [anc + (realize,)] + [c_anc + (c,) for c, c_anc in consumers]
    common = None
    for nodes in zip(*chains):
        if not all(x is nodes[0] for x in nodes):
            break
        if not isinstance(nodes[0], SeqStmt):
            common = nodes[0]
    if not isinstance(common, For):
        raise _fail(name, buf, "it and the blocks that read it share no loop", realize,
                    detail="Tile the consumer and compute_at the producer into its tile loop first.")
    between = [x for c, c_anc in [(realize, anc)] + consumers for x in c_anc[c_anc.index(common):]]
    if any(not isinstance(x, (For, SeqStmt)) for x in between):
        raise _fail(name, buf, f"a block or branch lies between loop {common.loop_var.name} and it or its "
                               "consumers", realize)
    return common


def _sliding_axes(name: str, buf: Buffer, realize, box: list, loops: list) -> list[tuple]:
    """``(dimension, loop, stride, offset, overlap)`` for each dimension whose window is
    ``stride * loop + offset`` and longer than the stride."""
    axes, used = [], {}
    for d, (start, ext) in enumerate(box):
        lin = linear(start)
        vars_ = [v for v in (lin or {}) if v is not None]
        if lin is None or len(vars_) > 1:
            raise _fail(name, buf, f"its window along dimension {d} starts at `{start}`, not at "
                                   "stride * loop + constant", realize)
        if not vars_:
            continue
        loop = next((f for f in loops if f.loop_var is vars_[0]), None)
        if loop is None:
            raise _fail(name, buf, f"its window along dimension {d} starts at `{start}`, which does not move with "
                                   "a loop", realize)
        stride = lin[vars_[0]]
        if loop.loop_var in used:
            raise _fail(name, buf, f"loop {loop.loop_var.name} moves its window along dimensions {used[loop.loop_var]} "
                                   f"and {d}", realize)
        used[loop.loop_var] = d
        overlap = ext.value - stride
        if stride <= 0 or overlap <= 0:
            continue
        if loop.kind not in (ForKind.SERIAL, ForKind.UNROLLED):
            raise _fail(name, buf, f"loop {loop.loop_var.name} is {loop.kind.value}, and a rolling window needs "
                                   "its iterations to run in order", loop)
        axes.append((d, loop, stride, lin.get(None, 0), overlap))
    if not axes:
        raise _fail(name, buf, "its windows in consecutive iterations of the loops do not overlap, so there is "
                               "nothing to reuse", realize,
                    detail="Lowering already shrinks an intermediate buffer to the window of one iteration.")
    return axes


def _check_consumers(name: str, buf: Buffer, realize, anc: tuple, lca: For, box: list, consumers: list) -> None:
    an = outer_analyzer(anc[:anc.index(lca) + 1])
    items = list(lca.body.seq) if isinstance(lca.body, SeqStmt) else [lca.body]

    def position(chain: tuple) -> int:
        top = chain[chain.index(lca) + 1]
        top = chain[chain.index(lca) + 2] if isinstance(top, SeqStmt) else top
        return next(k for k, s in enumerate(items) if s is top)

    producer_at = position(anc + (realize,))
    for c, c_anc in consumers:
        if position(c_anc + (c,)) <= producer_at:
            raise _fail(name, buf, f"block {c.block.name} reads it in loop {lca.loop_var.name} before or while it "
                                   "is written", c)
        region = relaxed_region(an, c, regions_of(c.block, "read", buf), buf, loops_between(c_anc, lca))
        if region is None or not box_contains(an, box, region):
            raise _fail(name, buf, f"block {c.block.name} reads elements outside the window computed in the same "
                                   f"iteration of loop {lca.loop_var.name}", c)


class _Roll(Mutator):
    """Swap the buffer, index the rolling dimension modulo the window, guard the producer."""

    def __init__(self, buf: Buffer, new: Buffer, dim: int, producer: BlockRealize, predicate):
        self.buf, self.new, self.dim = buf, new, dim
        self.producer, self.predicate = producer, predicate
        self.window = new.shape[dim]

    def visit_Buffer(self, b: Buffer) -> Buffer:
        return self.new if b is self.buf else b

    def _indices(self, indices: tuple) -> tuple:
        return tuple(FloorMod(x, self.window) if k == self.dim else x for k, x in enumerate(indices))

    def visit_BufferLoad(self, n):
        out = self.generic_visit(n)
        return out.replace(indices=self._indices(out.indices)) if out.buffer is self.new else out

    def visit_BufferStore(self, n):
        out = self.generic_visit(n)
        return out.replace(indices=self._indices(out.indices)) if out.buffer is self.new else out

    def visit_BufferRegion(self, n: BufferRegion):
        out = self.generic_visit(n)
        if out.buffer is not self.new:
            return out
        rng = out.region[self.dim]
        one = isinstance(rng.extent, IntImm) and rng.extent.value == 1
        rolled = Range(FloorMod(rng.min, self.window), rng.extent) if one else \
            Range(IntImm(0, self.window.dtype), self.window)
        return out.replace(region=tuple(rolled if k == self.dim else r for k, r in enumerate(out.region)))

    def visit_BlockRealize(self, n: BlockRealize):
        out = self.generic_visit(n)
        return out.replace(predicate=self.predicate) if n is self.producer else out


def _rewrite(func, realize: BlockRealize, buf: Buffer, box: list, axes: list, roll: tuple):
    from ..ir.arith import Analyzer

    an = Analyzer()
    bindings = {iv.var: v for iv, v in zip(realize.block.iter_vars, realize.iter_values)}
    conds = []
    for d, loop, stride, offset, overlap in axes:
        at = substitute(realize.block.body.indices[d], bindings)
        into_window = an.simplify(at - (loop.loop_var * stride + offset))
        conds.append(logical_or(LT(loop.loop_var, an.simplify(loop.min + 1)), GE(into_window, overlap)))
    d, _, _, _, _ = roll
    window = box[d][1]
    new = buf.replace(shape=tuple(window if k == d else s for k, s in enumerate(buf.shape)))
    return func.replace(body=_Roll(buf, new, d, realize, logical_and(*conds)).visit(func.body))


__all__ = ["rolling_buffer", "RollingBufferError"]
