"""max_pool2d after reorder + two fuses: LLVM's loop vectorizer miscompiled the loop whose stores go
through ``f % 4``; code generation now turns the vectorizer off for such loops. The raw IR that LLVM
miscompiles is kept as a standalone reproducer in data/max_pool2d_loop_vectorizer.ll."""
import ctypes
import pathlib

import numpy as np
import pytest

import workbench as wb
from workbench.ir.interpreter import evaluate
from workbench.ir.op_library.corpus import corpus

REPRODUCER = pathlib.Path(__file__).parent / "data" / "max_pool2d_loop_vectorizer.ll"


def _pool_schedule():
    case = corpus(["max_pool2d"])[0]
    sch = wb.Schedule(case.func)
    b = sch.get_block("max_pool2d")
    nn, cc, yy, xx, rh, rw = sch.get_loops(b)
    sch.reorder(xx, nn, cc, rh, rw, yy)
    fused = sch.fuse(rh, rw)
    sch.fuse(fused, yy)
    return case, sch


@pytest.mark.parametrize("target", ["llvm -mcpu=znver3 -opt-level=1", "llvm -mcpu=znver3 -opt-level=2",
                                    "llvm -mcpu=haswell -opt-level=2", "llvm -opt-level=2", "llvm"])
def test_reordered_fused_max_pool2d_matches_numpy(target):
    case, sch = _pool_schedule()
    (x,), (out,), (expected,) = case.make_arrays(np.random.default_rng(0))
    wb.build(sch.mod, target=target)(x, out)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_interpreter_agrees_on_the_scheduled_program():
    case, sch = _pool_schedule()
    (x,), (out,), (expected,) = case.make_arrays(np.random.default_rng(0))
    evaluate(sch.mod["max_pool2d"], x, out)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_only_loops_storing_through_div_or_mod_lose_llvm_vectorization():
    _, sch = _pool_schedule()
    ir = wb.build(sch.mod, target="llvm -mcpu=znver3").source("ll-raw")
    assert ir.count('!"llvm.loop.vectorize.enable", i1 0') == 1
    assert ir.count("!llvm.loop") == 1          # the fused loop only; the padding loops keep it


def _run_reproducer(cpu: str, speed: int, loop_vectorization: bool) -> np.ndarray:
    import llvmlite.binding as llvm

    from workbench.backend.llvm.module import init_llvm

    init_llvm()
    tm = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu=cpu, opt=speed, jit=True)
    mod = llvm.parse_assembly(REPRODUCER.read_text())
    mod.verify()
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=speed)
    pto.loop_vectorization = loop_vectorization
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    entry = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        engine.get_function_address("max_pool2d"))
    case = corpus(["max_pool2d"])[0]
    (x,), (out,), (expected,) = case.make_arrays(np.random.default_rng(0))
    bufs = (ctypes.c_void_p * 2)(x.ctypes.data, out.ctypes.data)
    entry(bufs, (ctypes.c_int64 * 1)(), (ctypes.c_int64 * 4)())
    _run_reproducer.keep = engine  # the code must outlive the call
    return out, expected


def test_reproducer_is_right_without_the_loop_vectorizer():
    out, expected = _run_reproducer("znver3", 2, loop_vectorization=False)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.xfail(strict=False, reason="LLVM 22 loop vectorizer bug: stores through f % 4 widened as stride 4")
def test_reproducer_with_the_loop_vectorizer():
    out, expected = _run_reproducer("znver3", 2, loop_vectorization=True)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
