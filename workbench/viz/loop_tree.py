"""The loop nest of a tensor program as plain data (what the loop-nest widget shows).

``loop_tree(func)`` walks a ``PrimFunc`` in print order and returns a tree of
dicts: the function at the top, then its loops and blocks. Each loop has its
variable, extent (symbolic extents as written), kind and annotations; each block
its iteration variables (spatial/reduce), read and write regions and init. Every
node carries the line span (1-based, inclusive) of its text in ``script`` so the
widget can highlight the lines of a selected node and find the node of a clicked
line.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((8,), "float32", name="A")
>>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
>>> tree = loop_tree(wb.create_prim_func([A, B]))
>>> loop = tree.root["children"][0]
>>> loop["kind"], loop["extent"], loop["loop_kind"]
('loop', '8', 'serial')
>>> tree.lines[loop["lines"][0] - 1].strip().startswith("for")
True
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..ir.expr import IntImm, Range, add
from ..ir.function import PrimFunc
from ..ir.stmt import (
    Allocate,
    AssertStmt,
    Block,
    BlockRealize,
    BufferRegion,
    For,
    IfThenElse,
    LetStmt,
    SeqStmt,
    Stmt,
)

# colours of loop kinds: the widget, the static view and the legend share them
KIND_COLORS: dict[str, str] = {
    "serial": "#6b7280",
    "parallel": "#2563eb",
    "vectorized": "#16a34a",
    "unrolled": "#d97706",
    "thread_binding": "#9333ea",
}
KIND_LABELS: dict[str, str] = {
    "serial": "serial",
    "parallel": "parallel",
    "vectorized": "vectorized",
    "unrolled": "unrolled",
    "thread_binding": "thread-bound",
}


@dataclass
class LoopTree:
    """The loop nest of one function: ``root`` (JSON-ready dicts) and the script it indexes.

    ``nodes`` maps node ids to the IR statement they came from (``For`` or ``Block``);
    it stays on the Python side. Ids name what the node is, not where it is (``NodeIds``):
    ``"loop-i_0"`` for the loop of variable ``i_0``, ``"block-C"`` for block ``C``.
    """

    root: dict
    script: str
    nodes: dict[str, Stmt] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return self.script.splitlines()

    def find(self, node_id: str) -> dict | None:
        """The dict of node ``node_id``, or None."""
        for d in iter_nodes(self.root):
            if d["id"] == node_id:
                return d
        return None

    def id_of(self, stmt: Any) -> str | None:
        """The node id of an IR statement (a ``For``, ``Block`` or ``BlockRealize``), or None."""
        if isinstance(stmt, BlockRealize):
            stmt = stmt.block
        for k, v in self.nodes.items():
            if v is stmt:
                return k
        return None

    def node_at_line(self, line: int) -> str | None:
        """The innermost node whose span contains ``line`` (1-based), or None."""
        best = None
        for d in iter_nodes(self.root):
            span = d.get("lines")
            if d["kind"] != "func" and span and span[0] <= line <= span[1]:
                if best is None or span[1] - span[0] <= best["lines"][1] - best["lines"][0]:
                    best = d
        return best["id"] if best else None

    def blocks(self) -> list[dict]:
        return [d for d in iter_nodes(self.root) if d["kind"] == "block"]


def iter_nodes(root: dict):
    """Every node dict below (and including) ``root``, in print order."""
    stack = [root]
    while stack:
        d = stack.pop()
        yield d
        stack.extend(reversed(d.get("children", ())))


def text(e: Any) -> str:
    """Short text of an expression as the script writes it."""
    if isinstance(e, IntImm) and e.dtype in ("int32", "int64"):
        return str(e.value)
    s = str(e)
    return s


def region_text(r: BufferRegion) -> str:
    """``A[vi, 0:16]``: a point where the extent is 1, ``min:end`` otherwise."""
    parts = []
    for rng in r.region:
        if isinstance(rng.extent, IntImm) and rng.extent.value == 1:
            parts.append(text(rng.min))
        else:
            parts.append(f"{text(rng.min)}:{text(add(rng.min, rng.extent))}")
    return f"{r.buffer.name}[{', '.join(parts)}]" if parts else f"{r.buffer.name}[()]"


def _range_text(r: Range) -> str:
    if isinstance(r.min, IntImm) and r.min.value == 0:
        return text(r.extent)
    return f"{text(r.min)}:{text(add(r.min, r.extent))}"


def _value_text(v: Any) -> str:
    if isinstance(v, (int, float, str, bool)) or v is None:
        return repr(v) if isinstance(v, str) else str(v)
    try:
        return str(v)
    except Exception:  # pragma: no cover - defensive
        return type(v).__name__


def _buffer_text(b) -> str:
    shape = ", ".join(text(d) for d in b.shape)
    scope = "" if b.scope == "global" else f", {b.scope}"
    return f"{b.name}: {b.dtype}[{shape}]{scope}"


class NodeIds:
    """Node ids that survive schedule steps: a loop is named by its loop variable (the same
    ``Var`` object keeps its id in every program it appears in), a block by its name.

    Two different loop variables with one name get different ids (``loop-i``, ``loop-i-2``),
    so a selection at one step lands on the same loop at another step, or on nothing.

    >>> from workbench.ir.expr import Var
    >>> ids = NodeIds(); i, i2 = Var("i"), Var("i")
    >>> ids.loop(i), ids.loop(i2), ids.loop(i), ids.block("C")
    ('loop-i', 'loop-i-2', 'loop-i', 'block-C')
    """

    def __init__(self):
        self._loops: dict[int, tuple[Any, str]] = {}   # id(var) -> (var, node id); the var is kept alive
        self._taken: set[str] = set()

    def loop(self, var: Any) -> str:
        hit = self._loops.get(id(var))
        if hit is not None and hit[0] is var:
            return hit[1]
        nid = self._fresh(f"loop-{var.name}")
        self._loops[id(var)] = (var, nid)
        return nid

    def block(self, name: str) -> str:
        return f"block-{name}"

    def _fresh(self, base: str) -> str:
        nid, k = base, 2
        while nid in self._taken:
            nid, k = f"{base}-{k}", k + 1
        self._taken.add(nid)
        return nid


class _Builder:
    def __init__(self, ids: NodeIds | None = None):
        self.ids = ids or NodeIds()
        self.nodes: dict[str, Stmt] = {}

    def new_id(self, base: str) -> str:
        """``base``, or ``base~2``... when this tree already has a node of that id (a malformed
        program with a repeated loop variable, two blocks of one name)."""
        nid, k = base, 2
        while nid in self.nodes:
            nid, k = f"{base}~{k}", k + 1
        return nid

    def stmt(self, s: Stmt | None, depth: int) -> list[dict]:
        """Children dicts of statement ``s`` (loops and blocks), in print order."""
        if s is None:
            return []
        if isinstance(s, SeqStmt):
            out: list[dict] = []
            for x in s.seq:
                out.extend(self.stmt(x, depth))
            return out
        if isinstance(s, For):
            return [self.loop(s, depth)]
        if isinstance(s, BlockRealize):
            return [self.block(s, depth)]
        if isinstance(s, Block):
            return [self.block(BlockRealize((), True, s) if not s.iter_vars else None, depth, s)]
        if isinstance(s, IfThenElse):
            return self.stmt(s.then_case, depth) + self.stmt(s.else_case, depth)
        if isinstance(s, (LetStmt, Allocate, AssertStmt)):
            return self.stmt(s.body, depth)
        return []

    def loop(self, f: For, depth: int) -> dict:
        nid = self.new_id(self.ids.loop(f.loop_var))
        self.nodes[nid] = f
        kind = str(f.kind.value)
        d = {
            "id": nid,
            "kind": "loop",
            "depth": depth,
            "var": f.loop_var.name,
            "min": text(f.min),
            "extent": text(f.extent),
            "loop_kind": kind,
            "thread": f.thread,
            "annotations": {str(k): _value_text(v) for k, v in f.annotations.items()},
            "lines": None,
        }
        d["children"] = self.stmt(f.body, depth + 1)
        return d

    def block(self, br: BlockRealize | None, depth: int, blk: Block | None = None) -> dict:
        b = br.block if br is not None else blk
        nid = self.new_id(self.ids.block(b.name))
        self.nodes[nid] = b
        values = br.iter_values if br is not None else ()
        ivs = []
        for k, iv in enumerate(b.iter_vars):
            ivs.append({
                "name": iv.var.name,
                "type": str(iv.iter_type.value),
                "dom": _range_text(iv.dom),
                "binding": text(values[k]) if k < len(values) else "",
            })
        pred = br.predicate if br is not None else None
        d = {
            "id": nid,
            "kind": "block",
            "depth": depth,
            "name": b.name,
            "iter_vars": ivs,
            "reads": [region_text(r) for r in b.reads],
            "writes": [region_text(r) for r in b.writes],
            "init": _init_text(b.init),
            "predicate": None if pred is None or (isinstance(pred, IntImm) and pred.value == 1) else text(pred),
            "annotations": {str(k): _value_text(v) for k, v in b.annotations.items()},
            "alloc_buffers": [_buffer_text(x) for x in b.alloc_buffers],
            "lines": None,
        }
        d["children"] = self.stmt(b.init, depth + 1) + self.stmt(b.body, depth + 1)
        return d


def _init_text(init: Stmt | None) -> str | None:
    if init is None:
        return None
    try:
        lines = str(init).strip().splitlines()
    except Exception:  # pragma: no cover - defensive
        return type(init).__name__
    if len(lines) > 3:
        lines = lines[:3] + ["..."]
    return "\n".join(line.strip() for line in lines)


def loop_tree(func: PrimFunc, script: str | None = None, ids: NodeIds | None = None) -> LoopTree:
    """The loop nest of ``func`` with each node's line span in its script.

    ``script`` is the printed program (``func.script()`` when omitted); spans are
    found by walking the tree in print order and matching each loop's ``for``
    line and each block's ``with ...block("name")`` line in turn. ``ids``: share one
    ``NodeIds`` between the programs of a schedule so a node keeps its id across steps.
    """
    if not isinstance(func, PrimFunc):
        raise TypeError(f"loop_tree needs a PrimFunc, got {type(func).__name__}")
    if script is None:
        script = func.script()
    b = _Builder(ids)
    body = func.body
    allocs: list = []
    # the root block is elided by the printer: its allocs print at function level
    if isinstance(body, BlockRealize) and body.block.name == "root" and not body.block.iter_vars:
        allocs = list(body.block.alloc_buffers)
        children = b.stmt(body.block.init, 1) + b.stmt(body.block.body, 1)
    else:
        children = b.stmt(body, 1)
    root = {
        "id": "root",
        "kind": "func",
        "depth": 0,
        "name": func.name,
        "params": [_buffer_text(x) for x in func.buffers],
        "alloc_buffers": [_buffer_text(x) for x in allocs],
        "lines": None,
        "children": children,
    }
    lines = script.splitlines()
    root["lines"] = [1, len(lines)] if lines else None
    _assign_spans(root, lines)
    return LoopTree(root, script, b.nodes)


_FOR_RE = re.compile(r"^(\s*)for\s+(.+?)\s+in\s")
_BLOCK_RE = re.compile(r"^(\s*)with\s+[\w.]*block\(\s*(['\"])(.*?)\2")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _span_end(lines: list[str], start: int) -> int:
    """Last line (0-based) of the indented suite opened at line ``start``."""
    ind = _indent(lines[start])
    end = start
    for j in range(start + 1, len(lines)):
        if not lines[j].strip():
            continue
        if _indent(lines[j]) <= ind:
            break
        end = j
    return end


def _assign_spans(root: dict, lines: list[str]) -> None:
    cursor = 0
    pending: list[str] = []  # loop variables still to take from the last `for a, b, c in wb.grid` line
    pending_line = -1

    for d in iter_nodes(root):
        if d["kind"] == "loop":
            if pending and pending_line >= 0 and pending_line == cursor - 1:
                s = pending_line
            else:
                pending = []
                s = -1
                for j in range(cursor, len(lines)):
                    m = _FOR_RE.match(lines[j])
                    if m:
                        s = j
                        pending = [t.strip() for t in m.group(2).strip("() ").split(",") if t.strip()]
                        pending_line = j
                        break
                if s < 0:
                    continue
                cursor = s + 1
            d["var"] = pending.pop(0) if pending else d["var"]  # the name as printed (i_1 when shadowed)
            d["lines"] = [s + 1, _span_end(lines, s) + 1]
        elif d["kind"] == "block":
            pending = []
            for j in range(cursor, len(lines)):
                m = _BLOCK_RE.match(lines[j])
                if m and m.group(3) == d["name"]:
                    d["lines"] = [j + 1, _span_end(lines, j) + 1]
                    cursor = j + 1
                    break


__all__ = ["LoopTree", "loop_tree", "NodeIds", "iter_nodes", "region_text", "KIND_COLORS", "KIND_LABELS", "text"]
