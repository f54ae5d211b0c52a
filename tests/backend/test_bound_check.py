"""Bound checks (``wb.build(..., checks=True)``) name the buffer that is really accessed out of bounds."""
import numpy as np
import pytest

import workbench as wb

INDIRECT = '''
@wb.prim_func
def gather(A: wb.Buffer((64,), "float32"), I: wb.Buffer((8,), "int32"), B: wb.Buffer((8,), "float32")):
    for i in range(8):
        with wb.block("b"):
            vi = wb.axis.spatial(8, i)
            B[vi] = A[I[vi + 1]]
'''


def test_an_index_buffer_read_out_of_bounds_is_reported_before_the_load_it_feeds():
    f = wb.build(wb.parse(INDIRECT), checks=True)
    a = np.arange(64, dtype="float32")
    idx = np.arange(8, dtype="int32")
    with pytest.raises(IndexError, match=r"buffer I: index 8 is outside dimension 0 of extent 8"):
        f(a, idx, np.zeros(8, "float32"))
