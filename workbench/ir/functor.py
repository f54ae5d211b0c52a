"""Visitors and mutators over IR trees.

A ``Visitor`` walks every node; override ``visit_<ClassName>`` to act on one
kind and call ``self.generic_visit(node)`` to keep walking below it. A
``Mutator`` returns a new tree: override ``visit_<ClassName>`` to return a
replacement; unchanged subtrees are shared with the input.

>>> from workbench.ir.expr import Var
>>> from workbench.ir.functor import substitute
>>> i, j = Var("i"), Var("j")
>>> print(substitute(i * 4 + j, {i: j + 1}))
(j + 1) * 4 + j
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from .buffer import Buffer
from .expr import Var
from .node import FrozenDict, Node


class Visitor:
    """Walks a tree; ``visit_<ClassName>`` methods override the default walk."""

    _dispatch_cache: dict

    def visit(self, n: Any) -> None:
        if isinstance(n, Node):
            method = getattr(self, "visit_" + type(n).__name__, None)
            if method is not None:
                method(n)
            else:
                self.generic_visit(n)
        elif isinstance(n, (tuple, list)):
            for x in n:
                self.visit(x)
        elif isinstance(n, dict):
            for k, v in n.items():
                self.visit(k)
                self.visit(v)

    def generic_visit(self, n: Node) -> None:
        for name in n._fields:
            v = getattr(n, name)
            if isinstance(v, (Node, tuple, list, dict)):
                self.visit(v)


class Mutator:
    """Rebuilds a tree; ``visit_<ClassName>`` returns the replacement of a node.

    Buffers are left as they are unless ``visit_Buffer`` is overridden.
    """

    def visit(self, n: Any) -> Any:
        if isinstance(n, Node):
            method = getattr(self, "visit_" + type(n).__name__, None)
            if method is not None:
                return method(n)
            return self.generic_visit(n)
        if isinstance(n, tuple):
            out = tuple(self.visit(x) for x in n)
            return n if all(a is b for a, b in zip(out, n)) else out
        if isinstance(n, list):
            return [self.visit(x) for x in n]
        if isinstance(n, dict):
            items = [(self.visit(k), self.visit(v)) for k, v in n.items()]
            if all(k2 is k and v2 is v for (k2, v2), (k, v) in zip(items, n.items())):
                return n
            return type(n)(items) if isinstance(n, FrozenDict) else dict(items)
        return n

    def visit_Buffer(self, b: Buffer) -> Buffer:
        return b

    def generic_visit(self, n: Node) -> Node:
        changes = {}
        for name in n._fields:
            v = getattr(n, name)
            if isinstance(v, (Node, tuple, list, dict)):
                nv = self.visit(v)
                if nv is not v:
                    changes[name] = nv
        if not changes:
            return n
        if "dtype" in n._fields and "dtype" not in changes and _derived_dtype(n):
            changes["dtype"] = None  # recompute from the new operands
        return n.replace(**changes)


def _derived_dtype(n: Node) -> bool:
    from .expr import BinaryOp, Broadcast, BufferLoad, Let, Not, Ramp, Select

    return isinstance(n, (BinaryOp, Not, Select, BufferLoad, Let, Ramp, Broadcast))


class _FnVisitor(Visitor):
    def __init__(self, fn: Callable[[Node], None]):
        self.fn = fn

    def visit(self, n):
        super().visit(n)
        if isinstance(n, Node):
            self.fn(n)


def post_order_visit(n: Any, fn: Callable[[Node], None]) -> None:
    """Call ``fn`` on every node below (and including) ``n``, children first."""
    _FnVisitor(fn).visit(n)


class _Substitute(Mutator):
    def __init__(self, vmap: Mapping[Var, Any], buffer_map: Mapping[Buffer, Buffer] | None):
        from .expr import convert

        self.vmap = {id(k): (k, convert(v)) for k, v in vmap.items()}
        self.bmap = {id(k): v for k, v in (buffer_map or {}).items()}

    def visit_Var(self, v: Var):
        hit = self.vmap.get(id(v))
        return hit[1] if hit is not None and hit[0] is v else v

    def visit_Buffer(self, b: Buffer):
        return self.bmap.get(id(b), b)


def substitute(n: Any, vmap: Mapping[Var, Any], buffer_map: Mapping[Buffer, Buffer] | None = None):
    """Replace variables (and optionally buffers) throughout ``n``."""
    if not vmap and not buffer_map:
        return n
    return _Substitute(vmap, buffer_map).visit(n)


def collect_vars(n: Any) -> list[Var]:
    """Variables used in ``n``, in order of first appearance (buffer shapes included)."""
    seen: dict[int, Var] = {}

    class V(Visitor):
        def visit_Var(self, v):
            seen.setdefault(id(v), v)

    V().visit(n)
    return list(seen.values())


def uses_var(n: Any, var_or_pred) -> bool:
    """True when ``n`` mentions the variable (or a variable for which the predicate holds)."""
    pred = var_or_pred if callable(var_or_pred) else (lambda v: v is var_or_pred)
    found = False

    class V(Visitor):
        def visit_Var(self, v):
            nonlocal found
            if pred(v):
                found = True

        def visit(self, x):
            if not found:
                super().visit(x)

    V().visit(n)
    return found


__all__ = ["Visitor", "Mutator", "post_order_visit", "substitute", "collect_vars", "uses_var"]
