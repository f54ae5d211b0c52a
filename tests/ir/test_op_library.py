"""The operator corpus: every operator against numpy (through the reference interpreter), shapes, errors."""
from __future__ import annotations

import numpy as np
import pytest

from workbench import te
from workbench.ir import op_library
from workbench.ir.op_library import OPS, OpShapeError, linalg, nn, reduce, transform

REQUIRED = ["matmul", "batch_matmul", "dense", "conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d", "softmax",
            "log_softmax", "layer_norm", "rms_norm", "transpose", "reshape", "add", "multiply", "relu", "gelu",
            "silu", "sum", "max", "take", "concatenate", "rotary"]


def _evaluate(func, *arrays):
    interp = pytest.importorskip("workbench.ir.interpreter")
    interp.evaluate(func, *arrays)


def test_corpus_has_every_required_operator():
    assert set(REQUIRED) <= set(OPS)
    cases = op_library.corpus()
    assert len(cases) >= 22
    assert any(c.symbolic for c in cases)
    assert [c.name for c in op_library.corpus(symbolic=True)] == ["matmul_symbolic", "softmax_symbolic"]


@pytest.mark.parametrize("name", list(OPS))
def test_signature_matches_reference(name):
    """Parameters are inputs then outputs; the reference's shapes and dtypes match the output buffers."""
    case = OPS[name]()
    inputs, outs, expected = case.make_arrays(np.random.default_rng(0))
    assert case.num_inputs == len(inputs) and case.num_outputs == len(expected) == 1
    bufs = case.func.buffers
    for a, b in zip(inputs, bufs):
        assert a.dtype == np.dtype(b.dtype)
        assert all(not hasattr(d, "value") or d.value == s for d, s in zip(b.shape, a.shape)), b.name
    for o, b in zip(outs, bufs[len(inputs):]):
        assert o.dtype == np.dtype(b.dtype)
        assert all(not hasattr(d, "value") or d.value == s for d, s in zip(b.shape, o.shape)), b.name


@pytest.mark.parametrize("name", list(OPS))
def test_operator_matches_numpy(name):
    case = OPS[name]()
    inputs, outs, expected = case.make_arrays(np.random.default_rng(42))
    _evaluate(case.func, *inputs, *outs)
    case.assert_close(outs, expected)


@pytest.mark.parametrize("rows", [3, 11])
def test_symbolic_matmul_and_softmax_at_two_sizes(rows):
    rng = np.random.default_rng(rows)
    mm = OPS["matmul_symbolic"]()          # one function ...
    sm = OPS["softmax_symbolic"]()
    a, b = rng.standard_normal((rows, 5)).astype("float32"), rng.standard_normal((5, 6)).astype("float32")
    c = np.full((rows, 6), np.nan, "float32")
    _evaluate(mm.func, a, b, c)            # ... called with arrays of different sizes
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)
    x = rng.standard_normal((rows, 10)).astype("float32")
    y = np.full_like(x, np.nan)
    _evaluate(sm.func, x, y)
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(stride=1, padding=0, dilation=2), dict(stride=(2, 1), padding=(0, 2))])
def test_conv2d_variants(kw):
    x, w = te.placeholder((1, 2, 7, 6), name="x"), te.placeholder((3, 2, 3, 2), name="w")
    y = nn.conv2d_nchw(x, w, **kw)
    f = te.create_prim_func([x, w, y])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 2, 7, 6)).astype("float32"), rng.standard_normal((3, 2, 3, 2)).astype("float32")
    out = np.full([int(d) for d in y.shape], np.nan, "float32")
    _evaluate(f, a, b, out)
    sh, sw = (kw["stride"],) * 2 if isinstance(kw["stride"], int) else kw["stride"]
    ph, pw = (kw["padding"],) * 2 if isinstance(kw["padding"], int) else kw["padding"]
    dh = dw = kw.get("dilation", 1)
    ap = np.pad(a, ((0, 0), (0, 0), (ph, ph), (pw, pw))).astype(np.float64)
    ref = np.zeros(out.shape)
    for n, k, yy, xx in np.ndindex(*out.shape):
        win = ap[n, :, yy * sh: yy * sh + dh * 2 + 1: dh, xx * sw: xx * sw + dw * 1 + 1: dw]
        ref[n, k, yy, xx] = (win * b[k]).sum()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_avg_pool_counting_the_padding():
    case = OPS["avg_pool2d"](count_include_pad=True)
    inputs, outs, expected = case.make_arrays(np.random.default_rng(1))
    _evaluate(case.func, *inputs, *outs)
    case.assert_close(outs, expected)


def test_reductions_over_all_axes_and_mean():
    x = te.placeholder((3, 4), name="x")
    s = reduce.sum(x)               # 0-d result
    m = reduce.mean(x, axis=0)
    f = te.create_prim_func([x, s, m])
    a = np.random.default_rng(2).standard_normal((3, 4)).astype("float32")
    out_s, out_m = np.zeros((), "float32"), np.zeros(4, "float32")
    _evaluate(f, a, out_s, out_m)
    np.testing.assert_allclose(out_s, a.sum(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_m, a.mean(0), rtol=1e-5, atol=1e-6)


def test_take_clip_and_wrap_modes():
    table, ids = te.placeholder((5, 2), name="table"), te.placeholder((4,), "int32", name="ids")
    yc = transform.take(table, ids, mode="clip", name="yc")
    yw = transform.take(table, ids, mode="wrap", name="yw")
    f = te.create_prim_func([table, ids, yc, yw])
    t = np.arange(10, dtype="float32").reshape(5, 2)
    i = np.array([-1, 0, 4, 7], "int32")
    oc, ow = np.zeros((4, 2), "float32"), np.zeros((4, 2), "float32")
    _evaluate(f, t, i, oc, ow)
    np.testing.assert_array_equal(oc, np.take(t, i, axis=0, mode="clip"))
    np.testing.assert_array_equal(ow, np.take(t, i, axis=0, mode="wrap"))


# ---------------------------------------------------------------------------
# structure


def test_conv2d_has_a_lazy_pad_stage():
    case = OPS["conv2d"]()
    root = case.func.body.block
    assert [b.name for b in root.alloc_buffers] == ["conv2d_pad"]
    pad_block = root.body.seq[0]
    while not hasattr(pad_block, "block"):
        pad_block = pad_block.body
    value = pad_block.block.body.value
    assert value.op == "if_then_else"  # lazy: out-of-bounds elements are never loaded


def test_softmax_stages():
    case = OPS["softmax"]()
    root = case.func.body.block
    assert [b.name for b in root.alloc_buffers] == ["softmax_maxelem", "softmax_exp", "softmax_expsum"]
    assert len(root.body.seq) == 4


# ---------------------------------------------------------------------------
# bad input


def test_shape_mismatches_are_clear():
    A, B = te.placeholder((4, 5), name="A"), te.placeholder((6, 3), name="B")
    with pytest.raises(OpShapeError, match=r'matmul: dimension 1 of "A" \(4, 5\) must equal dimension 0 of "B"'):
        linalg.matmul(A, B)
    with pytest.raises(OpShapeError, match=r"cannot be broadcast together"):
        transform.add(te.placeholder((3, 4), name="a"), te.placeholder((5,), name="b"))
    with pytest.raises(OpShapeError, match="cannot reshape"):
        transform.reshape(A, (3, 7))
    with pytest.raises(OpShapeError, match='conv2d: dimension 1 of "x"'):
        nn.conv2d_nchw(te.placeholder((1, 3, 8, 8), name="x"), te.placeholder((4, 2, 3, 3), name="w"))
    with pytest.raises(OpShapeError, match="not a permutation"):
        transform.transpose(A, (0, 0))
    with pytest.raises(OpShapeError, match="must be integers"):
        transform.take(A, te.placeholder((2,), "float32", name="ids"))
    with pytest.raises(ValueError, match="approximate"):
        nn.gelu(A, approximate="fast")
    assert issubclass(OpShapeError, ValueError)


def test_broadcast_shape_rules():
    n = te.var("n")
    shape = transform.broadcast_shape((n, 1, 4), (3, 1))
    assert shape[0] is n and [int(d) for d in shape[1:]] == [3, 4]
    with pytest.raises(OpShapeError, match="not known to be equal"):
        transform.broadcast_shape((n,), (te.var("m"),))


@pytest.mark.parametrize("module", ["workbench.ir.te.tensor", "workbench.ir.te.reduction", "workbench.ir.te.intrin",
                                    "workbench.ir.te.create_prim_func", "workbench.ir.te",
                                    "workbench.ir.op_library.linalg", "workbench.ir.op_library.nn",
                                    "workbench.ir.op_library.transform", "workbench.ir.op_library.reduce",
                                    "workbench.ir.op_library.corpus", "workbench.ir.op_library"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed"


def test_broadcast_shape_agrees_with_numpy():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    dims = st.lists(st.sampled_from([1, 2, 3]), min_size=0, max_size=4)

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(dims, dims)
    def check(a, b):
        try:
            want = np.broadcast_shapes(tuple(a), tuple(b))
        except ValueError:
            with pytest.raises(OpShapeError):
                transform.broadcast_shape(tuple(a), tuple(b))
            return
        assert tuple(int(d) for d in transform.broadcast_shape(tuple(a), tuple(b))) == want

    check()


@pytest.mark.parametrize("shape,axes,newshape", [((2, 3, 4), (2, 0, 1), (4, 6)), ((5, 1, 2), (1, 2, 0), (-1,)),
                                                 ((3, 4), None, (2, 2, 3))])
def test_transpose_then_reshape_matches_numpy(shape, axes, newshape):
    x = te.placeholder(shape, name="x")
    t = transform.transpose(x, axes, name="t")
    r = transform.reshape(t, newshape, name="r")
    f = te.create_prim_func([x, r])
    assert [b.name for b in f.body.block.alloc_buffers] == ["t"]
    a = np.random.default_rng(7).standard_normal(shape).astype("float32")
    want = np.transpose(a, axes).reshape(newshape)
    out = np.full(want.shape, np.nan, "float32")
    _evaluate(f, a, out)
    np.testing.assert_array_equal(out, want)


def test_equal_symbolic_dimensions_built_twice_broadcast():
    import workbench as wb
    from workbench import te
    from workbench.ir import op_library

    n = wb.var("n")
    a = te.placeholder((n * 4,), "float32", name="a")
    b = te.placeholder((n * 4,), "float32", name="b")
    c = op_library.transform.add(a, b)       # two separately built n * 4 are the same size
    assert len(c.shape) == 1
