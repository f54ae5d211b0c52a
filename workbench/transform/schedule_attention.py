"""The default CPU schedule of an attention kernel (``scaled_dot_product_attention``'s legalization).

The kernel's blocks (named by the legalization in ``ir/graph/ops/attention.py``)::

    attention_qk[b, h, i, j]  = sum_d q[b, h, i, d] * k[b, h', j, d]
    attention_max[b, h, i]    = max_j  logit(b, h, i, j)           # scores scaled and masked on the fly
    attention_exp[b, h, i, j] = exp(logit(b, h, i, j) - max)
    attention_sum[b, h, i]    = sum_j  attention_exp
    attention_pv[b, h, i, e]  = sum_j  attention_exp * v[b, h', j, e]
    attention[b, h, i, e]     = attention_pv / attention_sum

Unscheduled, each block is a separate pass over ``batch x heads x seq x seq`` buffers, and ``qk``
vectorized over ``j`` gathers ``k`` with a stride of ``head_dim``. The schedule instead:

* fuses ``b, h`` into one parallel loop; under it copies this head's keys once, transposed to
  ``[d, j]`` (``cache_read`` + ``transform_layout`` + ``compute_at``), so the score rows are
  contiguous vector FMAs;
* with grouped-query attention (``heads = group * key_heads``) splits ``h`` into ``(key_head, group)``
  and makes ``b, key_head`` the parallel loop: one key copy per key head, shared by its query heads;
* inlines the blocks of the kernel that make the keys and values (such as "cached rows then new
  rows", ``if_then_else(j < m, cache[j], new[j - m])``) into the key copy and into ``pv``, so
  such a kernel reads the cache in place;
* splits the query rows into tiles of ``ROWS`` (fewer when there are fewer rows: one when decoding
  a token) and computes the whole chain per tile
  (``compute_at`` of every block under the tile loop): the scores of a tile stay in cache;
* vectorizes the key loop of ``qk`` and ``exp`` and the ``e`` loop of ``pv`` and of the division
  (``exp`` has an inline vector polynomial in the LLVM backend).

Before (three of the six loop nests)::

    for b, h, i, j, d in wb.grid(batch, 12, seq, seq, 32):
        with wb.block("attention_qk"): ...
    ...
    for b, h, i, e in wb.grid(batch, 12, seq, 32):
        with wb.block("attention"): ...

After::

    for b_h_fused in wb.parallel(batch * 12):
        for ax0, ax1 in wb.grid(seq, 32):
            with wb.block("K_global"): ...            # K_global[b, h, d, j] = K[b, h, j, d]
        for i_0 in wb.serial((seq + 3) // 4):
            ...                                        # qk (j vectorized), max, exp, pv, sum for 4 rows
            for i_1 in wb.serial(4):
                for e in wb.vectorized(32):
                    with wb.block("attention"): ...
"""
from __future__ import annotations

from ..ir.stmt import IterType
from ..schedule.errors import ScheduleError
from ..schedule.state import Schedule

#: query rows per tile: the scores of one tile (ROWS x seq floats) are reused by max, exp, sum and pv
ROWS = 4
CHAIN = ("attention_qk", "attention_max", "attention_exp", "attention_sum", "attention_pv", "attention")


class NotAttention(ScheduleError):
    """The kernel is not (or no longer) the attention chain this schedule knows."""


def is_attention_kernel(sch: Schedule) -> bool:
    """Whether the kernel holds the six blocks of the attention legalization."""
    blocks = sch.index().blocks
    return all(name in blocks for name in CHAIN)


def schedule_attention(sch: Schedule, vectorize) -> list[str]:
    """Schedule the attention chain of ``sch`` in place (see the module docstring); returns the names of
    the blocks it scheduled. ``vectorize(sch, loop)`` vectorizes a loop (the caller's policy).
    A :class:`~workbench.schedule.errors.ScheduleError` leaves the caller to drop the attempt."""
    if not is_attention_kernel(sch):
        raise NotAttention("the kernel does not hold the attention blocks")
    out = sch.get_block("attention")
    if sch.get_consumers(out):
        raise NotAttention("block attention has a consumer in the same kernel")
    loops = sch.get_loops(out)
    if len(loops) != 4:
        raise NotAttention("block attention is not a 4-D loop nest")
    b, h, i, e = loops
    qk = sch.get_block("attention_qk")
    index = _key_read_index(sch, qk)
    group = _query_heads_per_key_head(sch, qk, index, sch.get(h).extent)
    key_head = sch.split(h, factors=[None, group])[0] if group > 1 else h
    value_source = _inline_value_producer(sch)
    row_tile, _ = sch.split(i, factors=[None, _row_tile(sch.get(i).extent)])
    for name in ("attention_pv", "attention_sum", "attention_exp", "attention_max", "attention_qk"):
        sch.compute_at(sch.get_block(name), row_tile)
    qk = sch.get_block("attention_qk")
    key_source = _producer_of_read(sch, qk, index)
    key_source_name = sch.get(key_source).name if key_source is not None else None
    keys = sch.cache_read(qk, index, "global")
    if key_source is not None:
        sch.compute_inline(key_source)          # the copy reads the producer's inputs (the cache) in place
    sch.transform_layout(keys, ("write", 0), lambda b_, h_, j_, d_: (b_, h_, d_, j_))
    sch.compute_at(keys, key_head)
    *_, qi, qj, qd = sch.get_loops(qk)
    sch.reorder(qd, qj)
    sch.decompose_reduction(qk, qi)
    vectorize(sch, qj)
    vectorize(sch, sch.get_loops(sch.get_block("attention_qk_init"))[-1])
    vectorize(sch, sch.get_loops(sch.get_block("attention_exp"))[-1])
    pv = sch.get_block("attention_pv")
    *_, pi, pe, pj = sch.get_loops(pv)
    sch.reorder(pj, pe)
    sch.decompose_reduction(pv, pi)
    vectorize(sch, pe)
    vectorize(sch, sch.get_loops(sch.get_block("attention_pv_init"))[-1])
    vectorize(sch, sch.get_loops(out)[-1])
    sch.parallel(sch.fuse(b, key_head))
    return [*CHAIN, "attention_qk_init", "attention_qk_update", "attention_pv_init", "attention_pv_update",
            sch.get(keys).name, *(name for name in (key_source_name, value_source) if name)]


def _row_tile(rows) -> int:
    """Query rows per tile: ``ROWS``, or all of them when fewer (one row when decoding a token)."""
    extent = getattr(rows, "value", None)
    return ROWS if extent is None else max(1, min(ROWS, extent))


def _query_heads_per_key_head(sch: Schedule, qk, key_index: int, heads) -> int:
    """How many query heads read one key head (grouped-query attention), 1 when not constant."""
    realize, _ = sch.block_of(qk)
    key_heads = getattr(realize.block.reads[key_index].buffer.shape[1], "value", None)
    heads = getattr(heads, "value", None)
    if not key_heads or not heads or heads % key_heads:
        return 1
    return heads // key_heads


def _producer_of_read(sch: Schedule, block, index: int):
    """The block of this kernel that writes the buffer of ``block``'s read ``index`` (None: a parameter)."""
    realize, _ = sch.block_of(block)
    buffer = realize.block.reads[index].buffer
    for producer in sch.get_producers(block):
        if any(w.buffer is buffer for w in sch.get(producer).writes):
            return producer
    return None


def _inline_value_producer(sch: Schedule) -> str | None:
    """Inline into ``attention_pv`` the block of this kernel that makes its values (such as the cached rows
    then the new ones, ``[.., j, e]`` from two tensors): pv then reads them in place. Its name, or None
    when the values are a parameter."""
    pv = sch.get_block("attention_pv")
    exp_buffer = sch.get(sch.get_block("attention_exp")).writes[0].buffer
    realize, _ = sch.block_of(pv)
    for k, r in enumerate(realize.block.reads):
        if r.buffer is exp_buffer or r.buffer is realize.block.writes[0].buffer:
            continue
        producer = _producer_of_read(sch, pv, k)
        if producer is not None:
            name = sch.get(producer).name
            sch.compute_inline(producer)
            return name
    return None


def _key_read_index(sch: Schedule, qk) -> int:
    """The index in ``qk``'s reads of the keys: the read indexed ``[.., .., j, d]`` by the block's
    last spatial variable and its reduction variable."""
    realize, _ = sch.block_of(qk)
    blk = realize.block
    spatial = [iv.var for iv in blk.iter_vars if iv.iter_type != IterType.REDUCE]
    reduce_ = [iv.var for iv in blk.iter_vars if iv.iter_type == IterType.REDUCE]
    if len(spatial) != 4 or len(reduce_) != 1:
        raise NotAttention("block attention_qk is not [b, h, i, j] over d")
    out = blk.writes[0].buffer
    for k, r in enumerate(blk.reads):
        idx = [rng.min for rng in r.region]
        if r.buffer is not out and len(idx) == 4 and idx[2] is spatial[3] and idx[3] is reduce_[0]:
            return k
    raise NotAttention("block attention_qk reads no key tensor indexed [b, h, j, d]")
