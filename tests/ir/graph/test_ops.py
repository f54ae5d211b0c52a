"""The graph-level op library (workbench/ir/graph/ops): shape inference on concrete and symbolic
shapes, legalization built with LLVM and compared with the numpy reference, the references checked
against plain numpy / known values, and clear errors for bad shapes and dtypes."""

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.graph.op import PATTERNS, get_op, list_ops
from workbench.ir.graph.types import GraphTypeError, TensorType, TupleType
from workbench.ir.verify import verify_well_formed

N = wb.var("n")
N_VALUE = 3
RNG = np.random.default_rng(0)


def T(shape, dtype="float32"):
    return TensorType(tuple(shape), dtype)


def infer(op, *types, **attrs):
    return get_op(op).infer(list(types), attrs)


# -- (a) shape inference ------------------------------------------------------------------------

INFER_CASES = [
    ("add", [T((N, 4)), T((4,))], {}, 'Tensor((n, 4), "float32")'),
    ("subtract", [T((2, 1, 4)), T((3, 1))], {}, 'Tensor((2, 3, 4), "float32")'),
    ("multiply", [T((N, 1)), T((1, 5))], {}, 'Tensor((n, 5), "float32")'),
    ("divide", [T((1,)), T((N * 4, 2))], {}, 'Tensor((n * 4, 2), "float32")'),
    ("where", [T((N, 1), "bool"), T((N, 4)), T((4,))], {}, 'Tensor((n, 4), "float32")'),
    ("negative", [T((N, 4), "int32")], {}, 'Tensor((n, 4), "int32")'),
    ("exp", [T((N, 4))], {}, 'Tensor((n, 4), "float32")'),
    ("tanh", [T((2, 3), "float16")], {}, 'Tensor((2, 3), "float16")'),
    ("erf", [T((N,))], {}, 'Tensor((n,), "float32")'),
    ("sqrt", [T((N, 2))], {}, 'Tensor((n, 2), "float32")'),
    ("rsqrt", [T((3,))], {}, 'Tensor((3,), "float32")'),
    ("gelu", [T((N, 8))], {"approximate": "tanh"}, 'Tensor((n, 8), "float32")'),
    ("silu", [T((N, 8))], {}, 'Tensor((n, 8), "float32")'),
    ("relu", [T((N, 8), "int8")], {}, 'Tensor((n, 8), "int8")'),
    ("astype", [T((N, 8))], {"dtype": "float16"}, 'Tensor((n, 8), "float16")'),
    ("matmul", [T((N, 784)), T((784, 128))], {}, 'Tensor((n, 128), "float32")'),
    ("matmul", [T((2, 1, N, 4)), T((5, 4, 6))], {}, 'Tensor((2, 5, n, 6), "float32")'),
    ("matmul", [T((4,)), T((2, 4, 3))], {}, 'Tensor((2, 3), "float32")'),
    ("matmul", [T((2, N, 4)), T((4,))], {}, 'Tensor((2, n), "float32")'),
    ("matmul", [T((N, 4), "int8"), T((4, 3), "int8")], {"out_dtype": "int32"}, 'Tensor((n, 3), "int32")'),
    ("linear", [T((2, N, 8)), T((6, 8)), T((6,))], {}, 'Tensor((2, n, 6), "float32")'),
    ("linear", [T((N, 8)), T((6, 8))], {}, 'Tensor((n, 6), "float32")'),
    ("softmax", [T((N, 7))], {"axis": 0}, 'Tensor((n, 7), "float32")'),
    ("log_softmax", [T((N, 7))], {}, 'Tensor((n, 7), "float32")'),
    ("layer_norm", [T((N, 3, 4)), T((3, 4)), T((3, 4))], {"axes": [1, 2]}, 'Tensor((n, 3, 4), "float32")'),
    ("rms_norm", [T((N, 16)), T((16,))], {"eps": 1e-6}, 'Tensor((n, 16), "float32")'),
    ("take", [T((100, 16)), T((N,), "int32")], {"axis": 0}, 'Tensor((n, 16), "float32")'),
    ("take", [T((N, 16)), T((2, 3), "int64")], {"axis": 1}, 'Tensor((n, 2, 3), "float32")'),
    ("embedding", [T((100, 16)), T((2, N), "int32")], {}, 'Tensor((2, n, 16), "float32")'),
    ("reshape", [T((N, 12))], {"shape": (N, 3, -1)}, 'Tensor((n, 3, 4), "float32")'),
    ("reshape", [T((N, 4, 8))], {"shape": (-1, 8)}, 'Tensor((n * 4, 8), "float32")'),
    ("reshape", [T((N * 4,))], {"shape": (N, 4)}, 'Tensor((n, 4), "float32")'),
    ("reshape", [T((2, 6))], {"shape": (3, -1)}, 'Tensor((3, 4), "float32")'),
    ("permute_dims", [T((2, N, 4))], {"axes": (1, 2, 0)}, 'Tensor((n, 4, 2), "float32")'),
    ("permute_dims", [T((2, N, 4))], {}, 'Tensor((4, n, 2), "float32")'),
    ("expand_dims", [T((N, 4))], {"axis": [0, -1]}, 'Tensor((1, n, 4, 1), "float32")'),
    ("squeeze", [T((1, N, 1, 4))], {}, 'Tensor((n, 4), "float32")'),
    ("squeeze", [T((1, N, 1, 4))], {"axis": 2}, 'Tensor((1, n, 4), "float32")'),
    ("concat", [TupleType([T((N, 2)), T((N, 3))])], {"axis": 1}, 'Tensor((n, 5), "float32")'),
    ("concat", [T((N, 2)), T((N, 2)), T((1, 2))], {"axis": 0}, 'Tensor((n * 2 + 1, 2), "float32")'),
    ("split", [T((N, 12))], {"indices_or_sections": 3, "axis": 1},
     'Tuple(Tensor((n, 4), "float32"), Tensor((n, 4), "float32"), Tensor((n, 4), "float32"))'),
    ("split", [T((N * 6, 2))], {"indices_or_sections": 2},
     'Tuple(Tensor((n * 3, 2), "float32"), Tensor((n * 3, 2), "float32"))'),
    ("split", [T((N, 2))], {"indices_or_sections": [1, 3]},
     'Tuple(Tensor((1, 2), "float32"), Tensor((2, 2), "float32"), Tensor((n - 3, 2), "float32"))'),
    ("split", [T((10,))], {"indices_or_sections": [2, 5]},
     'Tuple(Tensor((2,), "float32"), Tensor((3,), "float32"), Tensor((5,), "float32"))'),
    ("strided_slice", [T((10, 8))], {"axes": [0, 1], "begin": [1, -1], "end": [8, 0], "strides": [2, -2]},
     'Tensor((4, 4), "float32")'),
    ("strided_slice", [T((N, 8))], {"axes": [0], "begin": [1], "end": [None]}, 'Tensor((n - 1, 8), "float32")'),
    ("strided_slice", [T((N, 8))], {"axes": [0], "begin": [0], "end": [-1], "strides": [2]},
     'Tensor((n // 2, 8), "float32")'),
    ("sum", [T((N, 5, 4))], {}, 'Tensor((), "float32")'),
    ("sum", [T((N, 5, 4), "int32")], {"axis": 1, "keepdims": True}, 'Tensor((n, 1, 4), "int32")'),
    ("mean", [T((N, 5, 4))], {"axis": [0, 2]}, 'Tensor((5,), "float32")'),
    ("max", [T((N, 5))], {"axis": -1}, 'Tensor((n,), "float32")'),
    ("scaled_dot_product_attention", [T((1, 2, N, 8))] * 3, {"causal": True}, 'Tensor((1, 2, n, 8), "float32")'),
    ("scaled_dot_product_attention", [T((2, 4, 3, 8)), T((2, 2, N, 8)), T((2, 2, N, 16)), T((2, 1, 1, N), "bool")],
     {}, 'Tensor((2, 4, 3, 16), "float32")'),
]


@pytest.mark.parametrize("op, types, attrs, expected", INFER_CASES,
                         ids=[f"{c[0]}-{k}" for k, c in enumerate(INFER_CASES)])
def test_infer(op, types, attrs, expected):
    assert repr(get_op(op).infer(types, attrs)) == expected


def test_every_listed_op_is_registered_with_a_pattern():
    wanted = {"matmul", "linear", "add", "subtract", "multiply", "divide", "negative", "exp", "tanh", "erf", "sqrt",
              "rsqrt", "gelu", "silu", "relu", "softmax", "log_softmax", "layer_norm", "rms_norm", "take", "embedding",
              "reshape", "permute_dims", "expand_dims", "squeeze", "concat", "split", "strided_slice", "sum", "mean",
              "max", "where", "astype", "scaled_dot_product_attention"}
    assert wanted <= set(list_ops())
    pattern = {name: get_op(name).pattern for name in wanted}
    assert all(p in PATTERNS for p in pattern.values())
    assert pattern["matmul"] == pattern["linear"] == pattern["scaled_dot_product_attention"] == "out_ewise_fusible"
    assert pattern["add"] == "broadcast" and pattern["exp"] == "elementwise"
    assert pattern["reshape"] == "injective" and pattern["sum"] == "reduction"
    assert all(get_op(name).doc for name in wanted)


# -- (b) legalization, built with LLVM, against the numpy reference ----------------------------------

def rand(shape, dtype="float32", lo=-2.0, hi=2.0):
    if dtype == "bool":
        return RNG.random(shape) < 0.5
    if dtype.startswith("int"):
        return RNG.integers(-5, 6, size=shape).astype(dtype)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def flat_types(types):
    """The tensor types of the arguments, tuple arguments flattened."""
    return [f for t in types for f in (t.fields if isinstance(t, TupleType) else (t,))]


def pack(types, flat):
    """``flat`` (one value per tensor) regrouped as the arguments: a tuple argument gets a tuple."""
    it = iter(flat)
    return [tuple(next(it) for _ in t.fields) if isinstance(t, TupleType) else next(it) for t in types]


def case(op, types, attrs=None, arrays=None, **kw):
    """One legalization check: ``types`` may be symbolic (``N`` is bound to ``N_VALUE`` at call time)."""
    if arrays is None:
        arrays = [rand(_concrete(t.shape), t.dtype, **kw) for t in flat_types(types)]
    return op, types, attrs or {}, arrays


def _concrete(shape):
    from workbench.ir.arith import Analyzer

    an = Analyzer()
    an.bind(N, N_VALUE)
    return tuple(an.simplify(d).value for d in shape)


def bind_attrs(attrs):
    """``attrs`` with ``N`` replaced by its value (the reference of ``reshape`` needs concrete sizes)."""
    if "shape" not in attrs:
        return attrs
    return {**attrs, "shape": tuple(d if isinstance(d, int) else _concrete((d,))[0] for d in attrs["shape"])}


def run_cases(cases, rtol=1e-5, atol=1e-5):
    """Legalize every case into one tensor program, build it once with LLVM and compare each output with
    the op's numpy reference (and the output shapes with ``infer`` of the concrete types)."""
    params, args, checks = [], [], []
    for k, (op, types, attrs, arrays) in enumerate(cases):
        phs = [te.placeholder(t.shape, t.dtype, name=f"{op}{k}_{j}") for j, t in enumerate(flat_types(types))]
        outs = get_op(op).legalize(pack(types, phs), attrs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        ref = get_op(op).reference(pack(types, arrays), bind_attrs(attrs))
        refs = list(ref) if isinstance(ref, tuple) else [ref]
        concrete = get_op(op).infer(pack(types, [T(a.shape, str(a.dtype)) for a in arrays]), bind_attrs(attrs))
        fields = concrete.fields if isinstance(concrete, TupleType) else (concrete,)
        assert [tuple(d.value for d in f.shape) for f in fields] == [r.shape for r in refs], op
        assert [f.dtype for f in fields] == [str(r.dtype) for r in refs], op
        results = [np.zeros(r.shape, r.dtype) for r in refs]
        params += phs + outs
        args += list(arrays) + results
        checks += [(op, got, want) for got, want in zip(results, refs)]
    func = wb.create_prim_func(params)
    verify_well_formed(func)
    f = wb.build(func, target="llvm")
    f(*args)
    for op, got, want in checks:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=op)


def test_legalize_elementwise():
    run_cases([
        case("add", [T((N, 4)), T((4,))]),
        case("subtract", [T((2, 1, 4)), T((3, 1))]),
        case("multiply", [T((N, 1)), T((1, 5))]),
        case("multiply", [T((N, 4), "int32"), T((N, 4), "int32")]),
        case("divide", [T((4, 5)), T((5,))], lo=0.5, hi=2.0),
        case("where", [T((N, 4), "bool"), T((N, 4)), T((4,))]),
        case("negative", [T((N, 4))]),
        case("negative", [T((3,), "int32")]),
        case("exp", [T((2, 3))]),
        case("tanh", [T((N, 3))]),
        case("erf", [T((N, 5))]),
        case("sqrt", [T((6,))], lo=0.1, hi=4.0),
        case("rsqrt", [T((N,))], lo=0.1, hi=4.0),
        case("gelu", [T((N, 5))]),
        case("gelu", [T((2, 5))], {"approximate": "tanh"}),
        case("silu", [T((N, 4))]),
        case("relu", [T((N, 4))]),
        case("relu", [T((7,), "int32")]),
        case("astype", [T((N, 4))], {"dtype": "int32"}, lo=-50, hi=50),
        case("astype", [T((5,), "int32")], {"dtype": "float32"}),
    ], rtol=1e-5, atol=2e-6)


def test_legalize_linalg():
    run_cases([
        case("matmul", [T((4, 8)), T((8, 3))]),
        case("matmul", [T((2, N, 8)), T((8, 5))]),
        case("matmul", [T((2, 1, 3, 4)), T((5, 4, 6))]),
        case("matmul", [T((4,)), T((2, 4, 3))]),
        case("matmul", [T((N, 4)), T((4,))]),
        case("matmul", [T((N, 6), "int8"), T((6, 3), "int8")], {"out_dtype": "int32"}),
        case("linear", [T((N, 8)), T((6, 8)), T((6,))]),
        case("linear", [T((2, N, 8)), T((6, 8))]),
    ], rtol=1e-5, atol=1e-5)


def test_legalize_nn():
    big = rand((2, 7)) * 1000.0  # softmax must subtract the max: exp(1000) overflows float32
    run_cases([
        case("softmax", [T((N, 7))]),
        case("softmax", [T((5, N))], {"axis": 0}),
        case("softmax", [T((2, 7))], arrays=[big]),
        case("log_softmax", [T((N, 7))]),
        case("log_softmax", [T((2, 7))], arrays=[big]),
        case("layer_norm", [T((N, 16)), T((16,)), T((16,))], {"eps": 1e-5}),
        case("layer_norm", [T((2, 3, 4)), T((3, 4)), T((3, 4))], {"axes": [1, 2], "eps": 1e-6}),
        case("rms_norm", [T((N, 16)), T((16,))], {"eps": 1e-6}),
        case("rms_norm", [T((3, 2, 4)), T((3, 4))], {"axes": [0, 2]}),
    ], rtol=1e-4, atol=1e-5)


def test_norms_of_float16_accumulate_in_float32():
    # sum(x^2) over 16 values near 100 is ~1.6e5, past float16's largest value (65504)
    x = (rand((3, 16)) * 100).astype("float16")
    g, b = rand((16,), "float16"), rand((16,), "float16")
    run_cases([
        case("layer_norm", [T((3, 16), "float16"), T((16,), "float16"), T((16,), "float16")], arrays=[x, g, b]),
        case("rms_norm", [T((3, 16), "float16"), T((16,), "float16")], arrays=[x, g]),
    ], rtol=2e-3, atol=2e-3)


def test_legalize_manipulate():
    ids = np.array([0, 4, 2, 2], "int32")
    run_cases([
        case("reshape", [T((N, 12))], {"shape": (N, 3, -1)}),
        case("reshape", [T((N, 4, 2))], {"shape": (-1, 2)}),
        case("reshape", [T((2, 6))], {"shape": (3, 4)}),
        case("permute_dims", [T((2, N, 4))], {"axes": (1, 2, 0)}),
        case("permute_dims", [T((2, 3, 4))], {}),
        case("expand_dims", [T((N, 4))], {"axis": [0, -1]}),
        case("squeeze", [T((1, N, 1, 4))], {}),
        case("squeeze", [T((1, 3, 1))], {"axis": 0}),
        case("concat", [TupleType([T((N, 2)), T((N, 3))])], {"axis": 1}),
        case("concat", [T((N, 2)), T((2, 2)), T((1, 2))], {"axis": 0}),
        case("split", [T((N, 12))], {"indices_or_sections": 3, "axis": 1}),
        case("split", [T((N * 3, 2))], {"indices_or_sections": [2, 5]}),
        case("strided_slice", [T((10, 8))], {"axes": [0, 1], "begin": [1, -1], "end": [8, 0], "strides": [2, -2]}),
        case("strided_slice", [T((N, 8))], {"axes": [0, 1], "begin": [1, 2], "end": [None, 7], "strides": [1, 3]}),
        case("take", [T((5, 4)), T((4,), "int32")], {"axis": 0}, arrays=[rand((5, 4)), ids]),
        case("take", [T((N, 5)), T((2, 2), "int32")], {"axis": 1, "mode": "wrap"},
             arrays=[rand((N_VALUE, 5)), np.array([[0, 7], [-1, 3]], "int32")]),
        case("embedding", [T((5, 4)), T((4,), "int32")], arrays=[rand((5, 4)), ids]),
    ])


def test_legalize_reduce():
    run_cases([
        case("sum", [T((N, 5, 4))]),
        case("sum", [T((N, 5, 4), "int32")], {"axis": 1, "keepdims": True}),
        case("mean", [T((N, 5, 4))], {"axis": [0, 2]}),
        case("mean", [T((4, 6))], {"axis": -1, "keepdims": True}),
        case("max", [T((N, 5))], {"axis": 0}),
        case("max", [T((3, 5), "int32")], {}),
        case("sum", [T((N, 2))], {"axis": []}),
        case("mean", [T((2, 2))], {"axis": [], "keepdims": True}),
    ], rtol=1e-5, atol=1e-5)


def test_legalize_attention():
    fmask = np.where(RNG.random((1, 1, 1, 5)) < 0.3, -1e4, 0.0).astype("float32")
    bmask = RNG.random((2, 1, 3, N_VALUE)) < 0.7
    bmask[..., 0] = True  # every query sees at least one key
    run_cases([
        case("scaled_dot_product_attention", [T((1, 2, 4, 8))] * 3),
        case("scaled_dot_product_attention", [T((1, 2, N, 8))] * 3, {"causal": True}),
        case("scaled_dot_product_attention", [T((1, 2, 3, 8)), T((1, 2, 5, 8)), T((1, 2, 5, 4)), T((1, 1, 1, 5))],
             {"scale": 0.5}, arrays=[rand((1, 2, 3, 8)), rand((1, 2, 5, 8)), rand((1, 2, 5, 4)), fmask]),
        case("scaled_dot_product_attention", [T((2, 4, 3, 8)), T((2, 2, N, 8)), T((2, 2, N, 8)),
                                              T((2, 1, 3, N), "bool")], {"causal": True},
             arrays=[rand((2, 4, 3, 8)), rand((2, 2, N_VALUE, 8)), rand((2, 2, N_VALUE, 8)), bmask]),
    ], rtol=1e-4, atol=1e-5)


# -- the references against plain numpy and known values ---------------------------------------------

def ref(op, *arrays, **attrs):
    return get_op(op).reference(list(arrays), attrs)


def test_reference_known_values():
    x = np.array([-1.0, 0.0, 0.5, 1.0], "float32")
    np.testing.assert_allclose(ref("erf", x), [-0.8427007929, 0.0, 0.5204998778, 0.8427007929], rtol=1e-6)
    np.testing.assert_allclose(ref("gelu", x), [-0.1586552539, 0.0, 0.3457312306, 0.8413447461], rtol=1e-6)
    np.testing.assert_allclose(ref("gelu", x, approximate="tanh"), [-0.1588080094, 0.0, 0.3457140028, 0.8411919906],
                               rtol=1e-6)
    np.testing.assert_allclose(ref("silu", x), x / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(ref("rsqrt", np.array([4.0], "float32")), [0.5])
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ref("softmax", np.array([[1, 2, 3]], "float32")), [e / e.sum()], rtol=1e-6)
    np.testing.assert_allclose(ref("log_softmax", np.array([[1, 2, 3]], "float32")), [np.log(e / e.sum())],
                               rtol=1e-6)


def test_reference_norms_and_linear_match_plain_numpy():
    x, g, b = rand((3, 8)), rand((8,)), rand((8,))
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ref("layer_norm", x, g, b, eps=1e-5), (x - mu) / np.sqrt(var + 1e-5) * g + b,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ref("rms_norm", x, g, eps=1e-6),
                               x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * g, rtol=1e-5, atol=1e-6)
    w = rand((5, 8))
    np.testing.assert_allclose(ref("linear", x, w, b[:5]), x @ w.T + b[:5], rtol=1e-5, atol=1e-6)


def test_reference_attention_matches_a_loop():
    q, k, v = rand((1, 2, 3, 4)), rand((1, 1, 5, 4)), rand((1, 1, 5, 2))
    got = ref("scaled_dot_product_attention", q, k, v, causal=True)
    want = np.zeros((1, 2, 3, 2))
    for h in range(2):
        for i in range(3):
            keys = range(i + 2 + 1)  # bottom-right causal: 5 keys, 3 queries, query i sees keys 0..i+2
            s = np.array([q[0, h, i] @ k[0, 0, j] / 2.0 for j in keys])
            p = np.exp(s - s.max())
            want[0, h, i] = sum(p[j] * v[0, 0, j] for j in keys) / p.sum()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# -- (c) bad shapes and dtypes --------------------------------------------------------------------

M = wb.var("m")
ERROR_CASES = [
    ("add", [T((N, 4)), T((3,))], {}, r"add: the shapes of x1 \(n, 4\) and x2 \(3,\) cannot be broadcast.*4 and 3 differ"),
    ("add", [T((N,)), T((M,))], {}, r"add: .*n and m are not provably equal"),
    ("add", [T((4,)), T((4,), "int32")], {}, r"add: .*different dtypes \(float32 vs int32\)"),
    ("subtract", [T((2, 3)), T((3, 2))], {}, r"^subtract: "),
    ("multiply", [T((4,), "bool"), T((4,), "bool")], {}, r"^multiply: the argument x1 must be a numeric tensor"),
    ("divide", [T((4,), "int32"), T((4,), "int32")], {}, r"^divide: the argument x1 must be a float tensor"),
    ("where", [T((4,)), T((4,)), T((4,))], {}, r"^where: the argument condition must be a bool tensor"),
    ("where", [T((4,), "bool"), T((4,)), T((5,))], {}, r"^where: the shapes of condition \(4,\) and x2 \(5,\)"),
    ("negative", [T((4,), "bool")], {}, r"^negative: "),
    ("exp", [T((4,), "int32")], {}, r"^exp: the argument x must be a float tensor, got int32 \(4,\)"),
    ("tanh", [T((4,), "int8")], {}, r"^tanh: "),
    ("erf", [T((4,), "int8")], {}, r"^erf: "),
    ("sqrt", [T((4,), "int64")], {}, r"^sqrt: "),
    ("rsqrt", [T((4,), "int64")], {}, r"^rsqrt: "),
    ("gelu", [T((4,))], {"approximate": "fast"}, r"^gelu: approximate must be 'none' \(erf form\) or 'tanh'"),
    ("silu", [T((4,), "int32")], {}, r"^silu: "),
    ("relu", [T((4,)), T((4,))], {}, r"^relu: expects 1 argument"),
    ("astype", [T((4,))], {"dtype": "float33"}, r"^astype: dtype must be a dtype name"),
    ("astype", [T((4,))], {}, r"^astype: the attribute dtype is missing"),
    ("matmul", [T((N, 784)), T((128, 10))], {},
     r"^matmul: the inner dimensions of x \(n, 784\) and w \(128, 10\) differ: 784 vs 128$"),
    ("matmul", [T((N, M)), T((N, 10))], {}, r"^matmul: the inner dimensions .* are not provably equal: m vs n"),
    ("matmul", [T((2, 3, 4)), T((5, 4, 6))], {}, r"^matmul: the shapes of x \(2, 3, 4\) and w \(5, 4, 6\) cannot"),
    ("matmul", [T((3, 4)), T((4, 2), "float16")], {}, r"^matmul: .*different dtypes"),
    ("matmul", [T(()), T((4, 2))], {}, r"^matmul: the argument x must have at least one dimension"),
    ("linear", [T((N, 8)), T((6, 7))], {}, r"^linear: the last dimension \(in_features\) of x \(n, 8\) and w \(6, 7\)"),
    ("linear", [T((N, 8)), T((6, 8)), T((5,))], {}, r"^linear: the bias b \(5,\) must be \(6,\)"),
    ("linear", [T((N, 8)), T((6, 8, 1))], {}, r"^linear: the weight w must be 2-D"),
    ("softmax", [T((4, 5))], {"axis": 2}, r"^softmax: axis 2 is out of range for a tensor of 2 dimension"),
    ("log_softmax", [T((4, 5), "int32")], {}, r"^log_softmax: the argument x must be a float tensor"),
    ("layer_norm", [T((N, 16)), T((8,)), T((16,))], {},
     r"^layer_norm: the argument gamma \(8,\) must have the shape \(16,\) of the normalised axes \[1\]"),
    ("layer_norm", [T((N, 16)), T((16,))], {}, r"^layer_norm: expects 3 argument"),
    ("rms_norm", [T((N, 16)), T((16,), "float16")], {}, r"^rms_norm: .*different dtypes"),
    ("take", [T((5, 4)), T((3,))], {}, r"^take: the argument indices must be an integer tensor, got float32 \(3,\)"),
    ("take", [T((5, 4)), T((3,), "int32")], {"axis": 2}, r"^take: axis 2 is out of range"),
    ("embedding", [T((5,)), T((3,), "int32")], {}, r"^embedding: the table must be 2-D"),
    ("reshape", [T((N, 4))], {"shape": (M, 4)},
     r"^reshape: cannot reshape x \(n, 4\) into \(m, 4\): the element counts n \* 4 and m \* 4 are not provably"),
    ("reshape", [T((2, 6))], {"shape": (5, 2)}, r"^reshape: .*the element counts 12 and 10 differ"),
    ("reshape", [T((2, 6))], {"shape": (5, -1)}, r"^reshape: .*12 elements are not provably a multiple of 5"),
    ("reshape", [T((2, 6))], {"shape": (-1, -1)}, r"^reshape: at most one shape entry may be -1"),
    ("permute_dims", [T((2, 3))], {"axes": (0, 0)}, r"^permute_dims: axes \[0, 0\] are not a permutation"),
    ("expand_dims", [T((2, 3))], {"axis": 4}, r"^expand_dims: axis 4 is out of range"),
    ("squeeze", [T((N, 3))], {"axis": 0}, r"^squeeze: dimension 0 of x \(n, 3\) is n, not provably 1"),
    ("squeeze", [T((2, 3))], {"axis": 1}, r"^squeeze: dimension 1 of x \(2, 3\) is 3, not 1"),
    ("concat", [T((N, 2)), T((N, 3))], {"axis": 0}, r"^concat: x0 \(n, 2\) and x1 \(n, 3\) differ in dimension 1"),
    ("concat", [TupleType([T((2,)), T((2,), "int32")])], {}, r"^concat: .*different dtypes"),
    ("concat", [], {}, r"^concat: needs at least one tensor"),
    ("split", [T((N, 10))], {"indices_or_sections": 3, "axis": 1},
     r"^split: dimension 1 of x \(n, 10\) \(10\) is not provably divisible into 3 equal sections"),
    ("split", [T((N, 10))], {"indices_or_sections": 2}, r"^split: dimension 0 of x \(n, 10\) \(n\) is not provably"),
    ("split", [T((N,))], {"indices_or_sections": [3, 1]}, r"^split: split points \[3, 1\]"),
    ("strided_slice", [T((N, 4))], {"axes": [0], "begin": [0], "end": [2], "strides": [-1]},
     r"^strided_slice: a negative stride"),
    ("strided_slice", [T((N, 4))], {"axes": [0, 1], "begin": [0], "end": [2]}, r"^strided_slice: axes \[0, 1\]"),
    ("sum", [T((N, 4))], {"axis": [1, -1]}, r"^sum: axis \[1, -1\] names an axis twice"),
    ("mean", [T((N, 4), "int32")], {}, r"^mean: the argument x must be a float tensor"),
    ("max", [T((N, 4), "bool")], {}, r"^max: "),
    ("scaled_dot_product_attention", [T((2, 8, 4))] * 3, {}, r"^scaled_dot_product_attention: the argument q must "
                                                             r"be 4-D"),
    ("scaled_dot_product_attention", [T((1, 2, 4, 8)), T((1, 2, 4, 16)), T((1, 2, 4, 8))], {},
     r"^scaled_dot_product_attention: the head dimensions of q \(1, 2, 4, 8\) and k \(1, 2, 4, 16\)"),
    ("scaled_dot_product_attention", [T((1, 3, 4, 8)), T((1, 2, 4, 8)), T((1, 2, 4, 8))], {},
     r"^scaled_dot_product_attention: the head count of k"),
    ("scaled_dot_product_attention", [T((1, 2, N, 8))] * 3 + [T((1, 1, N, 5))], {},
     r"^scaled_dot_product_attention: the mask \(1, 1, n, 5\) does not broadcast"),
    ("scaled_dot_product_attention", [T((1, 2, N, 8))] * 3 + [T((1, 1, 1, N), "int32")], {},
     r"^scaled_dot_product_attention: the mask must be bool or float32"),
]


@pytest.mark.parametrize("op, types, attrs, message", ERROR_CASES,
                         ids=[f"{c[0]}-{k}" for k, c in enumerate(ERROR_CASES)])
def test_bad_arguments_raise_a_graph_type_error_naming_the_op(op, types, attrs, message):
    with pytest.raises(GraphTypeError, match=message):
        get_op(op).infer(types, attrs)


def test_non_tensor_argument_is_refused():
    with pytest.raises(GraphTypeError, match=r"^exp: the argument x must be a tensor"):
        get_op("exp").infer([TupleType([T((2,))])], {})
    with pytest.raises(GraphTypeError, match=r"^add: the argument x2 must have a known rank"):
        get_op("add").infer([T((2,)), TensorType(None, "float32")], {})


def test_unary_ops_keep_an_unknown_rank():
    assert repr(get_op("exp").infer([TensorType(None, "float32")], {})) == 'Tensor(None, "float32")'


def test_strided_slice_with_a_symbolic_end_is_taken_as_in_bounds():
    import numpy as np

    import workbench as wb
    from workbench import te
    from workbench.ir.graph.op import get_op
    from workbench.ir.graph.types import TensorType

    seq = wb.var("seq")
    op = get_op("strided_slice")
    attrs = {"axes": [0], "begin": [0], "end": [seq]}
    out = op.infer([TensorType((512, 8), "float32")], attrs)
    assert str(out.shape[0]) == "seq" and int(out.shape[1]) == 8
    t = te.placeholder((512, 8), "float32", name="t")
    y = op.legalize([t], attrs)
    f = wb.build(wb.create_prim_func([t, y]))
    x = np.arange(512 * 8, dtype="float32").reshape(512, 8)
    got = np.zeros((19, 8), "float32")
    f(x, got)
    np.testing.assert_array_equal(got, x[:19])
