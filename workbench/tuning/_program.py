"""Helpers shared by the measurement modules: find the tensor program behind a variant,
bind its symbolic sizes, evaluate integer expressions, and find which parameters it
reads and writes.

>>> from workbench import te
>>> import workbench as wb
>>> A = te.placeholder((4,), name="A")
>>> B = te.compute((4,), lambda i: A[i] + 1.0, name="B")
>>> f = wb.create_prim_func([A, B])
>>> prim_func_of(f) is f, accessed_params(f)
(True, ([0], [1]))
"""
from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np

from ..ir import expr as E
from ..ir.buffer import Buffer
from ..ir.function import IRModule, PrimFunc
from ..ir.functor import Visitor


class UnboundSizeError(ValueError):
    """A symbolic size (``n``) has no value: pass arrays (``args=``) or ``sizes=``."""

    def __init__(self, var: E.Var, where: str = ""):
        self.var = var
        super().__init__(
            f"the size `{var.name}` is symbolic and has no value{where}; pass the arrays "
            f"(args=[...]) or sizes={{'{var.name}': ...}}")


def prim_func_of(obj: Any) -> PrimFunc | None:
    """The PrimFunc behind a variant: a PrimFunc, an IRModule with one, a Schedule
    (``.func`` / ``.mod``), or a built function (``wb.build``'s result); None for a plain callable."""
    if isinstance(obj, PrimFunc):
        return obj
    if isinstance(obj, IRModule):
        prims = [f for f in obj.functions.values() if isinstance(f, PrimFunc)]
        if len(prims) != 1:
            raise ValueError(f"this IRModule holds {len(prims)} tensor programs; pass one of them "
                             f"(mod['name']) instead")
        return prims[0]
    fn = getattr(obj, "func", None)
    if isinstance(fn, PrimFunc):
        return fn
    fns = getattr(obj, "functions", None)  # a built module (LLVMModule)
    if isinstance(fns, dict) and len(fns) == 1:
        return prim_func_of(next(iter(fns.values())))
    mod = getattr(obj, "mod", None)
    if isinstance(mod, IRModule):
        return prim_func_of(mod)
    return None


def eval_int(e, env: Mapping[int, int]) -> int:
    """The value of an integer expression with variables taken from ``env`` (``id(var) -> int``).

    Raises ``UnboundSizeError`` naming the first variable without a value.
    """
    if isinstance(e, numbers.Integral):
        return int(e)
    if isinstance(e, E.IntImm):
        return e.value
    if isinstance(e, E.Var):
        if id(e) in env:
            return env[id(e)]
        raise UnboundSizeError(e)
    if isinstance(e, E.Cast):
        v = eval_int(e.value, env)
        return int(v)
    if isinstance(e, E.FloatImm):
        return int(e.value)
    if isinstance(e, E.Select) or (isinstance(e, E.Call) and e.op == "if_then_else"):
        c, t, f = (e.condition, e.true_value, e.false_value) if isinstance(e, E.Select) else e.args
        return eval_int(t, env) if eval_bool(c, env) else eval_int(f, env)
    if isinstance(e, E.Let):
        env2 = dict(env)
        env2[id(e.var)] = eval_int(e.value, env)
        return eval_int(e.body, env2)
    if isinstance(e, E.BinaryOp) and not isinstance(e, (E.CmpOp, E.LogicOp)):
        a, b = eval_int(e.a, env), eval_int(e.b, env)
        if isinstance(e, E.Add):
            return a + b
        if isinstance(e, E.Sub):
            return a - b
        if isinstance(e, E.Mul):
            return a * b
        if isinstance(e, E.FloorDiv):
            return a // b if b else 0
        if isinstance(e, E.FloorMod):
            return a % b if b else 0
        if isinstance(e, E.Div):
            return int(a / b) if b else 0
        if isinstance(e, E.Mod):
            return int(np.fmod(a, b)) if b else 0
        if isinstance(e, E.Min):
            return min(a, b)
        if isinstance(e, E.Max):
            return max(a, b)
    if isinstance(e, (E.CmpOp, E.LogicOp, E.Not)):
        return int(eval_bool(e, env))
    raise ValueError(f"cannot evaluate `{e}` to an integer (a {type(e).__name__})")


def eval_bool(e, env: Mapping[int, int]) -> bool:
    """The truth of an integer condition (comparisons, and/or/not) under ``env``."""
    if isinstance(e, E.IntImm):
        return bool(e.value)
    if isinstance(e, E.Not):
        return not eval_bool(e.a, env)
    if isinstance(e, E.And):
        return eval_bool(e.a, env) and eval_bool(e.b, env)
    if isinstance(e, E.Or):
        return eval_bool(e.a, env) or eval_bool(e.b, env)
    if isinstance(e, E.CmpOp):
        a, b = eval_int(e.a, env), eval_int(e.b, env)
        return {E.EQ: a == b, E.NE: a != b, E.LT: a < b, E.LE: a <= b, E.GT: a > b, E.GE: a >= b}[type(e)]
    return bool(eval_int(e, env))


def bind_sizes(func: PrimFunc, args: Sequence | None = None, sizes: Mapping | None = None) -> dict[int, int]:
    """``id(var) -> int`` for the function's symbolic sizes and scalar parameters.

    Values come from ``args`` (one per parameter: arrays bind the symbolic dimensions
    of their buffers, numbers bind scalar parameters) and from ``sizes`` (name or Var
    to int), which win.
    """
    env: dict[int, int] = {}
    if args is not None:
        if len(args) != len(func.params):
            names = ", ".join(_param_name(func, p) for p in func.params)
            raise TypeError(f"{func.name} takes {len(func.params)} argument(s) ({names}) but "
                            f"{len(args)} were given")
        for p, a in zip(func.params, args):
            buf = func.buffer_map.get(p)
            if buf is None:
                if isinstance(a, (numbers.Number, np.number)):
                    env[id(p)] = int(a) if not isinstance(a, (float, np.floating)) else a
                continue
            shape = np.shape(a)
            if len(shape) != len(buf.shape):
                raise ValueError(f"argument {buf.name} has {len(shape)} dimension(s) {tuple(shape)} but the "
                                 f"buffer has {len(buf.shape)}")
            for dim, n in zip(buf.shape, shape):
                if isinstance(dim, E.Var):
                    env.setdefault(id(dim), int(n))
    if sizes:
        by_name = {}
        for v in _size_vars(func):
            by_name.setdefault(v.name, v)
        for k, val in sizes.items():
            var = k if isinstance(k, E.Var) else by_name.get(k)
            if var is None:
                raise KeyError(f"sizes names {k!r}, which is not a size of {func.name} "
                               f"(its sizes: {', '.join(by_name) or 'none'})")
            env[id(var)] = int(val)
    return env


def _size_vars(func: PrimFunc) -> list[E.Var]:
    out: dict[int, E.Var] = {}
    for p in func.params:
        buf = func.buffer_map.get(p)
        if buf is None:
            out.setdefault(id(p), p)
            continue
        for d in buf.shape:
            if isinstance(d, E.Var):
                out.setdefault(id(d), d)
    return list(out.values())


def _param_name(func: PrimFunc, p) -> str:
    b = func.buffer_map.get(p)
    return b.name if b is not None else p.name


def buffer_shape(buf: Buffer, env: Mapping[int, int]) -> tuple[int, ...]:
    """The concrete shape of a buffer under ``env``."""
    try:
        return tuple(eval_int(d, env) for d in buf.shape)
    except UnboundSizeError as err:
        raise UnboundSizeError(err.var, f" (in the shape of buffer {buf.name})") from None


class _Access(Visitor):
    def __init__(self):
        self.loaded: dict[int, Buffer] = {}
        self.stored: dict[int, Buffer] = {}

    def visit_BufferLoad(self, e):
        self.loaded[id(e.buffer)] = e.buffer
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self.stored[id(s.buffer)] = s.buffer
        self.generic_visit(s)

    def visit_Buffer(self, b):  # shapes are not accesses
        pass


def accessed_params(func: PrimFunc) -> tuple[list[int], list[int]]:
    """Positions (in ``func.params``) of the buffer parameters the body reads, and of those it writes.

    A buffer is matched by identity, else by name (parameter names are unique).
    """
    acc = _Access()
    acc.visit(func.body)
    loaded_names = {b.name for b in acc.loaded.values()}
    stored_names = {b.name for b in acc.stored.values()}
    reads, writes = [], []
    for k, p in enumerate(func.params):
        buf = func.buffer_map.get(p)
        if buf is None:
            continue
        if id(buf) in acc.loaded or buf.name in loaded_names:
            reads.append(k)
        if id(buf) in acc.stored or buf.name in stored_names:
            writes.append(k)
    return reads, writes


__all__ = ["prim_func_of", "eval_int", "eval_bool", "bind_sizes", "buffer_shape", "accessed_params",
           "UnboundSizeError"]
