"""Build latency of the hand-tiled 1024 matmul: lowering + LLVM IR generation + optimisation + JIT.

Run:  .venv/bin/python benchmarks/build_latency.py [--builds 7]

Each build bypasses the compile cache (``cache=False``); one warm-up build first
(it loads llvmlite and initialises LLVM). Prints the median of each phase.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matmul_cpu import tiled_matmul  # noqa: E402


def main(argv=None) -> int:
    import workbench as wb

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--builds", type=int, default=7)
    p.add_argument("--n", type=int, default=1024)
    args = p.parse_args(argv)
    target = wb.Target("llvm")
    lanes = target.vector_lanes("float32")
    func = tiled_matmul(args.n, mr=4, nr=2 * lanes, lanes=lanes, mc=64)
    wb.build(func, target=target, cache=False)  # warm-up: imports, LLVM initialisation
    totals, phases = [], {}
    for _ in range(args.builds):
        t = time.perf_counter()
        m = wb.build(func, target=target, cache=False)
        totals.append(time.perf_counter() - t)
        for k, v in m.times.items():
            phases.setdefault(k, []).append(v)
    print(f"tiled {args.n} matmul, target {target}, {args.builds} fresh builds (cache bypassed)")
    for k, v in phases.items():
        print(f"  {k:<10} {np.median(v) * 1e3:8.1f} ms")
    print(f"  {'total':<10} {np.median(totals) * 1e3:8.1f} ms  (median; min {min(totals) * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
