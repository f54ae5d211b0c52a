"""Helpers shared by the graph passes: variable uses, fresh names, rewriting a function's bindings."""
from __future__ import annotations

import re
from typing import Callable, Iterable

from ..ir.graph.expr import (
    Binding, BindingBlock, Call, Constant, Expr, Function, MatchCast, SeqExpr, Tuple, TupleGetItem, Var, VarBinding,
)


def used_vars(e: Expr) -> list[Var]:
    """The graph variables ``e`` reads, in order (repeats kept: one entry per use)."""
    out: list[Var] = []

    def walk(x) -> None:
        if isinstance(x, Var):
            out.append(x)
        elif isinstance(x, Call):
            for a in x.args:
                walk(a)
        elif isinstance(x, Tuple):
            for f in x.fields:
                walk(f)
        elif isinstance(x, TupleGetItem):
            walk(x.tuple_value)
        elif isinstance(x, SeqExpr):
            for b in x.blocks:
                for bd in b.bindings:
                    walk(bd.value)
            walk(x.body)

    walk(e)
    return out


def var_names(func: Function) -> set[str]:
    """Every variable name of a graph function (parameters and bound variables)."""
    names = {p.name for p in func.params}
    for block in func.body.blocks:
        names.update(b.var.name for b in block.bindings)
    return names


def fresh_name(base: str, taken: set[str]) -> str:
    """``base``, else ``base1``, ``base2``, ...: the first name not in ``taken`` (which it joins)."""
    name, k = base, 1
    while name in taken:
        name = f"{base}{k}"
        k += 1
    taken.add(name)
    return name


def op_base_name(name: str) -> str:
    """The name a generated tensor program takes after a function or op: ``matmul1`` -> ``matmul``."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", name)
    base = re.sub(r"\d+$", "", base) or base
    return base if base.isidentifier() else f"f_{base}"


def rewrite_bindings(func: Function, fn: Callable[[Binding, BindingBlock], Iterable[Binding]]) -> Function:
    """``func`` with each binding replaced by ``fn(binding, block)`` (zero or more bindings)."""
    blocks = []
    changed = False
    for block in func.body.blocks:
        new: list[Binding] = []
        for b in block.bindings:
            out = list(fn(b, block))
            if len(out) != 1 or out[0] is not b:
                changed = True
            new.extend(out)
        blocks.append(type(block)(tuple(new)))
    if not changed:
        return func
    return func.replace(body=SeqExpr(tuple(blocks), func.body.body))


def with_value(b: Binding, value: Expr) -> Binding:
    """The binding ``b`` with a new value (the same variable)."""
    if value is b.value:
        return b
    if isinstance(b, MatchCast):
        return b.replace(value=value)
    return VarBinding(b.var, value)


def is_value_leaf(e: Expr) -> bool:
    """A variable or a constant (what an argument in A-normal form is)."""
    return isinstance(e, (Var, Constant))


__all__ = ["used_vars", "var_names", "fresh_name", "op_base_name", "rewrite_bindings", "with_value",
           "is_value_leaf"]
