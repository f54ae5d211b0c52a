"""Well-formedness of tensor programs: the invariants every pass and primitive must keep.

``verify_well_formed(func)`` returns ``None`` for a well-formed ``PrimFunc`` and
otherwise raises ``WellFormedError`` listing every problem found:

- block names are unique;
- every variable is bound once: no loop reuses a variable bound by an enclosing or an
  earlier loop, iteration variables belong to one block, no let rebinds a variable;
- a block's iteration variables are bound (``iter_values``) to expressions of loop
  variables of the enclosing loops and size variables only;
- inside a block with iteration variables, loops outside the block are seen only through
  those iteration variables (as in TVM);
- no variable is used where it is not defined, no buffer where it is not declared;
- constant indices of accesses, and the read/write regions of blocks, lie inside the
  buffer's shape wherever the bounds can be decided (``workbench.ir.arith`` bounds them over
  the iteration domains).

>>> import workbench as wb
>>> from workbench.ir.verify import verify_well_formed, WellFormedError
>>> f = wb.parse('''
... def f(A: wb.Buffer((4,), "float32")):
...     for i in wb.serial(4):
...         A[i] = 0.0
...     A[4] = 1.0
... ''')
>>> try:
...     verify_well_formed(f)
... except WellFormedError as err:
...     print(err)
function f is not well formed (1 problem):
  - A[4]: index 4 of dimension 0 is outside the shape (4,), in the function body

With the environment variable ``WORKBENCH_VERIFY=1`` (read when this module is first
imported) every ``Schedule`` primitive verifies the program it produces, and an
ill-formed result raises ``IllFormedProgramError`` naming the primitive.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable

from .buffer import Buffer
from .expr import BufferLoad, IntImm, Let, PrimExpr, Range, Var
from .function import PrimFunc
from .functor import Visitor, collect_vars
from .stmt import (
    Allocate, AssertStmt, Block, BlockRealize, BufferRegion, BufferStore, Evaluate, For, IfThenElse, LetStmt,
    SeqStmt, Stmt,
)

#: ``WORKBENCH_VERIFY=1``: ``Schedule`` verifies the program after every primitive (a debug mode)
VERIFY_AFTER_PRIMITIVES = os.environ.get("WORKBENCH_VERIFY", "").strip() not in ("", "0")

_MAX_LISTED = 20


class WellFormedError(ValueError):
    """A program breaks the IR's invariants; ``problems`` lists each one as a sentence."""

    def __init__(self, func_name: str, problems: list[str]):
        self.func_name = func_name
        self.problems = list(problems)
        shown = [f"  - {p}" for p in problems[:_MAX_LISTED]]
        if len(problems) > _MAX_LISTED:
            shown.append(f"  ... and {len(problems) - _MAX_LISTED} more")
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(f"function {func_name} is not well formed ({count}):\n" + "\n".join(shown))


class IllFormedProgramError(AssertionError):
    """Internal error (``WORKBENCH_VERIFY=1``): a schedule primitive produced an ill-formed program."""

    def __init__(self, primitive: str, error: WellFormedError):
        self.primitive = primitive
        self.error = error
        super().__init__(f"internal error: the primitive {primitive} produced an ill-formed program; "
                         f"this is a bug in {primitive}, please report it.\n{error}")


def verify_well_formed(func: PrimFunc) -> None:
    """Raise ``WellFormedError`` listing every broken invariant of ``func`` (see the module docstring).

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> verify_well_formed(wb.create_prim_func([A, B])) is None
    True
    """
    if not isinstance(func, PrimFunc):
        raise TypeError(f"verify_well_formed checks a PrimFunc, got {type(func).__name__}")
    problems = well_formed_problems(func)
    if problems:
        raise WellFormedError(func.name, problems)


def well_formed_problems(func: PrimFunc) -> list[str]:
    """The problems ``verify_well_formed`` would report, as sentences (empty when well formed)."""
    from .printer import deep_recursion

    with deep_recursion():
        return _Checker(func).run()


def check_primitive_result(primitive: str, func: PrimFunc) -> None:
    """Raise ``IllFormedProgramError`` when the program a schedule primitive produced is ill formed."""
    try:
        verify_well_formed(func)
    except WellFormedError as err:
        raise IllFormedProgramError(primitive, err) from None


# the checker -------------------------------------------------------------------------------


class _Scope:
    """Variables and buffers visible at a point, and which loop variables a block hides."""

    def __init__(self):
        self.vars: dict[int, Var] = {}
        self.loop_depth: dict[int, int] = {}   # id(loop var) -> number of enclosing non-opaque blocks
        self.buffers: dict[int, Buffer] = {}
        self.blocks: list[str] = []            # enclosing non-opaque blocks, innermost last


class _Checker:
    def __init__(self, func: PrimFunc):
        from .arith import Analyzer

        self.func = func
        self.problems: dict[str, None] = {}      # ordered set
        self.bound_by: dict[int, str] = {}       # id(var) -> where it was first bound
        self.block_names: dict[str, int] = {}
        self.size_vars: set[int] = set()
        self.scope = _Scope()
        self.where = "the function body"
        self.an = Analyzer()

    def problem(self, text: str) -> None:
        self.problems[f"{text}, in {self.where}"] = None

    # entry ---------------------------------------------------------------------------------
    def run(self) -> list[str]:
        f = self.func
        for p in f.params:
            self.bind(p, f"parameter {p.name}")
        for b in f.buffer_map.values():
            self.scope.buffers[id(b)] = b
            for v in _buffer_vars(b):
                if id(v) not in self.scope.vars:
                    self.bind(v, f"size variable {v.name}")
        self.size_vars = set(self.scope.vars)
        self.stmt(f.body)
        for name, count in self.block_names.items():
            if count > 1:
                self.problems[f"{count} blocks are named {name!r}; block names must be unique"] = None
        return list(self.problems)

    # binding -------------------------------------------------------------------------------
    def bind(self, v: Var, what: str) -> None:
        first = self.bound_by.get(id(v))
        if first is not None:
            self.problem(f"{what} rebinds the variable {v.name}, already bound as {first}")
        else:
            self.bound_by[id(v)] = what
        self.scope.vars[id(v)] = v

    def unbind(self, v: Var) -> None:
        self.scope.vars.pop(id(v), None)
        self.scope.loop_depth.pop(id(v), None)

    # expressions -----------------------------------------------------------------------------
    def expr(self, e, what: str) -> None:
        if isinstance(e, (PrimExpr, Range, BufferRegion, tuple, list)):
            _ExprChecker(self, what).visit(e)

    def use_var(self, v: Var, what: str) -> None:
        if id(v) not in self.scope.vars:
            self.problem(f"{what} uses the variable {v.name}, which is not defined there")
            return
        depth = self.scope.loop_depth.get(id(v))
        if depth is not None and depth < len(self.scope.blocks):
            self.problem(f"{what} uses the loop variable {v.name} of a loop outside block "
                         f"{self.scope.blocks[-1]!r}; a block sees outer loops only through its iteration variables")

    def use_buffer(self, b: Buffer, what: str) -> None:
        if id(b) not in self.scope.buffers:
            self.problem(f"{what} uses the buffer {b.name}, which is not declared there (not a parameter, "
                         f"alloc_buffer, match_buffer or allocate in scope)")

    def access(self, b: Buffer, indices: tuple) -> None:
        """Constant indices inside constant dimensions."""
        for k, (i, d) in enumerate(zip(indices, b.shape)):
            if isinstance(i, IntImm) and isinstance(d, IntImm) and not 0 <= i.value < d.value:
                self.problem(f"{b.name}[{', '.join(map(str, indices))}]: index {i.value} of dimension {k} is "
                             f"outside the shape {_shape_text(b)}")

    def region_in_bounds(self, r: BufferRegion, what: str) -> None:
        """A region that sticks out of its buffer in *every* iteration of the block is a problem.

        Regions over-approximate guarded accesses (a padding block reads ``x[vi - 1]`` under
        ``if_then_else(vi >= 1, ...)``, as in TVM), so sticking out in some iterations is allowed.
        """
        b = r.buffer
        for k, (rg, d) in enumerate(zip(r.region, b.shape)):
            if not isinstance(d, IntImm) or rg.min.dtype != rg.extent.dtype:
                continue
            if isinstance(rg.extent, IntImm) and rg.extent.value <= 0:
                self.problem(f"the {what} region {r} has the empty extent {rg.extent.value} in dimension {k}")
                continue
            start = self.an.const_int_bound(rg.min)
            last = self.an.const_int_bound(rg.min + rg.extent - 1)
            if start.max_value < 0 or last.min_value >= d.value:
                self.problem(f"the {what} region {r} always reaches outside the shape {_shape_text(b)} in "
                             f"dimension {k} (it starts at {_span(start)} and ends at {_span(last)})")

    # statements ----------------------------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        method = getattr(self, "stmt_" + type(s).__name__, None)
        if method is None:
            self.problem(f"unknown statement {type(s).__name__}")
            return
        method(s)

    def stmt_SeqStmt(self, s: SeqStmt) -> None:
        for x in s.seq:
            self.stmt(x)

    def stmt_BufferStore(self, s: BufferStore) -> None:
        what = f"the store to {s.buffer.name}"
        self.use_buffer(s.buffer, what)
        self.expr(s.value, what)
        self.expr(s.indices, what)
        self.access(s.buffer, s.indices)

    def stmt_Evaluate(self, s: Evaluate) -> None:
        self.expr(s.value, "an evaluated expression")

    def stmt_IfThenElse(self, s: IfThenElse) -> None:
        self.expr(s.condition, "an if condition")
        self.stmt(s.then_case)
        if s.else_case is not None:
            self.stmt(s.else_case)

    def stmt_AssertStmt(self, s: AssertStmt) -> None:
        self.expr(s.condition, "an assert condition")
        self.stmt(s.body)

    def stmt_LetStmt(self, s: LetStmt) -> None:
        self.expr(s.value, f"the value of let {s.var.name}")
        self.bind(s.var, f"let {s.var.name}")
        self.stmt(s.body)
        self.unbind(s.var)

    def stmt_Allocate(self, s: Allocate) -> None:
        self.expr(s.buffer.shape, f"the shape of {s.buffer.name}")
        self.scope.buffers[id(s.buffer)] = s.buffer
        self.stmt(s.body)
        self.scope.buffers.pop(id(s.buffer), None)

    def stmt_For(self, s: For) -> None:
        v = s.loop_var
        self.expr((s.min, s.extent), f"the range of loop {v.name}")
        self.bind(v, f"loop {v.name}")
        self.scope.loop_depth[id(v)] = len(self.scope.blocks)
        self.an.bind(v, Range(s.min, s.extent))
        self.stmt(s.body)
        self.unbind(v)

    def stmt_BlockRealize(self, s: BlockRealize) -> None:
        b = s.block
        self.block_names[b.name] = self.block_names.get(b.name, 0) + 1
        self.bindings(s)
        self.expr(s.predicate, f"the predicate of block {b.name!r}")
        for iv in b.iter_vars:
            self.expr(iv.dom, f"the domain of {iv.var.name} in block {b.name!r}")
        self.block(b)

    def stmt_Block(self, b: Block) -> None:
        self.block_names[b.name] = self.block_names.get(b.name, 0) + 1
        self.block(b)

    def bindings(self, s: BlockRealize) -> None:
        """Iteration variables are bound to expressions of enclosing loop variables and size variables."""
        for iv, value in zip(s.block.iter_vars, s.iter_values):
            what = f"the binding of {iv.var.name} in block {s.block.name!r}"
            self.expr(value, what)
            for v in collect_vars(value):
                if id(v) in self.scope.vars and id(v) not in self.scope.loop_depth and id(v) not in self.size_vars:
                    self.problem(f"{what} uses {v.name}, which is not a loop variable of an enclosing loop "
                                 f"nor a size variable")

    def block(self, b: Block) -> None:
        saved_where = self.where
        self.where = f"block {b.name!r}"
        opaque = not b.iter_vars
        for iv in b.iter_vars:
            self.bind(iv.var, f"iteration variable {iv.var.name} of block {b.name!r}")
            self.an.bind(iv.var, iv.dom)
        if not opaque:
            self.scope.blocks.append(b.name)
        for buf in b.alloc_buffers:
            self.expr(buf.shape, f"the shape of {buf.name}")
            self.scope.buffers[id(buf)] = buf
        for mb in b.match_buffers:
            self.region(mb.source, f"the source of match_buffer {mb.buffer.name}")
            for v in _buffer_vars(mb.buffer):
                if id(v) not in self.scope.vars:
                    self.bind(v, f"variable {v.name} of match_buffer {mb.buffer.name}")
            self.scope.buffers[id(mb.buffer)] = mb.buffer
        for r in b.reads:
            self.region(r, "read")
        for r in b.writes:
            self.region(r, "write")
        if b.init is not None:
            self.stmt(b.init)
        self.stmt(b.body)
        for buf in (*b.alloc_buffers, *(mb.buffer for mb in b.match_buffers)):
            self.scope.buffers.pop(id(buf), None)
        for iv in b.iter_vars:
            self.unbind(iv.var)
        if not opaque:
            self.scope.blocks.pop()
        self.where = saved_where

    def region(self, r: BufferRegion, what: str) -> None:
        self.use_buffer(r.buffer, f"the {what} region of {r.buffer.name}")
        self.expr(r.region, f"the {what} region of {r.buffer.name}")
        self.region_in_bounds(r, what)


class _ExprChecker(Visitor):
    """Uses of variables and buffers inside one expression (let-expressions scoped)."""

    def __init__(self, checker: _Checker, what: str):
        self.c = checker
        self.what = what

    def visit_Var(self, v: Var) -> None:
        self.c.use_var(v, self.what)

    def visit_BufferLoad(self, e: BufferLoad) -> None:
        self.c.use_buffer(e.buffer, self.what)
        self.visit(e.indices)
        self.c.access(e.buffer, e.indices)

    def visit_Let(self, e: Let) -> None:
        self.visit(e.value)
        known = id(e.var) in self.c.scope.vars
        self.c.scope.vars[id(e.var)] = e.var
        self.visit(e.body)
        if not known:
            self.c.scope.vars.pop(id(e.var), None)


def _buffer_vars(b: Buffer) -> Iterable[Var]:
    return collect_vars((b.shape, b.strides, b.elem_offset))


def _shape_text(b: Buffer) -> str:
    dims = [str(d) for d in b.shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _span(b) -> str:
    """``5`` or ``[0, 7]`` for a constant bound (``-inf``/``inf`` where unbounded)."""
    def num(x) -> str:
        return str(int(x)) if not math.isinf(x) else ("inf" if x > 0 else "-inf")

    return num(b.min_value) if b.min_value == b.max_value else f"[{num(b.min_value)}, {num(b.max_value)}]"


__all__ = [
    "VERIFY_AFTER_PRIMITIVES",
    "IllFormedProgramError",
    "WellFormedError",
    "check_primitive_result",
    "verify_well_formed",
    "well_formed_problems",
]
