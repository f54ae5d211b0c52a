"""fp32 matmul on the host CPU: naive vs hand-tiled programs vs numpy, in GFLOP/s.

Run:  .venv/bin/python benchmarks/matmul_cpu.py [--sizes 512 1024 2048] [--repeats 5] [--tvm]

``--tvm`` adds issue 16's register-tiled schedule built by workbench and, where Apache TVM is
importable (never a dependency), the same schedule built by TVM, for a like-for-like comparison
of code generation.

The hand-tiled programs are written directly as loop-level IR (the same loops
a schedule would produce): B packed into panels of NR columns, an MR x NR
register tile accumulated in a local buffer over the whole K, the NR columns as
vectorized lanes (16 float32 with AVX-512, 8 with AVX2), the row tiles unrolled,
and the outer loop parallel over all cores. The machine is shared: numbers are
medians, and the ratio to numpy is measured in the same run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.ir import (Allocate, Buffer, BufferStore, For, PrimFunc, Var, seq)  # noqa: E402
from workbench.ir.expr import min_  # noqa: E402


def naive_matmul(n: int) -> PrimFunc:
    """C = A @ B from a compute description, unscheduled (three plain loops)."""
    from workbench.ir import te

    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return te.create_prim_func([A, B, C], name="naive")


def tiled_matmul(n: int, mr: int = 4, nr: int = 16, lanes: int = 8, mc: int = 64,
                 name: str = "tiled") -> PrimFunc:
    """A register-tiled, vectorized, parallel matmul with a packed B, as loop-level IR.

    Loops (script form)::

        for jo in wb.parallel(n // nr):              # pack B into panels
            for k in range(n):
                for jl in wb.vectorized(nr):
                    Bp[jo, k, jl] = B[k, jo * nr + jl]
        for io in wb.parallel(ceil(n / mc)):         # row blocks over the cores
            for jo in range(n // nr):
                for ir in range(mc // mr):
                    Cl = wb.alloc_buffer((mr, nr), scope="local")
                    ... Cl = 0 (unrolled rows, vectorized columns)
                    for k in range(n):
                        for ii in wb.unroll(mr):
                            for jv in wb.unroll(nr // lanes):
                                for jl in wb.vectorized(lanes):
                                    Cl[ii, jv*lanes + jl] += A[row(ii), k] * Bp[jo, k, jv*lanes + jl]
                    ... C[row(ii), jo*nr + ...] = Cl (unrolled rows, vectorized columns)

    ``row(ii) = min(io*mc + ir*mr + ii, n - 1)``: a last partial tile recomputes the
    last row (same value) instead of needing a guard in the inner loop.
    """
    assert n % nr == 0 and nr % lanes == 0 and mc % mr == 0
    a, b, c = Var("a", "handle"), Var("b", "handle"), Var("c", "handle")
    A = Buffer("A", (n, n), "float32")
    B = Buffer("B", (n, n), "float32")
    C = Buffer("C", (n, n), "float32")
    Bp = Buffer("Bp", (n // nr, n, nr), "float32")
    Cl = Buffer("Cl", (mr, nr), "float32", scope="local")
    jo, k, jl = Var("jo"), Var("k"), Var("jl")
    pack = For(jo, 0, n // nr, "parallel",
               For(k, 0, n, "serial",
                   For(jl, 0, nr, "vectorized", BufferStore(Bp, B[k, jo * nr + jl], [jo, k, jl]))))
    io, jo2, ir_, k2 = Var("io"), Var("jo"), Var("ir"), Var("k")

    def tile(body_fn, tag):
        ii, jv, jl_ = Var("ii" + tag), Var("jv" + tag), Var("jl" + tag)
        return For(ii, 0, mr, "unrolled",
                   For(jv, 0, nr // lanes, "unrolled",
                       For(jl_, 0, lanes, "vectorized", body_fn(ii, jv * lanes + jl_))))

    def row(ii):
        return min_(io * mc + ir_ * mr + ii, n - 1)

    init = tile(lambda ii, j: BufferStore(Cl, 0.0, [ii, j]), "0")
    update = For(k2, 0, n, "serial", tile(
        lambda ii, j: BufferStore(Cl, Cl[ii, j] + A[row(ii), k2] * Bp[jo2, k2, j], [ii, j]), "1"))
    store = tile(lambda ii, j: BufferStore(C, Cl[ii, j], [row(ii), jo2 * nr + j]), "2")
    nblocks = -(-n // mc)
    compute = For(io, 0, nblocks, "parallel",
                  For(jo2, 0, n // nr, "serial",
                      For(ir_, 0, mc // mr, "serial", Allocate(Cl, seq(init, update, store)))))
    body = Allocate(Bp, seq(pack, compute))
    return PrimFunc([a, b, c], {a: A, b: B, c: C}, body, {"global_symbol": name})


def register_tiled_schedule(sch, n: int, lanes: int):
    """Issue 16's register-tiled schedule, applied to ``sch`` (a ``workbench.Schedule`` or a TVM
    ``Schedule`` of the same te matmul: the two share the primitives' names and arguments).

    i split 64 / 8 and j split (16 * lanes) / lanes, reordered i0 j0 i1 j1 k i2 j2; C accumulated
    in a ``local`` cache at j1; B packed by ``cache_read`` + ``transform_layout`` to
    ``[j // lanes, k, j % lanes]``; i0 and j0 fused and parallel; i2 unrolled; j2 vectorized; the
    reduction's init decomposed.
    """
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    i0, i1, i2 = sch.split(i, factors=[None, 8, 8])
    j0, j1, j2 = sch.split(j, factors=[None, 16, lanes])
    sch.reorder(i0, j0, i1, j1, k, i2, j2)
    cl = sch.cache_write(c, 0, "local")
    sch.reverse_compute_at(cl, j1)
    bp = sch.cache_read(c, 1, "global")
    sch.transform_layout(bp, ("write", 0), lambda kk, jj: (jj // lanes, kk, jj % lanes))
    sch.parallel(sch.fuse(i0, j0))
    sch.unroll(i2)
    sch.vectorize(j2)
    sch.decompose_reduction(c, k)
    return sch


def tvm_matmul(n: int, lanes: int, target: str):
    """The same schedule built by Apache TVM, as a callable on numpy arrays; None when TVM is not
    importable (it is never a dependency: ``pip install apache-tvm`` in a separate environment)."""
    try:
        import tvm
        from tvm import te
    except ImportError:
        return None
    schedule_cls = getattr(getattr(tvm, "s_tir", None), "Schedule", None) or tvm.tir.Schedule
    compile_fn = getattr(tvm, "compile", None) or tvm.build
    to_device = getattr(tvm.runtime, "tensor", None) or tvm.nd.array
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    sch = register_tiled_schedule(schedule_cls(te.create_prim_func([A, B, C])), n, lanes)
    fn = compile_fn(sch.mod, target=target)["main"]
    dev = tvm.cpu()
    cache: dict = {}

    def run(a, b, c):
        key = (a.ctypes.data, b.ctypes.data, c.ctypes.data)
        if key not in cache:  # copy in once per set of arrays (timing measures the kernel only)
            cache.clear()
            cache[key] = [to_device(x, dev) for x in (a, b, c)]
        ta, tb, tc = cache[key]
        fn(ta, tb, tc)
        c[...] = tc.numpy()

    return run


def gflops(n: int, seconds: float) -> float:
    return 2.0 * n ** 3 / seconds / 1e9


def median_time(fn, args, repeats: int, min_time: float = 0.0) -> tuple[float, int]:
    fn(*args)  # warm-up
    ts = []
    t_start = time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t)
        if min_time and time.perf_counter() - t_start > min_time:
            break
    return float(np.median(ts)), len(ts)


def compare_with_tvm(n, lanes, target, a, b, c, ref, repeats) -> list:
    """Rows for issue 16's schedule built by workbench and, where TVM is importable, by TVM."""
    import workbench as wb
    from workbench.demo import matmul

    if n % 64 or n % (16 * lanes):
        return [("issue-16 schedule", float("nan"), 0, f"not run (n must be a multiple of {16 * lanes})")]
    rows = []
    candidates = {"issue-16 schedule, workbench": wb.build(
        register_tiled_schedule(wb.Schedule(matmul(n)), n, lanes).mod, target=target)}
    tvm_fn = tvm_matmul(n, lanes, target)
    if tvm_fn is None:
        rows.append(("issue-16 schedule, TVM", float("nan"), 0, "not run (TVM not importable)"))
    else:
        candidates["issue-16 schedule, TVM"] = tvm_fn
    for label, f in candidates.items():
        c[:] = 0
        f(a, b, c)
        np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-3 * n)
        t, r = median_time(f, (a, b, c), repeats)
        rows.append((label, t, r, ""))
    return rows


def main(argv=None) -> int:
    import workbench as wb

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--tvm", action="store_true",
                   help="also time issue 16's register-tiled schedule built by workbench and by Apache TVM "
                        "(the TVM row only where `import tvm` works)")
    p.add_argument("--naive-max", type=int, default=1024,
                   help="largest size at which the naive program runs (it is slow); larger ones are skipped")
    args = p.parse_args(argv)
    target = wb.Target("llvm")
    lanes = target.vector_lanes("float32")
    configs = {f"tiled {4}x{2 * lanes} (packed B)": dict(mr=4, nr=2 * lanes, lanes=lanes, mc=64)}
    if lanes >= 16:
        configs[f"tiled {4}x{4 * lanes} (packed B)"] = dict(mr=4, nr=4 * lanes, lanes=lanes, mc=64)
    else:
        configs[f"tiled {6}x{2 * lanes} (packed B)"] = dict(mr=6, nr=2 * lanes, lanes=lanes, mc=96)
    from workbench.backend.llvm.runtime import get_num_threads

    print(f"target: {target}  ({target.vector_bits}-bit vectors, {lanes} float32 lanes), "
          f"threads: {get_num_threads()}")
    rows = []
    naive_last = None
    rng = np.random.default_rng(0)
    for n in args.sizes:
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        ref = a @ b
        c = np.empty((n, n), np.float32)
        t_np, r_np = median_time(lambda x, y, z: np.matmul(x, y, out=z), (a, b, c), args.repeats)
        results = [("numpy.matmul", t_np, r_np, "")]
        for label, cfg in configs.items():
            f = wb.build(tiled_matmul(n, **cfg), target=target)
            c[:] = 0
            f(a, b, c)
            np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-3 * n)
            t, r = median_time(f, (a, b, c), args.repeats)
            results.append((label, t, r, ""))
        if args.tvm:
            results += compare_with_tvm(n, lanes, str(target), a, b, c, ref, args.repeats)
        if n <= args.naive_max:
            f = wb.build(naive_matmul(n), target=target)
            reps = args.repeats if n <= 512 else 1  # slow: one timed run (the first call)
            c[:] = 0
            t0 = time.perf_counter()
            f(a, b, c)
            t_first = time.perf_counter() - t0
            np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-3 * n)
            if reps > 1:
                t, r = median_time(f, (a, b, c), reps)
            else:
                t, r = t_first, 1
            naive_last = (n, t)
            results.append(("naive (te, unscheduled)", t, r, "few repeats" if r < args.repeats else ""))
        else:
            est = f"; ~{naive_last[1] * (n / naive_last[0]) ** 3:.0f} s estimated from {naive_last[0]}" if naive_last else ""
            results.append(("naive (te, unscheduled)", float("nan"), 0,
                            f"not run (> --naive-max {args.naive_max}{est})"))
        for label, t, r, note in results:
            rows.append((n, label, t * 1e3, gflops(n, t), gflops(n, t) / gflops(n, t_np), r, note))
    print()
    print(f"{'size':>5}  {'program':<30} {'ms':>10} {'GFLOP/s':>9} {'vs numpy':>9} {'runs':>5}  note")
    for n, label, ms, gf, ratio, r, note in rows:
        print(f"{n:>5}  {label:<30} {ms:>10.2f} {gf:>9.1f} {ratio:>8.0%} {r:>5}  {note}")
    print("\n(2-core machine shared with other users: medians of the runs shown; ratios measured in the same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
