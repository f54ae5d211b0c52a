"""Statements of the loop-level IR: loops, blocks, stores, branches, sequences.

A block is TensorIR's unit of computation: iteration variables (spatial or
reduce, each with a domain), the regions it reads and writes, an optional init
statement for reductions, and a body. A ``BlockRealize`` places a block in the
loop nest by binding its iteration variables to expressions of the loops.
"""
from __future__ import annotations

from enum import Enum

from .buffer import Buffer
from .dtype import DTypeError, is_bool
from .expr import IntImm, PrimExpr, Range, Var, convert, convert_index
from .node import FrozenDict, Node, freeze_dict, node, set_field


class Stmt(Node):
    """Base of statements."""

    __slots__ = ()
    __hash__ = object.__hash__


class ForKind(str, Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    VECTORIZED = "vectorized"
    UNROLLED = "unrolled"
    THREAD_BINDING = "thread_binding"

    def __str__(self) -> str:
        return self.value


THREAD_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z",
               "vthread.x", "vthread.y", "vthread.z")


@node
class For(Stmt):
    """``for loop_var in range(min, min + extent)`` of a kind, with annotations.

    ``thread`` names the thread axis of a thread-bound loop (``"threadIdx.x"``).
    """

    loop_var: Var
    min: PrimExpr
    extent: PrimExpr
    kind: ForKind
    body: Stmt
    thread: str | None = None
    annotations: FrozenDict = None  # type: ignore[assignment]

    def __post_init__(self):
        if not isinstance(self.loop_var, Var):
            raise TypeError(f"a loop variable must be a Var, got {type(self.loop_var).__name__}")
        set_field(self, "min", convert(self.min, self.loop_var.dtype))
        set_field(self, "extent", convert(self.extent, self.loop_var.dtype))
        try:
            set_field(self, "kind", ForKind(self.kind))
        except ValueError:
            raise ValueError(f"unknown loop kind {self.kind!r}; expected one of "
                             f"{', '.join(k.value for k in ForKind)}") from None
        if self.kind == ForKind.THREAD_BINDING:
            if self.thread not in THREAD_TAGS:
                raise ValueError(f"loop {self.loop_var.name}: unknown thread axis {self.thread!r}; "
                                 f"expected one of {', '.join(THREAD_TAGS)}")
        elif self.thread is not None:
            raise ValueError(f"loop {self.loop_var.name}: only thread-bound loops name a thread")
        set_field(self, "annotations", freeze_dict(self.annotations))
        _check_stmt(self.body, "For body")


class IterType(str, Enum):
    SPATIAL = "spatial"
    REDUCE = "reduce"
    OPAQUE = "opaque"

    def __str__(self) -> str:
        return self.value


@node
class IterVar(Node):
    """A block iteration variable with its domain and kind (spatial or reduce)."""

    var: Var
    dom: Range
    iter_type: IterType = IterType.SPATIAL

    def __post_init__(self):
        if isinstance(self.dom, (int, PrimExpr)):
            set_field(self, "dom", Range(IntImm(0, self.var.dtype), convert(self.dom, self.var.dtype)))
        set_field(self, "iter_type", IterType(self.iter_type))

    __hash__ = object.__hash__


@node
class BufferRegion(Node):
    """A rectangle of a buffer: one ``Range`` per dimension (``A[0:16, vk]``)."""

    buffer: Buffer
    region: tuple

    def __post_init__(self):
        region = tuple(r if isinstance(r, Range) else Range(convert(r), IntImm(1)) for r in self.region)
        if len(region) != len(self.buffer.shape):
            raise IndexError(f"region of buffer {self.buffer.name} has {len(region)} ranges for "
                             f"{len(self.buffer.shape)} dimensions")
        set_field(self, "region", region)

    __hash__ = object.__hash__


@node
class MatchBufferRegion(Node):
    """Inside a block: ``buffer`` is a view of the region ``source``."""

    buffer: Buffer
    source: BufferRegion


@node
class BufferStore(Stmt):
    """``buffer[indices] = value``."""

    buffer: Buffer
    value: PrimExpr
    indices: tuple

    def __post_init__(self):
        if not isinstance(self.buffer, Buffer):
            raise TypeError(f"BufferStore needs a Buffer, got {type(self.buffer).__name__}")
        idx = tuple(convert_index(i, self.buffer, k) for k, i in enumerate(self.indices))
        if len(idx) != len(self.buffer.shape):
            raise IndexError(f"buffer {self.buffer.name} has {len(self.buffer.shape)} dimension(s) "
                             f"but is indexed with {len(idx)}")
        set_field(self, "indices", idx)
        from .dtype import lanes_of, with_lanes

        lanes = max((lanes_of(i.dtype) for i in idx), default=1)
        want = with_lanes(self.buffer.dtype, lanes)
        value = convert(self.value, want)
        if value.dtype != want:
            raise DTypeError(f"cannot store `{value}` of dtype {value.dtype} into {self.buffer.name} "
                             f"of dtype {self.buffer.dtype}; cast it with wb.cast(..., \"{self.buffer.dtype}\")")
        set_field(self, "value", value)


@node
class Block(Stmt):
    """A unit of computation with iteration variables and read/write regions.

    ``init`` runs before the first iteration of the reduce iteration variables.
    """

    name: str
    iter_vars: tuple = ()
    reads: tuple = ()
    writes: tuple = ()
    body: Stmt = None  # type: ignore[assignment]
    init: Stmt | None = None
    alloc_buffers: tuple = ()
    match_buffers: tuple = ()
    annotations: FrozenDict = None  # type: ignore[assignment]

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a block needs a non-empty name, got {self.name!r}")
        for f in ("iter_vars", "reads", "writes", "alloc_buffers", "match_buffers"):
            set_field(self, f, tuple(getattr(self, f)))
        _check_stmt(self.body, f"body of block {self.name}")
        if self.init is not None:
            _check_stmt(self.init, f"init of block {self.name}")
        set_field(self, "annotations", freeze_dict(self.annotations))


@node
class BlockRealize(Stmt):
    """A block placed in the loop nest: its iteration variables bound to ``iter_values``.

    The block runs only where ``predicate`` holds.
    """

    iter_values: tuple
    predicate: PrimExpr
    block: Block

    def __post_init__(self):
        vals = tuple(convert(v) for v in self.iter_values)
        if len(vals) != len(self.block.iter_vars):
            raise ValueError(f"block {self.block.name} has {len(self.block.iter_vars)} iteration variables "
                             f"but {len(vals)} bindings")
        for v, iv in zip(vals, self.block.iter_vars):
            if v.dtype != iv.var.dtype:
                raise DTypeError(f"block {self.block.name}: {iv.var.name} ({iv.var.dtype}) bound to `{v}` ({v.dtype})")
        set_field(self, "iter_values", vals)
        p = convert(True if self.predicate is None else self.predicate, "bool")
        if not is_bool(p.dtype):
            raise DTypeError(f"block {self.block.name}: predicate `{p}` must be bool, got {p.dtype}")
        set_field(self, "predicate", p)


@node
class IfThenElse(Stmt):
    condition: PrimExpr
    then_case: Stmt
    else_case: Stmt | None = None

    def __post_init__(self):
        c = convert(self.condition, "bool")
        if not is_bool(c.dtype):
            raise DTypeError(f"`if` needs a bool condition, got `{c}` ({c.dtype})")
        set_field(self, "condition", c)
        _check_stmt(self.then_case, "then branch")
        if self.else_case is not None:
            _check_stmt(self.else_case, "else branch")


@node
class SeqStmt(Stmt):
    """Statements run in order."""

    seq: tuple

    def __post_init__(self):
        flat: list = []
        for s in self.seq:
            if isinstance(s, SeqStmt):
                flat.extend(s.seq)
            else:
                _check_stmt(s, "sequence element")
                flat.append(s)
        set_field(self, "seq", tuple(flat))


@node
class LetStmt(Stmt):
    """``var = value`` visible in ``body`` (``x = wb.let(value)`` in the script form)."""

    var: Var
    value: PrimExpr
    body: Stmt

    def __post_init__(self):
        value = convert(self.value, self.var.dtype)
        if value.dtype != self.var.dtype:
            raise DTypeError(f"let {self.var.name}: value of dtype {value.dtype} for a {self.var.dtype} variable")
        set_field(self, "value", value)
        _check_stmt(self.body, "let body")


@node
class Allocate(Stmt):
    """Allocation of ``buffer`` (after lowering), live in ``body``."""

    buffer: Buffer
    body: Stmt

    def __post_init__(self):
        _check_stmt(self.body, "allocate body")


@node
class Evaluate(Stmt):
    """Evaluate an expression for its effect (an external call)."""

    value: PrimExpr

    def __post_init__(self):
        set_field(self, "value", convert(self.value))


@node
class AssertStmt(Stmt):
    """Check ``condition`` at run time; fail with ``message`` otherwise."""

    condition: PrimExpr
    message: str
    body: Stmt

    def __post_init__(self):
        set_field(self, "condition", convert(self.condition, "bool"))
        _check_stmt(self.body, "assert body")


def _check_stmt(s, where: str) -> None:
    if not isinstance(s, Stmt):
        raise TypeError(f"{where} must be a statement, got {type(s).__name__}")


def seq(*stmts: Stmt) -> Stmt:
    """A ``SeqStmt`` of the statements, or the single one."""
    flat = [s for s in stmts if s is not None]
    return flat[0] if len(flat) == 1 else SeqStmt(tuple(flat))


__all__ = [
    "Stmt", "ForKind", "For", "IterType", "IterVar", "BufferRegion", "MatchBufferRegion", "BufferStore",
    "Block", "BlockRealize", "IfThenElse", "SeqStmt", "LetStmt", "Allocate", "Evaluate", "AssertStmt",
    "THREAD_TAGS", "seq",
]
