"""Lowering: from a (scheduled) tensor program to flat loops ready for code generation.

Each pass is a function ``PrimFunc -> PrimFunc``; ``lower(func, stages=True)``
returns every intermediate program so a learner can watch lowering happen:

>>> from workbench import te
>>> import workbench as wb
>>> A = te.placeholder((8, 8), "float32", name="A")
>>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
>>> for name, f in lower(wb.create_prim_func([A, B]), stages=True):
...     pass  # print(name); print(f.script())
"""
from __future__ import annotations

from typing import Callable

from ...ir.function import PrimFunc
from .allocate import plan_allocations
from .blocks import lower_blocks
from .bound_check import insert_bound_checks
from .compact import compact_buffers
from .flatten import flatten_buffers
from .parallel import ParallelWarning, lower_parallel
from .simplify import simplify
from .unroll import unroll
from .vectorize import VectorizeWarning, vectorize

Pass = Callable[[PrimFunc], PrimFunc]


def passes(checks: bool = False) -> list[tuple[str, Pass]]:
    """The lowering pipeline, in order, as (name, function) pairs."""
    out: list[tuple[str, Pass]] = [
        ("lower_blocks", lower_blocks),
        ("compact_buffers", compact_buffers),
        ("simplify", simplify),
        ("unroll", unroll),
        ("vectorize", vectorize),
    ]
    if checks:
        out.append(("insert_bound_checks", insert_bound_checks))
    out += [
        ("flatten_buffers", flatten_buffers),
        ("simplify_flat", simplify),
        ("lower_parallel", lower_parallel),
        ("plan_allocations", plan_allocations),
    ]
    return out


def lower(func, target=None, *, stages: bool = False, checks: bool = False):
    """Lower a PrimFunc to flat loops: blocks -> loops, compact buffers, unroll, vectorize, flatten, plan allocations.

    With ``stages=True`` returns ``[("input", func), (pass name, func after it), ...]``.
    ``target`` is accepted for symmetry with ``build`` (the passes are target-independent).

    >>> from workbench import te
    >>> import workbench as wb
    >>> A = te.placeholder((4,), "float32", name="A")
    >>> B = te.compute((4,), lambda i: A[i] + 1.0, name="B")
    >>> low = lower(wb.create_prim_func([A, B]))
    >>> type(low).__name__
    'PrimFunc'
    """
    if hasattr(func, "mod") and not isinstance(func, PrimFunc):
        func = func.mod
    from ...ir.function import IRModule

    if isinstance(func, IRModule):
        prims = [f for f in func.functions.values() if isinstance(f, PrimFunc)]
        if len(prims) != 1:
            raise ValueError(f"lower() takes one PrimFunc; this module has {len(prims)} "
                             "(lower each: lower(mod['name']))")
        func = prims[0]
    if not isinstance(func, PrimFunc):
        raise TypeError(f"lower() needs a PrimFunc, an IRModule or a Schedule, got {type(func).__name__}")
    history = [("input", func)]
    for name, p in passes(checks):
        func = p(func)
        history.append((name, func))
    return history if stages else func


__all__ = ["lower", "passes", "lower_blocks", "compact_buffers", "simplify", "unroll", "vectorize", "insert_bound_checks",
           "flatten_buffers", "lower_parallel", "plan_allocations", "VectorizeWarning", "ParallelWarning"]
