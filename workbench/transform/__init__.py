"""Graph-level passes (``IRModule -> IRModule``), as in TVM Relax and the MLC course.

``LegalizeOps`` (graph ops -> ``call_tir`` of generated tensor programs), ``AnnotateOpPattern``
(each tensor program's fusion kind), ``FuseOps`` (groups by pattern, post-dominator based),
``FuseTIR`` (each group -> one tensor program), ``DeadCodeElimination``, ``BindParams``,
``StaticPlanBlockMemory`` and ``DefaultSchedule(target)``; ``Sequential`` runs several.

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         gv = bb.emit_output(wb.op.relu(wb.op.exp(x)))
...     bb.emit_func_output(gv)
>>> mod = wb.transform.Sequential([wb.transform.LegalizeOps(), wb.transform.FuseOps(),
...                                wb.transform.FuseTIR()])(bb.get())
>>> sorted(mod.prim_funcs)
['fused_exp_relu']
"""
from __future__ import annotations

import importlib

_LAZY = {
    "Pass": (".pass_infra", "Pass"),
    "PassError": (".pass_infra", "PassError"),
    "Sequential": (".pass_infra", "Sequential"),
    "LegalizeOps": (".legalize_ops", "LegalizeOps"),
    "AnnotateOpPattern": (".annotate_op_pattern", "AnnotateOpPattern"),
    "analyze_op_pattern": (".annotate_op_pattern", "analyze_op_pattern"),
    "FuseOps": (".fuse_ops", "FuseOps"),
    "FuseTIR": (".fuse_tir", "FuseTIR"),
    "DeadCodeElimination": (".dead_code_elimination", "DeadCodeElimination"),
    "BindParams": (".bind_params", "BindParams"),
    "StaticPlanBlockMemory": (".static_plan_block_memory", "StaticPlanBlockMemory"),
    "DefaultSchedule": (".default_schedule", "DefaultSchedule"),
}


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench.transform' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = list(_LAZY)
