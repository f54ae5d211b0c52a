"""Interactive widgets (anywidget, no npm build step): loop nest, schedule, module, model graph.

The browser code is the inline ES module in ``frontend.py``; the state it reads is
synced traitlets: ``program`` (tree, highlighted lines, marks), ``selected`` (the
chosen loop/block id), ``tab``, ``graph_svg``, and for a schedule ``steps`` and
``step`` (choosing a step recomputes ``program`` and ``diff`` here in Python).

>>> import workbench as wb                                   # doctest: +SKIP
>>> w = ProgramWidget(func); w.selected = "n0"               # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import anywidget
import traitlets as t

from ..ir.function import IRModule, PrimFunc
from .block_graph import block_graph_data, module_graph_data, to_svg
from .data import ScheduleData, program_payload
from .frontend import ESM, css, legend_items
from .loop_tree import KIND_COLORS, loop_tree

# drawing the block graph is deferred to the first look at the Graph tab beyond this many blocks
EAGER_GRAPH_BLOCKS = 60


class _Base(anywidget.AnyWidget):
    _esm = ESM
    _css = css()
    kind = t.Unicode("program").tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    program = t.Dict().tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    tab = t.Unicode("loops").tag(sync=True)
    graph_svg = t.Unicode("").tag(sync=True)
    legend = t.List().tag(sync=True)
    colors = t.Dict().tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(legend=legend_items(), colors=dict(KIND_COLORS), **kwargs)

    def _static_html(self) -> str:  # overridden: the view for exported notebooks
        return ""

    def _repr_mimebundle_(self, **kwargs):
        """The widget view, preceded (in a kernel) by its static view as a separate output.

        A widget view renders only while its model exists: not in a notebook reopened without
        widget state, not in nbconvert's HTML (whose widget loader needs the internet). So the
        static view (``static.fallback_output``) is published first as its own output; its CSS
        hides it once this widget's live view has rendered next to it, and hides this output
        while it shows no live view ("Error displaying widget", "Loading widget..."). Whatever
        works, the program is on the page. This output's own ``text/html`` is an empty slot (so
        an exporter that drops the widget view shows nothing twice) and ``text/plain`` the script.
        """
        out = super()._repr_mimebundle_(**kwargs)
        data, meta = out if isinstance(out, tuple) else (out, {})
        if self._publish_fallback():
            data["text/html"] = '<div class="wb-live-slot"></div>'
        else:  # no kernel to publish to: the static view in this bundle
            data["text/html"] = self.static_bundle()["text/html"]
        text = self._plain_text()
        if text:
            data["text/plain"] = text
        return data, meta

    def _publish_fallback(self) -> bool:
        """Publish the static view as an output of its own, when in a kernel; True if published."""
        from . import in_kernel

        if not in_kernel():
            return False
        from IPython.display import publish_display_data

        publish_display_data(self.static_bundle())
        return True

    def static_bundle(self) -> dict:
        """The static view as display data: what shows where the live widget cannot."""
        from .static import fallback_output

        try:
            static = self._static_html()
        except Exception as err:  # the live widget still works; say what failed
            import html

            static = f"<pre>(static view failed: {html.escape(repr(err))})</pre>"
        return {"text/html": fallback_output(static), "text/plain": self._plain_text()}

    def _plain_text(self) -> str:
        return ""

    def _draw_graph(self, func: Any) -> None:
        if isinstance(func, PrimFunc):
            self.graph_svg = to_svg(block_graph_data(func))
        else:
            self.graph_svg = ""


class _CostAndCode(_Base):
    """The loop nest's two overlays, computed when switched on: the cost heat map (``show_cost``;
    ``cost_metric`` "flops" or "bytes") and the machine code panel (``show_machine``: the LLVM IR and
    assembly for ``target``, each line linked to its loop or block). ``measured``: seconds per run
    from a benchmark, shown with the heat map."""

    tools = t.Bool(True).tag(sync=True)
    show_cost = t.Bool(False).tag(sync=True)
    cost_metric = t.Unicode("flops").tag(sync=True)
    cost = t.Dict().tag(sync=True)
    show_machine = t.Bool(False).tag(sync=True)
    machine = t.Dict().tag(sync=True)
    target = t.Unicode("llvm").tag(sync=True)

    measured: float | None = None

    def _shown(self) -> tuple[Any, Any]:  # overridden: (program, loop tree) on screen
        raise NotImplementedError

    @t.observe("show_cost")
    def _on_show_cost(self, change):
        self._refresh_cost()

    @t.observe("show_machine", "target")
    def _on_show_machine(self, change):
        self._refresh_machine()

    def _refresh_overlays(self) -> None:
        self._refresh_cost()
        self._refresh_machine()

    def _refresh_cost(self) -> None:
        if not self.show_cost:
            return
        from .cost import cost_payload

        func, tree = self._shown()
        if not isinstance(func, PrimFunc):
            self.cost = {"error": "no loop nest to count", "nodes": {}}
            return
        self.cost = cost_payload(func, tree=tree, seconds=self.measured)

    def _refresh_machine(self) -> None:
        if not self.show_machine:
            return
        from .machine_code import machine_code

        func, tree = self._shown()
        if not isinstance(func, PrimFunc):
            self.machine = {"error": "not a tensor program", "ir": [], "asm": []}
            return
        self.machine = {"target": self.target, "ir": [], "asm": [], "pending": True}
        try:
            self.machine = machine_code(func, self.target, tree=tree).to_json()
        except (ValueError, NotImplementedError, RuntimeError) as err:  # say why there is no code
            self.machine = {"target": self.target, "ir": [], "asm": [],
                            "error": f"{type(err).__name__}: {err}"}


class ProgramWidget(_CostAndCode):
    """The loop nest of a PrimFunc beside its highlighted script, and its block graph.

    Select a loop or block by clicking it (or set ``w.selected = "n3"``); its lines
    light up in the script. ``tab="graph"`` opens on the block graph; a click on a
    block there selects it in the loop nest.
    """

    def __init__(self, func: PrimFunc, tab: str = "loops", *, cost: bool = False, machine_code: bool = False,
                 target: str = "llvm", measured: float | None = None):
        if not isinstance(func, PrimFunc):
            raise TypeError(f"ProgramWidget shows a PrimFunc, got {type(func).__name__}")
        self.func = func
        self.tree = loop_tree(func)
        self.measured = measured
        super().__init__(kind="program", tab=tab, program=_wire(program_payload(func, tree=self.tree)),
                         title=f"PrimFunc {func.name}", target=target, show_cost=cost,
                         show_machine=machine_code)
        self._refresh_overlays()
        if tab == "graph" or len(self.tree.blocks()) <= EAGER_GRAPH_BLOCKS:
            self._draw_graph(func)

    def _shown(self) -> tuple[Any, Any]:
        return self.func, self.tree

    @t.observe("tab")
    def _on_tab(self, change):
        if change["new"] == "graph" and not self.graph_svg:
            self._draw_graph(self.func)

    def _static_html(self) -> str:
        from .static import program_html

        return program_html(self.func, tree=self.tree, graph_open=self.tab == "graph")

    def _plain_text(self) -> str:
        return self.tree.script


class ScheduleWidget(_CostAndCode):
    """The steps of a schedule; choosing a step shows the program after it and its diff.

    An error (``error=`` or the schedule's last error) is a red last step: choosing
    it shows the message and marks the loop or block it names.
    """

    steps = t.List().tag(sync=True)
    step = t.Int(0).tag(sync=True)
    diff = t.Dict().tag(sync=True)

    def __init__(self, sch: Any, error: Any = None, step: int | None = None, *, cost: bool = False,
                 machine_code: bool = False, target: str = "llvm", measured: float | None = None):
        self.data = ScheduleData(sch, error)
        n = len(self.data.steps)
        k = n - 1 if step is None else step
        if not 0 <= k < n:
            raise IndexError(f"step {step} does not exist; this schedule has steps 0..{n - 1}")
        prog, diff = self.data.view(k)
        prog = _wire(prog)
        self.measured = measured
        super().__init__(kind="schedule", title=self.data.title, steps=self.data.steps_json(), step=k,
                         program=prog, diff=diff, target=target, show_cost=cost, show_machine=machine_code)
        self._refresh_overlays()
        self._graph_step = -1
        if self.tab == "graph":
            self._refresh_graph()

    def _shown(self) -> tuple[Any, Any]:
        """The program after the chosen step and its loop tree (the measured time is the last step's)."""
        return self.data.steps[self.step].program, self.data.tree(self.step)

    @t.observe("step")
    def _on_step(self, change):
        k = max(0, min(len(self.data.steps) - 1, int(change["new"])))
        prog, diff = self.data.view(k)
        self.program = _wire(prog)
        self.diff = diff
        self._refresh_overlays()
        if self.tab == "graph":
            self._refresh_graph()

    @t.observe("tab")
    def _on_tab(self, change):
        if change["new"] == "graph":
            self._refresh_graph()

    def _static_html(self) -> str:
        from .static import schedule_html

        return schedule_html(self.data)

    def _plain_text(self) -> str:
        sch = self.data.sch
        return repr(sch)

    def _refresh_graph(self):
        if self._graph_step != self.step:
            self._graph_step = self.step
            self._draw_graph(self.data.steps[self.step].program)


class ModuleWidget(_Base):
    """The functions of an IRModule, the graph of which calls which, and the loop nest of one."""

    functions = t.List().tag(sync=True)
    current = t.Unicode("").tag(sync=True)

    def __init__(self, mod: IRModule, current: str | None = None):
        if not isinstance(mod, IRModule):
            raise TypeError(f"ModuleWidget shows an IRModule, got {type(mod).__name__}")
        self.mod = mod
        names = list(mod.functions)
        cur = current if current is not None else (names[0] if names else "")
        if names and cur not in mod:
            raise KeyError(f"module has no function {cur!r}; it has {', '.join(names)}")
        fns = [{"name": k, "kind": "PrimFunc" if isinstance(f, PrimFunc) else type(f).__name__}
               for k, f in mod.items()]
        prog = _wire(program_payload(mod[cur])) if names else program_payload_empty()
        super().__init__(kind="module", title=f"IRModule: {len(names)} function{'s' if len(names) != 1 else ''}",
                         functions=fns, current=cur, program=prog,
                         graph_svg=to_svg(module_graph_data(mod)) if names else "")

    def _static_html(self) -> str:
        from .static import module_html

        return module_html(self.mod)

    def _plain_text(self) -> str:
        from .data import script_of

        return script_of(self.mod)

    @t.observe("current")
    def _on_current(self, change):
        if change["new"] in self.mod:
            self.selected = ""
            self.program = _wire(program_payload(self.mod[change["new"]]))


class GraphWidget(_Base):
    """A model's graph (or a before/after pair): click a ``call_tir`` node to see its kernel's loop nest
    and script, click a collapsed layer to draw it in full (its cluster's label collapses it again).

    ``w.selected = "0/b-lv6"`` (pane / node id) selects from Python; ``w.expanded`` lists the layers drawn
    in full; ``w.open_kernel("fused_linear_gelu")`` selects the kernel's first call.
    """

    graphs = t.List().tag(sync=True)
    expanded = t.List().tag(sync=True)
    detail = t.Dict().tag(sync=True)

    def __init__(self, panes: list, title: str, text: str | None = None):
        self.panes = panes
        self.text = text
        self.models = [g for g, _ in panes]
        self.before, self.after = self.models[0].mod, self.models[-1].mod
        expanded = sorted({k for g in self.models for k in g.default_expanded()})
        super().__init__(kind="graph", title=title, expanded=expanded, program=program_payload_empty(),
                         graphs=self._graphs(expanded))

    def _graphs(self, expanded: list) -> list:
        return [{"title": title, "summary": g.summary(), "svg": g.to_svg(expanded), "layers": g.layers}
                for g, title in self.panes]

    @t.observe("expanded")
    def _on_expanded(self, change):
        self.graphs = self._graphs(list(change["new"]))

    @t.observe("selected")
    def _on_selected(self, change):
        pane, _, node_id = change["new"].partition("/")
        g = self.models[int(pane)] if pane.isdigit() and int(pane) < len(self.models) else None
        if g is None or node_id not in g.by_id:
            self.detail, self.program = {}, program_payload_empty()
            return
        layer = g.by_id[node_id].layer
        if layer is not None and layer not in self.expanded:
            self.expanded = sorted(set(self.expanded) | {layer})
        self.detail = g.detail(node_id)
        kernel = g.kernel(node_id)
        self.program = _wire(program_payload(kernel, title=f"kernel {kernel.name}")) if kernel is not None \
            else program_payload_empty()

    def open_kernel(self, name: str, pane: int = -1) -> None:
        """Select the first call of kernel ``name`` (in the last pane by default)."""
        k = pane % len(self.models)
        calls = [n.id for n in self.models[k].nodes if n.kernel == name]
        if not calls:
            raise KeyError(f"no call_tir of a kernel {name!r} in this graph; kernels called: "
                           f"{', '.join(sorted({n.kernel for n in self.models[k].nodes if n.kernel})) or 'none'}")
        self.selected = f"{k}/{calls[0]}"

    def _static_html(self) -> str:
        from .graph_view import graph_html

        return graph_html(self.panes, self.title, list(self.expanded))

    def _plain_text(self) -> str:
        if self.text is not None:
            return self.text
        return "\n".join([self.title] + [f"  {title}: {g.summary()}" for g, title in self.panes])


def _wire(payload: dict) -> dict:
    """The payload as sent to the browser: without the plain script text (the HTML lines carry it)."""
    return {k: v for k, v in payload.items() if k != "script"}


def program_payload_empty() -> dict:
    return {"name": "", "title": "(empty module)", "tree": None, "script": "", "lines": [],
            "marks": {"changed": [], "error": []}, "expand_depth": 0}


def widget_for(obj: Any, **kwargs) -> _Base:
    """The widget that shows ``obj``: a PrimFunc, an IRModule (the graph view when it has a graph
    function), a loaded ``wb.frontend`` model or a schedule."""
    if isinstance(obj, PrimFunc):
        return ProgramWidget(obj, **kwargs)
    from .graph_view import is_graph_module, is_model, panes_for

    if is_graph_module(obj) or is_model(obj):
        from . import _plain_text

        return GraphWidget(*panes_for(obj, **kwargs), text=_plain_text(obj))
    if isinstance(obj, IRModule):
        return ModuleWidget(obj, **kwargs)
    if hasattr(obj, "history") or hasattr(obj, "trace"):
        return ScheduleWidget(obj, **kwargs)
    raise TypeError(f"no widget shows a {type(obj).__name__}; expected a PrimFunc, IRModule or Schedule")


__all__ = ["ProgramWidget", "ScheduleWidget", "ModuleWidget", "GraphWidget", "widget_for"]
