"""Buffers: multi-dimensional arrays that programs read and write.

>>> from workbench.ir.buffer import Buffer
>>> A = Buffer("A", (128, 64), "float32")
>>> print(A[3, 4])
A[3, 4]
>>> print(A[0:16, 4])   # a region, as in wb.reads(...)
A[0:16, 4]
"""
from __future__ import annotations

from typing import Sequence

from .dtype import DTypeError, normalize_dtype
from .expr import BufferLoad, IntImm, PrimExpr, Range, convert, convert_index, mul
from .node import Node, node, set_field

SCOPES = ("global", "shared", "shared.dyn", "local", "warp", "wmma.matrix_a", "wmma.matrix_b",
          "wmma.accumulator")


class ScopeError(ValueError):
    """An unknown storage scope."""


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ScopeError(f"unknown storage scope {scope!r}; expected one of {', '.join(SCOPES)}")
    return scope


@node
class Buffer(Node):
    """A named array: ``shape`` (ints or symbolic expressions), ``dtype``, ``scope``.

    ``strides`` is empty for a compact row-major buffer; ``elem_offset`` is the
    offset of element ``[0, ..., 0]`` from the start of the data, in elements.
    Buffers are compared by identity, like variables.
    """

    name: str
    shape: tuple
    dtype: str = "float32"
    strides: tuple = ()
    elem_offset: PrimExpr = None  # type: ignore[assignment]
    scope: str = "global"
    offset_factor: int = 0
    align: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a buffer needs a non-empty name, got {self.name!r}")
        if isinstance(self.shape, (int, PrimExpr)):
            set_field(self, "shape", (self.shape,))
        shape = tuple(_dim(d, self.name, k) for k, d in enumerate(self.shape))
        set_field(self, "shape", shape)
        set_field(self, "dtype", normalize_dtype(self.dtype))
        set_field(self, "strides", tuple(convert_index(s, self) for s in self.strides))
        if self.strides and len(self.strides) != len(shape):
            raise ValueError(f"buffer {self.name}: {len(self.strides)} strides for {len(shape)} dimensions")
        set_field(self, "elem_offset", IntImm(0) if self.elem_offset is None else convert_index(self.elem_offset, self))
        check_scope(self.scope)

    __hash__ = object.__hash__

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, indices):
        if not isinstance(indices, tuple):
            indices = (indices,)
        if any(isinstance(i, slice) for i in indices):
            from .stmt import BufferRegion

            return BufferRegion(self, tuple(_to_range(i, self, k) for k, i in enumerate(indices)))
        return BufferLoad(self, tuple(indices))

    def load(self, indices: Sequence) -> BufferLoad:
        return BufferLoad(self, tuple(indices))

    def full_region(self):
        from .stmt import BufferRegion

        return BufferRegion(self, tuple(Range(IntImm(0, _idx_dtype(d)), d) for d in self.shape))

    def compact_strides(self) -> tuple[PrimExpr, ...]:
        """Row-major strides of the shape, in elements (the actual strides if given)."""
        if self.strides:
            return self.strides
        out: list[PrimExpr] = []
        acc: PrimExpr = IntImm(1)
        for d in reversed(self.shape):
            out.append(acc)
            acc = mul(acc, d)
        return tuple(reversed(out))

    def with_shape(self, shape, name: str | None = None) -> "Buffer":
        return Buffer(name or self.name, tuple(shape), self.dtype, (), None, self.scope)


def _idx_dtype(d: PrimExpr) -> str:
    return d.dtype if isinstance(d, PrimExpr) else "int32"


def _dim(d, name: str, k: int) -> PrimExpr:
    if isinstance(d, str):
        raise TypeError(f"buffer {name}: dimension {k} is the string {d!r}; pass a variable (wb.var({d!r}))")
    e = convert(d)
    from .dtype import is_integer

    if not is_integer(e.dtype):
        raise DTypeError(f"buffer {name}: dimension {k} must be an integer, got `{e}` ({e.dtype})")
    if isinstance(e, IntImm) and e.value < 0:
        raise ValueError(f"buffer {name}: dimension {k} is negative ({e.value})")
    return e


def _to_range(i, buf: Buffer, k: int) -> Range:
    if isinstance(i, slice):
        if i.step not in (None, 1):
            raise ValueError(f"buffer {buf.name}: regions take unit steps, got step {i.step}")
        start = convert_index(0 if i.start is None else i.start, buf, k)
        stop = buf.shape[k] if i.stop is None else convert_index(i.stop, buf, k)
        return Range.from_begin_end(start, stop)
    e = convert_index(i, buf, k)
    return Range(e, IntImm(1, e.dtype))


def decl_buffer(shape, dtype="float32", name="buf", scope="global", strides=(), elem_offset=None) -> Buffer:
    """Make a buffer: ``decl_buffer((128, 128), "float32", name="A")``."""
    return Buffer(name, tuple(shape) if not isinstance(shape, (int, PrimExpr)) else (shape,), dtype,
                  tuple(strides), elem_offset, scope)


__all__ = ["Buffer", "decl_buffer", "SCOPES", "ScopeError", "check_scope"]
