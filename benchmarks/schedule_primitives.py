"""Median time per schedule primitive on a matmul-sized program (milliseconds).

Run: .venv/bin/python benchmarks/schedule_primitives.py [--repeat N]

Each primitive is applied to a fresh fork of a prepared schedule, so the time is the
primitive alone (handle resolution, the program rewrite, history and trace bookkeeping).
"""
from __future__ import annotations

import argparse
import statistics
import time

import workbench as wb


def _mm_relu(n: int = 1024):
    te = wb.te
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    Y = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="Y")
    C = te.compute((n, n), lambda i, j: te.max(Y[i, j], 0.0), name="C")
    return wb.create_prim_func([A, B, C])


def cases(func):
    """name -> (setup(sch) -> args, call(sch, *args))"""
    def loops(sch, name="Y"):
        return sch.get_loops(sch.get_block(name))

    return {
        "get_block": (lambda s: (), lambda s: s.get_block("Y")),
        "get_loops": (lambda s: (s.get_block("Y"),), lambda s, b: s.get_loops(b)),
        "split": (lambda s: (loops(s)[0],), lambda s, i: s.split(i, factors=[None, 32])),
        "fuse": (lambda s: tuple(loops(s)[:2]), lambda s, i, j: s.fuse(i, j)),
        "reorder": (lambda s: tuple(loops(s)), lambda s, i, j, k: s.reorder(k, i, j)),
        "parallel": (lambda s: (loops(s)[0],), lambda s, i: s.parallel(i)),
        "vectorize": (lambda s: (loops(s)[1],), lambda s, j: s.vectorize(j)),
        "unroll": (lambda s: (loops(s)[2],), lambda s, k: s.unroll(k)),
        "annotate": (lambda s: (loops(s)[0],), lambda s, i: s.annotate(i, "pragma", 1)),
        "compute_at": (lambda s: (s.get_block("Y"), loops(s, "C")[0]), lambda s, b, i: s.compute_at(b, i)),
        "reverse_compute_at": (lambda s: (s.get_block("C"), loops(s, "Y")[0]),
                               lambda s, b, i: s.reverse_compute_at(b, i)),
        "compute_inline": (lambda s: (s.cache_read(s.get_block("Y"), 1, "shared"),),
                           lambda s, b: s.compute_inline(b)),
        "decompose_reduction": (lambda s: (s.get_block("Y"), loops(s)[2]),
                                lambda s, b, k: s.decompose_reduction(b, k)),
        "cache_read": (lambda s: (s.get_block("Y"),), lambda s, b: s.cache_read(b, 1, "shared")),
        "cache_write": (lambda s: (s.get_block("Y"),), lambda s, b: s.cache_write(b, 0, "local")),
        "transform_layout": (lambda s: (s.get_block("Y"),),
                             lambda s, b: s.transform_layout(b, ("write", 0), lambda i, j: (j // 16, i, j % 16))),
        "rfactor": (lambda s: (s.split(loops(s)[2], factors=[None, 4])[1],), lambda s, k: s.rfactor(k, 0)),
        "sample_perfect_tile": (lambda s: (loops(s)[0],), lambda s, i: s.sample_perfect_tile(i, n=3)),
        "undo": (lambda s: (s.split(loops(s)[0], factors=[None, 32]),), lambda s, _: s.undo()),
        "fork": (lambda s: (), lambda s: s.fork()),
    }


def main(repeat: int = 50) -> None:
    func = _mm_relu()
    base = wb.Schedule(func, seed=0)
    print(f"{'primitive':<24} {'median ms':>10} {'min ms':>8}")
    for name, (setup, call) in cases(func).items():
        times = []
        for _ in range(repeat):
            sch = base.fork()
            args = setup(sch)
            t0 = time.perf_counter()
            call(sch, *args)
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"{name:<24} {statistics.median(times):>10.3f} {min(times):>8.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=50)
    main(ap.parse_args().repeat)
