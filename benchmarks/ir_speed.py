"""Speed of the IR tools a learner waits on: the simplifier and the reference interpreter.

    .venv/bin/python benchmarks/ir_speed.py

Prints one table; the interpreter is compared with numpy.matmul in the same run (it is a
semantic reference, slow on purpose: the ratio says how slow).
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    import workbench as wb
    from workbench import te
    from workbench.ir import FloorDiv, FloorMod, Range, Var
    from workbench.ir.arith import Analyzer

    rows = []
    an = Analyzer()
    io, ii, jo, ji = (Var(n) for n in ("io", "ii", "jo", "ji"))
    for v, ext in ((io, 32), (ii, 32), (jo, 16), (ji, 64)):
        an.bind(v, Range(0, ext))
    e = (FloorDiv(io * 32 + ii, 32) * 32 + FloorMod(io * 32 + ii, 32)) * 1024 + jo * 64 + ji

    def simplify_fresh():
        an._reset()
        an.simplify(e)

    rows.append(("simplify a split matmul index (no cache)", _median(simplify_fresh, 50), None))
    for n in (32, 64, 128):
        A = te.placeholder((n, n), "float32", name="A")
        B = te.placeholder((n, n), "float32", name="B")
        k = te.reduce_axis(n, name="k")
        C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
        f = wb.create_prim_func([A, B, C])
        a, b, c = (np.random.rand(n, n).astype("float32") for _ in range(3))
        wb.ir.evaluate(f, a, b, c)  # compile once
        t_interp = _median(lambda: wb.ir.evaluate(f, a, b, c), 3)
        t_numpy = _median(lambda: np.matmul(a, b, out=c), 20)
        rows.append((f"interpreter matmul {n}^3", t_interp, t_numpy))
    print(f"{'what':<44} {'median':>12} {'numpy':>12} {'x slower':>10}")
    for name, t, base in rows:
        ratio = f"{t / base:,.0f}" if base else ""
        base_s = f"{base * 1e3:.3f} ms" if base else ""
        print(f"{name:<44} {t * 1e3:>9.3f} ms {base_s:>12} {ratio:>10}")


if __name__ == "__main__":
    main()
