"""Issue 15, benchmark display: noisy variants flagged, formatted tables, labels that do not collide."""
from __future__ import annotations

import pytest

from workbench.tuning.benchmark import BenchmarkResult, VariantResult, _label_offsets, _tilt_labels
from workbench.tuning.timing import Timing


def _result() -> BenchmarkResult:
    def timing(med, p10, p90):
        return Timing(median=med, p10=p10, p90=p90, mean=med, repeats=20, number=3)

    rows = [VariantResult("scalar loops", "program", timing=timing(1.234567e-3, 1.2e-3, 1.3e-3), flops=2e6, bytes=1e5),
            VariantResult("vectorized tile", "program", timing=timing(2.5e-4, 1e-4, 6e-3), flops=2e6, bytes=1e5),
            VariantResult("parallel tile", "program", timing=timing(2.4e-4, 2.3e-4, 2.5e-4), flops=2e6, bytes=1e5)]
    return BenchmarkResult(rows, "scalar loops", "scalar loops", None, "llvm", 2e6, 1e5)


def test_noisy_variant_is_flagged_in_table_and_html():
    res = _result()
    notes = list(res.table["note"])
    assert notes[1] == "noisy: p10-p90 spread 2,360% of the median" and notes[0] == notes[2] == ""
    html = res._repr_html_()
    assert "noisy timings: vectorized tile" in html


def test_tables_show_formatted_numbers_not_raw_floats():
    t = _result().formatted_table()
    assert list(t["median_ms"]) == ["1.23", "0.25", "0.24"]
    assert list(t["spread_pct"]) == ["8%", "2,360%", "8%"]
    assert list(t["speedup_vs_scalar loops"]) == ["1.00x", "4.94x", "5.14x"]
    assert "1.234567" not in repr(_result()) and "0.0012345" not in _result()._repr_html_()
    assert t["pct_of_peak"].tolist() == ["", "", ""]


def test_roofline_labels_of_coinciding_points_are_stacked():
    assert _label_offsets([(2.0, 10.0), (2.0, 10.0), (2.01, 10.1), (50.0, 10.0)]) == [0.0, -11.0, -22.0, 0.0]


def test_long_bar_labels_are_tilted():
    assert _tilt_labels(["vectorized tile", "parallel tile", "scalar loops", "x", "y", "z"], 8.0)
    assert not _tilt_labels(["a", "b"], 8.0)


def test_plot_marks_the_noisy_bar():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    fig = _result().plot()
    ax = fig.axes[0]
    assert [p.get_hatch() for p in ax.containers[-1].patches] == [None, "///", None]
    assert "noisy (hatched; p10-p90 over 50% of the median): vectorized tile" in ax.get_title()
