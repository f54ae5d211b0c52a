"""Widgets and renderings: loop nest, schedule steps and diff, block graph, script, model graph.

A ``PrimFunc``, ``IRModule``, ``Schedule`` or loaded model that ends a notebook cell displays
itself through ``mimebundle(obj)``: an interactive widget (anywidget) when running
in a kernel, a static HTML view for exported notebooks, and the script as text.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((8,), "float32", name="A")
>>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
>>> f = wb.create_prim_func([A, B])
>>> sorted(mimebundle(f))          # outside a kernel: no widget view
['text/html', 'text/plain']
>>> g = block_graph(f, widget=False)
>>> "<svg" in g.svg
True
"""
from __future__ import annotations

from typing import Any

from .block_graph import BlockGraphSVG, block_graph_data, module_graph_data, to_svg
from .data import ScheduleData, program_payload, script_of
from .diff import ProgramDiff, program_diff
from .loop_tree import LoopTree, loop_tree
from .script_view import highlight_lines

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def in_kernel() -> bool:
    """True inside a running Jupyter kernel (where widgets can render)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _plain_text(obj: Any) -> str:
    try:
        from ..ir.function import IRModule, PrimFunc

        from .graph_view import is_model

        if is_model(obj):
            return f"{obj!r}\n{script_of(obj.mod)}"
        if isinstance(obj, (PrimFunc, IRModule)):
            return script_of(obj)
        return repr(obj)
    except Exception as err:  # printing must never hide the object
        return f"<{type(obj).__name__} (unprintable: {err})>"


def mimebundle(obj: Any, widget: bool | None = None, **kwargs) -> dict:
    """The display data of a PrimFunc, IRModule or schedule.

    ``text/plain``: the script (or the schedule's repr); ``text/html``: the static
    view (``static.static_html``); ``application/vnd.jupyter.widget-view+json``: the
    interactive widget, when ``widget`` is true or (by default) when running in a
    kernel with anywidget installed. A failure to build the rich views never hides
    the object: the bundle then holds the text and a note saying what failed.
    """
    if widget is None:
        widget = in_kernel()
    if widget:
        try:
            from .widgets import widget_for
        except ImportError:  # anywidget / ipywidgets missing: the static view only
            widget = False
    if widget:
        # the widget's own bundle carries the widget view, the static HTML and the text
        data = widget_for(obj, **kwargs)._repr_mimebundle_()
        return dict(data[0] if isinstance(data, tuple) else data)
    bundle = {"text/plain": _plain_text(obj)}
    try:
        from .static import static_html

        bundle["text/html"] = static_html(obj, **kwargs)
    except Exception as err:
        import html

        bundle["text/html"] = (f'<div class="wb-static"><pre>{html.escape(bundle["text/plain"])}</pre>'
                               f'<div style="color:#b91c1c">(the static view failed: {html.escape(repr(err))})</div></div>')
    return bundle


def show(obj: Any, **kwargs):
    """The interactive widget of ``obj`` (PrimFunc, IRModule, schedule) to display or drive from Python.

    >>> w = show(func)          # doctest: +SKIP
    >>> w.selected = "n2"       # doctest: +SKIP
    """
    from .widgets import widget_for

    return widget_for(obj, **kwargs)


def schedule_view(sch: Any, error: Any = None, step: int | None = None):
    """The schedule widget, with a primitive's error shown as a failed last step.

    >>> try:                                            # doctest: +SKIP
    ...     sch.split(k, factors=[0, 4])
    ... except wb.ScheduleError as err:
    ...     e = err
    >>> wb.viz.schedule_view(sch, error=e)              # doctest: +SKIP
    """
    from .widgets import ScheduleWidget

    return ScheduleWidget(sch, error=error, step=step)


def block_graph(func: Any, widget: bool | None = None):
    """The producer-consumer graph of the blocks of ``func`` (a PrimFunc; an IRModule gives
    the graph of its functions).

    In a kernel (or with ``widget=True``) it is the program widget opened on its
    Graph tab, where a click on a block selects it in the loop nest; otherwise a
    ``BlockGraphSVG`` whose ``.svg`` is the drawing and ``.data`` the nodes and edges.
    """
    from ..ir.function import IRModule, PrimFunc

    if isinstance(func, IRModule):
        data = module_graph_data(func)
    elif isinstance(func, PrimFunc):
        data = None
    else:
        inner = getattr(func, "func", None)
        if isinstance(inner, PrimFunc):
            func = inner
            data = None
        else:
            raise TypeError(f"block_graph needs a PrimFunc (or an IRModule or Schedule), got {type(func).__name__}")
    if widget is None:
        widget = in_kernel()
    if widget and data is None:
        try:
            from .widgets import ProgramWidget
        except ImportError:
            pass
        else:
            return ProgramWidget(func, tab="graph")
    if data is None:
        data = block_graph_data(func)
    return BlockGraphSVG(to_svg(data), data)


def machine_code(obj: Any, target: str = "llvm"):
    """The LLVM IR and assembly of a tensor program (PrimFunc, IRModule or Schedule) for a CPU ``target``,
    each line linked to its loop or block: ``.ir``, ``.asm`` (``(text, node id)`` pairs),
    ``.lines_of(node_id, "asm")``, ``.node_of("asm", k)``. The widgets' "machine code" button shows it.

    >>> mc = wb.viz.machine_code(sch, target="llvm -mcpu=znver3")    # doctest: +SKIP
    >>> [mc.asm[k][0] for k in mc.lines_of("block-C")]              # doctest: +SKIP
    """
    from .machine_code import machine_code as build_listing

    return build_listing(obj, target)


def program_cost(obj: Any, **kwargs) -> dict:
    """FLOPs and bytes (loaded + stored) of every loop and block of a tensor program, with their share of
    the total: what the widgets' cost heat map shows (see ``workbench.viz.cost``)."""
    from .cost import program_cost as count

    return count(obj, **kwargs)


def benchmark_view(result: Any, variants: Any, target: str | None = None, widget: bool | None = None):
    """``wb.benchmark``'s table with a link from each row to that variant's loop nest, FLOP heat map,
    measured time and machine code.

    >>> res = wb.benchmark(variants)                         # doctest: +SKIP
    >>> wb.viz.benchmark_view(res, variants)                 # doctest: +SKIP
    """
    from .benchmark_view import benchmark_view as view

    return view(result, variants, target=target, widget=widget)


def graph(obj: Any, func_name: str | None = None, widget: bool | None = None):
    """The graph of a model: ``obj`` an IRModule with a graph function, or a loaded ``wb.frontend`` model.

    Ops and tensors with their shapes, fused groups as clusters, repeated layers collapsed (click one to
    draw it in full); a click on a ``call_tir`` node opens its kernel's loop nest and script. In a kernel
    (or with ``widget=True``) a ``GraphWidget``, otherwise a ``GraphView`` (static HTML and SVG).

    >>> wb.viz.graph(model)                                 # doctest: +SKIP
    """
    from .graph_view import panes_for

    panes, title = panes_for(obj, func_name)
    return _graph_display(panes, title, widget)


def graph_diff(before: Any, after: Any, func_name: str | None = None, title: str | None = None,
               widget: bool | None = None):
    """Two graphs side by side, with the kernel launches (per layer too) before and after: what a pass did.

    ``.before`` and ``.after`` are the modules.

    >>> wb.viz.graph_diff(legal, wb.transform.FuseTIR()(fused))   # doctest: +SKIP
    """
    from .graph_view import diff_panes

    return _graph_display(*diff_panes(before, after, func_name, title), widget)


def show_pass(pass_: Any, mod: Any, func_name: str | None = None, widget: bool | None = None):
    """Apply ``pass_`` (any ``IRModule -> IRModule`` callable) to ``mod`` and show the graphs before and after;
    the result is the view's ``.after``.

    >>> view = wb.viz.show_pass(wb.transform.FuseOps(), legal)   # doctest: +SKIP
    >>> fused = view.after                                        # doctest: +SKIP
    """
    name = getattr(pass_, "__name__", type(pass_).__name__)
    return graph_diff(mod, pass_(mod), func_name, title=name, widget=widget)


def _graph_display(panes: list, title: str, widget: bool | None):
    from .graph_view import GraphView

    if widget is None:
        widget = in_kernel()
    if widget:
        try:
            from .widgets import GraphWidget
        except ImportError:  # anywidget missing: the static view
            return GraphView(panes, title)
        return GraphWidget(panes, title)
    return GraphView(panes, title)


__all__ = [
    "graph", "graph_diff", "show_pass", "machine_code", "program_cost", "benchmark_view",
    "mimebundle", "show", "schedule_view", "block_graph", "in_kernel", "loop_tree", "LoopTree",
    "program_diff", "ProgramDiff", "block_graph_data", "module_graph_data", "to_svg", "highlight_lines",
    "program_payload", "ScheduleData", "WIDGET_MIME",
]
