"""The main command's flagship demo (``python -m workbench.demo``), in small mode."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.demo import matmul_schedules, tile_sizes

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["naive", "tiled", "vectorized", "parallel", "register tile", "packed B"]


def test_every_step_computes_the_matmul(rng):
    n = 48  # a multiple of the AVX2 tile (16) and of 4, not a power of two
    _, nr, _ = tile_sizes()
    if n % nr:
        n = 2 * nr
    steps = matmul_schedules(n)
    assert list(steps) == STEPS
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    for name, s in steps.items():
        c = np.full((n, n), np.nan, np.float32)
        wb.build(s if isinstance(s, wb.PrimFunc) else s.mod, target="llvm")(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4, err_msg=name)


def test_steps_are_cumulative():
    steps = matmul_schedules(32)
    lengths = [len(steps[s].trace) for s in STEPS[1:]]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    text = str(steps["packed B"].trace)
    for prim in ("split", "reorder", "vectorize", "parallel", "cache_write", "reverse_compute_at",
                 "decompose_reduction", "unroll", "cache_read", "transform_layout"):
        assert f"sch.{prim}(" in text, prim


def test_size_not_a_multiple_of_the_tile_is_refused():
    with pytest.raises(ValueError, match="multiple of the register tile"):
        matmul_schedules(50)


def test_main_command_small(tmp_path):
    out = tmp_path / "plots"
    proc = subprocess.run([sys.executable, "-m", "workbench.demo", "--size", "64", "--out", str(out),
                           "--min-time", "0.02", "--model", "none"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    # the table: header with the documented columns, one row per variant, all ok
    header = next(line for line in text.splitlines() if line.strip().startswith("variant"))
    for col in ("status", "median_ms", "gflops", "pct_of_peak", "speedup_vs_naive", "pct_of_numpy"):
        assert col in header.split(), header
    rows = {}
    for line in text.splitlines():
        for name in STEPS + ["numpy"]:
            if line.strip().startswith(name + " ") and " ok " in line:
                rows[name] = line
    assert set(rows) == set(STEPS + ["numpy"]), text
    assert "interpreter" in text and "max |error|" in text
    assert str(out.resolve()) in text
    # the plots: two PNG files
    for fname in ("matmul_bar.png", "matmul_roofline.png"):
        p = out / fname
        assert p.exists(), f"{fname} not written"
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.image

        img = matplotlib.image.imread(str(p))
        assert img.shape[0] > 100 and img.shape[1] > 200


def test_main_command_skips_a_naive_run_above_the_cap(tmp_path):
    from workbench.demo import run_benchmark

    res = run_benchmark(32, naive_max=16, min_time=0.01, log=lambda *a: None)
    names = list(res.table["variant"])
    assert "naive" not in names and names[0] == "tiled" and names[-1] == "numpy"
    assert all(s == "ok" for s in res.table["status"])


def test_model_section_compares_minilm_with_numpy_and_profiles_it():
    from workbench.demo import minilm_folder, run_model_section

    folder = minilm_folder()
    if folder is None:
        pytest.skip("all-MiniLM-L6-v2 is not installed: run scripts/setup.sh")
    lines = []
    out = run_model_section(folder, repeat=1, min_time=0.01, top=3, log=lambda *a: lines.append(" ".join(map(str, a))))
    text = "\n".join(lines)
    assert out["max_abs_diff"] <= 1e-4, text
    assert set(out["sentences_per_s"]) >= {"workbench", "numpy"} and all(r > 0 for r in out["sentences_per_s"].values())
    assert "max |difference| from the numpy reference" in text and "sentences/s" in text and "top kernels" in text
    assert len(out["profile"]) >= 3 and abs(out["profile"]["share"].sum() - 1.0) < 1e-6
    assert any("linear" in k for k in out["profile"]["kernel"].head(3)), text


def test_main_command_without_the_model_installed_says_so(monkeypatch, capsys, tmp_path):
    import workbench.demo as demo

    monkeypatch.setattr(demo, "minilm_folder", lambda: None)
    assert demo.main(["--size", "32", "--naive-max", "16", "--min-time", "0.01", "--out", str(tmp_path)]) == 0
    assert "all-MiniLM-L6-v2 is not installed" in capsys.readouterr().out
