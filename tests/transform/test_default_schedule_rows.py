"""DefaultSchedule on matmuls whose rows are symbolic (a model's batch x seq): the column panels are the
parallel loop, so the row tile's position is never a fused ``f % ((seq + 7) // 8)`` (which kept the
accumulator a whole-sized buffer in memory and ran ~10x slower on MiniLM)."""
import numpy as np

import workbench as wb
from workbench import te
from workbench.ir.graph.op import get_op
from workbench.ir.stmt import ForKind
from workbench.transform.default_schedule import loops_of, schedule_kernel

TARGET = "llvm -mcpu=znver3"


def _parallel_extents(func):
    return [f.extent for f in loops_of(func) if f.kind == ForKind.PARALLEL]


def test_linear_with_symbolic_rows_is_parallel_over_column_panels_and_correct():
    b, s = wb.var("batch"), wb.var("seq")
    A = te.placeholder((b, s, 64), "float32", name="A")
    W = te.placeholder((48, 64), "float32", name="W")
    C = te.placeholder((48,), "float32", name="C")
    out = get_op("linear").legalize([A, W, C], {})
    f = schedule_kernel(wb.create_prim_func([A, W, C, out]), TARGET)
    extents = _parallel_extents(f)
    assert extents and all(isinstance(e, wb.ir.expr.IntImm) for e in extents), extents
    fn = wb.build(f, target=TARGET)
    rng = np.random.default_rng(0)
    for shape in ((1, 16), (2, 19)):
        a = rng.standard_normal((*shape, 64), "float32")
        w, c = rng.standard_normal((48, 64), "float32"), rng.standard_normal(48, "float32")
        o = np.full((*shape, 48), np.nan, "float32")
        fn(a, w, c, o)
        np.testing.assert_allclose(o, a @ w.T + c, rtol=1e-4, atol=1e-4)


def test_attention_with_symbolic_seq_is_parallel_over_heads_and_correct():
    b, s = wb.var("batch"), wb.var("seq")
    q, k, v = (te.placeholder((b, 4, s, 16), "float32", name=n) for n in "QKV")
    op = get_op("scaled_dot_product_attention")
    f = schedule_kernel(wb.create_prim_func([q, k, v, op.legalize([q, k, v], {})]), TARGET)
    assert not any(isinstance(e, wb.ir.expr.IntImm) and e.value == 1 for e in _parallel_extents(f))
    fn = wb.build(f, target=TARGET)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 4, 11, 16), "float32") for _ in range(3)]
    o = np.full((2, 4, 11, 16), np.nan, "float32")
    fn(*arrays, o)
    np.testing.assert_allclose(o, op.reference(arrays, {}), rtol=1e-4, atol=1e-5)
