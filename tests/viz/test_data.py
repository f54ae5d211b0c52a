"""The data the viz widgets send: loop tree, line spans, diff, block graph, schedule steps."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import programs as P  # noqa: E402

from workbench.viz import ScheduleData, block_graph, mimebundle, program_diff, program_payload  # noqa: E402
from workbench.viz.block_graph import block_graph_data, module_graph_data, to_svg  # noqa: E402
from workbench.viz.loop_tree import iter_nodes, loop_tree  # noqa: E402
from workbench.viz.script_view import _highlight_block, highlight_lines  # noqa: E402


def _strip(d: dict) -> dict:
    """The parts of a tree node a test spells out by hand."""
    if d["kind"] == "loop":
        out = {"loop": d["var"], "extent": d["extent"], "kind": d["loop_kind"]}
        if d["thread"]:
            out["thread"] = d["thread"]
        if d["annotations"]:
            out["ann"] = d["annotations"]
    elif d["kind"] == "block":
        out = {"block": d["name"], "iters": [(iv["name"], iv["type"][0].upper(), iv["binding"]) for iv in d["iter_vars"]],
               "reads": d["reads"], "writes": d["writes"], "init": d["init"]}
    else:
        out = {"func": d["name"], "params": d["params"], "allocs": d["alloc_buffers"]}
    kids = [_strip(c) for c in d["children"]]
    if kids:
        out["children"] = kids
    return out


def _check_spans(tree) -> None:
    """Every loop/block span starts at its own header line and nests inside its parent's span."""
    lines = tree.lines
    for d in iter_nodes(tree.root):
        assert d["lines"] is not None, f"node {d['id']} has no line span"
        a, b = d["lines"]
        assert 1 <= a <= b <= len(lines)
        head = lines[a - 1].strip()
        if d["kind"] == "loop":
            m = re.match(r"for (.+?) in ", head)
            assert m and d["var"] in [x.strip() for x in m.group(1).split(",")], (head, d["var"])
        elif d["kind"] == "block":
            assert head == f'with wb.block("{d["name"]}"):', head
        for c in d["children"]:
            assert a <= c["lines"][0] and c["lines"][1] <= b
        if d["kind"] != "func":
            # the last line of the span is indented deeper than the header; the next non-blank line is not
            ind = len(lines[a - 1]) - len(lines[a - 1].lstrip())
            if b < len(lines):
                assert len(lines[b]) - len(lines[b].lstrip()) <= ind


# ---------------------------------------------------------------------------- loop tree


def test_tree_of_matmul_relu_is_the_hand_written_nest():
    tree = loop_tree(P.matmul_relu())
    assert _strip(tree.root) == {
        "func": "mm_relu",
        "params": ["A: float32[128, 128]", "B: float32[128, 128]", "C: float32[128, 128]"],
        "allocs": ["Y: float32[128, 128]"],
        "children": [
            {"loop": "i", "extent": "128", "kind": "serial", "children": [
                {"loop": "j", "extent": "128", "kind": "serial", "children": [
                    {"loop": "k", "extent": "128", "kind": "serial", "children": [
                        {"block": "Y", "iters": [("vi", "S", "i"), ("vj", "S", "j"), ("vk", "R", "k")],
                         "reads": ["A[vi, vk]", "B[vk, vj]"], "writes": ["Y[vi, vj]"],
                         "init": "Y[vi, vj] = 0.0"}]}]}]},
            {"loop": "i", "extent": "128", "kind": "serial", "children": [
                {"loop": "j", "extent": "128", "kind": "serial", "children": [
                    {"block": "C", "iters": [("vi", "S", "i"), ("vj", "S", "j")],
                     "reads": ["Y[vi, vj]"], "writes": ["C[vi, vj]"], "init": None}]}]},
        ],
    }
    # wb.grid(128, 128, 128) is one line: the three loops share it, the block starts below
    loops = [d for d in iter_nodes(tree.root) if d["kind"] == "loop"]
    assert loops[0]["lines"] == loops[1]["lines"] == loops[2]["lines"]
    assert tree.lines[loops[0]["lines"][0] - 1].strip() == "for i, j, k in wb.grid(128, 128, 128):"
    assert tree.lines[loops[3]["lines"][0] - 1].strip() == "for i, j in wb.grid(128, 128):"
    _check_spans(tree)


def test_tree_of_scheduled_matmul_has_each_loop_kind_and_annotation():
    tree = loop_tree(P.scheduled_matmul())
    loops = [d for d in iter_nodes(tree.root) if d["kind"] == "loop"]
    assert [(d["var"], d["extent"], d["loop_kind"]) for d in loops] == [
        ("i_0", "4", "parallel"), ("j_0", "2", "serial"), ("k", "128", "unrolled"),
        ("i_1", "32", "serial"), ("j_1", "64", "vectorized")]
    assert loops[2]["annotations"] == {"pragma_unroll": "1"}
    (blk,) = tree.blocks()
    assert [(iv["name"], iv["type"], iv["binding"]) for iv in blk["iter_vars"]] == [
        ("vi", "spatial", "i_0 * 32 + i_1"), ("vj", "spatial", "j_0 * 64 + j_1"), ("vk", "reduce", "k")]
    # each loop on its own line, nested one inside the other
    starts = [d["lines"][0] for d in loops]
    assert starts == sorted(starts) and len(set(starts)) == 5
    _check_spans(tree)


def test_thread_bound_loops_name_their_axis():
    tree = loop_tree(P.gpu_add())
    loops = [d for d in iter_nodes(tree.root) if d["kind"] == "loop"]
    assert [(d["var"], d["loop_kind"], d["thread"]) for d in loops] == [
        ("bx", "thread_binding", "blockIdx.x"), ("tx", "thread_binding", "threadIdx.x")]


def test_symbolic_extents_are_kept_as_written():
    tree = loop_tree(P.matmul_relu(sym=True))
    loops = [d for d in iter_nodes(tree.root) if d["kind"] == "loop"]
    assert [d["extent"] for d in loops] == ["n", "128", "128", "n", "128"]
    assert tree.root["params"][0] == "A: float32[n, 128]"
    _check_spans(tree)


def test_node_at_line_is_the_inverse_of_the_spans():
    tree = loop_tree(P.scheduled_matmul())
    for d in iter_nodes(tree.root):
        if d["kind"] == "loop":
            # a loop's own header line selects the loop
            assert tree.node_at_line(d["lines"][0]) == d["id"]
    (blk,) = tree.blocks()
    for line in range(blk["lines"][0], blk["lines"][1] + 1):
        assert tree.node_at_line(line) == blk["id"]
    assert tree.node_at_line(1) is None  # the decorator belongs to no loop


def test_tree_nodes_map_back_to_the_ir():
    f = P.scheduled_matmul()
    tree = loop_tree(f)
    outer = f.body.block.body
    assert tree.id_of(outer) == "loop-i_0"
    assert tree.nodes["loop-i_0"] is outer
    with pytest.raises(TypeError, match="needs a PrimFunc"):
        loop_tree("not a function")


def test_tree_and_spans_for_the_te_corpus():
    op_library = pytest.importorskip("workbench.ir.op_library")
    cases = op_library.corpus()
    assert cases
    for case in cases:
        tree = loop_tree(case.func)
        _check_spans(tree)
        blocks = tree.blocks()
        assert blocks, case.name
        for b in blocks:
            assert b["writes"], (case.name, b["name"])
            assert all(iv["type"] in ("spatial", "reduce", "opaque") for iv in b["iter_vars"])
        # the te matmul: a reduction block with an init, spatial/reduce iter vars as in TensorIR
        if case.name == "matmul":
            (b,) = blocks
            assert [iv["type"] for iv in b["iter_vars"]] == ["spatial", "spatial", "reduce"]
            assert b["init"] is not None and "= 0" in b["init"]


# ---------------------------------------------------------------------------- script highlighting


def test_highlighted_lines_keep_the_text_and_match_whole_text_lexing():
    text = P.scheduled_matmul().script()
    lines = highlight_lines(text)
    assert len(lines) == len(text.splitlines())
    untag = [re.sub(r"<[^>]+>", "", x).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
             for x in lines]
    assert untag == text.splitlines()
    assert lines == _highlight_block(text)
    k = next(n for n, line in enumerate(text.splitlines()) if line.strip().startswith("for "))
    assert lines[k].lstrip().startswith('<span class="k">for</span>')


# ---------------------------------------------------------------------------- diff


def test_program_diff_marks_changed_lines():
    d = program_diff("a\nb\nc\nd", "a\nx\nc\nd\ne")
    assert [(r["tag"], r["old"], r["new"], r["text"]) for r in d.rows] == [
        (" ", 1, 1, "a"), ("-", 2, None, "b"), ("+", None, 2, "x"), (" ", 3, 3, "c"), (" ", 4, 4, "d"),
        ("+", None, 5, "e")]
    assert d.changed_new == [2, 5] and d.removed_old == [2]
    ctx = d.to_json(context=0)["rows"]
    assert [r["tag"] for r in ctx] == ["...", "-", "+", "...", "+"]
    assert program_diff("same", "same").unchanged


def test_diff_of_a_split_changes_only_the_loop_lines():
    before = P.matmul_relu()
    # the hand-built scheduled matmul vs a plain one with the same body: the loop headers and bindings differ
    d = program_diff(before.script(), before.script().replace("wb.grid(128, 128)", "wb.grid(128, 64 * 2)"))
    (changed,) = d.changed_new
    assert "wb.grid(128, 64 * 2)" in before.script().replace("wb.grid(128, 128)", "wb.grid(128, 64 * 2)").splitlines()[changed - 1]


# ---------------------------------------------------------------------------- block graph


def test_block_graph_of_matmul_relu():
    g = block_graph_data(P.matmul_relu())
    assert [(n["id"], n["kind"]) for n in g["nodes"]] == [
        ("block:Y", "block"), ("block:C", "block"), ("buf:A", "input"), ("buf:B", "input"), ("buf:C", "output")]
    assert sorted((e["src"], e["dst"], e["buffer"]) for e in g["edges"]) == [
        ("block:C", "buf:C", "C"), ("block:Y", "block:C", "Y"), ("buf:A", "block:Y", "A"), ("buf:B", "block:Y", "B")]
    tree = loop_tree(P.matmul_relu())
    assert {n["tree_id"] for n in g["nodes"] if n["kind"] == "block"} == {b["id"] for b in tree.blocks()}


def test_block_graph_svg_has_clickable_block_ids():
    f = P.matmul_relu()
    svg = to_svg(block_graph_data(f))
    assert svg.startswith("<svg")
    for b in loop_tree(f).blocks():
        assert f'id="wb-{b["id"]}"'.replace("-", "&#45;") in svg or f'id="wb-{b["id"]}"' in svg
    obj = block_graph(f, widget=False)
    assert "<svg" in obj._repr_svg_() and "block:Y -> block:C" in repr(obj)


def test_block_graph_of_the_corpus_softmax_is_a_chain():
    op_library = pytest.importorskip("workbench.ir.op_library")
    for case in op_library.corpus():
        g = block_graph_data(case.func)
        ids = {n["id"] for n in g["nodes"]}
        assert all(e["src"] in ids and e["dst"] in ids for e in g["edges"]), case.name
        # every output parameter is written by some block
        outs = [b.name for b in case.func.buffers[case.num_inputs:]]
        for o in outs:
            assert any(e["dst"] == f"buf:{o}" for e in g["edges"]), (case.name, o)
        if case.name == "softmax":
            blocks = [n["label"] for n in g["nodes"] if n["kind"] == "block"]
            inter = [(e["src"], e["dst"]) for e in g["edges"] if e["src"].startswith("block:")
                     and e["dst"].startswith("block:")]
            # each block after the first consumes something an earlier block produced
            for k, name in enumerate(blocks[1:], start=1):
                assert any(dst == f"block:{name}" and src in {f"block:{b}" for b in blocks[:k]}
                           for src, dst in inter), name


def test_module_graph_lists_functions():
    g = module_graph_data(P.module())
    assert [n["id"] for n in g["nodes"]] == ["fn:mm_relu", "fn:gpu_add"]
    assert g["edges"] == []


# ---------------------------------------------------------------------------- schedule


class FakeStep:
    def __init__(self, func, text):
        self.func, self.text = func, text


class FakeError(ValueError):
    def __init__(self, message, func, node):
        super().__init__(message)
        self.message, self.func, self.node, self.detail = message, func, node, "more detail"


class FakeSchedule:
    """The duck-typed interface: history (with the original first), trace, last_error."""

    def __init__(self):
        a, b = P.matmul_relu(), P.scheduled_matmul()
        self.history = [FakeStep(a, ""), FakeStep(b, "sch.split(...)")]
        self.trace = ["l0, l1 = sch.split(l2, factors=[None, 32])"]
        loop = b.body.block.body.body  # j_0
        self.last_error = FakeError("cannot vectorize loop j_0: it is not innermost", b, loop)

    @property
    def func(self):
        return self.history[-1].func


def test_schedule_data_of_a_fake_schedule():
    d = ScheduleData(FakeSchedule())
    assert [(s["index"], s["status"]) for s in d.steps_json()] == [(0, "initial"), (1, "ok"), (2, "error")]
    assert d.steps_json()[1]["text"] == "sch.split(...)"
    prog0, diff0 = d.view(0)
    prog1, diff1 = d.view(1)
    assert prog0["script"] != prog1["script"]
    assert prog1["marks"]["changed"] and diff1["changed_new"] == prog1["marks"]["changed"]
    for line in prog1["marks"]["changed"]:
        assert prog1["script"].splitlines()[line - 1] not in prog0["script"].splitlines()
    prog2, _ = d.view(2)
    err = prog2["error"]
    assert err["message"] == "cannot vectorize loop j_0: it is not innermost" and err["type"] == "FakeError"
    assert err["node"] == "loop-j_0"
    (line,) = err["lines"]
    assert prog2["script"].splitlines()[line - 1].strip() == "for j_0 in wb.serial(2):"
    with pytest.raises(IndexError, match="step 7 does not exist"):
        d.view(7)


def _te_matmul(n=64):
    te = pytest.importorskip("workbench.ir.te")
    import workbench as wb

    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def test_schedule_data_of_a_real_schedule_with_an_error():
    schedule = pytest.importorskip("workbench.schedule")
    sch = schedule.Schedule(_te_matmul())
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, 16])
    sch.parallel(io)
    with pytest.raises(schedule.ScheduleError) as info:
        sch.vectorize(k)
    d = ScheduleData(sch, info.value)
    steps = d.steps_json()
    assert [s["status"] for s in steps] == ["initial", "ok", "ok", "error"]
    assert steps[1]["text"] == "split(loop i, factors=[None, 16])"
    assert steps[2]["text"] == "parallel(loop i_0)"
    p1, diff1 = d.view(1)
    loops = [n for n in iter_nodes(p1["tree"]) if n["kind"] == "loop"]
    assert [(n["var"], n["extent"]) for n in loops] == [("i_0", "4"), ("i_1", "16"), ("j", "64"), ("k", "64")]
    changed_text = [p1["script"].splitlines()[x - 1].strip() for x in p1["marks"]["changed"]]
    assert "for i_0, i_1, j, k in wb.grid(4, 16, 64, 64):" in changed_text
    p2, _ = d.view(2)
    assert [n["loop_kind"] for n in iter_nodes(p2["tree"]) if n["kind"] == "loop"][0] == "parallel"
    p3, _ = d.view(3)
    assert p3["error"]["type"] == "ReductionLoopError"
    (line,) = p3["error"]["lines"]
    # k is fused into a wb.grid line after the parallel i_0: that line is the one marked
    assert p3["script"].splitlines()[line - 1].strip() == "for i_1, j, k in wb.grid(16, 64, 64):"
    assert p3["error"]["node"] == [n["id"] for n in iter_nodes(p3["tree"]) if n.get("var") == "k"][0]


# ---------------------------------------------------------------------------- bundles and sizing


def test_mimebundle_outside_a_kernel_is_static_html_and_text():
    f = P.matmul_relu()
    b = mimebundle(f)
    assert set(b) == {"text/plain", "text/html"}
    assert b["text/plain"] == f.script()
    html = b["text/html"]
    assert "wb-static-program" in html and "<svg" in html and "mm_relu" in html
    assert "<details" in html  # collapsible without JavaScript
    m = mimebundle(P.module())["text/html"]
    assert "wb-static-module" in m and m.count("wb-static-program") == 2
    s = mimebundle(FakeSchedule())["text/html"]
    assert "wb-static-schedule" in s and "cannot vectorize loop j_0" in s and "&lt;-- here" in s


def test_prim_func_repr_mimebundle_uses_viz():
    f = P.matmul_relu()
    b = f._repr_mimebundle_()
    assert "text/html" in b and "wb-static-program" in b["text/html"]


def test_a_10000_line_program_stays_small_and_fast():
    f = P.many_blocks(1700)
    t0 = time.perf_counter()
    p = program_payload(f)
    elapsed = time.perf_counter() - t0
    assert len(p["lines"]) > 10_000
    assert p["expand_depth"] <= 2           # only the top levels start open
    assert elapsed < 30.0, f"payload took {elapsed:.1f} s"  # a hang guard; the figure is in the notes
    html = mimebundle(f)["text/html"]
    assert "more lines (shown in the live widget)" in html
    assert len(html) < 2_000_000
