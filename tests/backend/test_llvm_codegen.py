"""Building whole programs: the operator corpus, hand-transformed loops, symbolic shapes, errors, cache."""

import numpy as np
import pytest

import workbench as wb
from workbench.backend import cache
from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var, IRModule

from backend_helpers import elementwise, matmul_loops


def _corpus():
    op_library = pytest.importorskip("workbench.ir.op_library")
    return op_library.corpus()


def test_operator_corpus_unscheduled_matches_numpy():
    cases = _corpus()
    assert len(cases) > 10
    rng = np.random.default_rng(0)
    for case in cases:
        f = wb.build(case.func, target="llvm")
        case.check(lambda func, *arrays: f(*arrays), rng)


@pytest.mark.parametrize("transform", ["naive", "split_vec_par", "split_tail"])
def test_hand_transformed_matmul(transform, rng):
    n, m, k = (16, 24, 9) if transform != "split_tail" else (5, 13, 7)
    f = wb.build(matmul_loops(n, m, k, transform), target="llvm")
    a = rng.random((n, k), dtype=np.float32)
    b = rng.random((k, m), dtype=np.float32)
    c = np.full((n, m), np.nan, np.float32)
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    if transform == "split_vec_par":
        ll = f.source("ll")
        assert "<8 x float>" in ll  # the vectorized loop became vector instructions
        assert "_par0" in ll  # the parallel loop was outlined


def test_tiled_matmul_program_from_benchmark(rng):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "matmul_cpu.py"
    spec = importlib.util.spec_from_file_location("matmul_cpu_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    n = 48
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    for cfg in (dict(mr=4, nr=16, lanes=8, mc=16), dict(mr=6, nr=16, lanes=8, mc=24)):
        c = np.zeros((n, n), np.float32)
        wb.build(mod.tiled_matmul(n, **cfg))(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-4)
    c = np.zeros((n, n), np.float32)
    wb.build(mod.naive_matmul(n))(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)


def _symbolic_add():
    n = Var("n")
    A, B = Buffer("A", (n, 3), "float32"), Buffer("B", (n, 3), "float32")
    a, b, i, j = Var("a", "handle"), Var("b", "handle"), Var("i"), Var("j")
    body = For(i, 0, n, "parallel", For(j, 0, 3, "serial", BufferStore(B, A[i, j] + 1.0, [i, j])))
    return PrimFunc([a, b], {a: A, b: B}, body, {"global_symbol": "add1"})


def test_symbolic_shape_three_sizes(rng):
    f = wb.build(_symbolic_add())
    for n in (1, 7, 1000):
        x = rng.random((n, 3), dtype=np.float32)
        y = np.zeros_like(x)
        f(x, y)
        np.testing.assert_array_equal(y, x + 1)


def test_bad_calls_raise_clear_errors_before_running():
    f = wb.build(_symbolic_add())
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(TypeError, match=r"takes 2 argument\(s\) \(A, B\) but got 1"):
        f(x)
    with pytest.raises(TypeError, match="dtype float64 but the buffer is float32"):
        f(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"inconsistent size n: A.shape\[0\] = 4 but B.shape\[0\] = 5"):
        f(x, np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"B.shape\[1\] must be 3, got 4"):
        f(x, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="has 1 dimension.* but the buffer has 2"):
        f(x, np.zeros(12, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        f(x, np.zeros((3, 4), np.float32).T)
    with pytest.raises(TypeError, match="must be a numpy array"):
        f(x, [[0.0] * 3] * 4)
    ro = np.zeros((4, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        f(x, ro)
    f(ro, np.zeros((4, 3), np.float32))  # a read-only input is fine


def test_checks_raise_index_error_naming_buffer_and_index():
    n = 8
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    a, b, i = Var("a", "handle"), Var("b", "handle"), Var("i")
    f = PrimFunc([a, b], {a: A, b: B}, For(i, 0, n, "serial", BufferStore(B, A[i + 1], [i])))
    built = wb.build(f, checks=True)
    with pytest.raises(IndexError, match="buffer A: index 8 is outside dimension 0 of extent 8"):
        built(np.zeros(n, np.float32), np.zeros(n, np.float32))
    # the same loop in parallel and vectorized form is checked too
    for kind in ("parallel", "vectorized"):
        g = PrimFunc([a, b], {a: A, b: B}, For(i, 0, n, kind, BufferStore(B, A[i], [i + 2])))
        with pytest.raises(IndexError, match="buffer B"):
            wb.build(g, checks=True)(np.zeros(n, np.float32), np.zeros(n, np.float32))


def test_compile_cache_counts_compiles():
    func = elementwise(lambda x: x * 3.0, ["float32"], "float32", 11, name="triple")
    before = cache.stats()["compiles"]
    f1 = wb.build(func)
    f2 = wb.build(func)
    same = elementwise(lambda x: x * 3.0, ["float32"], "float32", 11, name="triple")  # rebuilt, equal
    f3 = wb.build(same)
    assert cache.stats()["compiles"] == before + 1
    assert f1 is not f2 and f2.source("ll") == f1.source("ll") == f3.source("ll")   # one compile, own objects
    wb.build(func, target="llvm -opt-level=2")
    wb.build(func, checks=True)
    wb.build(func, cache=False)
    assert cache.stats()["compiles"] == before + 4


def test_module_with_several_functions_and_sources():
    f1 = elementwise(lambda x: x + 1.0, ["float32"], "float32", 8, name="inc")
    f2 = elementwise(lambda x: x * 2.0, ["float32"], "float32", 8, name="dbl")
    m = wb.build(IRModule({"inc": f1, "dbl": f2}))
    x, y = np.arange(8, dtype=np.float32), np.zeros(8, np.float32)
    m["inc"](x, y)
    np.testing.assert_array_equal(y, x + 1)
    m.dbl(x, y)
    np.testing.assert_array_equal(y, x * 2)
    assert m["inc"].entry_name == "inc"
    ll = m.source("ll")
    assert "define" in ll and "@inc" in ll and "@dbl" in ll
    assert ".text" in m.source("asm") or "inc:" in m.source("asm")
    lowered = m["dbl"].source("lowered")
    assert "Y[i] = X0[i] * " in lowered
    with pytest.raises(KeyError, match="no function 'nope'"):
        m["nope"]
    with pytest.raises(TypeError, match="call one by name"):
        m(x, y)


def test_build_accepts_objects_with_mod(rng):
    class FakeSchedule:
        def __init__(self, mod):
            self.mod = mod

    f = elementwise(lambda x: x - 1.0, ["float32"], "float32", 5, name="dec")
    built = wb.build(FakeSchedule(IRModule({"dec": f})))
    x, y = rng.random(5, dtype=np.float32), np.zeros(5, np.float32)
    built(x, y)
    np.testing.assert_allclose(y, x - 1)
    with pytest.raises(TypeError, match="PrimFunc, an IRModule or a Schedule"):
        wb.build(42)


def test_parallel_runs_on_threads_and_thread_count_is_configurable(rng):
    from workbench.backend import get_num_threads, set_num_threads
    from workbench.backend.llvm import runtime

    f = wb.build(matmul_loops(32, 16, 8, "split_vec_par"))
    a, b = rng.random((32, 8), dtype=np.float32), rng.random((8, 16), dtype=np.float32)
    old = get_num_threads()
    try:
        for n in (1, 3):
            set_num_threads(n)
            c = np.zeros((32, 16), np.float32)
            f(a, b, c)
            np.testing.assert_allclose(c, a @ b, rtol=1e-5)
        with pytest.raises(ValueError, match="positive integer"):
            set_num_threads(0)
    finally:
        set_num_threads(old)
    assert runtime.chunks(10, 3) == [(0, 4), (4, 7), (7, 10)]


def test_allocations_stack_and_heap(rng):
    from workbench.ir import Allocate, seq

    for size in (64, 40000):  # 256 B on the stack, 160 KB on the heap
        X, Y = Buffer("X", (size,), "float32"), Buffer("Y", (size,), "float32")
        T = Buffer("T", (size,), "float32")
        x, y, i = Var("x", "handle"), Var("y", "handle"), Var("i")
        body = Allocate(T, seq(For(i, 0, size, "vectorized", BufferStore(T, X[i] * 2.0, [i])),
                               For(i, 0, size, "parallel", BufferStore(Y, T[i] + 1.0, [i]))))
        f = wb.build(PrimFunc([x, y], {x: X, y: Y}, body))
        a = rng.random(size, dtype=np.float32)
        out = np.zeros(size, np.float32)
        f(a, out)
        np.testing.assert_allclose(out, a * 2 + 1)
        ll = f.source("ll-raw")
        assert ("aligned_alloc" in ll) == (size == 40000)
        assert "align 64" in ll or size == 40000
