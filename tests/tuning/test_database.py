"""The tuning database: JSON lines keyed by workload and target; a resumed search measures nothing twice."""
import json

import pytest

import workbench as wb
from workbench import te
from workbench.tuning.database import Database, Record, workload_key
from workbench.tuning.measure import MeasureResult
from workbench.tuning.search import EvolutionarySearch, run_search
from workbench.tuning.space import program_key

AVX2 = "llvm -mcpu=znver3"


class CountingRunner:
    def __init__(self):
        self.keys = []

    def run(self, inputs):
        self.keys += [program_key(i.func) for i in inputs]
        return [MeasureResult(True, 1e-4 * (1 + int(program_key(i.func), 16) % 89), None, 0.01) for i in inputs]


def matmul(n):
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def _search(f, db, runner, trials=8, seed=0):
    return run_search(f, AVX2, runner=runner, trials=trials, seed=seed, database=db, batch_size=4,
                      strategy=EvolutionarySearch(population=4, mutants=8, fresh=4))


def test_resume_measures_nothing_twice(tmp_path):
    path = tmp_path / "tuning.jsonl"
    f = matmul(32)
    first = CountingRunner()
    _search(f, Database(path), first)
    assert len(first.keys) == 8 and len(path.read_text().splitlines()) == 8
    second = CountingRunner()
    out = _search(f, Database(path), second)   # same seed: without the database it would repeat the first
    assert len(second.keys) == 8
    assert not set(first.keys) & set(second.keys)
    assert sum(m.from_database for m in out) == 8 and len(out) == 16
    assert len(path.read_text().splitlines()) == 16


def test_records_are_keyed_by_workload_and_target(tmp_path):
    path = tmp_path / "tuning.jsonl"
    _search(matmul(32), Database(path), CountingRunner(), trials=4)
    db = Database(path)
    w, t = workload_key(matmul(32), AVX2)
    assert len(db.records(w, t)) == 4
    assert db.records(w, "llvm -mcpu=skylake") == []
    assert db.records(workload_key(matmul(16), AVX2)[0], t) == []
    other = CountingRunner()   # another workload in the same file measures from scratch
    _search(matmul(16), db, other, trials=4)
    assert len(other.keys) == 4 and len(Database(path)) == 8
    rec = json.loads(path.read_text().splitlines()[0])
    assert rec["trace"]["format"] == "workbench-trace" and rec["workload"] == w and rec["target"] == t


def test_bad_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "tuning.jsonl"
    Database(path).add(Record("w", "llvm", {"format": "workbench-trace", "version": 1, "insts": []}, "p", True, 1.0))
    with open(path, "a") as fh:
        fh.write("not json\n{\"workload\": \"w\"}\n")
    with pytest.warns(UserWarning, match="line 2: not a record"):
        db = Database(path)
    assert len(db) == 1


def test_in_memory_database():
    db = Database()
    runner = CountingRunner()
    _search(matmul(32), db, runner, trials=4)
    assert len(db) == 4


def test_tune_with_no_trials_or_no_time_loads_the_best_record(tmp_path):
    path = tmp_path / "tuning.jsonl"
    f = matmul(32)
    out = _search(f, Database(path), CountingRunner())
    fastest = min((m for m in out if m.ok), key=lambda m: m.seconds)
    for limits in ({"trials": 0}, {"time_budget": 0}):
        res = wb.tune(f, AVX2, database=str(path), progress=False, **limits)
        assert len(res.measured) == 8 and all(m.from_database for m in res.measured)
        assert res.best.seconds == fastest.seconds and res.best.trace.to_data() == fastest.candidate.trace.to_data()
    assert len(path.read_text().splitlines()) == 8                  # nothing measured, nothing appended
    with pytest.raises(ValueError, match="give database="):
        wb.tune(f, AVX2, trials=0, progress=False)
    with pytest.raises(ValueError, match="time_budget must be a number of seconds >= 0"):
        wb.tune(f, AVX2, time_budget=-1, database=str(path), progress=False)


def test_tune_table_of_an_int8_matmul_reports_its_operations(tmp_path):
    n = 16
    A = te.placeholder((n, n), "uint8", name="A")
    B = te.placeholder((n, n), "int8", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k].astype("int32") * B[k, j].astype("int32"), axis=k),
                   name="C")
    f = wb.create_prim_func([A, B, C])
    path = tmp_path / "tuning.jsonl"
    _search(f, Database(path), CountingRunner(), trials=4)
    res = wb.tune(f, AVX2, trials=0, database=str(path), progress=False)
    assert (res.table["gflops"] > 0).all()                          # was 0.00 GFLOP/s: int ops counted none
    assert f"{res.best.gflops:.2f} GFLOP/s" in repr(res) and res.best.gflops > 0
