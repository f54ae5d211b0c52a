"""wb.machine_peak: generated kernels compute what they claim; the result is cached per machine and target."""
import json

import numpy as np
import pytest

import workbench as wb
from workbench.tuning import peak as peak_mod
from workbench.tuning.peak import MachinePeak, fma_kernel, triad_kernel

TINY = dict(min_time=0.005, stream_bytes=1 << 20)


def test_fma_kernel_computes_the_fma_chain():
    f = wb.build(fma_kernel(acc=2, lanes=8))
    x = np.random.default_rng(0).uniform(0.5, 1.5, (2, 16)).astype("float32")
    expect = x.astype(np.float64)
    for _ in range(7):
        expect = expect * np.float32(0.999999) + np.float32(1e-6)
    f(x, 7)
    np.testing.assert_allclose(x, expect, rtol=1e-6)


def test_triad_kernel_computes_b_plus_3c():
    f = wb.build(triad_kernel(8))
    rng = np.random.default_rng(0)
    b, c = rng.standard_normal((5, 8)).astype("float32"), rng.standard_normal((5, 8)).astype("float32")
    a = np.zeros((5, 8), "float32")
    f(a, b, c)
    np.testing.assert_allclose(a, b + 3 * c, rtol=1e-6)


def test_machine_peak_measures_then_reads_the_cache_and_refresh_measures_again(tmp_path, monkeypatch):
    p1 = wb.machine_peak(cache_dir=tmp_path, **TINY)
    assert isinstance(p1, MachinePeak) and not p1.from_cache
    assert p1.gflops > 0 and p1.gbps > 0 and p1.gflops_per_core > 0 and p1.cores >= 1 and p1.cpu
    files = list(tmp_path.glob("peak-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["gflops"] == p1.gflops

    def no_measuring(*a, **k):
        raise AssertionError("the cached result should have been used")

    monkeypatch.setattr(peak_mod, "_measure_fma", no_measuring)
    p2 = wb.machine_peak(cache_dir=tmp_path, **TINY)
    assert p2.from_cache and (p2.gflops, p2.gbps, p2.cores, p2.cpu) == (p1.gflops, p1.gbps, p1.cores, p1.cpu)

    calls = []
    monkeypatch.setattr(peak_mod, "_measure_fma", lambda *a, **k: calls.append(1) or (123.0, 61.5, {}))
    p3 = wb.machine_peak(cache_dir=tmp_path, refresh=True, **TINY)
    assert calls == [1] and not p3.from_cache and p3.gflops == 123.0
    assert wb.machine_peak(cache_dir=tmp_path, **TINY).gflops == 123.0   # the refreshed value is cached


def test_cache_is_keyed_by_target(tmp_path, monkeypatch):
    monkeypatch.setattr(peak_mod, "_measure_fma", lambda *a, **k: (1.0, 1.0, {}))
    monkeypatch.setattr(peak_mod, "_measure_triad", lambda *a, **k: (2.0, {}))
    wb.machine_peak("llvm", cache_dir=tmp_path, **TINY)
    wb.machine_peak("llvm -mcpu=haswell -mattr=+avx2,+fma", cache_dir=tmp_path, **TINY)
    names = sorted(p.name for p in tmp_path.glob("peak-*.json"))
    assert len(names) == 2 and any("haswell" in n for n in names)


def test_damaged_cache_file_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setattr(peak_mod, "_measure_fma", lambda *a, **k: (10.0, 5.0, {}))
    monkeypatch.setattr(peak_mod, "_measure_triad", lambda *a, **k: (3.0, {}))
    p = wb.machine_peak(cache_dir=tmp_path, **TINY)
    (f,) = tmp_path.glob("peak-*.json")
    f.write_text("{not json")
    q = wb.machine_peak(cache_dir=tmp_path, **TINY)
    assert not q.from_cache and q.gflops == p.gflops == 10.0 and q.ridge == pytest.approx(10.0 / 3.0)
