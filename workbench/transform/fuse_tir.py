"""``FuseTIR``: merge each fusion group (``attrs["fusion_groups"]`` from ``FuseOps``) into one tensor
program and call it once.

For a group, the new program's parameters are the group's inputs (values from outside the
group, in order of first use) then its outputs (member results used after the group or leaving
the dataflow block), in destination-passing style. The members' bodies follow one another; a
result used only inside the group becomes a local buffer (``wb.alloc_buffer``), as do the
members' own intermediates. Size variables are the graph function's (``n`` stays ``n``); loop
and block variables are fresh, and repeated block names get a suffix (``add``, ``add_1``).
The bindings of the group are replaced by one ``call_tir`` at the place of the last one (a
group with several outputs binds a tuple, then each output takes its field). Identical fused
programs are added once; member programs no longer called are removed.

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         lv = bb.emit(wb.op.exp(x))
...         gv = bb.emit_output(wb.op.relu(lv))
...     bb.emit_func_output(gv)
>>> mod = wb.transform.FuseOps()(wb.transform.LegalizeOps()(bb.get()))
>>> print(mod["main"].script())      # before
@wb.function
def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
    wb.func_attr({"fusion_groups": {"fused_exp_relu": ("lv", "gv")}})
    with wb.dataflow():
        lv = wb.call_tir(Module.exp, (x,), out=wb.Tensor(("n", 4), "float32"))
        gv = wb.output(wb.call_tir(Module.relu, (lv,), out=wb.Tensor(("n", 4), "float32")))
    return gv
>>> print(FuseTIR()(mod).script())      # after
@wb.ir_module
class Module:
    @wb.function
    def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
        with wb.dataflow():
            gv = wb.output(wb.call_tir(Module.fused_exp_relu, (x,), out=wb.Tensor(("n", 4), "float32")))
        return gv
<BLANKLINE>
    @wb.prim_func
    def fused_exp_relu(x: wb.Buffer(("n", 4), "float32"), relu: wb.Buffer(("n", 4), "float32")):
        n = wb.int32()
        exp = wb.alloc_buffer((n, 4), "float32")
        for i0, i1 in wb.grid(n, 4):
            with wb.block("exp"):
                v_i0, v_i1 = wb.axis.remap("SS", [i0, i1])
                wb.reads(x[v_i0, v_i1])
                wb.writes(exp[v_i0, v_i1])
                exp[v_i0, v_i1] = wb.exp(x[v_i0, v_i1])
        for i0, i1 in wb.grid(n, 4):
            with wb.block("relu"):
                v_i0, v_i1 = wb.axis.remap("SS", [i0, i1])
                wb.reads(exp[v_i0, v_i1])
                wb.writes(relu[v_i0, v_i1])
                relu[v_i0, v_i1] = wb.max(exp[v_i0, v_i1], 0.0)
"""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.expr import IntImm, Var as PrimVar
from ..ir.function import IRModule, PrimFunc
from ..ir.functor import Mutator, Visitor, substitute
from ..ir.graph.expr import (
    Call, DataflowBlock, DataflowVar, Expr, Function, GlobalVar, SeqExpr, Tuple, TupleGetItem, Var,
    VarBinding,
)
from ..ir.graph.types import TensorType, TupleType
from ..ir.stmt import Block, BlockRealize, For, IterVar, LetStmt, seq
from ..ir.structural import structural_equal, structural_hash
from .dead_code_elimination import called_prim_funcs
from .graph_util import fresh_name, is_value_leaf, used_vars, var_names
from .pass_infra import Pass, PassError


class FuseTIR(Pass):
    """Merge each recorded fusion group into one tensor program (see the module docstring)."""

    def transform(self, mod: IRModule) -> IRModule:
        functions = dict(mod.functions)
        state = _FusedFuncs(set(mod.functions))
        members: set[str] = set()
        for name, func in mod.graph_functions.items():
            groups = func.attrs.get("fusion_groups")
            if not groups:
                continue
            attrs = {k: v for k, v in func.attrs.items() if k != "fusion_groups"}
            functions[name] = _fuse_function(func, dict(groups), mod, state, members).replace(attrs=attrs)
        functions.update(state.new_funcs)
        called = {c for f in functions.values() if isinstance(f, Function) for c in called_prim_funcs(f)}
        for m in members - called:
            functions.pop(m, None)
        return mod.replace(functions=functions)


class _FusedFuncs:
    """The fused programs made so far (identical ones are shared)."""

    def __init__(self, taken: set[str]):
        self.taken = taken
        self.new_funcs: dict[str, PrimFunc] = {}
        self.by_hash: dict[int, list[tuple[PrimFunc, str]]] = {}

    def add(self, prim: PrimFunc, base: str) -> str:
        key = structural_hash(prim)
        for other, name in self.by_hash.get(key, []):
            if structural_equal(other, prim):
                return name
        name = fresh_name(base, self.taken)
        self.by_hash.setdefault(key, []).append((prim, name))
        self.new_funcs[name] = prim.with_attr("global_symbol", name)
        return name


def _fuse_function(func: Function, groups: dict, mod: IRModule, state: _FusedFuncs, members: set) -> Function:
    where = {}
    for bi, block in enumerate(func.body.blocks):
        for k, b in enumerate(block.bindings):
            where[b.var.name] = (bi, k)
    taken_names = var_names(func)
    replace: dict[tuple[int, int], list] = {}
    for gname, names in groups.items():
        bindings = _group_bindings(func, gname, names, where, mod)
        members.update(b.value.op.name for b in bindings)
        inputs, outputs = _interface(func, bindings)
        prim = _merge(bindings, inputs, outputs, mod)
        name = state.add(prim, gname)
        positions = [where[b.var.name] for b in bindings]
        for pos in positions:
            replace[pos] = []
        replace[positions[-1]] = _call_bindings(name, inputs, outputs, taken_names)
    blocks = []
    for bi, block in enumerate(func.body.blocks):
        new = []
        for k, b in enumerate(block.bindings):
            new.extend(replace.get((bi, k), [b]))
        blocks.append(type(block)(tuple(new)))
    return func.replace(body=SeqExpr(tuple(blocks), func.body.body))


def _group_bindings(func: Function, gname: str, names, where: dict, mod: IRModule):
    bindings = []
    block_index = None
    for n in names:
        if n not in where:
            raise PassError(f"FuseTIR: fusion group {gname} of {func.name} names {n!r}, which no binding defines")
        bi, k = where[n]
        block = func.body.blocks[bi]
        b = block.bindings[k]
        v = b.value
        if not isinstance(block, DataflowBlock) or not isinstance(b, VarBinding) or not isinstance(v, Call) or \
                not v.is_call_tir or not all(is_value_leaf(a) for a in v.args):
            raise PassError(f"FuseTIR: fusion group {gname} of {func.name} names {n!r}, which is not a call_tir "
                            f"of variables and constants inside a dataflow block")
        if not isinstance(mod.functions.get(v.op.name), PrimFunc):
            raise PassError(f"FuseTIR: binding {n!r} of {func.name} calls {v.op.name}, which is not a tensor "
                            f"program of the module")
        if block_index not in (None, bi):
            raise PassError(f"FuseTIR: fusion group {gname} of {func.name} spans two dataflow blocks")
        block_index = bi
        bindings.append(b)
    bindings.sort(key=lambda b: where[b.var.name])
    return bindings


def _interface(func: Function, bindings: list) -> tuple[list[Expr], list[Var]]:
    """The group's inputs (values from outside, in order of first use) and outputs (results used outside)."""
    member_vars = {id(b.var) for b in bindings}
    member_bindings = {id(b) for b in bindings}
    inputs: list[Expr] = []
    seen: set[int] = set()
    for b in bindings:
        for a in b.value.args:
            if id(a) not in member_vars and id(a) not in seen:
                seen.add(id(a))
                inputs.append(a)
    used_outside: set[int] = {id(v) for v in used_vars(func.body.body)}
    for block in func.body.blocks:
        for b in block.bindings:
            if id(b) not in member_bindings:
                used_outside.update(id(v) for v in used_vars(b.value))
    outputs = [b.var for b in bindings if not isinstance(b.var, DataflowVar) or id(b.var) in used_outside]
    return inputs, outputs


def _fields(t) -> list[TensorType]:
    return list(t.fields) if isinstance(t, TupleType) else [t]


def _call_bindings(name: str, inputs: list, outputs: list[Var], taken: set[str]) -> list:
    if len(outputs) == 1:
        out = outputs[0]
        return [VarBinding(out, Call(GlobalVar(name), tuple(inputs), None, out.type))]
    flat = [t for v in outputs for t in _fields(v.type)]
    tmp = DataflowVar(fresh_name("lv", taken), TupleType(tuple(flat)))
    result = [VarBinding(tmp, Call(GlobalVar(name), tuple(inputs), None, tmp.type))]
    k = 0
    for v in outputs:
        if isinstance(v.type, TupleType):
            m = len(v.type.fields)
            result.append(VarBinding(v, Tuple(tuple(TupleGetItem(tmp, k + j) for j in range(m)))))
            k += m
        else:
            result.append(VarBinding(v, TupleGetItem(tmp, k)))
            k += 1
    return result


# -- merging tensor programs -----------------------------------------------------------------------

class _Names:
    def __init__(self):
        self.taken: set[str] = set()

    def take(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name = f"{base}_{k}"
            k += 1
        self.taken.add(name)
        return name


def _merge(bindings: list, inputs: list, outputs: list[Var], mod: IRModule) -> PrimFunc:
    names = _Names()
    value_bufs: dict[int, list[Buffer]] = {}
    params: list[Buffer] = []
    for k, v in enumerate(inputs):
        t = v.type
        name = v.name if isinstance(v, Var) and v.name.isidentifier() else f"c{k}"
        buf = Buffer(names.take(name), t.shape, t.dtype)
        value_bufs[id(v)] = [buf]
        params.append(buf)
    output_ids = {id(v) for v in outputs}
    out_params: dict[int, list[Buffer]] = {}
    allocs: list[Buffer] = []
    bodies = []
    block_names = _Names()
    for b in bindings:
        call = b.value
        prim = _renew(mod[call.op.name])
        bufs = prim.buffers
        nin = len(call.args)
        out_types = _fields(b.var.type)
        if len(bufs) != nin + len(out_types):
            raise PassError(f"FuseTIR: {call.op.name} has {len(bufs)} buffer parameters but binding {b.var.name} "
                            f"passes {nin} argument(s) and expects {len(out_types)} output(s)")
        vmap: dict = {}
        for buf, t in zip(bufs, [a.type for a in call.args] + out_types):
            _bind_dims(buf, t, vmap)
        bmap: dict = {}
        for buf, a in zip(bufs[:nin], call.args):
            bmap[buf] = value_bufs[id(a)][0]
        mine = []
        for buf, t in zip(bufs[nin:], out_types):
            new = Buffer(names.take(buf.name), t.shape, t.dtype)
            bmap[buf] = new
            mine.append(new)
        value_bufs[id(b.var)] = mine
        if id(b.var) in output_ids:
            out_params[id(b.var)] = mine
        else:
            allocs.extend(mine)
        root = prim.body.block if isinstance(prim.body, BlockRealize) else None
        body = root.body if root is not None and root.name == "root" else prim.body
        local = list(root.alloc_buffers) if root is not None and root.name == "root" else []
        for buf in local + _inner_buffers(body, bmap):
            bmap[buf] = buf.replace(name=names.take(buf.name), shape=tuple(substitute(d, vmap) for d in buf.shape))
        allocs.extend(bmap[buf] for buf in local)
        bodies.append(_RenameBlocks(block_names).visit(substitute(body, vmap, bmap)))
    params += [buf for v in outputs for buf in out_params[id(v)]]
    handles = [PrimVar(buf.name, "handle") for buf in params]
    root = Block("root", (), (), (), seq(*bodies), None, tuple(allocs))
    return PrimFunc(tuple(handles), dict(zip(handles, params)), BlockRealize((), IntImm(1, "bool"), root),
                    {"global_symbol": "main"})


def _bind_dims(buf: Buffer, t, vmap: dict) -> None:
    """Map the program's size variables to the graph's dimensions (``n`` of the program -> ``n`` of the graph)."""
    if not isinstance(t, TensorType) or t.shape is None or len(t.shape) != len(buf.shape):
        raise PassError(f"FuseTIR: buffer {buf.name} {buf.shape} does not match the graph type {t!r}")
    for d, g in zip(buf.shape, t.shape):
        if isinstance(d, PrimVar) and d not in vmap:
            vmap[d] = g


def _inner_buffers(body, known: dict) -> list[Buffer]:
    """Buffers allocated by blocks below the root (they need their shapes' size variables mapped too)."""
    found: list[Buffer] = []

    class V(Visitor):
        def visit_Block(self, b: Block):
            found.extend(x for x in b.alloc_buffers if x not in known)
            self.generic_visit(b)

    V().visit(body)
    return found


def _renew(prim: PrimFunc) -> PrimFunc:
    """``prim`` with fresh loop, block and let variables (a program may be merged twice into one)."""
    defined: list[PrimVar] = []

    class V(Visitor):
        def visit_For(self, f: For):
            defined.append(f.loop_var)
            self.generic_visit(f)

        def visit_IterVar(self, iv: IterVar):
            defined.append(iv.var)
            self.generic_visit(iv)

        def visit_LetStmt(self, s: LetStmt):
            defined.append(s.var)
            self.generic_visit(s)

    V().visit(prim.body)
    return prim.replace(body=substitute(prim.body, {v: PrimVar(v.name, v.dtype) for v in defined}))


class _RenameBlocks(Mutator):
    def __init__(self, names: _Names):
        self.names = names

    def visit_Block(self, b: Block):
        b = self.generic_visit(b)
        if b.name == "root":
            return b
        name = self.names.take(b.name)
        return b if name == b.name else b.replace(name=name)


__all__ = ["FuseTIR"]
