"""``LegalizeOps``: every graph op call becomes ``call_tir`` of a tensor program made from the op's ``te``
legalization.

Each ``wb.op.<name>(args, **attrs)`` is replaced by ``call_tir`` of a ``PrimFunc`` built with
``create_prim_func`` from ``te.placeholder`` s of the arguments' types (named ``A``, ``B``, ...;
symbolic dimensions stay the same size variables) and the op's ``legalize``; the parameters are
the inputs then the outputs (destination-passing style). Identical programs (structural hash) are
added once; programs are named after the op (``add``, ``add1``, ``matmul``, ``decode_q4``; a
duplicate of a name ending in a digit is ``decode_q4_1``). An op with a tuple
result (``split``) gives a ``call_tir`` of tuple type. Tuple arguments (``concat``) are flattened
into one parameter per field. Calls of ``call_tir``/``call_dps_library`` and ops without a
legalization are kept. Calls nested in another call's arguments get their own bindings (A-normal form,
which ``FuseOps`` needs), named ``lv``, ``lv1``, ... as the block builder names them.

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         gv = bb.emit_output(wb.op.relu(x))
...     bb.emit_func_output(gv)
>>> mod = bb.get()
>>> print(mod.script())      # before
@wb.ir_module
class Module:
    @wb.function
    def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
        with wb.dataflow():
            gv = wb.output(wb.op.relu(x))
        return gv
>>> print(LegalizeOps()(mod).script())      # after
@wb.ir_module
class Module:
    @wb.function
    def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
        with wb.dataflow():
            gv = wb.output(wb.call_tir(Module.relu, (x,), out=wb.Tensor(("n", 4), "float32")))
        return gv
<BLANKLINE>
    @wb.prim_func
    def relu(A: wb.Buffer(("n", 4), "float32"), relu: wb.Buffer(("n", 4), "float32")):
        n = wb.int32()
        for i0, i1 in wb.grid(n, 4):
            with wb.block("relu"):
                v_i0, v_i1 = wb.axis.remap("SS", [i0, i1])
                wb.reads(A[v_i0, v_i1])
                wb.writes(relu[v_i0, v_i1])
                relu[v_i0, v_i1] = wb.max(A[v_i0, v_i1], 0.0)
"""
from __future__ import annotations

import re
import string

from ..ir.function import IRModule, PrimFunc
from ..ir.graph.expr import (
    Binding, BindingBlock, Call, DataflowBlock, DataflowVar, Expr, GlobalVar, Op, Tuple, TupleGetItem, Var, VarBinding,
)
from ..ir.graph.types import GraphTypeError, TensorType, TupleType
from ..ir.structural import structural_equal, structural_hash
from .graph_util import fresh_name, rewrite_bindings, var_names, with_value
from .pass_infra import Pass, PassError


class LegalizeOps(Pass):
    """Lower graph op calls to ``call_tir`` of generated tensor programs (see the module docstring)."""

    def transform(self, mod: IRModule) -> IRModule:
        state = _Legalizer(mod)
        functions = dict(mod.functions)
        for name, func in mod.graph_functions.items():
            state.func_name = name
            state.taken_vars = var_names(func)
            functions[name] = rewrite_bindings(func, state.binding)
        functions.update(state.new_funcs)
        return mod.replace(functions=functions)


class _Legalizer:
    def __init__(self, mod: IRModule):
        self.taken = set(mod.functions)
        self.new_funcs: dict[str, PrimFunc] = {}
        self.by_hash: dict[int, list[tuple[PrimFunc, str]]] = {}
        self.func_name = ""
        self.taken_vars: set[str] = set()
        self.pending: list[Binding] = []
        self.var_class = Var

    def binding(self, b: Binding, block: BindingBlock) -> list[Binding]:
        """The legalized binding, after bindings of the calls nested in its value (A-normal form)."""
        self.pending = []
        self.var_class = DataflowVar if isinstance(block, DataflowBlock) else Var
        value = self.expr(b.value, b.var.name)
        return [*self.pending, with_value(b, value)]

    def bind_nested(self, e: Expr) -> Expr:
        """A call nested in another call's arguments gets its own binding."""
        if not isinstance(e, Call):
            return e
        var = self.var_class(fresh_name("lv", self.taken_vars), e.type)
        self.pending.append(VarBinding(var, e))
        return var

    def expr(self, e: Expr, where: str) -> Expr:
        if isinstance(e, Call):
            args = tuple(self.bind_nested(self.expr(a, where)) for a in e.args)
            if isinstance(e.op, Op):
                return self.legalize(e, args, where)
            return e if all(a is b for a, b in zip(args, e.args)) else e.replace(args=args)
        if isinstance(e, Tuple):
            fields = tuple(self.expr(f, where) for f in e.fields)
            return e if all(a is b for a, b in zip(fields, e.fields)) else Tuple(fields)
        if isinstance(e, TupleGetItem):
            tv = self.expr(e.tuple_value, where)
            return e if tv is e.tuple_value else TupleGetItem(tv, e.index)
        return e

    def legalize(self, call: Call, args: tuple, where: str) -> Expr:
        from ..ir import te

        op = call.op.op_def
        if op.legalize is None:
            return call if all(a is b for a, b in zip(args, call.args)) else Call(call.op, args, call.attrs)
        names = iter(_placeholder_names())
        flat_args: list[Expr] = []
        te_args: list = []
        holders: list = []

        def placeholder(value: Expr, t: TensorType):
            if not isinstance(t, TensorType) or t.shape is None:
                raise PassError(f"LegalizeOps: in {self.func_name}, binding {where}: op {op.name} has an argument "
                                f"of type {t!r}; only tensors of known rank can be legalized")
            ph = te.placeholder(t.shape, t.dtype, name=next(names))
            flat_args.append(self.bind_nested(value))
            holders.append(ph)
            return ph

        for a in args:
            if isinstance(a.type, TupleType):
                fields = a.fields if isinstance(a, Tuple) else [TupleGetItem(a, k) for k in range(len(a.type.fields))]
                te_args.append(tuple(placeholder(f, f.type) for f in fields))
            else:
                te_args.append(placeholder(a, a.type))
        try:
            out = op.legalize(te_args, dict(call.attrs))
        except (GraphTypeError, te.TEError) as err:
            raise PassError(f"LegalizeOps: in {self.func_name}, binding {where}: op {op.name} cannot be legalized: "
                            f"{err}") from err
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        want = len(call.type.fields) if isinstance(call.type, TupleType) else 1
        if len(outs) != want:
            raise PassError(f"LegalizeOps: op {op.name}'s legalization gives {len(outs)} tensor(s) but its type "
                            f"{call.type!r} has {want}")
        base = _program_base(op.name)
        prim = te.create_prim_func([*holders, *outs], name=base)
        name = self.add(prim, base)
        return Call(GlobalVar(name), tuple(flat_args), None, call.type)

    def add(self, prim: PrimFunc, base: str) -> str:
        """The name of ``prim`` in the module: an identical program legalized before, or a new unique name."""
        key = structural_hash(prim)
        for other, name in self.by_hash.get(key, []):
            if structural_equal(other, prim):
                return name
        name = _fresh_program_name(base, self.taken)
        self.by_hash.setdefault(key, []).append((prim, name))
        self.new_funcs[name] = prim.with_attr("global_symbol", name)
        return name


def _program_base(op_name: str) -> str:
    """The tensor program's name for the op ``op_name``, its digits kept: ``decode_q4`` -> ``decode_q4``,
    ``demo.negative`` -> ``demo_negative`` (a duplicate adds a number: ``add1``, or ``decode_q4_1``)."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", op_name)
    return base if base.isidentifier() else f"f_{base}"


def _fresh_program_name(base: str, taken: set[str]) -> str:
    """``base`` if free, else ``base1``, ``base2``, ... (``base_1``, ... when ``base`` ends in a digit)."""
    name, sep, k = base, "_" if base[-1].isdigit() else "", 1
    while name in taken:
        name = f"{base}{sep}{k}"
        k += 1
    taken.add(name)
    return name


def _placeholder_names():
    yield from string.ascii_uppercase
    k = 0
    while True:
        yield f"A{k}"
        k += 1


__all__ = ["LegalizeOps"]
