"""Schedules: transform a tensor program one primitive at a time.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((128, 128), "float32", name="A")
>>> B = te.compute((128, 128), lambda i, j: A[i, j] * 2.0, name="B")
>>> sch = wb.Schedule(wb.create_prim_func([A, B]))
>>> i, j = sch.get_loops(sch.get_block("B"))
>>> io, ii = sch.split(i, factors=[None, 32])
>>> sch.parallel(io)
>>> print(sch.trace)
b0 = sch.get_block("B")
l1, l2 = sch.get_loops(b0)
l3, l4 = sch.split(l1, factors=[None, 32])
sch.parallel(l3)
"""
from __future__ import annotations

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .state import Schedule, Step, _attach_primitives
from .trace import BlockRV, ExprRV, Instruction, LoopRV, Trace

_attach_primitives()


from .tensor_intrin import get_tensor_intrin, list_tensor_intrins, register_tensor_intrin  # noqa: E402


__all__ = list(_errors_all) + ["Schedule", "Step", "BlockRV", "LoopRV", "ExprRV", "Instruction", "Trace",
                               "register_tensor_intrin", "list_tensor_intrins", "get_tensor_intrin"]
