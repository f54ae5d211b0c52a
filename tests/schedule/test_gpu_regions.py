"""compute_at / reverse_compute_at under thread-bound loops (issue 14): a cache covers what the threads
sharing its storage scope need (shared: one block's threads; warp: threadIdx.x; local and global: one
thread), and bind keeps one launch size per thread axis in a kernel."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.functor import collect_vars
from workbench.ir.interpreter import evaluate
from workbench.schedule.errors import ScheduleError
from workbench.schedule.legality import loops_between


def _matmul(n: int):
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def _tiled(n: int, block: int, local: int, tk: int):
    """The course's GPU matmul loops: (by, bx, ty, tx, ko, ki, i2, j2), with C through a local cache."""
    sch = wb.Schedule(_matmul(n))
    c = sch.get_block("C")
    c_local = sch.cache_write(c, 0, "local")
    i, j, k = sch.get_loops(c)
    i0, i1, i2 = sch.split(i, factors=[None, block // local, local])
    j0, j1, j2 = sch.split(j, factors=[None, block // local, local])
    k0, k1 = sch.split(k, factors=[None, tk])
    sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2)
    sch.reverse_compute_at(c_local, j1)
    for loop, tag in ((i0, "blockIdx.y"), (j0, "blockIdx.x"), (i1, "threadIdx.y"), (j1, "threadIdx.x")):
        sch.bind(loop, tag)
    return sch, c, c_local, (i0, j0, i1, j1, k0)


def _footprint(sch, block, at) -> tuple[int, set]:
    """Iterations of ``block`` per iteration of loop ``at``, and the names of the loops above ``at`` its
    bindings use."""
    idx = sch.index()
    realize, anc = idx.blocks[sch.get(block).name]
    inner = loops_between(anc, sch.get(at))
    count = int(np.prod([int(lp.extent.value) for lp in inner]))
    inner_vars = {id(lp.loop_var) for lp in inner}
    used = {v.name for e in realize.iter_values for v in collect_vars(e) if id(v) not in inner_vars}
    return count, used


def test_shared_cache_at_k_tile_covers_the_block_not_one_thread():
    sch, c, _, (i0, j0, i1, j1, k0) = _tiled(256, 64, 8, 8)
    a_shared = sch.cache_read(c, 0, "shared")
    sch.compute_at(a_shared, k0)
    count, used = _footprint(sch, a_shared, k0)
    assert count == 64 * 8                              # was 8 * 8: one thread's rows only
    assert used == {"i_0", "k_0"}                       # blockIdx kept, threadIdx relaxed
    b_shared = sch.cache_read(c, 1, "shared")
    sch.compute_at(b_shared, k0)
    assert _footprint(sch, b_shared, k0) == (8 * 64, {"j_0", "k_0"})


def test_local_and_global_caches_cover_one_thread():
    for scope in ("local", "global"):
        sch, c, _, (*_, k0) = _tiled(64, 16, 4, 4)
        cache = sch.cache_read(c, 0, scope)
        sch.compute_at(cache, k0)
        assert _footprint(sch, cache, k0) == (4 * 4, {"i_0", "i_1", "k_0"}), scope


def test_warp_cache_relaxes_only_threadidx_x():
    A = te.placeholder((16, 32), "float32", name="A")
    B = te.compute((16, 32), lambda i, j: A[i, j] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    i, j = sch.get_loops(b)
    sch.bind(i, "threadIdx.y")
    sch.bind(j, "threadIdx.x")
    warp = sch.cache_read(b, 0, "warp")
    sch.compute_at(warp, j)
    assert _footprint(sch, warp, j) == (32, {"i"})


def test_shared_cache_at_a_thread_loop_and_vthread():
    A = te.placeholder((130,), "float32", name="A")
    B = te.compute((128,), lambda i: A[i] + A[i + 2], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, vt, tx = sch.split(sch.get_loops(b)[0], factors=[None, 2, 32])
    sch.bind(bx, "blockIdx.x")
    sch.bind(vt, "vthread")
    sch.bind(tx, "threadIdx.x")
    assert sch.get(vt).thread == "vthread.x"
    shared = sch.cache_read(b, 0, "shared")
    sch.compute_at(shared, tx)                          # the compute-at loop itself is relaxed too
    assert _footprint(sch, shared, tx) == (66, {"i_0"})
    a = np.random.default_rng(0).random(130, dtype="float32")
    out = np.zeros(128, "float32")
    evaluate(sch.func, a, out)
    np.testing.assert_allclose(out, a[:-2] + a[2:], rtol=1e-6)


def test_reverse_compute_at_of_shared_cache_covers_the_block():
    A = te.placeholder((128,), "float32", name="A")
    B = te.compute((128,), lambda i: A[i] * 3.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    b = sch.get_block("B")
    bx, tx = sch.split(sch.get_loops(b)[0], factors=[None, 32])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    out_block = sch.cache_write(b, 0, "shared")
    sch.reverse_compute_at(out_block, tx)
    assert _footprint(sch, out_block, tx) == (32, {"i_0"})
    sch2 = wb.Schedule(wb.create_prim_func([A, B]))
    b2 = sch2.get_block("B")
    bx2, tx2 = sch2.split(sch2.get_loops(b2)[0], factors=[None, 32])
    sch2.bind(bx2, "blockIdx.x")
    sch2.bind(tx2, "threadIdx.x")
    copy = sch2.cache_write(b2, 0, "local")
    sch2.reverse_compute_at(copy, tx2)
    assert _footprint(sch2, copy, tx2) == (1, {"i_0", "i_1"})


def test_course_matmul_schedule_matches_numpy_in_the_interpreter():
    n = 32
    sch, c, _, (*_, k0) = _tiled(n, 16, 4, 4)
    for index in (0, 1):
        cache = sch.cache_read(c, index, "shared")
        sch.compute_at(cache, k0)
        fused = sch.fuse(*sch.get_loops(cache)[-2:])
        _, ty, tx = sch.split(fused, factors=[None, 4, 4])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
    sch.decompose_reduction(c, k0)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((n, n)).astype("float32"), rng.standard_normal((n, n)).astype("float32")
    out = np.zeros((n, n), "float32")
    evaluate(sch.func, a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


# bind legality ------------------------------------------------------------------------------------------


def test_bind_refuses_a_second_extent_for_one_thread_axis_in_a_kernel():
    sch, c, _, (*_, k0) = _tiled(64, 16, 4, 4)
    cache = sch.cache_read(c, 0, "shared")
    sch.compute_at(cache, k0)
    fused = sch.fuse(*sch.get_loops(cache)[-2:])
    _, tx = sch.split(fused, factors=[None, 8])
    before = sch.func
    with pytest.raises(ScheduleError, match=r"cannot bind loop \w+ \(extent 8\) to threadIdx.x: loop j_1 in the "
                                            r"same kernel is bound to threadIdx.x with extent 4"):
        sch.bind(tx, "threadIdx.x")
    assert sch.func is before
    sch.bind(tx, "threadIdx.z")                         # another axis is fine


def test_bind_allows_other_extents_in_another_kernel():
    A = te.placeholder((64,), "float32", name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[i] + 1.0, name="C")
    sch = wb.Schedule(wb.create_prim_func([A, C]))
    for name, threads in (("B", 32), ("C", 16)):
        bx, tx = sch.split(sch.get_loops(sch.get_block(name))[0], factors=[None, threads])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
    assert sch.get(sch.get_loops(sch.get_block("C"))[1]).extent.value == 16


def test_bind_refuses_an_extent_that_changes_from_block_to_block():
    @wb.prim_func
    def tri(A: wb.Buffer((8, 8), "float32")):
        for i in wb.thread_binding(8, thread="blockIdx.x"):
            for j in wb.serial(i + 1):
                with wb.block("A"):
                    vi, vj = wb.axis.remap("SS", [i, j])
                    A[vi, vj] = 1.0

    sch = wb.Schedule(tri)
    j = sch.get_loops(sch.get_block("A"))[1]
    with pytest.raises(ScheduleError, match=r"cannot bind loop j to threadIdx.x: its extent `i \+ 1` changes with "
                                            r"loop i"):
        sch.bind(j, "threadIdx.x")


def test_bind_names_the_unknown_axis():
    A = te.placeholder((8,), "float32", name="A")
    B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    with pytest.raises(ScheduleError, match=r"cannot bind loop i: unknown thread axis 'threadIdx.w'"):
        sch.bind(sch.get_loops(sch.get_block("B"))[0], "threadIdx.w")
