"""Static HTML views: what exported notebooks (nbconvert HTML, GitHub) show.

They need no JavaScript: the loop nest is nested ``<details>`` (collapsible in any
browser), the script is highlighted with inline colours, the block graph is an
inline SVG, and a schedule lists its steps with each step's diff. Each view's
outer ``<div>`` has the class ``wb-static`` plus ``wb-static-program``,
``wb-static-schedule`` or ``wb-static-module``.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((8,), "float32", name="A")
>>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
>>> html = program_html(wb.create_prim_func([A, B]))
>>> "wb-static-program" in html and "<details" in html
True
"""
from __future__ import annotations

import html as _html
from typing import Any

from ..ir.function import IRModule, PrimFunc
from .block_graph import block_graph_data, module_graph_data, to_svg
from .data import ScheduleData, buffers_of, script_of
from .diff import program_diff
from .loop_tree import KIND_COLORS, KIND_LABELS, LoopTree, loop_tree
from .script_view import highlight_inline

MAX_STATIC_LINES = 2000      # script lines shown in full; the rest is summarised
MAX_STATIC_GRAPH_BLOCKS = 200
OPEN_DEPTH = 3

_BOX = ("font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:12.5px;color:#1f2937;"
        "border:1px solid #e5e7eb;border-radius:6px;padding:6px 8px;background:#fff")
_MONO = "font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px"
_PRE = f"{_MONO};line-height:1.45;color:#1f2937;background:#fbfbfb;padding:4px 6px;margin:0;overflow:auto;max-height:480px"


def esc(s: Any) -> str:
    return _html.escape(str(s), quote=True)


def legend_html() -> str:
    items = "".join(
        f'<span style="margin-right:10px"><span style="display:inline-block;width:10px;height:10px;'
        f'border-radius:2px;background:{c}"></span> {KIND_LABELS[k]}</span>' for k, c in KIND_COLORS.items())
    return f'<div style="color:#4b5563;margin:2px 0 6px">{items}</div>'


MAX_STATIC_TREE_NODES = 400


def _tree_html(root: dict, open_depth: int) -> str:
    budget = [MAX_STATIC_TREE_NODES]
    return _node_html(root, open_depth, budget)


def _node_html(n: dict, open_depth: int, budget: list | None = None) -> str:
    budget = budget if budget is not None else [MAX_STATIC_TREE_NODES]
    budget[0] -= 1
    if n["kind"] == "loop":
        color = KIND_COLORS.get(n["loop_kind"], "#999")
        kind = n["thread"] if n["loop_kind"] == "thread_binding" else n["loop_kind"]
        ext = n["extent"] if n["min"] == "0" else f"{n['min']} + {n['extent']}"
        ann = "".join(f' <span style="background:#fef3c7;color:#92400e;border-radius:3px;padding:0 4px">'
                      f'{esc(k)}={esc(v)}</span>' for k, v in n["annotations"].items())
        head = (f'<span style="color:#7c3aed">for</span> <b>{esc(n["var"])}</b> in '
                f'<span style="color:#0f766e;{_MONO}">{esc(ext)}</span> '
                f'<span style="background:{color};color:#fff;border-radius:3px;padding:0 5px;font-size:11px">'
                f'{esc(kind)}</span>{ann}')
    elif n["kind"] == "block":
        ivs = " ".join(
            f'<span style="background:{"#fee2e2" if iv["type"] == "reduce" else "#dbeafe"};border-radius:3px;'
            f'padding:0 4px;{_MONO}">{esc(iv["name"])}:{"R" if iv["type"] == "reduce" else "S"}</span>'
            for iv in n["iter_vars"])
        detail = [f'reads {esc(", ".join(n["reads"]) or "-")}', f'writes {esc(", ".join(n["writes"]) or "-")}']
        if n["init"]:
            detail.append(f'init: {esc(n["init"].replace(chr(10), "; "))}')
        if n["predicate"]:
            detail.append(f'where {esc(n["predicate"])}')
        head = (f'<span style="color:#7c3aed">block</span> <b>{esc(n["name"])}</b> {ivs}'
                f'<div style="color:#4b5563;padding-left:16px;{_MONO}">{"<br>".join(detail)}</div>')
    else:
        head = (f'<span style="color:#7c3aed">def</span> <b>{esc(n["name"])}</b>'
                f'<span style="color:#6b7280">({esc(", ".join(n["params"]))})</span>')
    kids = n.get("children") or []
    lines = f' <span style="color:#9ca3af">[lines {n["lines"][0]}-{n["lines"][1]}]</span>' if n.get("lines") else ""
    if not kids:
        return f'<div style="padding-left:14px">{head}{lines}</div>'
    inner_parts = []
    for k, c in enumerate(kids):
        if budget[0] <= 0:
            inner_parts.append(f'<div style="padding-left:14px;color:#6b7280">... {len(kids) - k} more '
                               f'(the live widget shows them all)</div>')
            break
        inner_parts.append(_node_html(c, open_depth, budget))
    inner = "".join(inner_parts)
    op = " open" if n["depth"] < open_depth else ""
    return (f'<details{op} style="padding-left:{0 if n["kind"] == "func" else 14}px"><summary>{head}{lines}'
            f'</summary>{inner}</details>')


def script_html(text: str, marks: dict | None = None, max_lines: int = MAX_STATIC_LINES) -> str:
    """The script in a ``<pre>`` with inline colours and line numbers; marked lines tinted."""
    marks = marks or {}
    changed = set(marks.get("changed", ()))
    error = set(marks.get("error", ()))
    all_lines = text.splitlines()
    lines = highlight_inline("\n".join(all_lines[:max_lines]))
    out = []
    for k, line in enumerate(lines[:max_lines], start=1):
        bg = "#fee2e2" if k in error else ("#dcfce7" if k in changed else "")
        style = f' style="background:{bg}"' if bg else ""
        tail = '  <span style="color:#dc2626"># &lt;-- here</span>' if k in error else ""
        out.append(f'<span{style}><span style="color:#9ca3af;user-select:none">{k:>4}  </span>{line}{tail}</span>')
    more = ""
    if len(all_lines) > max_lines:
        more = f'\n<span style="color:#6b7280">... {len(all_lines) - max_lines} more lines (shown in the live widget)</span>'
    return f'<pre class="wb-static-script" style="{_PRE}">' + "\n".join(out) + more + "</pre>"


def program_html(func: PrimFunc, marks: dict | None = None, tree: LoopTree | None = None,
                 graph: bool = True, title: str | None = None, graph_open: bool = False) -> str:
    """Static view of a PrimFunc: loop tree, highlighted script, block graph."""
    tree = tree or loop_tree(func)
    parts = [f'<div class="wb-static wb-static-program" style="{_BOX}">',
             f'<div style="font-weight:600">{esc(title or "PrimFunc " + func.name)}</div>', legend_html(),
             '<div style="display:flex;gap:8px;flex-wrap:wrap">',
             f'<div class="wb-static-tree" style="flex:1 1 40%;min-width:280px">'
             f'{_tree_html(tree.root, OPEN_DEPTH)}</div>',
             f'<div style="flex:1 1 55%;min-width:320px">{script_html(tree.script, marks)}</div>', "</div>",
             buffers_html(func)]
    if graph and len(tree.blocks()) <= MAX_STATIC_GRAPH_BLOCKS:
        try:
            svg = to_svg(block_graph_data(func, tree))
            op = " open" if graph_open else ""
            parts.append(f'<details class="wb-static-graph"{op}><summary>block graph</summary>{svg}</details>')
        except RuntimeError as err:  # no `dot`: say so, show the rest
            parts.append(f'<div style="color:#6b7280">{esc(err)}</div>')
    parts.append("</div>")
    return "".join(parts)


# The output beside a live widget: shown until the live view renders next to it (JupyterLab's and
# nbconvert's output wrappers are `.jp-OutputArea-child`, the classic notebook's `.output_area`), and
# hiding the widget output while that shows no live view (a missing model, no widget loader).
FALLBACK_CSS = "".join(
    f"{c}:has(.wb-fallback):has(+ {c} .wb-root){{display:none}}"
    f"{c}:has(.wb-fallback) + {c}:not(:has(.wb-root)){{display:none}}"
    for c in (".jp-OutputArea-child", ".output_area"))


def fallback_output(static: str) -> str:
    """The static view as the output published before a live widget (see ``_Base._repr_mimebundle_``)."""
    return f'<div class="wb-fallback"><style>{FALLBACK_CSS}</style>{static}</div>'


def buffers_html(func: PrimFunc) -> str:
    """The buffers of ``func`` as a table: name, shape, dtype, scope, where declared."""
    rows = "".join(
        f'<tr><td><b>{esc(b["name"])}</b></td><td style="{_MONO}">[{esc(b["shape"])}]</td>'
        f'<td style="{_MONO}">{esc(b["dtype"])}</td><td>{esc(b["scope"])}</td>'
        f'<td style="color:#6b7280">{esc(b["where"])}</td></tr>' for b in buffers_of(func))
    head = "".join(f'<th style="text-align:left;padding-right:10px">{h}</th>'
                   for h in ("buffer", "shape", "dtype", "scope", "declared"))
    return (f'<details class="wb-static-buffers"><summary>buffers</summary><table style="border-collapse:collapse">'
            f'<tr>{head}</tr>{rows}</table></details>')


def error_html(exc: Any) -> str:
    """An uncaught ``ScheduleError``: the message, the detail, the program with the place marked."""
    from .data import error_payload

    func = getattr(exc, "func", None)
    tree = loop_tree(func) if isinstance(func, PrimFunc) else None
    err = error_payload(exc, tree)
    parts = [f'<div class="wb-static wb-static-error-view" style="{_BOX}">',
             f'<div class="wb-static-error" style="background:#fee2e2;border:1px solid #fca5a5;color:#7f1d1d;'
             f'border-radius:4px;padding:4px 8px;margin-bottom:6px"><b>{esc(err["type"])}</b>: '
             f'{esc(err["message"])}' + (f'<div>{esc(err["detail"])}</div>' if err["detail"] else "") + "</div>"]
    if tree is not None:
        parts.append(script_html(tree.script, {"error": err["lines"]}))
    elif func is not None:
        parts.append(script_html(script_of(func)))
    parts.append("</div>")
    return "".join(parts)


def _tree_diff_html(changes: list[dict]) -> str:
    colors = {"added": "#166534", "removed": "#991b1b", "moved": "#1d4ed8", "extent": "#92400e", "kind": "#6b21a8"}
    items = "".join(f'<li style="color:{colors.get(c["change"], "#374151")}">{esc(c["text"])}</li>' for c in changes)
    return f'<ul class="wb-static-tree-diff" style="margin:2px 0 4px">{items}</ul>'


def _diff_html(old: str, new: str) -> str:
    d = program_diff(old, new).to_json(context=2)
    if not d["changed_new"] and not d["removed_old"]:
        return '<div style="color:#6b7280;font-style:italic">no change to the program</div>'
    rows = []
    for r in d["rows"]:
        if r["tag"] == "...":
            rows.append(f'<span style="color:#6b7280">  ... {r["skipped"]} unchanged lines</span>')
            continue
        bg = {"+": "#dcfce7", "-": "#fee2e2"}.get(r["tag"], "")
        style = f' style="background:{bg}"' if bg else ""
        rows.append(f'<span{style}>{esc(r["tag"])} {esc(r["text"])}</span>')
    return f'<pre class="wb-static-diff" style="{_PRE}">' + "\n".join(rows) + "</pre>"


def schedule_html(sch: Any, error: Any = None) -> str:
    """Static view of a schedule: the steps, each with its diff; the final program; the error."""
    data = sch if isinstance(sch, ScheduleData) else ScheduleData(sch, error)
    parts = [f'<div class="wb-static wb-static-schedule" style="{_BOX}">',
             f'<div style="font-weight:600">{esc(data.title)}</div><ol start="0" style="margin:4px 0">']
    prev_text = None
    for s in data.steps:
        text = script_of(s.program)
        if s.status == "error":
            prog, _ = data.view(s.index)
            err = prog["error"]
            parts.append(f'<li style="color:#b91c1c"><code>{esc(s.text)}</code> failed: '
                         f'<b>{esc(err["type"])}</b>: {esc(err["message"])}</li>')
        elif s.status == "initial" or prev_text is None:
            parts.append(f"<li><code>{esc(s.text)}</code></li>")
        else:
            _, d = data.view(s.index)
            moves = _tree_diff_html(d["tree"]) if d.get("tree") else ""
            parts.append(f'<li><details><summary><code>{esc(s.text)}</code></summary>{moves}'
                         f'<details><summary>text diff</summary>{_diff_html(prev_text, text)}</details>'
                         f'</details></li>')
        if s.status != "error":
            prev_text = text
    parts.append("</ol>")
    last_ok = [s for s in data.steps if s.status != "error"][-1]
    if isinstance(last_ok.program, PrimFunc):
        parts.append(program_html(last_ok.program, {"changed": []}, graph=False,
                                  title=f"program after step {last_ok.index}"))
    if data.exc is not None:
        err_step = data.steps[-1]
        prog, _ = data.view(err_step.index)
        err = prog["error"]
        parts.append(f'<div class="wb-static-error" style="background:#fee2e2;border:1px solid #fca5a5;'
                     f'color:#7f1d1d;border-radius:4px;padding:4px 8px;margin-top:6px">'
                     f'<b>{esc(err["type"])}</b>: {esc(err["message"])}'
                     + (f'<div>{esc(err["detail"])}</div>' if err["detail"] else "") + "</div>")
        parts.append(script_html(prog["script"], prog["marks"]))
    parts.append("</div>")
    return "".join(parts)


def module_html(mod: IRModule) -> str:
    """Static view of a module: the function graph, then each function."""
    parts = [f'<div class="wb-static wb-static-module" style="{_BOX}">',
             f'<div style="font-weight:600">IRModule: {len(mod)} function{"s" if len(mod) != 1 else ""}</div>']
    if len(mod):
        try:
            parts.append(f'<details><summary>function graph</summary>{to_svg(module_graph_data(mod))}</details>')
        except RuntimeError as err:
            parts.append(f'<div style="color:#6b7280">{esc(err)}</div>')
    for name, f in mod.items():
        if isinstance(f, PrimFunc):
            parts.append(program_html(f, title=f"{name} (PrimFunc)"))
        else:
            parts.append(f"<div><b>{esc(name)}</b></div>" + script_html(script_of(f)))
    parts.append("</div>")
    return "".join(parts)


def static_html(obj: Any, **kwargs) -> str:
    """The static HTML view of a PrimFunc, IRModule (the graph view when it has a graph function), a
    loaded ``wb.frontend`` model or a schedule."""
    from .graph_view import graph_html, is_graph_module, is_model, panes_for

    if is_graph_module(obj) or is_model(obj):
        return graph_html(*panes_for(obj, **kwargs))
    if isinstance(obj, PrimFunc):
        return program_html(obj, **kwargs)
    if isinstance(obj, IRModule):
        return module_html(obj)
    return schedule_html(obj, **kwargs)


__all__ = ["static_html", "fallback_output", "error_html", "buffers_html", "program_html", "schedule_html", "module_html", "script_html"]
