"""``tensorize``: replace a block by a tensor intrinsic's implementation.

The block (usually made by ``sch.blockize``) must compute exactly what the
intrinsic's description computes: the same loops (extents, in the description's
order), the same iteration variables, the same expression tree with the same dtypes.
Where the block's buffers are larger than the description's, each access may be
shifted by an offset that does not depend on the inner loops (the tile's corner):
those offsets become the regions the implementation's buffers view
(``wb.match_buffer``). A mismatch raises :class:`TensorizeMismatchError` that shows
the two computations side by side and says what differs first.
"""
from __future__ import annotations

from ..ir import expr as E
from ..ir.arith import Analyzer
from ..ir.buffer import Buffer
from ..ir.expr import IntImm, Range, Var, as_int
from ..ir.functor import collect_vars, substitute, uses_var
from ..ir.stmt import Block, BlockRealize, BufferRegion, BufferStore, MatchBufferRegion
from ..ir.structural import structural_equal
from .errors import TensorizeMismatchError, TensorizeLayoutError
from .state import Outcome
from .tensor_intrin.describe import describe_block, innermost
from .tensor_intrin.registry import TensorIntrin, get_tensor_intrin
from .trace import BlockRV, LoopRV
from .tree import rebuild
from .primitive import primitive


class _Mismatch(Exception):
    pass


@primitive("tensorize")
def tensorize(sch, block_or_loop: "BlockRV | LoopRV", tensor_intrin: str, target=None) -> Outcome:
    """Replace a block (or the sub-tree of a loop, blockized first) by a tensor intrinsic.

    ``tensor_intrin`` names a registered intrinsic (``wb.list_tensor_intrins()``). With
    ``target`` (``"llvm"``, ``wb.Target(...)``) the intrinsic's CPU features are checked
    now; otherwise ``wb.build`` checks them.

    With the teaching intrinsic ``matmul_add_4x4`` (a 4 x 4 x 4 multiply-accumulate, any CPU),
    on the update block of a decomposed 4 x 4 x 4 matmul; a loop is blockized first:

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4, 4), "float32", name="A")
    >>> B = te.placeholder((4, 4), "float32", name="B")
    >>> k = te.reduce_axis((0, 4), name="k")
    >>> C = te.compute((4, 4), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    >>> i, j, k = sch.get_loops(sch.get_block("C"))
    >>> init = sch.decompose_reduction(sch.get_block("C"), i)
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4, 4), "float32"),
             C: wb.Buffer((4, 4), "float32")):
        for i_init, j_init in wb.grid(4, 4):
            with wb.block("C_init"):
                v_i, v_j = wb.axis.remap("SS", [i_init, j_init])
                wb.reads()
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = 0.0
        for i, j, k in wb.grid(4, 4, 4):
            with wb.block("C_update"):
                v_i, v_j, v_k = wb.axis.remap("SSR", [i, j, k])
                wb.reads(C[v_i, v_j], A[v_i, v_k], B[v_k, v_j])
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = C[v_i, v_j] + A[v_i, v_k] * B[v_k, v_j]
    >>> sch.tensorize(i, "matmul_add_4x4")
    >>> print(sch.func.script())
    @wb.prim_func
    def main(A: wb.Buffer((4, 4), "float32"), B: wb.Buffer((4, 4), "float32"),
             C: wb.Buffer((4, 4), "float32")):
        sc = wb.int32()
        sa = wb.int32()
        sb = wb.int32()
        for i_init, j_init in wb.grid(4, 4):
            with wb.block("C_init"):
                v_i, v_j = wb.axis.remap("SS", [i_init, j_init])
                wb.reads()
                wb.writes(C[v_i, v_j])
                C[v_i, v_j] = 0.0
        with wb.block("C_update_o"):
            wb.reads(C[0:4, 0:4], A[0:4, 0:4], B[0:4, 0:4])
            wb.writes(C[0:4, 0:4])
            A_1 = wb.match_buffer(A[0:4, 0:4], (4, 4), "float32", strides=(sa, 1), offset_factor=1)
            B_1 = wb.match_buffer(B[0:4, 0:4], (4, 4), "float32", strides=(sb, 1), offset_factor=1)
            C_1 = wb.match_buffer(C[0:4, 0:4], (4, 4), "float32", strides=(sc, 1), offset_factor=1)
            wb.block_attr({"tensorized": "matmul_add_4x4"})
            for i in wb.unroll(4):
                for j in wb.unroll(4):
                    for k in wb.serial(4):
                        C_1[i, j] = C_1[i, j] + A_1[i, k] * B_1[k, j]

    On a CPU with the features, ``sch.tensorize(c_o, "dot_u8s8_vnni")`` replaces a blockized
    16 x 4 tile of an int8 matmul by one ``llvm.x86.avx512.vpdpbusd.512`` call on
    ``wb.match_buffer`` views of the tile.
    """
    intrin = get_tensor_intrin(tensor_intrin)
    if target is not None:
        check_features(intrin, target)
    func = sch.func
    if isinstance(block_or_loop, LoopRV):
        from .blockize import _blockize_loop

        out = _blockize_loop(sch, block_or_loop, True)
        from .tree import Index

        func = out.func
        idx = Index(func)
        realize, anc = idx.blocks[out.outputs[1]]
    elif isinstance(block_or_loop, BlockRV):
        realize, anc = sch.block_of(block_or_loop)
    else:
        from .errors import ScheduleArgumentError

        raise ScheduleArgumentError(f"tensorize needs a block or loop handle, got {block_or_loop!r}")
    new_realize = tensorize_realize(realize, intrin)
    return Outcome(func=rebuild(func, anc, realize, new_realize))


def check_features(intrin: TensorIntrin, target) -> None:
    """Raise when ``target`` lacks a CPU feature ``intrin`` needs."""
    from ..backend.target import TargetFeatureError, missing_features
    from ..backend.target import Target

    tgt = Target(target)
    miss = missing_features(intrin.target_features, tgt)
    if miss:
        err = TargetFeatureError(
            f"tensor intrinsic {intrin.name} needs {', '.join(miss)}, which target {tgt} lacks; "
            f"intrinsics this target has: {', '.join(_usable(tgt)) or 'none'}")
        raise err


def _usable(tgt) -> list[str]:
    from ..backend.target import missing_features
    from .tensor_intrin.registry import list_tensor_intrins

    return [t.name for t in list_tensor_intrins() if not missing_features(t.target_features, tgt)]


# matching --------------------------------------------------------------------------------------


class _Matcher:
    def __init__(self, inner_vars: dict, block_name: str, intrin: TensorIntrin):
        self.vmap = inner_vars          # id(desc iter var) -> program inner iter var
        self.inner_ids = {id(v) for v in inner_vars.values()}
        self.bufs: dict[int, tuple] = {}  # id(desc buffer) -> (desc buffer, program buffer, offsets)
        self.an = Analyzer()
        self.block_name = block_name
        self.intrin = intrin

    def fail(self, msg: str):
        raise _Mismatch(msg)

    def uses_inner(self, e) -> bool:
        return uses_var(e, lambda v: id(v) in self.inner_ids)

    def to_prog(self, e):
        return substitute(e, {v: self.vmap[id(v)] for v in collect_vars(e) if id(v) in self.vmap})

    def access(self, pb: Buffer, pidx, db: Buffer, didx) -> None:
        if pb.dtype != db.dtype:
            self.fail(f"buffer {pb.name} is {pb.dtype} where the description's {db.name} is {db.dtype}")
        if len(pidx) < len(didx):
            self.fail(f"buffer {pb.name} has {len(pidx)} dimension(s) where the description's {db.name} has "
                      f"{len(didx)}")
        lead = len(pidx) - len(didx)
        offs = []
        for k in range(lead):
            if self.uses_inner(pidx[k]):
                self.fail(f"the index `{pidx[k]}` of {pb.name} (dimension {k}) moves with the tile's inner loops, "
                          f"but the description's {db.name} has no such dimension")
            offs.append(pidx[k])
        for m, di in enumerate(didx):
            pi = pidx[lead + m]
            off = self.an.simplify(pi - self.to_prog(di))
            if self.uses_inner(off):
                self.fail(f"{pb.name} is indexed by `{pi}` where the description indexes {db.name} by `{di}` "
                          f"(dimension {lead + m}: the indices do not differ by a fixed offset)")
            offs.append(off)
        prev = self.bufs.get(id(db))
        if prev is None:
            for other in self.bufs.values():
                if other[1] is pb and other[0] is not db:
                    self.fail(f"buffer {pb.name} plays two roles ({other[0].name} and {db.name}) of the description")
            self.bufs[id(db)] = (db, pb, offs)
            return
        if prev[1] is not pb:
            self.fail(f"the description's {db.name} is {prev[1].name} in one place and {pb.name} in another")
        for a, b in zip(prev[2], offs):
            if not structural_equal(self.an.simplify(a - b), IntImm(0, a.dtype)):
                self.fail(f"{pb.name} is accessed at two different offsets ({a} and {b}) where the description "
                          f"uses one tile of {db.name}")

    def expr(self, p, d) -> None:
        if type(p) is not type(d):
            self.fail(f"the block has `{p}` ({type(p).__name__}) where the description has `{d}` "
                      f"({type(d).__name__})")
        if p.dtype != d.dtype:
            self.fail(f"`{p}` is {p.dtype} where the description's `{d}` is {d.dtype}")
        if isinstance(d, Var):
            q = self.vmap.get(id(d))
            if q is None or q is not p:
                self.fail(f"the block uses `{p}` where the description uses its iteration variable `{d}`")
            return
        if isinstance(d, (E.IntImm, E.FloatImm)):
            if p.value != d.value:
                self.fail(f"the constant {p.value} differs from the description's {d.value}")
            return
        if isinstance(d, E.Cast):
            return self.expr(p.value, d.value)
        if isinstance(d, E.BufferLoad):
            return self.access(p.buffer, p.indices, d.buffer, d.indices)
        if isinstance(d, E.BinaryOp):
            saved = (dict(self.bufs),)
            try:
                self.expr(p.a, d.a)
                self.expr(p.b, d.b)
            except _Mismatch as first:
                if not isinstance(d, (E.Add, E.Mul, E.Min, E.Max)):
                    raise
                self.bufs = saved[0]
                try:
                    self.expr(p.b, d.a)   # commuted operands compute the same
                    self.expr(p.a, d.b)
                except _Mismatch:
                    self.bufs = saved[0]
                    raise first from None
            return
        if isinstance(d, E.Call):
            if p.op != d.op or len(p.args) != len(d.args):
                self.fail(f"the block calls {p.op} where the description calls {d.op}")
            for x, y in zip(p.args, d.args):
                self.expr(x, y)
            return
        if isinstance(d, E.Select):
            self.expr(p.condition, d.condition)
            self.expr(p.true_value, d.true_value)
            self.expr(p.false_value, d.false_value)
            return
        if not structural_equal(p, self.to_prog(d)):
            self.fail(f"the block has `{p}` where the description has `{d}`")


def _signature(store: BufferStore) -> tuple:
    loads: list[str] = []
    from ..ir.functor import post_order_visit

    post_order_visit(store.value, lambda n: loads.append(n.buffer.dtype) if isinstance(n, E.BufferLoad) else None)
    return (store.buffer.dtype, tuple(sorted(loads)))


def _side_by_side(left: str, right: str, lt: str, rt: str) -> str:
    a, b = left.splitlines(), right.splitlines()
    w = max([len(lt)] + [len(x) for x in a])
    out = [f"{lt:<{w}}  |  {rt}", "-" * w + "--+--" + "-" * max([len(rt)] + [len(x) for x in b])]
    for k in range(max(len(a), len(b))):
        x = a[k] if k < len(a) else ""
        y = b[k] if k < len(b) else ""
        out.append(f"{x:<{w}}  |  {y}")
    return "\n".join(out)


def _loop_text(loops, realize) -> str:
    from ..ir.printer import script

    stmt = realize
    for f in reversed(loops):
        stmt = f.replace(body=stmt) if f.body is not stmt else f
    try:
        return script(loops[0] if loops else realize)
    except Exception:  # pragma: no cover
        return str(realize.block.name)


def tensorize_realize(realize: BlockRealize, intrin: TensorIntrin) -> BlockRealize:
    """The block realize with its body replaced by ``intrin``'s implementation (or a mismatch error)."""
    block = realize.block
    p_loops, p_inner = innermost(block.body)
    d_loops, d_inner = innermost(intrin.desc.body)
    if p_inner is None:
        raise TensorizeMismatchError(
            f"cannot tensorize block {block.name} with {intrin.name}: its body is not loops around one block; "
            f"pass the loop whose sub-tree the intrinsic computes (sch.tensorize(loop, ...)), or blockize it first",
            node=realize)
    p_desc = describe_block(p_inner)
    d_desc = describe_block(d_inner)

    def mismatch(what: str, cls=TensorizeMismatchError):
        detail = _side_by_side(_loop_text(p_loops, p_inner), _loop_text(d_loops, d_inner),
                               f"block {block.name}", f"{intrin.name} (description)")
        return cls(f"cannot tensorize block {block.name} with {intrin.name}: {what}",
                   detail=f"the block computes   {p_desc}\n{intrin.name} computes {d_desc}\n{detail}",
                   node=realize)

    pb, db = p_inner.block, d_inner.block
    if not isinstance(pb.body, BufferStore) or not isinstance(db.body, BufferStore):
        raise mismatch("the block's body is not a single buffer store like the description's")
    # 1. what is computed, in which dtypes
    ps, ds = _signature(pb.body), _signature(db.body)
    if ps != ds:
        from .tensor_intrin.describe import describe_store

        pc, pk = describe_store(pb.body)
        dc, dk = describe_store(db.body)
        raise mismatch(f"the block computes {pc} in {pb.body.buffer.dtype} ({pk}) but {intrin.name} expects {dk}")
    if block.init is not None and db.init is None:
        raise mismatch("the block has an init (its reduction starts from a value) but the intrinsic only "
                       "accumulates; split the init off first with sch.decompose_reduction(block, loop)")
    # 2. loops and iteration variables
    pe = [as_int(f.extent) for f in p_loops]
    de = [as_int(f.extent) for f in d_loops]
    if pe != de:
        raise mismatch(f"the tile's loops have extents {tuple(pe)} but {intrin.name} expects {tuple(de)} "
                       f"(split the loops so the innermost ones have exactly these extents, in this order)")
    if len(pb.iter_vars) != len(db.iter_vars):
        raise mismatch(f"the inner block has {len(pb.iter_vars)} iteration variables but the description's has "
                       f"{len(db.iter_vars)}")
    for a, b in zip(pb.iter_vars, db.iter_vars):
        if as_int(a.dom.extent) != as_int(b.dom.extent) or a.iter_type != b.iter_type:
            raise mismatch(f"iteration variable {a.var.name} is {a.iter_type} over {a.dom.extent} where the "
                           f"description's {b.var.name} is {b.iter_type} over {b.dom.extent}")
    lmap = {f.loop_var: g.loop_var for f, g in zip(p_loops, d_loops)}
    for a, b, pv, dv in zip(pb.iter_vars, db.iter_vars, p_inner.iter_values, d_inner.iter_values):
        d_vars = tuple(g.loop_var for g in d_loops)   # compared first, so each loop maps to itself
        if not structural_equal([list(d_vars), substitute(pv, lmap)], [list(d_vars), dv]):
            raise mismatch(f"iteration variable {a.var.name} is bound to `{pv}` where the description binds "
                           f"{b.var.name} to `{dv}` (the loops are in another order)")
    # 3. the expression tree, buffers and offsets
    m = _Matcher({id(b.var): a.var for a, b in zip(pb.iter_vars, db.iter_vars)}, block.name, intrin)
    for iv in tuple(block.iter_vars) + tuple(pb.iter_vars):
        m.an.bind(iv.var, iv.dom)
    try:
        m.access(pb.body.buffer, pb.body.indices, db.body.buffer, db.body.indices)
        m.expr(pb.body.value, db.body.value)
    except _Mismatch as err:
        raise mismatch(str(err)) from None
    if not structural_equal(p_inner.predicate, IntImm(1, "bool")):
        raise mismatch(f"the inner block has the predicate `{p_inner.predicate}` (the tile is not full)")
    # 4. the implementation, its buffers as views of the matched regions
    return _substitute_impl(realize, intrin, m, mismatch)


def _substitute_impl(realize: BlockRealize, intrin: TensorIntrin, m: _Matcher, mismatch) -> BlockRealize:
    block = realize.block
    an = Analyzer()
    desc_bufs = intrin.desc.buffers
    impl_bufs = intrin.impl.buffers
    matches = []
    bmap = {}
    vmap = {}
    for db, ib in zip(desc_bufs, impl_bufs):
        hit = m.bufs.get(id(db))
        if hit is None:
            raise mismatch(f"the description's buffer {db.name} is never used by the block")
        _, pbuf, offs = hit
        lead = len(pbuf.shape) - len(db.shape)
        region = tuple(Range(o, IntImm(1, o.dtype)) for o in offs[:lead]) + tuple(
            Range(o, d) for o, d in zip(offs[lead:], db.shape))
        if not ib.strides:
            why = _not_contiguous(pbuf, region, an)
            if why:
                raise mismatch(f"{intrin.name} reads {ib.name} as one contiguous vector, but the region "
                               f"{pbuf.name}[{', '.join(f'{r.min}:{r.min + r.extent}' for r in region)}] is not "
                               f"contiguous ({why}); change the layout with sch.transform_layout so the "
                               f"{db.shape} tile is packed", TensorizeLayoutError)
        for v in collect_vars(list(ib.strides) + [ib.elem_offset]):
            if id(v) not in {id(k) for k in vmap}:
                vmap[v] = Var(v.name, v.dtype)
        view = Buffer(f"{pbuf.name}_{ib.name}" if pbuf.name != ib.name else f"{ib.name}_1", ib.shape, ib.dtype,
                      tuple(substitute(s, vmap) for s in ib.strides),
                      substitute(ib.elem_offset, vmap), pbuf.scope, ib.offset_factor, ib.align)
        bmap[ib] = view
        matches.append(MatchBufferRegion(view, BufferRegion(pbuf, region)))
    body = intrin.impl.body
    allocs = ()
    if isinstance(body, BlockRealize) and body.block.name == "root" and not body.block.iter_vars:
        allocs = body.block.alloc_buffers
        body = body.block.body
    body = substitute(body, vmap, bmap)
    new_block = Block(block.name, block.iter_vars, block.reads, block.writes, body, None,
                      tuple(block.alloc_buffers) + tuple(allocs), tuple(matches),
                      dict(block.annotations, tensorized=intrin.name))
    return realize.replace(block=new_block)


def _not_contiguous(buf: Buffer, region, an: Analyzer) -> str:
    if buf.strides:
        return f"{buf.name} has explicit strides"
    shape = [as_int(d) for d in buf.shape]
    exts = [as_int(r.extent) for r in region]
    if None in shape or None in exts:
        return "its shape is symbolic"
    k = len(region) - 1
    while k >= 0 and exts[k] == shape[k]:
        if not structural_equal(an.simplify(region[k].min), IntImm(0, region[k].min.dtype)):
            return f"dimension {k} does not start at 0"
        k -= 1
    for j in range(k - 1, -1, -1):
        if exts[j] != 1:
            return (f"dimension {j} spans {exts[j]} elements while dimension {k} covers only {exts[k]} of "
                    f"{shape[k]}")
    return ""


__all__ = ["tensorize", "tensorize_realize", "TensorizeMismatchError", "TensorizeLayoutError", "check_features"]
