"""Backends: lowering of tensor programs and code generation, one backend per target kind.

LLVM (the host CPU) is built in; ``register_backend(kind, build_fn)`` plugs in
others (OpenCL, CUDA) next to it. ``import workbench.backend`` is light:
llvmlite loads only when something is built.

>>> import workbench as wb
>>> t = wb.Target("llvm")
>>> isinstance(str(t), str)
True
"""
from __future__ import annotations

import importlib

from . import lower as _lower_pkg  # light: IR passes only
from .target import BackendUnavailableError, Target, TargetError, TargetFeatureError

#: ``workbench.backend.lower(func, target, stages=False)``; the passes live in ``workbench.backend.lower.*``
lower = _lower_pkg.lower
pipeline_for = _lower_pkg.pipeline_for

_LAZY = {
    "build": (".driver", "build"),
    "register_backend": (".driver", "register_backend"),
    "available_backends": (".driver", "available_backends"),
    "set_num_threads": (".llvm.runtime", "set_num_threads"),
    "get_num_threads": (".llvm.runtime", "get_num_threads"),
    "VectorizeWarning": (".lower.vectorize", "VectorizeWarning"),
    "ParallelWarning": (".lower.parallel", "ParallelWarning"),
    "cache": (".cache", None),
}


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        m = importlib.import_module(mod, __name__)
        value = m if attr is None else getattr(m, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench.backend' has no attribute {name!r}")


__all__ = ["build", "Target", "TargetError", "TargetFeatureError", "BackendUnavailableError", "lower",
           "pipeline_for", "register_backend", "available_backends", "set_num_threads", "get_num_threads",
           "VectorizeWarning", "ParallelWarning"]
