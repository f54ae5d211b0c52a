"""Measurement and tuning: timing (``time_function``), FLOP and byte counts from the IR, the machine's peak,
benchmark tables and plots; the auto-tuner (``wb.tune``) with its search spaces, cost model, database and
crash-safe runners (``workbench.tuning.measure``).

``import workbench.tuning`` is light; pandas, matplotlib, tqdm and llvmlite load on first use.

>>> import workbench as wb
>>> callable(wb.benchmark) and callable(wb.machine_peak)
True
"""
from __future__ import annotations

import importlib

# ``benchmark`` is both a module and a function: import the function eagerly (the module
# is light) so the package attribute is the function, not the submodule
from .benchmark import BenchmarkResult, benchmark
from .flops import count_bytes, count_flops

_LAZY = {
    "machine_peak": (".peak", "machine_peak"),
    "MachinePeak": (".peak", "MachinePeak"),
    "time_function": (".timing", "measure"),
    "Timing": (".timing", "Timing"),
    "random_inputs": (".inputs", "random_inputs"),
    "TuneResult": (".tune", "TuneResult"),
    "ModelTuneResult": (".tune_model", "ModelTuneResult"),
    "RuleSpace": (".space", "RuleSpace"),
    "ScheduleFnSpace": (".space", "ScheduleFnSpace"),
    "Database": (".database", "Database"),
    "CostModel": (".cost_model", "CostModel"),
}


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench.tuning' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["benchmark", "BenchmarkResult", "machine_peak", "MachinePeak", "count_flops", "count_bytes",
           "time_function", "Timing", "random_inputs",
           "TuneResult", "ModelTuneResult", "RuleSpace", "ScheduleFnSpace", "Database", "CostModel"]
