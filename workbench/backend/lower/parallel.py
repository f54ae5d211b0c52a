"""Check and normalise parallel loops before code generation.

Each ``parallel`` loop becomes, in code generation, a function of its own (the
loop body, "outlined") that the runtime calls from several threads, each on a
chunk of the iterations. A parallel loop inside another parallel loop would
oversubscribe the cores: the inner one becomes ``serial`` here, with a warning.

Before::

    for i in wb.parallel(4):
        for j in wb.parallel(8):
            ...

After::

    for i in wb.parallel(4):
        for j in range(8):
            ...
"""
from __future__ import annotations

import warnings

from ...ir.function import PrimFunc
from ...ir.functor import Mutator
from ...ir.stmt import For, ForKind


class ParallelWarning(UserWarning):
    """A parallel loop was run serially; the message says why."""


class _Nested(Mutator):
    def __init__(self):
        self.depth = 0

    def visit_For(self, f: For):
        if f.kind != ForKind.PARALLEL:
            return self.generic_visit(f)
        if self.depth > 0:
            warnings.warn(f"loop {f.loop_var.name} is parallel inside another parallel loop; it runs serially "
                          "inside each thread.", ParallelWarning, stacklevel=2)
            return self.generic_visit(f.replace(kind=ForKind.SERIAL))
        self.depth += 1
        try:
            return self.generic_visit(f)
        finally:
            self.depth -= 1


def lower_parallel(func: PrimFunc) -> PrimFunc:
    """Keep only outermost parallel loops parallel (inner ones become serial, with a warning).

    >>> from workbench.ir import Buffer, Var, For, BufferStore, PrimFunc
    >>> A = Buffer("A", (4,), "float32"); a = Var("a", "handle"); i = Var("i")
    >>> f = lower_parallel(PrimFunc([a], {a: A}, For(i, 0, 4, "parallel", BufferStore(A, 1.0, [i]))))
    >>> str(f.body.kind)
    'parallel'
    """
    return func.with_body(_Nested().visit(func.body))


__all__ = ["lower_parallel", "ParallelWarning"]
