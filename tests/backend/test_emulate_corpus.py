"""Every operator of the te corpus built for an AVX-512 CPU (Sapphire Rapids, 512-bit vectors: the
vectorized loops split by 16) and run in the CPU emulator gives the numpy result: the code paths for
zmm registers, never executed natively on an AVX2 machine, checked against an outside reference."""
import numpy as np
import pytest

import workbench as wb
from workbench.backend import emulate
from workbench.ir import op_library

from test_corpus_transformed import _transform

pytestmark = pytest.mark.skipif(not emulate.available(), reason="emulator packages (bochscpu-python, "
                                                                "pyelftools) not installed")


@pytest.mark.filterwarnings("ignore:loop .* stays a scalar loop")   # extents below 16 cannot vectorize
@pytest.mark.parametrize("case", op_library.corpus(), ids=lambda c: c.name)
def test_operator_on_emulated_avx512_matches_numpy(case):
    sch, _ = _transform(case.func, factor=16)
    f = wb.build(sch.func, target="llvm -mcpu=sapphirerapids", emulate=True)
    case.check(lambda func, *arrays: f(*arrays), np.random.default_rng(1))
