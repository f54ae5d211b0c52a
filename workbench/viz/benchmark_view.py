"""A benchmark's table with a link from each row to that variant's program, its cost and measured time.

``wb.viz.benchmark_view(result, variants)`` takes what ``wb.benchmark`` returned and the
variants it was given; a click on a row opens that variant's loop nest with the FLOP heat
map and the measured time per run (and, one click further, its machine code). Outside a
kernel (an exported notebook) the rows link to each variant's static program view below
the table.

>>> view = benchmark_view(result, {"naive": sch0, "tiled": sch1})   # doctest: +SKIP
>>> view.variant = "tiled"                                          # doctest: +SKIP
"""
from __future__ import annotations

import html
import re
from typing import Any, Mapping

import traitlets as t

from ..ir.function import PrimFunc
from ..tuning._program import prim_func_of
from .data import program_payload
from .loop_tree import loop_tree
from .widgets import _CostAndCode, _wire, program_payload_empty


def variant_rows(result: Any, variants: Mapping[str, Any]) -> list[dict]:
    """The formatted table's rows (``variant``, ``status``, ``median_ms``, ``gflops``, ``speedup``, ``note``),
    each with ``program``: whether the variant is a tensor program that can be opened."""
    table = result.formatted_table()
    speed = result.speedup_column
    rows = []
    for rec in table.to_dict("records"):
        name = rec["variant"]
        rows.append({"variant": name, "status": rec["status"], "median_ms": rec["median_ms"],
                     "gflops": rec["gflops"], "speedup": rec.get(speed, ""), "note": rec["note"],
                     "program": _func_of(variants.get(name)) is not None})
    return rows


def _func_of(obj: Any) -> PrimFunc | None:
    if obj is None:
        return None
    try:
        return prim_func_of(obj)
    except ValueError:  # a module of several programs: not one kernel to show
        return None


class BenchmarkWidget(_CostAndCode):
    """The rows of a benchmark; ``variant`` (a click on a row) shows that variant's program with the
    cost heat map on and its measured median time per run."""

    rows = t.List().tag(sync=True)
    variant = t.Unicode("").tag(sync=True)

    def __init__(self, result: Any, variants: Mapping[str, Any], target: str | None = None):
        unknown = sorted(set(variants) - set(result.variants))
        if unknown:
            raise KeyError(f"benchmark_view: {', '.join(map(repr, unknown))} is not a variant of this benchmark; "
                           f"its variants are {', '.join(result.variants)}")
        self.result, self.variants = result, dict(variants)
        self._func: PrimFunc | None = None
        self._tree = None
        rows = variant_rows(result, self.variants)
        first = next((r["variant"] for r in rows if r["program"]), "")
        super().__init__(kind="bench", title=f"benchmark on {result.target}: {len(rows)} variants", rows=rows,
                         program=program_payload_empty(), target=target or str(result.target), show_cost=True)
        self.variant = first

    @t.observe("variant")
    def _on_variant(self, change):
        name = change["new"]
        func = _func_of(self.variants.get(name))
        if func is None:
            self._func, self._tree = None, None
            self.program, self.cost, self.machine = program_payload_empty(), {}, {}
            return
        row = self.result.variants[name]
        self._func, self._tree = func, loop_tree(func)
        self.measured = row.timing.median if row.timing is not None else None
        self.selected = ""
        self.program = _wire(program_payload(func, tree=self._tree, title=f"variant {name!r}: {func.name}"))
        self._refresh_overlays()

    def _shown(self) -> tuple[Any, Any]:
        return self._func, self._tree

    def _static_html(self) -> str:
        return benchmark_html(self.result, self.variants)

    def _plain_text(self) -> str:
        return repr(self.result)


def anchor(name: str) -> str:
    """The HTML id of a variant's static view."""
    return "wb-variant-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def benchmark_html(result: Any, variants: Mapping[str, Any]) -> str:
    """The table with each row linking to its variant's static program view, and those views."""
    from .static import program_html

    rows = variant_rows(result, variants)
    head = "".join(f'<th style="text-align:left;padding-right:10px">{h}</th>'
                   for h in ("variant", "status", "median ms", "GFLOP/s", "speedup", "note"))
    body, views = [], []
    for r in rows:
        name = html.escape(r["variant"])
        cell = f'<a href="#{anchor(r["variant"])}">{name}</a>' if r["program"] else name
        body.append(f'<tr><td>{cell}</td>' + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in
                    ("status", "median_ms", "gflops", "speedup", "note")) + "</tr>")
        if r["program"]:
            views.append(f'<div id="{anchor(r["variant"])}"><h4>variant {name}</h4>'
                         f'{program_html(_func_of(variants[r["variant"]]))}</div>')
    return (f'<div class="wb-static wb-bench-static"><table class="wb-bench-table"><tr>{head}</tr>{"".join(body)}'
            f'</table>{"".join(views)}</div>')


def benchmark_view(result: Any, variants: Mapping[str, Any], target: str | None = None, widget: bool | None = None):
    """The benchmark table linked to the variants' programs: a ``BenchmarkWidget`` in a kernel (or with
    ``widget=True``), otherwise the static HTML (an object with ``_repr_html_``)."""
    from . import in_kernel

    if widget is None:
        widget = in_kernel()
    if widget:
        return BenchmarkWidget(result, variants, target=target)
    return _StaticBenchmark(benchmark_html(result, variants))


class _StaticBenchmark:
    def __init__(self, html_text: str):
        self.html = html_text

    def _repr_html_(self) -> str:
        return self.html


__all__ = ["benchmark_view", "BenchmarkWidget", "benchmark_html", "variant_rows"]
