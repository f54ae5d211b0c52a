"""split, fuse, reorder, add_unit_loop: before/after programs, numbers against numpy, refused requests."""
import pytest

import workbench as wb
from workbench.schedule import InvalidHandleError, NotAChainError, ScheduleArgumentError

from .util import assert_program, check_llvm, check_numeric, refused


@wb.prim_func
def scale(A: wb.Buffer((128,), "float32"), B: wb.Buffer((128,), "float32")):
    for i in range(128):
        with wb.block("B"):
            vi = wb.axis.spatial(128, i)
            B[vi] = A[vi] * 2.0


@wb.prim_func
def scale100(A: wb.Buffer((100,), "float32"), B: wb.Buffer((100,), "float32")):
    for i in range(100):
        with wb.block("B"):
            vi = wb.axis.spatial(100, i)
            B[vi] = A[vi] * 2.0


@wb.prim_func
def add2d(A: wb.Buffer((16, 8), "float32"), B: wb.Buffer((16, 8), "float32")):
    for i, j in wb.grid(16, 8):
        with wb.block("B"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] + 1.0


@wb.prim_func
def matmul(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"), C: wb.Buffer((16, 16), "float32")):
    for i, j, k in wb.grid(16, 16, 16):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                C[vi, vj] = 0.0
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]


def mm_ref(a, b):
    return a @ b


def test_split_exact():
    @wb.prim_func
    def expected(A: wb.Buffer((128,), "float32"), B: wb.Buffer((128,), "float32")):
        for i_0, i_1 in wb.grid(4, 32):
            with wb.block("B"):
                vi = wb.axis.spatial(128, i_0 * 32 + i_1)
                B[vi] = A[vi] * 2.0

    sch = wb.Schedule(scale)
    (i,) = sch.get_loops(sch.get_block("B"))
    io, ii = sch.split(i, factors=[None, 32])
    assert_program(sch.func, expected)
    assert sch.get(io).extent.value == 4 and sch.get(ii).extent.value == 32
    check_numeric(sch.func, lambda a: a * 2, [(128,)], (128,))
    check_llvm(sch.func, lambda a: a * 2, [(128,)], (128,))
    # the original program is untouched (immutable IR)
    wb.assert_structural_equal(sch.history[0].func, scale)


def test_split_non_dividing_adds_predicate():
    @wb.prim_func
    def expected(A: wb.Buffer((100,), "float32"), B: wb.Buffer((100,), "float32")):
        for i_0, i_1 in wb.grid(4, 32):
            with wb.block("B"):
                vi = wb.axis.spatial(100, i_0 * 32 + i_1)
                wb.where(i_0 * 32 + i_1 < 100)
                B[vi] = A[vi] * 2.0

    sch = wb.Schedule(scale100)
    (i,) = sch.get_loops(sch.get_block("B"))
    sch.split(i, factors=[None, 32])
    assert_program(sch.func, expected)
    check_numeric(sch.func, lambda a: a * 2, [(100,)], (100,))
    check_llvm(sch.func, lambda a: a * 2, [(100,)], (100,))


def test_split_three_factors():
    @wb.prim_func
    def expected(A: wb.Buffer((128,), "float32"), B: wb.Buffer((128,), "float32")):
        for i_0, i_1, i_2 in wb.grid(2, 4, 16):
            with wb.block("B"):
                vi = wb.axis.spatial(128, i_0 * 64 + i_1 * 16 + i_2)
                B[vi] = A[vi] * 2.0

    sch = wb.Schedule(scale)
    (i,) = sch.get_loops(sch.get_block("B"))
    sch.split(i, factors=[2, None, 16])
    assert_program(sch.func, expected)
    check_numeric(sch.func, lambda a: a * 2, [(128,)], (128,))


@pytest.mark.parametrize("factors, match", [
    ([0, None], "factor 0 is 0"),
    ([None, -4], "factor 1 is -4"),
    ([None, None], "at most one factor may be None"),
    ([3, 32], "multiply to 96, but the loop has extent 128"),
    ([128], "at least two factors"),
    (32, "must be a list"),
])
def test_split_bad_factors(factors, match):
    sch = wb.Schedule(scale)
    (i,) = sch.get_loops(sch.get_block("B"))
    err = refused(sch, sch.split, i, factors=factors, match=match, exc=ScheduleArgumentError)
    assert "loop i" in err.message
    assert "# <-- here" in str(err)  # the program is shown with the loop marked


def test_split_twice_says_undo():
    sch = wb.Schedule(scale)
    (i,) = sch.get_loops(sch.get_block("B"))
    sch.split(i, factors=[None, 32])
    # re-running the cell: the handle was consumed by the split
    err = refused(sch, sch.split, i, factors=[None, 32], exc=InvalidHandleError)
    assert "this step is already step 1 (split(loop i, factors=[None, 32]))" in err.message
    assert "sch.undo()" in err.message
    # another request with the consumed handle says which step consumed it
    err = refused(sch, sch.split, i, factors=[None, 8], exc=InvalidHandleError)
    assert "loop i was already split by step 1 (split)" in err.message
    sch.undo()
    io, ii = sch.split(i, factors=[None, 32])  # after undo the handle works again
    assert sch.get(ii).extent.value == 32


def test_fuse():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 8), "float32"), B: wb.Buffer((16, 8), "float32")):
        for i_j_fused in range(128):
            with wb.block("B"):
                vi = wb.axis.spatial(16, i_j_fused // 8)
                vj = wb.axis.spatial(8, i_j_fused % 8)
                B[vi, vj] = A[vi, vj] + 1.0

    sch = wb.Schedule(add2d)
    i, j = sch.get_loops(sch.get_block("B"))
    f = sch.fuse(i, j)
    assert_program(sch.func, expected)
    assert sch.get(f).extent.value == 128
    check_numeric(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))
    check_llvm(sch.func, lambda a: a + 1, [(16, 8)], (16, 8))


def test_fuse_three_then_split_roundtrip_numbers():
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    f = sch.fuse(i, j)
    fo, fi = sch.split(f, factors=[None, 24])  # non-dividing: 256 = 10*24 + 16
    check_numeric(sch.func, mm_ref, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_fuse_refuses_non_chain():
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    err = refused(sch, sch.fuse, i, k, exc=NotAChainError)
    assert "not the only statement directly inside loop i" in err.message


def test_reorder():
    @wb.prim_func
    def expected(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"),
                 C: wb.Buffer((16, 16), "float32")):
        for k, i, j in wb.grid(16, 16, 16):
            with wb.block("C"):
                vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
                with wb.init():
                    C[vi, vj] = 0.0
                C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]

    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.reorder(k, i, j)
    assert_program(sch.func, expected)
    check_numeric(sch.func, mm_ref, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)
    check_llvm(sch.func, mm_ref, [(16, 16), (16, 16)], (16, 16), rtol=1e-4)


def test_reorder_keeps_unnamed_loops_in_place():
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    sch.reorder(k, i)  # j stays in the middle
    names = [sch.get(l).loop_var.name for l in sch.get_loops(sch.get_block("C"))]
    assert names == ["k", "j", "i"]


def test_reorder_refuses_loops_of_two_nests():
    @wb.prim_func
    def two(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32"), C: wb.Buffer((8,), "float32")):
        for i in range(8):
            with wb.block("B"):
                vi = wb.axis.spatial(8, i)
                B[vi] = A[vi]
        for i in range(8):
            with wb.block("C"):
                vi = wb.axis.spatial(8, i)
                C[vi] = B[vi]

    sch = wb.Schedule(two)
    (i1,) = sch.get_loops(sch.get_block("B"))
    (i2,) = sch.get_loops(sch.get_block("C"))
    err = refused(sch, sch.reorder, i1, i2, exc=NotAChainError)
    assert "not nested in one chain" in err.message
    refused(sch, sch.reorder, i1, i1, match="given twice", exc=ScheduleArgumentError)


def test_add_unit_loop():
    @wb.prim_func
    def expected(A: wb.Buffer((128,), "float32"), B: wb.Buffer((128,), "float32")):
        for u in range(1):
            for i in range(128):
                with wb.block("B"):
                    vi = wb.axis.spatial(128, i)
                    B[vi] = A[vi] * 2.0

    sch = wb.Schedule(scale)
    (i,) = sch.get_loops(sch.get_block("B"))
    u = sch.add_unit_loop(i)
    assert_program(sch.func, expected)
    assert sch.get(u).extent.value == 1
    check_numeric(sch.func, lambda a: a * 2, [(128,)], (128,))
    refused(sch, sch.add_unit_loop, "B", exc=ScheduleArgumentError, match="block or loop handle")


def test_add_unit_loop_above_block():
    sch = wb.Schedule(scale)
    b = sch.get_block("B")
    sch.add_unit_loop(b)
    assert [sch.get(l).extent.value for l in sch.get_loops(b)] == [128, 1]
    check_numeric(sch.func, lambda a: a * 2, [(128,)], (128,))


def test_reorder_refuses_non_affine_binding():
    from workbench.schedule import NonAffineBindingError

    @wb.prim_func
    def squares(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32")):
        for i, j in wb.grid(16, 16):
            with wb.block("B"):
                vi = wb.axis.spatial(16, i * i % 16)
                vj = wb.axis.spatial(16, j)
                B[vi, vj] = A[vi, vj]

    sch = wb.Schedule(squares)
    i, j = sch.get_loops(sch.get_block("B"))
    err = refused(sch, sch.reorder, j, i, exc=NonAffineBindingError)
    assert "block B binds vi to `i * i % 16`, which is not an affine expression of its loops" in err.message
    assert sch.last_error is err


def test_split_symbolic_extent_keeps_n_and_guards():
    @wb.prim_func
    def vec(a: wb.handle, b: wb.handle):
        n = wb.int32()
        A = wb.match_buffer(a, (n,), "float32")
        B = wb.match_buffer(b, (n,), "float32")
        for i in range(n):
            with wb.block("B"):
                vi = wb.axis.spatial(n, i)
                B[vi] = A[vi] + 1.0

    sch = wb.Schedule(vec)
    (i,) = sch.get_loops(sch.get_block("B"))
    io, ii = sch.split(i, factors=[None, 4])
    text = sch.func.script()
    assert "(n + 3) // 4" in text and "i_0 * 4 + i_1 < n" in text
    for n in (1, 7, 8):
        check_numeric(sch.func, lambda a: a + 1, [(n,)], (n,))
        check_llvm(sch.func, lambda a: a + 1, [(n,)], (n,))
