"""The graph of a model: ops and tensors with their shapes, fused groups, repeated layers collapsed.

``GraphModel(mod)`` reads the graph function of an IRModule (``forward``, ``main`` or the only one):
one node per binding (an op call, a ``call_tir`` of a kernel, a library call, a tuple, a
``match_cast``), one per input parameter, one for the result. Weight parameters are not drawn:
each node lists the weights it reads. Edges follow the data; each node shows the tensor it
makes, with symbolic dimensions by name (``float32[batch, seq, 384]``).

- **Fused groups** (``FuseOps``' ``fusion_groups`` attribute) are drawn as clusters.
- **Repeated layers** are found from the weight names: ``encoder_layer_3_attention_...`` belongs to
  layer 3 of ``encoder_layer``; a binding is in the layer of the weights it reads, or (reading none)
  in the latest layer of its inputs. Every layer but the first is drawn as one box (``expanded``
  lists the layers drawn in full), so a 6-layer BERT stays readable.

``to_svg(expanded)`` draws it with graphviz ``dot``; node elements have the ids ``wbg-<node id>``
(``wbg-b-lv6`` for the binding ``lv6``, ``wbg-layer-3`` for a collapsed layer, ``wbg-cl-layer-3`` for
an expanded layer's cluster), which the widget's clicks use.

>>> import workbench as wb
>>> from workbench.frontend import nn
>>> class MLP(nn.Module):
...     def __init__(self):
...         self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)
...     def forward(self, x):
...         return self.fc2(nn.relu(self.fc1(x)))
>>> mod, _ = MLP().export({"forward": {"x": nn.spec(("n", 784), "float32")}})
>>> g = GraphModel(mod)
>>> [(n.id, n.label, n.type_text) for n in g.nodes]
[('in-x', 'x', 'float32[n, 784]'), ('b-lv', 'linear', 'float32[n, 128]'), ('b-lv1', 'relu', 'float32[n, 128]'), ('b-lv2', 'linear', 'float32[n, 10]'), ('out', 'result', 'float32[n, 10]')]
>>> g.stats()["launches"], g.stats()["op_calls"]
(0, 3)
>>> legal = wb.transform.LegalizeOps()(mod)
>>> GraphModel(legal).stats()["launches"]
3
"""
from __future__ import annotations

import html as _html
import re
from dataclasses import dataclass, field
from typing import Any

from ..ir.function import IRModule, PrimFunc
from .loop_tree import text

#: a weight name in a repeated layer: ``<family>_<index>_<rest>`` (``encoder_layer_3_attention_...``)
_LAYER_NAME = re.compile(r"^(?P<family>[A-Za-z][A-Za-z0-9_]*?)_(?P<index>\d+)_")

MAX_GRAPH_NODES = 400  # dot takes seconds beyond this


class GraphViewError(ValueError):
    """A graph view was asked of something that has no graph function (or not the one named)."""


@dataclass
class GraphNode:
    """One node of the drawn graph: a binding, an input parameter or the function's result."""

    id: str                      # "b-lv6", "in-x", "out"
    kind: str                    # "input", "op", "call_tir", "library", "tuple", "match_cast", "output"
    label: str                   # the op, kernel or library name; the parameter's name
    var: str                     # the graph variable it defines ("" for the result)
    type_text: str               # "float32[batch, seq, 384]"
    text: str = ""               # the binding as the script writes it
    kernel: str = ""             # the PrimFunc a call_tir runs
    weights: list = field(default_factory=list)  # [(name, type text)] of the weight parameters it reads
    inputs: list = field(default_factory=list)   # node ids it reads
    layer: int | None = None
    group: str = ""              # the fusion group it belongs to

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "label": self.label, "var": self.var, "type": self.type_text,
                "text": self.text, "kernel": self.kernel, "weights": [list(w) for w in self.weights],
                "layer": self.layer, "group": self.group}


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def type_text(t: Any) -> str:
    """``float32[batch, seq, 384]`` for a tensor type, ``(T1, T2)`` for a tuple."""
    from ..ir.graph.types import TensorType, TupleType

    if isinstance(t, TensorType):
        shape = "?" if t.shape is None else ", ".join(text(d) for d in t.shape)
        return f"{t.dtype}[{shape}]"
    if isinstance(t, TupleType):
        return "(" + ", ".join(type_text(f) for f in t.fields) + ")"
    return str(t)


def graph_function_of(mod: IRModule, func_name: str | None = None):
    """``(name, function)``: the graph function ``func_name``, or ``forward``/``main``/the only one."""
    if not isinstance(mod, IRModule):
        raise GraphViewError(f"a graph view needs an IRModule with a graph function, got {type(mod).__name__}")
    fns = dict(mod.graph_functions)
    if not fns:
        raise GraphViewError("this IRModule has no graph function (only tensor programs: "
                             f"{', '.join(mod.prim_funcs) or 'none'}); show it with wb.viz.show(mod)")
    if func_name is not None:
        if func_name not in fns:
            raise GraphViewError(f"the module has no graph function {func_name!r}; it has {', '.join(fns)}")
        return func_name, fns[func_name]
    for name in ("forward", "main"):
        if name in fns:
            return name, fns[name]
    return next(iter(fns.items()))


def _layer_of_name(name: str) -> tuple[str, int] | None:
    m = _LAYER_NAME.match(name)
    return (m.group("family"), int(m.group("index"))) if m else None


class GraphModel:
    """The drawable graph of one graph function of ``mod`` (see the module docstring)."""

    def __init__(self, mod: IRModule, func_name: str | None = None, title: str | None = None):
        self.mod = mod
        self.func_name, self.func = graph_function_of(mod, func_name)
        self.title = title or f"graph function {self.func_name}"
        self.nodes: list[GraphNode] = []
        self.by_id: dict[str, GraphNode] = {}
        self._producer: dict[str, str] = {}   # graph var name -> node id that makes it
        self._read_graph()
        self.family, self.layers = self._find_layers()
        self._assign_groups()

    # reading the function ------------------------------------------------------------------------
    def _weights(self) -> set[str]:
        """Names of the parameters that are weights: after ``num_input`` inputs, or those with constant
        shapes when some parameter has a symbolic one."""
        from ..ir.expr import IntImm

        params = list(self.func.params)
        n_in = self.func.attrs.get("num_input")
        if n_in is not None:
            return {p.name for p in params[int(n_in):]}

        def symbolic(p) -> bool:
            shape = getattr(p.type, "shape", None)
            return shape is not None and any(not isinstance(d, IntImm) for d in shape)

        if any(symbolic(p) for p in params):
            return {p.name for p in params if not symbolic(p)}
        return set()

    def _add(self, node: GraphNode) -> None:
        self.nodes.append(node)
        self.by_id[node.id] = node

    def _read_graph(self) -> None:
        from ..ir.graph.expr import Var

        weights = self._weights()
        self._weight_types = {p.name: type_text(p.type) for p in self.func.params if p.name in weights}
        for p in self.func.params:
            if p.name not in weights:
                self._add(GraphNode(f"in-{p.name}", "input", p.name, p.name, type_text(p.type)))
                self._producer[p.name] = f"in-{p.name}"
        for block in self.func.body.blocks:
            for b in block.bindings:
                value = b.value
                if isinstance(value, Var) and type(b).__name__ == "VarBinding":
                    # an alias (gv = lv2): no node of its own
                    src = self._producer.get(value.name)
                    if src is not None:
                        self._producer[b.var.name] = src
                    continue
                self._add(self._binding_node(b, weights))
                self._producer[b.var.name] = f"b-{b.var.name}"
        body = self.func.body.body
        out = GraphNode("out", "output", "result", "", type_text(body.type), text=f"return {body.script()}")
        out.inputs = self._reads(body, weights, out)
        self._add(out)

    def _binding_node(self, b, weights: set[str]) -> GraphNode:
        from ..ir.graph.expr import Call, Tuple, TupleGetItem

        value = b.value
        kind, label, kernel = "op", type(value).__name__, ""
        if type(b).__name__ == "MatchCast":
            kind, label = "match_cast", "match_cast"
        elif isinstance(value, Call):
            if value.is_call_tir:
                kind, label, kernel = "call_tir", value.op.name, value.op.name
            elif value.is_call_dps_library:
                kind, label = "library", value.op.name
            else:
                label = getattr(value.op, "name", str(value.op))
        elif isinstance(value, Tuple):
            kind, label = "tuple", "tuple"
        elif isinstance(value, TupleGetItem):
            kind, label = "tuple", f"[{value.index}]"
        node = GraphNode(f"b-{b.var.name}", kind, label, b.var.name, type_text(b.var.type), text=b.script(),
                         kernel=kernel)
        node.inputs = self._reads(value, weights, node)
        return node

    def _reads(self, value, weights: set[str], node: GraphNode) -> list[str]:
        """Node ids ``value`` reads (in order, once each); weight parameters go to ``node.weights``."""
        from ..ir.graph.expr import Call, Tuple, TupleGetItem, Var

        found: list[str] = []

        def walk(e) -> None:
            if isinstance(e, Var):
                if e.name in weights:
                    if all(w[0] != e.name for w in node.weights):
                        node.weights.append((e.name, self._weight_types[e.name]))
                else:
                    src = self._producer.get(e.name)
                    if src is not None and src not in found:
                        found.append(src)
            elif isinstance(e, Call):
                for a in e.args:
                    walk(a)
            elif isinstance(e, Tuple):
                for f in e.fields:
                    walk(f)
            elif isinstance(e, TupleGetItem):
                walk(e.tuple_value)

        walk(value)
        return found

    # repeated layers -----------------------------------------------------------------------------
    def _find_layers(self) -> tuple[str, list[int]]:
        """The family of repeated layers (most weights) and its layer indices; each node's ``layer``."""
        count: dict[str, set[int]] = {}
        for name in self._weight_types:
            hit = _layer_of_name(name)
            if hit:
                count.setdefault(hit[0], set()).add(hit[1])
        families = [f for f, idx in count.items() if len(idx) >= 2]
        if not families:
            return "", []
        family = max(families, key=lambda f: (len(count[f]), f))
        for n in self.nodes:
            if n.kind in ("input", "output"):
                continue
            own = [h[1] for h in (_layer_of_name(w) for w, _ in n.weights) if h and h[0] == family]
            if own:
                n.layer = max(own)
            elif not n.weights:
                ins = [self.by_id[i].layer for i in n.inputs if self.by_id[i].layer is not None]
                n.layer = max(ins) if ins else None
        return family, sorted(count[family])

    def _assign_groups(self) -> None:
        """Members of each fusion group; a group straddling layers is drawn in the layer of its last member."""
        groups = self.func.attrs.get("fusion_groups") or {}
        self.groups: dict[str, list[str]] = {}
        for gname, members in groups.items():
            ids = [f"b-{v}" for v in members if f"b-{v}" in self.by_id]
            if not ids:
                continue
            self.groups[gname] = ids
            layer = self.by_id[ids[-1]].layer
            for i in ids:
                self.by_id[i].group = gname
                self.by_id[i].layer = layer

    # summaries -----------------------------------------------------------------------------------
    def layer_name(self, k: int) -> str:
        return f"{self.family}_{k}"

    def stats(self) -> dict:
        """Counts: ``launches`` (call_tir and library calls), ``op_calls`` (graph ops not yet legalized),
        ``kernels`` (PrimFuncs called), ``groups`` (fusion groups), ``layers`` and ``launches_per_layer``
        (in the first repeated layer; None without layers)."""
        calls = [n for n in self.nodes if n.kind in ("call_tir", "library")]
        first = self.layers[0] if self.layers else None
        per_layer = None if first is None else sum(1 for n in calls if n.layer == first)
        ops_per_layer = None if first is None else sum(
            1 for n in self.nodes if n.layer == first and n.kind in ("op", "call_tir", "library"))
        return {"launches": len(calls), "op_calls": sum(1 for n in self.nodes if n.kind == "op"),
                "kernels": len({n.kernel for n in calls if n.kernel}), "groups": len(self.groups),
                "bindings": sum(1 for n in self.nodes if n.id.startswith("b-")),
                "layers": len(self.layers), "family": self.family, "launches_per_layer": per_layer,
                "ops_per_layer": ops_per_layer}

    def summary(self) -> str:
        """One line: ``130 bindings · 160 kernel launches (26 per encoder_layer) · 6 encoder_layer layers``."""
        s = self.stats()
        parts = [f"{s['bindings']} bindings"]
        if s["op_calls"]:
            parts.append(f"{s['op_calls']} op calls (not legalized)")
        launches = f"{s['launches']} kernel launches"
        if s["launches_per_layer"] is not None and s["launches"]:
            launches += f" ({s['launches_per_layer']} per {self.family})"
        parts.append(launches)
        if s["groups"]:
            parts.append(_count(s["groups"], "fusion group"))
        if s["layers"]:
            parts.append(f"{s['layers']} repeated layers {self.layer_name(self.layers[0])}.."
                         f"{self.layers[-1]}")
        return " · ".join(parts)

    def default_expanded(self) -> list[int]:
        """The layers drawn in full by default: the first one (the others have the same structure)."""
        return self.layers[:1]

    def kernel_calls(self, kernel: str) -> list[str]:
        """The variables bound by calls of ``kernel``."""
        return [n.var for n in self.nodes if n.kernel == kernel]

    # drawing -------------------------------------------------------------------------------------
    def drawn(self, expanded: list[int] | None = None) -> tuple[list[dict], list[tuple[str, str, str]]]:
        """The nodes and edges to draw: collapsed layers replaced by one node each."""
        expanded = set(self.default_expanded() if expanded is None else expanded)
        collapsed = {k for k in self.layers if k not in expanded}

        def shown(node_id: str) -> str:
            n = self.by_id[node_id]
            return f"layer-{n.layer}" if n.layer in collapsed else node_id

        nodes: list[dict] = []
        seen: set[str] = set()
        for n in self.nodes:
            sid = shown(n.id)
            if sid in seen:
                continue
            seen.add(sid)
            if sid == n.id:
                nodes.append({"id": n.id, "node": n})
            else:
                members = [m for m in self.nodes if m.layer == n.layer]
                nodes.append({"id": sid, "layer": n.layer, "members": members})
        edges: list[tuple[str, str, str]] = []
        for n in self.nodes:
            for src in n.inputs:
                a, b = shown(src), shown(n.id)
                key = (a, b, self.by_id[src].type_text)
                if a != b and key not in edges:
                    edges.append(key)
        return nodes, edges

    def to_svg(self, expanded: list[int] | None = None) -> str:
        """The graph drawn by graphviz ``dot`` (SVG text); ``expanded``: the layers drawn in full."""
        import graphviz

        nodes, edges = self.drawn(expanded)
        if len(nodes) > MAX_GRAPH_NODES:
            return (f'<svg xmlns="http://www.w3.org/2000/svg" width="560" height="30"><text x="4" y="20" '
                    f'font-family="Helvetica" font-size="12">{len(nodes)} nodes: too many to draw (the limit is '
                    f'{MAX_GRAPH_NODES}); collapse some layers</text></svg>')
        g = graphviz.Digraph("G", format="svg")
        g.attr(rankdir="TB", fontname="Helvetica", fontsize="11", bgcolor="transparent", nodesep="0.25",
               ranksep="0.3")
        g.attr("node", fontname="Helvetica", fontsize="10", margin="0.1,0.03", height="0.3")
        g.attr("edge", color="#6b7280", arrowsize="0.6")
        gv = {d["id"]: f"N{k}" for k, d in enumerate(nodes)}
        titles: dict[str, str] = {"G": self.title}
        # clusters: expanded layers, fusion groups inside them
        by_layer: dict[Any, dict[str, list[dict]]] = {}
        for d in nodes:
            n = d.get("node")
            layer = n.layer if n is not None else None
            group = n.group if n is not None else ""
            by_layer.setdefault(layer, {}).setdefault(group, []).append(d)

        def emit(graph, d) -> None:
            attrs, label, tip = self._node_style(d)
            titles[gv[d["id"]]] = tip
            graph.node(gv[d["id"]], label=label, id=f"wbg-{d['id']}", tooltip=tip, **attrs)

        def emit_groups(graph, groups: dict[str, list[dict]]) -> None:
            for gname, members in groups.items():
                if not gname:
                    for d in members:
                        emit(graph, d)
                    continue
                with graph.subgraph(name=f"cluster_group_{gname}") as c:
                    c.attr(label=gname, style="rounded,dashed", color="#d97706", fontcolor="#92400e",
                           fontsize="9", id=f"wbg-group-{gname}", tooltip=f"fusion group {gname}")
                    titles[f"cluster_group_{gname}"] = f"fusion group {gname}"
                    for d in members:
                        emit(c, d)

        for layer, groups in by_layer.items():
            if layer is None:
                emit_groups(g, groups)
                continue
            name = f"cluster_layer_{layer}"
            with g.subgraph(name=name) as c:
                tip = f"{self.layer_name(layer)}: click to collapse"
                c.attr(label=f"{self.layer_name(layer)}  [\u2212 collapse]", style="rounded,filled",
                       fillcolor="#f5f3ff", color="#7c3aed", fontcolor="#5b21b6", fontsize="10",
                       id=f"wbg-cl-layer-{layer}", tooltip=tip)
                titles[name] = tip
                emit_groups(c, groups)
        for a, b, t in edges:
            tip = f"{self._name(a)} -> {self._name(b)}: {t}"
            titles[f"{gv[a]}->{gv[b]}"] = tip
            g.edge(gv[a], gv[b], tooltip=tip)
        try:
            svg = g.pipe(format="svg").decode("utf-8")
        except graphviz.ExecutableNotFound:
            raise RuntimeError("graphviz's `dot` program is missing, so the graph cannot be drawn; "
                               "install it with `apt-get install graphviz`") from None
        from .block_graph import _readable_titles

        start = svg.find("<svg")
        svg = re.sub(r'id="([^"]*)"', lambda m: 'id="' + m.group(1).replace("&#45;", "-") + '"',
                     svg[start:] if start >= 0 else svg)   # dot escapes the ids' hyphens
        return _readable_titles(svg, titles)

    def _name(self, drawn_id: str) -> str:
        if drawn_id.startswith("layer-"):
            return self.layer_name(int(drawn_id[6:]))
        n = self.by_id[drawn_id]
        return n.var or n.label

    _STYLE = {
        "input": dict(shape="ellipse", style="filled", fillcolor="#f3f4f6", color="#6b7280"),
        "output": dict(shape="ellipse", style="filled", fillcolor="#dcfce7", color="#16a34a"),
        "op": dict(shape="box", style="rounded,filled", fillcolor="#ede9fe", color="#7c3aed"),
        "call_tir": dict(shape="box", style="rounded,filled", fillcolor="#dbeafe", color="#2563eb"),
        "fused": dict(shape="box", style="rounded,filled,bold", fillcolor="#fde68a", color="#b45309"),
        "library": dict(shape="box", style="rounded,filled", fillcolor="#fce7f3", color="#be185d"),
        "tuple": dict(shape="box", style="filled", fillcolor="#f9fafb", color="#9ca3af"),
        "match_cast": dict(shape="box", style="filled", fillcolor="#f9fafb", color="#9ca3af"),
        "layer": dict(shape="box3d", style="filled", fillcolor="#f5f3ff", color="#7c3aed"),
    }

    def _node_style(self, d: dict) -> tuple[dict, str, str]:
        """Graphviz attributes, label and hover text of a drawn node."""
        n = d.get("node")
        if n is None:  # a collapsed layer
            members = d["members"]
            calls = sum(1 for m in members if m.kind in ("call_tir", "library"))
            ops = sum(1 for m in members if m.kind == "op")
            what = ", ".join(p for p in (f"{ops} ops" if ops else "", f"{calls} kernel launches" if calls else "")
                             if p) or f"{len(members)} bindings"
            name = self.layer_name(d["layer"])
            return (dict(self._STYLE["layer"]), f"{name}  [+]\n{what}",
                    f"{name} (collapsed): {what}; click to expand")
        style = "fused" if n.kind == "call_tir" and n.kernel.startswith("fused_") else n.kind
        label = n.label if n.kind in ("input", "output") else f"{n.label}\n{n.var}: {n.type_text}"
        if n.kind in ("input", "output"):
            label = f"{n.label}\n{n.type_text}"
        tip = n.text or f"{n.label}: {n.type_text}"
        if n.weights:
            tip += "\nweights: " + ", ".join(f"{w} {t}" for w, t in n.weights)
        if n.kind == "call_tir":
            tip += "\nclick to open the kernel's loop nest"
        return dict(self._STYLE.get(style, self._STYLE["op"])), label, tip

    # the side panel ------------------------------------------------------------------------------
    def detail(self, node_id: str) -> dict:
        """What the widget shows beside a clicked node: the binding, its weights, its kernel's calls."""
        n = self.by_id.get(node_id)
        if n is None:
            return {}
        d = n.to_json()
        if n.kernel:
            d["calls"] = self.kernel_calls(n.kernel)
        d["layer_name"] = self.layer_name(n.layer) if n.layer is not None else ""
        return d

    def kernel(self, node_id: str) -> PrimFunc | None:
        n = self.by_id.get(node_id)
        f = self.mod.functions.get(n.kernel) if n is not None and n.kernel else None
        return f if isinstance(f, PrimFunc) else None


# ---------------------------------------------------------------------------------------- static views

def _esc(s: Any) -> str:
    return _html.escape(str(s), quote=True)


def pane_html(g: GraphModel, expanded: list[int] | None = None, title: str | None = None) -> str:
    """One graph as static HTML: its title, summary line and drawing."""
    try:
        svg = g.to_svg(expanded)
    except RuntimeError as err:  # no `dot`: say so, show the rest
        svg = f'<div style="color:#6b7280">{_esc(err)}</div>'
    return (f'<div class="wb-static-graph-pane" style="flex:1 1 45%;min-width:320px;overflow:auto">'
            f'<div style="font-weight:600">{_esc(title or g.title)}</div>'
            f'<div class="wb-graph-summary" style="color:#4b5563;margin:2px 0 4px">{_esc(g.summary())}</div>'
            f'<div class="wb-graph">{svg}</div></div>')


MAX_STATIC_KERNELS = 40


def kernels_html(mod: IRModule, g: GraphModel) -> str:
    """The tensor programs of ``mod``, each a closed ``<details>`` with its loop nest and script."""
    from .static import program_html

    prims = list(mod.prim_funcs.items())
    parts = []
    for name, f in prims[:MAX_STATIC_KERNELS]:
        calls = g.kernel_calls(name)
        where = f" (called by {', '.join(calls)})" if calls else " (not called)"
        parts.append(f'<details class="wb-static-kernel"><summary><code>{_esc(name)}</code>{_esc(where)}</summary>'
                     f'{program_html(f, graph=False, title=f"kernel {name}")}</details>')
    if len(prims) > MAX_STATIC_KERNELS:
        parts.append(f'<div style="color:#6b7280">... {len(prims) - MAX_STATIC_KERNELS} more kernels '
                     f'(the live widget shows them all)</div>')
    if not parts:
        return ""
    return f'<details class="wb-static-kernels"><summary>kernels ({len(prims)})</summary>{"".join(parts)}</details>'


_BOX = ("font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:12.5px;color:#1f2937;"
        "border:1px solid #e5e7eb;border-radius:6px;padding:6px 8px;background:#fff")


def graph_html(panes: list[tuple[GraphModel, str]], title: str, expanded: list[int] | None = None) -> str:
    """Static view of one graph or of a before/after pair, then the kernels of the last module."""
    body = "".join(pane_html(g, expanded, t) for g, t in panes)
    last = panes[-1][0]
    return (f'<div class="wb-static wb-static-graph-view" style="{_BOX}">'
            f'<div style="font-weight:600;font-size:13.5px">{_esc(title)}</div>'
            f'<div style="display:flex;gap:10px;flex-wrap:wrap">{body}</div>'
            f'{kernels_html(last.mod, last)}</div>')


# ------------------------------------------------------------------------------------------- entry points

def is_graph_module(obj: Any) -> bool:
    """True for an IRModule with a graph function."""
    return isinstance(obj, IRModule) and bool(obj.graph_functions)


def is_model(obj: Any) -> bool:
    """True for a loaded ``wb.frontend`` model (its ``.mod`` a module with a graph function)."""
    return is_graph_module(getattr(obj, "mod", None)) and hasattr(obj, "param_list")


class GraphView:
    """A graph (or before/after pair) drawn outside a kernel: ``.svg`` per pane, ``.html``; displays itself."""

    def __init__(self, panes: list[tuple[GraphModel, str]], title: str):
        self.panes = panes
        self.title = title
        self.models = [g for g, _ in panes]
        self.before = self.models[0].mod
        self.after = self.models[-1].mod

    @property
    def svg(self) -> str:
        return self.models[-1].to_svg()

    @property
    def html(self) -> str:
        return graph_html(self.panes, self.title)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return "\n".join([self.title] + [f"  {t}: {g.summary()}" for g, t in self.panes])


def panes_for(obj: Any, func_name: str | None = None) -> tuple[list[tuple[GraphModel, str]], str]:
    """``(panes, title)`` for a graph module or a loaded model."""
    if is_model(obj):
        g = GraphModel(obj.mod, func_name)
        return [(g, g.title)], repr(obj)
    g = GraphModel(obj, func_name)
    return [(g, g.title)], f"IRModule: {g.title}"


def diff_panes(before: IRModule, after: IRModule, func_name: str | None = None,
               title: str | None = None) -> tuple[list[tuple[GraphModel, str]], str]:
    b, a = GraphModel(before, func_name), GraphModel(after, func_name)
    sb, sa = b.stats(), a.stats()
    line = f"kernel launches {sb['launches']} \u2192 {sa['launches']}"
    if sb["launches_per_layer"] is not None and sa["launches_per_layer"] is not None:
        line += f" (per {a.family}: {sb['launches_per_layer']} \u2192 {sa['launches_per_layer']})"
    if sb["op_calls"] or sa["op_calls"]:
        line += f"; op calls {sb['op_calls']} \u2192 {sa['op_calls']}"
    if sa["groups"]:
        line += f"; {_count(sa['groups'], 'fusion group')}"
    return [(b, "before"), (a, "after")], f"{title or 'before / after'}: {line}"


__all__ = ["GraphModel", "GraphNode", "GraphView", "GraphViewError", "graph_html", "type_text",
           "is_graph_module", "is_model", "panes_for", "diff_panes", "graph_function_of"]
