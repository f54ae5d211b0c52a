"""transform_layout: intermediate buffers, parameters (signature change), padding."""
import numpy as np

import workbench as wb
from workbench.schedule import ScheduleArgumentError

from .programs import two_stage, two_stage_ref
from .util import assert_program, check_llvm, check_numeric, refused, run


def test_transform_layout_intermediate():
    @wb.prim_func
    def expected(A: wb.Buffer((32, 32), "float32"), C: wb.Buffer((32, 32), "float32")):
        B = wb.alloc_buffer((2, 32, 16), "float32")
        for i, j in wb.grid(32, 32):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vj // 16, vi, vj % 16] = A[vi, vj] * 2.0
        for i, j in wb.grid(32, 32):
            with wb.block("C"):
                vi, vj = wb.axis.remap("SS", [i, j])
                C[vi, vj] = B[vj // 16, vi, vj % 16] + 1.0

    sch = wb.Schedule(two_stage)
    sch.transform_layout(sch.get_block("B"), ("write", 0), lambda i, j: (j // 16, i, j % 16))
    assert_program(sch.func, expected)
    check_numeric(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    check_llvm(sch.func, two_stage_ref, [(32, 32)], (32, 32))
    assert "index_map=lambda i, j: (j // 16, i, j % 16)" in str(sch.trace)
    replay = wb.Schedule(two_stage)
    exec(str(sch.trace), {"sch": replay})
    wb.assert_structural_equal(replay.func, sch.func)


def test_transform_layout_parameter_changes_signature():
    sch = wb.Schedule(two_stage)
    sch.transform_layout(sch.get_block("B"), ("read", 0), lambda i, j: (j, i))
    assert [tuple(int(d) for d in b.shape) for b in sch.func.buffers] == [(32, 32), (32, 32)]
    a = np.random.default_rng(0).standard_normal((32, 32)).astype("float32")
    out = np.zeros((32, 32), "float32")
    run(sch.func, np.ascontiguousarray(a.T), out)   # the caller now passes A transposed
    np.testing.assert_allclose(out, two_stage_ref(a), rtol=1e-6)


def test_transform_layout_padding():
    sch = wb.Schedule(two_stage)
    sch.transform_layout(sch.get_block("C"), ("write", 0), lambda i, j: (i, j // 5, j % 5), pad_value=-1.0)
    (c_buf,) = [b for b in sch.func.buffers if b.name == "C"]
    assert tuple(int(d) for d in c_buf.shape) == (32, 7, 5)  # 35 >= 32: three padding elements per row
    a = np.random.default_rng(0).standard_normal((32, 32)).astype("float32")
    out = np.zeros((32, 7, 5), "float32")
    run(sch.func, a, out)
    flat = out.reshape(32, 35)
    np.testing.assert_allclose(flat[:, :32], two_stage_ref(a), rtol=1e-6)
    assert (flat[:, 32:] == -1.0).all()


def test_transform_layout_refusals():
    sch = wb.Schedule(two_stage)
    b = sch.get_block("B")
    refused(sch, sch.transform_layout, b, ("write", 0), lambda i: (i,), exc=ScheduleArgumentError,
            match="the index map takes 1 indices but buffer B has 2 dimensions")
    refused(sch, sch.transform_layout, b, ("write", 0), lambda i, j: (i // 2, j // 2), exc=ScheduleArgumentError,
            match="fewer elements than the old one")
    refused(sch, sch.transform_layout, b, ("write", 4), lambda i, j: (j, i), exc=ScheduleArgumentError,
            match="block B has no write buffer number 4")
    refused(sch, sch.transform_layout, b, ("written", 0), lambda i, j: (j, i), exc=ScheduleArgumentError,
            match="read\" or \"write\"")
