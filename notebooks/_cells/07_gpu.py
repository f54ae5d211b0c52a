# %% [markdown]
# # Tutorial 7: GPU programming — threads, shared memory, tensor cores
#
# This tutorial follows chapters 7 and 8 of the MLC course. A GPU runs thousands of
# **threads**, grouped in **blocks** (OpenCL: *work-groups*). The threads of one block run
# on one streaming multiprocessor, can share a small, fast on-chip memory (**shared
# memory**, OpenCL `__local`) and can wait for each other (a **barrier**). Each thread
# also has its own registers (storage scope **local**).
#
# A TensorIR schedule maps loops onto this hierarchy with `bind(loop, "blockIdx.x")` /
# `bind(loop, "threadIdx.x")`, and moves data into shared memory or registers with
# `cache_read` / `cache_write` into the scopes `"shared"` and `"local"`.
#
# Everything here runs on **OpenCL**. Without a GPU, PoCL (the *Portable Computing
# Language*, Debian's `pocl-opencl-icd`) runs the OpenCL kernels on the CPU cores, so the
# programs and their results are real, but **the timings only illustrate**: PoCL maps a
# work-group to a CPU loop, and "shared memory" is ordinary cached memory. The ranking of
# the schedules is often the same as on a GPU, the factors are not. The tensor-core
# section at the end uses the CUDA backend: it compiles to PTX on any machine and runs
# the kernel only where an NVIDIA GPU and driver exist.
#
# The first cell picks the matmul size: 512 by default, 256 when `WB_TUTORIAL_SMALL=1`
# (the test suite).

# %%
import os
import time

import numpy as np

import workbench as wb
from workbench import te

SMALL = os.environ.get("WB_TUTORIAL_SMALL", "") not in ("", "0")
N = 256 if SMALL else 512
MIN_TIME = 0.05 if SMALL else 0.3          # seconds of timing samples per variant

dev = wb.device("opencl")
print(dev)

# %% [markdown]
# ## Vector add: one element per thread
#
# The program is the usual te description. For a GPU target every loop that carries the
# parallel work must be **bound** to a thread axis: we split the loop into blocks of 64
# threads, then bind the outer loop to `blockIdx.x` and the inner one to `threadIdx.x`.
# The length `n` is symbolic: the number of blocks is computed on the host at each call.

# %%
n = te.var("n")
A = te.placeholder((n,), "float32", name="A")
B = te.placeholder((n,), "float32", name="B")
C = te.compute((n,), lambda i: A[i] + B[i], name="C")
sch = wb.Schedule(wb.create_prim_func([A, B, C]))
(i,) = sch.get_loops(sch.get_block("C"))
bx, tx = sch.split(i, factors=[None, 64])
sch.bind(bx, "blockIdx.x")
sch.bind(tx, "threadIdx.x")
sch

# %% [markdown]
# `wb.build(..., target="opencl")` splits the program into host code (which computes the
# launch size) and one **kernel** per launch; `f.source("cl")` shows the OpenCL C. The
# bound loops are gone: each thread reads its block and thread number
# (`get_group_id`, `get_local_id`). Note the bounds check (`if`): the last block may be
# only partly used when `n` is not a multiple of 64.

# %%
vadd = wb.build(sch.mod, target="opencl")
print(vadd.source("cl"))

# %% [markdown]
# The function takes numpy arrays (copied to the device and back at each call) or
# **device arrays** (`wb.nd.array(x, dev)`), which stay on the device between calls;
# `.numpy()` copies one back.

# %%
rng = np.random.default_rng(0)
a_np, b_np = rng.random(1000, dtype="float32"), rng.random(1000, dtype="float32")
c_np = np.zeros(1000, "float32")
vadd(a_np, b_np, c_np)
a_dev, b_dev = wb.nd.array(a_np, dev), wb.nd.array(b_np, dev)
c_dev = wb.nd.empty((1000,), "float32", dev)
vadd(a_dev, b_dev, c_dev)
vadd_err = max(float(np.abs(c_np - (a_np + b_np)).max()), float(np.abs(c_dev.numpy() - (a_np + b_np)).max()))
print(c_dev, "max error", vadd_err)

# %% [markdown]
# ## Window sum: shared memory
#
# `B[i] = A[i] + A[i+1] + A[i+2]` reads every element of A three times, by three
# neighbouring threads. Instead, the 64 threads of a block can first copy the 66 elements
# they need into shared memory **together** (a *cooperative fetch*: thread `t` copies
# elements `t` and `t + 64`), wait at a barrier, then compute from the fast copy.
#
# `cache_read(b, 0, "shared")` makes the copy block; `compute_at(shared, bx)` places it
# inside each block, where it covers exactly the block's window (66 elements); splitting
# its loop by 64 and binding the inner part to `threadIdx.x` shares the copy among the
# threads.

# %%
A = te.placeholder((1026,), "float32", name="A")
B = te.compute((1024,), lambda i: A[i] + A[i + 1] + A[i + 2], name="B")
sch = wb.Schedule(wb.create_prim_func([A, B]))
b = sch.get_block("B")
bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 64])
sch.bind(bx, "blockIdx.x")
sch.bind(tx, "threadIdx.x")
shared = sch.cache_read(b, 0, "shared")
sch.compute_at(shared, bx)
_, fetch = sch.split(sch.get_loops(shared)[-1], factors=[None, 64])   # cooperative fetch
sch.bind(fetch, "threadIdx.x")
sch

# %% [markdown]
# Lowering allocates `A_shared` as a `__local` array of the block's 66 elements and
# inserts the **barrier** (`barrier(CLK_LOCAL_MEM_FENCE)`, CUDA's `__syncthreads()`)
# between the fetch and the use: without it a thread could read an element that its
# neighbour has not copied yet.

# %%
wsum = wb.build(sch.mod, target="opencl")
wsum_src = wsum.source("cl")
print(wsum_src)
a = rng.random(1026, dtype="float32")
out = np.zeros(1024, "float32")
wsum(a, out)
wsum_err = float(np.abs(out - (a[:-2] + a[1:-1] + a[2:])).max())
print("max error vs numpy:", wsum_err)

# %% [markdown]
# ## Matmul, step 1: one element of C per thread
#
# Now the main example, `C = A @ B` with N x N float32 matrices. The direct GPU version
# gives each thread one element of C: blocks of 16 x 16 threads (`blockIdx.y/x`,
# `threadIdx.y/x`), and each thread runs the whole `k` loop. Every thread reads a full
# row of A and a full column of B from global memory: 2N loads for 2N FLOPs.

# %%
def matmul_func(n: int) -> wb.PrimFunc:
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def naive_matmul(n: int, t: int = 16) -> wb.Schedule:
    """One thread per element of C, blocks of t x t threads."""
    sch = wb.Schedule(matmul_func(n))
    i, j, _ = sch.get_loops(sch.get_block("C"))
    i0, i1 = sch.split(i, factors=[None, t])
    j0, j1 = sch.split(j, factors=[None, t])
    sch.reorder(i0, j0, i1, j1)
    for loop, axis in ((i0, "blockIdx.y"), (j0, "blockIdx.x"), (i1, "threadIdx.y"), (j1, "threadIdx.x")):
        sch.bind(loop, axis)
    return sch


naive = naive_matmul(N)
naive

# %% [markdown]
# Each step is checked against numpy and timed by `wb.benchmark` (numpy first: it is the
# reference for the check, and its time is the CPU's BLAS on the host). With numpy
# arguments each call also copies A, B and C to the device and back; on PoCL that is a
# memory copy on the same CPU, small next to an N³ kernel.

# %%
def numpy_mm(a, b, c):
    np.matmul(a, b, out=c)


steps = {"naive": naive}
res_naive = wb.benchmark({"numpy": numpy_mm, "naive": naive}, target="opencl", peak=None,
                         min_time=MIN_TIME, progress=False)
res_naive

# %% [markdown]
# ## Step 2: shared-memory tiling
#
# The 16 x 16 threads of a block together need only 16 rows of A and 16 columns of B. We
# split `k` into tiles of 16 as well; for each k tile the block fetches a 16 x 16 tile of
# A and one of B into shared memory (each thread copies one element of each), waits, and
# every thread does its 16 multiply-adds from shared memory. Global loads drop by 16x.
#
# The accumulator goes to a register: `cache_write(c, 0, "local")` and
# `reverse_compute_at` under the thread loop (one element per thread), and
# `decompose_reduction` moves its initialisation before the `k` loop.

# %%
def shared_tiled_matmul(n: int, t: int = 16) -> wb.Schedule:
    """Blocks of t x t threads, one element each; t x t tiles of A and B through shared memory per k tile."""
    sch = wb.Schedule(matmul_func(n))
    c = sch.get_block("C")
    c_local = sch.cache_write(c, 0, "local")
    i, j, k = sch.get_loops(c)
    i0, i1 = sch.split(i, factors=[None, t])
    j0, j1 = sch.split(j, factors=[None, t])
    k0, _ = sch.split(k, factors=[None, t])
    sch.reorder(i0, j0, i1, j1, k0)
    sch.reverse_compute_at(c_local, j1)
    for loop, axis in ((i0, "blockIdx.y"), (j0, "blockIdx.x"), (i1, "threadIdx.y"), (j1, "threadIdx.x")):
        sch.bind(loop, axis)
    for index in (0, 1):                       # A, then B: cooperative fetch per k tile
        cache = sch.cache_read(c, index, "shared")
        sch.compute_at(cache, k0)
        fused = sch.fuse(*sch.get_loops(cache)[-2:])
        _, ty, tx = sch.split(fused, factors=[None, t, t])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
    sch.decompose_reduction(c, k0)
    return sch


shared_tiled = shared_tiled_matmul(N)
steps["shared tiling"] = shared_tiled
shared_tiled

# %% [markdown]
# In the kernel: two `__local` tiles of 16 x 16, the fetch, a barrier, the inner 16-step
# loop on the tiles, and a second barrier before the next fetch overwrites them.

# %%
print(wb.build(shared_tiled.mod, target="opencl").source("cl"))

# %% [markdown]
# ## Step 3: register tiling
#
# With one element per thread, each multiply-add still needs two loads from shared
# memory. The course's final schedule gives each thread an **8 x 8 tile of C** in
# registers: per step of `k` a thread loads 8 numbers of A and 8 of B and does 64
# multiply-adds. A block of 8 x 8 threads covers 64 x 64 elements of C, and fetches
# 64 x 8 of A and 8 x 64 of B per k tile of 8 into shared memory.
#
# The shared tiles cover what *all threads of the block* need (loops bound to
# `threadIdx` are relaxed, those bound to `blockIdx` are not), and each is compacted to
# that tile: `A_shared` is 64 x 8, not N x N. `C_local` covers one thread's 8 x 8.

# %%
def register_tiled_matmul(n: int, block: int = 64, local: int = 8, tk: int = 8) -> wb.Schedule:
    """The course's schedule: blocks of block x block elements of C, local x local per thread, k tiles of tk."""
    sch = wb.Schedule(matmul_func(n))
    c = sch.get_block("C")
    c_local = sch.cache_write(c, 0, "local")
    i, j, k = sch.get_loops(c)
    threads = block // local
    i0, i1, i2 = sch.split(i, factors=[None, threads, local])
    j0, j1, j2 = sch.split(j, factors=[None, threads, local])
    k0, k1 = sch.split(k, factors=[None, tk])
    sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2)
    sch.reverse_compute_at(c_local, j1)
    for loop, axis in ((i0, "blockIdx.y"), (j0, "blockIdx.x"), (i1, "threadIdx.y"), (j1, "threadIdx.x")):
        sch.bind(loop, axis)
    for index in (0, 1):
        cache = sch.cache_read(c, index, "shared")
        sch.compute_at(cache, k0)
        fused = sch.fuse(*sch.get_loops(cache)[-2:])
        _, ty, tx = sch.split(fused, factors=[None, threads, threads])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
    sch.decompose_reduction(c, k0)
    return sch


register_tiled = register_tiled_matmul(N)
steps["register tiling"] = register_tiled
reg_src = wb.build(register_tiled.mod, target="opencl").source("cl")
print(reg_src)

# %% [markdown]
# ## The three steps side by side
#
# One run, all checked against numpy. On a real GPU the gain from each step is large
# (the course measures roughly 10x from shared and register tiling together); on PoCL the
# kernels run on the CPU, so read the table as "it runs and it is correct", with timings
# that only illustrate. (numpy's row is the host's BLAS, timed in the same run while the
# OpenCL runtime's worker threads share the same cores: compare it with the first table.)
# The OpenCL rows are device time from the kernels' profiling events (column `clock`;
# copying numpy arrays in and out is not counted, `wall_ms` has the whole call), numpy's is wall time.

# %%
final = wb.benchmark({"numpy": numpy_mm, **steps}, target="opencl", peak=None, min_time=MIN_TIME,
                     baseline="naive", progress=False)
final

# %%
fig_bar = final.plot(metric="gflops")
fig_bar

# %% [markdown]
# ## Tensor cores (chapter 8)
#
# Recent NVIDIA GPUs have **tensor cores**: units that multiply small matrix tiles in one
# warp-wide instruction, e.g. 16 x 16 x 16 with float16 inputs and float32 accumulation.
# In TensorIR they are a **tensor intrinsic**: a tiny program (the 16 x 16 x 16 matmul)
# paired with its implementation (`wmma::mma_sync`). `tensorize` replaces a loop nest
# that matches the tiny program by the intrinsic, as in tutorial 4 for the CPU's dot
# product instructions.
#
# The schedule: each warp (32 threads, `threadIdx.x` implicit) is bound to
# `threadIdx.y/z` and owns one 16 x 16 tile of C; the tile is zeroed with
# `wmma_fill_16x16_f32` and accumulated by 16 x 16 x 16 steps of `wmma_16x16x16_f16f32`.

# %%
print([name for name in wb.list_tensor_intrins().names() if name.startswith("wmma")])


def wmma_matmul(m: int = 256, n: int = 256, k: int = 256, warps=(2, 2)) -> wb.Schedule:
    """fp16 x fp16 -> fp32 matmul on tensor cores, one 16 x 16 tile of C per warp."""
    A = te.placeholder((m, k), "float16", name="A")
    B = te.placeholder((k, n), "float16", name="B")
    kk = te.reduce_axis((0, k), name="k")
    C = te.compute((m, n), lambda i, j: te.sum(A[i, kk].astype("float32") * B[kk, j].astype("float32"), axis=kk),
                   name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    blk = sch.get_block("C")
    i, j, kl = sch.get_loops(blk)
    bi, wi, i1 = sch.split(i, factors=[None, warps[0], 16])
    bj, wj, j1 = sch.split(j, factors=[None, warps[1], 16])
    k0, _ = sch.split(kl, factors=[None, 16])
    sch.reorder(bi, bj, wi, wj, k0, i1, j1)
    for loop, axis in ((bi, "blockIdx.y"), (bj, "blockIdx.x"), (wi, "threadIdx.z"), (wj, "threadIdx.y")):
        sch.bind(loop, axis)
    init = sch.decompose_reduction(blk, k0)
    sch.tensorize(i1, "wmma_16x16x16_f16f32")
    sch.tensorize(sch.get_loops(init)[-2], "wmma_fill_16x16_f32")
    return sch


tc = wmma_matmul()
tc

# %% [markdown]
# The CUDA backend compiles CUDA C to PTX with NVRTC, which needs no GPU. Without a GPU
# the target must name the architecture (`-arch=sm_80`: tensor-core `wmma` needs sm_70
# or newer); with one, `"cuda"` uses the GPU's own. The PTX shows the tensor-core
# instructions: `wmma.load`, `wmma.mma.sync` and `wmma.store`.

# %%
import importlib.util

from workbench.backend.cuda.runtime import driver_version


def module_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:             # a parent package is missing
        return False


HAS_CUDA_EXTRA = module_installed("cuda.bindings.nvrtc")   # cuda-python and NVRTC: workbench[cuda]
HAS_GPU = HAS_CUDA_EXTRA and driver_version() is not None

if HAS_CUDA_EXTRA:
    tc_built = wb.build(tc.mod, target="cuda" if HAS_GPU else "cuda -arch=sm_80")
    ptx = tc_built.source("ptx")
    wmma_lines = [ln.strip() for ln in ptx.splitlines() if "wmma." in ln]
    print(f"{len(wmma_lines)} wmma instructions in the PTX, for example:")
    print("\n".join(dict.fromkeys(ln.split()[0] for ln in wmma_lines)))
else:
    wmma_lines = []
    print("the cuda extra is not installed (pip install 'workbench[cuda]'): no CUDA compilation here")

# %% [markdown]
# Running it needs an NVIDIA GPU and driver. Where there is one, the cell checks the
# result against numpy (float16 inputs, float32 sums) and times it; elsewhere it says so.

# %%
if HAS_GPU:
    a16 = rng.standard_normal((256, 256)).astype("float16")
    b16 = rng.standard_normal((256, 256)).astype("float16")
    c32 = np.zeros((256, 256), "float32")
    tc_built(a16, b16, c32)
    tc_err = float(np.abs(c32 - a16.astype("float32") @ b16.astype("float32")).max())
    start = time.perf_counter()
    for _ in range(10):
        tc_built(a16, b16, c32)
    print(f"tensor-core matmul: max error {tc_err:.2e}, "
          f"{(time.perf_counter() - start) / 10 * 1e3:.3f} ms per call (with copies)")
else:
    tc_err = None
    print("no NVIDIA GPU and driver on this machine: the tensor-core kernel was compiled to PTX but not run")

# %% [markdown]
# **Try it**: in `register_tiled_matmul`, change `local` to 4 (blocks of 16 x 16 threads)
# or `tk` to 16, and compare; `wb.build` refuses a block that exceeds the device's
# threads per block or shared memory, naming the limit.
