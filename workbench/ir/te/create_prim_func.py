"""``create_prim_func``: turn a compute description into a loop program (a ``PrimFunc``).

Each compute stage becomes one block inside a nest of serial loops, one loop per
output dimension and then one per reduce axis (innermost), as in TVM::

    >>> from workbench import te
    >>> A = te.placeholder((16, 16), name="A")
    >>> B = te.placeholder((16, 16), name="B")
    >>> k = te.reduce_axis(16, name="k")
    >>> C = te.compute((16, 16), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    >>> f = te.create_prim_func([A, B, C])
    >>> [b.name for b in f.buffers]
    ['A', 'B', 'C']

gives (printed in the script form)::

    @wb.prim_func
    def main(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
             C: wb.Buffer((16, 16), "float32")):
        wb.func_attr({"global_symbol": "main"})
        for i, j, k in wb.grid(16, 16, 16):
            with wb.block("C"):
                v_i, v_j, v_k = wb.axis.remap("SSR", [i, j, k])
                wb.reads(A[v_i, v_k], B[v_k, v_j])
                wb.writes(C[v_i, v_j])
                with wb.init():
                    C[v_i, v_j] = wb.float32(0)
                C[v_i, v_j] = C[v_i, v_j] + A[v_i, v_k] * B[v_k, v_j]
"""
from __future__ import annotations

from typing import Sequence

from ..buffer import Buffer
from ..expr import BufferLoad, IntImm, Range, Var
from ..function import PrimFunc
from ..functor import Mutator, collect_vars
from ..stmt import Block, BlockRealize, BufferStore, For, IfThenElse, IterVar, seq
from .reduction import Reduce
from .tensor import AxisVar, ComputeOp, PlaceholderOp, TEError, Tensor


def create_prim_func(tensors: Sequence[Tensor], name: str = "main") -> PrimFunc:
    """Build a ``PrimFunc`` whose parameters are ``tensors`` in the order given.

    Placeholders and outputs are parameters; compute stages not in the list become
    intermediate buffers (``alloc_buffers`` of the root block). Symbolic sizes of the
    shapes stay symbolic and are bound from the arrays at call time.

    >>> from workbench import te
    >>> n = te.var("n")
    >>> A = te.placeholder((n,), name="A")
    >>> B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    >>> f = te.create_prim_func([A, B], name="add_one")
    >>> f.attrs["global_symbol"], f.buffers[0].shape[0] is n
    ('add_one', True)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"create_prim_func: the function name must be a Python identifier, got {name!r}")
    args = _flatten_args(tensors)
    arg_ids = {id(t) for t in args}

    # stages in topological order (inputs before consumers), following the argument order
    order: list[ComputeOp] = []
    seen: set[int] = set()

    def visit(t: Tensor, consumer: str | None) -> None:
        op = t.op
        if isinstance(op, PlaceholderOp):
            if id(t) not in arg_ids:
                raise TEError(f'create_prim_func: the placeholder "{t.name}" is read by "{consumer}" but is not in '
                              f"the argument list; add it, e.g. create_prim_func([..., {t.name}, ...])")
            return
        if id(op) in seen:
            return
        seen.add(id(op))
        for inp in op.input_tensors:
            visit(inp, op.name)
        order.append(op)

    for t in args:
        visit(t, None)

    # buffers: parameters first (in the order given), then intermediates in stage order
    names: set[str] = set()

    def unique(n: str) -> str:
        out, k = n, 1
        while out in names:
            out = f"{n}_{k}"
            k += 1
        names.add(out)
        return out

    bmap: dict[int, Buffer] = {}
    params: list[Var] = []
    buffer_map: dict[Var, Buffer] = {}
    for t in args:
        buf = Buffer(unique(t.name), t.shape, t.dtype)
        bmap[id(t.buffer)] = buf
        p = Var(buf.name, "handle")
        params.append(p)
        buffer_map[p] = buf
    allocs: list[Buffer] = []
    for op in order:
        for t in op.outputs:
            if id(t.buffer) not in bmap:
                buf = Buffer(unique(t.name), t.shape, t.dtype)
                bmap[id(t.buffer)] = buf
                allocs.append(buf)

    _check_free_vars(order, buffer_map.values())

    block_names: set[str] = set()
    stages = []
    for op in order:
        bname = op.name
        k = 1
        while bname in block_names:
            bname = f"{op.name}_{k}"
            k += 1
        block_names.add(bname)
        stages.append(_stage(op, bmap, bname))

    if not stages:
        raise TEError("create_prim_func: the argument list has no compute stage; add at least one te.compute "
                      "output")
    root = Block("root", (), (), (), seq(*stages), None, tuple(allocs))
    body = BlockRealize((), IntImm(1, "bool"), root)
    return PrimFunc(tuple(params), buffer_map, body, {"global_symbol": name})


def _flatten_args(tensors) -> list[Tensor]:
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    out: list[Tensor] = []
    for k, t in enumerate(tensors):
        if isinstance(t, (list, tuple)):
            out.extend(_flatten_args(t))
        elif isinstance(t, Tensor):
            out.append(t)
        else:
            raise TypeError(f"create_prim_func: argument {k} is a {type(t).__name__}, not a te tensor; "
                            f"pass the placeholders and outputs, e.g. create_prim_func([A, B, C])")
    ids: set[int] = set()
    for t in out:
        if id(t) in ids:
            raise TEError(f'create_prim_func: the tensor "{t.name}" appears twice in the argument list')
        ids.add(id(t))
    if not out:
        raise TEError("create_prim_func: the argument list is empty")
    return out


def _check_free_vars(order: list[ComputeOp], param_buffers) -> None:
    known: set[int] = set()
    for b in param_buffers:
        for v in collect_vars(b.shape):
            known.add(id(v))
    for op in order:
        for v in collect_vars([list(op.body), [ax.dom for ax in op.axis], [ax.dom for ax in op.reduce_axis]]):
            if not isinstance(v, AxisVar) and id(v) not in known:
                raise TEError(f'create_prim_func: the stage "{op.name}" uses the symbolic value {v.name}, but no '
                              f"parameter's shape contains it, so its value cannot be known when the function "
                              f"is called; pass a tensor whose shape uses {v.name}")


class _Lower(Mutator):
    """Replace compute index variables by block iteration variables and te buffers by the function's."""

    def __init__(self, vmap: dict[int, Var], bmap: dict[int, Buffer], stage: str):
        self.vmap = vmap
        self.bmap = bmap
        self.stage = stage

    def visit_AxisVar(self, v: AxisVar):
        out = self.vmap.get(id(v))
        if out is None:  # guarded by compute()'s checks; kept as a clear message
            raise TEError(f'stage "{self.stage}": the index variable {v.name} does not belong to it')
        return out

    def visit_Buffer(self, b: Buffer):
        return self.bmap.get(id(b), b)

    def visit_Reduce(self, r):
        raise TEError(f'stage "{self.stage}": a reduction must be the whole body of the compute')


def _stage(op: ComputeOp, bmap: dict[int, Buffer], block_name: str):
    used: set[str] = set()

    def fresh(n: str) -> str:
        out, k = n, 1
        while out in used:
            out = f"{n}_{k}"
            k += 1
        used.add(out)
        return out

    loop_vars: list[Var] = []
    iter_vars: list[IterVar] = []
    doms: list[Range] = []
    vmap: dict[int, Var] = {}
    for ax in tuple(op.axis) + tuple(op.reduce_axis):
        lname = fresh(ax.name)
        lv = Var(lname, ax.dtype)
        iv = Var("v_" + lname, ax.dtype)
        dom = Range(ax.dom.min, ax.dom.extent)
        loop_vars.append(lv)
        doms.append(dom)
        iter_vars.append(IterVar(iv, dom, "spatial" if ax.kind == "spatial" else "reduce"))
        vmap[id(ax)] = iv
    low = _Lower(vmap, bmap, op.name)
    idx = tuple(vmap[id(ax)] for ax in op.axis)
    outs = [bmap[id(t.buffer)] for t in op.outputs]
    init = None
    first = op.body[0]
    if isinstance(first, Reduce):
        src = low.visit(first.source)
        cond = low.visit(first.condition)
        init_value = low.visit(first.init) if first.init is not None else first.combiner.identity(first.dtype)
        out = outs[0]
        body = BufferStore(out, first.combiner.combine(BufferLoad(out, idx), src), idx)
        if not (isinstance(cond, IntImm) and cond.value == 1):
            body = IfThenElse(cond, body)
        init = BufferStore(out, init_value, idx)
    else:
        body = seq(*[BufferStore(b, low.visit(e), idx) for b, e in zip(outs, op.body)])
    block = Block(block_name, tuple(iter_vars), (), (), body, init, (), (), dict(op.attrs))
    reads, writes = _access_regions(block)
    if init is not None:  # as TVM: a reduction's own accumulator is written, not listed as read
        reads = tuple(r for r in reads if not any(r.buffer is b for b in outs))
    block = block.replace(reads=tuple(reads), writes=tuple(writes))
    stmt = BlockRealize(tuple(loop_vars), IntImm(1, "bool"), block)
    for lv, dom in zip(reversed(loop_vars), reversed(doms)):
        stmt = For(lv, dom.min, dom.extent, "serial", stmt)
    return stmt


def _access_regions(block: Block):
    """reads/writes of a block, from the region analysis."""
    from ..arith import infer_block_access_regions

    return infer_block_access_regions(block)


__all__ = ["create_prim_func"]
