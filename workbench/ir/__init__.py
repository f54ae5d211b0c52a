"""The data: loop-level IR nodes, script form, te, arithmetic, the reference interpreter.

Heavy or large parts load on first use; ``import workbench.ir`` stays light.
"""
from __future__ import annotations

import importlib

from .dtype import DTypeError, normalize_dtype
from .node import FrozenDict, Node
from .expr import *  # noqa: F401,F403
from .expr import __all__ as _expr_all
from .buffer import Buffer, ScopeError, decl_buffer
from .stmt import *  # noqa: F401,F403
from .stmt import __all__ as _stmt_all
from .function import IRModule, PrimFunc
from .structural import StructuralMismatch, assert_structural_equal, structural_equal, structural_hash
from .functor import Mutator, Visitor, collect_vars, post_order_visit, substitute

_LAZY = {
    # name: (module, attribute or None for the module itself)
    "script": (".printer", "script"),
    "parse": (".parser", "parse"),
    "prim_func": (".parser", "prim_func"),
    "ScriptError": (".parser", "ScriptError"),
    "evaluate": (".interpreter", "evaluate"),
    "te": (".te", None),
    "arith": (".arith", None),
    "op_library": (".op_library", None),
}


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        m = importlib.import_module(mod, __name__)
        value = m if attr is None else getattr(m, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench.ir' has no attribute {name!r}")


__all__ = list(_expr_all) + list(_stmt_all) + [
    "DTypeError", "normalize_dtype", "FrozenDict", "Node", "Buffer", "ScopeError", "decl_buffer",
    "IRModule", "PrimFunc", "StructuralMismatch", "assert_structural_equal", "structural_equal",
    "structural_hash", "Mutator", "Visitor", "collect_vars", "post_order_visit", "substitute",
]
