"""Move intermediate buffers next to their uses and shrink them to the region used there.

TVM's ``PlanAndUpdateBufferAllocationLocation`` + ``CompactBufferAllocation``, run on the
plain loops that ``lower_blocks`` leaves (every intermediate buffer is then an ``Allocate``).
For each ``Allocate``:

1. the allocation point becomes the lowest common ancestor loop (or let) of all accesses
   to the buffer, so a ``local`` accumulator of one tile lives inside the tile's loops;
2. the buffer shrinks to the rectangle its accesses touch while the loops *inside* that
   point run over their domains (``workbench.ir.arith`` region analysis), and every index
   is shifted by the rectangle's minimum.

Moving an allocation inside a loop makes it fresh for each iteration. That is only done
when the rectangles used by different iterations of that loop are disjoint (so no value
can flow from one iteration to the next); otherwise the allocation stays outside the loop.
For a fused loop ``f`` the rectangle may move through ``f // c`` in one dimension and
``f % c`` in another: they are disjoint when each piece strides past its dimension's extent
and the pieces together tell every value of ``f`` apart (a bijective iterator map).
A dimension of symbolic extent proves nothing, but the constant ones still may (a register
tile under a symbolic batch loop). On a GPU each block has its own ``shared`` buffer and
each thread its own ``local`` one, so such buffers move inside ``blockIdx`` (and, for
``local``, ``threadIdx``) loops whatever their iterations touch; a ``shared`` buffer covers
all threads of its block (``threadIdx`` loops are relaxed) and is allocated outside them.
The ``if`` conditions an access runs under narrow its region (``p * 8 + q < 66``).
A buffer is shrunk only when the new extents are constants no larger than the old ones,
and moved inside loops only when it then fits on the stack. Buffers with explicit strides
or an offset, and buffers with data-dependent indices, are left alone.

3. a buffer that ``storage_align`` aligned (kept by ``record_dim_aligns`` in the function
   attribute ``"buffer_dim_align"``) gets explicit strides, the aligned axis' stride raised
   to ``k * factor + offset`` (as TVM does); ``flatten_buffers`` then indexes with them.

Before (``cache_write(C, 0, "local")`` + ``reverse_compute_at``, blocks lowered)::

    C_local = wb.allocate((64, 64), "float32", scope="local")
    for i_0 in wb.parallel(16):
        for j_0 in range(4):
            for i_1, j_1 in wb.grid(4, 16):
                C_local[i_0 * 4 + i_1, j_0 * 16 + j_1] = 0.0
            ...
            for ax0, ax1 in wb.grid(4, 16):
                C[i_0 * 4 + ax0, j_0 * 16 + ax1] = C_local[i_0 * 4 + ax0, j_0 * 16 + ax1]

After::

    for i_0 in wb.parallel(16):
        for j_0 in range(4):
            C_local = wb.allocate((4, 16), "float32", scope="local")
            for i_1, j_1 in wb.grid(4, 16):
                C_local[i_1, j_1] = 0.0
            ...
            for ax0, ax1 in wb.grid(4, 16):
                C[i_0 * 4 + ax0, j_0 * 16 + ax1] = C_local[ax0, ax1]
"""
from __future__ import annotations

from ...ir.arith import Analyzer, detect_iter_map
from ...ir.arith.linear import AtomTable, linear_atoms
from ...ir.arith.region import _index_bounds
from ...ir import expr as E
from ...ir.buffer import Buffer
from ...ir.dtype import bits_of
from ...ir.function import PrimFunc
from ...ir.functor import Mutator, Visitor, post_order_visit, substitute, uses_var
from ...ir.stmt import Allocate, Block, BufferStore, For, ForKind, IfThenElse, LetStmt
from .allocate import STACK_LIMIT


class _Accesses(Visitor):
    """Every access to one buffer, with the chain of loops/lets above it (inside the allocation) and the
    conditions of the ``if``s it sits in (the access runs only where they hold)."""

    def __init__(self, buf: Buffer):
        self.buf = buf
        self.chain: list = []
        self.conds: list = []
        self.found: list = []   # (chain tuple, indices, conditions tuple)
        self.opaque = False     # the buffer is re-allocated below: leave it alone

    def visit_For(self, s: For):
        self.visit(s.min)
        self.visit(s.extent)
        self.chain.append(s)
        self.visit(s.body)
        self.chain.pop()

    def visit_LetStmt(self, s: LetStmt):
        self.visit(s.value)
        self.chain.append(s)
        self.visit(s.body)
        self.chain.pop()

    def visit_IfThenElse(self, s: IfThenElse):
        self.visit(s.condition)
        self.conds.append(s.condition)
        self.visit(s.then_case)
        self.conds.pop()
        if s.else_case is not None:
            self.visit(s.else_case)

    def visit_Allocate(self, a: Allocate):
        if a.buffer is self.buf:
            self.opaque = True
        self.generic_visit(a)

    def visit_BufferLoad(self, e: E.BufferLoad):
        if e.buffer is self.buf:
            self.found.append((tuple(self.chain), e.indices, tuple(self.conds)))
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore):
        if s.buffer is self.buf:
            self.found.append((tuple(self.chain), s.indices, tuple(self.conds)))
        self.generic_visit(s)

    def visit_Buffer(self, b):  # shapes of other buffers are not accesses
        pass


def _bound_var(n):
    return n.loop_var if isinstance(n, For) else n.var


def _region(an: Analyzer, accesses: list, depth: int, ndim: int, relaxed: tuple = ()):
    """Union over accesses of the rectangle touched below ``depth`` chain nodes (and over the loops
    ``relaxed``, above ``depth``): [(lo, hi)] or None."""
    out = None
    for chain, indices, conds in accesses:
        inner = tuple(relaxed) + chain[depth:]
        dom: dict = {}
        lets: list = []
        for n in inner:
            if isinstance(n, For):
                dom[id(n.loop_var)] = (n.loop_var, E.Range(n.min, n.extent))
            else:
                lets.append(n)
        bounds = []
        for idx in indices:
            for let in reversed(lets):  # innermost first: a let's value may use outer lets
                idx = substitute(idx, {let.var: let.value})
            lo, hi = _index_bounds(an, idx, dom)
            if lo is None or hi is None:
                return None
            bounds.append(_tightened(an, idx, lo, hi, conds, lets, dom))
        if out is None:
            out = bounds
        else:
            out = [(an.simplify(E.Min(l1, l2)), an.simplify(E.Max(h1, h2)))
                   for (l1, h1), (l2, h2) in zip(out, bounds)]
    # the bounds may name only variables bound at or above the allocation point
    inner_vars = {id(_bound_var(n)) for chain, _, _ in accesses for n in tuple(relaxed) + chain[depth:]}
    for lo, hi in out:
        if uses_var(lo, lambda v: id(v) in inner_vars) or uses_var(hi, lambda v: id(v) in inner_vars):
            return None
    return out


def _tightened(an: Analyzer, idx, lo, hi, conds: tuple, lets: list, dom: dict) -> tuple:
    """``(lo, hi)`` narrowed by the conditions the access runs under: ``L < R`` with ``idx = L + d``, where
    ``d`` and ``R`` use none of the relaxed loops, gives ``idx <= R - 1 + d`` (``L >= R`` a lower bound)."""
    if isinstance(idx, E.Ramp):
        return lo, hi
    inner = set(dom) | {id(let.var) for let in lets}

    def free(e) -> bool:  # no relaxed loop, and nothing read from memory
        return not uses_var(e, lambda v: id(v) in inner) and not _reads_memory(e)

    for cond in conds:
        for term in _conjuncts(cond):
            for left, right, is_upper, strict in _comparisons(term):
                for let in reversed(lets):
                    left = substitute(left, {let.var: let.value})
                    right = substitute(right, {let.var: let.value})
                d = an.simplify(E.Sub(idx, left))
                if not (free(d) and free(right)):
                    continue
                one = E.IntImm(1 if strict else 0, idx.dtype)
                if is_upper:
                    cand = an.simplify(E.Add(E.Sub(right, one), d))
                    if an.can_prove(E.LT(cand, hi)):
                        hi = cand
                else:
                    cand = an.simplify(E.Add(E.Add(right, one), d))
                    if an.can_prove(E.GT(cand, lo)):
                        lo = cand
    return lo, hi


def _reads_memory(e) -> bool:
    found = []
    post_order_visit(e, lambda n: found.append(n) if isinstance(n, (E.BufferLoad, E.Call)) else None)
    return bool(found)


def _conjuncts(cond) -> list:
    if isinstance(cond, E.And):
        return _conjuncts(cond.a) + _conjuncts(cond.b)
    return [cond]


def _comparisons(term) -> list:
    """``term`` as ``[(left, right, left_is_bounded_above, strict)]`` (both ways round)."""
    if isinstance(term, E.LT):
        return [(term.a, term.b, True, True), (term.b, term.a, False, True)]
    if isinstance(term, E.LE):
        return [(term.a, term.b, True, False), (term.b, term.a, False, False)]
    if isinstance(term, E.GT):
        return [(term.a, term.b, False, True), (term.b, term.a, True, True)]
    if isinstance(term, E.GE):
        return [(term.a, term.b, False, False), (term.b, term.a, True, False)]
    return []


def _dim_extents(an: Analyzer, region) -> list:
    """The extent of each dimension of ``region``: an ``int``, or None where it is not a positive constant."""
    out = []
    for lo, hi in region:
        ext = an.simplify(E.Add(E.Sub(hi, lo), E.IntImm(1, lo.dtype)))
        out.append(ext.value if isinstance(ext, E.IntImm) and ext.value >= 1 else None)
    return out


def _extents(an: Analyzer, region) -> list | None:
    """The constant extents of ``region``, or None when one of them is not a positive constant."""
    out = _dim_extents(an, region)
    return None if any(e is None for e in out) else out


def _disjoint_over(an: Analyzer, region, loop: For) -> bool:
    """True when the rectangles of different iterations of ``loop`` never overlap: some dimension of
    constant extent (a symbolic one proves nothing, but does not stop the others) moves past its extent."""
    if isinstance(loop.extent, E.IntImm) and loop.extent.value <= 1:
        return True
    exts = _dim_extents(an, region)
    return _strides_past_tile(an, region, exts, loop.loop_var) or _fused_strides_past_tile(an, region, exts, loop)


def _strides_past_tile(an: Analyzer, region, exts: list, v) -> bool:
    """Some dimension of constant extent has the minimum ``c * v + (terms without v)`` with ``|c| >=``
    the extent."""
    for (lo, _), ext in zip(region, exts):
        if ext is None or not uses_var(lo, v):
            continue
        d1 = an.simplify(E.Sub(substitute(lo, {v: v + 1}), lo))
        d2 = an.simplify(E.Sub(substitute(lo, {v: v + 2}), substitute(lo, {v: v + 1})))
        if isinstance(d1, E.IntImm) and isinstance(d2, E.IntImm) and d1.value == d2.value \
                and abs(d1.value) >= ext:
            return True  # lo = c * v + (terms without v) with |c| >= extent: a stride past the tile
    return False


def _fused_strides_past_tile(an: Analyzer, region, exts: list, loop: For) -> bool:
    """The loop is a fused one (``f``) whose pieces (``f // 2``, ``f % 2``) each move one dimension's
    minimum by at least its extent, and together the pieces tell every iteration apart: two
    iterations then differ in some piece, so their rectangles are apart in that dimension."""
    v = loop.loop_var
    atoms = AtomTable()
    pieces: list = []
    for (lo, _), ext in zip(region, exts):
        if ext is None:
            continue
        lin = linear_atoms(lo, atoms)
        of_v = [k for k in lin if k is not None and uses_var(k, v)]
        if len(of_v) != 1 or abs(lin[of_v[0]]) < ext:
            continue
        piece = of_v[0]
        if uses_var(piece, lambda x: x is not v) or any(p is piece for p in pieces):
            continue
        pieces.append(piece)
    if not pieces or not isinstance(loop.min, E.IntImm) or loop.min.value != 0:
        return False
    return detect_iter_map(pieces, {v: E.Range(loop.min, loop.extent)}, check_level="bijective") is not None


def _common_depth(accesses: list) -> int:
    first = accesses[0][0]
    depth = len(first)
    for chain, _, _ in accesses[1:]:
        d = 0
        while d < min(depth, len(chain)) and chain[d] is first[d]:
            d += 1
        depth = d
    return depth


def _fits_stack(buf: Buffer, exts: list) -> bool:
    n = 1
    for e in exts:
        n *= e
    return n * max(1, bits_of(buf.dtype) // 8) <= STACK_LIMIT


def _smaller(buf: Buffer, exts: list) -> bool:
    """The new extents are no larger than the old (constant) ones, and one is smaller."""
    smaller = False
    for d, e in zip(buf.shape, exts):
        if isinstance(d, E.IntImm):
            if e > d.value:
                return False
            smaller = smaller or e < d.value
        else:
            smaller = True  # a symbolic dimension becomes a constant one
    return smaller


class _Place(Mutator):
    """Wrap the body of ``target`` (or the whole tree when None) in ``Allocate(buf, ...)``."""

    def __init__(self, target, buf: Buffer):
        self.target, self.buf = target, buf

    def visit_For(self, s: For):
        if s is self.target:
            return s.replace(body=Allocate(self.buf, s.body))
        return self.generic_visit(s)

    def visit_LetStmt(self, s: LetStmt):
        if s is self.target:
            return s.replace(body=Allocate(self.buf, s.body))
        return self.generic_visit(s)


class _Rewrite(Mutator):
    """Accesses to ``old`` become accesses to ``new`` with indices shifted by ``mins``."""

    def __init__(self, old: Buffer, new: Buffer, mins: list, an: Analyzer):
        self.old, self.new, self.mins, self.an = old, new, mins, an

    def _shift(self, indices):
        out = []
        for idx, lo in zip(indices, self.mins):
            if isinstance(lo, E.IntImm) and lo.value == 0:
                out.append(idx)
            elif isinstance(idx, E.Ramp):
                out.append(E.Ramp(self.an.simplify(E.Sub(idx.base, lo)), idx.stride, idx.lanes))
            else:
                out.append(self.an.simplify(E.Sub(idx, lo)))
        return tuple(out)

    def visit_BufferLoad(self, e: E.BufferLoad):
        e = self.generic_visit(e)
        if e.buffer is not self.old:
            return e
        return E.BufferLoad(self.new, self._shift(e.indices))

    def visit_BufferStore(self, s: BufferStore):
        s = self.generic_visit(s)
        if s.buffer is not self.old:
            return s
        return BufferStore(self.new, s.value, self._shift(s.indices))


#: function attribute: intermediate buffer name -> ((axis, factor, offset), ...) from ``storage_align``
DIM_ALIGN_ATTR = "buffer_dim_align"


class _DimAligns(Visitor):
    """The ``buffer_dim_align`` annotations of every block, by the name of the buffer they align."""

    def __init__(self):
        self.found: dict[str, dict[int, tuple]] = {}

    def visit_Block(self, b: Block):
        for entry in b.annotations.get(DIM_ALIGN_ATTR, ()):
            k, axis, factor, offset = (int(x) for x in entry)
            if not 0 <= k < len(b.writes):
                raise ValueError(f"block {b.name}: its {DIM_ALIGN_ATTR} annotation names write buffer {k}, but the "
                                 f"block writes {len(b.writes)} buffers")
            self.found.setdefault(b.writes[k].buffer.name, {})[axis] = (factor, offset)
        self.generic_visit(b)


def record_dim_aligns(func: PrimFunc) -> PrimFunc:
    """Keep the blocks' ``buffer_dim_align`` annotations (``storage_align``) in the function attribute
    ``"buffer_dim_align"``, so that ``compact_buffers`` can honour them once ``lower_blocks`` removed
    the blocks. Run it before ``lower_blocks``.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8, 8), "float32", name="A")
    >>> B = te.compute((8, 8), lambda i, j: A[i, j] * 2.0, name="B")
    >>> C = te.compute((8, 8), lambda i, j: B[j, i], name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, C]))
    >>> sch.storage_align(sch.get_block("B"), 0, axis=0, factor=16, offset=1)
    >>> record_dim_aligns(sch.func).attrs["buffer_dim_align"]
    {'B': ((0, 16, 1),)}
    """
    det = _DimAligns()
    det.visit(func.body)
    if not det.found:
        return func
    aligns = {name: tuple((axis, f, o) for axis, (f, o) in sorted(axes.items())) for name, axes in det.found.items()}
    return func.with_attr(DIM_ALIGN_ATTR, aligns)


def aligned_strides(shape, aligns, an: Analyzer) -> tuple:
    """Row-major strides of ``shape`` with the stride of each aligned axis raised to ``k * factor + offset``
    (TVM's storage alignment): ``(64, 64)`` with axis 0 aligned to 32 + 1 has strides ``(65, 1)``."""
    by_axis = {axis: (factor, offset) for axis, factor, offset in aligns}
    stride = E.IntImm(1, shape[-1].dtype if shape else "int32")
    out = []
    for dim in range(len(shape) - 1, -1, -1):
        if dim in by_axis:
            factor, offset = (E.IntImm(x, stride.dtype) for x in by_axis[dim])
            stride = an.simplify(stride + E.FloorMod(factor + offset - E.FloorMod(stride, factor), factor))
        out.append(stride)
        stride = an.simplify(stride * shape[dim])
    return tuple(reversed(out))


class _Compact(Mutator):
    def __init__(self, aligns: dict | None = None):
        self.an = Analyzer()
        self.compacted: dict[str, tuple] = {}
        self.aligns = aligns or {}

    def _aligned(self, buf: Buffer) -> Buffer:
        """``buf`` with the strides its ``storage_align`` asks for (``buf`` itself when there is none)."""
        aligns = self.aligns.get(buf.name)
        if not aligns or buf.strides:
            return buf
        return Buffer(buf.name, buf.shape, buf.dtype, aligned_strides(buf.shape, aligns, self.an), None,
                      buf.scope, buf.offset_factor, buf.align)

    def visit_Allocate(self, a: Allocate):
        body = self.visit(a.body)
        buf = a.buffer
        plan = self._plan(buf, body)
        if plan is None:
            out = a if body is a.body else Allocate(buf, body)
            aligned = self._aligned(buf)
            return out if aligned is buf else substitute(out, {}, {buf: aligned})
        target, region, exts = plan
        new = self._aligned(Buffer(buf.name, tuple(E.IntImm(e, _index_dtype(buf, k)) for k, e in enumerate(exts)),
                                   buf.dtype, (), None, buf.scope, buf.offset_factor, buf.align))
        if target is None:
            placed = Allocate(buf, body)
        else:
            placed = _Place(target, buf).visit(body)
        out = _Rewrite(buf, new, [lo for lo, _ in region], self.an).visit(placed)
        if target is None:
            out = Allocate(new, out.body)
        else:
            out = substitute(out, {}, {buf: new})
        self.compacted[buf.name] = tuple(exts)
        return out

    def _plan(self, buf: Buffer, body):
        if buf.strides or not (isinstance(buf.elem_offset, E.IntImm) and buf.elem_offset.value == 0):
            return None
        if not buf.shape:
            return None
        acc = _Accesses(buf)
        acc.visit(body)
        if acc.opaque or not acc.found:
            return None
        chain = acc.found[0][0]
        depth = _common_depth(acc.found)
        shared_threads = _shared_thread_loops(buf, chain[:depth])

        def relaxed_above(d: int) -> tuple:
            return tuple(t for t in shared_threads if _index_in(chain, t) < d)

        # never make a buffer fresh per iteration of a loop whose iterations share elements (unless each
        # iteration has its own copy anyway: a GPU block's shared memory, a thread's local memory)
        for m in range(depth - 1, -1, -1):
            if not isinstance(chain[m], For) or _private_per_iteration(buf, chain[m]) \
                    or any(chain[m] is t for t in shared_threads):
                continue
            reg = _region(self.an, acc.found, m + 1, len(buf.shape), relaxed_above(m + 1))
            if reg is None or not _disjoint_over(self.an, reg, chain[m]):
                depth = m
        while depth > 0:
            reg = _region(self.an, acc.found, depth, len(buf.shape), relaxed_above(depth))
            exts = _extents(self.an, reg) if reg is not None else None
            if exts is not None and (_is_shared(buf) or _fits_stack(buf, exts)) \
                    and (_smaller(buf, exts) or _same(buf, exts)):
                return _placement(chain, depth, shared_threads), reg, exts
            depth -= 1  # try one level up: a bigger region, still next to its uses
        reg = _region(self.an, acc.found, 0, len(buf.shape))
        exts = _extents(self.an, reg) if reg is not None else None
        if exts is not None and _smaller(buf, exts):
            return None, reg, exts  # shrink in place
        return None


def _is_shared(buf: Buffer) -> bool:
    return buf.scope.split(".")[0] == "shared"


def _thread_axis(loop: For) -> str | None:
    """``"blockIdx"`` / ``"threadIdx"`` / ``"vthread"`` for a thread-bound loop, else None."""
    return loop.thread.split(".")[0] if loop.kind == ForKind.THREAD_BINDING and loop.thread else None


def _private_per_iteration(buf: Buffer, loop: For) -> bool:
    """Each iteration of ``loop`` has its own copy of ``buf`` on a GPU: a ``shared`` buffer per block
    (``blockIdx``), a ``local`` one per block and thread (``blockIdx``, ``threadIdx``)."""
    axis = _thread_axis(loop)
    if axis == "blockIdx":
        return _is_shared(buf) or buf.scope == "local"
    return axis == "threadIdx" and buf.scope == "local"


def _shared_thread_loops(buf: Buffer, chain: tuple) -> tuple:
    """The ``threadIdx`` loops of ``chain`` when ``buf`` is ``shared``: all threads of a block use one copy,
    so its region covers every thread (the loops are relaxed) and its allocation stays outside them."""
    if not _is_shared(buf):
        return ()
    return tuple(n for n in chain if isinstance(n, For) and _thread_axis(n) == "threadIdx")


def _index_in(chain: tuple, node) -> int:
    return next(k for k, n in enumerate(chain) if n is node)


def _placement(chain: tuple, depth: int, shared_threads: tuple):
    """Where the allocation goes for a region taken at ``depth``: the node above it, or above the outermost
    ``threadIdx`` loop of a ``shared`` buffer (None: where the allocation already is)."""
    if shared_threads:
        depth = min(depth, _index_in(chain, shared_threads[0]))
    return chain[depth - 1] if depth > 0 else None


def _same(buf: Buffer, exts: list) -> bool:
    return all(isinstance(d, E.IntImm) and d.value == e for d, e in zip(buf.shape, exts))


def _index_dtype(buf: Buffer, k: int) -> str:
    return buf.shape[k].dtype


def compact_buffers(func: PrimFunc) -> PrimFunc:
    """Allocate each intermediate buffer at the innermost loop holding all its uses, shrunk to what it uses.

    Records the new shapes in the function attribute ``"compacted"`` (name -> shape). Buffers named in
    the attribute ``"buffer_dim_align"`` (see ``record_dim_aligns``) get their aligned strides.

    >>> import workbench as wb
    >>> from workbench.backend.lower import lower_blocks
    >>> from workbench.demo import matmul_schedules
    >>> sch = matmul_schedules(64, target="llvm -mcpu=znver3")["register tile"]   # AVX2: 4 x 16 tile
    >>> f = compact_buffers(lower_blocks(sch.mod["main"]))
    >>> f.attrs["compacted"]["C_local"]
    (4, 16)
    """
    c = _Compact(func.attrs.get(DIM_ALIGN_ATTR))
    body = c.visit(func.body)
    if body is func.body:
        return func
    out = func.with_body(body)
    if c.compacted:
        out = out.with_attr("compacted", dict(c.compacted))
    return out


__all__ = ["compact_buffers", "record_dim_aligns", "aligned_strides", "DIM_ALIGN_ATTR"]
