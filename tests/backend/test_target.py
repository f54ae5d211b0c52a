import pytest

from workbench.backend import Target, TargetError


def test_host_target_detects_cpu_and_features():
    import llvmlite.binding as llvm

    t = Target("llvm")
    assert t.cpu == llvm.get_host_cpu_name()
    assert str(t) == f"llvm -mcpu={t.cpu}"
    host = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    assert t.features == host
    assert t.has("avx512f") == ("avx512f" in host)
    assert t.vector_bits in (128, 256, 512)


def test_override_cpu_and_attrs():
    t = Target("llvm -mcpu=skylake-avx512 -mattr=+avx512f,+avx2,-sse4a")
    assert t.cpu == "skylake-avx512"
    assert t.has("avx512f") and t.has("+avx2") and not t.has("sse4a")
    assert str(t) == "llvm -mcpu=skylake-avx512 -mattr=+avx512f,+avx2,-sse4a"
    assert t.vector_bits == 512 and t.vector_lanes("float32") == 16
    assert Target(t) == t


@pytest.mark.parametrize("spec, word", [("cuda9", "unknown target kind"), ("llvm -O3", "unknown option"),
                                        ("llvm -mattr=avx2", "must start with"), ("", "a target is")])
def test_bad_targets(spec, word):
    with pytest.raises(TargetError, match=word):
        Target(spec)


def test_importing_the_backend_does_not_load_llvmlite():
    import subprocess
    import sys

    code = "import sys, workbench, workbench.backend; print('llvmlite' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
