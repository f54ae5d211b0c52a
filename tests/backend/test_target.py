import pytest

from workbench.backend import Target, TargetError


def test_host_target_detects_cpu_and_features(monkeypatch):
    import llvmlite.binding as llvm

    from workbench.backend import target as target_module

    monkeypatch.delenv("WORKBENCH_HOST_CPU", raising=False)
    monkeypatch.setattr(target_module, "_HOST", None)
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


def test_the_host_can_be_pretended_to_be_an_older_cpu(monkeypatch):
    """WORKBENCH_HOST_CPU makes the suite run as on that CPU (its features must be this one's)."""
    import llvmlite.binding as llvm

    from workbench.backend import target as target_module
    from workbench.backend.target import TargetError

    real = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    monkeypatch.setattr(target_module, "_HOST", None)
    monkeypatch.setenv("WORKBENCH_HOST_CPU", "haswell")
    if not {"avx2", "fma"} <= real:
        with pytest.raises(TargetError, match="lacks"):
            Target("llvm")
        return
    t = Target("llvm")
    assert t.cpu == "haswell" and t.has("avx2") and not t.has("avx512f")
    assert t.vector_bits == 256
    monkeypatch.setattr(target_module, "_HOST", None)
    monkeypatch.setenv("WORKBENCH_HOST_CPU", "skylak")
    with pytest.raises(TargetError, match="skylake"):
        Target("llvm")
