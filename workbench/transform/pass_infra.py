"""The pass infrastructure: :class:`Pass` (an ``IRModule -> IRModule`` callable) and :class:`Sequential`.

A pass is an object with ``__call__(mod) -> mod``; it never changes its input (IR nodes are
immutable) and raises :class:`PassError` (a ``ValueError``) naming the function and the binding
when the module does not fit it.

>>> import workbench as wb
>>> seq = wb.transform.Sequential([wb.transform.LegalizeOps(), wb.transform.DeadCodeElimination()])
>>> seq
Sequential([LegalizeOps(), DeadCodeElimination()])
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..ir.function import IRModule


class PassError(ValueError):
    """A graph-level pass cannot handle the module: names the pass, the function and the reason."""


class Pass:
    """Base of the graph-level passes: ``pass_(mod) -> new_mod``; subclasses implement :meth:`transform`."""

    def __call__(self, mod: IRModule) -> IRModule:
        if not isinstance(mod, IRModule):
            raise PassError(f"{type(self).__name__} takes an IRModule, got {type(mod).__name__}")
        out = self.transform(mod)
        if not isinstance(out, IRModule):
            raise PassError(f"{type(self).__name__} returned {type(out).__name__}, not an IRModule")
        return out

    def transform(self, mod: IRModule) -> IRModule:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sequential(Pass):
    """Run ``passes`` in order: ``Sequential([LegalizeOps(), FuseOps(), FuseTIR()])(mod)``.

    Any callable ``IRModule -> IRModule`` may be one of the passes.
    """

    def __init__(self, passes: Sequence[Callable[[IRModule], IRModule]]):
        passes = list(passes)
        for k, p in enumerate(passes):
            if not callable(p):
                raise PassError(f"Sequential: pass {k} is {type(p).__name__}, not a callable IRModule -> IRModule")
        self.passes = passes

    def transform(self, mod: IRModule) -> IRModule:
        for p in self.passes:
            out = p(mod)
            if not isinstance(out, IRModule):
                raise PassError(f"Sequential: {p!r} returned {type(out).__name__}, not an IRModule")
            mod = out
        return mod

    def __repr__(self) -> str:
        return f"Sequential([{', '.join(repr(p) for p in self.passes)}])"


__all__ = ["Pass", "PassError", "Sequential"]
