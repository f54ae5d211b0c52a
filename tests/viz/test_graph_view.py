"""The graph view of a model (issue 17): nodes and shapes, fused groups, repeated layers, kernels, diffs."""
from __future__ import annotations

import re

import numpy as np
import pytest

import workbench as wb
from workbench.frontend import nn
from workbench.viz.graph_view import GraphModel, GraphViewError, graph_html


class Block(nn.Module):
    def __init__(self, d):
        self.fc = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return self.norm(wb.op.add(x, nn.gelu(self.fc(x))))


class Stack(nn.Module):
    """Three identical layers: weights ``layers_0_fc_weight`` ... as a BERT's ``encoder_layer_3_...``."""

    def __init__(self, d=16, n=3):
        self.inp = nn.Linear(d, d)
        self.layers = nn.ModuleList([Block(d) for _ in range(n)])

    def forward(self, x):
        x = self.inp(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MLP(nn.Module):
    def __init__(self):
        self.fc1, self.fc2 = nn.Linear(32, 16), nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(nn.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def stack():
    mod, params = Stack().export({"forward": {"x": nn.spec(("n", 16), "float32")}})
    return mod, params


@pytest.fixture(scope="module")
def mlp():
    mod, _ = MLP().export({"forward": {"x": nn.spec(("n", 32), "float32")}})
    return wb.transform.LegalizeOps()(mod)


def test_nodes_show_ops_and_symbolic_shapes(mlp):
    g = GraphModel(mlp)
    assert [n.id for n in g.nodes] == ["in-x", "b-lv", "b-lv1", "b-lv2", "out"]
    lin = g.by_id["b-lv"]
    assert (lin.kind, lin.kernel, lin.type_text) == ("call_tir", "linear", "float32[n, 16]")
    assert [w for w, _ in lin.weights] == ["fc1_weight", "fc1_bias"]   # weights listed, not drawn
    assert g.by_id["b-lv1"].inputs == ["b-lv"] and g.by_id["out"].inputs == ["b-lv2"]
    svg = g.to_svg()
    assert 'id="wbg-b-lv1"' in svg and "float32[n, 16]" in svg
    assert "<title>N" not in svg          # hover texts name the bindings, not graphviz's ids


def test_repeated_layers_found_from_weight_names_and_collapsed(stack):
    mod, _ = stack
    g = GraphModel(mod)
    assert (g.family, g.layers) == ("layers", [0, 1, 2])
    by_layer = {}
    for n in g.nodes:
        by_layer.setdefault(n.layer, []).append(n.label)
    # each layer: linear, gelu, add (the residual reads no weight: in the layer of its input), layer_norm
    assert by_layer[0] == by_layer[1] == by_layer[2] == ["linear", "gelu", "add", "layer_norm"]
    assert by_layer[None] == ["x", "linear", "result"]                  # the input projection is outside
    svg = g.to_svg()                                                    # default: layer 0 drawn, 1 and 2 boxes
    assert 'id="wbg-cl-layer-0"' in svg and 'id="wbg-layer-1"' in svg and 'id="wbg-layer-2"' in svg
    assert "wbg-b-lv5" not in svg                                       # lv5 is in layer 1: hidden
    nodes, edges = g.drawn([])
    assert [d["id"] for d in nodes] == ["in-x", "b-lv", "layer-0", "layer-1", "layer-2", "out"]
    assert [(a, b) for a, b, _ in edges] == [("in-x", "b-lv"), ("b-lv", "layer-0"), ("layer-0", "layer-1"),
                                             ("layer-1", "layer-2"), ("layer-2", "out")]
    everything = g.to_svg([0, 1, 2])
    assert all(f'id="wbg-cl-layer-{k}"' in everything for k in range(3)) and "wbg-layer-" not in everything


def test_fusion_groups_are_clusters_and_launches_counted(stack):
    mod, _ = stack
    legal = wb.transform.LegalizeOps()(mod)
    grouped = wb.transform.FuseOps()(legal)
    g = GraphModel(grouped)
    assert g.groups and all(len(ids) >= 2 for ids in g.groups.values())
    svg = g.to_svg([0, 1, 2])
    for name in g.groups:
        assert f'id="wbg-group-{name}"' in svg
    fused = wb.transform.FuseTIR()(grouped)
    before, after = GraphModel(legal).stats(), GraphModel(fused).stats()
    assert before["launches"] == 13 and before["launches_per_layer"] == 4
    assert after["launches"] < before["launches"] and after["launches_per_layer"] < 4
    assert GraphModel(mod).stats()["op_calls"] == 13 and GraphModel(mod).stats()["launches"] == 0


def test_graph_diff_and_show_pass_report_launches(stack):
    mod, _ = stack
    legal = wb.transform.LegalizeOps()(mod)
    view = wb.viz.show_pass(wb.transform.FuseOps(), legal, widget=False)
    assert view.before is legal and "fusion_groups" in view.after["forward"].attrs
    fused = wb.transform.FuseTIR()(view.after)
    diff = wb.viz.graph_diff(legal, fused, widget=False)
    after = GraphModel(fused).stats()["launches"]
    assert f"kernel launches 13 \u2192 {after}" in diff.title and "(per layers: 4 \u2192" in diff.title
    html = diff._repr_html_()
    assert html.count("wb-static-graph-pane") == 2 and "wb-static-kernel" in html


def test_clicking_a_kernel_node_opens_its_loop_nest(mlp):
    pytest.importorskip("anywidget")
    w = wb.viz.graph(mlp, widget=True)
    assert w.kind == "graph" and len(w.graphs) == 1 and w.program["tree"] is None
    w.selected = "0/b-lv1"
    assert w.detail["kernel"] == "relu" and w.program["title"] == "kernel relu"
    assert w.program["tree"]["kind"] == "func" and "relu" in "".join(w.program["lines"])
    w.open_kernel("linear")
    assert w.selected == "0/b-lv" and w.detail["calls"] == ["lv"]
    w.selected = "0/nothing"
    assert w.detail == {} and w.program["tree"] is None
    with pytest.raises(KeyError, match="no call_tir of a kernel 'nope'.*linear, linear1, relu"):
        w.open_kernel("nope")


def test_selecting_a_node_in_a_collapsed_layer_expands_it(stack):
    pytest.importorskip("anywidget")
    mod, _ = stack
    w = wb.viz.graph(wb.transform.LegalizeOps()(mod), widget=True)
    assert w.expanded == [0] and 'id="wbg-layer-2"' in w.graphs[0]["svg"]
    w.selected = "0/b-lv12"                                             # layer 2's layer_norm
    assert w.expanded == [0, 2] and 'id="wbg-b-lv12"' in w.graphs[0]["svg"]
    w.expanded = []
    assert 'id="wbg-layer-0"' in w.graphs[0]["svg"]


def test_mimebundle_of_graph_modules_and_models(mlp, stack):
    bundle = wb.viz.mimebundle(mlp, widget=False)
    assert "wb-static-graph-view" in bundle["text/html"] and "3 kernel launches" in bundle["text/html"]
    assert bundle["text/plain"] == mlp.script()                        # the script, as for every module
    assert 'id="wbg-b-lv"' in bundle["text/html"]                      # the drawing, inline
    assert "wb-static-kernel" in bundle["text/html"]                   # each kernel's loop nest and script
    assert sorted(mlp._repr_mimebundle_()) == ["text/html", "text/plain"]   # outside a kernel: no widget
    pytest.importorskip("anywidget")
    live = wb.viz.mimebundle(mlp, widget=True)
    assert wb.viz.WIDGET_MIME in live and live["text/plain"] == mlp.script()

    class FakeModel:             # what wb.frontend.load returns, as the dispatch sees it
        mod = stack[0]
        param_list = [np.zeros(1)]

        def __repr__(self):
            return "Model(stack)"

    model_bundle = wb.viz.mimebundle(FakeModel(), widget=False)
    assert "Model(stack)" in model_bundle["text/html"] and 'id="wbg-cl-layer-0"' in model_bundle["text/html"]
    assert model_bundle["text/plain"] == "Model(stack)\n" + stack[0].script()


def test_static_view_escapes_and_needs_a_graph_function():
    from workbench import te

    a = te.placeholder((4,), "float32", name="A")
    prim_only = wb.IRModule({"f": wb.create_prim_func([a, te.compute((4,), lambda i: a[i] + 1.0, name="B")])})
    with pytest.raises(GraphViewError, match="has no graph function.*only tensor programs: f"):
        GraphModel(prim_only)
    # and a module of only tensor programs still shows as a module
    assert "wb-static-module" in wb.viz.mimebundle(prim_only, widget=False)["text/html"]


def test_unknown_function_name_is_named(mlp):
    with pytest.raises(GraphViewError, match="no graph function 'main'; it has forward"):
        GraphModel(mlp, "main")


def test_minilm_graph_stays_readable():
    from tests.frontend.conftest import minilm_folder

    folder = minilm_folder()
    if folder is None:
        pytest.skip("all-MiniLM-L6-v2 is not installed")
    model = wb.frontend.load(folder)
    g = GraphModel(model.mod)
    assert (g.family, g.layers) == ("encoder_layer", [0, 1, 2, 3, 4, 5])
    nodes, _ = g.drawn()
    assert len(nodes) < 45 < len(g.nodes)            # 5 of the 6 layers are one box each
    svg = g.to_svg()
    assert "float32[batch, seq, 384]" in svg and re.search(r'id="wbg-layer-5"', svg)
    html = graph_html([(g, "forward")], repr(model))
    assert html.count("<svg") >= 1 and "position_rows" in html
