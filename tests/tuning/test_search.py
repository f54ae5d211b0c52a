"""The tuner's search side: rule-generated and user spaces, mutation, dedup, reproducible search."""
import dataclasses
import random

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir import op_library
from workbench.ir.interpreter import evaluate
from workbench.ir.structural import structural_equal
from workbench.schedule.trace import Trace
from workbench.tuning.features import FEATURE_NAMES, extract_features
from workbench.tuning.measure import MeasureResult
from workbench.tuning.rules import RuleContext, apply_rules
from workbench.tuning.search import EvolutionarySearch, run_search
from workbench.tuning.space import RuleSpace, ScheduleFnSpace, mutate, program_key

AVX2, AVX512 = "llvm -mcpu=znver3", "llvm -mcpu=skylake-avx512"


def small_evolution():
    """An evolutionary search with small pools, so tests stay fast."""
    return EvolutionarySearch(population=4, mutants=8, fresh=4)


class FakeRunner:
    """Measures nothing: a time derived from the program's structural hash, deterministic."""

    def __init__(self):
        self.calls = 0
        self.keys = []

    def run(self, inputs):
        out = []
        for inp in inputs:
            self.calls += 1
            key = program_key(inp.func)
            self.keys.append(key)
            out.append(MeasureResult(True, 1e-4 * (1 + int(key, 16) % 97), None, 0.0))
        return out


def matmul(n, dtype="float32", acc="float32"):
    A = te.placeholder((n, n), dtype, name="A")
    B = te.placeholder((n, n), "int8" if dtype == "uint8" else dtype, name="B")
    k = te.reduce_axis(n, name="k")
    if dtype == acc:
        C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    else:
        C = te.compute((n, n), lambda i, j: te.sum(te.cast(A[i, k], acc) * te.cast(B[k, j], acc), axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def _check_matmul(func, n, target, dtype="float32"):
    rng = np.random.default_rng(0)
    if dtype == "float32":
        a, b = rng.random((n, n), dtype="float32"), rng.random((n, n), dtype="float32")
        c, want = np.zeros((n, n), "float32"), a @ b
    else:
        a, b = rng.integers(0, 256, (n, n)).astype("uint8"), rng.integers(-128, 128, (n, n)).astype("int8")
        c, want = np.zeros((n, n), "int32"), a.astype("int32") @ b.astype("int32")
    wb.build(func, target=target)(a, b, c)
    np.testing.assert_allclose(c, want, rtol=1e-4)


@pytest.mark.parametrize("target,lanes", [(AVX2, 8), (AVX512, 16)])
def test_matmul_rule_tiles_with_vector_width_of_target(target, lanes):
    space = RuleSpace(target)
    for seed in range(3):
        cand = space.sample(matmul(64), seed)
        assert cand.sketch["applied"] == ["multi_level_tiling:C"]
        vec = [f for f in _loops(cand.func) if f.kind.name == "VECTORIZED" and "j" in f.loop_var.name]
        assert vec and all(f.extent.value == lanes for f in vec)
        text = str(cand.trace)
        assert "cache_write" in text and "reverse_compute_at" in text and "parallel" in text
        if cand.sketch["choices"]["C.pack_b"]:
            assert "transform_layout" in text
        if target == AVX2 or wb.Target("llvm").has("avx512f"):
            _check_matmul(cand.func, 64, target)


def _loops(func):
    from workbench.schedule.tree import Index

    return [f for f, _ in Index(func).loops.values()]


def test_int8_matmul_tensorized_with_vnni_on_avx512_only():
    cand = RuleSpace("llvm -mcpu=sapphirerapids").sample(matmul(64, "uint8", "int32"), 0)
    assert "tensorize:dot_u8s8_vnni" in cand.sketch["applied"]
    # AVX2's int8 dot saturates: the rules never use it, the loops are vectorized instead
    cand2 = RuleSpace(AVX2).sample(matmul(64, "uint8", "int32"), 0)
    assert not any(a.startswith("tensorize") for a in cand2.sketch["applied"])
    _check_matmul(cand2.func, 64, AVX2, "uint8")
    if wb.Target("llvm").has("avx512vnni"):
        _check_matmul(cand.func, 64, "llvm", "uint8")


CORPUS = ["matmul", "conv2d", "relu", "add", "sum", "softmax", "layer_norm", "max_pool2d"]


@pytest.mark.parametrize("name", CORPUS)
def test_rule_space_candidates_compute_what_numpy_does(name):
    case = op_library.OPS[name]()
    space = RuleSpace(AVX2)
    for seed in range(2):
        cand = space.sample(case.func, seed)
        assert cand.sketch["applied"], "no rule applied"
        scheduled = dataclasses.replace(case, func=cand.func)
        scheduled.check(lambda f, *a: evaluate(f, *a))
        # the trace is data: read back, it replays to the same program
        again = Trace.from_json(cand.trace.to_json()).apply(case.func)
        assert structural_equal(again.func, cand.func)


def test_rule_space_is_reproducible_and_seeds_differ():
    space = RuleSpace(AVX2)
    f = matmul(64)
    a, b = space.sample(f, 5), space.sample(f, 5)
    assert a.trace.to_json() == b.trace.to_json() and a.key == b.key
    assert len({space.sample(f, s).key for s in range(6)}) > 1


def test_rule_context_records_applied_rules():
    sch = wb.Schedule(op_library.OPS["conv2d"]().func, seed=0)
    ctx = RuleContext(AVX2, seed=0)
    apply_rules(sch, ctx)
    assert ctx.applied == ["auto_inline:conv2d_pad", "multi_level_tiling:conv2d"]


def test_user_schedule_function_space():
    A = te.placeholder((64,), "float32", name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    f = wb.create_prim_func([A, B])

    def schedule(sch):
        (i,) = sch.get_loops(sch.get_block("B"))
        io, ii = sch.split(i, factors=sch.sample_perfect_tile(i, n=2, max_innermost_factor=16))
        v = sch.sample_categorical([1, 2], [0.5, 0.5])
        sch.vectorize(ii) if v == 1 else sch.parallel(io)

    space = ScheduleFnSpace(schedule)
    keys = set()
    for seed in range(8):
        cand = space.sample(f, seed)
        assert set(cand.decisions) == {2, 4}   # sample_perfect_tile, sample_categorical
        x = np.arange(64, dtype="float32")
        y = np.zeros(64, "float32")
        evaluate(cand.func, x, y)
        np.testing.assert_array_equal(y, 2 * x)
        keys.add(cand.key)
    assert len(keys) > 2
    with pytest.raises(TypeError, match="fn\\(sch\\)"):
        ScheduleFnSpace(42)


def test_mutation_changes_one_decision_and_replays():
    f = matmul(64)
    cand = RuleSpace(AVX2).sample(f, 0)
    rng = random.Random(0)
    for _ in range(5):
        child = mutate(cand, f, rng)
        assert child is not None
        changed = [k for k in cand.decisions if child.decisions[k] != cand.decisions[k]]
        assert len(changed) == 1
        assert child.sketch == cand.sketch
        _check_matmul(child.func, 64, AVX2)


def test_features_have_fixed_length_and_see_vectorization():
    f = matmul(64)
    cand = RuleSpace(AVX2).sample(f, 0)
    naive, tuned = extract_features(f), extract_features(cand.func)
    assert naive.shape == tuned.shape == (len(FEATURE_NAMES),)
    k = FEATURE_NAMES.index("inner_is_vectorized")
    assert naive[k] == 0 and tuned[k] == 1


@pytest.mark.parametrize("strategy", [small_evolution, lambda: "replay"])
def test_search_is_reproducible_with_a_fixed_seed(strategy):
    f = matmul(64)

    def traces(seed):
        out = run_search(f, AVX2, runner=FakeRunner(), trials=20, seed=seed, strategy=strategy(), batch_size=5)
        return [m.candidate.trace.to_json() for m in out]

    first = traces(1)
    assert len(first) == 20
    assert traces(1) == first
    assert traces(2) != first


def test_search_measures_no_program_twice():
    runner = FakeRunner()
    out = run_search(matmul(64), AVX2, runner=runner, trials=24, seed=0, batch_size=8, strategy=small_evolution())
    assert runner.calls == len(out) == 24
    assert len(set(runner.keys)) == 24


def test_search_stops_when_the_space_is_exhausted():
    A = te.placeholder((4,), "float32", name="A")
    B = te.compute((4,), lambda i: A[i] * 2.0, name="B")
    runner = FakeRunner()
    out = run_search(wb.create_prim_func([A, B]), AVX2, runner=runner, trials=50, seed=0, strategy="replay")
    assert 1 <= len(out) == runner.calls < 50   # only a handful of distinct programs exist


def test_search_goes_on_past_failed_candidates():
    class HalfFailing(FakeRunner):
        def run(self, inputs):
            res = super().run(inputs)
            return [r if k % 2 else MeasureResult(False, None, "crash: signal 11", 0.0) for k, r in enumerate(res)]

    out = run_search(matmul(64), AVX2, runner=HalfFailing(), trials=12, seed=0, batch_size=4,
                     strategy=small_evolution())
    assert len(out) == 12 and sum(m.ok for m in out) == 6
    assert all(m.gflops is None for m in out if not m.ok)


def test_search_needs_a_budget():
    with pytest.raises(ValueError, match="trials="):
        run_search(matmul(16), AVX2, runner=FakeRunner())
    with pytest.raises(ValueError, match="unknown search strategy 'best'"):
        run_search(matmul(16), AVX2, runner=FakeRunner(), trials=1, strategy="best")


def test_wb_tune_result_with_a_fake_runner(tmp_path):
    f = matmul(64)
    result = wb.tune(f, target=AVX2, trials=8, runner=FakeRunner(), progress=False, database=tmp_path / "db.jsonl",
                     strategy=small_evolution())
    t = result.table
    assert len(t) == 8 and list(t["trial"]) == list(range(8))
    assert t["best_gflops"].is_monotonic_increasing
    best = result.best
    assert best.gflops == t["gflops"].max()
    assert structural_equal(best.schedule.func, best.trace.apply(f).func)
    _check_matmul(best.schedule.func, 64, AVX2)
    ax = result.plot()
    assert ax.get_ylabel() == "GFLOP/s"
    import matplotlib.pyplot as plt

    plt.close("all")
