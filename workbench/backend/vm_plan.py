"""Read (and check) the memory plan ``StaticPlanBlockMemory`` records on a graph function.

``func.attrs["memory_plan"] = {"storage_sizes": (bytes, ...), "tensors": {"lv": (storage_id, bytes)}}``.
The VM gives each planned binding a view of its storage instead of a fresh array. A wrong
plan would make two live tensors share memory and silently corrupt results, so the plan
is checked first: each planned name is one ``call_tir``/``call_dps_library`` binding of a
tensor, read only as a direct argument of later calls (it never escapes into a tuple, an
alias, a ``match_cast`` or the result), and tensors sharing a storage have disjoint
lifetimes (from the binding to the last use, both included, so a call never writes into
the storage of one of its own arguments). A plan that fails is refused with the reason
(re-run ``StaticPlanBlockMemory`` after the passes that change the function).

>>> from workbench.ir.graph import Function, Var
>>> import workbench as wb
>>> x = Var("x", wb.Tensor((4,), "float32"))
>>> storage_assignment(Function([x], x), "main")
([], {})
"""
from __future__ import annotations

from ..ir.graph.expr import Call, Expr, Function, Tuple, TupleGetItem, Var, VarBinding
from ..ir.graph.types import TensorType
from .vm_compile import VMError


def storage_assignment(func: Function, fname: str) -> tuple[list, dict[int, int]]:
    """``(storage_sizes, {id(binding var): storage id})`` of ``func``'s memory plan; ``([], {})`` when there is
    none. A plan that is malformed or unsafe is a :class:`VMError`."""
    plan = func.attrs.get("memory_plan")
    if not plan:
        return [], {}
    where = f"{fname}: the memory plan (attrs['memory_plan'])"
    sizes, tensors = _parts(plan, where)
    bindings = [b for block in func.body.blocks for b in block.bindings]
    planned = _planned_vars(bindings, tensors, len(sizes), where)
    lifetimes = _lifetimes(bindings, func.body.body, planned, where)
    _check_disjoint(planned, lifetimes, where)
    return list(sizes), {id(var): sid for var, sid in planned.values()}


def _parts(plan, where: str) -> tuple[tuple, dict]:
    sizes, tensors = (plan.get("storage_sizes"), plan.get("tensors")) if hasattr(plan, "get") else (None, None)
    if not isinstance(sizes, tuple) or not hasattr(tensors, "items"):
        raise VMError(f"{where} must be {{'storage_sizes': (bytes, ...), 'tensors': {{name: (storage, bytes)}}}}, "
                      f"got {plan!r}")
    return sizes, dict(tensors.items())


def _planned_vars(bindings: list, tensors: dict, n_storages: int, where: str) -> dict[str, tuple[Var, int]]:
    """Planned name -> (its binding's Var, storage id)."""
    by_name: dict[str, list] = {}
    for b in bindings:
        by_name.setdefault(b.var.name, []).append(b)
    out = {}
    for name, entry in tensors.items():
        sid = entry[0] if isinstance(entry, tuple) and entry else None
        if not isinstance(sid, int) or not 0 <= sid < n_storages:
            raise VMError(f"{where} puts {name} in storage {sid!r}, but there are {n_storages} storage(s)")
        found = by_name.get(name, [])
        if len(found) != 1:
            raise VMError(f"{where} names {name}, which is bound {len(found)} time(s) in the function; a planned "
                          f"tensor is one binding (re-run StaticPlanBlockMemory after the passes that change it)")
        b = found[0]
        if not (isinstance(b, VarBinding) and _is_dps_call(b.value) and isinstance(b.var.type, TensorType)):
            raise VMError(f"{where} names {name}, which is not bound to a call_tir/call_dps_library of one tensor")
        out[name] = (b.var, sid)
    return out


def _is_dps_call(v) -> bool:
    return isinstance(v, Call) and (v.is_call_tir or v.is_call_dps_library)


def _lifetimes(bindings: list, result: Expr, planned: dict, where: str) -> dict[int, tuple[int, int]]:
    """``id(var) -> (binding index, last use index)`` of each planned var; refuses a planned var that escapes."""
    ids = {id(var): name for name, (var, _) in planned.items()}
    span: dict[int, list] = {}

    def visit(e, k: int, user: str, direct: bool) -> None:
        if isinstance(e, Var):
            if id(e) in ids:
                if not direct:
                    raise VMError(f"{where} plans {ids[id(e)]}, but {user} uses it other than as a direct "
                                  f"argument of a call, so it would outlive its storage")
                span[id(e)][1] = k
        elif isinstance(e, Call):
            for a in e.args:
                visit(a, k, user, _is_dps_call(e))
        elif isinstance(e, Tuple):
            for f in e.fields:
                visit(f, k, user, False)
        elif isinstance(e, TupleGetItem):
            visit(e.tuple_value, k, user, False)

    for k, b in enumerate(bindings):
        visit(b.value, k, f"the binding of {b.var.name}", False)
        if id(b.var) in ids:
            span[id(b.var)] = [k, k]
    visit(result, len(bindings), "the function's result", False)
    return {i: (s[0], s[1]) for i, s in span.items()}


def _check_disjoint(planned: dict, lifetimes: dict, where: str) -> None:
    by_storage: dict[int, list] = {}
    for name, (var, sid) in planned.items():
        first, last = lifetimes[id(var)]
        by_storage.setdefault(sid, []).append((first, last, name))
    for sid, spans in by_storage.items():
        spans.sort()
        for (f1, l1, n1), (f2, _, n2) in zip(spans, spans[1:]):
            if f2 <= l1:
                raise VMError(f"{where} puts {n1} and {n2} in storage {sid}, but {n1} is still used at binding {l1} "
                              f"when {n2} is made at binding {f2}")


__all__ = ["storage_assignment"]
