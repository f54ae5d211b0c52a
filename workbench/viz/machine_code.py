"""The program's loops and blocks linked to their lines of LLVM IR and assembly.

``machine_code(func_or_schedule, target)`` builds the program with debug locations
(``workbench.backend.llvm.debug_locations``): every loop of the loop tree is located at
its ``for`` line of the printed script and every block at its ``with wb.block`` line
(the column tells apart the loops that one ``wb.grid`` line prints). The instructions
of a store come from the block that writes the stored buffer, those of a loop's
header from the loop. Loops that lowering removes (vectorized, unrolled) have no
instructions of their own; their body's lines are theirs.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64,), "float32", name="A")
>>> B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
>>> mc = machine_code(wb.create_prim_func([A, B]), target="llvm -mcpu=znver3")
>>> any("fmul" in mc.ir[k][0] for k in mc.lines_of("block-B", "ir"))
True
>>> k = mc.lines_of("loop-i", "asm")[0]; mc.node_of("asm", k) in ("loop-i", "block-B")
True
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..ir.function import PrimFunc
from ..ir.functor import post_order_visit
from ..ir.stmt import Block, BufferStore, Evaluate, For
from .data import as_prim_func
from .loop_tree import LoopTree, iter_nodes, loop_tree

#: at most this many lines of each listing go to the browser
MAX_WIRE_LINES = 6000


def node_locations(tree: LoopTree) -> dict[str, tuple[int, int]]:
    """``node id -> (line, column)``: the node's first script line, and its rank among the nodes that
    start on that line (1, 2, ... for ``for i, j in wb.grid(...)``)."""
    out: dict[str, tuple[int, int]] = {}
    per_line: dict[int, int] = defaultdict(int)
    for d in iter_nodes(tree.root):
        if d["kind"] == "func" or not d.get("lines"):
            continue
        line = d["lines"][0]
        per_line[line] += 1
        out[d["id"]] = (line, per_line[line])
    return out


class TreeLocator:
    """Where each statement of the lowered program comes from, in the loop tree of the scheduled one.

    A ``For`` is its loop (the same loop variable object survives lowering); a store (or an
    ``Evaluate``) is a block writing the stored buffer inside the innermost loop entered, looking
    through the loops that lowering removed; other statements keep the enclosing location.
    """

    def __init__(self, tree: LoopTree, lowered_loop_vars: set[int]):
        self.tree = tree
        self.locations = node_locations(tree)
        self.loop_of_var = {id(s.loop_var): nid for nid, s in tree.nodes.items() if isinstance(s, For)}
        self.kept = lowered_loop_vars
        self.stack: list[tuple[Any, dict]] = [(None, tree.root)]
        self.turns: dict[tuple[str, str], int] = defaultdict(int)

    def enter(self, stmt) -> tuple[int, int] | None:
        if isinstance(stmt, For):
            nid = self.loop_of_var.get(id(stmt.loop_var))
            if nid is None:
                return None
            self.stack.append((stmt, self.tree.find(nid)))
            return self.locations.get(nid)
        if isinstance(stmt, (BufferStore, Evaluate)):
            nid = self._block_for(stmt)
            return self.locations.get(nid) if nid else None
        return None

    def leave(self, stmt) -> None:
        if self.stack[-1][0] is stmt:
            self.stack.pop()

    def _block_for(self, stmt) -> str | None:
        scope = self.stack[-1][1]
        buffer = stmt.buffer.name if isinstance(stmt, BufferStore) else None
        found = [d["id"] for d in self._blocks_under(scope) if buffer is None or buffer in self._writes(d["id"])]
        if not found:
            return None
        key = (scope["id"], buffer or "")
        k = self.turns[key]
        self.turns[key] = k + 1
        return found[k % len(found)]  # several writers under one loop: in print order, turn by turn

    def _blocks_under(self, node: dict):
        for c in node.get("children", ()):
            if c["kind"] == "block":
                yield c
                yield from self._blocks_under(c)
            elif c["kind"] == "loop" and id(self.tree.nodes[c["id"]].loop_var) not in self.kept:
                yield from self._blocks_under(c)  # a loop lowering removed: its blocks are here

    def _writes(self, nid: str) -> set[str]:
        blk = self.tree.nodes[nid]
        return {r.buffer.name for r in blk.writes} if isinstance(blk, Block) else set()


@dataclass
class MachineCode:
    """The optimised LLVM IR and the assembly of one program, each line with its loop-tree node.

    ``ir`` and ``asm`` are lists of ``(text, node id or None)``; ``tree`` is the loop tree the ids
    belong to. ``lines_of(node, "asm")`` are the line indices of a node and everything inside it,
    ``node_of("asm", k)`` the node of line ``k``.
    """

    target: str
    tree: LoopTree
    ir: list[tuple[str, str | None]] = field(default_factory=list)
    asm: list[tuple[str, str | None]] = field(default_factory=list)

    def _listing(self, kind: str) -> list[tuple[str, str | None]]:
        if kind not in ("ir", "asm"):
            raise ValueError(f"kind must be 'ir' or 'asm', got {kind!r}")
        return self.ir if kind == "ir" else self.asm

    def lines_of(self, node_id: str, kind: str = "asm") -> list[int]:
        """Indices of the lines of ``node_id`` and of the nodes inside it."""
        node = self.tree.find(node_id)
        if node is None:
            raise KeyError(f"no loop or block {node_id!r} in {self.tree.root['name']}; nodes: "
                           f"{', '.join(d['id'] for d in iter_nodes(self.tree.root) if d['kind'] != 'func')}")
        inside = {d["id"] for d in iter_nodes(node)}
        return [k for k, (_, nid) in enumerate(self._listing(kind)) if nid in inside]

    def node_of(self, kind: str, k: int) -> str | None:
        """The loop or block that line ``k`` of the listing comes from (None: not located)."""
        return self._listing(kind)[k][1]

    def to_json(self) -> dict:
        """What the widget shows: the listings (capped at ``MAX_WIRE_LINES`` lines each)."""
        def wire(lines):
            return [[t, n or ""] for t, n in lines[:MAX_WIRE_LINES]]

        return {"target": self.target, "ir": wire(self.ir), "asm": wire(self.asm),
                "truncated": max(len(self.ir), len(self.asm)) > MAX_WIRE_LINES}


def machine_code(obj: Any, target: str = "llvm", tree: LoopTree | None = None) -> MachineCode:
    """The LLVM IR and assembly of ``obj`` (a PrimFunc, a one-function IRModule or a Schedule) for a CPU
    ``target``, each line linked to the loop or block of the program it comes from.

    ``tree``: the loop tree whose node ids to use (a widget passes its own, so ids agree across steps).
    """
    from ..backend.llvm.debug_locations import asm_lines, compile_with_locations, ir_lines
    from ..backend.lower import lower
    from ..backend.target import Target

    func = as_prim_func(obj)
    if not isinstance(func, PrimFunc):
        raise TypeError(f"machine_code needs a tensor program (PrimFunc, IRModule or Schedule), got {type(obj).__name__}")
    tgt = Target(target)
    if tgt.is_gpu:
        raise ValueError(f"machine_code shows CPU code (an llvm target), not code for {tgt}")
    tree = tree or loop_tree(func)
    low = lower(func, tgt)
    kept: set[int] = set()
    post_order_visit(low.body, lambda n: kept.add(id(n.loop_var)) if isinstance(n, For) else None)
    locator = TreeLocator(tree, kept)
    opt_ir, asm = compile_with_locations({func.name: func}, tgt, locator, lowered={func.name: low})
    by_location = {loc: nid for nid, loc in locator.locations.items()}
    return MachineCode(str(tgt), tree,
                       [(t, by_location.get(loc)) for t, loc in ir_lines(opt_ir)],
                       [(t, by_location.get(loc)) for t, loc in asm_lines(asm)])


__all__ = ["machine_code", "MachineCode", "node_locations", "TreeLocator"]
