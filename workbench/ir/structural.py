"""Structural equality and hashing.

Two programs are structurally equal when they have the same shape of tree and
the same values, up to a consistent renaming of variables and buffers (the
names of variables and buffers do not matter; block names do).

>>> from workbench.ir.expr import Var
>>> from workbench.ir.structural import structural_equal
>>> i, j = Var("i"), Var("j")
>>> structural_equal(i * 2 + 1, j * 2 + 1), structural_equal(i * 2, i * 3)
(True, False)
"""
from __future__ import annotations

import difflib
import enum
import hashlib
import math
from typing import Any

import numpy as np

from .buffer import Buffer
from .expr import Var
from .function import PrimFunc
from .graph.expr import DataflowVar as _GraphDataflowVar, Function as _GraphFunction, Var as _GraphVar
from .node import Node

#: fields that are names, ignored by equality (a renaming is not a change)
_NAME_FIELDS = {Var: ("name",), Buffer: ("name",), _GraphVar: ("name",), _GraphDataflowVar: ("name",)}
#: objects that are defined once and referred to (mapped one-to-one, never compared by identity)
_BOUND = (Var, Buffer, _GraphVar)
#: functions are closed: each is compared (and hashed) with its own variable mapping, so two functions
#: sharing a size variable object compare like two that do not
_FUNCTIONS = (PrimFunc, _GraphFunction)


def _arrays_equal(a, b) -> bool:
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return False
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


class _Equal:
    def __init__(self):
        self.fwd: dict[int, Any] = {}
        self.bwd: dict[int, Any] = {}
        self.path: list[str] = []
        self.mismatch: tuple[str, Any, Any, str] | None = None

    def fail(self, a, b, why: str) -> bool:
        if self.mismatch is None:
            self.mismatch = ("".join(self.path) or "<root>", a, b, why)
        return False

    def bind(self, a, b) -> bool | None:
        """Map a to b on first sight; None when both are new (caller compares fields)."""
        fa, fb = self.fwd.get(id(a)), self.bwd.get(id(b))
        if fa is None and fb is None:
            self.fwd[id(a)] = b
            self.bwd[id(b)] = a
            return None
        if fa is b and fb is a:
            return True
        return self.fail(a, b, "refer to different variables or buffers")

    def eq(self, a, b) -> bool:
        if a is b and not isinstance(a, _BOUND):
            return True
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return True if _arrays_equal(a, b) else self.fail(a, b, "different arrays")
        if isinstance(a, Node) or isinstance(b, Node):
            if type(a) is not type(b):
                return self.fail(a, b, f"{type(a).__name__} vs {type(b).__name__}")
            if isinstance(a, _FUNCTIONS):
                saved = self.fwd, self.bwd
                self.fwd, self.bwd = {}, {}
                try:
                    return self.fields(a, b, ())
                finally:
                    self.fwd, self.bwd = saved
            if isinstance(a, _BOUND):
                r = self.bind(a, b)
                if r is not None:
                    return r
                skip = _NAME_FIELDS[type(a)]
                return self.fields(a, b, skip)
            return self.fields(a, b, ())
        if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
            if len(a) != len(b):
                return self.fail(a, b, f"{len(a)} vs {len(b)} elements")
            for k, (x, y) in enumerate(zip(a, b)):
                self.path.append(f"[{k}]")
                ok = self.eq(x, y)
                self.path.pop()
                if not ok:
                    return False
            return True
        if isinstance(a, dict) and isinstance(b, dict):
            if len(a) != len(b):
                return self.fail(a, b, f"{len(a)} vs {len(b)} entries")
            for (ka, va), (kb, vb) in zip(a.items(), b.items()):
                if isinstance(ka, (Node,)) or isinstance(kb, Node):
                    self.path.append(f"[key {getattr(ka, 'name', ka)}]")
                    ok = self.eq(ka, kb)
                    self.path.pop()
                    if not ok:
                        return False
                    kb_val = vb
                else:
                    if ka not in b:
                        return self.fail(a, b, f"key {ka!r} only on one side")
                    kb_val = b[ka]
                self.path.append(f"[{getattr(ka, 'name', repr(ka))}]")
                ok = self.eq(va, kb_val)
                self.path.pop()
                if not ok:
                    return False
            return True
        if isinstance(a, float) and isinstance(b, float):
            if a == b or (math.isnan(a) and math.isnan(b)):
                return True
            return self.fail(a, b, "different values")
        if isinstance(a, enum.Enum) or isinstance(b, enum.Enum):
            return True if a == b else self.fail(a, b, "different values")
        if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return self.fail(a, b, f"{type(a).__name__} vs {type(b).__name__}")
        try:
            same = bool(a == b)
        except Exception:
            same = False
        return True if same else self.fail(a, b, "different values")

    def fields(self, a: Node, b: Node, skip) -> bool:
        for name in a._fields:
            if name in skip:
                continue
            self.path.append("." + name)
            ok = self.eq(getattr(a, name), getattr(b, name))
            self.path.pop()
            if not ok:
                return False
        return True


def structural_equal(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are equal up to renaming of variables and buffers."""
    from .printer import deep_recursion

    with deep_recursion():
        return _Equal().eq(a, b)


class StructuralMismatch(AssertionError):
    """Raised by ``assert_structural_equal``: says where two programs first differ."""


def _text(x) -> str:
    try:
        return x.script() if isinstance(x, Node) else repr(x)
    except Exception as err:  # pragma: no cover - printing is best effort here
        return f"<unprintable {type(x).__name__}: {err}>"


def assert_structural_equal(a: Any, b: Any) -> None:
    """Fail with a readable diff when ``a`` and ``b`` are not structurally equal."""
    chk = _Equal()
    if chk.eq(a, b):
        return
    path, x, y, why = chk.mismatch or ("<root>", a, b, "differ")
    lines = [f"the programs differ at {path}: {why}",
             f"  left:  {_text(x)[:300]}",
             f"  right: {_text(y)[:300]}"]
    ta, tb = _text(a).splitlines(), _text(b).splitlines()
    diff = list(difflib.unified_diff(ta, tb, "left", "right", lineterm="", n=2))
    if diff:
        lines.append("script diff:")
        lines.extend(diff[:200])
    else:
        lines.append("(the printed scripts are identical: the difference is in variable or buffer identity, "
                     "dtypes of constants, or attributes not shown)")
    raise StructuralMismatch("\n".join(lines))


class _Hasher:
    def __init__(self):
        self.ids: dict[int, int] = {}
        self.h = hashlib.blake2b(digest_size=8)

    def put(self, s: str) -> None:
        self.h.update(s.encode())
        self.h.update(b"\x00")

    def walk(self, x) -> None:
        if isinstance(x, _FUNCTIONS):
            saved, self.ids = self.ids, {}
            self.put(type(x).__name__)
            for name in x._fields:
                self.walk(getattr(x, name))
            self.ids = saved
            return
        if isinstance(x, np.ndarray):
            self.put(f"array:{x.dtype.name}:{x.shape}")
            self.h.update(np.ascontiguousarray(x).tobytes())
            return
        if isinstance(x, _BOUND):
            k = self.ids.get(id(x))
            if k is not None:
                self.put(f"ref{k}")
                return
            self.ids[id(x)] = len(self.ids)
            self.put(type(x).__name__)
            skip = _NAME_FIELDS[type(x)]
            for name in x._fields:
                if name not in skip:
                    self.walk(getattr(x, name))
            return
        if isinstance(x, Node):
            self.put(type(x).__name__)
            for name in x._fields:
                self.walk(getattr(x, name))
            return
        if isinstance(x, (tuple, list)):
            self.put(f"seq{len(x)}")
            for y in x:
                self.walk(y)
            return
        if isinstance(x, dict):
            self.put(f"map{len(x)}")
            for k, v in x.items():
                self.walk(k)
                self.walk(v)
            return
        if isinstance(x, enum.Enum):
            self.put(str(x.value))
            return
        self.put(f"{type(x).__name__}:{x!r}")


def structural_hash(x: Any) -> int:
    """A hash consistent with ``structural_equal`` (renaming does not change it)."""
    from .printer import deep_recursion

    h = _Hasher()
    with deep_recursion():
        h.walk(x)
    return int.from_bytes(h.h.digest(), "little")


__all__ = ["structural_equal", "assert_structural_equal", "structural_hash", "StructuralMismatch"]
