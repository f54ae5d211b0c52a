"""The host/device split of GPU programs: which loops become kernels, where scoped buffers live, where threads sync.

After flattening, a program for a GPU target is host code around *kernels*: each
kernel is an outermost loop bound to a GPU thread axis (``blockIdx.*`` or
``threadIdx.*``) with everything inside it. :func:`split_host_device`

- marks each kernel root with the annotation ``{"kernel": "<func>_kernel<k>"}``;
- moves the allocations of ``shared`` and ``local`` buffers into the kernel that uses
  them (``global`` intermediates stay on the host, which allocates them on the device);
- inserts ``storage_sync("shared")`` (a barrier) where shared memory that some threads
  wrote is read, and before it is overwritten in the next iteration of a loop;
- refuses work left on the host: a loop not bound to a thread axis that does not
  contain kernels (it would run serially on the host) is named in a
  :class:`UnboundLoopError`.

Before (``B[i] = A[i] * 2`` with ``i`` split by 64 and bound)::

    for i_0 in wb.thread_binding(2, thread="blockIdx.x"):
        for i_1 in wb.thread_binding(64, thread="threadIdx.x"):
            B[i_0 * 64 + i_1] = A[i_0 * 64 + i_1] * 2.0

After: the same loops, the outer one annotated ``{"kernel": "main_kernel0"}``.
The host loops around kernels (a serial ``for`` that launches a kernel per
iteration) stay on the host.
"""
from __future__ import annotations

from ...ir.expr import Call, StringImm
from ...ir.function import PrimFunc
from ...ir.functor import Mutator, post_order_visit
from ...ir.stmt import (Allocate, AssertStmt, Evaluate, For, ForKind, IfThenElse, LetStmt, SeqStmt, Stmt,
                        BufferStore, seq)
from ...ir.expr import BufferLoad

SHARED_SCOPES = ("shared", "shared.dyn")
DEVICE_SCOPES = SHARED_SCOPES + ("local",)
KERNEL_KEY = "kernel"


class UnboundLoopError(ValueError):
    """A program for a GPU target leaves work outside every thread-bound loop (it would run on the host)."""


def is_thread_loop(s: Stmt) -> bool:
    return isinstance(s, For) and s.kind == ForKind.THREAD_BINDING


def contains_thread_loop(s: Stmt) -> bool:
    found = []
    post_order_visit(s, lambda n: found.append(n) if is_thread_loop(n) else None)
    return bool(found)


def barrier() -> Stmt:
    """The statement that makes every thread of a block wait and see the others' shared-memory writes."""
    return Evaluate(Call("storage_sync", (StringImm("shared"),), "int32"))


def is_barrier(s: Stmt) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.op == "storage_sync"


# ---------------------------------------------------------------------------------------------------------
# host-level checks


def _written_buffer(s: Stmt) -> str:
    names: list[str] = []
    post_order_visit(s, lambda n: names.append(n.buffer.name) if isinstance(n, BufferStore) else None)
    return names[0] if names else "nothing"


def _unbound_loop_error(loop: For, kind: str) -> UnboundLoopError:
    how = "is a parallel (CPU) loop" if loop.kind == ForKind.PARALLEL else "is not bound to a GPU thread axis"
    return UnboundLoopError(
        f"loop {loop.loop_var.name} (which writes {_written_buffer(loop)}) {how}, so it would run serially on "
        f"the host; a program for the {kind} target must bind its outer parallel work: "
        f"sch.bind(loop, \"blockIdx.x\") / sch.bind(loop, \"threadIdx.x\") (split it first to get both)")


def _host_store_error(s: Stmt, kind: str) -> UnboundLoopError:
    return UnboundLoopError(
        f"the store to {_written_buffer(s)} is outside every thread-bound loop, so it would run on the host; "
        f"a program for the {kind} target must do all its work in loops bound with sch.bind(...)")


class _Splitter:
    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind
        self.count = 0

    def host(self, s: Stmt) -> Stmt:
        """Walk host code; return it with kernels marked."""
        if is_thread_loop(s):
            return self.kernel(s)
        if isinstance(s, SeqStmt):
            return seq(*[self.host(c) for c in s.seq])
        if isinstance(s, Allocate):
            body = self.host(s.body)
            if s.buffer.scope in DEVICE_SCOPES:
                return self._move_into_kernel(s, body)
            return Allocate(s.buffer, body)
        if isinstance(s, For):
            if not contains_thread_loop(s.body) or s.kind == ForKind.PARALLEL:
                raise _unbound_loop_error(s, self.kind)
            return s.replace(body=self.host(s.body))
        if isinstance(s, (LetStmt, AssertStmt)):
            return s.replace(body=self.host(s.body))
        if isinstance(s, IfThenElse) and contains_thread_loop(s):
            els = None if s.else_case is None else self.host(s.else_case)
            return IfThenElse(s.condition, self.host(s.then_case), els)
        raise _host_store_error(s, self.kind)

    def kernel(self, root: For) -> For:
        name = f"{self.name}_kernel{self.count}"
        self.count += 1
        body = insert_barriers(root.body)
        return root.replace(body=body, annotations={**dict(root.annotations), KERNEL_KEY: name})

    def _move_into_kernel(self, alloc: Allocate, body: Stmt) -> Stmt:
        """Put ``alloc`` (a shared or local buffer) inside the one kernel of ``body`` that uses it."""
        users = [k for k in _kernels(body) if _uses_buffer(k, alloc.buffer)]
        if not users:
            return body
        if len(users) > 1:
            names = ", ".join(k.annotations[KERNEL_KEY] for k in users)
            raise ValueError(f"{alloc.buffer.scope} buffer {alloc.buffer.name} is used by {len(users)} kernels "
                             f"({names}); a {alloc.buffer.scope} buffer lives only during one kernel launch: "
                             "compute_at its producer under the consumer's thread-bound loops")
        target = users[0]
        moved = target.replace(body=Allocate(alloc.buffer, target.body))
        return _replace_stmt(body, target, moved)


def _kernels(s: Stmt) -> list[For]:
    out: list[For] = []
    post_order_visit(s, lambda n: out.append(n) if isinstance(n, For) and KERNEL_KEY in n.annotations else None)
    return out


def _uses_buffer(s: Stmt, buf) -> bool:
    hits = []

    def f(n):
        if isinstance(n, (BufferLoad, BufferStore)) and n.buffer is buf:
            hits.append(n)
    post_order_visit(s, f)
    return bool(hits)


class _ReplaceStmt(Mutator):
    def __init__(self, old: Stmt, new: Stmt):
        self.old, self.new = old, new

    def visit(self, n):
        if n is self.old:
            return self.new
        return super().visit(n)


def _replace_stmt(tree: Stmt, old: Stmt, new: Stmt) -> Stmt:
    return _ReplaceStmt(old, new).visit(tree)


# ---------------------------------------------------------------------------------------------------------
# barriers


def _shared_access(s: Stmt) -> tuple[set, set]:
    """(shared buffers read, shared buffers written) anywhere in ``s``, by identity."""
    reads: set = set()
    writes: set = set()

    def f(n):
        if isinstance(n, BufferLoad) and n.buffer.scope in SHARED_SCOPES:
            reads.add(n.buffer)
        elif isinstance(n, BufferStore) and n.buffer.scope in SHARED_SCOPES:
            writes.add(n.buffer)
    post_order_visit(s, f)
    return reads, writes


class _InsertBarriers(Mutator):
    """Conservative thread synchronisation: a barrier before any statement that reads shared memory written
    since the last barrier, or overwrites shared memory read since then; and at the end of a loop body that
    both writes and reads a shared buffer (its next iteration overwrites what this one read)."""

    def visit_SeqStmt(self, s: SeqStmt):
        out: list[Stmt] = []
        pending_reads: set = set()
        pending_writes: set = set()
        for child in s.seq:
            child = self.visit(child)
            reads, writes = _shared_access(child)
            if (reads & pending_writes) or (writes & pending_reads):
                out.append(barrier())
                pending_reads, pending_writes = set(), set()
            out.append(child)
            pending_reads |= reads
            pending_writes |= writes
        return seq(*out)

    def visit_For(self, s: For):
        body = self.visit(s.body)
        if s.kind != ForKind.THREAD_BINDING or (s.thread or "").startswith("vthread"):
            reads, writes = _shared_access(body)
            if reads & writes and not _ends_with_barrier(body):
                body = seq(body, barrier())
        return s if body is s.body else s.replace(body=body)


def _ends_with_barrier(s: Stmt) -> bool:
    last = s.seq[-1] if isinstance(s, SeqStmt) else s
    return is_barrier(last)


def insert_barriers(kernel_body: Stmt) -> Stmt:
    """Insert ``storage_sync("shared")`` where threads of one block must wait for each other (see the class)."""
    return _InsertBarriers().visit(kernel_body)


# ---------------------------------------------------------------------------------------------------------


def make_split_host_device(kind: str):
    """The ``split_host_device`` pass for GPU targets of ``kind`` (the kind only words the error messages)."""

    def split_host_device(func: PrimFunc) -> PrimFunc:
        """Mark kernels, move shared/local allocations into them, insert barriers; refuse host-side work."""
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in func.name)
        return func.with_body(_Splitter(name, kind).host(func.body))

    return split_host_device


split_host_device = make_split_host_device("opencl")

__all__ = ["split_host_device", "make_split_host_device", "UnboundLoopError", "insert_barriers", "barrier",
           "is_barrier", "is_thread_loop", "KERNEL_KEY", "SHARED_SCOPES", "DEVICE_SCOPES"]
