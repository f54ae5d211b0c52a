"""Kernels of a BERT-base-sized layer: DefaultSchedule vs unscheduled vs numpy, in milliseconds.

Run:  .venv/bin/python benchmarks/default_schedule.py [--target "llvm -mcpu=znver3"] [--min-time 0.3]

Each kernel is the graph op library's legalization (``get_op(name).legalize``), built twice with
LLVM: as generated and after ``DefaultSchedule(target)``. numpy computes the same with the op's
reference (BLAS sgemm for the matmuls, on as many threads as numpy's BLAS uses). Times are medians
of ``workbench.tuning.timing.measure``; every scheduled result is checked against numpy first.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workbench as wb  # noqa: E402
from workbench import te  # noqa: E402
from workbench.ir.graph.op import get_op  # noqa: E402
from workbench.transform.default_schedule import DefaultSchedule  # noqa: E402
from workbench.tuning.timing import measure  # noqa: E402

#: name -> (op, input shapes, attrs, flops)
KERNELS = {
    "matmul 128x384x384": ("matmul", [(128, 384), (384, 384)], {}, 2 * 128 * 384 * 384),
    "matmul 128x384x1536": ("matmul", [(128, 384), (384, 1536)], {}, 2 * 128 * 384 * 1536),
    "linear 128x384x1536 (w.T)": ("linear", [(128, 384), (1536, 384), (1536,)], {}, 2 * 128 * 384 * 1536),
    "layer_norm 128x384": ("layer_norm", [(128, 384), (384,), (384,)], {"axes": [-1]}, 0),
    "softmax 12x128x128": ("softmax", [(12, 128, 128)], {"axis": -1}, 0),
    "gelu 128x1536": ("gelu", [(128, 1536)], {}, 0),
}


def kernel(op: str, shapes, attrs):
    ph = [te.placeholder(s, "float32", name=f"x{i}") for i, s in enumerate(shapes)]
    out = get_op(op).legalize(ph, attrs)
    return wb.create_prim_func(ph + (out if isinstance(out, list) else [out]))


def run(target: str, min_time: float, names=None) -> list[dict]:
    rng = np.random.default_rng(0)
    pass_ = DefaultSchedule(target)
    rows = []
    for name, (op, shapes, attrs, flops) in KERNELS.items():
        if names and not any(n in name for n in names):
            continue
        func = kernel(op, shapes, attrs)
        t0 = time.perf_counter()
        scheduled = pass_(wb.IRModule({"k": func}))["k"]
        sched_s = time.perf_counter() - t0
        inputs = [rng.standard_normal(s).astype("float32") for s in shapes]
        ref = np.asarray(get_op(op).reference(inputs, attrs))
        out = np.empty_like(ref)
        fast = wb.build(scheduled, target=target)
        fast(*inputs, out)
        err = float(np.max(np.abs(out - ref)))
        slow = wb.build(func, target=target)
        row = {"kernel": name, "max_abs_err": err, "schedule_s": sched_s,
               "default_ms": measure(fast, *inputs, out, min_time=min_time).median * 1e3,
               "unscheduled_ms": measure(slow, *inputs, out, min_time=min_time).median * 1e3,
               "numpy_ms": measure(lambda: get_op(op).reference(inputs, attrs), min_time=min_time).median * 1e3}
        row["gflops"] = flops / row["default_ms"] / 1e6 if flops else None
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = f"{'kernel':28s} {'default ms':>10s} {'unsched ms':>10s} {'numpy ms':>9s} {'speed-up':>8s} " \
           f"{'vs numpy':>8s} {'GFLOP/s':>8s} {'max err':>8s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        gf = f"{r['gflops']:8.1f}" if r["gflops"] else f"{'':8s}"
        lines.append(f"{r['kernel']:28s} {r['default_ms']:10.3f} {r['unscheduled_ms']:10.3f} {r['numpy_ms']:9.3f} "
                     f"{r['unscheduled_ms'] / r['default_ms']:7.1f}x {r['numpy_ms'] / r['default_ms']:7.2f}x "
                     f"{gf} {r['max_abs_err']:8.1e}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="llvm")
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds of samples per measurement")
    ap.add_argument("--only", nargs="*", help="run the kernels whose name contains one of these")
    args = ap.parse_args(argv)
    print(f"target: {wb.Target(args.target)}")
    print(table(run(args.target, args.min_time, args.only)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
