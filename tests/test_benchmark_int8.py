"""benchmarks/int8_matmul_cpu.py runs end to end at a small size (every schedule in it is
checked against numpy inside; the figures come from running it at n = 1024)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_int8_benchmark_runs_small(capsys):
    pytest.importorskip("llvmlite")
    spec = importlib.util.spec_from_file_location("int8_matmul_cpu", ROOT / "benchmarks" / "int8_matmul_cpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(n=64, repeat=1, emulate_n=32)
    out = capsys.readouterr().out
    assert "int8: tensorized" in out and "fp32: " in out and "bf16: " in out
    import workbench as wb
    from workbench.backend import emulate

    host = wb.Target("llvm")
    if emulate.available() or host.has("avx512vnni"):
        assert "tensorize dot_u8s8_vnni" in out
    if emulate.available() and not (host.has("avx512vnni") and host.has("avx512bf16")):
        assert "fewer instructions" in out
