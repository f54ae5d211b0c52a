# %% [markdown]
# # Tutorial 3: fusion and compute location
#
# Real models chain operators: a dense layer is a matmul, then a bias add, then an
# activation. Written one after the other, each operator reads its input from memory and
# writes its whole output back, and the next one reads it again. **Fusion** computes a
# piece of the consumer right after the piece of the producer it needs, while that piece
# is still in registers or cache.
#
# In TensorIR-style schedules, *where* a block is computed is its **compute location**,
# and three primitives move it:
#
# | primitive | what it does |
# |---|---|
# | `compute_inline(block)` | removes an elementwise producer: its formula is substituted into its consumers |
# | `reverse_compute_at(consumer, loop)` | moves a consumer *under* a loop of its producer: it runs after each tile is produced ("epilogue fusion") |
# | `compute_at(producer, loop)` | moves a producer under a loop of its consumer: it computes just the tile that iteration needs |
#
# Each checks that the move is legal (the consumer only reads what is already produced)
# and computes the loop ranges the moved block needs.

# %%
import os

import numpy as np

import workbench as wb
from workbench import te

SMALL = os.environ.get("WB_TUTORIAL_SMALL", "") not in ("", "0")
N = 128 if SMALL else 256       # a small layer, where the epilogue is a larger share of the time
MIN_TIME = 0.05 if SMALL else 0.3
LANES = wb.Target("llvm").vector_lanes("float32")
MR, NR = 4, 2 * LANES          # the register tile of tutorial 2
print(f"N = {N}, tile {MR} x {NR}")

# %% [markdown]
# ## A dense layer: matmul, bias, ReLU
#
# Three `te.compute` stages. Only the inputs and the final output become parameters;
# the intermediate tensors `Y` and `Z` become buffers allocated inside the function.

# %%
A = te.placeholder((N, N), "float32", name="A")
W = te.placeholder((N, N), "float32", name="W")
bias = te.placeholder((N,), "float32", name="bias")
k = te.reduce_axis(N, name="k")
Y = te.compute((N, N), lambda i, j: te.sum(A[i, k] * W[k, j], axis=k), name="Y")
Z = te.compute((N, N), lambda i, j: Y[i, j] + bias[j], name="Z")
C = te.compute((N, N), lambda i, j: te.max(Z[i, j], 0.0), name="C")
dense = wb.create_prim_func([A, W, bias, C])
print(dense.script())


def dense_numpy(a, w, b, c):
    np.maximum(a @ w + b, 0.0, out=c)


# %% [markdown]
# ## The block graph
#
# Blocks are connected by the buffers they write and read: `Y -> Z -> C`. The **block
# graph** shows this dataflow (in Jupyter, click a block to see it in the loop nest).
# A schedule answers the same questions with `get_producers` / `get_consumers`.

# %%
def block_names(sch):
    return [sch.get(b).name for b in sch.get_child_blocks(sch.get_block("root"))]


def show_dataflow(sch):
    for name in block_names(sch):
        blk = sch.get_block(name)
        print(f"producers of {name}: {[sch.get(b).name for b in sch.get_producers(blk)]}, "
              f"consumers: {[sch.get(b).name for b in sch.get_consumers(blk)]}")


sch = wb.Schedule(dense)
blocks_before = block_names(sch)
show_dataflow(sch)

# %%
graph = wb.viz.block_graph(dense) if hasattr(wb.viz, "block_graph") else None
graph

# %% [markdown]
# ## `compute_inline`: the bias add disappears
#
# `Z[i, j] = Y[i, j] + bias[j]` is elementwise: there is no reason to store `Z` at all.
# `compute_inline` replaces every read of `Z` by its formula, so the ReLU block reads
# `Y[i, j] + bias[j]` directly, and the buffer `Z` is gone. (It refuses blocks that
# reduce, like `Y`: a sum cannot be substituted into an expression.)

# %%
sch.compute_inline(sch.get_block("Z"))
blocks_after = block_names(sch)
show_dataflow(sch)
sch

# %%
wb.viz.block_graph(sch.func) if hasattr(wb.viz, "block_graph") else None

# %% [markdown]
# Now schedule the matmul block `Y` as in tutorial 2 (tiles, vectorized, parallel).
# We fork the schedule here: this copy, with the ReLU still in its own loop nest over the
# whole matrix, is the *unfused* variant to compare with.

# %%
y, c = sch.get_block("Y"), sch.get_block("C")
i, j, kk = sch.get_loops(y)
i0, i1 = sch.split(i, factors=[None, MR])
j0, j1 = sch.split(j, factors=[None, NR])
sch.reorder(i0, j0, kk, i1, j1)
j1o, j1i = sch.split(j1, factors=[None, LANES])
sch.vectorize(j1i)
sch.parallel(i0)
unfused = sch.fork()
sch

# %% [markdown]
# ## `reverse_compute_at`: epilogue fusion
#
# Move the ReLU block under the loop `j0` of the matmul: after each `MR x NR` tile of `Y`
# is finished, the ReLU runs on that tile, which is still in the L1 cache. The primitive
# works out that the ReLU needs exactly the tile's rows `i0 * MR ...` and columns
# `j0 * NR ...`, and creates loops over just that region. Since `i0` is parallel, the
# ReLU is now parallel too, for free.

# %%
sch.reverse_compute_at(c, j0)
sch

# %% [markdown]
# The new loops of the ReLU are ordinary loops: vectorize the inner one.

# %%
ci, cj = sch.get_loops(c)[-2:]
sch.vectorize(cj)
epilogue_fused = sch.fork()
print(sch.func.script())

# %% [markdown]
# ## `compute_at`: the other direction
#
# Start from the consumer instead: tile the ReLU's loops, then move the matmul *into*
# them with `compute_at`. For each tile of `C`, the matmul computes exactly the tile of `Y`
# that this iteration reads. The result is again fused; the difference is who decides the
# outer loops (here the consumer's tiling). The moved block's new loops (`ax0, ax1, ax2`)
# are then scheduled: the reduction loop outside, the columns vectorized.

# %%
sch2 = wb.Schedule(dense)
sch2.compute_inline(sch2.get_block("Z"))
y2, c2 = sch2.get_block("Y"), sch2.get_block("C")
ci, cj = sch2.get_loops(c2)
ci0, ci1 = sch2.split(ci, factors=[None, MR])
cj0, cj1 = sch2.split(cj, factors=[None, NR])
sch2.reorder(ci0, cj0, ci1, cj1)

# %%
sch2.compute_at(y2, cj0)
sch2

# %%
ax0, ax1, ax2 = sch2.get_loops(y2)[-3:]
sch2.reorder(ax2, ax0, ax1)
ax1o, ax1i = sch2.split(ax1, factors=[None, LANES])
sch2.vectorize(ax1i)
cj1o, cj1i = sch2.split(cj1, factors=[None, LANES])
sch2.vectorize(cj1i)
sch2.parallel(ci0)
print(sch2.func.script())

# %% [markdown]
# A move that would compute something before its inputs exist is refused, with the
# reason and the place in the program. For instance, the ReLU cannot go under the
# reduction loop `kk` of the matmul in the unfused schedule: at that point `Y` is not
# finished.

# %%
try:
    bad = unfused.fork()
    bad.reverse_compute_at(bad.get_block("C"), bad.get_loops(bad.get_block("Y"))[2])
except wb.ScheduleError as err:
    print(type(err).__name__, "-", str(err).splitlines()[0])

# %% [markdown]
# ## Does fusion pay?
#
# All variants are checked against numpy, then timed. The fused variants save a
# write and a read of the N x N intermediate `Y` per call, and their epilogue runs in
# parallel inside the matmul's parallel loop (the unfused ReLU is a serial pass of its own).
#
# Keep the proportions in mind: that saving is O(N²) memory traffic, the matmul is O(N³)
# arithmetic. For a small layer the epilogue can be a visible part of the time (how much
# depends on the caches and on how busy the machine is: measure, and rerun to see the
# noise); rerun with `N = 1024` and the matmul dominates, so fusion changes little. Fusion pays the most
# for chains of memory-bound operators (elementwise ops, normalizations, softmax), which
# is why graph compilers fuse every elementwise op they can into its neighbours.

# %%
res = wb.benchmark({"numpy": dense_numpy, "unfused": unfused, "reverse_compute_at": epilogue_fused,
                    "compute_at": sch2}, min_time=MIN_TIME, baseline="unfused")
res

# %%
res.plot()
