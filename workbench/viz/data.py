"""The data the widgets send to the browser (and the static views render).

Everything here is plain JSON-ready Python: ``program_payload(func)`` is the
loop-nest view of one function, ``ScheduleData(sch)`` the steps of a schedule with
the program after each step, its diff against the step before and the error of a
failed primitive.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((8,), "float32", name="A")
>>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
>>> p = program_payload(wb.create_prim_func([A, B]))
>>> p["tree"]["children"][0]["loop_kind"], len(p["lines"]) == len(p["script"].splitlines())
('serial', True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ir.function import IRModule, PrimFunc
from .diff import program_diff, tree_diff
from .loop_tree import LoopTree, NodeIds, iter_nodes, loop_tree
from .script_view import highlight_lines

# sizing rule: beyond this many tree nodes only the top levels start open
BIG_TREE_NODES = 300
EXPAND_DEPTH_SMALL = 8
EXPAND_DEPTH_BIG = 2


def script_of(obj: Any) -> str:
    """The script text of a program (PrimFunc, IRModule, graph function)."""
    from ..ir.printer import script

    return script(obj)


def expand_depth(tree: LoopTree) -> int:
    """How many levels start open: all of a small tree, two of a big one."""
    n = sum(1 for _ in iter_nodes(tree.root))
    return EXPAND_DEPTH_SMALL if n <= BIG_TREE_NODES else EXPAND_DEPTH_BIG


def program_payload(func: Any, marks: dict | None = None, title: str | None = None,
                    tree: LoopTree | None = None) -> dict:
    """The loop-nest view of ``func``: tree, highlighted lines, marks, how deep to open.

    Keys: ``name``, ``title``, ``tree`` (``loop_tree(func).root``; None for a function
    that is not a PrimFunc), ``script`` (text), ``lines`` (HTML per line),
    ``marks`` (``{"changed": [line, ...], "error": [line, ...]}``), ``expand_depth``.
    """
    if isinstance(func, PrimFunc):
        tree = tree or loop_tree(func)
        text = tree.script
        root = tree.root
        depth = expand_depth(tree)
        name = func.name
        kind = "PrimFunc"
    else:
        text = script_of(func)
        root = None
        depth = 0
        name = getattr(func, "name", type(func).__name__)
        kind = type(func).__name__
    return {
        "name": name,
        "title": title or f"{kind} {name}",
        "buffers": buffers_of(func) if isinstance(func, PrimFunc) else [],
        "tree": root,
        "script": text,
        "lines": highlight_lines(text),
        "marks": {"changed": [], "error": [], **(marks or {})},
        "expand_depth": depth,
    }


def buffers_of(func: PrimFunc) -> list[dict]:
    """Every buffer of ``func``: parameters first, then those allocated by blocks, each as
    ``{"name", "shape", "dtype", "scope", "where"}`` (``where``: "parameter" or the allocating block).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8, 4), "float16", name="A")
    >>> B = te.compute((8, 4), lambda i, j: A[i, j], name="B")
    >>> buffers_of(wb.create_prim_func([A, B]))[0]
    {'name': 'A', 'shape': '8, 4', 'dtype': 'float16', 'scope': 'global', 'where': 'parameter'}
    """
    from ..ir.functor import post_order_visit
    from ..ir.stmt import Block
    from .loop_tree import text

    def row(b, where: str) -> dict:
        return {"name": b.name, "shape": ", ".join(text(d) for d in b.shape), "dtype": b.dtype,
                "scope": b.scope, "where": where}

    rows = [row(b, "parameter") for b in func.buffers]
    blocks: list = []
    post_order_visit(func.body, lambda n: blocks.append(n) if isinstance(n, Block) else None)
    for blk in reversed(blocks):  # post order: the root block last; show it first
        for b in blk.alloc_buffers:
            rows.append(row(b, "function" if blk.name == "root" else f'block "{blk.name}"'))
    return rows


def as_prim_func(prog: Any, name: str | None = None) -> Any:
    """The tensor program inside ``prog`` (a PrimFunc, a one-function IRModule, a history step)."""
    for attr in ("func", "mod"):
        if not isinstance(prog, (PrimFunc, IRModule)) and hasattr(prog, attr):
            prog = getattr(prog, attr)
    if isinstance(prog, IRModule):
        prims = [(k, f) for k, f in prog.items() if isinstance(f, PrimFunc)]
        for k, f in prims:
            if k == name:
                return f
        if prims:
            return prims[0][1]
    return prog


@dataclass
class Step:
    index: int
    text: str
    program: Any  # the PrimFunc after this step
    status: str = "ok"  # "ok", "initial" or "error"


def _find_error(sch: Any, error: Any) -> Any:
    if error is not None:
        return error
    for attr in ("last_error", "error", "failed"):
        e = getattr(sch, attr, None)
        if e is not None and not callable(e):
            return e
    errs = getattr(sch, "errors", None)
    if isinstance(errs, (list, tuple)) and errs:
        return errs[-1]
    return None


class ScheduleData:
    """Steps of a schedule (duck-typed): the program after each, the diff, an error.

    Works with ``workbench.Schedule`` and anything with ``.history`` (programs or steps
    with ``.func``/``.mod`` and ``.text``; ``history[0]`` the original program) and
    ``.trace`` (printable instructions). An error (``error=`` or the schedule's
    ``last_error``/``error``) becomes a last step marked ``"error"`` that shows the
    program the primitive was applied to with the offending loop or block marked.
    """

    def __init__(self, sch: Any, error: Any = None):
        self.sch = sch
        hist = list(getattr(sch, "history", None) or [])
        trace_lines = _trace_lines(getattr(sch, "trace", None))
        if not hist:
            cur = getattr(sch, "func", None) or getattr(sch, "mod", None)
            if cur is None:
                raise TypeError(f"cannot show {type(sch).__name__} as a schedule: it has no history, func or mod")
            hist = [cur]
        # history with or without the original program first
        has_initial = len(hist) == len(trace_lines) + 1 or getattr(hist[0], "index", None) == 0
        self.steps: list[Step] = []
        for k, h in enumerate(hist):
            text = getattr(h, "text", "") or ""
            if not isinstance(text, str):
                text = str(text)
            if has_initial and k == 0:
                status, text = "initial", "original program"
            else:
                status = "ok"
                if not text or "<unknown" in text:
                    t = k - 1 if has_initial else k
                    text = trace_lines[t] if 0 <= t < len(trace_lines) else (getattr(h, "name", "") or f"step {k}")
            self.steps.append(Step(len(self.steps), text, as_prim_func(h), status))
        err = _find_error(sch, error)
        self.error = err
        if err is not None:
            exc = getattr(err, "error", err) if not isinstance(err, BaseException) else err
            text = getattr(err, "text", None) or getattr(err, "call", None) or getattr(err, "instruction", None)
            prog = getattr(exc, "func", None) or self.steps[-1].program
            if not text:
                msg = str(getattr(exc, "message", "") or (exc.args[0] if getattr(exc, "args", None) else ""))
                text = f"{type(exc).__name__}: {msg[:70]}{'...' if len(msg) > 70 else ''} (not applied)"
            self.steps.append(Step(len(self.steps), str(text),
                                   as_prim_func(prog), "error"))
            self.exc = exc
        else:
            self.exc = None
        self._cache: dict[int, tuple[dict, dict]] = {}
        self.ids = NodeIds()  # one loop or block keeps its node id at every step
        self._trees: dict[int, LoopTree | None] = {}

    @property
    def title(self) -> str:
        f = self.steps[-1].program
        name = getattr(f, "name", "")
        n = sum(1 for s in self.steps if s.status == "ok")
        return f"Schedule of {name}: {n} step{'s' if n != 1 else ''}" + (", 1 error" if self.exc is not None else "")

    def steps_json(self) -> list[dict]:
        return [{"index": s.index, "text": s.text, "status": s.status} for s in self.steps]

    def tree(self, k: int) -> LoopTree | None:
        """The loop tree of the program after step ``k`` (node ids shared by all steps), or None."""
        if k not in self._trees:
            prog = self.steps[k].program
            self._trees[k] = loop_tree(prog, ids=self.ids) if isinstance(prog, PrimFunc) else None
        return self._trees[k]

    def view(self, k: int) -> tuple[dict, dict]:
        """``(program, diff)`` payloads of step ``k``: the program after it (changed lines
        marked; for the error step the offending place marked) and the diff from the step before."""
        if k in self._cache:
            return self._cache[k]
        if not 0 <= k < len(self.steps):
            raise IndexError(f"step {k} does not exist; this schedule has steps 0..{len(self.steps) - 1}")
        step = self.steps[k]
        prog = step.program
        tree = self.tree(k)
        text = tree.script if tree else script_of(prog)
        marks: dict = {}
        diff = {"rows": [], "changed_new": [], "removed_old": [], "tree": []}
        if k > 0 and step.status != "error":
            before = self.tree(k - 1)
            d = program_diff(before.script if before else script_of(self.steps[k - 1].program), text)
            marks["changed"] = d.changed_new
            diff = d.to_json(context=3)
            diff["tree"] = tree_diff(before.root, tree.root) if before and tree else []
        payload = program_payload(prog, marks, title=f"after step {k}: {step.text}" if k else "original program",
                                  tree=tree)
        if step.status == "error":
            payload["error"] = error_payload(self.exc, tree)
            payload["marks"]["error"] = payload["error"]["lines"]
            payload["title"] = f"step {k} failed: {step.text}"
        self._cache[k] = (payload, diff)
        return payload, diff


def error_payload(exc: Any, tree: LoopTree | None) -> dict:
    """Message, detail and the marked place (node id and lines) of a schedule error."""
    message = getattr(exc, "message", None) or (exc.args[0] if getattr(exc, "args", None) else str(exc))
    node = getattr(exc, "node", None)
    nid = tree.id_of(node) if (tree is not None and node is not None) else None
    lines: list[int] = []
    if nid is not None:
        span = tree.find(nid)["lines"]
        if span:
            lines = [span[0]]  # the loop's `for` line or the block's `with` line
    return {"type": type(exc).__name__, "message": str(message), "detail": str(getattr(exc, "detail", "") or ""),
            "node": nid, "lines": lines}


def _trace_lines(trace: Any) -> list[str]:
    if trace is None:
        return []
    try:
        insts = list(trace)
    except TypeError:
        insts = []
    text = str(trace)
    lines = text.splitlines() if text else []
    if len(lines) == len(insts):
        return lines
    return [str(i) for i in insts]


__all__ = ["buffers_of", "program_payload", "ScheduleData", "error_payload", "as_prim_func", "script_of"]
