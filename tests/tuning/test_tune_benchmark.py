"""benchmarks/tune_matmul.py runs (a smoke run, so it cannot rot), and what running it for real found:
the search ranked integer programs (0 FLOPs) all alike."""
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

import workbench as wb
from workbench import te
from workbench.tuning.cost_model import CostModel
from workbench.tuning.measure import MeasureResult
from workbench.tuning.search import EvolutionarySearch, SearchState, _learn, _measured
from workbench.tuning.space import RuleSpace

ROOT = Path(__file__).resolve().parents[2]
AVX512 = "llvm -mcpu=skylake-avx512"


def test_quick_benchmark_prints_the_table(tmp_path):
    db = tmp_path / "tuning.jsonl"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tune_matmul.py"), "--quick",
                          "--database", str(db)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for row in ("numpy.matmul (OpenBLAS)", "tutorial 2 hand schedule (packed B)", "wb.tune (rules)",
                "TVM MetaSchedule", "int8 wb.tune (rules, tensorize)", "machine peak (fp32 FMA"):
        assert row in text, f"row {row!r} missing:\n{text}"
    assert "kernel" in text                      # numpy's BLAS kernel is reported
    assert "wb.tune / numpy = " in text
    assert "wrong" not in text and "error" not in text, text
    assert db.exists() and db.read_text().count("\n") >= 2   # fp32 and int8 measurements were recorded


def int8_matmul(n):
    A = te.placeholder((n, n), "uint8", name="A")
    B = te.placeholder((n, n), "int8", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(te.cast(A[i, k], "int32") * te.cast(B[k, j], "int32"), axis=k),
                   name="C")
    return wb.create_prim_func([A, B, C])


def _state_with_measurements(func, seconds):
    """A search state holding one measured rule-space candidate per entry of ``seconds``."""
    space = RuleSpace(AVX512)
    state = SearchState(func, space, {}, CostModel(min_train=4), random.Random(0))
    cands = {}
    seed = 0
    while len(cands) < len(seconds):
        cand = space.sample(func, seed)
        cands.setdefault(cand.key, cand)
        seed += 1
    for cand, t in zip(cands.values(), seconds):
        _learn(state, _measured(cand, True, t, None, 0.0, 0))    # an integer program: 0 FLOPs
    return state, list(cands.values())


def test_search_learns_and_ranks_integer_programs_by_speed():
    # regression: the search ranked and learned GFLOP/s, which is 0 for every integer program, so the
    # int8 search was blind (parents in arrival order, a cost model trained on zeros)
    func = int8_matmul(64)
    state, cands = _state_with_measurements(func, [4e-3, 3e-3, 1e-3, 2e-3, 5e-3, 6e-3])
    assert all(m.gflops == 0 for m in state.measured.values())
    predicted = state.model.predict(np.vstack([m.features for m in state.measured.values()]))
    assert np.ptp(predicted) > 0, "the cost model learned nothing from integer programs"
    fastest = cands[2]
    search = EvolutionarySearch(population=1, mutants=6, fresh=0)
    state.model = CostModel(min_train=10 ** 6)    # untrained: proposals are the mutants, unranked
    for child in search.propose(state, 4):
        changed = [k for k, d in child.decisions.items() if fastest.decisions.get(k) != d]
        assert len(changed) == 1, "every mutant comes from the fastest candidate"


def test_measured_speed_is_zero_for_failed_candidates():
    func = int8_matmul(16)
    cand = RuleSpace(AVX512).sample(func, 0)
    assert _measured(cand, False, None, "crash", 0.0, 0).speed == 0.0
    assert _measured(cand, True, 2e-3, None, 0.0, 0).speed == 500.0
    res = MeasureResult(True, 2e-3, None, 0.0)
    assert _measured(cand, res.ok, res.seconds, res.error, 0.0, 10 ** 9).gflops == 500.0
