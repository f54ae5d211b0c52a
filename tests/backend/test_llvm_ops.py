"""Every dtype, operator and intrinsic compiled by the LLVM backend, checked against numpy."""
import math

import ml_dtypes
import numpy as np
import pytest

import workbench as wb
from workbench.ir import expr as E
from workbench.ir.dtype import to_numpy

from backend_helpers import elementwise

N = 37


def run(func, *inputs, out_dtype):
    f = wb.build(func)
    out = np.zeros(inputs[0].shape if inputs else (N,), dtype=to_numpy(out_dtype))
    f(*inputs, out)
    return out


@pytest.mark.parametrize("kind", ["serial", "vectorized", "parallel"])
@pytest.mark.parametrize("dt", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_integer_arithmetic_wraps_like_numpy(dt, kind, rng):
    info = np.iinfo(dt)
    a = rng.integers(info.min, info.max, N, dtype=dt, endpoint=True)
    b = rng.integers(info.min, info.max, N, dtype=dt, endpoint=True)
    func = elementwise(lambda x, y: x * y + x - y, [dt, dt], dt, N, kind, name=f"wrap_{dt}_{kind}")
    with np.errstate(over="ignore"):
        want = a * b + a - b
    np.testing.assert_array_equal(run(func, a, b, out_dtype=dt), want)


def test_int8_wraparound_explicit():
    a = np.array([127, -128, 100, -100] * 3, dtype="int8")
    func = elementwise(lambda x: x + E.const(1, "int8"), ["int8"], "int8", a.size, "vectorized", name="w8")
    np.testing.assert_array_equal(run(func, a, out_dtype="int8"),
                                  np.array([-128, -127, 101, -99] * 3, dtype="int8"))


@pytest.mark.parametrize("dt", ["int8", "int32", "int64"])
def test_floordiv_floormod_truncdiv_truncmod_negative(dt):
    vals = np.array([-7, -6, -1, 0, 1, 6, 7, -128 if dt == "int8" else -1000, 100], dtype=dt)
    a = np.repeat(vals, len(vals))
    b = np.tile(np.array([3, -3, 2, -2, 1, -1, 5, -5, 7], dtype=dt), len(vals))
    n = a.size
    for op, ref in [(lambda x, y: x // y, np.floor_divide), (lambda x, y: x % y, np.remainder),
                    (lambda x, y: x / y, lambda x, y: np.trunc(x / y).astype(dt)),
                    (lambda x, y: E.truncmod(x, y), np.fmod)]:
        for kind in ("serial", "vectorized"):
            func = elementwise(op, [dt, dt], dt, n, kind, name="divmod")
            with np.errstate(over="ignore"):
                want = ref(a, b).astype(dt)
            np.testing.assert_array_equal(run(func, a, b, out_dtype=dt), want)


def test_float_floordiv_floormod_match_numpy(rng):
    a = rng.normal(size=N).astype("float32") * 10
    b = rng.choice(np.array([-3.0, -0.5, 0.75, 2.0], "float32"), N)
    got = run(elementwise(lambda x, y: x // y, ["float32"] * 2, "float32", N), a, b, out_dtype="float32")
    np.testing.assert_allclose(got, np.floor_divide(a, b), rtol=1e-6)
    got = run(elementwise(lambda x, y: x % y, ["float32"] * 2, "float32", N), a, b, out_dtype="float32")
    np.testing.assert_allclose(got, np.remainder(a, b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dt", ["float16", "float32", "float64"])
@pytest.mark.parametrize("kind", ["serial", "vectorized"])
def test_float_arithmetic(dt, kind, rng):
    a = rng.normal(size=N).astype(dt)
    b = (rng.random(N) + 0.5).astype(dt)
    func = elementwise(lambda x, y: (x + y) * x / y - E.max_(x, y) + E.min_(x, y), [dt, dt], dt, N, kind)
    want = ((a + b) * a / b - np.maximum(a, b) + np.minimum(a, b)).astype(dt)
    tol = 3e-3 if dt == "float16" else 1e-6
    np.testing.assert_allclose(run(func, a, b, out_dtype=dt).astype("float64"), want.astype("float64"),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["serial", "vectorized"])
def test_bfloat16_round_to_nearest_even(kind, rng):
    bf = ml_dtypes.bfloat16
    a = rng.normal(size=N).astype("float32")
    # values exactly between two bfloat16 numbers: ties go to even
    ties = np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -(1.0 + 2 ** -8), 3.0e38, np.inf, -np.inf], "float32")
    a[: ties.size] = ties
    func = elementwise(lambda x: x.astype("bfloat16"), ["float32"], "bfloat16", N, kind, name="to_bf16")
    got = run(func, a, out_dtype="bfloat16")
    np.testing.assert_array_equal(got.view("uint16"), a.astype(bf).view("uint16"))
    # arithmetic in bfloat16 and back to float32
    x = rng.normal(size=N).astype(bf)
    y = rng.normal(size=N).astype(bf)
    func = elementwise(lambda p, q: (p * q + p).astype("float32"), ["bfloat16"] * 2, "float32", N, kind)
    want = ((x * y).astype(bf) + x).astype(bf).astype("float32")
    np.testing.assert_allclose(run(func, x, y, out_dtype="float32"), want, rtol=1e-2, atol=1e-2)


def test_bfloat16_nan_stays_nan():
    a = np.array([np.nan, 1.0], "float32")
    got = run(elementwise(lambda x: x.astype("bfloat16"), ["float32"], "bfloat16", 2), a, out_dtype="bfloat16")
    assert np.isnan(got[0].astype("float32")) and got[1] == 1.0


@pytest.mark.parametrize("src, dst", [("float32", "int32"), ("float32", "uint8"), ("int32", "float32"),
                                      ("uint32", "float64"), ("int64", "int8"), ("int8", "int64"),
                                      ("uint8", "int32"), ("float64", "float16"), ("float16", "float32"),
                                      ("bool", "float32"), ("float32", "bool"), ("int32", "bool"),
                                      ("bfloat16", "float16"), ("int16", "bfloat16")])
def test_casts(src, dst, rng):
    if src == "bool":
        a = rng.random(N) > 0.5
    elif src.startswith(("float", "bfloat")):
        a = (rng.normal(size=N) * 50).astype(to_numpy(src))
        if dst.startswith("uint"):
            a = np.abs(a)
    else:
        info = np.iinfo(src)
        a = rng.integers(max(info.min, -10**6), min(info.max, 10**6), N).astype(src)
    func = elementwise(lambda x: E.cast(x, dst), [src], dst, N, name="cast")
    got = run(func, a, out_dtype=dst)
    with np.errstate(invalid="ignore", over="ignore"):
        want = a.astype(to_numpy(dst)) if not (src.startswith("float") and dst.startswith(("int", "uint"))) \
            else np.trunc(a.astype("float64")).astype(to_numpy(dst))
    np.testing.assert_array_equal(got.astype("float64"), want.astype("float64"))


UNARY = {
    "exp": np.exp, "exp2": np.exp2, "exp10": lambda x: 10.0 ** x, "log": np.log, "log2": np.log2,
    "log10": np.log10, "log1p": np.log1p, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "erf": np.vectorize(math.erf),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "trunc": np.trunc, "nearbyint": np.rint, "abs": np.abs,
}
BINARY = {"pow": np.power, "atan2": np.arctan2, "fmod": np.fmod, "copysign": np.copysign, "hypot": np.hypot}


def _inputs(op, rng):
    if op in ("log", "log2", "log10", "sqrt", "rsqrt", "log1p"):
        return rng.random(N) * 5 + 0.1
    if op in ("asin", "acos"):
        return rng.random(N) * 1.8 - 0.9
    if op in ("round", "nearbyint"):
        return np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.4, 1.6] * 6)[:N]
    return rng.normal(size=N) * 2


def test_every_intrinsic_is_handled():
    from workbench.backend.llvm.codegen import SUPPORTED_INTRINSICS

    assert set(E.INTRINSICS) <= SUPPORTED_INTRINSICS
    assert set(UNARY) | set(BINARY) | {"fma", "isnan", "isinf", "isfinite", "popcount", "if_then_else"} \
        | {n for n in E.INTRINSICS if n.startswith(("bitwise", "shift"))} >= set(E.INTRINSICS)


@pytest.mark.parametrize("kind", ["serial", "vectorized"])
@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_intrinsics(op, dt, kind, rng):
    a = _inputs(op, rng).astype(dt)
    got = run(elementwise(lambda x: E.call(op, x), [dt], dt, N, kind, name=op), a, out_dtype=dt)
    tol = 2e-6 if dt == "float32" else 1e-12
    np.testing.assert_allclose(got, UNARY[op](a.astype("float64")).astype(dt), rtol=tol * 4, atol=tol)


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_intrinsics_float16(op, rng):
    a = _inputs(op, rng).astype("float16")
    got = run(elementwise(lambda x: E.call(op, x), ["float16"], "float16", N, name=op), a, out_dtype="float16")
    np.testing.assert_allclose(got.astype("float32"), UNARY[op](a.astype("float64")).astype("float16"),
                               rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_intrinsics(op, rng):
    a = rng.random(N).astype("float32") * 3 + 0.1
    b = (rng.normal(size=N) * 2).astype("float32")
    got = run(elementwise(lambda x, y: E.call(op, x, y), ["float32"] * 2, "float32", N, "vectorized", name=op),
              a, b, out_dtype="float32")
    np.testing.assert_allclose(got, BINARY[op](a, b), rtol=1e-5, atol=1e-6)


def test_fma_and_float_predicates(rng):
    a, b, c = (rng.normal(size=N).astype("float32") for _ in range(3))
    got = run(elementwise(lambda x, y, z: E.call("fma", x, y, z), ["float32"] * 3, "float32", N), a, b, c,
              out_dtype="float32")
    np.testing.assert_allclose(got, a * b + c, rtol=1e-6)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0] * 8)[:N].astype("float32")
    for op, ref in [("isnan", np.isnan), ("isinf", np.isinf), ("isfinite", np.isfinite)]:
        got = run(elementwise(lambda v: E.call(op, v), ["float32"], "bool", N, name=op), x, out_dtype="bool")
        np.testing.assert_array_equal(got, ref(x))


@pytest.mark.parametrize("dt", ["int32", "uint8", "int64"])
def test_bit_intrinsics(dt, rng):
    info = np.iinfo(dt)
    a = rng.integers(info.min, info.max, N, dtype=dt)
    s = rng.integers(0, 7, N, dtype=dt)
    cases = [(lambda x, y: x & y, np.bitwise_and), (lambda x, y: x | y, np.bitwise_or),
             (lambda x, y: x ^ y, np.bitwise_xor), (lambda x, y: x << y, np.left_shift),
             (lambda x, y: x >> y, np.right_shift), (lambda x, y: ~x, lambda x, y: np.invert(x)),
             (lambda x, y: E.call("popcount", x), lambda x, y: np.array([bin(int(v) & (2 ** info.bits - 1)).count("1") for v in x], dt)),
             (lambda x, y: abs(x), lambda x, y: np.abs(x))]
    for fn, ref in cases:
        got = run(elementwise(fn, [dt, dt], dt, N, name="bits"), a, s, out_dtype=dt)
        np.testing.assert_array_equal(got, ref(a, s).astype(dt))


@pytest.mark.parametrize("dt", ["int32", "uint16", "float32"])
def test_comparisons_logic_select(dt, rng):
    a = rng.integers(0, 5, N).astype(dt)
    b = rng.integers(0, 5, N).astype(dt)
    for fn, ref in [(lambda x, y: x < y, np.less), (lambda x, y: x <= y, np.less_equal),
                    (lambda x, y: x > y, np.greater), (lambda x, y: x >= y, np.greater_equal),
                    (lambda x, y: x == y, np.equal), (lambda x, y: x != y, np.not_equal),
                    (lambda x, y: E.logical_and(x < y, ~(x == 0)), lambda x, y: (x < y) & (x != 0)),
                    (lambda x, y: E.logical_or(x < y, x == 3), lambda x, y: (x < y) | (x == 3))]:
        got = run(elementwise(fn, [dt, dt], "bool", N, "vectorized", name="cmp"), a, b, out_dtype="bool")
        np.testing.assert_array_equal(got, ref(a, b))
    got = run(elementwise(lambda x, y: E.Select(x < y, x, y * 2), [dt, dt], dt, N, "vectorized"), a, b,
              out_dtype=dt)
    np.testing.assert_array_equal(got, np.where(a < b, a, b * 2))


def test_if_then_else_is_lazy_and_let():
    # reading X[i + 1] past the end is guarded by the condition: only the chosen side runs
    from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var

    n = 16
    X, Y = Buffer("X", (n,), "float32"), Buffer("Y", (n,), "float32")
    x, y, i, t = Var("x", "handle"), Var("y", "handle"), Var("i"), Var("t", "float32")
    val = E.Let(t, E.if_then_else(i < n - 1, X[i + 1], E.FloatImm(-1.0, "float32")), t * 2.0)
    f = PrimFunc([x, y], {x: X, y: Y}, For(i, 0, n, "serial", BufferStore(Y, val, [i])))
    a = np.arange(n, dtype="float32")
    out = np.zeros(n, "float32")
    wb.build(f, checks=True)(a, out)  # checks=True: an unguarded read of X[16] would raise
    np.testing.assert_array_equal(out, np.append(a[1:] * 2, -2.0))


def test_bool_buffers_roundtrip(rng):
    a = rng.random(N) > 0.5
    got = run(elementwise(lambda x: ~x, ["bool"], "bool", N, "vectorized"), a, out_dtype="bool")
    np.testing.assert_array_equal(got, ~a)
