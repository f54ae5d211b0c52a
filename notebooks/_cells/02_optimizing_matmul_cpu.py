# %% [markdown]
# # Tutorial 2: optimizing a matmul for the CPU, one primitive at a time
#
# Tutorial 1 built a correct float32 matrix multiplication that is very slow. Here we keep
# the *computation* fixed and change only *how it is computed*: each cell applies one
# **schedule primitive** (split a loop, reorder loops, vectorize, run in parallel, cache a
# buffer...), and after each step the program is built, checked against numpy and timed.
#
# Why it works is the point, so keep two facts about the machine in mind:
#
# - **Arithmetic**: one core can start two vector fused multiply-adds (FMA) per cycle.
#   With AVX2 a vector holds 8 float32 (16 with AVX-512), so the peak is
#   2 FMAs x 8 lanes x 2 FLOPs = 32 FLOPs per cycle per core. Scalar code uses 1/8 of it.
# - **Memory**: a matmul of size n does 2n³ FLOPs on 3n² numbers, so each number can be
#   reused about n times. Main memory delivers a few floats per cycle at best, so the
#   program must reuse data from registers and caches, and that depends on the loop order.
#
# The first cell picks the size: 1024 by default, 256 when `WB_TUTORIAL_SMALL=1`
# (the test suite). At 1024 the whole notebook runs in under a minute here.

# %%
import os

import numpy as np
import pandas as pd

import workbench as wb
from workbench import te

SMALL = os.environ.get("WB_TUTORIAL_SMALL", "") not in ("", "0")
N = 256 if SMALL else 1024
MIN_TIME = 0.05 if SMALL else 0.3       # seconds of timing samples per variant

peak = wb.machine_peak()                # measured once (a few seconds), then cached
print(peak)

# %% [markdown]
# ## The program and the baseline
#
# The same te description as in tutorial 1. The baseline to compare with is
# `numpy.matmul`, which calls OpenBLAS's hand-written sgemm kernels.

# %%
A = te.placeholder((N, N), "float32", name="A")
B = te.placeholder((N, N), "float32", name="B")
k = te.reduce_axis(N, name="k")
C = te.compute((N, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
matmul = wb.create_prim_func([A, B, C])


def numpy_mm(a, b, c):
    np.matmul(a, b, out=c)


matmul

# %% [markdown]
# The naive program is slow (seconds at 1024), so we time it **once**, here, with a
# single sample after the correctness check (`min_repeats=1`), and keep its time as the
# reference for the speedups of all later steps. `wb.benchmark` runs the first variant
# (numpy) as the reference for the check: a variant whose results differ is reported
# `wrong` and not timed.

# %%
base = wb.benchmark({"numpy": numpy_mm, "naive": matmul}, min_time=MIN_TIME, min_repeats=1)
base

# %% [markdown]
# A small helper keeps one table row per step: it benchmarks the current schedule
# against numpy (checking it, too), remembers a copy of the schedule (`sch.fork()`),
# and shows the speedup over the naive program and the fraction of numpy's speed.
# Re-running a cell replaces its row.

# %%
naive_ms = base["naive"].median_ms
steps = {}                                   # step name -> a copy of the schedule at that step
history = base.table.set_index("variant").loc[["naive"], ["status", "median_ms", "gflops", "pct_of_peak"]]
history["speedup_vs_naive"] = 1.0
history["pct_of_numpy"] = 100 * base["numpy"].median_ms / naive_ms


def measure(name, sch):
    """Check ``sch`` against numpy, time it, and return the table of all steps so far."""
    global history
    res = wb.benchmark({"numpy": numpy_mm, name: sch}, min_time=MIN_TIME, progress=False)
    t = res.table.set_index("variant")
    row = t.loc[[name], ["status", "median_ms", "gflops", "pct_of_peak"]]
    row["speedup_vs_naive"] = naive_ms / row["median_ms"]
    row["pct_of_numpy"] = 100 * t.loc["numpy", "median_ms"] / row["median_ms"]
    history = pd.concat([history.drop(index=name, errors="ignore"), row])
    steps[name] = sch.fork()
    return history.round(3)


# %% [markdown]
# ## Step 1: tiling
#
# A schedule starts from the program and hands out **handles** to its blocks and loops.

# %%
sch = wb.Schedule(matmul)
c = sch.get_block("C")
i, j, k = sch.get_loops(c)

# %% [markdown]
# The plan: compute C in small **tiles** of `MR` rows x `NR` columns, and for each tile
# run the whole `k` loop *outside* the tile's loops. At each step of `k` the tile does
# `MR * NR` multiply-adds while reading only `MR` numbers of A and `NR` of B: every number
# loaded is used `NR` (or `MR`) times. And `NR` consecutive columns of B and C are
# contiguous in memory.
#
# The tile size is chosen for the registers: rows of two vectors (`NR` is twice the vector
# width), 4 rows with AVX2 (a 4 x 16 tile: 8 accumulator registers of the 16 that AVX2
# has), 8 rows with AVX-512 (an 8 x 32 tile: 16 of its 32 registers).
#
# `split` turns one loop into two nested ones; `factors=[None, MR]` means "inner loop of
# `MR`, outer loop whatever is left".

# %%
LANES = wb.Target("llvm").vector_lanes("float32")     # 8 with AVX2, 16 with AVX-512
MR, NR = (8 if LANES >= 16 else 4), 2 * LANES
print(f"{LANES} float32 lanes per vector: register tile {MR} x {NR}")
i0, i1 = sch.split(i, factors=[None, MR])

# %%
j0, j1 = sch.split(j, factors=[None, NR])

# %% [markdown]
# `reorder` changes the nesting order of loops: the tile loops `i1, j1` go inside `k`, and
# the loop over panels of `NR` columns, `j0`, goes outside the loop over row tiles, `i0`.
# Then one panel of B (`NR` columns x N rows: 128 KB with AVX-512 at N = 1024) is used by
# every row tile in turn while it sits in the core's L2 cache; in the other order, each
# row tile would stream the whole of B from memory again. The loop-nest widget shows the
# new structure (the step slider and the diff show what each primitive changed).

# %%
sch.reorder(j0, i0, k, i1, j1)
sch

# %%
measure("tiled", sch)

# %% [markdown]
# ## Step 2: vectorize
#
# The innermost loop `j1` walks `NR` contiguous columns: it can become vector instructions.
# We split it into pieces of exactly one vector (`LANES`) and mark the inner piece
# `vectorized`: the backend emits one vector load, FMA and store for the whole loop.

# %%
j1o, j1i = sch.split(j1, factors=[None, LANES])

# %%
sch.vectorize(j1i)
measure("vectorized", sch)

# %% [markdown]
# ## Step 3: parallel
#
# Different column panels (`j0`) write different columns of C, so they can run at the
# same time on different cores, each with its panel of B in its own L2 cache. `parallel`
# hands the iterations of `j0` out to a thread pool (the schedule refuses it on a loop
# where iterations would write the same element).

# %%
sch.parallel(j0)
measure("parallel", sch)

# %% [markdown]
# ## Step 4: a register tile
#
# Look at what the inner loop does now: every step of `k` *loads* the tile of C from
# memory, adds to it and *stores* it back. The accumulators should stay in registers for
# the whole `k` loop and be written to C once at the end.
#
# The schedule says so in three primitives, as in TVM:
#
# 1. `cache_write(c, 0, "local")`: the block accumulates into a new `local` buffer, and a
#    new block copies that buffer into C;
# 2. `reverse_compute_at(copy, i0)`: the copy moves under loop `i0`, right after each
#    tile is finished, so it copies just that tile;
# 3. `decompose_reduction(c, k)`: the "set to zero" part of the reduction (its `init`)
#    becomes its own block before the `k` loop, instead of an `if k == 0` inside it.

# %%
cl = sch.cache_write(c, 0, "local")
sch

# %%
sch.reverse_compute_at(cl, i0)

# %%
init = sch.decompose_reduction(c, k)
sch

# %% [markdown]
# Finally **unroll** the tile's row loop and vector loop: the `MR x NR / LANES` updates
# become straight-line code, each accumulator its own variable, which LLVM can keep in
# a register.

# %%
sch.unroll(i1)

# %%
sch.unroll(j1o)
measure("register tile", sch)

# %% [markdown]
# ## Step 5: pack B
#
# Each tile reads a panel of `NR` columns of B for all `k`: `NR` floats from each of N
# rows, N x 4 bytes apart. Such strided access touches a new cache line and often a new
# memory page at every step. Optimized libraries **pack** B first: copy it once into
# panels where the `NR` columns of consecutive `k` are adjacent.
#
# In schedule terms: `cache_read` makes a copy of B read by the block, and
# `transform_layout` stores that copy in the new layout `Bp[j // NR, k, j % NR]`. The
# copy is then scheduled like any other block: its column loop split and reordered so
# that it writes contiguously, vectorized, parallel.

# %%
bp = sch.cache_read(c, 2, "global")

# %%
sch.transform_layout(bp, ("write", 0), lambda kk, jj: (jj // NR, kk, jj % NR))
sch

# %%
a0, a1 = sch.get_loops(bp)
a1o, a1i = sch.split(a1, factors=[None, NR])
sch.reorder(a1o, a0, a1i)

# %%
sch.vectorize(a1i)
sch.parallel(a1o)
measure("packed B", sch)

# %% [markdown]
# ## The recipe, and undo
#
# `sch.trace` is the whole schedule as replayable Python: the cells above, with
# handles renamed. (The main command, `python -m workbench.demo`, builds exactly this
# schedule, from `workbench.demo.matmul_schedules`.)

# %%
print(sch.trace)

# %% [markdown]
# Re-running a cell must never leave you stuck: `sch.undo()` takes back the last
# primitive, and `sch.fork()` gives a cheap copy to explore a different branch without
# touching the original.

# %%
experiment = sch.fork()
experiment.undo()                              # no longer parallel over B's panels
print(len(sch.trace), "steps in sch;", len(experiment.trace), "in the experiment after undo")

# %% [markdown]
# ## All steps, side by side
#
# The final comparison times every step again in one run (the machine may be shared, so
# only numbers from the same run compare well), except the naive program, whose time is
# in the first table row. The bar chart shows GFLOP/s with the speedup over the first
# step on each bar; the **roofline** places each variant under the machine's limits:
# the flat line is the measured FMA peak, the slope is memory bandwidth times
# arithmetic intensity (FLOPs per byte that must come from memory). A matmul has high
# intensity: it is limited by the arithmetic, not by memory, and the gap between a dot
# and the flat line is what scheduling can still win.

# %%
final = wb.benchmark({"numpy": numpy_mm, **steps}, min_time=MIN_TIME, baseline="tiled")
final

# %%
fig_bar = final.plot(metric="gflops")
fig_bar

# %%
fig_roof = final.roofline()
fig_roof

# %% [markdown]
# ## The inner loop
#
# The machine code shows what the schedule achieved: look for the innermost loop, the one
# with the FMAs (`vfmadd...ps`, packed single: 8 or 16 floats at once). Lowering
# *compacts* the `local` cache `C_local` to the `MR x NR` floats one tile uses, and code
# generation tells LLVM that distinct buffers never overlap (alias scopes), so the
# accumulators stay in registers for the whole `k` loop: between the FMAs there are only
# loads of B and broadcasts of A, and no vector stores (`vmovups %ymm, (...)` with AVX2,
# `%zmm` with AVX-512) until the loop ends. The cell counts them on this CPU.

# %%
asm = wb.build(sch.mod, target="llvm").source("asm").splitlines()
fma_lines = [n for n, ln in enumerate(asm) if "vfmadd" in ln]
inner = asm[fma_lines[0] - 2: fma_lines[0] + 3 * MR * (NR // LANES)]
body = [ln for ln in inner if ln.startswith("\t")]
print("\n".join(body))
reg = {4: "xmm", 8: "ymm", 16: "zmm"}.get(LANES, "?")
stores = [ln for ln in body if "vmovups" in ln and "(" in ln.split(",")[-1]]  # AT&T: the destination is last
print(f"\non this CPU ({LANES} float32 lanes, %{reg} registers): {sum('vfmadd' in ln for ln in body)} FMAs "
      f"and {len(stores)} vector stores in the lines above")

# %% [markdown]
# **Try it**: put `i0` back outside `j0` in step 1 (`sch.reorder(i0, j0, k, i1, j1)`, then
# `parallel(i0)` and `reverse_compute_at(cl, j0)`) and compare the `measure(...)` rows at
# N = 2048, where the packed B (16 MB) no longer fits in the caches.
