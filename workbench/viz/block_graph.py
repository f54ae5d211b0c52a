"""Producer-consumer graphs: the blocks of a PrimFunc, the functions of an IRModule.

``block_graph_data(func)`` lists the blocks and the buffers between them: an
edge ``P -> C`` labelled ``Y`` when block ``C`` reads buffer ``Y`` that block ``P``
writes. Parameter buffers appear as their own nodes (inputs read by a block,
outputs written by one). ``to_svg`` draws the data with graphviz's ``dot``;
each block node's SVG element has the id ``wb-<node id>`` of the loop tree, so a
click on it can select the block in the loop-nest view.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((8,), "float32", name="A")
>>> B = te.compute((8,), lambda i: A[i] + 1.0, name="B")
>>> C = te.compute((8,), lambda i: B[i] * 2.0, name="C")
>>> g = block_graph_data(wb.create_prim_func([A, C]))
>>> [(e["src"], e["dst"], e["buffer"]) for e in g["edges"]]
[('buf:A', 'block:B', 'A'), ('block:B', 'block:C', 'B'), ('block:C', 'buf:C', 'C')]
"""
from __future__ import annotations


from ..ir.function import IRModule, PrimFunc
from ..ir.stmt import Block, BufferStore
from ..ir.expr import BufferLoad
from ..ir.functor import post_order_visit
from .loop_tree import LoopTree, loop_tree


def _accesses(block: Block) -> tuple[list, list]:
    """Buffers a block reads and writes: its regions, or its loads and stores when it has none."""
    reads = [r.buffer for r in block.reads]
    writes = [r.buffer for r in block.writes]
    if not reads and not writes:
        found_r: list = []
        found_w: list = []

        def visit(n):
            if isinstance(n, BufferLoad) and all(b is not n.buffer for b in found_r):
                found_r.append(n.buffer)
            elif isinstance(n, BufferStore) and all(b is not n.buffer for b in found_w):
                found_w.append(n.buffer)

        post_order_visit(block.body, visit)
        reads, writes = found_r, found_w
    return reads, writes


def _buffer_info(b) -> dict:
    from .loop_tree import text

    return {"shape": [text(x) for x in b.shape], "dtype": b.dtype, "scope": b.scope}


def buffer_label(name: str, info: dict) -> str:
    """``C_local float32[16, 16] local``: a buffer as the graph labels it (scope when not global)."""
    scope = "" if info.get("scope", "global") == "global" else f" {info['scope']}"
    return f"{name} {info.get('dtype', '')}[{', '.join(info.get('shape', []))}]{scope}"


def block_graph_data(func: PrimFunc, tree: LoopTree | None = None) -> dict:
    """Nodes and edges of the block graph of ``func`` (JSON-ready).

    Nodes: ``{"id": "block:C", "kind": "block", "label": "C", "tree_id": "n3"}`` for
    blocks (``tree_id`` is the block's node in ``loop_tree(func)``) and
    ``{"id": "buf:A", "kind": "input"|"output"|"inout", "label": "A"}`` for parameter
    buffers. Edges: ``{"src", "dst", "buffer", "shape", "dtype", "scope"}`` (module graph edges:
    ``{"src", "dst", "buffer": ""}``).
    """
    if not isinstance(func, PrimFunc):
        raise TypeError(f"block_graph needs a PrimFunc, got {type(func).__name__}")
    tree = tree or loop_tree(func)
    blocks = []
    seen_names: dict[str, int] = {}
    for d in tree.blocks():
        blk = tree.nodes[d["id"]]
        name = d["name"]
        # two blocks may share a name: keep node ids unique
        k = seen_names.get(name, 0)
        seen_names[name] = k + 1
        gid = f"block:{name}" if k == 0 else f"block:{name}#{k}"
        blocks.append((gid, d, blk))
    params = {id(b): b for b in func.buffers}
    nodes: list[dict] = []
    edges: list[dict] = []
    writers: dict[int, list[str]] = {}
    readers: dict[int, list[str]] = {}
    for gid, d, blk in blocks:
        r, w = _accesses(blk)
        for b in r:
            readers.setdefault(id(b), []).append(gid)
        for b in w:
            writers.setdefault(id(b), []).append(gid)
        nodes.append({"id": gid, "kind": "block", "label": d["name"], "tree_id": d["id"],
                      "reads": d["reads"], "writes": d["writes"]})
    for b in func.buffers:
        read, written = id(b) in readers, bool(writers.get(id(b)))
        kind = "inout" if read and written else ("output" if written else "input")
        nodes.append({"id": f"buf:{b.name}", "kind": kind, "label": b.name, **_buffer_info(b)})
    # Data flow in program order: a block reads a buffer from the last block before it that
    # writes it (from the parameter when none does); a block's writes to a parameter reach the
    # output unless a later block reads them back (then that block's edge carries them on).
    access = [(gid, _accesses(blk)) for gid, d, blk in blocks]
    for pos, (gid, (r, w)) in enumerate(access):
        for b in r:
            src = None
            for q in range(pos - 1, -1, -1):
                if any(x is b for x in access[q][1][1]):
                    src = access[q][0]
                    break
            if src is not None:
                edges.append({"src": src, "dst": gid, "buffer": b.name, **_buffer_info(b)})
            elif id(b) in params and all(x is not b for x in w):
                edges.append({"src": f"buf:{b.name}", "dst": gid, "buffer": b.name})
        for b in w:
            if id(b) not in params:
                continue
            later = [x for x in access[pos + 1:] if any(y is b for y in x[1][0])]
            if not later:
                edges.append({"src": gid, "dst": f"buf:{b.name}", "buffer": b.name})
    # drop duplicate edges, keep order
    uniq, seen = [], set()
    for e in edges:
        key = (e["src"], e["dst"], e["buffer"])
        if key not in seen:
            seen.add(key)
            uniq.append(e)
    return {"name": func.name, "nodes": nodes, "edges": uniq}


def module_graph_data(mod: IRModule) -> dict:
    """Functions of ``mod`` as nodes; an edge ``f -> g`` when ``f`` mentions ``g`` by name
    (a ``call_tir`` of a graph function, a call of another function)."""
    if not isinstance(mod, IRModule):
        raise TypeError(f"module_graph needs an IRModule, got {type(mod).__name__}")
    names = list(mod.functions)
    nodes = [{"id": f"fn:{n}", "kind": "prim_func" if isinstance(f, PrimFunc) else "function", "label": n}
             for n, f in mod.functions.items()]
    edges = []
    for n, f in mod.functions.items():
        if isinstance(f, PrimFunc):
            continue  # tensor programs do not call functions
        found: set[str] = set()

        def visit(x, found=found):
            for attr in ("name_hint", "global_symbol", "name"):
                v = getattr(x, attr, None)
                if isinstance(v, str) and v in mod.functions and v != n:
                    found.add(v)

        try:
            post_order_visit(f, visit)
        except Exception:
            pass
        for g in names:
            if g in found:
                edges.append({"src": f"fn:{n}", "dst": f"fn:{g}", "buffer": ""})
    return {"name": "module", "nodes": nodes, "edges": edges}


MAX_DRAWN_NODES = 400  # dot takes seconds beyond this; the loop nest still shows every block

_NODE_STYLE = {
    "block": dict(shape="box", style="rounded,filled", fillcolor="#dbeafe", color="#2563eb"),
    "input": dict(shape="ellipse", style="filled", fillcolor="#f3f4f6", color="#6b7280"),
    "output": dict(shape="ellipse", style="filled", fillcolor="#dcfce7", color="#16a34a"),
    "inout": dict(shape="ellipse", style="filled", fillcolor="#fef9c3", color="#ca8a04"),
    "prim_func": dict(shape="box", style="rounded,filled", fillcolor="#dbeafe", color="#2563eb"),
    "function": dict(shape="box", style="filled", fillcolor="#ede9fe", color="#7c3aed"),
}


def to_svg(data: dict) -> str:
    """The graph drawn by graphviz ``dot`` as an SVG string (no XML prologue).

    Block nodes get the SVG id ``wb-<tree id>`` and functions ``wb-fn-<name>``.
    Raises ``RuntimeError`` naming the fix when the ``dot`` program is missing.
    """
    import graphviz

    if len(data["nodes"]) > MAX_DRAWN_NODES:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="520" height="30"><text x="4" y="20" '
                f'font-family="Helvetica" font-size="12">{len(data["nodes"])} nodes: too many to draw '
                f'(the limit is {MAX_DRAWN_NODES}); see the loop nest instead</text></svg>')
    g = graphviz.Digraph("G", format="svg")
    g.attr(rankdir="TB", fontname="Helvetica", fontsize="11", bgcolor="transparent")
    g.attr("node", fontname="Helvetica", fontsize="11", margin="0.12,0.04", height="0.3")
    g.attr("edge", fontname="Helvetica", fontsize="9", color="#6b7280", fontcolor="#374151")
    gv = {n["id"]: f"N{k}" for k, n in enumerate(data["nodes"])}
    # graphviz's <title> (the hover text) of each node and edge: names, not ids
    titles: dict[str, str] = {"G": f"graph of {data['name']}"}
    for k, n in enumerate(data["nodes"]):
        attrs = dict(_NODE_STYLE.get(n["kind"], {}))
        if n["kind"] == "block":
            attrs["id"] = f"wb-{n['tree_id']}"
            tip = (f"block {n['label']}: reads " + (", ".join(n.get("reads", [])) or "-")
                   + "; writes " + (", ".join(n.get("writes", [])) or "-"))
            label = f"block {n['label']}"
        elif n["kind"] in ("prim_func", "function"):
            attrs["id"] = f"wb-fn-{n['label']}"
            label = tip = n["label"]
        else:
            attrs["id"] = f"wb-buf-{k}"
            tip = f"{n['kind']} buffer " + buffer_label(n["label"], n)
            label = f"{n['label']}\n{n.get('dtype', '')}[{', '.join(n.get('shape', []))}]"
        attrs["tooltip"] = tip
        titles[gv[n["id"]]] = tip
        g.node(gv[n["id"]], label=label, **attrs)
    names = {n["id"]: n["label"] for n in data["nodes"]}
    for e in data["edges"]:
        label = buffer_label(e["buffer"], e) if "dtype" in e else e.get("buffer", "")
        tip = f"{names[e['src']]} -> {names[e['dst']]}" + (f": {label}" if label else "")
        titles[f"{gv[e['src']]}->{gv[e['dst']]}"] = tip
        g.edge(gv[e["src"]], gv[e["dst"]], label=label.replace(" ", "\n", 1) if "dtype" in e else label,
               tooltip=tip)
    try:
        svg = g.pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound:
        raise RuntimeError("graphviz's `dot` program is missing, so the graph cannot be drawn; "
                           "install it with `apt-get install graphviz`") from None
    start = svg.find("<svg")
    return _readable_titles(svg[start:] if start >= 0 else svg, titles)


def _readable_titles(svg: str, titles: dict[str, str]) -> str:
    """Replace graphviz's ``<title>N3</title>`` (its node names, which browsers show on hover) by
    the names of the blocks and buffers."""
    import html
    import re

    def sub(m: re.Match) -> str:
        key = html.unescape(m.group(1))
        return f"<title>{html.escape(titles[key], quote=False)}</title>" if key in titles else m.group(0)

    return re.sub(r"<title>(.*?)</title>", sub, svg)


class BlockGraphSVG:
    """An SVG drawing that displays itself in Jupyter (``block_graph(func, widget=False)``)."""

    def __init__(self, svg: str, data: dict):
        self.svg = svg
        self.data = data

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        return f'<div class="wb-graph">{self.svg}</div>'

    def __repr__(self) -> str:
        lines = [f"block graph of {self.data['name']}:"]
        lines += [f"  {e['src']} -> {e['dst']} ({e['buffer']})" for e in self.data["edges"]]
        return "\n".join(lines)


def describe(data: dict) -> str:
    """One line per edge, as text (the plain-text form of a graph)."""
    return "\n".join(f"{e['src']} -> {e['dst']}" + (f" [{e['buffer']}]" if e["buffer"] else "")
                     for e in data["edges"])


__all__ = ["block_graph_data", "module_graph_data", "to_svg", "BlockGraphSVG", "describe"]

