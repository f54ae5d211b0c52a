"""``FuseOps``: group the ``call_tir`` bindings of each dataflow block by fusion pattern, as TVM's FuseOps.

The bindings of a dataflow block form a graph (an edge from each binding to the bindings that
read its variable). Each ``call_tir`` binding has its tensor program's ``op_pattern``
(``AnnotateOpPattern``; computed here when missing); anything else (op calls that are not
legalized, ``call_dps_library``, tuples, ``match_cast``, ``call_tir`` with non-variable arguments)
is ``opaque`` and never fused. A binding whose variable leaves the block (``wb.output``) can end a
group but not feed one. Groups are formed along the post-dominator tree, as TVM's graph
partitioner does:

* phase 0: an ``out_ewise_fusible`` binding (matmul, linear, attention) takes its post-dominator
  when every binding on the paths to it is elementwise or broadcast and the post-dominator reads
  it elementwise (an edge into a ``broadcast`` consumer whose argument has the consumer's result
  shape counts as elementwise: ``matmul -> add(bias) -> gelu`` fuses);
* phases 0 and 1: an ``elementwise``/``broadcast`` binding joins its post-dominator when that is
  injective or a reduction (``add -> layer_norm``) and the paths are injective;
* phase 1: an ``injective`` binding joins its post-dominator through injective paths;
* phase 0, a *weight prologue*: an ``injective`` (or simpler) binding that reads only the function's
  parameters and constants and whose one consumer is an ``out_ewise_fusible`` binding joins that
  consumer (``decode_q4(packed) -> linear``: the weights are decoded inside the matmul's kernel, as
  MLC-LLM's ``FuseDequantizeMatmulEwise``; TVM's partitioner would keep them apart);
* ``reduction`` bindings end groups, they do not start them.

The groups are recorded on the function (``attrs["fusion_groups"]``: ``{group name: (binding
variable names, in order)}``, names as TVM's ``fused_matmul_add_gelu``); the bindings stay as they
are, so the module still runs unchanged. :class:`~workbench.transform.FuseTIR` then merges each
group into one tensor program. ``fuse_opt_level=0`` disables fusion; ``max_fuse_depth`` bounds the
bindings per group.

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> w = wb.graph.Var("w", wb.Tensor((4, 4), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x, w]):
...     with bb.dataflow():
...         lv = bb.emit(wb.op.matmul(x, w))
...         gv = bb.emit_output(wb.op.relu(lv))
...     bb.emit_func_output(gv)
>>> mod = wb.transform.LegalizeOps()(bb.get())
>>> print(mod["main"].script())      # before
@wb.function
def main(x: wb.Tensor(("n", 4), "float32"),
         w: wb.Tensor((4, 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
    with wb.dataflow():
        lv = wb.call_tir(Module.matmul, (x, w), out=wb.Tensor(("n", 4), "float32"))
        gv = wb.output(wb.call_tir(Module.relu, (lv,), out=wb.Tensor(("n", 4), "float32")))
    return gv
>>> print(FuseOps()(mod)["main"].script())      # after
@wb.function
def main(x: wb.Tensor(("n", 4), "float32"),
         w: wb.Tensor((4, 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
    wb.func_attr({"fusion_groups": {"fused_matmul_relu": ("lv", "gv")}})
    with wb.dataflow():
        lv = wb.call_tir(Module.matmul, (x, w), out=wb.Tensor(("n", 4), "float32"))
        gv = wb.output(wb.call_tir(Module.relu, (lv,), out=wb.Tensor(("n", 4), "float32")))
    return gv
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field

from ..ir.function import IRModule
from ..ir.graph.expr import Call, DataflowBlock, DataflowVar, Function, VarBinding
from ..ir.graph.ops._common import dims_equal
from ..ir.graph.types import TensorType
from .annotate_op_pattern import _RANK, combine, pattern_of
from .graph_util import fresh_name, is_value_leaf, op_base_name, used_vars
from .pass_infra import Pass, PassError

#: a group name longer than this is cut (and made unique), as TVM bounds fused function names
MAX_NAME_LENGTH = 80


class FuseOps(Pass):
    """Record fusion groups of ``call_tir`` bindings on each graph function (see the module docstring)."""

    def __init__(self, fuse_opt_level: int = 2, max_fuse_depth: int = 256):
        if isinstance(fuse_opt_level, bool) or not isinstance(fuse_opt_level, int):
            raise PassError(f"FuseOps: fuse_opt_level must be an int (0 disables fusion), got {fuse_opt_level!r}")
        if isinstance(max_fuse_depth, bool) or not isinstance(max_fuse_depth, int) or max_fuse_depth < 1:
            raise PassError(f"FuseOps: max_fuse_depth must be a positive int, got {max_fuse_depth!r}")
        self.fuse_opt_level = fuse_opt_level
        self.max_fuse_depth = max_fuse_depth

    def __repr__(self) -> str:
        return f"FuseOps(fuse_opt_level={self.fuse_opt_level})"

    def transform(self, mod: IRModule) -> IRModule:
        patterns = {name: pattern_of(f) for name, f in mod.prim_funcs.items()}
        taken = set(mod.functions)
        functions = dict(mod.functions)
        for name, func in mod.graph_functions.items():
            groups = self.function_groups(func, patterns, taken) if self.fuse_opt_level > 0 else {}
            attrs = {k: v for k, v in func.attrs.items() if k != "fusion_groups"}
            if groups:
                attrs["fusion_groups"] = groups
            if dict(func.attrs) != attrs:
                functions[name] = func.replace(attrs=attrs)
        return mod.replace(functions=functions)

    def function_groups(self, func: Function, patterns: dict, taken: set) -> dict:
        _check_unique_names(func)
        groups: dict = {}
        for block in func.body.blocks:
            if not isinstance(block, DataflowBlock):
                continue
            graph = _Graph(block, patterns)
            for members in _Partitioner(graph, self.max_fuse_depth).run():
                bindings = [block.bindings[k] for k in members]
                groups[_group_name([b.value.op.name for b in bindings], taken)] = tuple(b.var.name for b in bindings)
        return groups


def _check_unique_names(func: Function) -> None:
    seen: set[str] = {p.name for p in func.params}
    for block in func.body.blocks:
        for b in block.bindings:
            if b.var.name in seen:
                raise PassError(f"FuseOps: graph function {func.name} binds the name {b.var.name!r} twice; "
                                f"fusion groups name bindings, so give each binding its own name")
            seen.add(b.var.name)


def _kernel_base_name(name: str) -> str:
    """The op a legalized kernel came from: ``add1`` -> ``add``, ``decode_q4_1`` -> ``decode_q4``; a name that is
    an op itself (``decode_q4``) keeps its digits."""
    from ..ir.graph.op import list_ops

    ops = set(list_ops())
    if name in ops:
        return name
    stripped = re.sub(r"_?\d+$", "", name)
    return stripped if stripped in ops else op_base_name(name)


def _group_name(member_funcs: list[str], taken: set) -> str:
    parts = [_kernel_base_name(n) for n in member_funcs]
    base = "fused_" + "_".join(parts)
    if len(base) > MAX_NAME_LENGTH:
        base = base[:MAX_NAME_LENGTH].rstrip("_")
    return fresh_name(base, taken)


@dataclass
class _Node:
    index: int
    pattern: str
    extern: bool = False
    outputs: list = field(default_factory=list)   # (consumer index, edge pattern)
    reads_block: bool = False                      # reads a value bound in the block


class _Graph:
    """The dataflow graph of one block's bindings (indices in binding order, a topological order)."""

    def __init__(self, block: DataflowBlock, patterns: dict):
        self.nodes = [_Node(k, _binding_pattern(b, patterns)) for k, b in enumerate(block.bindings)]
        producer = {id(b.var): k for k, b in enumerate(block.bindings)}
        for k, b in enumerate(block.bindings):
            node = self.nodes[k]
            if not isinstance(b.var, DataflowVar):
                node.extern = True
            for v in used_vars(b.value):
                j = producer.get(id(v))
                if j is not None:
                    self.nodes[j].outputs.append((k, _edge_pattern(v, b, node.pattern)))
                    node.reads_block = True


def _binding_pattern(b, patterns: dict) -> str:
    v = b.value
    if isinstance(b, VarBinding) and isinstance(v, Call) and v.is_call_tir and v.op.name in patterns and \
            all(is_value_leaf(a) for a in v.args):
        return patterns[v.op.name]
    return "opaque"


def _edge_pattern(arg, consumer, pattern: str) -> str:
    """The consumer's kind, but elementwise for a broadcast consumer whose argument has its result's shape."""
    if pattern != "broadcast":
        return pattern
    t, out = arg.type, consumer.value.type
    if isinstance(t, TensorType) and isinstance(out, TensorType) and t.shape is not None and \
            out.shape is not None and len(t.shape) == len(out.shape) and \
            all(dims_equal(a, b) for a, b in zip(t.shape, out.shape)):
        return "elementwise"
    return pattern


def _le(a: str, b: str) -> bool:
    return _RANK[a] <= _RANK[b]


def _combine_dom(a: str, b: str) -> str:
    """Patterns along post-dominator paths: two complex kinds together are opaque (as TVM)."""
    if not _le(a, "broadcast") and not _le(b, "broadcast"):
        return "opaque"
    return combine(a, b)


class _PostDom:
    """The post-dominator tree: each node's nearest post-dominator (``parent``) and the pattern of the
    edges on the way to it (``pattern``)."""

    def __init__(self, graph: _Graph):
        n = len(graph.nodes)
        self.parent: list = [None] * n
        self.depth = [0] * n
        self.pattern = ["opaque"] * n
        for k in reversed(range(n)):
            node = graph.nodes[k]
            if node.extern or not node.outputs:
                self.depth[k] = 1
                continue
            parent, pattern = self.lca_of(node.outputs)
            self.parent[k] = parent
            self.pattern[k] = pattern
            self.depth[k] = 1 if parent is None else self.depth[parent] + 1

    def lca_of(self, outputs: list):
        pattern = "elementwise"
        parent, p0 = outputs[0]
        pattern = _combine_dom(pattern, p0)
        for consumer, p in outputs[1:]:
            parent, pattern = self.lca(parent, consumer, pattern)
            pattern = _combine_dom(pattern, p)
        return parent, pattern

    def lca(self, a, b, pattern: str):
        while a != b:
            if a is None or b is None:
                return None, pattern
            if self.depth[a] < self.depth[b]:
                pattern = _combine_dom(pattern, self.pattern[b])
                b = self.parent[b]
            elif self.depth[b] < self.depth[a]:
                pattern = _combine_dom(pattern, self.pattern[a])
                a = self.parent[a]
            else:
                pattern = _combine_dom(_combine_dom(pattern, self.pattern[a]), self.pattern[b])
                a, b = self.parent[a], self.parent[b]
        return a, pattern


class _Partitioner:
    """TVM's graph partitioner over one block: union-find groups grown towards post-dominators."""

    def __init__(self, graph: _Graph, max_depth: int):
        self.graph = graph
        self.max_depth = max_depth
        n = len(graph.nodes)
        self.up = list(range(n))
        self.gpattern = [node.pattern for node in graph.nodes]
        self.anchor = [node.pattern == "out_ewise_fusible" for node in graph.nodes]
        self.size = [1] * n
        self.dom = _PostDom(graph)

    def root(self, k: int) -> int:
        while self.up[k] != k:
            self.up[k] = self.up[self.up[k]]
            k = self.up[k]
        return k

    def run(self) -> list[list[int]]:
        for phase in (0, 1):
            for k in range(len(self.graph.nodes)):
                self.try_fuse(k, phase)
        members: dict[int, list[int]] = {}
        for k in range(len(self.graph.nodes)):
            members.setdefault(self.root(k), []).append(k)
        return [m for m in members.values() if len(m) > 1]

    def try_fuse(self, k: int, phase: int) -> None:
        pattern = self.gpattern[self.root(k)]
        sink = self.dom.parent[k]
        if pattern == "opaque" or sink is None or self.root(k) == self.root(sink):
            return
        if self.fused_size(k, sink) > self.max_depth:
            return
        dom_pattern = self.dom.pattern[k]
        if phase == 0 and self.is_weight_prologue(k, sink):
            self.commit(k, sink)
        elif pattern == "out_ewise_fusible":
            if phase == 0 and dom_pattern == "elementwise" and \
                    self.check_path(k, sink, lambda p, is_sink: _le(p, "broadcast")):
                self.commit(k, sink)
        elif _le(pattern, "broadcast"):
            if _le(dom_pattern, "injective") or dom_pattern == "reduction":
                def fcond(p: str, is_sink: bool) -> bool:
                    return _le(p, "injective") if not is_sink else p != "opaque"
                if self.check_path(k, sink, fcond):
                    self.commit(k, sink)
        elif pattern == "injective":
            if phase == 1 and self.check_path(k, sink, lambda p, is_sink: _le(p, "injective")):
                self.commit(k, sink)

    def is_weight_prologue(self, k: int, sink: int) -> bool:
        """``k`` alone, injective, reading only parameters/constants, with the anchor ``sink`` its one consumer."""
        node = self.graph.nodes[k]
        return self.root(k) == k and self.size[k] == 1 and _le(node.pattern, "injective") and \
            not node.reads_block and len({c for c, _ in node.outputs}) == 1 and node.outputs[0][0] == sink and \
            self.graph.nodes[sink].pattern == "out_ewise_fusible"

    def on_paths(self, src: int, sink: int) -> list[int]:
        """The nodes on the paths from ``src`` (excluded) to ``sink`` (included)."""
        seen: set[int] = set()
        order: list[int] = []
        stack = [c for c, _ in self.graph.nodes[src].outputs]
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            order.append(k)
            if k != sink:
                stack.extend(c for c, _ in self.graph.nodes[k].outputs)
        return order

    def check_path(self, src: int, sink: int, fcond) -> bool:
        return all(fcond(self.gpattern[self.root(k)], k == sink) for k in self.on_paths(src, sink))

    def fused_size(self, src: int, sink: int) -> int:
        roots = {self.root(k) for k in [src, *self.on_paths(src, sink)]}
        return sum(self.size[r] for r in roots)

    def commit(self, src: int, sink: int) -> None:
        target = self.root(sink)
        for k in [src, *self.on_paths(src, sink)]:
            self.merge(k, target)

    def merge(self, child: int, parent: int) -> None:
        child, parent = self.root(child), self.root(parent)
        if child == parent:
            return
        self.size[parent] += self.size[child]
        self.up[child] = parent
        if self.anchor[child]:
            self.anchor[parent] = True
            self.gpattern[parent] = combine(self.gpattern[child], self.gpattern[parent])


__all__ = ["FuseOps", "MAX_NAME_LENGTH"]
