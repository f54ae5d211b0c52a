"""benchmarks/matmul_gpu.py: without a GPU it says so; --opencl runs the fp32 schedules on PoCL, checked
against numpy (wb.benchmark refuses a wrong variant), and prints one table with device-event times."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "matmul_gpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("_matmul_gpu_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_opencl_mode_prints_checked_device_timed_rows(capsys):
    pytest.importorskip("pyopencl")
    _module().main(["--opencl", "--size", "64"])
    out = capsys.readouterr().out
    assert "64 x 64 x 64 fp32 matmul on OpenCL" in out
    rows = [line for line in out.splitlines() if line.strip().startswith(("numpy", "fp32"))]
    assert len(rows) == 3 and all(" ok " in r for r in rows), out
    assert sum(" device " in r for r in rows) == 2
