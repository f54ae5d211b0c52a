"""Targets: CPU names, features and options are checked before LLVM sees them (a typo never aborts
the process); GPU kinds parse and describe themselves; backends and host/device splits plug in by kind."""
import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend import BackendUnavailableError, Target, TargetError, pipeline_for
from workbench.backend import driver
from workbench.backend.target import CPUS_32BIT, known_cpus, known_features

lower_mod = importlib.import_module("workbench.backend.lower")  # wb.backend.lower is the function


def _double():
    A = te.placeholder((8,), "float32", name="A")
    B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    return wb.create_prim_func([A, B])


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


# item 1: bad CPU names, features and options ------------------------------------------------------


@pytest.mark.parametrize("spec, words", [
    ("llvm -mcpu=skylak", ["no CPU 'skylak'", "did you mean 'skylake'"]),
    ("llvm -mcpu=znver9", ["no CPU 'znver9'", "znver"]),
    ("llvm -mattr=+avx512ff", ["no CPU feature 'avx512ff'", "did you mean 'avx512f'"]),
    ("llvm -mcpu=haswell -mattr=+avx2,-fmaa", ["no CPU feature 'fmaa'", "'fma'"]),
    ("llvm -mcpu=i686", ["32-bit code only"]),
    ("llvm -mcpu=pentium4", ["32-bit code only"]),
    ("llvm -mattr=-64bit", ["instruction mode"]),
    ("llvm -mattr=+32bit-mode", ["instruction mode"]),
    ("llvm -opt-level=-3", ["-opt-level must be an integer from 0 to 3", "'-3'"]),
    ("llvm -opt-level=4", ["-opt-level must be an integer from 0 to 3"]),
    ("llvm -opt-level=fast", ["-opt-level must be an integer from 0 to 3"]),
    ("llvm -mcpu='a b'", ["expected a name"]),
    ("llvm '-mcpu=haswell", ["cannot be split into words"]),
])
def test_bad_cpu_targets_raise_a_clear_error(spec, words):
    with pytest.raises(TargetError) as info:
        Target(spec)
    for w in words:
        assert w in str(info.value)


def test_build_with_a_misspelt_cpu_raises_in_process():
    with pytest.raises(TargetError, match="did you mean 'skylake'"):
        wb.build(_double(), target="llvm -mcpu=skylak", cache=False)


def test_misspelt_cpu_or_feature_never_aborts_the_process():
    # before the check, LLVM printed "LLVM ERROR: 64-bit code requested on a subtarget that doesn't
    # support it!" and killed Python; run in a child so a regression fails this test, not the suite
    out = _run_python("""
        import workbench as wb
        from workbench import te
        A = te.placeholder((8,), "float32", name="A")
        f = wb.create_prim_func([A, te.compute((8,), lambda i: A[i] * 2.0, name="B")])
        for spec in ["llvm -mcpu=skylak", "llvm -mcpu=i686", "llvm -mattr=-64bit", "llvm -opt-level=-3"]:
            try:
                wb.build(f, target=spec, cache=False)
            except wb.backend.TargetError:
                print("refused", spec)
        print("alive")
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split().count("refused") == 4 and out.stdout.strip().endswith("alive")


def test_every_accepted_cpu_compiles_and_every_refused_one_is_known_to_llvm():
    # each CPU name the check accepts must give LLVM a working 64-bit target machine: one child
    # process compiles a function for every one of them (an abort would end it early)
    out = _run_python("""
        import llvmlite.binding as llvm
        from workbench.backend.target import Target, known_cpus
        from workbench.backend.llvm.module import target_machine
        IR = "define i32 @f(i32 %x) {\\n  %y = add i32 %x, 1\\n  ret i32 %y\\n}"
        for cpu in known_cpus():
            tm = target_machine(Target(f"llvm -mcpu={cpu}"))
            m = llvm.parse_assembly(IR)
            m.triple, m.data_layout = tm.triple, str(tm.target_data)
            llvm.create_mcjit_compiler(m, tm).finalize_object()
            print("ok", cpu, flush=True)
    """)
    compiled = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("ok ")]
    assert out.returncode == 0, f"LLVM aborted after {compiled[-1:]}: {out.stderr[-1000:]}"
    cpus = known_cpus()
    assert compiled == cpus and {"x86-64", "haswell", "znver3", "skylake-avx512", "sapphirerapids"} <= set(cpus)
    from workbench.backend.target import _llvm_help

    assert CPUS_32BIT <= _llvm_help()[0], "a 32-bit CPU name LLVM no longer knows: update CPUS_32BIT"
    assert {"avx2", "avx512f", "avx512vnni", "fma"} <= set(known_features())


def test_a_32bit_cpu_really_aborts_llvm_so_it_must_be_refused():
    out = _run_python("""
        import llvmlite.binding as llvm
        llvm.initialize_native_target(); llvm.initialize_native_asmprinter()
        tm = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu="i686", jit=True)
        m = llvm.parse_assembly("define i32 @f() {\\n  ret i32 0\\n}")
        m.triple, m.data_layout = tm.triple, str(tm.target_data)
        llvm.create_mcjit_compiler(m, tm).finalize_object()
    """)
    assert out.returncode != 0 and "64-bit code requested" in out.stderr


def test_valid_cpu_targets_still_build_and_run():
    f = wb.build(_double(), target="llvm -mcpu=znver3 -mattr=+avx2,+fma -opt-level=1")
    a, b = np.arange(8, dtype="float32"), np.full(8, np.nan, "float32")
    f(a, b)
    np.testing.assert_array_equal(b, a * 2)
    t = Target("llvm -mcpu=x86-64-v4 -opt-level=0")
    assert t.opt_level == 0 and t.vector_bits == 512 and Target(str(t)) == t


# item 2: GPU kinds, backends and pipelines by kind ------------------------------------------------


def test_gpu_kinds_parse_and_describe_themselves():
    cu = Target("cuda -arch=sm_80 -max_num_threads=512")
    assert (cu.kind, cu.device_type, cu.arch, cu.max_num_threads, cu.thread_warp_size) == \
        ("cuda", "gpu", "sm_80", 512, 32)
    assert str(cu) == "cuda -arch=sm_80 -max_num_threads=512" and Target(str(cu)) == cu
    assert cu.describe() == ("cuda GPU, arch sm_80, up to 512 threads per block, warps of 32 threads, "
                             "48 KiB shared memory per block")
    assert not cu.has("avx2") and cu.host.kind == "llvm"
    cl = Target("opencl -device=mali")
    assert cl.device == "mali" and "opencl GPU, device mali" in cl.describe()
    assert Target("opencl", host="llvm -mcpu=znver3").host.cpu == "znver3"
    assert Target("llvm").device_type == "cpu" and Target("llvm").host.kind == "llvm"


@pytest.mark.parametrize("spec, word", [("cuda -arch=sm80", "compute capability"),
                                        ("cuda -mcpu=haswell", "unknown option '-mcpu=haswell' for kind cuda"),
                                        ("opencl -max_num_threads=0", "from 1 to"),
                                        ("rocm", "known kinds: llvm, cuda, opencl")])
def test_bad_gpu_targets(spec, word):
    with pytest.raises(TargetError, match=word):
        Target(spec)


@pytest.mark.parametrize("spec", ["cuda -arch=sm_80"])
def test_building_for_a_kind_without_backend_says_so(spec, monkeypatch):
    # as on an install without the backend's sub-package: nothing registered for the kind
    monkeypatch.setattr(driver, "_BACKENDS", {k: v for k, v in driver._BACKENDS.items() if k != "cuda"})
    monkeypatch.setattr(lower_mod, "_HOST_DEVICE_SPLITS",
                        {k: v for k, v in lower_mod._HOST_DEVICE_SPLITS.items() if k != "cuda"})
    monkeypatch.setattr(driver, "_import_backend_package", lambda kind: None)
    with pytest.raises(BackendUnavailableError, match="no .* backend is available yet") as info:
        wb.build(_double(), target=spec)
    assert isinstance(info.value, NotImplementedError)
    with pytest.raises(NotImplementedError, match="split them into host code and device kernels"):
        lower_mod.lower(_double(), spec)


def test_cpu_pipeline_has_a_no_op_host_device_split():
    names = [p.name for p in pipeline_for("llvm")]
    assert names.index("flatten_buffers") < names.index("split_host_device") < names.index("lower_parallel")
    split = pipeline_for("llvm")[names.index("split_host_device")]
    f = _double()
    assert split(f) is f
    assert [p.name for p in pipeline_for()] == names


@pytest.fixture
def registries(monkeypatch):
    monkeypatch.setattr(driver, "_BACKENDS", dict(driver._BACKENDS))
    monkeypatch.setattr(lower_mod, "_HOST_DEVICE_SPLITS", dict(lower_mod._HOST_DEVICE_SPLITS))


def test_a_gpu_backend_plugs_in_by_kind(registries):
    seen = {}

    def split(func):
        seen["split"] = func.name
        return func

    def build_opencl(funcs, target, checks=False, emulate=False, allow_extern=frozenset()):
        seen["lowered"] = {n: lower_mod.lower(f, target) for n, f in funcs.items()}
        seen["pipeline"] = [p.name for p in pipeline_for(target)]
        return ("opencl module", target)

    wb.backend.register_backend("opencl", build_opencl, split_host_device=split)
    mod, tgt = wb.build(_double(), target="opencl -device=pocl", cache=False)
    assert mod == "opencl module" and tgt.device == "pocl"
    assert seen["split"] == _double().name and set(seen["lowered"]) == {_double().name}
    assert "split_host_device" in seen["pipeline"] and "lower_parallel" not in seen["pipeline"]
    assert "opencl" in wb.backend.available_backends()
    with pytest.raises(ValueError, match="unknown target kind 'vulkan'"):
        wb.backend.register_backend("vulkan", build_opencl)


def test_schedule_layer_reads_cpu_features_without_the_llvm_backend():
    out = _run_python("""
        import sys
        import workbench as wb
        from workbench.backend import Target
        from workbench.backend.target import missing_features
        print(missing_features(["avx512f", "avx512vnni"], Target("llvm -mcpu=znver3")))
        wb.list_tensor_intrins().rows(Target("llvm -mcpu=znver3"))
        print(sorted(m for m in sys.modules if m.startswith("workbench.backend.llvm")))
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["['avx512f', 'avx512vnni']", "[]"]


def test_feature_tables_are_shared_with_the_llvm_backend():
    from workbench.backend import target
    from workbench.backend.llvm import target_intrinsics

    assert target_intrinsics.TargetFeatureError is target.TargetFeatureError is wb.backend.TargetFeatureError
    assert target_intrinsics.missing_features is target.missing_features
