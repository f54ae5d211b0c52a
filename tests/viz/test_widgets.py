"""The widgets' synced state on the Python side (the browser side is test_browser.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("anywidget")
sys.path.insert(0, str(Path(__file__).parent))
import programs as P  # noqa: E402
from test_data import FakeSchedule  # noqa: E402

from workbench.viz import WIDGET_MIME, block_graph, mimebundle, schedule_view, show  # noqa: E402
from workbench.viz.loop_tree import iter_nodes  # noqa: E402
from workbench.viz.widgets import ModuleWidget, ProgramWidget, ScheduleWidget  # noqa: E402


def test_program_widget_state():
    f = P.matmul_relu()
    w = ProgramWidget(f)
    assert w.kind == "program" and w.tab == "loops" and w.selected == ""
    p = w.program
    assert "script" not in p  # the HTML lines carry the text
    assert len(p["lines"]) == len(f.script().splitlines())
    assert [d["name"] for d in iter_nodes(p["tree"]) if d["kind"] == "block"] == ["Y", "C"]
    assert {x["kind"] for x in w.legend} == {"serial", "parallel", "vectorized", "unrolled", "thread_binding"}
    assert 'id="wb&#45;block&#45;Y"' in w.graph_svg  # block Y, clickable in the graph
    assert "_esm" in w.keys and "export default" in w._esm
    data, _ = w._repr_mimebundle_()
    assert WIDGET_MIME in data and "wb-static-program" in data["text/html"]
    assert data["text/plain"] == f.script()


def test_program_widget_rejects_other_things():
    with pytest.raises(TypeError, match="shows a PrimFunc"):
        ProgramWidget(P.module())
    with pytest.raises(TypeError, match="no widget shows a int"):
        show(3)


def test_block_graph_widget_opens_on_the_graph_and_draws_big_graphs_lazily():
    w = block_graph(P.matmul_relu(), widget=True)
    assert isinstance(w, ProgramWidget) and w.tab == "graph" and "<svg" in w.graph_svg
    big = ProgramWidget(P.many_blocks(80))
    assert big.graph_svg == ""          # too many blocks to draw up front
    big.tab = "graph"                   # what a click on the Graph tab does
    assert big.graph_svg.count('class="node"') == 80 + 1  # 80 blocks and the buffer A


def test_schedule_widget_moves_between_steps():
    w = schedule_view(FakeSchedule())
    assert isinstance(w, ScheduleWidget)
    assert [s["status"] for s in w.steps] == ["initial", "ok", "error"]
    assert w.step == 2 and w.program["error"]["message"].startswith("cannot vectorize loop j_0")
    error_lines = w.program["marks"]["error"]
    assert len(error_lines) == 1
    w.step = 0
    assert "error" not in w.program and w.program["marks"]["changed"] == []
    first = w.program["lines"]
    w.step = 1
    assert w.program["lines"] != first
    assert w.program["marks"]["changed"] == w.diff["changed_new"] != []
    assert any(r["tag"] == "-" for r in w.diff["rows"])
    w.tab = "graph"
    assert "<svg" in w.graph_svg
    with pytest.raises(IndexError, match="step 9 does not exist"):
        ScheduleWidget(FakeSchedule(), step=9)


def test_real_schedule_displays_as_a_widget():
    schedule = pytest.importorskip("workbench.schedule")
    te = pytest.importorskip("workbench.ir.te")
    import workbench as wb

    A = te.placeholder((32,), "float32", name="A")
    B = te.compute((32,), lambda i: A[i] * 2.0, name="B")
    sch = schedule.Schedule(wb.create_prim_func([A, B]))
    (i,) = sch.get_loops(sch.get_block("B"))
    io, ii = sch.split(i, factors=[None, 8])
    sch.vectorize(ii)
    b = mimebundle(sch, widget=True)
    assert WIDGET_MIME in b and "wb-static-schedule" in b["text/html"]
    w = show(sch)
    assert [s["text"] for s in w.steps] == [
        "original program", "split(loop i, factors=[None, 8])", "vectorize(loop i_1)"]
    kinds = [d["loop_kind"] for d in iter_nodes(w.program["tree"]) if d["kind"] == "loop"]
    assert kinds == ["serial", "vectorized"]


def test_module_widget_switches_functions():
    w = ModuleWidget(P.module())
    assert [f["name"] for f in w.functions] == ["mm_relu", "gpu_add"] and w.current == "mm_relu"
    assert 'id="wb&#45;fn&#45;gpu_add"' in w.graph_svg
    w.selected = "loop-j"
    w.current = "gpu_add"
    assert w.selected == ""  # a selection does not carry over to another function
    loops = [d for d in iter_nodes(w.program["tree"]) if d["kind"] == "loop"]
    assert [d["thread"] for d in loops] == ["blockIdx.x", "threadIdx.x"]
    with pytest.raises(KeyError, match="has no function 'nope'"):
        ModuleWidget(P.module(), current="nope")
