"""Cost on the program: FLOPs and bytes of each loop and block, counted from the IR.

FLOPs follow ``wb.tuning.count_flops`` (a multiply and an add per matmul update, index
arithmetic free, a reduction's init once per spatial point). Bytes are the traffic the
block's statements issue: every load and store, its element size times how often it runs
(before any cache; ``count_bytes`` is the compulsory traffic of the whole program instead).
A block's numbers include the blocks nested in it; a loop's are the sum of the blocks inside it.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((4, 8), name="A"); B = te.placeholder((8, 2), name="B")
>>> k = te.reduce_axis(8, name="k")
>>> C = te.compute((4, 2), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
>>> cost = program_cost(wb.create_prim_func([A, B, C]))
>>> cost["block-C"]["flops"] == 2 * 4 * 2 * 8, cost["loop-i"]["flops"] == cost["block-C"]["flops"]
(True, True)
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np

from ..ir import expr as E
from ..ir import stmt as S
from ..ir.function import PrimFunc
from ..tuning._program import bind_sizes
from ..tuning.flops import _Counter, _itemsize
from .data import as_prim_func
from .loop_tree import LoopTree, iter_nodes, loop_tree


class _BlockFlops(_Counter):
    """``count_flops``' counter that also adds up, per block, its executions times its cost."""

    def __init__(self):
        super().__init__()
        self.total: dict[int, float] = defaultdict(float)   # id(block) -> cost, nested blocks included
        self.nested: dict[int, float] = defaultdict(float)  # id(block) -> cost of the blocks nested in it
        self.open: list[S.Block] = []

    def s_BlockRealize(self, s: S.BlockRealize, env):
        self.open.append(s.block)
        try:
            count = super().s_BlockRealize(s, env)
        finally:
            self.open.pop()
        runs = float(np.prod(self.trips)) if self.trips else 1.0
        self.total[id(s.block)] += count * runs
        if self.open:
            self.nested[id(self.open[-1])] += count * runs
        return count


class _BlockBytes(_BlockFlops):
    """The same walk, counting the bytes each statement loads and stores instead of its FLOPs."""

    def s_BufferStore(self, s: S.BufferStore, env):
        return _itemsize(s.value.dtype) + sum(_load_bytes(i) for i in s.indices) + _load_bytes(s.value)

    def s_Evaluate(self, s: S.Evaluate, env):
        return _load_bytes(s.value)

    def s_IfThenElse(self, s: S.IfThenElse, env):
        then = self.stmt(s.then_case, env)
        other = self.stmt(s.else_case, env) if s.else_case is not None else 0
        return _load_bytes(s.condition) + max(then, other)


def _load_bytes(e) -> int:
    """Bytes read by one evaluation of ``e`` (each buffer load, indices' loads included)."""
    total = 0

    def visit(n):
        nonlocal total
        if isinstance(n, E.BufferLoad):
            total += _itemsize(n.dtype)

    from ..ir.functor import post_order_visit

    post_order_visit(e, visit)
    return total


def program_cost(obj: Any, tree: LoopTree | None = None, args: Sequence | None = None,
                 sizes: Mapping | None = None) -> dict[str, dict]:
    """``node id -> {"flops", "bytes", "flops_share", "bytes_share"}`` for every loop and block of ``obj``
    (a PrimFunc, one-function IRModule or Schedule); shares are fractions of the program's total.

    Symbolic sizes take values from ``args`` or ``sizes`` as in ``count_flops``. ``tree``: the loop
    tree whose node ids to use (a widget passes its own).
    """
    func = as_prim_func(obj)
    if not isinstance(func, PrimFunc):
        raise TypeError(f"program_cost needs a tensor program (PrimFunc, IRModule or Schedule), got {type(obj).__name__}")
    tree = tree or loop_tree(func)
    env = bind_sizes(func, args, sizes)
    own: dict[str, dict[str, float]] = {}
    for key, counter in (("flops", _BlockFlops()), ("bytes", _BlockBytes())):
        counter.stmt(func.body, env)
        for nid, blk in tree.nodes.items():
            if isinstance(blk, S.Block):
                own.setdefault(nid, {})[key] = counter.total[id(blk)] - counter.nested[id(blk)]
    totals = {k: sum(v[k] for v in own.values()) for k in ("flops", "bytes")}
    out: dict[str, dict] = {}
    for d in iter_nodes(tree.root):
        if d["kind"] == "func":
            continue
        inside = [own[x["id"]] for x in iter_nodes(d) if x["id"] in own]
        row: dict[str, float] = {}
        for k in ("flops", "bytes"):
            row[k] = float(round(sum(v[k] for v in inside)))
            row[k + "_share"] = row[k] / totals[k] if totals[k] > 0 else 0.0
        out[d["id"]] = row
    return out


def cost_payload(obj: Any, tree: LoopTree | None = None, seconds: float | None = None,
                 sizes: Mapping | None = None) -> dict:
    """What the widget's heat map shows: per node counts and shares, the totals and, after a benchmark,
    the measured ``seconds`` per run of the kernel with the rates they give. A program whose sizes
    are symbolic (and no ``sizes``) gets ``{"error": ...}`` instead."""
    func = as_prim_func(obj)
    tree = tree or (loop_tree(func) if isinstance(func, PrimFunc) else None)
    try:
        nodes = program_cost(func, tree=tree, sizes=sizes)
    except ValueError as err:  # an unbound symbolic size
        return {"error": str(err), "nodes": {}}
    tops = [nodes[c["id"]] for c in tree.root["children"] if c["id"] in nodes]
    flops, nbytes = sum(v["flops"] for v in tops), sum(v["bytes"] for v in tops)
    out = {"nodes": nodes, "flops": flops, "bytes": nbytes}
    if seconds is not None and seconds > 0:
        out["measured_ms"] = seconds * 1e3
        out["gflops"] = flops / seconds / 1e9
        out["gbps"] = nbytes / seconds / 1e9
    return out


__all__ = ["program_cost", "cost_payload"]
