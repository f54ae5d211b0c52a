"""Small hand-built programs for the viz tests (no dependency on te or the parser)."""
from __future__ import annotations

from workbench.ir import (
    Block, BlockRealize, Buffer, BufferRegion, BufferStore, For, IRModule, IterVar, PrimFunc, SeqStmt, Var,
)
from workbench.ir.expr import FloatImm, max_


def _root(body, allocs=()):
    return BlockRealize((), True, Block("root", (), (), (), body, alloc_buffers=tuple(allocs)))


def _full(buf):
    return buf.full_region()


def matmul_relu(n: int = 128, sym: bool = False) -> PrimFunc:
    """Y = A @ B (block "Y", a reduction with init); C = max(Y, 0) (block "C").

    With ``sym`` the row count is a symbolic size ``n``.
    """
    N = Var("n") if sym else n
    a, b, c = Var("a", "handle"), Var("b", "handle"), Var("c", "handle")
    A = Buffer("A", (N, n), "float32")
    B = Buffer("B", (n, n), "float32")
    C = Buffer("C", (N, n), "float32")
    Y = Buffer("Y", (N, n), "float32")
    i, j, k = Var("i"), Var("j"), Var("k")
    vi, vj, vk = Var("vi"), Var("vj"), Var("vk")
    y_block = Block(
        "Y",
        (IterVar(vi, N), IterVar(vj, n), IterVar(vk, n, "reduce")),
        reads=(BufferRegion(A, (vi, vk)), BufferRegion(B, (vk, vj))),
        writes=(BufferRegion(Y, (vi, vj)),),
        body=BufferStore(Y, Y[vi, vj] + A[vi, vk] * B[vk, vj], (vi, vj)),
        init=BufferStore(Y, FloatImm(0.0, "float32"), (vi, vj)),
    )
    nest1 = For(i, 0, N, "serial", For(j, 0, n, "serial", For(k, 0, n, "serial",
                BlockRealize((i, j, k), True, y_block))))
    i2, j2 = Var("i"), Var("j")
    wi, wj = Var("vi"), Var("vj")
    c_block = Block(
        "C",
        (IterVar(wi, N), IterVar(wj, n)),
        reads=(BufferRegion(Y, (wi, wj)),),
        writes=(BufferRegion(C, (wi, wj)),),
        body=BufferStore(C, max_(Y[wi, wj], FloatImm(0.0, "float32")), (wi, wj)),
    )
    nest2 = For(i2, 0, N, "serial", For(j2, 0, n, "serial", BlockRealize((i2, j2), True, c_block)))
    return PrimFunc((a, b, c), {a: A, b: B, c: C}, _root(SeqStmt((nest1, nest2)), [Y]),
                    {"global_symbol": "mm_relu"})


def scheduled_matmul(n: int = 128) -> PrimFunc:
    """A matmul after split/reorder/parallel/vectorize/unroll, written out by hand.

    for i_0 in parallel(n // 32):
      for j_0 in serial(n // 64):
        for k in unroll(n):            (annotated {"pragma_unroll": 1})
          for i_1 in serial(32):
            for j_1 in vectorized(64):
              block C: vi = i_0*32+i_1, vj = j_0*64+j_1, vk = k
    """
    a, b, c = Var("a", "handle"), Var("b", "handle"), Var("c", "handle")
    A = Buffer("A", (n, n), "float32")
    B = Buffer("B", (n, n), "float32")
    C = Buffer("C", (n, n), "float32")
    i0, i1, j0, j1, k = Var("i_0"), Var("i_1"), Var("j_0"), Var("j_1"), Var("k")
    vi, vj, vk = Var("vi"), Var("vj"), Var("vk")
    blk = Block(
        "C",
        (IterVar(vi, n), IterVar(vj, n), IterVar(vk, n, "reduce")),
        reads=(BufferRegion(A, (vi, vk)), BufferRegion(B, (vk, vj))),
        writes=(BufferRegion(C, (vi, vj)),),
        body=BufferStore(C, C[vi, vj] + A[vi, vk] * B[vk, vj], (vi, vj)),
        init=BufferStore(C, FloatImm(0.0, "float32"), (vi, vj)),
    )
    br = BlockRealize((i0 * 32 + i1, j0 * 64 + j1, k), True, blk)
    body = For(i0, 0, n // 32, "parallel",
               For(j0, 0, n // 64, "serial",
                   For(k, 0, n, "unrolled",
                       For(i1, 0, 32, "serial",
                           For(j1, 0, 64, "vectorized", br)),
                       annotations={"pragma_unroll": 1})))
    return PrimFunc((a, b, c), {a: A, b: B, c: C}, _root(body), {"global_symbol": "matmul"})


def gpu_add(n: int = 1024) -> PrimFunc:
    """B = A + 1 with the loop split and bound to blockIdx.x / threadIdx.x."""
    a, b = Var("a", "handle"), Var("b", "handle")
    A = Buffer("A", (n,), "float32")
    B = Buffer("B", (n,), "float32")
    bx, tx = Var("bx"), Var("tx")
    v = Var("v")
    blk = Block("B", (IterVar(v, n),), reads=(BufferRegion(A, (v,)),), writes=(BufferRegion(B, (v,)),),
                body=BufferStore(B, A[v] + FloatImm(1.0, "float32"), (v,)))
    body = For(bx, 0, n // 128, "thread_binding",
               For(tx, 0, 128, "thread_binding", BlockRealize((bx * 128 + tx,), True, blk), thread="threadIdx.x"),
               thread="blockIdx.x")
    return PrimFunc((a, b), {a: A, b: B}, _root(body), {"global_symbol": "gpu_add"})


def many_blocks(count: int) -> PrimFunc:
    """``count`` element-wise blocks in sequence (a long program for the sizing rule)."""
    a = Var("a", "handle")
    A = Buffer("A", (64,), "float32")
    nests = []
    for t in range(count):
        i, v = Var("i"), Var("v")
        blk = Block(f"B{t}", (IterVar(v, 64),), reads=(BufferRegion(A, (v,)),), writes=(BufferRegion(A, (v,)),),
                    body=BufferStore(A, A[v] * FloatImm(2.0, "float32"), (v,)))
        nests.append(For(i, 0, 64, "serial", BlockRealize((i,), True, blk)))
    return PrimFunc((a,), {a: A}, _root(SeqStmt(tuple(nests))), {"global_symbol": "long"})


def module() -> IRModule:
    return IRModule({"mm_relu": matmul_relu(64), "gpu_add": gpu_add()})
