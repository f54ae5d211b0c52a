"""Buffer compaction in lowering: allocations move next to their uses and shrink to the region used.

Every result is checked against numpy; the allocated shapes are checked on the lowered program.
"""
import numpy as np
import pytest

import workbench as wb
from workbench.backend.lower import compact_buffers, lower, lower_blocks
from workbench.ir import Allocate, Buffer, BufferStore, For, IfThenElse, PrimFunc, Var, seq
from workbench.ir.functor import Visitor
from workbench.ir.stmt import ForKind

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


def _allocs(func):
    """[(buffer, [kinds of the loops above the Allocate])] in program order."""
    out = []

    class V(Visitor):
        def __init__(self):
            self.loops = []

        def visit_For(self, s):
            self.loops.append(s.kind)
            self.generic_visit(s)
            self.loops.pop()

        def visit_Allocate(self, a):
            out.append((a.buffer, list(self.loops)))
            self.generic_visit(a)

    V().visit(func.body)
    return out


def _shape(buf):
    return tuple(int(d.value) for d in buf.shape)


def _stage(func, name):
    return dict(lower(func, stages=True))[name]


def _run_built(func, *arrays):
    wb.build(func, target="llvm")(*arrays)


# -- the tutorial's register tile -------------------------------------------------------------

def test_register_tile_accumulator_is_a_small_tile_inside_the_parallel_loop():
    from workbench.demo import matmul_schedules, tile_sizes

    mr, nr, _ = tile_sizes()
    sch = matmul_schedules(128)["register tile"]
    compacted = _stage(sch.func, "compact_buffers")
    (buf, loops), = [(b, ls) for b, ls in _allocs(compacted) if b.name == "C_local"]
    assert _shape(buf) == (mr, nr)                  # was (128, 128)
    assert buf.scope == "local"
    assert loops[0] == ForKind.PARALLEL and len(loops) == 2   # inside the row-tile and column-tile loops
    low = lower(sch.func)
    assert low.attrs["storage"]["C_local"] == "stack"
    assert low.attrs["compacted"]["C_local"] == (mr, nr)
    (flat, _), = [(b, ls) for b, ls in _allocs(low) if b.name == "C_local"]
    assert _shape(flat) == (mr * nr,)


@pytest.mark.parametrize("n", [64, 128])
def test_every_demo_step_still_matches_numpy(n, rng):
    from workbench.demo import matmul_schedules

    steps = matmul_schedules(n)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    for name, step in steps.items():
        c = np.full((n, n), np.nan, np.float32)
        _run_built(step.mod if hasattr(step, "mod") else step, a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-4, err_msg=f"demo step {name!r}")


def test_packed_b_keeps_its_full_panel_buffer_and_compacts_the_tile(rng):
    from workbench.demo import matmul_schedules, tile_sizes

    mr, nr, _ = tile_sizes()
    n = 64
    sch = matmul_schedules(n)["packed B"]
    shapes = {b.name: (_shape(b), ls) for b, ls in _allocs(_stage(sch.func, "compact_buffers"))}
    assert shapes["C_local"][0] == (mr, nr)
    # the packed copy of B is written by one parallel loop nest and read by another: it stays whole
    assert shapes["B_global"][0] == (n // nr, n, nr) and shapes["B_global"][1] == []


# -- where compaction must not happen ------------------------------------------------------------

def test_buffer_used_across_the_whole_domain_keeps_its_shape():
    from tests.schedule.programs import two_stage, two_stage_ref

    compacted = _stage(two_stage, "compact_buffers")
    (buf, loops), = _allocs(compacted)
    assert buf.name == "B" and _shape(buf) == (32, 32) and loops == []
    a = np.random.default_rng(0).standard_normal((32, 32)).astype("float32")
    c = np.empty_like(a)
    _run_built(two_stage, a, c)
    np.testing.assert_allclose(c, two_stage_ref(a), rtol=1e-6)


def test_compute_at_shrinks_the_producer_to_one_row():
    from tests.schedule.programs import two_stage, two_stage_ref

    sch = wb.Schedule(two_stage)
    i, _ = sch.get_loops(sch.get_block("C"))
    sch.compute_at(sch.get_block("B"), i)
    (buf, loops), = _allocs(_stage(sch.func, "compact_buffers"))
    assert _shape(buf) == (1, 32) and len(loops) == 1
    a = np.random.default_rng(1).standard_normal((32, 32)).astype("float32")
    c = np.empty_like(a)
    _run_built(sch.mod, a, c)
    np.testing.assert_allclose(c, two_stage_ref(a), rtol=1e-6)


def _carried():
    """``T[i] = 2 A[i]; B[i] = T[i] + T[i - 1]``: T's values flow from one iteration to the next."""
    n = 8
    a, b = Var("a", "handle"), Var("b", "handle")
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    T = Buffer("T", (n,), "float32")
    i = Var("i")
    body = For(i, 0, n, "serial", seq(
        BufferStore(T, A[i] * 2.0, [i]),
        IfThenElse(i > 0, BufferStore(B, T[i] + T[i - 1], [i]), BufferStore(B, T[i], [i]))))
    return PrimFunc([a, b], {a: A, b: B}, Allocate(T, body), {"global_symbol": "carried"})


def test_values_carried_across_iterations_keep_the_allocation_outside_the_loop():
    f = _carried()
    out = compact_buffers(f)
    (buf, loops), = _allocs(out)
    assert _shape(buf) == (8,) and loops == []     # moving it into the loop would lose T[i - 1]
    x = np.arange(8, dtype=np.float32)
    y = np.empty_like(x)
    _run_built(f, x, y)
    expect = 2 * x
    expect[1:] += 2 * x[:-1]
    np.testing.assert_allclose(y, expect)


def test_strided_buffer_and_data_dependent_index_are_left_alone():
    n = 8
    a, b = Var("a", "handle"), Var("b", "handle")
    A, B = Buffer("A", (n,), "int32"), Buffer("B", (n,), "float32")
    T = Buffer("T", (n,), "float32")
    i, j = Var("i"), Var("j")
    body = For(i, 0, n, "serial", seq(
        For(j, 0, n, "serial", BufferStore(T, 1.0, [j])),
        BufferStore(B, T[A[i]], [i])))          # which element is read depends on the data
    f = PrimFunc([a, b], {a: A, b: B}, Allocate(T, body), {"global_symbol": "gather"})
    (buf, loops), = _allocs(compact_buffers(f))
    assert _shape(buf) == (8,)
    idx = np.array([7, 0, 3, 3, 1, 6, 2, 5], np.int32)
    y = np.zeros(8, np.float32)
    _run_built(f, idx, y)
    np.testing.assert_array_equal(y, np.ones(8, np.float32))


def test_compaction_returns_the_same_function_when_nothing_changes():
    from tests.schedule.programs import matmul

    f = lower_blocks(matmul)
    assert compact_buffers(f) is f


# -- the te corpus under cache/compute-location schedules -------------------------------------

CASES = wb.ir.op_library.corpus()


def _schedule(case, recipe: str, depth: int):
    sch = wb.Schedule(case.func)
    names = [n for n in sch.index().order if n != "root"]
    b = sch.get_block(names[-1])
    if recipe == "cache_write":
        c = sch.cache_write(b, 0, "local")
        loops = sch.get_loops(b)
        sch.reverse_compute_at(c, loops[min(depth, len(loops) - 1)])
    elif recipe == "cache_read":
        c = sch.cache_read(b, 0, "shared")
        loops = sch.get_loops(b)
        sch.compute_at(c, loops[min(depth, len(loops) - 1)])
    return sch


@pytest.mark.parametrize("recipe", ["cache_write", "cache_read"])
def test_corpus_under_cache_and_compute_at_matches_numpy(recipe):
    rng = np.random.default_rng(0)
    shrunk = 0
    for case in CASES:
        for depth in (0, 1):
            try:
                sch = _schedule(case, recipe, depth)
            except wb.ScheduleError:
                continue
            shrunk += bool(lower(sch.func).attrs.get("compacted"))
            f = wb.build(sch.mod, target="llvm")
            case.check(lambda func, *arrays: f(*arrays), rng)
    assert shrunk >= 10   # the schedules do exercise compaction


_MOVES = ["split", "reorder", "compute_at", "reverse_compute_at", "cache_read", "cache_write",
          "decompose_reduction", "parallel", "unroll"]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(case_index=st.integers(0, len(CASES) - 1), data=st.data())
def test_random_cache_schedules_build_and_match_numpy(case_index, data):
    case = CASES[case_index]
    sch = wb.Schedule(case.func, seed=0)
    for _ in range(data.draw(st.integers(1, 4), label="steps")):
        names = [n for n in sch.index().order if n != "root"]
        b = sch.get_block(data.draw(st.sampled_from(names), label="block"))
        loops = sch.get_loops(b)
        move = data.draw(st.sampled_from(_MOVES), label="move")
        pick = lambda xs, label: data.draw(st.sampled_from(xs), label=label)  # noqa: E731
        try:
            if move == "split" and loops:
                sch.split(pick(loops, "loop"), factors=[None, pick([2, 3, 4], "factor")])
            elif move == "reorder" and len(loops) >= 2:
                sch.reorder(*data.draw(st.permutations(loops), label="perm"))
            elif move in ("compute_at", "reverse_compute_at"):
                other = sch.get_block(pick(names, "other"))
                if sch.get_loops(other):
                    getattr(sch, move)(b, pick(sch.get_loops(other), "loop"))
            elif move == "cache_read" and sch.get(b).reads:
                sch.cache_read(b, data.draw(st.integers(0, len(sch.get(b).reads) - 1), label="idx"),
                               pick(["local", "shared", "global"], "scope"))
            elif move == "cache_write":
                sch.cache_write(b, 0, pick(["local", "shared", "global"], "scope"))
            elif move == "decompose_reduction" and loops:
                sch.decompose_reduction(b, pick(loops, "loop"))
            elif move in ("parallel", "unroll") and loops:
                getattr(sch, move)(pick(loops, "loop"))
        except wb.ScheduleError:
            pass
    f = wb.build(sch.mod, target="llvm")
    case.check(lambda func, *arrays: f(*arrays), np.random.default_rng(2))
