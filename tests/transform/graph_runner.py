"""A tiny interpreter of graph functions for the pass tests: walks the bindings, runs ``call_tir``
kernels (reference interpreter or LLVM) on numpy arrays in destination-passing style, numpy for
``call_dps_library`` and each op's numpy ``reference`` for op calls."""
from __future__ import annotations

import numpy as np

import workbench as wb
from workbench.ir.expr import Var as PrimVar
from workbench.ir.graph.expr import Call, Constant, Function, Op, Tuple, TupleGetItem, Var
from workbench.ir.graph.types import TensorType, TupleType
from workbench.ir.interpreter import evaluate
from workbench.ir.interpreter.binding import eval_int


class GraphRunner:
    def __init__(self, mod: wb.IRModule, backend: str = "interp"):
        self.mod = mod
        self.backend = backend
        self.kernels: dict = {}
        self.launches: list[str] = []

    def kernel(self, name: str):
        if name not in self.kernels:
            prim = self.mod[name]
            if self.backend == "llvm":
                self.kernels[name] = wb.build(prim, target="llvm -mcpu=znver3")
            else:
                self.kernels[name] = lambda *arrays, _p=prim: evaluate(_p, *arrays)
        return self.kernels[name]

    def run(self, fname: str, *args: np.ndarray):
        func: Function = self.mod[fname]
        env: dict = {}
        sizes: dict = {}
        for p, a in zip(func.params, args):
            env[id(p)] = a
            if isinstance(p.type, TensorType) and p.type.shape is not None:
                for d, n in zip(p.type.shape, a.shape):
                    if isinstance(d, PrimVar):
                        sizes[d] = n
        self.sizes = sizes
        for block in func.body.blocks:
            for b in block.bindings:
                env[id(b.var)] = self.value(b.value, env)
                if isinstance(b, wb.graph.MatchCast):
                    for d, n in zip(b.type.shape, env[id(b.var)].shape):
                        if isinstance(d, PrimVar):
                            sizes.setdefault(d, n)
        return self.value(func.body.body, env)

    def empty(self, t):
        if isinstance(t, TupleType):
            return [self.empty(f) for f in t.fields]
        shape = tuple(eval_int(d, self.sizes) for d in t.shape)
        return np.zeros(shape, t.dtype)

    def value(self, e, env):
        if isinstance(e, Var):
            return env[id(e)]
        if isinstance(e, Constant):
            return np.array(e.data)
        if isinstance(e, Tuple):
            return tuple(self.value(f, env) for f in e.fields)
        if isinstance(e, TupleGetItem):
            return self.value(e.tuple_value, env)[e.index]
        assert isinstance(e, Call)
        args = [self.value(a, env) for a in e.args]
        if isinstance(e.op, Op):
            return e.op.op_def.reference(args, dict(e.attrs))
        outs = self.empty(e.type)
        flat = outs if isinstance(outs, list) else [outs]
        if e.is_call_tir:
            self.launches.append(e.op.name)
            self.kernel(e.op.name)(*args, *flat)
        else:
            fn = getattr(np, e.op.name.split(".", 1)[1])
            flat[0][...] = fn(*args)
        return tuple(outs) if isinstance(outs, list) else outs


def reference(mod: wb.IRModule, fname: str, *args):
    """The function run with op references only (the module before legalization)."""
    return GraphRunner(mod).run(fname, *args)
