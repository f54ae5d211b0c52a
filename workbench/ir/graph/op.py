"""The registry of graph-level operators.

Each operator is registered once with everything the layers above need:

* ``infer(arg_types, attrs) -> GraphType``: shape and dtype inference over
  :class:`~workbench.ir.graph.types.TensorType` arguments whose dimensions may be
  symbolic; it raises :class:`GraphTypeError` naming the op, the argument and the shapes
  when the arguments do not fit;
* ``legalize(tensors, attrs) -> te.Tensor | list[te.Tensor]``: the computation as a ``te``
  description over ``te.placeholder`` tensors of the argument types (what ``LegalizeOps``
  turns into a tensor program);
* ``reference(arrays, attrs) -> np.ndarray | tuple``: a numpy implementation, the outside
  reference the tests compare with;
* ``pattern``: how the op fuses (``FuseOps``): one of :data:`PATTERNS`.

``attrs`` is a plain ``dict`` of the op's static attributes (``{"axis": -1}``), part of
the call node and printed in the script form.

>>> op = get_op("demo.negative")
>>> op.pattern, op.name
('elementwise', 'demo.negative')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .types import GraphType, GraphTypeError

#: fusion pattern kinds, from most to least fusible (as TVM's OpPatternKind)
PATTERNS = ("elementwise", "broadcast", "injective", "reduction", "out_ewise_fusible", "opaque")


@dataclass(frozen=True)
class OpDef:
    """One registered operator (see the module docstring)."""

    name: str
    infer: Callable[[list, dict], GraphType]
    legalize: Callable[[list, dict], Any] | None
    reference: Callable[[list, dict], Any]
    pattern: str
    doc: str = ""


_OPS: dict[str, OpDef] = {}


def register_op(name: str, *, infer: Callable, legalize: Callable | None, reference: Callable, pattern: str,
                doc: str = "") -> OpDef:
    """Register the operator ``name`` (its script spelling is ``wb.op.<name>``)."""
    if pattern not in PATTERNS:
        raise ValueError(f"op {name}: pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    if name in _OPS:
        raise ValueError(f"op {name} is already registered")
    op = OpDef(name, infer, legalize, reference, pattern, doc)
    _OPS[name] = op
    return op


def get_op(name: str) -> OpDef:
    """The registered operator ``name``; a clear error listing close names otherwise."""
    _load_library()
    op = _OPS.get(name)
    if op is None:
        import difflib

        close = difflib.get_close_matches(name, list(_OPS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise GraphTypeError(f"there is no graph op called {name!r}{hint}")
    return op


def list_ops() -> list[str]:
    """The names of every registered operator."""
    _load_library()
    return sorted(_OPS)


def _load_library() -> None:
    """Import the op library (``workbench.ir.graph.ops``), which registers the operators."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("workbench.ir.graph.ops") is not None:
        importlib.import_module("workbench.ir.graph.ops")


def _negative_infer(args, attrs):
    (x,) = args
    return x


def _negative_legalize(tensors, attrs):
    from ..te import compute

    (x,) = tensors
    return compute(x.shape, lambda *i: 0.0 - x[i], name="negative") if x.dtype.startswith("float") else \
        compute(x.shape, lambda *i: 0 - x[i], name="negative")


def _negative_reference(arrays, attrs):
    (x,) = arrays
    return -x


register_op("demo.negative", infer=_negative_infer, legalize=_negative_legalize, reference=_negative_reference,
            pattern="elementwise", doc="-x (a minimal op used by the registry's own doctest)")

__all__ = ["OpDef", "PATTERNS", "register_op", "get_op", "list_ops"]
