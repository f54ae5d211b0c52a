"""FLOP and byte counts derived from the IR, never typed in by hand.

``count_flops(func)`` walks the program (scheduled or not) and multiplies each
statement's operations by how often it runs (the trip counts of the
loops around it; symbolic extents are bound from the arrays or ``sizes=``).

The convention, per result (vector operations count once per lane):

- ``+ - * /``, ``min``, ``max``, a comparison of floats: **1**
- integer arithmetic on data values (an operation whose operands involve a buffer
  load, as in an int8 ``u8 x s8 -> s32`` matmul): **1**, like its float counterpart, so
  an integer matmul is ``2*M*N*K`` too (the tables still say GFLOP/s: read it as
  billions of operations per second)
- ``fma(a, b, c)``: **2** (a multiply and an add)
- every other math intrinsic (``exp``, ``log``, ``sqrt``, ``tanh``, ``erf``, ``pow``,
  ``abs``, ...): **1** each, although it costs many instructions; a FLOP count
  measures the work of the algorithm, not of one implementation of ``exp``
- loads, stores, casts, ``Select`` / ``if_then_else`` (a choice, not arithmetic),
  boolean logic, integer index arithmetic (also inside the indices of a load, as in a
  gather ``A[idx[i] + 1]``) and external calls: **0**
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
from ..ir.dtype import bits_of, element_of, is_float, is_integer, lanes_of, to_numpy
from ..ir.function import PrimFunc
from ._program import UnboundSizeError, accessed_params, bind_sizes, buffer_shape, eval_bool, eval_int, prim_func_of

#: intrinsics that are a choice or an opaque call, not arithmetic
ZERO_COST_CALLS = frozenset({"if_then_else", "call_extern", "isnan", "isinf", "isfinite"})

#: loops up to this trip count are enumerated when the body's cost depends on the loop variable
ENUMERATE_LIMIT = 4096


def expr_flops(e) -> int:
    """Operations of one evaluation of an expression (see the module doc).

    >>> from workbench.ir import Var, FloatImm, call
    >>> x = Var("x", "float32")
    >>> expr_flops(call("exp", x - 1.0) * x), expr_flops(call("fma", x, x, x))
    (3, 2)
    """
    return _count(e, index=False)[0]


def _op_cost(dtype: str, reads_data: bool, index: bool) -> int:
    """Cost of one operation producing (or, for comparisons, comparing) ``dtype``: one per
    lane for floats, and for integers computed from buffer data outside an index."""
    if is_float(dtype):
        return lanes_of(dtype)
    if reads_data and not index and is_integer(dtype):
        return lanes_of(dtype)
    return 0


def _count(e, index: bool) -> tuple[int, bool]:
    """(operations, whether the value involves a buffer load) of ``e``; ``index``: ``e`` is
    (part of) a buffer index, where integer arithmetic is addressing and costs nothing."""
    if not isinstance(e, E.PrimExpr):
        return 0, False
    t = type(e)
    if t in (E.Var, E.IntImm, E.FloatImm, E.StringImm):
        return 0, False
    if isinstance(e, E.BufferLoad):
        return _sum(e.indices, index=True)[0], True
    if isinstance(e, (E.CmpOp, E.BinaryOp)):  # comparisons, arithmetic, logic
        ops, data = _sum((e.a, e.b), index)
        dtype = e.a.dtype if isinstance(e, E.CmpOp) else e.dtype
        own = 0 if isinstance(e, E.LogicOp) else _op_cost(dtype, data, index)
        return own + ops, data
    if isinstance(e, E.Call):
        if e.op == "if_then_else":
            c, a, b = (_count(x, index) for x in e.args)
            return c[0] + max(a[0], b[0]), c[1] or a[1] or b[1]
        ops, data = _sum(e.args, index)
        if e.op in ZERO_COST_CALLS:
            return ops, data
        per = 2 if e.op in ("fma", "llvm.fma", "llvm.fmuladd") else 1
        return per * _op_cost(e.dtype, data, index) + ops, data
    if isinstance(e, E.Select):
        return _sum((e.condition, e.true_value, e.false_value), index)
    if isinstance(e, (E.Cast, E.Broadcast)):
        return _count(e.value, index)
    if isinstance(e, E.Not):
        return _count(e.a, index)
    if isinstance(e, E.Let):
        return _sum((e.value, e.body), index)
    if isinstance(e, E.Ramp):
        return _sum((e.base, e.stride), index)
    return 0, False


def _sum(exprs, index: bool) -> tuple[int, bool]:
    ops, data = 0, False
    for x in exprs:
        o, d = _count(x, index)
        ops, data = ops + o, data or d
    return ops, data


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
        return expr_flops(s.value) + _sum(s.indices, index=True)[0]

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
    """Operations of one run of a tensor program (floating-point, and integer arithmetic on
    data values), derived from its IR.

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
