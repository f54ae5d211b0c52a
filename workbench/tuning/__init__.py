"""Measurement: timing, FLOP and byte counts from the IR, the machine's peak, benchmark tables and plots.

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
    "measure": (".timing", "measure"),
    "Timing": (".timing", "Timing"),
    "random_inputs": (".inputs", "random_inputs"),
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
           "measure", "Timing", "random_inputs"]
