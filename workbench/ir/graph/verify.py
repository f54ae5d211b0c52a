"""Well-formedness of graph functions (and of the graph parts of a module).

Checked: every variable is defined before use and only once; a :class:`DataflowVar` is
bound only inside a dataflow block and used only there; size variables in types are
defined by the parameters or an earlier ``match_cast``; each binding's variable has its
value's type; the function's return type is the body's; ``call_tir`` targets are tensor
programs of the module with one parameter per argument and output.

>>> import workbench as wb
>>> from workbench.ir.graph import DataflowBlock, DataflowVar, Function, SeqExpr, Var, VarBinding
>>> x = Var("x", wb.Tensor((4,), "float32"))
>>> lv = DataflowVar("lv", x.type)
>>> bad = Function([x], SeqExpr([DataflowBlock([VarBinding(lv, wb.op.demo.negative(x))])], lv))
>>> verify_graph(bad)
Traceback (most recent call last):
...
workbench.ir.graph.verify.GraphWellFormedError: graph function main is not well formed:
  - the result uses the dataflow variable lv outside its dataflow block
"""
from __future__ import annotations

from ..verify import WellFormedError
from .expr import (
    Call, Constant, DataflowBlock, DataflowVar, Expr, Function, GlobalVar, MatchCast, Op, SeqExpr, Tuple, TupleGetItem,
    Var, VarBinding,
)
from .types import GraphType, TupleType, shape_vars


class GraphWellFormedError(WellFormedError):
    """A graph function breaks the IR's invariants; ``problems`` lists each one."""

    def __init__(self, func_name: str, problems: list[str]):
        self.func_name = func_name
        self.problems = list(problems)
        ValueError.__init__(self, f"graph function {func_name} is not well formed:\n"
                            + "\n".join(f"  - {p}" for p in self.problems))


def types_equal(a: GraphType, b: GraphType) -> bool:
    """Same type, with size variables compared by identity (``n`` is not ``m``)."""
    from ..structural import _Equal

    chk = _Equal()
    for v in shape_vars(a) + shape_vars(b):
        chk.fwd[id(v)] = v
        chk.bwd[id(v)] = v
    return chk.eq(a, b)


def _type_vars(t: GraphType) -> list:
    return shape_vars(t)


class _Checker:
    def __init__(self, func: Function, module=None):
        self.func = func
        self.module = module
        self.problems: list[str] = []
        self.defined: set[int] = set()
        self.visible: set[int] = set()
        self.size_vars: set[int] = set()
        self.dataflow_scope: set[int] | None = None

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def check_type_vars(self, t: GraphType, where: str) -> None:
        for v in _type_vars(t):
            if id(v) not in self.size_vars:
                self.problem(f"{where} uses the size variable {v.name}, which no parameter or earlier "
                             f"match_cast defines")

    def use(self, e: Expr, where: str) -> None:
        if isinstance(e, Var):
            if id(e) in self.visible:
                return
            if isinstance(e, DataflowVar) and id(e) in self.defined:
                self.problem(f"{where} uses the dataflow variable {e.name} outside its dataflow block")
            elif id(e) in self.defined:
                self.problem(f"{where} uses {e.name}, which is not visible there")
            else:
                self.problem(f"{where} uses {e.name} before it is defined")
            return
        if isinstance(e, Constant):
            return
        if isinstance(e, Tuple):
            for f in e.fields:
                self.use(f, where)
            return
        if isinstance(e, TupleGetItem):
            self.use(e.tuple_value, where)
            return
        if isinstance(e, Call):
            for a in e.args:
                self.use(a, where)
            if not isinstance(e.op, Op):
                self.check_type_vars(e.type, where)
            if isinstance(e.op, GlobalVar):
                self.check_call_tir(e, where)
            return
        if isinstance(e, SeqExpr):
            self.problem(f"{where} holds a nested SeqExpr, which only a function body may be")
            return
        self.problem(f"{where} holds a {type(e).__name__}, which is not a graph value")

    def check_call_tir(self, call: Call, where: str) -> None:
        if self.module is None:
            return
        from ..function import PrimFunc

        name = call.op.name
        target = self.module.functions.get(name)
        if target is None:
            self.problem(f"{where} calls {name} with call_tir, but the module has no function {name}")
            return
        if not isinstance(target, PrimFunc):
            self.problem(f"{where} calls {name} with call_tir, but {name} is not a tensor program")
            return
        n_out = len(call.type.fields) if isinstance(call.type, TupleType) else 1
        want = len(call.args) + n_out
        if len(target.params) != want:
            self.problem(f"{where} passes {len(call.args)} argument(s) and {n_out} output(s) to {name}, "
                         f"which takes {len(target.params)} parameter(s)")

    def define(self, v: Var, where: str) -> None:
        if id(v) in self.defined:
            self.problem(f"{v.name} is defined twice ({where})")
        self.defined.add(id(v))
        self.visible.add(id(v))

    def run(self) -> list[str]:
        f = self.func
        for p in f.params:
            for v in _type_vars(p.type):
                self.size_vars.add(id(v))
            self.define(p, f"parameter {p.name}")
        for block in f.body.blocks:
            in_df = isinstance(block, DataflowBlock)
            local: list[int] = []
            for b in block.bindings:
                where = f"the binding of {b.var.name}"
                self.use(b.value, where)
                if isinstance(b, MatchCast):
                    for v in _type_vars(b.type):
                        self.size_vars.add(id(v))
                    if not types_equal(b.var.type, b.type):
                        self.problem(f"{where}: the variable's type {b.var.type!r} is not the cast type {b.type!r}")
                elif isinstance(b, VarBinding) and not types_equal(b.var.type, b.value.type):
                    self.problem(f"{where}: the variable's type {b.var.type!r} is not its value's "
                                 f"type {b.value.type!r}")
                if isinstance(b.var, DataflowVar):
                    if not in_df:
                        self.problem(f"{b.var.name} is a dataflow variable bound outside a dataflow block")
                    local.append(id(b.var))
                self.define(b.var, where)
            for k in local:
                self.visible.discard(k)
        self.use(f.body.body, "the result")
        self.check_type_vars(f.ret_type, "the return type")
        if not types_equal(f.ret_type, f.body.body.type):
            self.problem(f"the return type {f.ret_type!r} is not the result's type {f.body.body.type!r}")
        return self.problems


def verify_graph(obj, module=None) -> None:
    """Raise :class:`GraphWellFormedError` unless the graph function (or every graph function of the
    IRModule ``obj``) is well formed.

    >>> import workbench as wb
    >>> x = wb.graph.Var("x", wb.Tensor(("n",), "float32"))
    >>> bb = wb.BlockBuilder()
    >>> with bb.function("main", [x]):
    ...     bb.emit_func_output(bb.emit(wb.op.demo.negative(x)))
    >>> verify_graph(bb.get())
    """
    from ..function import IRModule

    if isinstance(obj, IRModule):
        for name, fn in obj.graph_functions.items():
            problems = _Checker(fn, obj).run()
            if problems:
                raise GraphWellFormedError(name, problems)
        return
    if not isinstance(obj, Function):
        raise TypeError(f"verify_graph takes a graph Function or an IRModule, got {type(obj).__name__}")
    problems = _Checker(obj, module).run()
    if problems:
        raise GraphWellFormedError(obj.name, problems)


__all__ = ["verify_graph", "GraphWellFormedError", "types_equal"]
