"""transform_block_layout, reindex, reindex_cache_read/write, cache_index, unsafe_set_dtype: against numpy."""
import numpy as np

import workbench as wb
from workbench import te
from workbench.schedule import ScheduleArgumentError
from workbench.schedule.errors import (
    DependenceError,
    NonAffineBindingError,
    NotAChainError,
)

from .util import check_llvm, check_numeric, refused


def _matmul(n=4, m=6, k=5):
    A = te.placeholder((n, k), "float32", name="A")
    B = te.placeholder((k, m), "float32", name="B")
    r = te.reduce_axis(k, name="k")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    return wb.create_prim_func([A, B, C])


def _mm_ref(a, b):
    return a @ b


def _elementwise():
    A = te.placeholder((4, 6), "float32", name="A")
    B = te.compute((6, 4), lambda i, j: A[j, i] * 2.0, name="B")
    return wb.create_prim_func([A, B])


def _ew_ref(a):
    return a.T * 2.0


def _check_both(func, ref, shapes_in, shape_out):
    check_numeric(func, ref, shapes_in, shape_out)
    check_llvm(func, ref, shapes_in, shape_out)


def _replays(sch, original):
    replay = wb.Schedule(original)
    exec(str(sch.trace), {"sch": replay})
    wb.assert_structural_equal(replay.func, sch.func)


# transform_block_layout --------------------------------------------------------------------------

def test_transform_block_layout_fuses_spatial_and_keeps_reduction():
    f = _matmul()
    sch = wb.Schedule(f)
    sch.transform_block_layout(sch.get_block("C"), lambda i, j, k: (k, i * 6 + j))
    blk = sch.get(sch.get_block("C"))
    assert [str(iv.iter_type) for iv in blk.iter_vars] == ["reduce", "spatial"]
    assert [int(iv.dom.extent) for iv in blk.iter_vars] == [5, 24]
    assert [int(sch.get(l).extent) for l in sch.get_loops(sch.get_block("C"))] == [5, 24]
    _check_both(sch.func, _mm_ref, [(4, 5), (5, 6)], (4, 6))
    _replays(sch, f)


def test_transform_block_layout_split_map():
    f = _elementwise()
    sch = wb.Schedule(f)
    sch.transform_block_layout(sch.get_block("B"), lambda i, j: (j // 2, i, j % 2))
    assert [int(sch.get(l).extent) for l in sch.get_loops(sch.get_block("B"))] == [2, 6, 2]
    _check_both(sch.func, _ew_ref, [(4, 6)], (6, 4))


def test_transform_block_layout_refusals():
    sch = wb.Schedule(_matmul())
    c = sch.get_block("C")
    refused(sch, sch.transform_block_layout, c, lambda i, j, k: (i, j // 2, k), exc=ScheduleArgumentError,
            match="not bijective")
    refused(sch, sch.transform_block_layout, c, lambda i, j, k: (i, j * 2, k), exc=ScheduleArgumentError,
            match="not bijective")
    refused(sch, sch.transform_block_layout, c, lambda i, j, k: (i * 5 + k, j), exc=ScheduleArgumentError,
            match="mixes spatial and reduction")
    refused(sch, sch.transform_block_layout, c, lambda i, j: (i, j), exc=ScheduleArgumentError,
            match="takes 2 indices but the block has 3")
    _, j, _ = sch.get_loops(c)
    sch.split(j, factors=[2, 3])
    refused(sch, sch.transform_block_layout, c, lambda i, j, k: (j, i, k), exc=NonAffineBindingError,
            match="not bound one to one")


def test_transform_block_layout_refuses_loops_shared_with_another_block():
    sch = wb.Schedule(_matmul())
    sch.decompose_reduction(sch.get_block("C"), sch.get_loops(sch.get_block("C"))[2])
    refused(sch, sch.transform_block_layout, sch.get_block("C_init"), lambda i, j: (j, i), exc=NotAChainError,
            match="holds more than this block")


# reindex -------------------------------------------------------------------------------------------

def test_reindex_read_and_write_of_matmul():
    f = _matmul()
    sch = wb.Schedule(f)
    c = sch.get_block("C")
    ra = sch.reindex(c, ("read", 1))   # B[vk, vj]: B_reindex[vj, vk] in the block's order (vi, vj, vk)
    rc = sch.reindex(c, ("write", 0))
    assert sch.get(ra).name == "B_reindex" and sch.get(rc).name == "C_reindex"
    shapes = {b.name: tuple(int(d) for d in b.shape) for b in sch.func.body.block.alloc_buffers}
    assert shapes == {"B_reindex": (6, 5), "C_reindex": (4, 6)}
    names = [n.block.name for n in wb.schedule.tree.all_realizes(sch.func.body)][1:]
    assert names == ["B_reindex", "C", "C_reindex"]
    _check_both(sch.func, _mm_ref, [(4, 5), (5, 6)], (4, 6))
    _replays(sch, f)


def test_reindex_write_of_a_transposed_store():
    func = wb.parse('''
def f(A: wb.Buffer((4, 6), "float32"), B: wb.Buffer((6, 4), "float32")):
    for i, j in wb.grid(4, 6):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vj, vi] = A[vi, vj] * 2.0
''')
    sch = wb.Schedule(func)
    sch.reindex(sch.get_block("B"), ("write", 0))
    _check_both(sch.func, _ew_ref, [(4, 6)], (6, 4))


def test_reindex_refusals():
    func = wb.parse('''
def f(A: wb.Buffer((8,), "float32"), B: wb.Buffer((4,), "float32")):
    for i in wb.serial(8):
        with wb.block("B"):
            vi = wb.axis.spatial(8, i)
            B[vi // 2] = A[vi] + A[7 - vi]
''')
    sch = wb.Schedule(func)
    b = sch.get_block("B")
    refused(sch, sch.reindex, b, ("read", 0), exc=ScheduleArgumentError, match="at different indices")
    refused(sch, sch.reindex, b, ("write", 0), exc=ScheduleArgumentError,
            match="sends two iteration points to one element")
    refused(sch, sch.reindex, b, ("written", 0), exc=ScheduleArgumentError, match="\"read\" or \"write\"")
    upd = wb.Schedule(_update())
    c = upd.get_block("C")
    refused(upd, upd.reindex, c, ("read", _read_index(upd, c, "C")), exc=ScheduleArgumentError,
            match="also writes C")


def _update():
    return wb.parse('''
def f(A: wb.Buffer((4,), "float32"), C: wb.Buffer((4,), "float32")):
    for i in wb.serial(4):
        with wb.block("C"):
            vi = wb.axis.spatial(4, i)
            C[vi] = C[vi] + A[vi]
''')


def _read_index(sch, block, name):
    return [r.buffer.name for r in sch.get(block).reads].index(name)


def test_reindex_refuses_an_update_without_init():
    sch = wb.Schedule(_update())
    refused(sch, sch.reindex, sch.get_block("C"), ("write", 0), exc=DependenceError, match="has no init")
    refused(sch, sch.reindex_cache_write, sch.get_block("C"), 0, "local", lambda i: (i,), exc=DependenceError,
            match="has no init")


# reindex_cache_read / reindex_cache_write ------------------------------------------------------------

def test_reindex_cache_read_of_matmul_operand():
    f = _matmul()
    sch = wb.Schedule(f)
    c = sch.get_block("C")
    blk = sch.reindex_cache_read(c, 0, "shared", lambda i, j, k: (k, i))
    assert sch.get(blk).name == "A_shared"
    (abuf,) = [b for b in sch.func.body.block.alloc_buffers if b.name == "A_shared"]
    assert tuple(int(d) for d in abuf.shape) == (5, 4) and abuf.scope == "shared"
    assert [sch.get(l).loop_var.name for l in sch.get_loops(blk)] == ["i", "k"]   # the block's loops, j dropped
    _check_both(sch.func, _mm_ref, [(4, 5), (5, 6)], (4, 6))
    assert 'index_map=lambda i, j, k: (k, i)' in str(sch.trace)
    _replays(sch, f)


def test_reindex_cache_write_of_reduction_after_split():
    f = _matmul()
    sch = wb.Schedule(f)
    c = sch.get_block("C")
    _, j, _ = sch.get_loops(c)
    sch.split(j, factors=[None, 4])   # 6 = 2 * 4 overshoots: a predicate the copy back keeps
    blk = sch.reindex_cache_write(c, 0, "local", lambda i, j, k: (j, i))
    assert sch.get(blk).name == "C_local"
    _check_both(sch.func, _mm_ref, [(4, 5), (5, 6)], (4, 6))


def test_reindex_cache_refusals():
    sch = wb.Schedule(_matmul())
    c = sch.get_block("C")
    refused(sch, sch.reindex_cache_read, c, 0, "shared", lambda i, j, k: (i, j, k), exc=ScheduleArgumentError,
            match="iteration variable v_j appears in the index map but not in the other")
    refused(sch, sch.reindex_cache_read, c, 0, "shared", lambda i, j, k: (i // 2, k), exc=ScheduleArgumentError,
            match="sends two iteration points to one element")
    refused(sch, sch.reindex_cache_read, c, 0, "texture", lambda i, j, k: (i, k), exc=ScheduleArgumentError,
            match="unknown storage scope")
    upd = wb.Schedule(_update())
    uc = upd.get_block("C")
    refused(upd, upd.reindex_cache_read, uc, _read_index(upd, uc, "C"), "shared", lambda i: (i,),
            exc=ScheduleArgumentError, match="also writes C")
    refused(sch, sch.reindex_cache_write, c, 0, "local", lambda i, j: (i, j), exc=ScheduleArgumentError,
            match="takes 2 indices but the block has 3")


# cache_index ---------------------------------------------------------------------------------------

def _resize():
    A = te.placeholder((1, 3, 40, 40), "float32", name="A")
    B = te.compute((1, 3, 80, 80), lambda n, c, i, j: A[n, c, i // 4 + j // 4, j // 2], name="B")
    return wb.create_prim_func([A, B])


def _resize_ref(a):
    i = np.arange(80)[:, None]
    j = np.arange(80)[None, :]
    return a[:, :, i // 4 + j // 4, np.broadcast_to(j // 2, (80, 80))]


def test_cache_index_tvm_example():
    sch = wb.Schedule(_resize())
    blocks = sch.cache_index(sch.get_block("B"), "global", cse_thresh=1)
    assert [sch.get(b).name for b in blocks] == ["index_0", "index_1"]
    shapes = {b.name: (tuple(int(d) for d in b.shape), b.dtype) for b in sch.func.body.block.alloc_buffers}
    assert shapes == {"index_var_0": ((80, 80), "int32"), "index_var_1": ((80,), "int32")}
    _check_both(sch.func, _resize_ref, [(1, 3, 40, 40)], (1, 3, 80, 80))


def test_cache_index_threshold_counts_repeats():
    A = te.placeholder((16,), "float32", name="A")
    B = te.compute((8,), lambda i: A[i * 2 + 1] + A[i // 2] * A[i // 2], name="B")
    f = wb.create_prim_func([A, B])
    sch = wb.Schedule(f)
    (blk,) = sch.cache_index(sch.get_block("B"), "global", cse_thresh=2)   # only i // 2 appears twice
    assert str(sch.get(blk).body.value) == "v0 // 2"
    body = str(sch.get(sch.get_block("B")).body)
    assert "v_i * 2 + 1" in body and "//" not in body
    _check_both(sch.func, lambda a: a[np.arange(8) * 2 + 1] + a[np.arange(8) // 2] ** 2, [(16,)], (8,))
    none = wb.Schedule(f)
    assert none.cache_index(none.get_block("B"), "global", cse_thresh=3) == []
    assert none.func is f


def test_cache_index_refusals():
    sch = wb.Schedule(_resize())
    b = sch.get_block("B")
    refused(sch, sch.cache_index, b, "texture", exc=ScheduleArgumentError, match="unknown storage scope")
    refused(sch, sch.cache_index, b, "global", cse_thresh=-1, exc=ScheduleArgumentError, match="cse_thresh")


# unsafe_set_dtype ----------------------------------------------------------------------------------

def _two_stage():
    A = te.placeholder((4, 4), "float32", name="A")
    B = te.compute((4, 4), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((4, 4), lambda i, j: B[i, j] + 1.0, name="C")
    return wb.create_prim_func([A, C])


def test_unsafe_set_dtype_float16_rounds():
    sch = wb.Schedule(_two_stage())
    sch.unsafe_set_dtype(sch.get_block("B"), 0, "float16")
    (b,) = sch.func.body.block.alloc_buffers
    assert b.dtype == "float16"

    def ref(a):
        return (a * 2.0).astype("float16").astype("float32") + 1.0

    check_numeric(sch.func, ref, [(4, 4)], (4, 4), rtol=1e-6)
    check_llvm(sch.func, ref, [(4, 4)], (4, 4), rtol=1e-6)


def test_unsafe_set_dtype_int_changes_results():
    sch = wb.Schedule(_two_stage())
    sch.unsafe_set_dtype(sch.get_block("B"), 0, "int32")
    a = np.array([[0.75, -1.6, 2.2, 3.0]] * 4, "float32")
    out = np.zeros((4, 4), "float32")
    wb.build(sch.func, target="llvm")(a, out)
    np.testing.assert_array_equal(out, np.trunc(a * 2.0) + 1.0)   # 1.5 -> 1: the result changed


def test_unsafe_set_dtype_refusals():
    sch = wb.Schedule(_two_stage())
    refused(sch, sch.unsafe_set_dtype, sch.get_block("C"), 0, "float16", exc=ScheduleArgumentError,
            match="parameter of the function")
    refused(sch, sch.unsafe_set_dtype, sch.get_block("B"), 0, "float17", exc=ScheduleArgumentError,
            match="not a dtype")
    refused(sch, sch.unsafe_set_dtype, sch.get_block("B"), 0, "float32x4", exc=ScheduleArgumentError,
            match="not a scalar")
    refused(sch, sch.unsafe_set_dtype, sch.get_block("B"), 1, "float16", exc=ScheduleArgumentError,
            match="no write buffer number 1")


def test_reindex_cache_read_goes_after_the_producer():
    A = te.placeholder((4, 4), "float32", name="A")
    B = te.compute((4, 4), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((4, 4), lambda i, j: B[j, i] + 1.0, name="C")
    sch = wb.Schedule(wb.create_prim_func([A, C]))
    sch.reindex_cache_read(sch.get_block("C"), 0, "local", lambda i, j: (i, j))
    names = [n.block.name for n in wb.schedule.tree.all_realizes(sch.func.body)][1:]
    assert names == ["B", "B_local", "C"]
    _check_both(sch.func, lambda a: (a * 2.0).T + 1.0, [(4, 4)], (4, 4))
