"""Graph-level IR: tensor types with symbolic shapes, values, bindings, dataflow blocks, graph functions.

Nodes live in :mod:`.expr`, types in :mod:`.types`, the operator registry in :mod:`.op`
(the op library in the package ``ops``), the script vocabulary in :mod:`.script`, the
block builder in :mod:`.block_builder` and the well-formedness check in :mod:`.verify`.
The API summary for other layers is in ``GRAPH_API.md`` of the notes.

>>> import workbench as wb
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> wb.graph.Call(wb.graph.Op("demo.negative"), (x,)).type
Tensor((n, 4), "float32")
"""
from __future__ import annotations

import importlib

from .types import GraphType, GraphTypeError, TensorType, TupleType, shape_vars, tensor_type
from .op import PATTERNS, get_op, list_ops, register_op
from .expr import (
    Binding, BindingBlock, Call, Constant, DataflowBlock, DataflowVar, Expr, ExternFunc, Function, GlobalVar,
    MatchCast, Op, SeqExpr, Tuple, TupleGetItem, Var, VarBinding, as_expr, check_castable,
)
from .script import Tensor, call_dps_library, call_tir, const, meta, size_var

_LAZY = {
    "BlockBuilder": (".block_builder", "BlockBuilder"),
    "BlockBuilderError": (".block_builder", "BlockBuilderError"),
    "verify_graph": (".verify", "verify_graph"),
    "GraphWellFormedError": (".verify", "GraphWellFormedError"),
    "print_graph": (".printer", "print_graph"),
    "function": (".parser", "function"),
}


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench.ir.graph' has no attribute {name!r}")


__all__ = [
    "GraphType", "GraphTypeError", "TensorType", "TupleType", "shape_vars", "tensor_type", "PATTERNS", "get_op",
    "list_ops", "register_op", "Binding", "BindingBlock", "Call", "Constant", "DataflowBlock", "DataflowVar", "Expr",
    "ExternFunc", "Function", "GlobalVar", "MatchCast", "Op", "SeqExpr", "Tuple", "TupleGetItem", "Var",
    "VarBinding", "as_expr", "check_castable", "Tensor", "call_dps_library", "call_tir", "const", "meta", "size_var",
    *_LAZY,
]
