"""The MLC course's shared-memory GPU programs (chapters 7-8) scheduled with our API and run on OpenCL/PoCL:
a 256^3 fp32 matmul with 64 x 64 blocks, 8 x 8 per thread, k tiles of 8, A/B through shared memory with a
cooperative fetch and C through a local accumulator; a window sum with shared memory (issue 14)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.lower import lower_blocks
from workbench.backend.lower.compact import compact_buffers
from workbench.ir.functor import collect_vars
from workbench.schedule.legality import loops_between

cl = pytest.importorskip("pyopencl")


def _has_opencl() -> bool:
    try:
        return any(p.get_devices() for p in cl.get_platforms())
    except cl.Error:
        return False


needs_opencl = pytest.mark.skipif(not _has_opencl(), reason="no OpenCL device (install pocl-opencl-icd)")


N = 256
def shared_memory_matmul(n: int = N, block: int = 64, local: int = 8, tk: int = 8) -> wb.Schedule:
    """The course's schedule: C = A @ B with blocks of ``block`` x ``block`` (blockIdx.y/x), each thread
    ``local`` x ``local`` (threadIdx.y/x), k tiles of ``tk``; A_shared/B_shared fetched per k tile by all
    threads of the block, C_local accumulated per thread."""
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    sch = wb.Schedule(wb.create_prim_func([A, B, C]))
    c = sch.get_block("C")
    c_local = sch.cache_write(c, 0, "local")
    i, j, kk = sch.get_loops(c)
    threads = block // local
    i0, i1, i2 = sch.split(i, factors=[None, threads, local])
    j0, j1, j2 = sch.split(j, factors=[None, threads, local])
    k0, k1 = sch.split(kk, factors=[None, tk])
    sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2)
    sch.reverse_compute_at(c_local, j1)
    for loop, tag in ((i0, "blockIdx.y"), (j0, "blockIdx.x"), (i1, "threadIdx.y"), (j1, "threadIdx.x")):
        sch.bind(loop, tag)
    for index in (0, 1):                                 # cooperative fetch: fused copy split by the threads
        cache = sch.cache_read(c, index, "shared")
        sch.compute_at(cache, k0)
        fused = sch.fuse(*sch.get_loops(cache)[-2:])
        _, ty, tx = sch.split(fused, factors=[None, threads, threads])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
    sch.decompose_reduction(c, k0)
    return sch


def _copy_tile(sch: wb.Schedule, name: str) -> tuple[int, set]:
    """Elements the copy block fetches per k tile, and the outer loops its bindings use."""
    realize, anc = sch.index().blocks[name]
    k0 = next(a for a in anc if getattr(a, "loop_var", None) is not None and a.loop_var.name == "k_0")
    inner = loops_between(anc, k0)
    inner_vars = {id(lp.loop_var) for lp in inner}
    count = int(np.prod([lp.extent.value for lp in inner]))
    return count, {v.name for e in realize.iter_values for v in collect_vars(e) if id(v) not in inner_vars}


def test_each_block_fetches_its_own_tiles():
    sch = shared_memory_matmul()
    assert _copy_tile(sch, "A_shared") == (64 * 8, {"i_0", "k_0"})     # its 64 rows, not all 256
    assert _copy_tile(sch, "B_shared") == (8 * 64, {"j_0", "k_0"})


def test_shared_buffers_are_compacted_to_the_tile():
    compacted = compact_buffers(lower_blocks(shared_memory_matmul().mod["main"])).attrs["compacted"]
    assert compacted["A_shared"] == (64, 8) and compacted["B_shared"] == (8, 64)
    assert compacted["C_local"] == (8, 8)


@needs_opencl
def test_shared_memory_matmul_matches_numpy_on_opencl():
    f = wb.build(shared_memory_matmul().mod, target="opencl")
    src = f.source("cl")
    assert "__local float A_shared[" in src and "barrier(CLK_LOCAL_MEM_FENCE)" in src
    rng = np.random.default_rng(0)
    a = rng.standard_normal((N, N)).astype("float32")
    b = rng.standard_normal((N, N)).astype("float32")
    c = np.full((N, N), np.nan, "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


def _window_sum_at_thread_loop(cooperative: bool) -> wb.Schedule:
    """B[i] = A[i] + A[i+1] + A[i+2] by blocks of 64 threads, A read through shared memory computed at the
    thread loop: the copy covers the block's 66 elements (all its threads'), not one thread's 3."""
    A = te.placeholder((1026,), "float32", name="A")
    B = te.compute((1024,), lambda i: A[i] + A[i + 1] + A[i + 2], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 64])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    shared = sch.cache_read(b, 0, "shared")
    sch.compute_at(shared, tx)
    (copy,) = loops_between(sch.index().blocks["A_shared"][1], sch.get(tx))
    assert copy.extent.value == 66
    if cooperative:
        _, fetch = sch.split(sch.get_loops(shared)[-1], factors=[None, 64])
        sch.bind(fetch, "threadIdx.x")
    return sch


def _check_window_sum(sch: wb.Schedule) -> None:
    f = wb.build(sch.mod, target="opencl")
    a = np.random.default_rng(2).random(1026, dtype="float32")
    out = np.zeros(1024, "float32")
    f(a, out)
    np.testing.assert_allclose(out, a[:-2] + a[1:-1] + a[2:], rtol=1e-6)


@needs_opencl
def test_window_sum_with_cooperative_fetch_at_the_thread_loop():
    _check_window_sum(_window_sum_at_thread_loop(cooperative=True))


def test_window_sum_shared_tile_is_the_block_window():
    sch = _window_sum_at_thread_loop(cooperative=False)
    realize, anc = sch.index().blocks["A_shared"]
    copy = anc[-1].loop_var
    assert {v.name for e in realize.iter_values for v in collect_vars(e) if v is not copy} == {"i_0"}
