"""A fixed slice of the random-schedule fuzzer (benchmarks/fuzz_schedules.py).

60 random primitive sequences (seed 0) on the te operator corpus and programs of symbolic
size: every refusal leaves the schedule unchanged, no primitive crashes, and every accepted
program matches numpy in the interpreter and in LLVM builds. A failure message lists each
failing sequence's seed and trace; replay one with
``python benchmarks/fuzz_schedules.py --replay SEED:PROGRAM``.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench import te


@pytest.fixture(scope="module")
def fuzz():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_schedules.py"
    spec = importlib.util.spec_from_file_location("fuzz_schedules", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    return mod


def _describe(results) -> str:
    parts = []
    for r in results:
        f = r["failures"][0]
        parts.append(f"seed {r.get('seed')} ({r['program']}): {f['kind']} {f['primitive']} {f['where']}: "
                     f"{f['message'][:300]}\n" + "\n".join(r["lines"]))
    return "\n\n".join(parts)


def test_fixed_slice_of_random_schedules_is_correct(fuzz):
    summary = fuzz.run_fuzz(sequences=60, seed=0, workers=1, timeout=30)
    assert summary.tried == 60
    assert not summary.skipped_programs, summary.skipped_programs
    assert summary.accepted >= 30, "the slice should exercise real schedules, not only refusals"
    assert summary.wrong == 0 and summary.crashed == 0, _describe(summary.failures)


def test_checker_reports_a_wrong_program(fuzz):
    """The harness itself: a program that computes something else is reported as wrong."""
    prog = fuzz.program("relu")
    x = te.placeholder((4, 8), name="x")
    doubled = wb.create_prim_func([x, te.compute((4, 8), lambda i, j: x[i, j] * 2.0, name="relu")])
    kinds = [f["kind"] for f in fuzz.check_program(prog, prog.func, doubled, {}, "")]
    assert "interp-wrong" in kinds and "llvm-wrong" in kinds


def test_checker_follows_parameter_layouts(fuzz):
    """A transform_layout of a parameter changes the signature: inputs are passed in the new layout."""
    prog = fuzz.program("sym_ewise2")
    sch = wb.Schedule(prog.func)
    rec = fuzz.Recorder(sch)
    rec.transform_layout(sch.get_block("B"), ("read", 0), fuzz.make_index_map("lambda i0, i1: (i1 // 3, i0, i1 % 3)"))
    assert list(rec.layouts) == [0]
    assert fuzz.check_program(prog, prog.func, sch.func, rec.layouts, str(sch.trace)) == []
    # the same layout, forgotten by the checker, shows up as a failure (the arrays no longer fit)
    assert fuzz.check_program(prog, prog.func, sch.func, {}, str(sch.trace))


def test_split_factors_cover_overshooting_and_symbolic(fuzz):
    import random

    rng = random.Random(0)
    drawn = [fuzz.split_factors(rng, 6) for _ in range(300)]
    explicit = [fs for fs in drawn if None not in fs and all(isinstance(f, int) and f > 0 for f in fs)]
    assert any(int(np.prod(fs)) > 6 for fs in explicit)      # overshooting
    assert any(int(np.prod(fs)) == 6 for fs in explicit)     # exact
    assert any(6 % f for fs in drawn for f in fs if isinstance(f, int) and f > 0)  # non-dividing
    assert all(None in fs or len(fs) >= 2 for fs in (fuzz.split_factors(rng, None) for _ in range(50)))


def test_every_registered_primitive_is_drawn_and_generated(fuzz):
    """The drawn list comes from the registry (look-ups aside); each primitive's generator calls it
    (applied or refused), never crashes, on a few programs."""
    import random

    from workbench.schedule.primitive import load_all

    registered = {n for n, spec in load_all().items() if spec.family not in fuzz.LOOKUP_FAMILIES}
    assert set(fuzz.PRIMITIVES) == registered
    called = set()
    for name in fuzz.PRIMITIVES:
        for k, program in enumerate(("two_branches", "conv2d", "blur1d")):
            rec = fuzz.Recorder(wb.Schedule(fuzz.program(program).func))
            try:
                fuzz.SequenceGenerator(rec, random.Random(k)).step(name)
            except fuzz.Refused:
                pass
            called |= set(rec.applied) | set(rec.refused)
    assert called >= registered


def test_generic_generator_builds_arguments_from_the_signature(fuzz):
    import random

    rec = fuzz.Recorder(wb.Schedule(fuzz.program("gather_index").func))
    gen = fuzz.SequenceGenerator(rec, random.Random(3))
    for name in ("cache_index", "split", "reorder_block_iter_var", "set_scope"):
        try:
            gen.generic(name)
        except fuzz.Refused:
            pass
    assert sum(rec.applied.values()) + sum(rec.refused.values()) == 4


def test_unsafe_narrowing_dtype_skips_the_value_check_only(fuzz):
    """float16 intermediates change the values (not a bug); float64 ones must stay within tolerance."""
    prog = fuzz.program("two_branches")
    for dtype, unsafe in (("float16", True), ("float64", False)):
        sch = wb.Schedule(prog.func)
        rec = fuzz.Recorder(sch)
        rec.unsafe_set_dtype(sch.get_block("B"), 0, dtype)
        assert rec.unsafe is unsafe
        assert fuzz.check_program(prog, prog.func, sch.func, rec.layouts, str(sch.trace), values=not unsafe) == []
