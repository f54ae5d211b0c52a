"""``StaticPlanBlockMemory``: plan the storage of each graph function's intermediate tensors ahead of time.

An intermediate is the result of a ``call_tir`` or ``call_dps_library`` binding inside a dataflow
block, bound to a dataflow variable that is read only as an argument of later calls (a value that
flows into an output, a tuple, a ``match_cast`` or an alias is not planned: it lives on after the
call). Its lifetime runs from its binding to its last use. Walking the bindings in order, a
tensor takes a storage freed by a tensor whose lifetime has ended: one of the same size when the
sizes are symbolic (provably equal expressions of size variables), the best fit when both sizes
are constants (the storage grows to the larger). Otherwise a new storage is made. A call never
writes into the storage of one of its own arguments.

The plan is recorded on the function as ``attrs["memory_plan"]``::

    {"storage_sizes": (size_0, size_1, ...),            # bytes: int, or an expression of size vars
     "tensors": {"lv": (storage_id, size_bytes), ...}}  # each planned binding variable, by name

Sizes are ``int`` or loop-level integer expressions of the function's size variables (``n * 512``);
the VM evaluates them once per call from the parameters' shapes and allocates each storage once.
Tensors not in ``tensors`` are allocated as usual. :func:`plan_summary` gives the bytes with and
without the plan for given sizes.

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         lv = bb.emit(wb.op.exp(x))
...         lv1 = bb.emit(wb.op.relu(lv))
...         lv2 = bb.emit(wb.op.exp(lv1))
...         gv = bb.emit_output(wb.op.relu(lv2))
...     bb.emit_func_output(gv)
>>> mod = wb.transform.LegalizeOps()(bb.get())
>>> "memory_plan" in mod["main"].attrs      # before
False
>>> print(StaticPlanBlockMemory()(mod)["main"].script())      # after: lv2 reuses lv's storage
@wb.function
def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
    wb.func_attr({"memory_plan": {"storage_sizes": (n * 16, n * 16), "tensors": {"lv": (0, n * 16), "lv1": (1, n * 16), "lv2": (0, n * 16)}}})
    with wb.dataflow():
        lv = wb.call_tir(Module.exp, (x,), out=wb.Tensor(("n", 4), "float32"))
        lv1 = wb.call_tir(Module.relu, (lv,), out=wb.Tensor(("n", 4), "float32"))
        lv2 = wb.call_tir(Module.exp, (lv1,), out=wb.Tensor(("n", 4), "float32"))
        gv = wb.output(wb.call_tir(Module.relu, (lv2,), out=wb.Tensor(("n", 4), "float32")))
    return gv
"""
from __future__ import annotations

from ..ir.arith import Analyzer
from ..ir.dtype import bits_of
from ..ir.expr import IntImm, PrimExpr, convert
from ..ir.function import IRModule
from ..ir.graph.expr import Call, DataflowBlock, DataflowVar, Function, VarBinding
from ..ir.graph.types import TensorType
from .graph_util import used_vars
from .pass_infra import Pass


class StaticPlanBlockMemory(Pass):
    """Record a storage plan for the intermediates of every graph function (see the module docstring)."""

    def transform(self, mod: IRModule) -> IRModule:
        functions = dict(mod.functions)
        for name, func in mod.graph_functions.items():
            plan = plan_function(func)
            attrs = {k: v for k, v in func.attrs.items() if k != "memory_plan"}
            if plan["tensors"]:
                attrs["memory_plan"] = plan
            functions[name] = func.replace(attrs=attrs)
        return mod.replace(functions=functions)


def tensor_bytes(t: TensorType):
    """The size of a tensor in bytes: an int, or an expression of size variables."""
    total: PrimExpr = IntImm((bits_of(t.dtype) + 7) // 8, "int32")
    for d in t.shape:
        total = total * convert(d)
    return _as_attr(Analyzer().simplify(total))


def _as_attr(e):
    return e.value if isinstance(e, IntImm) else e


def plan_function(func: Function) -> dict:
    """The memory plan of one graph function (the value stored as ``attrs["memory_plan"]``)."""
    order = [b for block in func.body.blocks for b in block.bindings]
    candidates = _candidates(func, order)
    last_use: dict[int, int] = {}
    for k, b in enumerate(order):
        for v in used_vars(b.value):
            last_use[id(v)] = k
    storages: list = []       # size per storage
    free: list[int] = []      # storage ids free now
    tensors: dict = {}
    releases: dict[int, list[int]] = {}
    analyzer = Analyzer()
    for k, b in enumerate(order):
        if id(b.var) in candidates:
            size = tensor_bytes(b.var.type)
            sid = _pick(free, storages, size, analyzer)
            if sid is None:
                sid = len(storages)
                storages.append(size)
            else:
                free.remove(sid)
                if isinstance(size, int) and size > storages[sid]:
                    storages[sid] = size
            tensors[b.var.name] = (sid, size)
            releases.setdefault(last_use.get(id(b.var), k), []).append(sid)
        free.extend(releases.pop(k, []))
    return {"storage_sizes": tuple(storages), "tensors": tensors}


def _candidates(func: Function, order: list) -> set[int]:
    """Dataflow variables bound to calls and read only as call arguments."""
    out: set[int] = set()
    for block in func.body.blocks:
        if not isinstance(block, DataflowBlock):
            continue
        for b in block.bindings:
            v = b.value
            if isinstance(b, VarBinding) and isinstance(b.var, DataflowVar) and _is_dps_call(v) and \
                    isinstance(b.var.type, TensorType) and b.var.type.shape is not None:
                out.add(id(b.var))
    for b in order:
        v = b.value
        escaping = [a for a in v.args if not isinstance(a, DataflowVar)] if _is_dps_call(v) else [v]
        for e in escaping:
            for u in used_vars(e):
                out.discard(id(u))
    for u in used_vars(func.body.body):
        out.discard(id(u))
    return out


def _is_dps_call(v) -> bool:
    return isinstance(v, Call) and (v.is_call_tir or v.is_call_dps_library)


def _pick(free: list[int], storages: list, size, analyzer: Analyzer):
    """A free storage for a tensor of ``size`` bytes: equal size first, else the best constant fit."""
    for sid in free:
        have = storages[sid]
        if isinstance(have, int) and isinstance(size, int):
            if have == size:
                return sid
        elif not isinstance(have, int) and not isinstance(size, int) and \
                analyzer.can_prove_equal(convert(have), convert(size)):
            return sid
    if not isinstance(size, int):
        return None
    ints = [sid for sid in free if isinstance(storages[sid], int)]
    if not ints:
        return None
    fits = [sid for sid in ints if storages[sid] >= size]
    if fits:
        return min(fits, key=lambda s: storages[s])
    return max(ints, key=lambda s: storages[s])


def plan_summary(func: Function, **sizes: int) -> dict:
    """``{"planned_bytes": ..., "unplanned_bytes": ..., "storages": ..., "tensors": ...}`` for size values
    (``plan_summary(f, n=32)``): the bytes the plan allocates against the sum of the planned tensors."""
    from ..ir.functor import collect_vars
    from ..ir.interpreter.binding import eval_int

    plan = func.attrs.get("memory_plan") or plan_function(func)

    def value(e) -> int:
        if isinstance(e, int):
            return e
        env = {v: sizes[v.name] for v in collect_vars(e) if v.name in sizes}
        out = eval_int(e, env)
        if out is None:
            missing = sorted({v.name for v in collect_vars(e)} - set(sizes))
            raise ValueError(f"plan_summary: give the size variable(s) {', '.join(missing)}")
        return out

    return {"planned_bytes": sum(value(s) for s in plan["storage_sizes"]),
            "unplanned_bytes": sum(value(size) for _, size in plan["tensors"].values()),
            "storages": len(plan["storage_sizes"]), "tensors": len(plan["tensors"])}


__all__ = ["StaticPlanBlockMemory", "plan_function", "plan_summary", "tensor_bytes"]
