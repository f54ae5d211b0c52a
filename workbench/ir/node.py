"""The base of every IR node: an immutable value with named child fields.

Nodes are frozen dataclasses. ``node.replace(field=value)`` makes a changed copy
that shares every other field, which is how passes and schedule primitives build
new programs while the old one stays intact.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping


class FrozenDict(dict):
    """A dict that refuses changes after construction (annotations, attributes).

    It stays a ``dict`` so it pickles and prints as one.
    """

    __slots__ = ()

    def _refuse(self, *args, **kwargs):
        raise TypeError("IR attributes are immutable; build a new node with .replace(...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __hash__(self):  # type: ignore[override]
        return hash(tuple(sorted((k, repr(v)) for k, v in self.items())))


def freeze_dict(d: Mapping | None) -> FrozenDict:
    if isinstance(d, FrozenDict):
        return d
    return FrozenDict(d or {})


class Node:
    """Base of IR nodes. Subclasses are ``@node`` dataclasses."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def replace(self, **changes: Any):
        """A copy with some fields changed; the rest are shared with ``self``."""
        if all(getattr(self, k) is v for k, v in changes.items()):
            return self
        return dataclasses.replace(self, **changes)

    def children(self) -> Iterator[tuple[str, Any]]:
        for name in self._fields:
            yield name, getattr(self, name)

    def script(self) -> str:
        """The script form of this node (valid Python text)."""
        from .printer import script

        return script(self)

    def __repr__(self) -> str:
        try:
            text = self.script()
        except Exception as err:  # printing must never hide the object
            return f"<{type(self).__name__} (unprintable: {err})>"
        return text


def node(cls=None, *, hashable_by_identity: bool = True):
    """Class decorator: a frozen dataclass whose fields are the node's children."""

    def wrap(c):
        c = dataclasses.dataclass(frozen=True, eq=False, repr=False)(c)
        c._fields = tuple(f.name for f in dataclasses.fields(c))
        return c

    return wrap if cls is None else wrap(cls)


def set_field(obj, name: str, value) -> None:
    """Set a field during ``__post_init__`` normalisation (frozen dataclasses)."""
    object.__setattr__(obj, name, value)
