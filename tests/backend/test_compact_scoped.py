"""Compaction with symbolic sizes, under ``if`` guards, and of GPU-scoped buffers.

* A dimension of symbolic extent proves nothing about disjointness, but the constant ones still do:
  a register-tile accumulator under a symbolic batch/row loop becomes the tile.
* A ``shared`` buffer may be allocated per ``blockIdx`` iteration, a ``local`` one per ``blockIdx``
  and ``threadIdx`` iteration (each block/thread has its own copy); ``shared`` stays outside
  ``threadIdx`` loops.

Shapes are checked on the lowered program, numbers against numpy.
"""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.lower import compact_buffers, lower, lower_blocks
from workbench.ir import Var
from workbench.ir.functor import Visitor
from workbench.transform.default_schedule import schedule_kernel

AVX2 = "llvm -mcpu=znver3"


def _allocs(func) -> dict:
    """buffer name -> (shape, [thread tags or kinds of the loops above the Allocate])."""
    out = {}

    class V(Visitor):
        def __init__(self):
            self.loops = []

        def visit_For(self, s):
            self.loops.append(s.thread or str(s.kind.value))
            self.generic_visit(s)
            self.loops.pop()

        def visit_Allocate(self, a):
            out[a.buffer.name] = (tuple(int(d.value) if hasattr(d, "value") else str(d) for d in a.buffer.shape),
                                  list(self.loops))
            self.generic_visit(a)

    V().visit(func.body)
    return out


def _compacted(func, target=None):
    return dict(lower(func, target=target, stages=True))["compact_buffers"]


# -- symbolic extents -----------------------------------------------------------------------------

def _linear_rows():
    """``Y[n, 64] = X[n, 64] @ W^T`` with symbolic rows, as the default schedule register-tiles it."""
    n = Var("n")
    X = te.placeholder((n, 64), "float32", name="X")
    W = te.placeholder((64, 64), "float32", name="W")
    k = te.reduce_axis(64, name="k")
    Y = te.compute((n, 64), lambda i, j: te.sum(X[i, k] * W[j, k], axis=k), name="Y")
    return schedule_kernel(wb.create_prim_func([X, W, Y]), AVX2)


def _linear_batch():
    """``Y[b, 8, 64] = X[b, 8, 64] @ W^T`` with a symbolic batch."""
    b = Var("b")
    X = te.placeholder((b, 8, 64), "float32", name="X")
    W = te.placeholder((64, 64), "float32", name="W")
    k = te.reduce_axis(64, name="k")
    Y = te.compute((b, 8, 64), lambda p, i, j: te.sum(X[p, i, k] * W[j, k], axis=k), name="Y")
    return schedule_kernel(wb.create_prim_func([X, W, Y]), AVX2)


def test_accumulator_under_symbolic_rows_compacts_to_the_register_tile():
    shape, loops = _allocs(_compacted(_linear_rows()))["Y_local"]
    assert shape == (4, 16)                       # was (n, 64) on the heap
    assert loops == ["parallel", "serial"]         # inside the column tile and the (symbolic) row loop


def test_accumulator_under_symbolic_batch_compacts_to_the_register_tile():
    shape, loops = _allocs(_compacted(_linear_batch()))["Y_local"]
    assert shape == (1, 4, 16)                     # was (b, 8, 64)
    assert loops == ["parallel", "serial", "serial"]


@pytest.mark.parametrize("rows", [1, 5, 8, 13])
def test_symbolic_row_linear_matches_numpy(rows):
    rng = np.random.default_rng(rows)
    f = wb.build(_linear_rows(), target=AVX2)
    x, w = rng.random((rows, 64), dtype="float32"), rng.random((64, 64), dtype="float32")
    y = np.zeros((rows, 64), "float32")
    f(x, w, y)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_symbolic_batch_linear_matches_numpy(batch):
    rng = np.random.default_rng(batch)
    f = wb.build(_linear_batch(), target=AVX2)
    x, w = rng.random((batch, 8, 64), dtype="float32"), rng.random((64, 64), dtype="float32")
    y = np.zeros((batch, 8, 64), "float32")
    f(x, w, y)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5)


FUSED_SYMBOLIC = '''
@wb.prim_func
def fused(x: wb.handle, y: wb.handle, b: wb.int32):
    X = wb.match_buffer(x, (b, 48), "float32")
    Y = wb.match_buffer(y, (b, 48), "float32")
    T = wb.alloc_buffer((b, 48), "float32")
    for f in range(b * 48):
        T[f // 48, f % 48] = X[f // 48, f % 48] * 2.0
        Y[f // 48, f % 48] = T[f // 48, f % 48] + 1.0
'''


def test_fused_loop_of_symbolic_extent_keeps_one_element_per_iteration():
    func = wb.parse(FUSED_SYMBOLIC)
    shape, loops = _allocs(compact_buffers(lower_blocks(func)))["T"]
    assert shape == (1, 1) and loops == ["serial"]   # f // 48, f % 48 tell the iterations of b * 48 apart
    f = wb.build(func, target="llvm")
    for b in (1, 4):
        x = np.random.default_rng(b).random((b, 48), dtype="float32")
        y = np.zeros_like(x)
        f(x, y, b)
        np.testing.assert_allclose(y, 2 * x + 1, rtol=1e-6)


# -- if guards narrow the region ------------------------------------------------------------------

GUARDED = '''
@wb.prim_func
def guarded(a: wb.handle, b: wb.handle):
    A = wb.match_buffer(a, (96,), "float32")
    B = wb.match_buffer(b, (96,), "float32")
    T = wb.alloc_buffer((96,), "float32")
    for o in range(8):
        for p, q in wb.grid(2, 8):
            if p * 8 + q < 12:
                T[o * 12 + p * 8 + q] = A[o * 12 + p * 8 + q] * 2.0
        for q in range(10):
            B[o * 12 + q] = T[o * 12 + q] + T[o * 12 + q + 2]
'''


def test_guarded_store_region_is_the_guarded_part():
    func = wb.parse(GUARDED)
    shape, loops = _allocs(compact_buffers(lower_blocks(func)))["T"]
    # without the guard p * 8 + q < 12 the store spans 16 elements, more than the stride 12 of o
    assert shape == (12,) and loops == ["serial"]
    a = np.random.default_rng(0).random(96, dtype="float32")
    b = np.zeros(96, "float32")
    wb.build(func, target="llvm")(a, b)
    expect = np.zeros((8, 12), "float32")
    blocks = a.reshape(8, 12)
    expect[:, :10] = 2 * blocks[:, :10] + 2 * blocks[:, 2:12]
    np.testing.assert_allclose(b, expect.reshape(-1), rtol=1e-6)


# -- GPU scopes -----------------------------------------------------------------------------------

def _window_sum():
    """Each block of 64 threads fetches its 66-element window of A into shared memory (as in
    tests/backend/test_opencl.py::test_shared_memory_window_sum_syncs_threads)."""
    A = te.placeholder((1026,), "float32", name="A")
    B = te.compute((1024,), lambda i: A[i] + A[i + 1] + A[i + 2], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 64])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    shared = sch.cache_read(b, 0, "shared")
    sch.compute_at(shared, bx)
    _, fetch = sch.split(sch.get_loops(shared)[-1], factors=[None, 64])
    sch.bind(fetch, "threadIdx.x")
    return sch.mod["main"]


def test_shared_window_is_allocated_per_block():
    shape, loops = _allocs(compact_buffers(lower_blocks(_window_sum())))["A_shared"]
    assert shape == (66,) and loops == ["blockIdx.x"]   # was (1026,) for the whole grid


def test_shared_window_lowered_for_opencl():
    pytest.importorskip("workbench.backend.opencl")
    shape, loops = _allocs(_compacted(_window_sum(), target="opencl"))["A_shared"]
    assert shape == (66,) and loops == ["blockIdx.x"]


def test_shared_window_runs_on_opencl():
    cl = pytest.importorskip("pyopencl")
    try:
        if not any(p.get_devices() for p in cl.get_platforms()):
            pytest.skip("no OpenCL device")
    except cl.Error:
        pytest.skip("no OpenCL device")
    f = wb.build(_window_sum(), target="opencl")
    assert "__local float A_shared[66];" in f.source("cl")
    a = np.random.default_rng(2).random(1026, dtype="float32")
    out = np.zeros(1024, "float32")
    f(a, out)
    np.testing.assert_allclose(out, a[:-2] + a[1:-1] + a[2:], rtol=1e-6)


SCOPED = '''
@wb.prim_func
def scoped(A: wb.Buffer((256,), "float32"), B: wb.Buffer((256,), "float32")):
    S = wb.alloc_buffer((64,), "float32", scope="shared")
    L = wb.alloc_buffer((4,), "float32", scope="local")
    V = wb.alloc_buffer((4,), "float32", scope="local")
    for bx in wb.thread_binding(4, thread="blockIdx.x"):
        for tx in wb.thread_binding(64, thread="threadIdx.x"):
            S[tx] = A[bx * 64 + tx]
        for tx in wb.thread_binding(64, thread="threadIdx.x"):
            for j in range(4):
                L[j] = S[(tx + j) % 64]
            B[bx * 64 + tx] = L[0] + L[3]
        for v in wb.thread_binding(2, thread="vthread.x"):
            for j in range(4):
                V[j] = A[v + j]
            B[v] = V[0] + V[3]
'''


def test_scoped_buffers_are_private_per_block_and_thread_but_not_per_vthread():
    allocs = _allocs(compact_buffers(lower_blocks(wb.parse(SCOPED))))
    assert allocs["S"] == ((64,), ["blockIdx.x"])                  # all threads of a block share it
    assert allocs["L"] == ((4,), ["blockIdx.x", "threadIdx.x"])    # one per thread
    assert allocs["V"] == ((4,), ["blockIdx.x"])   # virtual threads share one: it stays outside the vthread loop


SHARED_IN_ONE_THREAD_LOOP = '''
@wb.prim_func
def inner(A: wb.Buffer((256,), "float32"), B: wb.Buffer((256,), "float32")):
    S = wb.alloc_buffer((256,), "float32", scope="shared")
    for bx in wb.thread_binding(4, thread="blockIdx.x"):
        for tx in wb.thread_binding(64, thread="threadIdx.x"):
            S[bx * 64 + tx] = A[bx * 64 + tx] * 2.0
            B[bx * 64 + tx] = S[bx * 64 + tx]
'''


def test_shared_buffer_never_moves_inside_a_thread_loop():
    allocs = _allocs(compact_buffers(lower_blocks(wb.parse(SHARED_IN_ONE_THREAD_LOOP))))
    assert allocs["S"] == ((64,), ["blockIdx.x"])   # not (1,) per thread: shared memory is one per block


SHARED_K_TILE = '''
@wb.prim_func
def ktile(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32,), "float32")):
    S = wb.alloc_buffer((32, 32), "float32", scope="shared")
    for bx in wb.thread_binding(2, thread="blockIdx.x"):
        for tx in wb.thread_binding(16, thread="threadIdx.x"):
            C[bx * 16 + tx] = 0.0
            for k0 in range(4):
                for r in range(8):
                    S[bx * 16 + tx, k0 * 8 + r] = A[bx * 16 + tx, k0 * 8 + r]
                for r in range(8):
                    C[bx * 16 + tx] = C[bx * 16 + tx] + S[bx * 16 + (tx + 1) % 16, k0 * 8 + r]
'''


def test_shared_tile_of_a_k_loop_inside_thread_loops_covers_all_threads_of_one_k_step():
    shape, loops = _allocs(compact_buffers(lower_blocks(wb.parse(SHARED_K_TILE))))["S"]
    assert shape == (16, 8)              # every thread's row (threadIdx relaxed), one k tile (k0 kept)
    assert loops == ["blockIdx.x"]       # allocated once per block, outside the thread loop
