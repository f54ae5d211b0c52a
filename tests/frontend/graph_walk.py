"""A numpy walk of a graph function for the frontend tests: each op call through its registered numpy
``reference``, each call_tir through the loop-level interpreter. Independent of the passes and the VM."""
from __future__ import annotations

import numpy as np

from workbench.ir.arith import Analyzer
from workbench.ir.expr import IntImm, PrimExpr, Var as SizeVar
from workbench.ir.functor import substitute
from workbench.ir.graph.expr import (Call, Constant, MatchCast, Op, Tuple, TupleGetItem, Var)
from workbench.ir.graph.types import TensorType
from workbench.ir.interpreter import evaluate


def run_graph(mod, name: str, *args: np.ndarray):
    """The result of graph function ``name`` of ``mod`` on numpy ``args``."""
    func = mod[name]
    env: dict = {}
    sizes: dict = {}
    for p, a in zip(func.params, args, strict=True):
        _bind_sizes(p.type, a, sizes)
        env[p] = a
    for block in func.body.blocks:
        for b in block.bindings:
            value = _eval(mod, b.value, env, sizes)
            if isinstance(b, MatchCast):
                _bind_sizes(b.type, value, sizes)
            env[b.var] = value
    return _eval(mod, func.body.body, env, sizes)


def _bind_sizes(t, array, sizes: dict) -> None:
    if isinstance(t, TensorType) and t.shape is not None:
        for d, n in zip(t.shape, np.shape(array)):
            if isinstance(d, SizeVar):
                assert sizes.setdefault(d, n) == n, (d, sizes[d], n)


def _int(e, sizes: dict) -> int:
    v = Analyzer().simplify(substitute(e, {k: IntImm(n, k.dtype) for k, n in sizes.items()}))
    assert isinstance(v, IntImm), v
    return v.value


def _attr(v, sizes: dict):
    if isinstance(v, PrimExpr):
        return _int(v, sizes)
    if isinstance(v, tuple):
        return tuple(_attr(x, sizes) for x in v)
    return v


def _eval(mod, e, env: dict, sizes: dict):
    if isinstance(e, Var):
        return env[e]
    if isinstance(e, Constant):
        return e.data
    if isinstance(e, Tuple):
        return tuple(_eval(mod, f, env, sizes) for f in e.fields)
    if isinstance(e, TupleGetItem):
        return _eval(mod, e.tuple_value, env, sizes)[e.index]
    assert isinstance(e, Call), type(e)
    args = [_eval(mod, a, env, sizes) for a in e.args]
    if isinstance(e.op, Op):
        attrs = {k: _attr(v, sizes) for k, v in e.attrs.items()}
        return e.op.op_def.reference(args, attrs)
    assert e.is_call_tir, e.op
    out = np.zeros([_int(d, sizes) for d in e.type.shape], e.type.dtype)
    evaluate(mod[e.op.name], *args, out)
    return out
