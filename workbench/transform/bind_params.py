"""``BindParams(func_name, params)``: replace parameters of a graph function by constants.

``params`` maps parameter names (or the parameter ``Var`` s) to arrays. Each array must have the
parameter's dtype and rank, and its constant dimensions; a symbolic dimension (``n``) takes the
array's size, consistently across the bound parameters, and that size replaces ``n`` everywhere
in the function (types of the remaining parameters and of every value included). The bound
parameters leave the signature; the others keep their order.

>>> import numpy as np
>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor((2,), "float32"))
>>> w = wb.graph.Var("w", wb.Tensor((2,), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x, w]):
...     with bb.dataflow():
...         gv = bb.emit_output(wb.op.add(x, w))
...     bb.emit_func_output(gv)
>>> mod = bb.get()
>>> print(mod["main"].script())      # before
@wb.function
def main(x: wb.Tensor((2,), "float32"),
         w: wb.Tensor((2,), "float32")) -> wb.Tensor((2,), "float32"):
    with wb.dataflow():
        gv = wb.output(wb.op.add(x, w))
    return gv
>>> print(BindParams("main", {"w": np.array([1, 2], "float32")})(mod)["main"].script())      # after
@wb.function
def main(x: wb.Tensor((2,), "float32")) -> wb.Tensor((2,), "float32"):
    with wb.dataflow():
        gv = wb.output(wb.op.add(x, wb.const([1.0, 2.0], "float32")))
    return gv
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..ir.expr import IntImm, Var as PrimVar
from ..ir.function import IRModule
from ..ir.functor import Mutator, substitute
from ..ir.graph.expr import Constant, Function, Var
from ..ir.graph.ops._common import const_value
from ..ir.graph.types import TensorType
from .pass_infra import Pass, PassError


class BindParams(Pass):
    """Replace the named parameters of graph function ``func_name`` by constant arrays."""

    def __init__(self, func_name: str, params: Mapping):
        if not isinstance(params, Mapping):
            raise PassError(f"BindParams: params must be a dict of parameter name (or Var) -> array, got "
                            f"{type(params).__name__}")
        self.func_name = func_name
        self.params = dict(params)

    def __repr__(self) -> str:
        return f"BindParams({self.func_name!r}, [{', '.join(_key_name(k) for k in self.params)}])"

    def transform(self, mod: IRModule) -> IRModule:
        func = mod.functions.get(self.func_name)
        if not isinstance(func, Function):
            have = ", ".join(mod.graph_functions) or "none"
            raise PassError(f"BindParams: the module has no graph function {self.func_name!r} (graph functions: "
                            f"{have})")
        values = {id(p): (p, _as_array(self.func_name, p, v)) for p, v in self._resolve(func).items()}
        sizes: dict = {}
        for p, arr in values.values():
            _match(self.func_name, p, arr, sizes)
        binder = _Bind({k: Constant(arr) for k, (_, arr) in values.items()}, sizes)
        params = tuple(binder.visit(p) for p in func.params if id(p) not in values)
        new = func.replace(params=params, body=binder.visit(func.body), ret_type=binder.visit(func.ret_type))
        return mod.with_function(self.func_name, new)

    def _resolve(self, func: Function) -> dict:
        by_name = {p.name: p for p in func.params}
        out = {}
        for key, value in self.params.items():
            if isinstance(key, Var):
                if not any(key is p for p in func.params):
                    raise PassError(f"BindParams: {key.name} is not a parameter of {self.func_name} "
                                    f"(parameters: {', '.join(by_name)})")
                out[key] = value
            elif isinstance(key, str) and key in by_name:
                out[by_name[key]] = value
            else:
                raise PassError(f"BindParams: {self.func_name} has no parameter {key!r} "
                                f"(parameters: {', '.join(by_name)})")
        return out


def _key_name(k) -> str:
    return k.name if isinstance(k, Var) else str(k)


def _as_array(func_name: str, p: Var, v) -> np.ndarray:
    arr = np.asarray(v)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise PassError(f"BindParams: the value for {p.name} of {func_name} must be a numeric array, got "
                        f"{type(v).__name__}")
    return arr


def _match(func_name: str, p: Var, arr: np.ndarray, sizes: dict) -> None:
    t = p.type
    if not isinstance(t, TensorType):
        raise PassError(f"BindParams: parameter {p.name} of {func_name} has type {t!r}; only tensors can be bound")
    if arr.dtype.name != t.dtype:
        raise PassError(f"BindParams: parameter {p.name} of {func_name} is {t!r} but the array has dtype "
                        f"{arr.dtype.name}")
    if t.shape is None:
        return
    if arr.ndim != len(t.shape):
        raise PassError(f"BindParams: parameter {p.name} of {func_name} is {t!r} but the array has shape "
                        f"{arr.shape}")
    for d, actual in zip(t.shape, arr.shape):
        if isinstance(d, PrimVar):
            if sizes.setdefault(d, actual) != actual:
                raise PassError(f"BindParams: parameter {p.name} of {func_name} gives {d.name} = {actual}, but an "
                                f"earlier parameter gave {sizes[d]}")
    for k, (d, actual) in enumerate(zip(t.shape, arr.shape)):
        v = const_value(substitute(d, sizes))
        if v is not None and v != actual:
            raise PassError(f"BindParams: parameter {p.name} of {func_name} is {t!r} but the array has shape "
                            f"{arr.shape} (dimension {k} should be {v})")


class _Bind(Mutator):
    """Graph parameters -> constants, size variables -> their sizes (graph Vars rebuilt once each)."""

    def __init__(self, consts: dict, sizes: dict):
        self.consts = consts
        self.sizes = {k: IntImm(v, k.dtype) for k, v in sizes.items()}
        self.memo: dict[int, Var] = {}

    def visit_Var(self, v):
        if isinstance(v, Var):
            return self.graph_var(v)
        return self.sizes.get(v, v)

    def visit_DataflowVar(self, v):
        return self.graph_var(v)

    def graph_var(self, v: Var):
        if id(v) in self.consts:
            return self.consts[id(v)]
        if id(v) not in self.memo:
            t = self.visit(v.type)
            self.memo[id(v)] = v if t is v.type else v.replace(type=t)
        return self.memo[id(v)]


__all__ = ["BindParams"]
