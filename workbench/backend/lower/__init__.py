"""Lowering: from a (scheduled) tensor program to flat loops ready for code generation.

The pipeline is a list of :class:`Pass` es chosen per target by :func:`pipeline_for`;
``lower(func, stages=True)`` returns every intermediate program so a learner can
watch lowering happen:

>>> from workbench import te
>>> import workbench as wb
>>> A = te.placeholder((8, 8), "float32", name="A")
>>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
>>> [p.name for p in pipeline_for()][:3]
['lower_blocks', 'hoist_tail_guards', 'compact_buffers']
>>> for name, f in lower(wb.create_prim_func([A, B]), stages=True):
...     pass  # print(name); print(f.script())

Every pipeline has a step named ``split_host_device``: for a CPU target it keeps
everything on the host (a no-op); a GPU backend registers its own with
:func:`register_host_device_split` (``workbench.backend.register_backend`` does it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...ir.function import PrimFunc
from ..target import BackendUnavailableError, Target
from .allocate import plan_allocations
from .blocks import lower_blocks
from .bound_check import insert_bound_checks
from .compact import compact_buffers
from .flatten import flatten_buffers
from .hoist_tail_guards import hoist_tail_guards
from .parallel import ParallelWarning, lower_parallel
from .simplify import simplify
from .unroll import unroll
from .vectorize import VectorizeWarning, vectorize


@dataclass(frozen=True)
class Pass:
    """One named lowering step, ``PrimFunc -> PrimFunc``; calling the pass applies it."""

    name: str
    fn: Callable[[PrimFunc], PrimFunc]

    def __call__(self, func: PrimFunc) -> PrimFunc:
        return self.fn(func)


def keep_on_host(func: PrimFunc) -> PrimFunc:
    """The host/device split of a CPU target: all the code runs on the host, so nothing changes."""
    return func


#: target kind -> the pass that splits its programs into host code and device kernels
_HOST_DEVICE_SPLITS: dict[str, Callable[[PrimFunc], PrimFunc]] = {}


def register_host_device_split(kind: str, fn: Callable[[PrimFunc], PrimFunc]) -> None:
    """Use ``fn`` as the ``split_host_device`` step of the pipeline of targets of ``kind`` (a GPU backend's)."""
    _HOST_DEVICE_SPLITS[kind] = fn


def _host_device_split(tgt: "Target | None") -> Callable[[PrimFunc], PrimFunc]:
    if tgt is None or not tgt.is_gpu:
        return keep_on_host
    fn = _HOST_DEVICE_SPLITS.get(tgt.kind)
    if fn is None:
        raise BackendUnavailableError(
            f"no backend for {tgt.kind} targets is available yet, so programs cannot be lowered for {tgt}: "
            f"the {tgt.kind} backend would split them into host code and device kernels")
    return fn


def pipeline_for(target=None, *, checks: bool = False) -> list[Pass]:
    """The lowering passes, in order, for ``target`` (None: a CPU target, without detecting the host).

    ``checks=True`` adds bound checks. CPU targets turn outer ``parallel`` loops into
    thread-pool launches (``lower_parallel``); GPU targets keep their thread bindings
    and split the program into host code and kernels (``split_host_device``).

    >>> [p.name for p in pipeline_for(checks=True)][-6:]
    ['insert_bound_checks', 'flatten_buffers', 'simplify_flat', 'split_host_device', 'lower_parallel', 'plan_allocations']
    """
    tgt = None if target is None else Target(target)
    out = [Pass("lower_blocks", lower_blocks), Pass("hoist_tail_guards", hoist_tail_guards),
           Pass("compact_buffers", compact_buffers), Pass("simplify", simplify),
           Pass("unroll", unroll), Pass("vectorize", vectorize)]
    if checks:
        out.append(Pass("insert_bound_checks", insert_bound_checks))
    out += [Pass("flatten_buffers", flatten_buffers), Pass("simplify_flat", simplify),
            Pass("split_host_device", _host_device_split(tgt))]
    if tgt is None or not tgt.is_gpu:
        out.append(Pass("lower_parallel", lower_parallel))
    out.append(Pass("plan_allocations", plan_allocations))
    return out


def lower(func, target=None, *, stages: bool = False, checks: bool = False):
    """Lower a PrimFunc to flat loops: blocks -> loops, compact buffers, unroll, vectorize, flatten, plan allocations.

    With ``stages=True`` returns ``[("input", func), (pass name, func after it), ...]``.
    ``target`` chooses the pipeline (:func:`pipeline_for`); None lowers for a CPU.

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
    for p in pipeline_for(target, checks=checks):
        func = p(func)
        history.append((p.name, func))
    return history if stages else func


__all__ = ["lower", "Pass", "pipeline_for", "keep_on_host", "register_host_device_split", "lower_blocks",
           "hoist_tail_guards",
           "compact_buffers", "simplify", "unroll", "vectorize", "insert_bound_checks", "flatten_buffers", "lower_parallel", "plan_allocations", "VectorizeWarning", "ParallelWarning"]
