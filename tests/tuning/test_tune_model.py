"""wb.tune of a whole model: every distinct kernel tuned, the budget shared by time, the records replayed
into the model's build (workbench/tuning/tune_model.py)."""
from collections import Counter

import numpy as np
import pytest

import workbench as wb
from workbench.frontend.model import compile_module
from workbench.ir.function import IRModule
from workbench.tuning.database import Database
from workbench.tuning.measure import LocalRunner, MeasureResult
from workbench.tuning.space import program_key
from workbench.tuning.tune_model import (KernelTask, ModelTuneError, ModelTuneResult, default_candidate,
                                         model_kernels, share_budget)

AVX2 = "llvm -mcpu=znver3"


class FakeRunner:
    """Measures nothing: a time from the program's structural hash (deterministic); keeps every input."""

    def __init__(self):
        self.inputs = []

    def run(self, inputs):
        self.inputs += inputs
        return [MeasureResult(True, 1e-5 * (1 + int(program_key(i.func), 16) % 97), None, 0.0) for i in inputs]

    def per_kernel(self) -> Counter:
        return Counter(i.reference.name for i in self.inputs)


def mlp(repeat_layer: bool = False) -> IRModule:
    """x[n, 16] -> linear + gelu -> linear (+ gelu again with the same shapes) -> softmax, symbolic n."""
    x = wb.graph.Var("x", wb.Tensor(("n", 16), "float32"))
    w1 = wb.graph.Var("w1", wb.Tensor((32, 16), "float32"))
    b1 = wb.graph.Var("b1", wb.Tensor((32,), "float32"))
    w2 = wb.graph.Var("w2", wb.Tensor((16, 32), "float32"))
    b2 = wb.graph.Var("b2", wb.Tensor((16,), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, w1, b1, w2, b2]):
        with bb.dataflow():
            h = bb.emit(wb.op.gelu(wb.op.linear(x, w1, b1)))
            y = bb.emit(wb.op.linear(h, w2, b2))
            if repeat_layer:
                h = bb.emit(wb.op.gelu(wb.op.linear(y, w1, b1)))
                y = bb.emit(wb.op.linear(h, w2, b2))
            z = bb.emit(wb.op.softmax(y, axis=-1))
            gv = bb.emit_output(z)
        bb.emit_func_output(gv)
    return bb.get()


def arrays(n=8):
    rng = np.random.default_rng(0)
    shapes = [(n, 16), (32, 16), (32,), (16, 32), (16,)]
    return tuple(rng.uniform(-1, 1, s).astype("float32") for s in shapes)


def numpy_mlp(x, w1, b1, w2, b2, repeat_layer=False):
    from scipy.special import erf

    def layer(v):
        h = v @ w1.T + b1
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        return h @ w2.T + b2

    y = layer(layer(x)) if repeat_layer else layer(x)
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def tuned():
    runner = FakeRunner()
    # min_share=0: every kernel is tuned however the profile's timings fall on a loaded machine
    result = wb.tune(mlp(), AVX2, inputs=arrays(), trials=20, runner=runner, progress=False, min_share=0.0)
    return result, runner


def test_budget_split_follows_the_shares(tuned):
    result, runner = tuned
    t = result.table
    assert isinstance(result, ModelTuneResult)
    assert list(t.columns) == ["kernel", "share", "trials", "default_ms", "tuned_ms", "speedup"]
    assert t["trials"].sum() == 20 and (t["trials"] >= 4).all()
    assert t["share"].is_monotonic_decreasing and t["trials"].is_monotonic_decreasing
    # the runner got at most each kernel's trials (the default schedule is one of them; a search stops
    # early when the space has nothing new: the rules cannot tile these symbolic kernels much)
    given = dict(zip(t["kernel"], t["trials"]))
    assert set(runner.per_kernel()) == set(given)
    assert all(2 <= n <= given[k] for k, n in runner.per_kernel().items())
    # symbolic kernels measured at the example's n, their programs still symbolic
    assert all(i.sizes == {"n": 8} for i in runner.inputs)
    assert all(any(not isinstance(d, int) and getattr(d, "name", None) == "n"
                   for p in i.func.params for d in i.func.buffer_map[p].shape) for i in runner.inputs)


def test_records_replay_into_the_model_build_and_match_numpy(tuned):
    result, _ = tuned
    kernels = set(result.table["kernel"])
    assert result.tuned_kernels == kernels
    compiled = compile_module(mlp(), AVX2, database=result.database)
    assert {n for n, f in compiled.prim_funcs.items() if f.attrs.get("tuned")} == kernels
    for name, best in result.best.items():   # the build holds exactly the best record's program
        assert program_key(compiled[name]) == program_key(best.schedule.func.with_attr("tuned", True))
    args = arrays(5)   # another n than the example's: the tuned kernels stay symbolic
    out = result.vm["main"](*args)
    np.testing.assert_allclose(out, numpy_mlp(*args), rtol=1e-4, atol=1e-5)
    assert result.before_ms > 0 and result.after_ms > 0
    text = repr(result)
    assert "fused_linear_gelu" in text and "speedup" in text and "n=8" in text


def test_the_default_schedule_is_measured_first_and_is_never_beaten_by_a_slower_best(tuned):
    result, runner = tuned
    for name, r in result.results.items():
        default = default_candidate(r.func, AVX2)
        assert r.measured[0].key == default.key
        assert result.best[name].seconds <= r.measured[0].seconds
    t = result.table
    assert (t["speedup"] >= 1).all()


def test_identical_kernels_are_tuned_once():
    mod = mlp(repeat_layer=True)   # the second layer's kernels equal the first's
    runner = FakeRunner()
    result = wb.tune(mod, AVX2, inputs=arrays(), trials=12, runner=runner, progress=False, min_share=0.0)
    assert len(result.tasks) == 3
    assert {t.name: t.calls for t in result.tasks}["fused_linear_gelu"] == 2
    assert set(runner.per_kernel()) == {t.name for t in result.tasks} and sum(runner.per_kernel().values()) <= 12
    out = result.vm["main"](*arrays(3))
    np.testing.assert_allclose(out, numpy_mlp(*arrays(3), repeat_layer=True), rtol=1e-4, atol=1e-5)


def test_kernels_with_the_same_workload_under_two_names_are_one_task():
    kernels = model_kernels(mlp())
    name = "fused_linear_gelu"
    prof = {"kernel": [name, "twin", "softmax"], "share": [0.3, 0.3, 0.4], "calls": [1, 1, 1]}
    import pandas as pd

    mod = IRModule({**kernels.functions, "twin": kernels[name]})
    from workbench.tuning.tune_model import kernel_tasks

    tasks = kernel_tasks(mod, pd.DataFrame(prof))
    twin = next(t for t in tasks if name in t.names)
    assert twin.names == (name, "twin") and twin.share == pytest.approx(0.6) and twin.calls == 2
    assert tasks[0] is twin   # largest share first


def _tasks(*shares):
    return [KernelTask(f"k{i}", (f"k{i}",), None, s, 1) for i, s in enumerate(shares)]


def test_share_budget_rule():
    tasks = _tasks(0.6, 0.3, 0.095, 0.005)
    share_budget(tasks, 100, None)
    # < 1% gets nothing; 4 each, the other 88 by share of the tuned kernels (0.995): 53.07, 26.53, 8.40,
    # the one left over to the largest remainder
    assert [t.trials for t in tasks] == [57, 31, 12, 0]
    assert sum(t.trials for t in tasks) == 100
    share_budget(tasks, 9, None)   # room for min_trials twice only: the smallest shares go
    assert [t.trials for t in tasks] == [5, 4, 0, 0]
    share_budget(tasks, None, 60.0)
    assert [t.time_budget for t in tasks[:3]] == pytest.approx([60 * s / 0.995 for s in (0.6, 0.3, 0.095)])
    assert tasks[3].time_budget is None and all(t.trials == 0 for t in tasks)


def test_trials_zero_builds_from_the_database_only(tuned, tmp_path):
    result, _ = tuned
    again = wb.tune(mlp(), AVX2, inputs=arrays(), trials=0, runner=FakeRunner(), database=result.database,
                    progress=False)
    assert (again.table["trials"] == 0).all()
    assert again.tuned_kernels == result.tuned_kernels


def test_a_real_runner_measures_a_symbolic_kernel_at_the_example_sizes(tmp_path):
    path = tmp_path / "model.jsonl"
    with LocalRunner(timeout=60, min_time=0.001, warmup=0.0, max_time=0.05) as runner:
        result = wb.tune(mlp(), AVX2, inputs=arrays(), trials=3, runner=runner, progress=False, database=path,
                         strategy="replay", min_trials=1, min_share=0.0)
    t = result.table
    assert t["trials"].sum() == 3 and t["default_ms"].notna().all() and t["tuned_ms"].notna().all()
    assert len(Database(path)) == 3
    compiled = compile_module(mlp(), AVX2, database=str(path))   # the file replays as the in-memory one did
    assert {n for n, f in compiled.prim_funcs.items() if f.attrs.get("tuned")} == set(t["kernel"])


def test_bad_input_gives_a_clear_error():
    with pytest.raises(ModelTuneError, match=r"needs example inputs: its sizes n are symbolic.*x, w1, b1, w2, b2"):
        wb.tune(mlp(), AVX2, trials=4, runner=FakeRunner(), progress=False)
    with pytest.raises(ModelTuneError, match=r"main\(\) takes 5 input\(s\) \(x, w1, b1, w2, b2\) but inputs has 2"):
        wb.tune(mlp(), AVX2, inputs=arrays()[:2], trials=4, runner=FakeRunner(), progress=False)
    with pytest.raises(ModelTuneError, match="inputs must be a tuple of arrays"):
        wb.tune(mlp(), AVX2, inputs=arrays()[0], trials=4, runner=FakeRunner(), progress=False)
    with pytest.raises(TypeError, match="wb.tune needs a PrimFunc, an IRModule, a Schedule or a model.*got dict"):
        wb.tune({"main": 1}, AVX2, trials=4)
    with pytest.raises(TypeError, match="inputs is for whole models"):
        wb.tune(model_kernels(mlp())["softmax"], AVX2, inputs=arrays(), trials=4)
    with pytest.raises(ValueError, match="min_share must be a fraction"):
        wb.tune(mlp(), AVX2, inputs=arrays(), trials=4, min_share=2.0)


def test_measure_input_sizes_must_be_names_to_ints():
    f = model_kernels(mlp())["softmax"]
    from workbench.tuning.measure import MeasureInput

    with LocalRunner() as runner:
        with pytest.raises(ValueError, match=r"sizes must map size names to ints >= 0, got 'n': -1"):
            runner.run([MeasureInput(f, AVX2, "", reference=f, sizes={"n": -1})])
        with pytest.raises(TypeError, match="sizes must map size names to ints"):
            runner.run([MeasureInput(f, AVX2, "", reference=f, sizes=[("n", 4)])])
