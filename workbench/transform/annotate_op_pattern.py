"""``AnnotateOpPattern``: set each tensor program's ``attrs["op_pattern"]`` from its structure.

The kinds are TVM's (``PATTERNS``, from most to least fusible): ``elementwise``, ``broadcast``,
``injective``, ``reduction``, ``out_ewise_fusible``, ``opaque``. Each block (but the root) is
classified from its one store and its loads, as TVM's ``AnnotateTIROpPattern`` does:

* every load is indexed like the store (``B[i, j] = f(A[i, j])``): ``elementwise``;
* some load's indices are a subsequence of the store's (``C[i, j] = A[i, j] + b[j]``): ``broadcast``;
* the store's indices are iteration variables and each load uses no other iteration variable
  (``B[j, i] = A[i, j]``, ``B[i] = T[ids[i]]``, a reshape's ``A[(i * s + j) // 16]``): ``injective``;
* otherwise a block with reduction iterators is ``out_ewise_fusible`` when it is a multiply-accumulate
  over loads that reuse data (``C[i, j] += A[i, k] * B[k, j]``) or reads a reduced operand at a
  computed index (pooling), else ``reduction`` (``s[i] += A[i, k]``);
* anything else (several stores in one block, a store at a computed index without reduction):
  ``opaque``.

The program's kind is the largest of its blocks' kinds (a program without blocks is ``opaque``).
A program that already has ``op_pattern`` keeps it (write your own to override the analysis).

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((4, 8), name="A")
>>> k = te.reduce_axis(8, name="k")
>>> B = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="B")
>>> mod = wb.IRModule({"rowsum": wb.create_prim_func([A, B], name="rowsum")})
>>> "op_pattern" in mod["rowsum"].attrs      # before
False
>>> AnnotateOpPattern()(mod)["rowsum"].attrs["op_pattern"]      # after
'reduction'
"""
from __future__ import annotations

from ..ir.expr import Add, BufferLoad, Cast, Mul, PrimExpr, Var
from ..ir.function import IRModule, PrimFunc
from ..ir.functor import Visitor, collect_vars
from ..ir.graph.op import PATTERNS
from ..ir.stmt import Block, BufferStore, IterType
from ..ir.structural import _Equal
from .pass_infra import Pass

_RANK = {p: k for k, p in enumerate(PATTERNS)}


class AnnotateOpPattern(Pass):
    """Set ``attrs["op_pattern"]`` of every tensor program that has none (see the module docstring)."""

    def transform(self, mod: IRModule) -> IRModule:
        functions = dict(mod.functions)
        for name, f in mod.prim_funcs.items():
            if "op_pattern" not in f.attrs:
                functions[name] = f.with_attr("op_pattern", analyze_op_pattern(f))
        return mod.replace(functions=functions)


def pattern_of(func: PrimFunc) -> str:
    """``func``'s ``op_pattern`` attribute, or the analysis when it has none."""
    p = func.attrs.get("op_pattern")
    return p if p in _RANK else analyze_op_pattern(func)


def combine(a: str, b: str) -> str:
    """The less fusible of two kinds."""
    return a if _RANK[a] >= _RANK[b] else b


def analyze_op_pattern(func: PrimFunc) -> str:
    """The fusion kind of a tensor program (one of ``PATTERNS``; see the module docstring)."""
    blocks = _Blocks()
    blocks.visit(func.body)
    if not blocks.found:
        return "opaque"
    kind = "elementwise"
    for block in blocks.found:
        kind = combine(kind, _block_kind(block))
    return kind


class _Blocks(Visitor):
    """The blocks of a program (the root block's body is entered, not classified)."""

    def __init__(self):
        self.found: list[Block] = []

    def visit_Block(self, b: Block) -> None:
        if b.name == "root":
            self.visit(b.body)
        else:
            self.found.append(b)


class _Accesses(Visitor):
    def __init__(self):
        self.stores: list[BufferStore] = []
        self.loads: list[BufferLoad] = []

    def visit_BufferStore(self, s: BufferStore) -> None:
        self.stores.append(s)
        self.generic_visit(s)

    def visit_BufferLoad(self, ld: BufferLoad) -> None:
        self.loads.append(ld)
        self.generic_visit(ld)

    def visit_Block(self, b: Block) -> None:
        self.stores.append(None)  # a nested block: opaque to this analysis


def _block_kind(block: Block) -> str:
    acc = _Accesses()
    acc.visit(block.body)
    if len(acc.stores) != 1 or acc.stores[0] is None:
        return "opaque"
    store = acc.stores[0]
    iter_ids = {id(iv.var) for iv in block.iter_vars}
    kind = _index_kind(store, acc.loads, iter_ids)
    if kind is not None:
        return kind
    reduce_vars = [iv.var for iv in block.iter_vars if iv.iter_type == IterType.REDUCE]
    if not reduce_vars:
        return "opaque"
    if _is_fma(store):
        return "out_ewise_fusible"
    if any(not _pure_reduce(reduce_vars, ld.indices) for ld in acc.loads):
        return "out_ewise_fusible"
    return "reduction"


def _same(a: PrimExpr, b: PrimExpr) -> bool:
    """Equal expressions, with variables compared by identity."""
    if a is b:
        return True
    if isinstance(a, Var) or isinstance(b, Var):
        return False
    chk = _Equal()
    for v in collect_vars(a) + collect_vars(b):
        chk.fwd[id(v)] = v
        chk.bwd[id(v)] = v
    return chk.eq(a, b)


def _index_kind(store: BufferStore, loads: list[BufferLoad], iter_ids: set[int]) -> str | None:
    """elementwise / broadcast / injective from the index pairs (store, load); None when one fits none."""
    kind = "elementwise"
    for ld in loads:
        if _elementwise(store, ld):
            continue
        if _broadcast(store, ld):
            kind = combine(kind, "broadcast")
        elif _injective(store, ld, iter_ids):
            kind = combine(kind, "injective")
        else:
            return None
    return kind


def _elementwise(store: BufferStore, ld: BufferLoad) -> bool:
    return len(store.indices) == len(ld.indices) and all(_same(a, b) for a, b in zip(store.indices, ld.indices))


def _broadcast(store: BufferStore, ld: BufferLoad) -> bool:
    """The load's indices appear among the store's, in order (unit dimensions read at 0 skipped)."""
    j = 0
    for dim, idx in zip(ld.buffer.shape, ld.indices):
        if _is_const(dim, 1) and _is_const(idx, 0):
            continue
        while j < len(store.indices) and not _same(store.indices[j], idx):
            j += 1
        if j == len(store.indices):
            return False
        j += 1
    return True


def _injective(store: BufferStore, ld: BufferLoad, iter_ids: set[int]) -> bool:
    """The store is at iteration variables and the load uses no other iteration variable (size variables such
    as ``s`` in a reshape's index arithmetic are fine; TVM refuses them and calls a symbolic reshape opaque)."""
    if not all(isinstance(i, Var) for i in store.indices):
        return False
    allowed = {id(v) for v in store.indices}
    return all(id(v) in allowed or id(v) not in iter_ids for i in ld.indices for v in _index_vars(i))


def _index_vars(e: PrimExpr) -> list[Var]:
    """The variables of an index expression (nested loads' indices included, buffer shapes not)."""
    out: list[Var] = []

    class V(Visitor):
        def visit_Var(self, v):
            out.append(v)

        def visit_BufferLoad(self, ld):
            self.visit(ld.indices)

    V().visit(e)
    return out


def _is_const(e, value: int) -> bool:
    return getattr(e, "value", None) == value and not isinstance(e, Var)


def _strip_cast(e: PrimExpr) -> PrimExpr:
    while isinstance(e, Cast):
        e = e.value
    return e


def _is_fma(store: BufferStore) -> bool:
    """``C[idx] = C[idx] + A[..] * B[..]`` where each operand reuses data (does not use every store index)."""
    v = store.value
    if not isinstance(v, Add) or not isinstance(v.a, BufferLoad) or not isinstance(v.b, Mul):
        return False
    acc = v.a
    if acc.buffer is not store.buffer or not _elementwise(store, acc):
        return False
    lhs, rhs = _strip_cast(v.b.a), _strip_cast(v.b.b)
    return isinstance(lhs, BufferLoad) and isinstance(rhs, BufferLoad) and _reuses(store, lhs) and \
        _reuses(store, rhs)


def _reuses(store: BufferStore, ld: BufferLoad) -> bool:
    if not all(isinstance(i, Var) for i in store.indices):
        return False
    used = {id(v) for i in ld.indices for v in _index_vars(i)}
    return any(id(v) not in used for v in store.indices)


def _pure_reduce(reduce_vars: list[Var], indices) -> bool:
    """Every index that uses a reduction variable is exactly that variable."""
    for idx in indices:
        used = {id(v) for v in _index_vars(idx)}
        if any(id(rv) in used for rv in reduce_vars) and not any(idx is rv for rv in reduce_vars):
            return False
    return True


__all__ = ["AnnotateOpPattern", "analyze_op_pattern", "pattern_of", "combine"]
