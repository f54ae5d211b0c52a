"""Every operator of the te corpus, after loop transformations (split with a vectorized inner loop,
parallel outer loop), written back in script form and parsed again, builds with LLVM and gives
the numpy result."""
import numpy as np
import pytest

import workbench as wb
from workbench.ir import op_library


def _transform(func, factor=4):
    """Split each block's innermost loop by ``factor`` and vectorize the inner part; parallelize its
    outermost loop. Steps that are illegal for a block (a reduction loop) are refused by the
    schedule and skipped. Returns the schedule and the names of the steps that applied."""
    sch = wb.Schedule(func)
    applied = []
    for name in _block_names(func):
        loops = sch.get_loops(sch.get_block(name))
        if not loops:
            continue
        before = len(sch.history)
        try:
            _, inner = sch.split(loops[-1], factors=[None, factor])
            sch.vectorize(inner)
            applied.append(f"{name}:vectorize")
        except wb.ScheduleError:  # e.g. the innermost loop is a reduction loop: take the split back too
            while len(sch.history) > before:
                sch.undo()
        loops = sch.get_loops(sch.get_block(name))
        try:
            sch.parallel(loops[0])
            applied.append(f"{name}:parallel")
        except wb.ScheduleError:
            pass
    return sch, applied


def _block_names(func):
    names = []

    class V(wb.ir.Visitor):
        def visit_Block(self, b):
            if b.name != "root":
                names.append(b.name)
            self.generic_visit(b)

    V().visit(func.body)
    return names


@pytest.mark.parametrize("case", op_library.corpus(), ids=lambda c: c.name)
def test_transformed_operator_matches_numpy(case):
    sch, applied = _transform(case.func)
    assert applied, f"{case.name}: no transformation applied"
    text = sch.func.script()
    assert "wb.vectorized(" in text or "wb.parallel(" in text
    reparsed = wb.parse(text)
    wb.ir.assert_structural_equal(reparsed, sch.func)
    f = wb.build(reparsed, target="llvm")
    case.check(lambda func, *arrays: f(*arrays), np.random.default_rng(1))
