"""The lowering passes, each checked on a small program (structure) and by running it (numpy)."""
import warnings

import numpy as np
import pytest

import workbench as wb
from workbench.backend import lower
from workbench.backend.lower import (VectorizeWarning, ParallelWarning, flatten_buffers, lower_blocks,
                                     lower_parallel, plan_allocations, unroll, vectorize)
from workbench.ir import (Allocate, Block, BlockRealize, Buffer, BufferStore, For, IfThenElse, IterVar,
                          PrimFunc, Var, post_order_visit)
from workbench.ir import expr as E

from backend_helpers import elementwise


def _kinds(func):
    found = []
    post_order_visit(func.body, lambda n: found.append(type(n).__name__))
    return found


def _rowsum(n=4, m=6):
    """B[i] = sum_k A[i, k] as a block with init (a reduction), root block with an alloc."""
    a, b = Var("a", "handle"), Var("b", "handle")
    A, B = Buffer("A", (n, m), "float32"), Buffer("B", (n,), "float32")
    i, k = Var("i"), Var("k")
    vi, vk = Var("vi"), Var("vk")
    blk = Block("B", (IterVar(vi, n, "spatial"), IterVar(vk, m, "reduce")), (), (),
                BufferStore(B, B[vi] + A[vi, vk], [vi]), init=BufferStore(B, 0.0, [vi]))
    body = For(i, 0, n, "serial", For(k, 0, m, "serial", BlockRealize((i, k), True, blk)))
    root = BlockRealize((), True, Block("root", body=body))
    return PrimFunc([a, b], {a: A, b: B}, root, {"global_symbol": "rowsum"})


def test_lower_blocks_makes_init_a_first_iteration_branch():
    low = lower_blocks(_rowsum())
    kinds = _kinds(low)
    assert "Block" not in kinds and "BlockRealize" not in kinds
    inner = low.body.body.body  # for i: for k: seq(if k == 0: init, update)
    assert isinstance(inner.seq[0], IfThenElse)
    assert str(inner.seq[0].condition) == "k == 0"
    a = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    out = np.full(4, np.nan, np.float32)
    wb.build(_rowsum())(a, out)
    np.testing.assert_allclose(out, a.sum(1), rtol=1e-6)


def test_lower_stages_are_named_and_printable():
    stages = lower(_rowsum(), stages=True)
    names = [n for n, _ in stages]
    assert names[0] == "input" and names[1] == "lower_blocks"
    assert {"unroll", "vectorize", "flatten_buffers", "lower_parallel", "plan_allocations"} <= set(names)
    for _, f in stages:
        assert isinstance(f, PrimFunc)
        assert "def rowsum" in f.script()
    assert "insert_bound_checks" in [n for n, _ in lower(_rowsum(), stages=True, checks=True)]


def test_block_predicate_becomes_guard():
    a, b = Var("a", "handle"), Var("b", "handle")
    A, B = Buffer("A", (10,), "float32"), Buffer("B", (10,), "float32")
    io, ii, v = Var("io"), Var("ii"), Var("v")
    blk = Block("B", (IterVar(v, 10),), (), (), BufferStore(B, A[v] * 3.0, [v]))
    body = For(io, 0, 3, "serial", For(ii, 0, 4, "serial",
                                         BlockRealize((io * 4 + ii,), io * 4 + ii < 10, blk)))
    f = PrimFunc([a, b], {a: A, b: B}, body)
    assert "IfThenElse" in _kinds(lower_blocks(f))
    x = np.arange(10, dtype=np.float32)
    y = np.zeros(10, np.float32)
    wb.build(f, checks=True)(x, y)
    np.testing.assert_array_equal(y, x * 3)


def test_unroll_copies_the_body():
    f = elementwise(lambda x: x + 1.0, ["float32"], "float32", 3, "unrolled")
    u = unroll(f)
    assert [str(s.indices[0]) for s in u.body.seq] == ["0", "1", "2"]


def test_vectorize_builds_ramp_and_broadcast():
    f = elementwise(lambda x: x * 2.0, ["float32"], "float32", 8, "vectorized")
    v = vectorize(f)
    assert isinstance(v.body, BufferStore) and isinstance(v.body.indices[0], E.Ramp)
    assert v.body.value.dtype == "float32x8"
    assert "Broadcast" in _kinds(v)


def test_vectorize_fallback_warns_with_reason():
    a, b = Var("a", "handle"), Var("b", "handle")
    A, B = Buffer("A", (8,), "float32"), Buffer("B", (1,), "float32")
    j = Var("j")
    f = PrimFunc([a, b], {a: A, b: B}, For(j, 0, 8, "vectorized", BufferStore(B, B[0] + A[j], [0])))
    with pytest.warns(VectorizeWarning, match="store to B does not depend on the loop variable"):
        low = lower(f)
    assert _kinds(low).count("For") == 1
    x = np.arange(8, dtype=np.float32)
    y = np.zeros(1, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VectorizeWarning)
        wb.build(f, cache=False)(x, y)
    assert y[0] == x.sum()
    # a loop-carried dependence is refused too
    g = PrimFunc([a], {a: A}, For(j, 1, 7, "vectorized", BufferStore(A, A[j - 1] + 1.0, [j])))
    with pytest.warns(VectorizeWarning, match="depend on another"):
        lower(g)
    x = np.zeros(8, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VectorizeWarning)
        wb.build(g)(x)
    np.testing.assert_array_equal(x, np.arange(8))  # j runs over 1..7 (min 1, extent 7)


def test_long_and_symbolic_vectorized_loops_are_strip_mined(rng):
    n = Var("n")
    a, b, i = Var("a", "handle"), Var("b", "handle"), Var("i")
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    f = PrimFunc([a, b], {a: A, b: B}, For(i, 0, n, "vectorized", BufferStore(B, A[i] + 2.0, [i])))
    built = wb.build(f)
    assert "<16 x float>" in built.source("ll-raw")
    for size in (3, 16, 100):
        x = rng.random(size, dtype=np.float32)
        y = np.zeros(size, np.float32)
        built(x, y)
        np.testing.assert_allclose(y, x + 2)


def test_flatten_uses_strides_and_elem_offset():
    a = Var("a", "handle")
    A = Buffer("A", (4, 5), "float32", strides=(8, 1), elem_offset=3)
    i, j = Var("i"), Var("j")
    f = flatten_buffers(PrimFunc([a], {a: A}, BufferStore(A, 1.0, [i, j])))
    assert str(f.body.indices[0]) == "3 + i * 8 + j"
    assert len(f.buffer_map[a].shape) == 1


def test_strided_parameter_binds_strides_from_array(rng):
    s = Var("s")
    a, b, i, j = Var("a", "handle"), Var("b", "handle"), Var("i"), Var("j")
    A = Buffer("A", (3, 4), "float32", strides=(s, 1))
    B = Buffer("B", (3, 4), "float32")
    f = PrimFunc([a, b], {a: A, b: B}, For(i, 0, 3, "serial", For(j, 0, 4, "serial",
                                                                   BufferStore(B, A[i, j], [i, j]))))
    big = rng.random((3, 10), dtype=np.float32)
    out = np.zeros((3, 4), np.float32)
    wb.build(f)(big[:, :4], out)
    np.testing.assert_array_equal(out, big[:, :4])


def test_nested_parallel_becomes_serial_with_warning():
    f = elementwise(lambda x: x, ["float32"], "float32", 4, "parallel")
    j = Var("j")
    outer = PrimFunc(f.params, f.buffer_map, For(j, 0, 2, "parallel", f.body))
    with pytest.warns(ParallelWarning, match="parallel inside another parallel loop"):
        low = lower_parallel(outer)
    assert str(low.body.kind) == "parallel" and str(low.body.body.kind) == "serial"


def test_plan_allocations_aligns_and_chooses_storage():
    small, big = Buffer("S", (16,), "float32"), Buffer("L", (100000,), "float32")
    body = Allocate(small, Allocate(big, BufferStore(big, small[0], [0])))
    f = plan_allocations(PrimFunc([], {}, body))
    assert dict(f.attrs["storage"]) == {"S": "stack", "L": "heap"}
    assert f.body.buffer.align == 64 and f.body.body.buffer.align == 64


def test_script_form_transformed_program_builds_and_runs(rng):
    parser = pytest.importorskip("workbench.ir.parser")
    src = '''
@wb.prim_func
def mm(A: wb.Buffer((64, 32), "float32"), B: wb.Buffer((32, 48), "float32"), C: wb.Buffer((64, 48), "float32")):
    for io in wb.parallel(16):
        for jo in wb.serial(6):
            for ii in wb.unroll(4):
                for ji in wb.vectorized(8):
                    with wb.block("init"):
                        vi = wb.axis.spatial(64, io * 4 + ii)
                        vj = wb.axis.spatial(48, jo * 8 + ji)
                        C[vi, vj] = wb.float32(0)
            for k in wb.serial(32):
                for ii in wb.unroll(4):
                    for ji in wb.vectorized(8):
                        with wb.block("update"):
                            vi = wb.axis.spatial(64, io * 4 + ii)
                            vj = wb.axis.spatial(48, jo * 8 + ji)
                            vk = wb.axis.reduce(32, k)
                            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]
'''
    f = parser.parse(src)
    built = wb.build(f)
    a, b = rng.random((64, 32), dtype=np.float32), rng.random((32, 48), dtype=np.float32)
    c = np.zeros((64, 48), np.float32)
    built(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    lowered = built.source("lowered")
    assert "wb.ramp(" in lowered and "wb.parallel(16)" in lowered


@pytest.mark.parametrize("dt, tol", [("float16", 2e-2), ("bfloat16", 5e-2)])
def test_low_precision_matmul_within_tolerance(dt, tol, rng):
    from workbench.ir.dtype import to_numpy
    from workbench.ir import seq

    n = 8
    a_, b_, c_ = Var("a", "handle"), Var("b", "handle"), Var("c", "handle")
    A, B, C = (Buffer(x, (n, n), dt) for x in "ABC")
    i, j, k = Var("i"), Var("j"), Var("k")
    acc = E.cast(C[i, j], "float32") + E.cast(A[i, k], "float32") * E.cast(B[k, j], "float32")
    body = For(i, 0, n, "parallel", For(j, 0, n, "serial", seq(
        BufferStore(C, E.const(0, dt), [i, j]),
        For(k, 0, n, "serial", BufferStore(C, E.cast(acc, dt), [i, j])))))
    f = wb.build(PrimFunc([a_, b_, c_], {a_: A, b_: B, c_: C}, body))
    npdt = to_numpy(dt)
    a, b = rng.random((n, n)).astype(npdt), rng.random((n, n)).astype(npdt)
    c = np.zeros((n, n), npdt)
    f(a, b, c)
    np.testing.assert_allclose(c.astype("float32"), a.astype("float32") @ b.astype("float32"), rtol=tol, atol=tol)


def test_a_forked_process_runs_parallel_loops():
    """After fork the thread pool is started afresh (multiprocessing forks on Linux by default)."""
    import multiprocessing

    import numpy as np

    import workbench as wb
    from workbench import te

    A = te.placeholder((4096,), "float32", name="A")
    B = te.compute((4096,), lambda i: A[i] * 2.0, name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    (i,) = sch.get_loops(sch.get_block("B"))
    io, ii = sch.split(i, factors=[8, None])
    sch.parallel(io)
    f = wb.build(sch.mod)
    a, b = np.arange(4096, dtype="float32"), np.zeros(4096, "float32")
    f(a, b)                                     # the pool exists in this process now
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=f, args=(a, b))
    p.start()
    p.join(60)
    alive = p.is_alive()
    if alive:
        p.kill()
    assert not alive and p.exitcode == 0, "a forked child hung (or died) running a parallel loop"
