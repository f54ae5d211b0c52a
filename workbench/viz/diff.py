"""Line diff of two programs' script text (the schedule view's "what changed").

>>> d = program_diff("a\\nb\\nc", "a\\nB\\nc\\nd")
>>> [(r["tag"], r["text"]) for r in d.rows]
[(' ', 'a'), ('-', 'b'), ('+', 'B'), (' ', 'c'), ('+', 'd')]
>>> d.changed_new
[2, 4]
>>> d.removed_old
[2]
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass
class ProgramDiff:
    """``rows``: the unified diff as dicts ``{"tag": " "|"-"|"+", "old": n|None, "new": n|None, "text"}``
    (line numbers 1-based); ``changed_new``: lines of the new text that are new or changed;
    ``removed_old``: lines of the old text that are gone or changed."""

    rows: list[dict] = field(default_factory=list)
    changed_new: list[int] = field(default_factory=list)
    removed_old: list[int] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not self.changed_new and not self.removed_old

    def to_json(self, context: int | None = None) -> dict:
        """JSON-ready data; with ``context`` only rows within that many lines of a change are kept
        (a ``{"tag": "...", "skipped": k}`` row stands for each run of dropped rows)."""
        rows = self.rows
        if context is not None:
            rows = _with_context(rows, context)
        return {"rows": rows, "changed_new": self.changed_new, "removed_old": self.removed_old}


def program_diff(old: str, new: str) -> ProgramDiff:
    """The line diff from ``old`` to ``new`` (script texts)."""
    a, b = old.splitlines(), new.splitlines()
    out = ProgramDiff()
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                out.rows.append({"tag": " ", "old": i1 + k + 1, "new": j1 + k + 1, "text": b[j1 + k]})
            continue
        for i in range(i1, i2):
            out.rows.append({"tag": "-", "old": i + 1, "new": None, "text": a[i]})
            out.removed_old.append(i + 1)
        for j in range(j1, j2):
            out.rows.append({"tag": "+", "old": None, "new": j + 1, "text": b[j]})
            out.changed_new.append(j + 1)
    return out


def _with_context(rows: list[dict], context: int) -> list[dict]:
    keep = [False] * len(rows)
    for k, r in enumerate(rows):
        if r["tag"] != " ":
            for m in range(max(0, k - context), min(len(rows), k + context + 1)):
                keep[m] = True
    out: list[dict] = []
    skipped = 0
    for k, r in enumerate(rows):
        if keep[k]:
            if skipped:
                out.append({"tag": "...", "old": None, "new": None, "text": "", "skipped": skipped})
                skipped = 0
            out.append(r)
        else:
            skipped += 1
    if skipped:
        out.append({"tag": "...", "old": None, "new": None, "text": "", "skipped": skipped})
    return out


def _label(n: dict) -> str:
    if n["kind"] == "loop":
        return f"loop {n['var']}"
    if n["kind"] == "block":
        return f'block "{n["name"]}"'
    return "the function"


def _extent(n: dict) -> str:
    return n["extent"] if n["min"] == "0" else f"{n['min']}:{n['min']} + {n['extent']}"


def tree_diff(old_root: dict, new_root: dict) -> list[dict]:
    """What a step did to the loop nest: loops and blocks ``added``, ``removed``, ``moved`` (under
    another parent), ``extent`` changed, loop ``kind`` changed. The trees come from ``loop_tree`` with
    ids shared between the two programs (``NodeIds``), so a node is the same loop or block in both.

    Each change: ``{"change", "id", "kind", "label", "text", "old_lines", "new_lines"}``; ``text``
    says it in one line (``block "C" moved under loop ax0 (was under loop j)``).
    """
    from .loop_tree import iter_nodes

    def index(root: dict) -> tuple[dict, dict]:
        nodes, parent = {}, {}
        for n in iter_nodes(root):
            nodes[n["id"]] = n
            for c in n.get("children") or ():
                parent[c["id"]] = n
        return nodes, parent

    old, old_parent = index(old_root)
    new, new_parent = index(new_root)
    out: list[dict] = []

    def add(change: str, n: dict, text: str, o: dict | None, m: dict | None) -> None:
        out.append({"change": change, "id": n["id"], "kind": n["kind"], "label": _label(n), "text": text,
                    "old_lines": o.get("lines") if o else None, "new_lines": m.get("lines") if m else None})

    for nid, n in new.items():
        if n["kind"] == "func":
            continue
        o = old.get(nid)
        where = _label(new_parent[nid]) if nid in new_parent else "the function"
        if o is None:
            extra = f" (extent {_extent(n)})" if n["kind"] == "loop" else ""
            add("added", n, f"{_label(n)}{extra} added under {where}", None, n)
            continue
        was = _label(old_parent[nid]) if nid in old_parent else "the function"
        if old_parent.get(nid, {}).get("id") != new_parent.get(nid, {}).get("id"):
            add("moved", n, f"{_label(n)} moved under {where} (was under {was})", o, n)
        if n["kind"] == "loop" and _extent(n) != _extent(o):
            add("extent", n, f"{_label(n)} extent {_extent(o)} -> {_extent(n)}", o, n)
        if n["kind"] == "loop" and (n["loop_kind"], n["thread"]) != (o["loop_kind"], o["thread"]):
            add("kind", n, f"{_label(n)} {o['thread'] or o['loop_kind']} -> {n['thread'] or n['loop_kind']}", o, n)
    for nid, o in old.items():
        if o["kind"] != "func" and nid not in new:
            add("removed", o, f"{_label(o)} removed", o, None)
    return out


__all__ = ["ProgramDiff", "program_diff", "tree_diff"]
