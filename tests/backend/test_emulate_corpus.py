"""Every operator of the te corpus built for an AVX-512 CPU (Sapphire Rapids, 512-bit vectors: the
vectorized loops split by 16) and run in the CPU emulator gives the numpy result: the code paths for
zmm registers, never executed natively on an AVX2 machine, checked against an outside reference."""
import numpy as np
import pytest

import workbench as wb
from workbench.backend import emulate
from workbench.ir import op_library

from test_corpus_transformed import _block_names

pytestmark = pytest.mark.skipif(not emulate.available(), reason="emulator packages (bochscpu-python, "
                                                                "pyelftools) not installed")


def _transform16(func):
    sch = wb.Schedule(func)
    for name in _block_names(func):
        loops = sch.get_loops(sch.get_block(name))
        if not loops:
            continue
        before = len(sch.history)
        try:
            _, inner = sch.split(loops[-1], factors=[None, 16])
            sch.vectorize(inner)
        except wb.ScheduleError:
            while len(sch.history) > before:
                sch.undo()
        try:
            sch.parallel(sch.get_loops(sch.get_block(name))[0])
        except wb.ScheduleError:
            pass
    return sch


@pytest.mark.filterwarnings("ignore:loop .* stays a scalar loop")   # extents below 16 cannot vectorize
@pytest.mark.parametrize("case", op_library.corpus(), ids=lambda c: c.name)
def test_operator_on_emulated_avx512_matches_numpy(case):
    f = wb.build(_transform16(case.func).func, target="llvm -mcpu=sapphirerapids", emulate=True)
    case.check(lambda func, *arrays: f(*arrays), np.random.default_rng(1))
