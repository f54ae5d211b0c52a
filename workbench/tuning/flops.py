"""FLOP and byte counts derived from the IR, never typed in by hand.

``count_flops(func)`` walks the program (scheduled or not) and multiplies each
statement's floating-point operations by how often it runs (the trip counts of the
loops around it; symbolic extents are bound from the arrays or ``sizes=``).

The convention, per floating-point result (vector operations count once per lane):

- ``+ - * /``, ``min``, ``max``, a comparison of floats: **1**
- ``fma(a, b, c)``: **2** (a multiply and an add)
- every other math intrinsic (``exp``, ``log``, ``sqrt``, ``tanh``, ``erf``, ``pow``,
  ``abs``, ...): **1** each, although it costs many instructions; a FLOP count
  measures the work of the algorithm, not of one implementation of ``exp``
- loads, stores, casts, ``Select`` / ``if_then_else`` (a choice, not arithmetic),
  integer index arithmetic and external calls: **0**
- a reduction's ``init`` runs once per spatial point (not per reduce iteration)
- an ``if`` counts its larger branch (a guard usually holds); a block predicate
  (from a split that does not divide) trims the count to the block's iteration domain

So matmul is ``2*M*N*K`` (a multiply and an add per ``k``), conv2d
``2*N*K*OH*OW*C*R*S`` (padding is a copy: 0), and softmax over rows of ``D``
elements ``5*rows*D`` (per element: a max, a subtract, an exp, an add, a divide).

``count_bytes(func)`` is the compulsory traffic: the size of every buffer parameter
the program reads or writes, counted once each (an output that is also read, as the
accumulator of a reduction, counts once). Intermediate buffers are not counted:
this is the minimum a perfect cache would move, which is what the roofline uses.

>>> from workbench import te
>>> import workbench as wb
>>> A = te.placeholder((64, 32), name="A"); B = te.placeholder((32, 16), name="B")
>>> k = te.reduce_axis(32, name="k")
>>> C = te.compute((64, 16), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
>>> mm = wb.create_prim_func([A, B, C])
>>> count_flops(mm) == 2 * 64 * 16 * 32, count_bytes(mm) == 4 * (64 * 32 + 32 * 16 + 64 * 16)
(True, True)
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..ir import expr as E
from ..ir import stmt as S
from ..ir.dtype import bits_of, element_of, is_float, lanes_of, to_numpy
from ..ir.function import PrimFunc
from ._program import UnboundSizeError, accessed_params, bind_sizes, buffer_shape, eval_bool, eval_int, prim_func_of

#: intrinsics that are a choice or an opaque call, not arithmetic
ZERO_COST_CALLS = frozenset({"if_then_else", "call_extern", "isnan", "isinf", "isfinite"})

#: loops up to this trip count are enumerated when the body's cost depends on the loop variable
ENUMERATE_LIMIT = 4096


def expr_flops(e) -> int:
    """Floating-point operations of one evaluation of an expression (see the module doc).

    >>> from workbench.ir import Var, FloatImm, call
    >>> x = Var("x", "float32")
    >>> expr_flops(call("exp", x - 1.0) * x), expr_flops(call("fma", x, x, x))
    (3, 2)
    """
    if not isinstance(e, E.PrimExpr):
        return 0
    t = type(e)
    if t in (E.Var, E.IntImm, E.FloatImm, E.StringImm):
        return 0
    if isinstance(e, E.BufferLoad):
        return sum(expr_flops(i) for i in e.indices)
    if isinstance(e, E.CmpOp):
        own = lanes_of(e.a.dtype) if is_float(e.a.dtype) else 0
        return own + expr_flops(e.a) + expr_flops(e.b)
    if isinstance(e, E.BinaryOp):  # arithmetic, logic
        own = lanes_of(e.dtype) if is_float(e.dtype) else 0
        return own + expr_flops(e.a) + expr_flops(e.b)
    if isinstance(e, E.Call):
        if e.op == "if_then_else":
            c, a, b = e.args
            return expr_flops(c) + max(expr_flops(a), expr_flops(b))
        args = sum(expr_flops(a) for a in e.args)
        if e.op in ZERO_COST_CALLS or not is_float(e.dtype):
            return args
        per = 2 if e.op in ("fma", "llvm.fma", "llvm.fmuladd") else 1
        return per * lanes_of(e.dtype) + args
    if isinstance(e, E.Select):
        return expr_flops(e.condition) + expr_flops(e.true_value) + expr_flops(e.false_value)
    if isinstance(e, E.Cast):
        return expr_flops(e.value)
    if isinstance(e, E.Not):
        return expr_flops(e.a)
    if isinstance(e, E.Let):
        return expr_flops(e.value) + expr_flops(e.body)
    if isinstance(e, E.Ramp):
        return expr_flops(e.base) + expr_flops(e.stride)
    if isinstance(e, E.Broadcast):
        return expr_flops(e.value)
    return 0


class _Counter:
    """Counts the FLOPs of a statement for one execution under ``env`` (id(var) -> int)."""

    def __init__(self):
        self.trips: list[int] = []  # trip counts of the enclosing loops

    def stmt(self, s, env: dict) -> float:
        m = getattr(self, "s_" + type(s).__name__, None)
        if m is None:
            raise TypeError(f"count_flops does not know the statement {type(s).__name__}")
        return m(s, env)

    def s_BufferStore(self, s: S.BufferStore, env):
        return expr_flops(s.value) + sum(expr_flops(i) for i in s.indices)

    def s_Evaluate(self, s: S.Evaluate, env):
        return expr_flops(s.value)

    def s_SeqStmt(self, s: S.SeqStmt, env):
        return sum(self.stmt(x, env) for x in s.seq)

    def s_IfThenElse(self, s: S.IfThenElse, env):
        then = self.stmt(s.then_case, env)
        other = self.stmt(s.else_case, env) if s.else_case is not None else 0
        return expr_flops(s.condition) + max(then, other)

    def s_LetStmt(self, s: S.LetStmt, env):
        env2 = env
        try:
            v = eval_int(s.value, env)
        except (UnboundSizeError, ValueError):
            pass
        else:
            env2 = dict(env)
            env2[id(s.var)] = v
        return expr_flops(s.value) + self.stmt(s.body, env2)

    def s_Allocate(self, s: S.Allocate, env):
        return self.stmt(s.body, env)

    def s_AssertStmt(self, s: S.AssertStmt, env):
        return self.stmt(s.body, env)

    def s_For(self, s: S.For, env):
        lo = eval_int(s.min, env)
        n = eval_int(s.extent, env)
        if n <= 0:
            return 0
        self.trips.append(n)
        try:
            try:
                return n * self.stmt(s.body, env)  # the body's cost does not depend on the loop variable
            except UnboundSizeError as err:
                if err.var is not s.loop_var:
                    raise
            # a loop nest whose inner extents depend on this loop variable (e.g. triangular)
            self.trips[-1] = 1
            if n <= ENUMERATE_LIMIT:
                values = range(lo, lo + n)
                scale = 1.0
            else:  # sample evenly and scale: an estimate for very long dependent loops
                values = np.linspace(lo, lo + n - 1, 257).round().astype(int).tolist()
                scale = n / len(values)
            total = 0.0
            for v in values:
                env2 = dict(env)
                env2[id(s.loop_var)] = int(v)
                total += self.stmt(s.body, env2)
            return total * scale
        finally:
            self.trips.pop()

    def s_BlockRealize(self, s: S.BlockRealize, env):
        blk = s.block
        env2 = dict(env)
        pending: dict[int, Exception] = {}
        for iv, val in zip(blk.iter_vars, s.iter_values):
            try:  # iteration variables bound to constants (unit loops) keep their value
                env2[id(iv.var)] = eval_int(val, env)
            except (UnboundSizeError, ValueError) as err:
                pending[id(iv.var)] = err
        try:
            count = self.s_Block(blk, env2)
        except UnboundSizeError as err:
            # an extent inside the block depends on an iteration variable: report the loop it comes from
            if id(err.var) in pending:
                raise pending[id(err.var)] from None
            raise
        pred = s.predicate
        if isinstance(pred, E.IntImm):
            return count if pred.value else 0
        # a predicate (from a split that does not divide the extent): at most one
        # execution per point of the block's iteration domain
        try:
            return count if eval_bool(pred, env) else 0
        except (UnboundSizeError, ValueError):
            pass
        loops = float(np.prod(self.trips)) if self.trips else 1.0
        dom = 1.0
        for iv in blk.iter_vars:
            try:
                dom *= eval_int(iv.dom.extent, env)
            except (UnboundSizeError, ValueError):
                return count
        return count * min(1.0, dom / loops) if loops > 0 else count

    def s_Block(self, blk: S.Block, env):
        body = self.stmt(blk.body, env) if blk.body is not None else 0
        if blk.init is None:
            return body
        red = 1
        for iv in blk.iter_vars:
            if iv.iter_type == S.IterType.REDUCE:
                red *= max(1, eval_int(iv.dom.extent, env))
        return body + self.stmt(blk.init, env) / red


def _func_and_env(obj, args, sizes, what: str) -> tuple[PrimFunc, dict]:
    func = prim_func_of(obj)
    if func is None:
        raise TypeError(f"{what} needs a tensor program (PrimFunc, IRModule, Schedule or built function), "
                        f"got {type(obj).__name__}")
    return func, bind_sizes(func, args, sizes)


def count_flops(func: Any, args: Sequence | None = None, sizes: Mapping | None = None) -> int:
    """Floating-point operations of one run of a tensor program, derived from its IR.

    ``func`` is a PrimFunc, an IRModule holding one, a Schedule or a built function.
    Symbolic sizes take their values from ``args`` (the arrays of a call, one per
    parameter) or ``sizes`` (``{"n": 1024}``). See the module docstring for what
    counts as one operation (``exp`` is 1, ``fma`` is 2, index arithmetic is 0).

    >>> import workbench as wb
    >>> from workbench import te
    >>> n = wb.var("n")
    >>> x = te.placeholder((n,), name="x")
    >>> y = te.compute((n,), lambda i: te.exp(x[i]) * 2.0, name="y")
    >>> count_flops(wb.create_prim_func([x, y]), sizes={"n": 100})
    200
    """
    f, env = _func_and_env(func, args, sizes, "count_flops")
    try:
        total = _Counter().stmt(f.body, env)
    except UnboundSizeError as err:
        raise UnboundSizeError(err.var, f" in {f.name}") from None
    return int(round(total))


def count_bytes(func: Any, args: Sequence | None = None, sizes: Mapping | None = None) -> int:
    """Compulsory memory traffic of one run, in bytes: every buffer parameter the program
    reads or writes, once each (intermediate buffers are not counted).

    >>> import workbench as wb
    >>> from workbench import te
    >>> x = te.placeholder((10, 8), name="x")
    >>> y = te.compute((10, 8), lambda i, j: x[i, j] + 1.0, name="y")
    >>> count_bytes(wb.create_prim_func([x, y]))   # read x, write y: 2 * 80 floats
    640
    """
    f, env = _func_and_env(func, args, sizes, "count_bytes")
    reads, writes = accessed_params(f)
    total = 0
    for k in sorted(set(reads) | set(writes)):
        buf = f.buffer_map[f.params[k]]
        try:
            shape = buffer_shape(buf, env)
        except UnboundSizeError as err:
            raise UnboundSizeError(err.var, f" in the shape of {buf.name} of {f.name}") from None
        total += int(np.prod(shape, dtype=np.int64)) * _itemsize(buf.dtype)
    return total


def _itemsize(dtype: str) -> int:
    try:
        return to_numpy(dtype).itemsize * lanes_of(dtype)
    except Exception:
        return max(1, bits_of(element_of(dtype)) // 8) * lanes_of(dtype)


__all__ = ["count_flops", "count_bytes", "expr_flops"]
