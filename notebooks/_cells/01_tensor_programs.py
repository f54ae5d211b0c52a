# %% [markdown]
# # Tutorial 1: tensor programs
#
# A machine-learning compiler turns a description of *what* to compute ("C is the
# matrix product of A and B") into loops that a CPU or GPU runs fast. In workbench
# that loop-level program is a **tensor program** (a `PrimFunc`), and this tutorial
# is about writing one, looking at it, running it and checking it:
#
# 1. describe a computation with `te` (tensor expressions) and get a tensor program;
# 2. read and write the same program in **script form**, plain Python text;
# 3. run it with the **reference interpreter**, slow but obviously right;
# 4. **build** it to machine code with LLVM and check it against numpy.
#
# Nothing here is fast yet: making it fast, with schedules, is tutorial 2.
#
# Run the cells top to bottom (Shift-Enter). The first cell picks the sizes: the test
# suite sets `WB_TUTORIAL_SMALL=1` to run every tutorial with small matrices.

# %%
import os

import numpy as np

import workbench as wb
from workbench import te

SMALL = os.environ.get("WB_TUTORIAL_SMALL", "") not in ("", "0")
N = 64 if SMALL else 256          # matrix size for this tutorial
rng = np.random.default_rng(0)
print(f"N = {N}")

# %% [markdown]
# ## 1. A compute description with `te`
#
# `te.placeholder` declares an input tensor: a shape and a dtype, no data.
# `te.compute` declares an output by a formula for *one* element, given its indices.
# A sum over an index that is not an output index needs a **reduction axis**,
# `te.reduce_axis`, and a reducer (`te.sum`, `te.max`, `te.min`).
#
# This is the mathematical definition, `C[i, j] = sum_k A[i, k] * B[k, j]`, and
# nothing about loop order, tiling or threads: those are decisions a *schedule* makes later.
# `wb.create_prim_func` turns the description into a tensor program whose parameters
# are the listed tensors, inputs first, output last.

# %%
A = te.placeholder((N, N), "float32", name="A")
B = te.placeholder((N, N), "float32", name="B")
k = te.reduce_axis(N, name="k")
C = te.compute((N, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
matmul = wb.create_prim_func([A, B, C])
matmul

# %% [markdown]
# A tensor program at the end of a cell shows itself as the **loop-nest widget**: the
# loops, the block inside them, and the program text. (In an exported notebook you see
# a static view of the same thing.)
#
# ### How to read this widget
#
# - **Left, the loop tree**: each `for` row is one loop with its extent and a coloured
#   badge for its kind (serial, parallel, vectorized, unrolled, thread-bound; the legend
#   at the top right). A **block** row shows its iteration variables (`:S` spatial, `:R`
#   reduction; hover for the loop each is bound to) and the regions it reads and writes.
# - **Right, the script**: click a row and its lines light up; click a line and its loop
#   or block is selected. Clicking a selected block again opens every loop inside it.
# - **Below, the buffers**: name, shape, dtype and memory scope of each buffer.
# - **Cost heat map** (button over the tree): each loop and block is shaded by its share
#   of the FLOPs (or of the bytes it loads and stores), counted from the IR.
# - **Machine code** (button): the optimised LLVM IR and the assembly. Select a loop and
#   its instructions light up; click an assembly line and its loop is selected. A loop
#   that was vectorized or unrolled has no instructions of its own: its body's are its.
#
# The same numbers are available in Python: `wb.viz.program_cost(func)` and
# `wb.viz.machine_code(func)`.
#
# `print(func.script())` gives the program as text, the **script form**:

# %%
print(matmul.script())

# %% [markdown]
# How to read it:
#
# - The parameters are **buffers** with a shape and a dtype: `wb.Buffer((N, N), "float32")`.
# - `for i, j, k in wb.grid(N, N, N)` is three nested loops.
# - `with wb.block("C")` opens a **block**, the unit of computation that schedules move
#   around. A block names its **iteration variables** and how they are bound to the loops:
#   `wb.axis.remap("SSR", [i, j, k])` says `vi`, `vj` are *spatial* (each value writes a
#   different element) and `vk` is a *reduction* (values accumulate into the same element).
#   This is what lets a schedule check that reordering or parallelizing a loop is legal.
# - `wb.init()` is what happens before the first step of the reduction: `C` starts at 0.
#
# ## 2. Writing the script form directly
#
# The printer's output is also valid input: a function decorated with `@wb.prim_func`
# is parsed into the same kind of tensor program. Here is a matmul followed by a ReLU,
# with the intermediate result `Y` allocated inside the function (`wb.alloc_buffer`),
# written by hand. The sizes in a script are literal numbers.

# %%
@wb.prim_func
def mm_relu(A: wb.Buffer((128, 128), "float32"), B: wb.Buffer((128, 128), "float32"),
            C: wb.Buffer((128, 128), "float32")):
    Y = wb.alloc_buffer((128, 128), "float32")
    for i, j, k in wb.grid(128, 128, 128):
        with wb.block("Y"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                Y[vi, vj] = 0.0
            Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    for i, j in wb.grid(128, 128):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = wb.max(Y[vi, vj], 0.0)


mm_relu

# %% [markdown]
# The script form **round-trips**: printing a program and parsing the text back gives a
# structurally equal program. This is why you can copy a printed program into a cell,
# edit it, and run it again.

# %%
text = mm_relu.script()
again = wb.parse(text)
wb.assert_structural_equal(again, mm_relu)
print("wb.parse(mm_relu.script()) is structurally equal to mm_relu")

# %% [markdown]
# ## 3. Running it: the reference interpreter
#
# `wb.ir.evaluate(func, *arrays)` executes a tensor program directly, block by block,
# with numpy arrays as the buffers. Like the compiled code, it **writes the outputs in
# place** (the last array here). It is slow, on purpose simple, and a good referee:
# when a scheduled program and the interpreter disagree, the schedule (or the compiler)
# is wrong.
#
# Checking against numpy is the habit to keep throughout these tutorials.

# %%
a = rng.random((N, N), dtype=np.float32)
b = rng.random((N, N), dtype=np.float32)
c = np.zeros((N, N), dtype=np.float32)
wb.ir.evaluate(matmul, a, b, c)
np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
print("interpreter vs numpy: max |error| =", float(np.abs(c - a @ b).max()))

# %%
a1 = rng.standard_normal((128, 128)).astype(np.float32)
b1 = rng.standard_normal((128, 128)).astype(np.float32)
c1 = np.zeros((128, 128), dtype=np.float32)
wb.ir.evaluate(mm_relu, a1, b1, c1)
np.testing.assert_allclose(c1, np.maximum(a1 @ b1, 0), rtol=1e-4, atol=1e-4)
print("mm_relu: the interpreter agrees with numpy; negative entries clipped:", int((c1 == 0).sum()))

# %% [markdown]
# ## 4. Building it for the CPU
#
# `wb.build(func, target="llvm")` compiles the program for this machine's CPU: it
# **lowers** the blocks to plain loops over flat arrays, generates LLVM IR, and lets
# LLVM produce machine code. The result is called like a Python function with numpy
# arrays and, again, writes its output in place.

# %%
f = wb.build(matmul, target="llvm")
c2 = np.zeros((N, N), dtype=np.float32)
f(a, b, c2)
np.testing.assert_allclose(c2, a @ b, rtol=1e-4, atol=1e-4)
print("built function vs numpy: max |error| =", float(np.abs(c2 - a @ b).max()))

# %% [markdown]
# You can look at every stage. The **lowered** program is the last step before LLVM:
# the blocks are gone, buffers are flat 1-D arrays, and the reduction's `init` became an
# `if k == 0` in the loop.

# %%
print(f.source("lowered"))

# %% [markdown]
# And the x86 assembly LLVM produced. The multiply-adds end in `ss`, "scalar single":
# one float at a time, although the CPU can do 8 (AVX2) or 16 (AVX-512) per
# instruction. With `k` innermost, `B[k, j]` is read with a stride of a whole row at
# each step, which is also bad for the caches. Tutorial 2 changes both.

# %%
asm = f.source("asm")
instructions = [ln.strip() for ln in asm.splitlines() if ln.startswith("\t") and not ln.strip().startswith(".")]
print(f"{len(instructions)} instructions; the floating-point arithmetic among them:")
print("\n".join(ln for ln in instructions if ln.split()[0].startswith(("vfmadd", "vmul", "vadd")))[:1500])

# %% [markdown]
# Which instructions belong to which loop? `wb.viz.machine_code` builds the program with
# debug locations and links each assembly line to its loop or block (the widget's
# "machine code" button shows the same, both ways):

# %%
mc = wb.viz.machine_code(matmul)
block_lines = [mc.asm[n][0].strip() for n in mc.lines_of("block-C", "asm")]
print(f"block C: {len(block_lines)} of {len(mc.asm)} assembly lines, e.g.", block_lines[:4])
print("FLOPs of block C (2*N*N*N):", wb.viz.program_cost(matmul)["block-C"]["flops"], "=", 2 * N**3)

# %% [markdown]
# ## 5. How fast is it?
#
# `wb.benchmark` checks that variants of one computation agree, then times them on the
# same inputs (warm-up, repeats, median and spread) and counts the floating-point
# operations from the IR. The first variant is the reference for the check; `numpy.matmul`
# calls an optimized BLAS library.

# %%
res = wb.benchmark({"numpy": lambda a, b, c: np.matmul(a, b, out=c), "built, naive loops": f},
                   target="llvm", min_time=0.1)
res

# %% [markdown]
# `wb.viz.benchmark_view` shows the same table with a link from each row to that
# variant's loop nest, its FLOP heat map and its measured time per run:

# %%
wb.viz.benchmark_view(res, {"built, naive loops": matmul})

# %% [markdown]
# The naive loops are far behind numpy. The program computes the right thing, but in a
# bad order for the hardware. Tutorial 2 keeps the same computation and changes only the
# loops, with **schedule primitives**, until it is within reach of numpy.
#
# **Try it**: change the te description to compute `A @ B.T` (`A[i, k] * B[j, k]`),
# rebuild, and check it against numpy. Is it faster than `A @ B` with naive loops? Why?
