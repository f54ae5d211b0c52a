"""Calling compiled kernels from the VM without checking, on every call, what the VM already checked.

A compiled kernel (``BuiltFunction``) checks each argument (type, dtype, rank, shape,
contiguity, overlap, writability) and binds its size variables on every call, which costs
far more than a small kernel's run. In the VM the dtypes and ranks are known to match
(checked when the VM is made), arrays are C-contiguous (inputs are made so, outputs are
fresh), so only the shapes can still disagree with the kernel's buffers. :class:`KernelCall`
therefore makes the kernel's full checked call the first time it sees a combination of
argument shapes, and afterwards, for those shapes, passes the data pointers and the size
variables (read from the argument shapes) straight to the native entry point. When a call
site (:meth:`KernelCall.site`, one per VM instruction) passes the very array objects of its
previous call (weights, and the VM's reused storage views), even the pointers are not read
again (reading ``a.ctypes.data`` costs a microsecond, more than a small kernel's run).

>>> import numpy as np
>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((wb.var("n"),), "float32", name="A")
>>> m = wb.build(te.create_prim_func([A, te.compute(A.shape, lambda i: A[i] + 1.0, name="B")], name="inc"),
...              target="llvm")
>>> call = KernelCall(m["inc"])
>>> a = np.arange(3, dtype="float32"); b = np.empty(3, "float32")
>>> call(a, b); call(a, b); b.tolist(), call.fast
([1.0, 2.0, 3.0], True)
"""
from __future__ import annotations

import ctypes
import weakref

from ..ir import expr as E

#: distinct argument-shape combinations remembered per kernel (forgotten all at once beyond this)
MAX_SHAPES = 4096


class KernelCall:
    """``call(*arrays)``: the kernel's checked call for new argument shapes, a direct native call after that."""

    def __init__(self, kernel):
        from .llvm.codegen import ERR_SLOTS
        from .llvm.module import BuiltFunction

        self.kernel = kernel
        self.name = kernel.name
        self._err_slots = ERR_SLOTS
        sources = _size_sources(kernel) if type(kernel) is BuiltFunction else None
        self.fast = sources is not None and not kernel.module.host_lacks
        self._sources = sources or []
        self._nbuf = max(1, len(kernel.params))
        self._nvar = max(1, len(self._sources))
        self._seen: set = set()
        self._default_site: list = [None]
        self._shape_rule = _shape_rule(kernel) if self.fast else None

    def __call__(self, *arrays) -> None:
        self.call_at(self._default_site, arrays)

    def site(self) -> "KernelSite":
        """A callable for one place that calls this kernel (a VM instruction): it remembers that place's
        last arrays, so a call with the very same ones skips reading their pointers again."""
        return KernelSite(self)

    def call_at(self, site: list, arrays: tuple) -> None:
        """Call with ``arrays``; ``site[0]`` is ``(last arrays, bufs address, sizes address, bufs, sizes)`` of
        the caller's last direct call (or None), replaced here. The state is one tuple, read once and replaced
        whole, so threads calling the same site never mix one call's arrays with another's pointers, and the
        pointer arrays stay alive (held by ``state``) while the kernel runs."""
        state = site[0]
        if state is not None and len(arrays) == len(state[0]) and all(r() is a for r, a in zip(state[0], arrays)):
            bufs, scal = state[1], state[2]    # the very arrays of the last call: same pointers and sizes
        else:
            key = tuple(a.shape for a in arrays)
            if not self.fast or key not in self._seen and not self._shapes_fit(key):
                site[0] = None
                self.kernel(*arrays)  # every check; raises on a mismatch
                if len(self._seen) >= MAX_SHAPES:
                    self._seen.clear()
                self._seen.add(key)
                return
            b = (ctypes.c_void_p * self._nbuf)(*[a.ctypes.data for a in arrays])
            c = (ctypes.c_int64 * self._nvar)(*[0 if pos < 0 else arrays[pos].shape[d] for pos, d in self._sources])
            bufs, scal = ctypes.addressof(b), ctypes.addressof(c)
            # remembered by weak references: a remembered array is never kept alive, and one that died (its
            # memory perhaps reused by a new array) no longer matches
            state = ([weakref.ref(a) for a in arrays], bufs, scal, b, c)
            site[0] = state
        err = (ctypes.c_int64 * self._err_slots)()
        rc = self.kernel._cfn(bufs, scal, ctypes.addressof(err))
        if rc:
            self.kernel._raise(rc, err)

    def _shapes_fit(self, shapes: tuple) -> bool:
        """Whether argument ``shapes`` fit the kernel's buffers: each constant dimension equal, each size
        variable the same wherever it appears (a new value of a size variable, such as the cached length
        of a KV cache growing by one each step, then needs no full checked call). Remembered when true."""
        rule = self._shape_rule
        if rule is None or not self._seen or len(shapes) != len(rule):   # the first call is fully checked
            return False
        sizes: dict = {}
        for shape, dims in zip(shapes, rule):
            if len(shape) != len(dims):
                return False
            for n, want in zip(shape, dims):
                if isinstance(want, int):
                    if n != want:
                        return False
                elif sizes.setdefault(want, n) != n:
                    return False
        if len(self._seen) >= MAX_SHAPES:
            self._seen.clear()
        self._seen.add(shapes)
        return True

    def __repr__(self) -> str:
        return f"<KernelCall {self.name} ({'fast' if self.fast else 'checked'})>"


def _shape_rule(kernel) -> list | None:
    """Per parameter, its dimensions: an int for a constant one, ``("size", id of the variable)`` for a
    symbolic one; None when a dimension is another expression (``n + 1``), which only the full check evaluates."""
    rule = []
    for p in kernel.params:
        buf = p.buffer
        dims = []
        for dim in buf.shape:
            if isinstance(dim, E.IntImm):
                dims.append(dim.value)
            elif isinstance(dim, E.Var):
                dims.append(("size", id(dim)))
            else:
                return None
        rule.append(tuple(dims))
    return rule


def _size_sources(kernel) -> list | None:
    """For each scalar slot of ``kernel``, ``(argument, dim)`` whose extent is that size variable, or ``(-1, 0)``
    for a zero element offset; None when some slot has no such source (strides, scalar parameters)."""
    where: dict[int, tuple[int, int]] = {}
    offsets: set[int] = set()
    for pos, p in enumerate(kernel.params):
        buf = p.buffer
        if buf is None or buf.strides:
            return None
        if isinstance(buf.elem_offset, E.Var):
            offsets.add(id(buf.elem_offset))
        for d, dim in enumerate(buf.shape):
            if isinstance(dim, E.Var):
                where.setdefault(id(dim), (pos, d))
    sources = []
    for v in kernel.var_order:
        if id(v) in where:
            sources.append(where[id(v)])
        elif id(v) in offsets:
            sources.append((-1, 0))
        else:
            return None
    return sources


class KernelSite:
    """``site(*arrays)``: one call site's calls of a :class:`KernelCall` (see :meth:`KernelCall.site`)."""

    __slots__ = ("call", "state")

    def __init__(self, call: KernelCall):
        self.call, self.state = call, [None]

    def __call__(self, *arrays) -> None:
        self.call.call_at(self.state, arrays)

    def __repr__(self) -> str:
        return f"<KernelSite of {self.call!r}>"


__all__ = ["KernelCall", "KernelSite", "MAX_SHAPES"]
