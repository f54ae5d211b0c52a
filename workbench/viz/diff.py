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


__all__ = ["ProgramDiff", "program_diff"]
