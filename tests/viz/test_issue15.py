"""Issue 15: stable node ids across steps, readable step labels, the tree-level diff, buffers,
block graph names, the "already applied" error and the IPython error view."""
from __future__ import annotations

import re

import pytest

import workbench as wb
from workbench import te
from workbench.viz.block_graph import block_graph_data, to_svg
from workbench.viz.data import ScheduleData, buffers_of
from workbench.viz.loop_tree import iter_nodes


def _mm_relu():
    A = te.placeholder((64, 64), "float32", name="A")
    B = te.placeholder((64, 64), "float32", name="B")
    k = te.reduce_axis(64, name="k")
    C = te.compute((64, 64), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    D = te.compute((64, 64), lambda i, j: te.max(C[i, j], 0.0), name="D")
    return wb.create_prim_func([A, B, D])


def _moved():
    sch = wb.Schedule(_mm_relu())
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, 16])
    sch.reverse_compute_at(sch.get_block("D"), io)
    return sch


def _nodes(tree) -> dict:
    return {d["id"]: d for d in iter_nodes(tree.root)}


def test_a_node_id_names_the_same_loop_or_block_at_every_step():
    data = ScheduleData(_moved())
    trees = [data.tree(k) for k in range(3)]
    for a in trees:
        for b in trees:
            for nid, node in _nodes(a).items():
                other = _nodes(b).get(nid)
                if other is None or node["kind"] == "func":
                    continue
                assert other["kind"] == node["kind"]
                if node["kind"] == "loop":
                    assert a.nodes[nid].loop_var is b.nodes[nid].loop_var
                else:
                    assert other["name"] == node["name"]
    # loop k is one node at every step although its position changes
    k_ids = {nid for t in trees for nid, d in _nodes(t).items() if d.get("var") == "k"}
    assert len(k_ids) == 1


def test_history_names_blocks_and_loops_not_handles():
    sch = _moved()
    assert [s.text for s in sch.history] == [
        "the original program", "split(loop i, factors=[None, 16])", 'reverse_compute_at(block "D", loop i_0)']
    assert "sch.reverse_compute_at(b" in str(sch.trace)  # the replayable trace keeps its form
    assert [s["text"] for s in ScheduleData(sch).steps_json()][2] == 'reverse_compute_at(block "D", loop i_0)'


def test_tree_diff_of_reverse_compute_at_shows_the_move():
    _, diff = ScheduleData(_moved()).view(2)
    texts = [c["text"] for c in diff["tree"]]
    assert 'block "D" moved under loop ax1 (was under loop j)' in texts
    assert "loop ax0 (extent 16) added under loop i_0" in texts
    assert {c["change"] for c in diff["tree"]} == {"added", "moved", "removed"}
    assert diff["rows"]  # the text diff is still there


def test_tree_diff_of_split_and_parallel():
    sch = wb.Schedule(_mm_relu())
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.split(k, factors=[None, 16])
    sch.parallel(i)
    data = ScheduleData(sch)
    split = [c["text"] for c in data.view(1)[1]["tree"]]
    assert "loop k_0 (extent 4) added under loop j" in split and "loop k removed" in split
    assert [c["text"] for c in data.view(2)[1]["tree"]] == ["loop i serial -> parallel"]


def test_buffers_panel_lists_shape_dtype_scope():
    sch = wb.Schedule(_mm_relu())
    sch.cache_write(sch.get_block("C"), 0, "local")
    rows = {b["name"]: b for b in buffers_of(sch.func)}
    assert rows["C_local"] == {"name": "C_local", "shape": "64, 64", "dtype": "float32", "scope": "local",
                               "where": "function"}
    assert rows["A"]["where"] == "parameter"


def test_block_graph_shows_intermediate_shapes_and_names_on_hover():
    sch = wb.Schedule(_mm_relu())
    sch.cache_write(sch.get_block("C"), 0, "local")
    svg = to_svg(block_graph_data(sch.func))
    titles = re.findall(r"<title>(.*?)</title>", svg)
    assert not [t for t in titles if re.fullmatch(r"N\d+(&#45;&gt;N\d+)?", t)]  # no graphviz ids
    assert "C -&gt; C_local: C_local float32[64, 64] local" in titles
    assert "float32[64, 64] local" in svg  # the edge label of the intermediate buffer


def test_rerunning_an_applied_step_says_so():
    sch = wb.Schedule(_mm_relu())
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.split(i, factors=[None, 16])
    with pytest.raises(wb.InvalidHandleError, match=r"this step is already step 1 \(split\(loop i, "
                                                    r"factors=\[None, 16\]\)\); undo first .* or fork"):
        sch.split(i, factors=[None, 16])  # the same cell run again
    assert len(sch.history) == 2
    # not the same call: the usual message (no false positive)
    with pytest.raises(wb.InvalidHandleError, match="loop i was already split by step 1"):
        sch.split(i, factors=[None, 8])
    # a fresh handle of the same name is a different handle: applied normally
    sch.undo()
    i2, _, _ = sch.get_loops(sch.get_block("C"))
    sch.split(i2, factors=[None, 16])
    assert len(sch.history) == 2


class _Shell:
    kernel = object()
    custom_exceptions = ()

    def set_custom_exc(self, excs, handler):
        self.custom_exceptions, self.handler = excs, handler

    def _showtraceback(self, etype, value, stb):
        self.shown = stb


def test_uncaught_schedule_error_renders_the_error_view(monkeypatch):
    from workbench.schedule import errors

    published = []
    monkeypatch.setattr("IPython.display.publish_display_data", lambda data, **kw: published.append(data))
    shell = _Shell()
    assert errors.install_ipython_handler(shell)
    assert shell.custom_exceptions == (wb.ScheduleError,)
    sch = wb.Schedule(_mm_relu())
    try:
        sch.vectorize(sch.get_loops(sch.get_block("C"))[2])
    except wb.ScheduleError as e:
        import sys

        err = e
        stb = shell.handler(shell, type(e), e, sys.exc_info()[2])
    (data,) = published
    assert "wb-static-error-view" in data["text/html"] and "# &lt;-- here" in data["text/html"]
    assert "ReductionLoopError" in data["text/html"]
    assert shell.shown == stb and stb[0].endswith("ReductionLoopError: " + err.message)
    assert "workbench/schedule" not in stb[0] and "test_issue15.py" in stb[0]
    other = _Shell()
    other.custom_exceptions = (KeyError,)
    assert not errors.install_ipython_handler(other)  # the user's own handler is kept
