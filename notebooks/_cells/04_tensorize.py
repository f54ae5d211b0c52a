# %% [markdown]
# # Tutorial 4: blockize and tensorize an int8 matmul
#
# Quantized models multiply 8-bit integers and accumulate in 32 bits. CPUs have special
# instructions for exactly that: a dot product of groups of four `uint8 x int8` pairs
# into each `int32` lane. LLVM does not find them from plain loops, so a compiler puts
# them in by hand with **tensorization**:
#
# 1. `sch.blockize(loop)` wraps a small tile of the loop nest (here 8 or 16 outputs x
#    4 reduction steps) into a block of its own, a unit with a clear interface: which
#    slices of A, B and C it reads and writes;
# 2. `sch.tensorize(block, name)` checks that this block computes exactly what a
#    registered **tensor intrinsic** describes, and replaces its body by the intrinsic's
#    implementation (a few target instructions).
#
# On CPUs with AVX-512 VNNI the intrinsic is one `vpdpbusd` instruction (16 lanes). This
# tutorial also runs on AVX2-only CPUs such as the one it was written on, where the same
# dot product (8 lanes) widens the bytes to int16 in place (shifts and a mask) and takes
# two `vpmaddwd` (pairs of int16 products summed into int32), exact for every input.

# %%
import os
import time

import numpy as np
from IPython.display import display

import workbench as wb
from workbench import te

SMALL = os.environ.get("WB_TUTORIAL_SMALL", "") not in ("", "0")
N = 256 if SMALL else 1024
MIN_TIME = 0.05 if SMALL else 0.3

target = wb.Target("llvm")
INTRIN = "dot_u8s8_vnni" if target.has("avx512vnni") else "dot_u8s8_avx2"
L = 16 if INTRIN == "dot_u8s8_vnni" else 8        # int32 lanes of one vector
G = 4                                             # u8 x s8 pairs summed into each lane
print(f"{target}: using {INTRIN} ({L} lanes x {G})")

# %% [markdown]
# ## The registered intrinsics
#
# `wb.list_tensor_intrins()` shows every intrinsic, what it computes and whether this CPU
# has the features it needs. Each one is a pair of small tensor programs: a *description*
# (plain loops: what is computed) and an *implementation* (how).

# %%
wb.list_tensor_intrins()

# %%
from workbench.schedule.tensor_intrin import get_tensor_intrin

get_tensor_intrin(INTRIN)

# %% [markdown]
# ## The program: B packed for the instruction
#
# The instruction reads, for each of its `L` output lanes, 4 consecutive bytes of B along
# `k`. So B is stored **packed**: `Bp[j // L, k // 4, j % L, k % 4]`, the `L x 4` bytes
# that one instruction needs are contiguous. (Tutorial 2 packed B with a schedule
# primitive; here the packed layout is the input format, as quantized weights usually are:
# packed once, offline.) The sum is over `int32` casts of the 8-bit values.

# %%
A = te.placeholder((N, N), "uint8", name="A")
Bp = te.placeholder((N // L, N // G, L, G), "int8", name="Bp")
k = te.reduce_axis(N, name="k")
C = te.compute((N, N), lambda i, j: te.sum(A[i, k].astype("int32") * Bp[j // L, k // G, j % L, k % G].astype("int32"),
                                           axis=k), name="C")
mm_int8 = wb.create_prim_func([A, Bp, C])


def pack(b):
    """B (K x N, int8) -> Bp[j // L, k // G, j % L, k % G]."""
    kk, nn = b.shape
    return b.T.reshape(nn // L, L, kk // G, G).transpose(0, 2, 1, 3).copy()


rng = np.random.default_rng(0)
a = rng.integers(0, 256, (N, N)).astype(np.uint8)      # full range: see the note below
b = rng.integers(-128, 128, (N, N)).astype(np.int8)
bp = pack(b)
t0 = time.perf_counter()
want = a.astype(np.int32) @ b.astype(np.int32)
numpy_s = time.perf_counter() - t0
print(f"numpy int32 matmul (no BLAS for integers): {numpy_s * 1e3:.1f} ms")
mm_int8

# %% [markdown]
# *Note*: AVX2's `vpmaddubsw` would do the u8 x s8 products in one instruction, but it adds
# each pair into an int16 **with saturation** (`255 * 127 * 2 = 64770` does not fit), so
# it would change results for large inputs; tensorize must never do that, so
# `dot_u8s8_avx2` does not use it. Both int8 intrinsics are exact for all inputs: the
# `precision` column of `wb.list_tensor_intrins()` states each intrinsic's contract.
#
# ## The loop schedule
#
# Tiles of 4 rows x `L` columns x `G` reduction steps, the reduction split so that the
# inner `G` steps match the instruction, the zeroing split out of the reduction
# (`decompose_reduction`) and the row tiles parallel. We fork two variants here: the
# same loops with LLVM's own vectorization, for comparison, and the tensorized one.

# %%
sch = wb.Schedule(mm_int8)
c = sch.get_block("C")
i, j, kk = sch.get_loops(c)
i0, i1 = sch.split(i, factors=[None, 4])
j0, j1 = sch.split(j, factors=[None, L])
k0, k1 = sch.split(kk, factors=[None, G])
sch.reorder(i0, j0, k0, i1, j1, k1)
init = sch.decompose_reduction(c, k0)
sch.parallel(i0)
sch

# %% [markdown]
# The comparison variant: the `L` columns innermost and vectorized by LLVM from plain loops
# (it widens the bytes to int32 and multiplies lane by lane). Whether that beats the scalar
# loops depends on the CPU: the benchmark below measures it and says so.

# %%
sch_v = sch.fork()
sch_v.reorder(k1, j1)
sch_v.vectorize(j1)

# %% [markdown]
# ## Blockize
#
# `blockize(j1)` wraps the loops `j1, k1` (an `L x G` tile) into a new outer block
# `C_update_o`. Look at its `reads`/`writes`: one row of 4 bytes of A, one `L x 4` panel of
# Bp, `L` int32 of C. That is exactly the interface of the intrinsic.

# %%
sch_t = sch.fork()
outer = sch_t.blockize(j1)
sch_t

# %% [markdown]
# ## Tensorize
#
# `tensorize` matches the outer block's body against the intrinsic's description (same
# computation, same shapes, indices that map one to one), binds the intrinsic's buffers
# to the block's slices (`wb.match_buffer`), and puts the implementation in place. A block
# that does not match is refused with the reason.

# %%
sch_t.tensorize(outer, INTRIN)
print(sch_t.func.script())

# %% [markdown]
# The instructions are really there in the machine code:

# %%
asm = wb.build(sch_t.mod, target="llvm").source("asm")
for op in ("vpdpbusd", "vpmaddwd"):
    print(f"{op:12s} {asm.count(op)} occurrence(s)")

# %% [markdown]
# And a block that does not fit is refused: the vectorized variant's tile has the
# reduction outside the columns, not the shape the intrinsic describes.

# %%
try:
    wrong = sch_v.fork()
    wrong.tensorize(wrong.get_loops(wrong.get_block("C_update"))[-2], INTRIN)
except wb.ScheduleError as err:
    print(type(err).__name__, "-", str(err).splitlines()[0])

# %% [markdown]
# ## Keep the tile in registers
#
# The tensorized loops above still load and store the `L` int32 of C around every
# instruction. Tutorial 2's register tile removes that: `cache_write` makes the block
# accumulate into a small `local` buffer, `reverse_compute_at` copies it back once per tile,
# and `decompose_reduction` zeroes it before the `k` loop. With the tile's rows and column
# vectors unrolled (4 rows x 2 vectors), LLVM keeps all 8 accumulators in registers, and
# each A byte group broadcast serves two instructions. The order matters: `cache_write`
# goes before `decompose_reduction`, while the block still has its init. (A program that
# accumulates into C with no init at all, as in `benchmarks/int8_matmul_cpu.py`, uses
# `cache_inplace` instead: it loads the tile before the loop and stores it after.)

# %%
sch_r = wb.Schedule(mm_int8)
c = sch_r.get_block("C")
i, j, kk = sch_r.get_loops(c)
i0, i1 = sch_r.split(i, factors=[None, 4])
j0, jv, j1 = sch_r.split(j, factors=[None, 2, L])
k0, k1 = sch_r.split(kk, factors=[None, G])
sch_r.reorder(i0, j0, k0, i1, jv, j1, k1)
c_local = sch_r.cache_write(c, 0, "local")
sch_r.reverse_compute_at(c_local, j0)
sch_r.decompose_reduction(c, k0)
sch_r.unroll(i1)
sch_r.unroll(jv)
sch_r.parallel(i0)
sch_r.tensorize(j1, INTRIN)
sch_r

# %% [markdown]
# ## The speed-up
#
# All four variants are checked against numpy's integer matmul (exactly: integers),
# then timed on the same arrays. `wb.benchmark` counts floating-point operations, so we
# add the integer operations per second (`2 N³` multiply-adds) ourselves.

# %%
PLAIN, VECTORIZED, TENSORIZED = "scalar loops", "vectorized by LLVM", f"tensorized ({INTRIN})"
REGISTERS = "tensorized, register tile"
variants = {PLAIN: sch, VECTORIZED: sch_v, TENSORIZED: sch_t, REGISTERS: sch_r}
for name, s in variants.items():
    out = np.zeros((N, N), np.int32)
    wb.build(s.mod, target="llvm")(a, bp, out)
    np.testing.assert_array_equal(out, want, err_msg=name)
print("all variants equal numpy's result")

res = wb.benchmark(variants, args=[a, bp, np.zeros((N, N), np.int32)], min_time=MIN_TIME, peak=None)
table = res.table[["variant", "status", "median_ms", "spread_pct", f"speedup_vs_{PLAIN}"]].copy()
table["GOP/s"] = 2 * N ** 3 / (table["median_ms"] * 1e-3) / 1e9
table

# %%
# what this CPU measured (the prose of this tutorial does not assume a CPU)
speed = dict(zip(res.table["variant"], res.table[f"speedup_vs_{PLAIN}"]))
for name in (VECTORIZED, TENSORIZED, REGISTERS):
    print(f"on {target.cpu}: {name} runs at {speed[name]:.2f}x the scalar loops "
          f"({'faster' if speed[name] > 1 else 'slower'})")

# %%
ax = res.plot().axes[0]
ax.set_title(f"int8 matmul {N}^3 on {target.cpu}: time per call (labels: speedup over scalar loops)", fontsize=10)
ax.figure

# %% [markdown]
# The tensorized kernel does 4 multiply-adds per lane per instruction pair, where the
# vectorized loops need a widening, a multiply and an add per product. On a VNNI CPU the
# gap is larger still (one instruction, 16 lanes).
#
# ## No VNNI here? Run the VNNI kernel in the CPU emulator
#
# `wb.build(..., target="llvm -mcpu=sapphirerapids", emulate=True)` compiles for an Intel
# Sapphire Rapids and runs the machine code in a CPU emulator (Bochs): slowly, but
# instruction for instruction what that CPU does. So the real `vpdpbusd` kernel can be
# checked against numpy on any x86-64 machine. The emulator cannot tell how fast the real
# CPU would be; what it can count is the instructions each variant retires.

# %%
from workbench.backend import emulate


def int8_schedule(n, lanes, intrin=None):
    """The schedule above for n^3 and `lanes` int32 lanes: vectorized by LLVM, or tensorized."""
    A_ = te.placeholder((n, n), "uint8", name="A")
    B_ = te.placeholder((n // lanes, n // G, lanes, G), "int8", name="Bp")
    k_ = te.reduce_axis(n, name="k")
    C_ = te.compute((n, n), lambda i, j: te.sum(
        A_[i, k_].astype("int32") * B_[j // lanes, k_ // G, j % lanes, k_ % G].astype("int32"), axis=k_), name="C")
    s = wb.Schedule(wb.create_prim_func([A_, B_, C_]))
    blk = s.get_block("C")
    i, j, kk = s.get_loops(blk)
    i0, i1 = s.split(i, factors=[None, 4])
    j0, j1 = s.split(j, factors=[None, lanes])
    k0, k1 = s.split(kk, factors=[None, G])
    s.reorder(i0, j0, k0, i1, j1, k1)
    s.decompose_reduction(blk, k0)
    if intrin is None:
        s.reorder(k1, j1)
        s.vectorize(j1)
    else:
        s.tensorize(s.blockize(j1), intrin)
    return s


if emulate.available():
    import pandas as pd

    n = 64
    a16 = rng.integers(0, 256, (n, n)).astype(np.uint8)   # VNNI accumulates in int32: no saturation
    b16 = rng.integers(-128, 128, (n, n)).astype(np.int8)
    bp16 = b16.T.reshape(n // 16, 16, n // G, G).transpose(0, 2, 1, 3).copy()
    rows = []
    for label, intrin in (("vectorized by LLVM (zmm)", None), ("tensorized (dot_u8s8_vnni)", "dot_u8s8_vnni")):
        m = wb.build(int8_schedule(n, 16, intrin).mod, target="llvm -mcpu=sapphirerapids", emulate=True)
        m.count_instructions = True
        out = np.zeros((n, n), np.int32)
        m(a16, bp16, out)
        np.testing.assert_array_equal(out, a16.astype(np.int32) @ b16.astype(np.int32), err_msg=label)
        run = next(iter(m.functions.values())).last_run
        rows.append({"variant": label, "vpdpbusd in the code": m.source("asm").count("vpdpbusd"),
                     "instructions retired": run.instructions, "multiply-adds per instruction": n ** 3 / run.instructions})
    print("both emulated variants equal numpy's result")
    display(pd.DataFrame(rows))
else:
    print("the emulator is not installed here (pip install 'workbench[emulate]')")
#
# **Try it**: `wb.list_tensor_intrins()` also lists `fma_f32x8_avx2`, a float32 vector FMA.
# Tensorize the tutorial-2 matmul's vector loop with it and compare with `vectorize`.
