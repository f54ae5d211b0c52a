"""The printer of graph functions: the script form of DESIGN.md's "Graph functions".

>>> import workbench as wb
>>> from workbench.ir.graph import BlockBuilder, Var
>>> x = Var("x", wb.Tensor(("n", 4), "float32"))
>>> bb = BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         y = bb.emit(wb.op.demo.negative(x))
...         gv = bb.emit_output(wb.op.demo.negative(y))
...     bb.emit_func_output(gv)
>>> print(bb.get().script())
@wb.ir_module
class Module:
    @wb.function
    def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
        with wb.dataflow():
            lv = wb.op.demo.negative(x)
            gv = wb.output(wb.op.demo.negative(lv))
        return gv

Rules: symbolic dimensions print as strings (``"n"``, ``"n * 4"``), one name per size
variable in a function; a binding of a non-dataflow Var inside a dataflow block prints as
``gv = wb.output(value)``; constants with at most ``INLINE_CONSTANT_LIMIT`` elements print
inline (``wb.const([...], "float32")``), larger ones by reference (``wb.meta(key, shape,
dtype)``, parsed back while the program is alive).
"""
from __future__ import annotations

import numpy as np

from ..expr import IntImm, PrimExpr
from ..printer import INDENT, PREFIX, Printer, _str, _wrap_params
from .expr import (
    BindingBlock, Call, Constant, DataflowBlock, DataflowVar, Expr, ExternFunc, Function, GlobalVar, MatchCast,
    Op, SeqExpr, Tuple, TupleGetItem, Var, VarBinding,
)
from .script import INLINE_CONSTANT_LIMIT, register_constant
from .types import GraphType, TupleType

MODULE_NAME = "Module"


class GraphPrinter(Printer):
    """Prints graph functions, types and values; names are unique across a whole function."""

    def __init__(self):
        super().__init__()
        self.scopes[0].add(MODULE_NAME)

    # types -----------------------------------------------------------------
    def type_text(self, t: GraphType) -> str:
        if isinstance(t, TupleType):
            return f"{PREFIX}.Tuple({', '.join(self.type_text(f) for f in t.fields)})"
        if t.shape is None:
            return f'{PREFIX}.Tensor(None, "{t.dtype}")'
        dims = [self.dim_text(d) for d in t.shape]
        inner = ", ".join(dims) + ("," if len(dims) == 1 else "")
        return f'{PREFIX}.Tensor(({inner}), "{t.dtype}")'

    def dim_text(self, d: PrimExpr) -> str:
        if isinstance(d, IntImm) and d.dtype == "int32":
            return str(d.value)
        return '"' + self.expr(d) + '"'

    # values ------------------------------------------------------------------
    def value(self, v) -> str:  # attribute values: tuples print as tuples, size expressions by name
        if isinstance(v, PrimExpr):
            return self.expr(v)
        if isinstance(v, (tuple, list)):
            inner = ", ".join(self.value(x) for x in v)
            return f"({inner}{',' if len(v) == 1 else ''})"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{self.value(k)}: {self.value(x)}" for k, x in v.items()) + "}"
        return super().value(v)

    def gexpr(self, e: Expr) -> str:
        if isinstance(e, Var):
            return self.name(e)
        if isinstance(e, Constant):
            return self.constant(e)
        if isinstance(e, Tuple):
            inner = ", ".join(self.gexpr(f) for f in e.fields)
            return f"({inner}{',' if len(e.fields) == 1 else ''})"
        if isinstance(e, TupleGetItem):
            return f"{self.gexpr(e.tuple_value)}[{e.index}]"
        if isinstance(e, Call):
            return self.call_text(e)
        if isinstance(e, SeqExpr):
            raise ValueError("a SeqExpr prints only as a function body")
        return f"<{type(e).__name__}>"

    def constant(self, c: Constant) -> str:
        arr = c.data
        finite = arr.dtype.kind != "f" or bool(np.isfinite(arr).all())
        if arr.size <= INLINE_CONSTANT_LIMIT and finite:
            return f'{PREFIX}.const({arr.tolist()!r}, "{arr.dtype.name}")'
        key = register_constant(c)
        shape = ", ".join(str(d) for d in arr.shape) + ("," if arr.ndim == 1 else "")
        return f'{PREFIX}.meta("{key}", ({shape}), "{arr.dtype.name}")'

    def call_text(self, e: Call) -> str:
        args = [self.gexpr(a) for a in e.args]
        if isinstance(e.op, Op):
            parts = args + [f"{k}={self.value(v)}" for k, v in e.attrs.items()]
            return f"{PREFIX}.op.{e.op.name}({', '.join(parts)})"
        tup = "(" + ", ".join(args) + ("," if len(args) == 1 else "") + ")"
        extra = f", attrs={self.value(dict(e.attrs))}" if e.attrs else ""
        out = self.type_text(e.type)
        if isinstance(e.op, GlobalVar):
            return f"{PREFIX}.call_tir({MODULE_NAME}.{e.op.name}, {tup}, out={out}{extra})"
        assert isinstance(e.op, ExternFunc)
        return f"{PREFIX}.call_dps_library({_str(e.op.name)}, {tup}, out={out}{extra})"

    # bindings ------------------------------------------------------------------
    def binding_line(self, b, in_dataflow: bool) -> str:
        if isinstance(b, MatchCast):
            rhs = f"{PREFIX}.match_cast({self.gexpr(b.value)}, {self.type_text(b.type)})"
        else:
            assert isinstance(b, VarBinding)
            rhs = self.gexpr(b.value)
        if in_dataflow and not isinstance(b.var, DataflowVar):
            rhs = f"{PREFIX}.output({rhs})"
        return f"{self.define(b.var)} = {rhs}"

    def block_lines(self, block: BindingBlock, depth: int) -> list[str]:
        ind = INDENT * depth
        if isinstance(block, DataflowBlock):
            inner = INDENT * (depth + 1)
            lines = [f"{ind}with {PREFIX}.dataflow():"]
            lines += [inner + self.binding_line(b, True) for b in block.bindings] or [inner + "pass"]
            return lines
        return [ind + self.binding_line(b, False) for b in block.bindings]

    # functions -----------------------------------------------------------------------
    def function_lines(self, f: Function, method_name: str | None = None) -> list[str]:
        gsym = f.attrs.get("global_symbol")
        def_name = method_name or (gsym if isinstance(gsym, str) else "main")
        private = "global_symbol" not in f.attrs
        attrs = {k: v for k, v in f.attrs.items() if k != "global_symbol"}
        if not private and gsym != def_name:
            attrs = {"global_symbol": gsym, **attrs}
        head = [f"@{PREFIX}.function(private=True)" if private else f"@{PREFIX}.function"]
        params = []
        for p in f.params:
            ann = self.type_text(p.type)  # names the size variables first
            params.append(f"{self.define(p)}: {ann}")
        body: list[str] = []
        if attrs:
            body.append(f"{INDENT}{PREFIX}.func_attr({self.value(attrs)})")
        for block in f.body.blocks:
            body += self.block_lines(block, 1)
        body.append(f"{INDENT}return {self.gexpr(f.body.body)}")
        ret = self.type_text(f.ret_type)
        head += _wrap_params(f"def {def_name}(", params, f") -> {ret}:")
        return head + body

    def print_graph(self, node) -> str:
        if isinstance(node, Function):
            return "\n".join(self.function_lines(node))
        if isinstance(node, GraphType):
            return self.type_text(node)
        if isinstance(node, SeqExpr):
            lines = []
            for block in node.blocks:
                lines += self.block_lines(block, 0)
            return "\n".join(lines + [f"return {self.gexpr(node.body)}"])
        if isinstance(node, (VarBinding, MatchCast)):
            return self.binding_line(node, False)
        if isinstance(node, BindingBlock):
            return "\n".join(self.block_lines(node, 0))
        if isinstance(node, Expr):
            return self.gexpr(node)
        if isinstance(node, (Op, GlobalVar, ExternFunc)):
            return {Op: f"{PREFIX}.op.{node.name}", GlobalVar: f"{MODULE_NAME}.{node.name}"}.get(
                type(node), _str(node.name))
        return repr(node)


def is_graph_node(node) -> bool:
    """Is ``node`` a graph-level node (printed by this module)?"""
    return isinstance(node, (Expr, Function, GraphType, BindingBlock, VarBinding, MatchCast, Op, GlobalVar,
                             ExternFunc))


def print_graph(node) -> str:
    """The script form of a graph-level node (function, value, binding, block or type).

    >>> import workbench as wb
    >>> print_graph(wb.Tensor(("n", 4), "float32"))
    'wb.Tensor(("n", 4), "float32")'
    """
    return GraphPrinter().print_graph(node)


__all__ = ["GraphPrinter", "print_graph", "is_graph_node", "MODULE_NAME"]
