"""Small IR builders shared by the backend tests (programs written with the node classes)."""
from __future__ import annotations

from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var


def elementwise(fn, in_dtypes, out_dtype, n=37, kind="serial", name="ew"):
    """``out[i] = fn(in0[i], in1[i], ...)`` over ``n`` elements, with a loop of ``kind``."""
    ins = [Buffer(f"X{k}", (n,), dt) for k, dt in enumerate(in_dtypes)]
    out = Buffer("Y", (n,), out_dtype)
    handles = [Var(f"x{k}", "handle") for k in range(len(ins))] + [Var("y", "handle")]
    i = Var("i")
    body = For(i, 0, n, kind, BufferStore(out, fn(*[b[i] for b in ins]), [i]))
    return PrimFunc(handles, dict(zip(handles, ins + [out])), body, {"global_symbol": name})


def matmul_loops(n, m, k, transform="naive", name="mm"):
    """C = A @ B (float32) written as loops, with a hand-applied loop transformation."""
    from workbench.ir import IfThenElse, seq

    a, b, c = Var("a", "handle"), Var("b", "handle"), Var("c", "handle")
    A, B, C = Buffer("A", (n, k), "float32"), Buffer("B", (k, m), "float32"), Buffer("C", (n, m), "float32")
    i, j, r = Var("i"), Var("j"), Var("r")
    if transform == "naive":
        body = For(i, 0, n, "serial", For(j, 0, m, "serial", seq(
            BufferStore(C, 0.0, [i, j]),
            For(r, 0, k, "serial", BufferStore(C, C[i, j] + A[i, r] * B[r, j], [i, j])))))
    elif transform == "split_vec_par":
        # i split by 4 (outer parallel), j split by 8 (inner vectorized), reduction in the middle
        io, ii, jo, ji = Var("io"), Var("ii"), Var("jo"), Var("ji")
        assert n % 4 == 0 and m % 8 == 0
        row, col = io * 4 + ii, jo * 8 + ji
        body = For(io, 0, n // 4, "parallel", For(ii, 0, 4, "unrolled", For(jo, 0, m // 8, "serial", seq(
            For(ji, 0, 8, "vectorized", BufferStore(C, 0.0, [row, col])),
            For(r, 0, k, "serial", For(ji, 0, 8, "vectorized",
                                       BufferStore(C, C[row, col] + A[row, r] * B[r, col], [row, col])))))))
    elif transform == "split_tail":
        # j split by 8 with a tail guarded by an if (m need not be a multiple of 8)
        jo, ji = Var("jo"), Var("ji")
        col = jo * 8 + ji
        body = For(i, 0, n, "parallel", For(jo, 0, (m + 7) // 8, "serial", For(ji, 0, 8, "serial", IfThenElse(
            col < m, seq(BufferStore(C, 0.0, [i, col]),
                         For(r, 0, k, "serial", BufferStore(C, C[i, col] + A[i, r] * B[r, col], [i, col])))))))
    else:
        raise ValueError(transform)
    return PrimFunc([a, b, c], {a: A, b: B, c: C}, body, {"global_symbol": name})
