"""Auto-tuning the 1024 fp32 matmul: ``wb.tune`` against numpy, tutorial 2's hand schedule and the machine peak.

Run:  .venv/bin/python benchmarks/tune_matmul.py [--budget 300] [--n 1024] [--int8-budget 120]
                                                 [--database tuning.jsonl] [--quick]

In one run it

1. tunes ``C = A @ B`` (float32, n x n) with ``wb.tune`` and the schedule rules for the
   host CPU, for ``--budget`` seconds;
2. where Apache TVM is importable (never a dependency), tunes the same te program with
   MetaSchedule for the same budget;
3. tunes the ``uint8 x int8 -> int32`` matmul (where the rules tensorize the inner tile
   with the widest exact dot-product intrinsic of the CPU, VNNI on AVX-512) for
   ``--int8-budget`` seconds;
4. times, in the same process and one after the other, numpy (OpenBLAS), tutorial 2's
   hand schedule (``workbench.demo.matmul_schedules(n)["packed B"]``), the tuned programs
   and TVM's, each checked against numpy first, and prints one table with the measured
   fp32 peak of the machine (``wb.machine_peak``).

numpy's OpenBLAS picks its kernel when it loads: ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` are removed from this process's environment before numpy is
imported, so the baseline is the kernel OpenBLAS chooses for this CPU (printed).

Gop/s: 10**9 operations per second, a multiply and an add counting two (FLOPs for fp32, integer
operations for int8).

``--database`` keeps every measurement in a JSON-lines file: a second run resumes from it
and measures nothing twice. ``--quick`` is a smoke run (n=64, a few seconds of tuning).
The machine may be shared: compare figures of the same run only.
"""
from __future__ import annotations

import os

# before numpy loads (workbench imports it): the baseline is OpenBLAS's own choice of kernel
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workbench as wb  # noqa: E402
from workbench.demo import matmul, matmul_schedules  # noqa: E402

#: the goal of issue 16: the tuned fp32 matmul reaches this fraction of numpy's speed
GOAL = 0.9


@dataclass
class Row:
    """One line of the table: ``seconds`` None when the program did not run (``note`` says why)."""

    program: str
    dtype: str
    seconds: float | None
    ops: float
    note: str = ""

    @property
    def gflops(self) -> float | None:
        return self.ops / self.seconds / 1e9 if self.seconds else None


# -- numpy --------------------------------------------------------------------------------------

def blas_kernel() -> str:
    """numpy's BLAS library and the kernel it runs on this CPU (threadpoolctl where installed, else
    OpenBLAS's own ``get_corename`` through ctypes)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _openblas_corename()
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return f"{info.get('internal_api')} {info.get('version')}, kernel {info.get('architecture')}, " \
                   f"{info.get('num_threads')} threads"
    return "no BLAS found by threadpoolctl"


def _openblas_corename() -> str:
    import ctypes

    libs = sorted(Path(np.__file__).parent.parent.glob("numpy.libs/*openblas*"))
    if not libs:
        return "unknown (no OpenBLAS library next to numpy; pip install threadpoolctl to see it)"
    lib = ctypes.CDLL(str(libs[0]))
    for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
        fn = getattr(lib, symbol, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            return f"OpenBLAS ({libs[0].name}), kernel {fn().decode()}"
    return f"OpenBLAS ({libs[0].name}), kernel unknown"


def numpy_matmul(a, b, c) -> None:
    np.matmul(a, b, out=c)


def numpy_int_matmul(a, b, c) -> None:
    """The exact int32 product of uint8 x int8 matrices, through float64 BLAS (exact: every partial sum
    stays below 2**53)."""
    c[...] = np.matmul(a.astype(np.float64), b.astype(np.float64))


def int8_matmul(n: int):
    """``C = A @ B`` with ``A`` uint8, ``B`` int8 and ``C`` int32 (each product widened first)."""
    from workbench import te

    A = te.placeholder((n, n), "uint8", name="A")
    B = te.placeholder((n, n), "int8", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(te.cast(A[i, k], "int32") * te.cast(B[k, j], "int32"), axis=k),
                   name="C")
    return wb.create_prim_func([A, B, C])


# -- tuning -------------------------------------------------------------------------------------

def tune(func, budget: float, database, target: str, seed: int):
    """``wb.tune`` with the rules for ``budget`` seconds; the result and the wall time it took."""
    t0 = time.monotonic()
    result = wb.tune(func, target=target, time_budget=budget, database=database, seed=seed)
    return result, time.monotonic() - t0


def tuned_note(result, wall: float) -> str:
    fresh = sum(not m.from_database for m in result.measured)
    failed = sum(not m.ok for m in result.measured)
    note = f"{fresh} trials in {wall:.0f} s"
    if len(result.measured) > fresh:
        note += f" (+{len(result.measured) - fresh} from the database)"
    if failed:
        note += f", {failed} failed"
    return note


def tensorized_with(result) -> str:
    """The intrinsic the best candidate tensorizes with ('' when none)."""
    found = re.search(r'sch\.tensorize\(.*"([^"]+)"', str(result.best.trace)) if result.best else None
    return found.group(1) if found else ""


# -- TVM MetaSchedule (optional) ----------------------------------------------------------------

def metaschedule(n: int, budget: float, work_dir: str):
    """The te matmul tuned by TVM's MetaSchedule for about ``budget`` seconds, as a callable on numpy
    arrays, and a note; ``(None, why)`` when TVM is not importable. MetaSchedule counts trials, not
    seconds: it runs rounds of 32 trials (resuming from its database) until the budget is spent. (apache-tvm
    0.27 segfaults creating a TuneContext with apache-tvm-ffi 0.1.15; 0.1.14.post0 works.)"""
    try:
        import tvm
        from tvm import te
    except ImportError:
        return None, "not run (apache-tvm not installed)"
    ms = getattr(getattr(tvm, "s_tir", None), "meta_schedule", None)
    if ms is None:
        from tvm import meta_schedule as ms
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    mod = tvm.IRModule({"main": te.create_prim_func([A, B, C])})
    cpu = wb.Target("llvm").cpu or "native"
    target = tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": os.cpu_count()})
    t0 = time.monotonic()
    while True:   # each round resumes from the JSON database in work_dir
        database = ms.tune_tir(mod, target, work_dir, max_trials_global=32, num_trials_per_iter=16)
        if time.monotonic() - t0 >= budget:
            break
    wall = time.monotonic() - t0
    sch = ms.tir_integration.compile_tir(database, mod, target)
    compile_fn = getattr(tvm, "compile", None) or tvm.build
    fn = compile_fn(sch.mod, target=target)["main"]
    return _tvm_callable(tvm, fn), f"{len(database.get_all_tuning_records())} trials in {wall:.0f} s"


def _tvm_callable(tvm, fn):
    """``fn`` (a TVM-built function) called on numpy arrays without copies (DLPack views)."""
    from_dlpack = getattr(tvm.runtime, "from_dlpack", None) or tvm.nd.from_dlpack
    cache: dict = {}

    def run(a, b, c):
        key = (a.ctypes.data, b.ctypes.data, c.ctypes.data)
        if key not in cache:
            cache.clear()
            cache[key] = [from_dlpack(x) for x in (a, b, c)]
        fn(*cache[key])

    return run


# -- timing -------------------------------------------------------------------------------------

def time_variants(variants: dict, reference, min_time: float, dtype: str, ops: float) -> list[Row]:
    """Check every variant against ``reference`` (numpy, first row) and time them one after the other
    (``wb.benchmark``); one Row per variant, doing ``ops`` operations per run."""
    res = wb.benchmark({"numpy": reference, **variants}, min_time=min_time, peak=None, progress=False)
    rows = []
    for name in ["numpy", *variants]:
        v = res[name]
        note = "" if v.status == "ok" else f"{v.status}: {v.note}"
        rows.append(Row(name, dtype, v.timing.median if v.status == "ok" else None, ops, note))
    return rows


# -- the table ----------------------------------------------------------------------------------

def print_table(rows: list[Row], numpy_gflops: float, peak) -> None:
    print(f"\n{'program':<46} {'dtype':<14} {'ms':>8} {'Gop/s':>8} {'vs numpy':>9} {'% peak':>7}  note")
    for r in rows:
        if r.gflops is None:
            print(f"{r.program:<46} {r.dtype:<14} {'-':>8} {'-':>8} {'-':>9} {'-':>7}  {r.note}")
            continue
        print(f"{r.program:<46} {r.dtype:<14} {r.seconds * 1e3:>8.2f} {r.gflops:>8.1f} "
              f"{r.gflops / numpy_gflops:>8.0%} {r.gflops / peak.gflops:>7.0%}  {r.note}")
    print(f"{'machine peak (fp32 FMA, wb.machine_peak)':<46} {'float32':<14} {'':>8} {peak.gflops:>8.1f} "
          f"{peak.gflops / numpy_gflops:>8.0%} {1:>7.0%}  {peak.cpu}, {peak.cores} core(s)")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=300.0, help="seconds of fp32 tuning (default 300)")
    p.add_argument("--n", type=int, default=1024, help="matrix size (default 1024)")
    p.add_argument("--int8-budget", type=float, default=120.0,
                   help="seconds of int8 (u8 x s8 -> s32) tuning; 0 skips it (default 120)")
    p.add_argument("--database", default=None,
                   help="JSON-lines tuning database to resume from and append to (default: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: n=64, 5 s fp32 and 3 s int8 tuning, short timings")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.budget, args.int8_budget = 64, min(args.budget, 5.0), min(args.int8_budget, 3.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    n, target = args.n, "llvm"
    min_time = 0.02 if args.quick else 0.5
    print(f"target: {wb.Target(target)}; numpy: {blas_kernel()}")
    peak = wb.machine_peak(target)   # measured once, then cached
    print(peak)
    database = wb.tuning.Database(args.database) if args.database else None

    fp32 = matmul(n)
    print(f"\ntuning the {n} fp32 matmul for {args.budget:g} s ...", flush=True)
    result, wall = tune(fp32, args.budget, database, target, args.seed)
    print(result)
    fp32_variants = {"tutorial 2 hand schedule (packed B)": matmul_schedules(n, target)["packed B"]}
    notes = {}
    if result.best is not None:
        fp32_variants["wb.tune (rules)"] = result.best.schedule
        notes["wb.tune (rules)"] = tuned_note(result, wall)
    with tempfile.TemporaryDirectory(prefix="metaschedule-") as work_dir:
        print(f"\nTVM MetaSchedule for {args.budget:g} s (where apache-tvm is installed) ...", flush=True)
        tvm_fn, tvm_note = metaschedule(n, args.budget, work_dir)
        if tvm_fn is not None:
            fp32_variants["TVM MetaSchedule"] = tvm_fn
        rows = time_variants(fp32_variants, numpy_matmul, min_time, "float32", wb.tuning.count_flops(fp32))
    rows[0].program = "numpy.matmul (OpenBLAS)"
    for r in rows:
        r.note = notes.get(r.program, r.note) if not r.note else r.note
        if r.program == "TVM MetaSchedule":
            r.note = r.note or tvm_note
    if tvm_fn is None:
        rows.append(Row("TVM MetaSchedule", "float32", None, rows[0].ops, tvm_note))
    if result.best is None:
        rows.append(Row("wb.tune (rules)", "float32", None, rows[0].ops, "no candidate ran correctly"))
    numpy_gflops = rows[0].gflops

    if args.int8_budget > 0:
        rows += int8_rows(n, args, database, target, min_time, rows)
    print_table(rows, numpy_gflops, peak)
    tuned = next(r for r in rows if r.program == "wb.tune (rules)")
    if tuned.gflops is not None:
        verdict = "reached" if tuned.gflops >= GOAL * numpy_gflops else "MISSED"
        print(f"\nwb.tune / numpy = {tuned.gflops / numpy_gflops:.0%} (goal >= {GOAL:.0%}: {verdict}); "
              f"best trace:\n{result.best.trace}")
    print("\n(2-core machine shared with other users: medians of the runs; compare figures of this run only)")
    return 0


def int8_rows(n: int, args, database, target: str, min_time: float, fp32_rows: list[Row]) -> list[Row]:
    """Tune the u8 x s8 -> s32 matmul and time it against numpy's exact int product; its note compares it
    with the fastest fp32 program of this run."""
    func = int8_matmul(n)
    print(f"\ntuning the {n} int8 (u8 x s8 -> s32) matmul for {args.int8_budget:g} s ...", flush=True)
    result, wall = tune(func, args.int8_budget, database, target, args.seed)
    print(result)
    label = "int8 wb.tune (rules, tensorize)"
    if result.best is None:
        return [Row(label, "u8 x s8 -> s32", None, 2.0 * n ** 3, "no candidate ran correctly")]
    rows = time_variants({label: result.best.schedule}, numpy_int_matmul, min_time, "u8 x s8 -> s32",
                         2.0 * n ** 3)
    rows[0].program = "numpy int8 reference (float64 BLAS of casts)"
    best_fp32 = max((r for r in fp32_rows if r.gflops), key=lambda r: r.gflops)
    tuned = rows[1]
    intrin = tensorized_with(result) or "no intrinsic"
    tuned.note = tuned.note or (f"{intrin}; {tuned_note(result, wall)}; "
                                f"{tuned.gflops / best_fp32.gflops:.2f}x the best fp32 ({best_fp32.program})")
    return rows


if __name__ == "__main__":
    sys.exit(main())
