"""wb.benchmark: checking against the first variant, the table's columns, plots, symbolic shapes."""
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.op_library import OPS
from workbench.tuning import BenchmarkResult
from workbench.tuning.peak import MachinePeak

FAST = dict(min_time=0.005, warmup=0.0, min_repeats=3, progress=False)
PEAK = MachinePeak(gflops=100.0, gbps=10.0, cores=2, cpu="test cpu", target="llvm", gflops_per_core=50.0)
M, N, K = 32, 24, 16


@pytest.fixture(scope="module")
def matmul():
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis(K, name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


@pytest.fixture(scope="module")
def result(matmul):
    sch = wb.Schedule(matmul)
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 8])
    sch.reorder(i, jo, k, ji)
    sch.vectorize(ji)

    def raises(a, b, c):
        raise RuntimeError("this variant is broken")

    variants = {
        "naive": matmul,
        "tiled": sch,
        "built": wb.build(sch.mod),
        "numpy": lambda a, b, c: np.matmul(a, b, out=c),
        "transposed": lambda a, b, c: np.copyto(c, (a @ b)[::-1]),   # rows in the wrong order
        "half_written": lambda a, b, c: np.matmul(a[: M // 2], b, out=c[: M // 2]),
        "raises": raises,
    }
    return wb.benchmark(variants, target="llvm", peak=PEAK, **FAST)


def test_table_has_the_documented_columns(result):
    cols = list(result.table.columns)
    assert cols == ["variant", "status", "median_ms", "p10_ms", "p90_ms", "spread_pct", "repeats", "gflops",
                    "gbps", "pct_of_peak", "speedup_vs_naive", "note"]
    assert list(result.table["variant"]) == ["naive", "tiled", "built", "numpy", "transposed", "half_written",
                                             "raises"]


def test_correct_variants_of_every_kind_are_timed(result):
    t = result.table.set_index("variant")
    for name in ("naive", "tiled", "built", "numpy"):
        assert t.loc[name, "status"] == "ok", t.loc[name, "note"]
        assert t.loc[name, "median_ms"] > 0 and t.loc[name, "repeats"] >= 3
        assert t.loc[name, "p10_ms"] <= t.loc[name, "median_ms"] <= t.loc[name, "p90_ms"]
        # GFLOP/s from the IR's count (2 M N K) and the measured median
        expect = 2 * M * N * K / (t.loc[name, "median_ms"] * 1e-3) / 1e9
        assert t.loc[name, "gflops"] == pytest.approx(expect, rel=1e-9)
        assert t.loc[name, "pct_of_peak"] == pytest.approx(100 * expect / PEAK.gflops, rel=1e-9)
        gbps = 4 * (M * K + K * N + M * N) / (t.loc[name, "median_ms"] * 1e-3) / 1e9
        assert t.loc[name, "gbps"] == pytest.approx(gbps, rel=1e-9)
    assert t.loc["naive", "speedup_vs_naive"] == pytest.approx(1.0)
    assert t.loc["numpy", "speedup_vs_naive"] == pytest.approx(
        t.loc["naive", "median_ms"] / t.loc["numpy", "median_ms"])


def test_wrong_variants_are_reported_wrong_and_not_timed(result):
    t = result.table.set_index("variant")
    for name in ("transposed", "half_written"):
        assert t.loc[name, "status"] == "wrong"
        assert np.isnan(t.loc[name, "median_ms"]) and t.loc[name, "repeats"] == 0
        assert result[name].timing is None
        assert "differs from the reference 'naive'" in t.loc[name, "note"]
    assert "never written" in t.loc["half_written", "note"]


def test_a_raising_variant_is_reported_with_its_error(result):
    row = result["raises"]
    assert row.status == "error" and row.timing is None
    assert "RuntimeError: this variant is broken" in row.note


def test_plot_is_a_bar_chart_with_error_bars(result):
    from matplotlib.container import BarContainer, ErrorbarContainer
    from matplotlib.figure import Figure

    fig = result.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 1 and len(bars[0].patches) == 4          # the four timed variants
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["naive", "tiled", "built", "numpy"]
    assert "transposed (wrong)" in ax.get_title() and "raises (error)" in ax.get_title()
    fig2 = result.plot(metric="gflops", log=False)
    assert fig2.axes[0].get_yscale() == "linear"


def test_roofline_has_the_roof_and_one_point_per_timed_variant(result):
    fig = result.roofline()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = ax.get_lines()
    roof = [l for l in lines if "memory bandwidth" in l.get_label() or "FMA peak" in l.get_label()]
    assert len(roof) == 2
    slope, top = sorted(roof, key=lambda l: l.get_xdata()[0])
    x0, x1 = slope.get_xdata()
    y0, y1 = slope.get_ydata()
    assert y0 == pytest.approx(PEAK.gbps * x0) and y1 == pytest.approx(PEAK.gflops)   # bandwidth slope
    assert list(top.get_ydata()) == pytest.approx([PEAK.gflops, PEAK.gflops])        # flat peak
    points = [l for l in lines if l.get_marker() == "o"]
    assert len(points) == 4
    intensity = 2 * M * N * K / (4 * (M * K + K * N + M * N))
    assert all(p.get_xdata()[0] == pytest.approx(intensity) for p in points)


def test_symbolic_shape_program_with_explicit_args():
    case = OPS["matmul_symbolic"]()
    rng = np.random.default_rng(1)
    k, n = (int(d) for d in case.func.buffers[1].shape)
    a = rng.standard_normal((9, k)).astype("float32")
    b = rng.standard_normal((k, n)).astype("float32")
    c = np.zeros((9, n), "float32")
    kept = (a.copy(), b.copy(), c.copy())
    res = wb.benchmark({"ir": case.func, "numpy": lambda a, b, c: np.matmul(a, b, out=c)}, args=[a, b, c],
                       peak=None, **FAST)
    assert list(res.table["status"]) == ["ok", "ok"]
    assert res.flops == 2 * 9 * n * k
    assert np.isnan(res.table["pct_of_peak"]).all()          # no peak asked for
    for before, after in zip(kept, (a, b, c)):               # the caller's arrays are left alone
        np.testing.assert_array_equal(before, after)
    with pytest.raises(ValueError, match="is symbolic"):
        wb.benchmark({"ir": case.func}, peak=None, **FAST)


def test_variant_that_writes_its_input_is_wrong_and_inputs_are_restored():
    x = te.placeholder((64,), name="x")
    y = te.compute((64,), lambda i: x[i] * 2.0, name="y")
    f = wb.create_prim_func([x, y])

    def sneaky(a, b):
        np.multiply(a, 2.0, out=b)
        a[0] = 123.0

    seen = []
    res = wb.benchmark({"ir": f, "sneaky": sneaky, "after": lambda a, b: (seen.append(a[0]), np.multiply(a, 2.0, out=b))},
                       peak=None, baseline="after", **FAST)
    assert res["sneaky"].status == "wrong" and "changed its input(s) x" in res["sneaky"].note
    assert res["after"].status == "ok" and seen[0] != 123.0
    assert "speedup_vs_after" in res.table.columns


def test_plain_callables_only_need_args_and_bad_calls_are_clear():
    a = np.arange(10, dtype="float64")
    out = np.zeros(10)
    res = wb.benchmark({"add": lambda a, o: np.add(a, 1, out=o), "add2": lambda a, o: np.add(1, a, out=o)},
                       args=[a, out], peak=None, **FAST)
    assert list(res.table["status"]) == ["ok", "ok"] and np.isnan(res.flops)
    with pytest.raises(ValueError, match="needs args"):
        wb.benchmark({"f": lambda: None}, peak=None, **FAST)
    with pytest.raises(KeyError, match="baseline='nope'"):
        wb.benchmark({"add": lambda a, o: None}, args=[a, out], baseline="nope", **FAST)
    with pytest.raises(TypeError, match="dict of name"):
        wb.benchmark(42, **FAST)


def test_progress_bar_can_be_forced(capsys, matmul):
    res = wb.benchmark({"naive": matmul}, peak=None, min_time=0.001, warmup=0.0, min_repeats=1, progress=True)
    assert isinstance(res, BenchmarkResult) and res["naive"].status == "ok"
    assert "benchmark" in capsys.readouterr().err


def test_import_stays_light():
    code = ("import sys, workbench as wb, workbench.tuning\n"
            "wb.benchmark; wb.machine_peak\n"
            "print(','.join(m for m in ('pandas', 'matplotlib', 'tqdm', 'llvmlite') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_schedule_of_one_function_in_a_module_of_several_is_benchmarked():
    """A Schedule over function ``f`` of a two-function module builds ``f`` (it built the whole module and
    failed with "this module holds 2 functions")."""
    import numpy as np

    import workbench as wb
    from workbench import te

    A = te.placeholder((8,), "float32", name="A")
    B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((8,), lambda i: A[i] + 1.0, name="C")
    mod = wb.IRModule({"f": wb.create_prim_func([A, B]), "g": wb.create_prim_func([A, C])})
    res = wb.benchmark({"sch": wb.Schedule(mod, func_name="f")}, progress=False, peak=None)
    row = res.table.iloc[0]
    assert row["status"] == "ok", row["note"]
    assert np.isfinite(row["median_ms"]) and row["median_ms"] > 0
