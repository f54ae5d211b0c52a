"""workbench: a Jupyter-centric workbench for machine-learning compilation.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((4, 4), "float32", name="A")
>>> B = te.compute((4, 4), lambda i, j: A[i, j] * 2.0, name="B")
>>> f = wb.create_prim_func([A, B])

Everything heavy (llvmlite, matplotlib, pandas, pyopencl, graphviz) loads on
first use, so ``import workbench`` stays fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    # sub-packages
    "ir": ("workbench.ir", None),
    "te": ("workbench.ir.te", None),
    "schedule": ("workbench.schedule", None),
    "backend": ("workbench.backend", None),
    "viz": ("workbench.viz", None),
    "frontend": ("workbench.frontend", None),
    "tuning": ("workbench.tuning", None),
    "transform": ("workbench.transform", None),
    # IR
    "PrimFunc": ("workbench.ir.function", "PrimFunc"),
    "IRModule": ("workbench.ir.function", "IRModule"),
    "create_prim_func": ("workbench.ir.te", "create_prim_func"),
    "var": ("workbench.ir.te", "var"),
    "parse": ("workbench.ir.parser", "parse"),
    "prim_func": ("workbench.ir.parser", "prim_func"),
    "ScriptError": ("workbench.ir.parser", "ScriptError"),
    "DTypeError": ("workbench.ir.dtype", "DTypeError"),
    "assert_structural_equal": ("workbench.ir.structural", "assert_structural_equal"),
    "structural_equal": ("workbench.ir.structural", "structural_equal"),
    "verify_well_formed": ("workbench.ir.verify", "verify_well_formed"),
    "WellFormedError": ("workbench.ir.verify", "WellFormedError"),
    # graph-level IR
    "graph": ("workbench.ir.graph", None),
    "BlockBuilder": ("workbench.ir.graph.block_builder", "BlockBuilder"),
    "GraphTypeError": ("workbench.ir.graph.types", "GraphTypeError"),
    "verify_graph": ("workbench.ir.graph.verify", "verify_graph"),
    # schedule
    "Schedule": ("workbench.schedule", "Schedule"),
    "ScheduleError": ("workbench.schedule", "ScheduleError"),
    "register_tensor_intrin": ("workbench.schedule", "register_tensor_intrin"),
    "list_tensor_intrins": ("workbench.schedule", "list_tensor_intrins"),
    # backend
    "build": ("workbench.backend", "build"),
    "Target": ("workbench.backend", "Target"),
    "TargetError": ("workbench.backend.target", "TargetError"),
    "BackendUnavailableError": ("workbench.backend.target", "BackendUnavailableError"),
    "register_backend": ("workbench.backend.driver", "register_backend"),
    "VirtualMachine": ("workbench.backend.vm", "VirtualMachine"),
    "profile": ("workbench.backend.vm", "profile"),
    "device": ("workbench.backend.ndarray", "device"),
    "nd": ("workbench.backend.ndarray", None),
    # tuning
    "benchmark": ("workbench.tuning", "benchmark"),
    "machine_peak": ("workbench.tuning", "machine_peak"),
    "tune": ("workbench.tuning.tune", "tune"),
}


#: every ScheduleError subclass is public as ``wb.<Name>`` (``wb.DependenceError``, ...)
_SCHEDULE_ERRORS = (
    "ScheduleArgumentError", "BlockNotFoundError", "InvalidHandleError", "NotAChainError", "ReductionLoopError",
    "NonAffineBindingError", "DependenceError", "ComputeLocationError", "InlineError", "RegionCoverError",
    "AccessRegionError", "DataMovementError", "NotEinsumError", "NotPaddingError", "LoopPositionError",
    "RollingBufferError", "TensorizeMismatchError", "TensorizeLayoutError",
)
_LAZY.update({n: ("workbench.schedule.errors", n) for n in _SCHEDULE_ERRORS})


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        # the script-form vocabulary (wb.grid, wb.block, wb.axis, wb.float32, ...)
        script_ns = importlib.import_module("workbench.ir.script")
        if name in script_ns.__all__:
            value = getattr(script_ns, name)
            globals()[name] = value
            return value
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    mod, attr = target
    m = importlib.import_module(mod)
    value = m if attr is None else getattr(m, attr)
    globals()[name] = value
    return value


def __dir__():
    names = set(globals()) | set(_LAZY)
    names |= set(importlib.import_module("workbench.ir.script").__all__)
    return sorted(names)
