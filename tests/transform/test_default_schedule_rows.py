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


def test_layer_norm_variance_is_a_row_chain_not_a_matmul():
    """layer_norm's variance reads X[i, j, k] and mean[i, j]: two inputs and a reduction, but no input lacks
    a row or column variable. It was tiled as a matmul over (batch, seq), vectorized across seq (a gather
    with stride 384) and in its own parallel loop; now the whole chain runs per row."""
    b, s = wb.var("batch"), wb.var("seq")
    X = te.placeholder((b, s, 64), "float32", name="X")
    G, B = te.placeholder((64,), "float32", name="G"), te.placeholder((64,), "float32", name="B")
    op = get_op("layer_norm")
    f = schedule_kernel(wb.create_prim_func([X, G, B, op.legalize([X, G, B], {"axes": (-1,), "eps": 1e-5})]),
                        TARGET)
    assert len(_parallel_extents(f)) == 1, f.script()
    assert "unroll" not in f.script()
    rng = np.random.default_rng(3)
    x, g, bb = rng.standard_normal((2, 5, 64), "float32"), rng.standard_normal(64, "float32"), \
        rng.standard_normal(64, "float32")
    o = np.full_like(x, np.nan)
    wb.build(f, target=TARGET)(x, g, bb, o)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(o, (x - mean) / np.sqrt(var + 1e-5) * g + bb, rtol=1e-4, atol=1e-4)
