"""``DeadCodeElimination``: drop unused bindings of dataflow blocks and tensor programs nothing calls.

A binding inside a dataflow block is pure, so it goes when nothing after it (later bindings,
the function's result) reads its variable; this repeats until nothing more goes (a chain of
unused values goes at once). A ``match_cast`` that defines a size variable is kept. Bindings
outside dataflow blocks may have effects and stay. When the module has graph functions, tensor
programs that no graph function calls (``call_tir``) are removed; a module of tensor programs
only is left as it is. Empty dataflow blocks are dropped.

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor((4,), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         unused = bb.emit(wb.op.exp(x))
...         gv = bb.emit_output(wb.op.relu(x))
...     bb.emit_func_output(gv)
>>> mod = wb.transform.LegalizeOps()(bb.get())
>>> print(mod["main"].script())      # before
@wb.function
def main(x: wb.Tensor((4,), "float32")) -> wb.Tensor((4,), "float32"):
    with wb.dataflow():
        lv = wb.call_tir(Module.exp, (x,), out=wb.Tensor((4,), "float32"))
        gv = wb.output(wb.call_tir(Module.relu, (x,), out=wb.Tensor((4,), "float32")))
    return gv
>>> after = DeadCodeElimination()(mod)
>>> print(after["main"].script())      # after
@wb.function
def main(x: wb.Tensor((4,), "float32")) -> wb.Tensor((4,), "float32"):
    with wb.dataflow():
        gv = wb.output(wb.call_tir(Module.relu, (x,), out=wb.Tensor((4,), "float32")))
    return gv
>>> sorted(after.prim_funcs)
['relu']
"""
from __future__ import annotations

from ..ir.function import IRModule
from ..ir.graph.expr import Call, DataflowBlock, Function, MatchCast, SeqExpr, Tuple, TupleGetItem
from ..ir.graph.types import shape_vars
from .graph_util import used_vars
from .pass_infra import Pass


class DeadCodeElimination(Pass):
    """Remove unused pure bindings and uncalled tensor programs (see the module docstring)."""

    def transform(self, mod: IRModule) -> IRModule:
        functions = dict(mod.functions)
        graph = mod.graph_functions
        for name, func in graph.items():
            functions[name] = remove_unused_bindings(func)
        if graph:
            called = set()
            for name in graph:
                called |= called_prim_funcs(functions[name])
            for name in mod.prim_funcs:
                if name not in called:
                    functions.pop(name)
        return mod.replace(functions=functions)


def remove_unused_bindings(func: Function) -> Function:
    """``func`` without the unused bindings of its dataflow blocks."""
    param_size_vars = {id(v) for p in func.params for v in shape_vars(p.type)}
    live = {id(v) for v in used_vars(func.body.body)}
    blocks = []
    changed = False
    for block in reversed(func.body.blocks):
        kept = []
        for b in reversed(block.bindings):
            if isinstance(block, DataflowBlock) and id(b.var) not in live and \
                    not _defines_size_vars(b, param_size_vars):
                changed = True
                continue
            kept.append(b)
            live.update(id(v) for v in used_vars(b.value))
        if isinstance(block, DataflowBlock) and not kept:
            changed = True
            continue
        blocks.append(type(block)(tuple(reversed(kept))))
    if not changed:
        return func
    return func.replace(body=SeqExpr(tuple(reversed(blocks)), func.body.body))


def _defines_size_vars(b, param_size_vars: set) -> bool:
    return isinstance(b, MatchCast) and any(id(v) not in param_size_vars for v in shape_vars(b.type))


def called_prim_funcs(func: Function) -> set[str]:
    """The names of the tensor programs ``func`` calls with ``call_tir``."""
    out: set[str] = set()

    def walk(e) -> None:
        if isinstance(e, Call):
            if e.is_call_tir:
                out.add(e.op.name)
            for a in e.args:
                walk(a)
        elif isinstance(e, Tuple):
            for f in e.fields:
                walk(f)
        elif isinstance(e, TupleGetItem):
            walk(e.tuple_value)

    for block in func.body.blocks:
        for b in block.bindings:
            walk(b.value)
    walk(func.body.body)
    return out


__all__ = ["DeadCodeElimination", "remove_unused_bindings", "called_prim_funcs"]
