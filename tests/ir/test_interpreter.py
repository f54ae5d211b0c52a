"""The reference interpreter ``wb.ir.evaluate``: every statement and expression, checked against numpy.

Programs are built from the IR classes directly (the parser and te are tested elsewhere);
expected values come from numpy, Python's math module or hand-written C semantics.
"""
import math

import ml_dtypes
import numpy as np
import pytest

from workbench.ir import (
    AssertStmt, Block, BlockRealize, Broadcast, Buffer, BufferRegion, BufferStore, Call, Cast, Evaluate,
    FloatImm, For, IfThenElse, IntImm, IterVar, Let, LetStmt, MatchBufferRegion, PrimFunc, Ramp, Range,
    Select, SeqStmt, Var, Allocate, IRModule, call, const, floordiv, floormod, if_then_else, max_, min_,
    truncdiv, truncmod,
)
from workbench.ir.expr import INTRINSICS
from workbench.ir.interpreter import CompileError, InterpreterError, evaluate, python_source

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------
# building helpers


def prim_func(buffers, body, scalars=(), name="f"):
    """A PrimFunc whose parameters are handles for ``buffers`` then the scalar Vars."""
    params, bmap = [], {}
    for b in buffers:
        h = Var(b.name.lower() + "_h", "handle")
        params.append(h)
        bmap[h] = b
    params.extend(scalars)
    return PrimFunc(params, bmap, body, {"global_symbol": name})


def with_root(body, allocs=()):
    return BlockRealize((), True, Block("root", body=body, alloc_buffers=tuple(allocs)))


def block(name, iters, body, init=None, predicate=True, allocs=(), match=()):
    """``iters``: (var, extent or Range, "S"/"R", bound value) per iteration variable."""
    ivs, vals = [], []
    for var, dom, kind, value in iters:
        ivs.append(IterVar(var, dom if isinstance(dom, Range) else Range(0, dom),
                           "reduce" if kind == "R" else "spatial"))
        vals.append(value)
    return BlockRealize(tuple(vals), predicate,
                        Block(name, tuple(ivs), body=body, init=init, alloc_buffers=tuple(allocs),
                              match_buffers=tuple(match)))


def loops(vars_extents, body, kind="serial"):
    for v, ext in reversed(vars_extents):
        body = For(v, 0, ext, kind, body)
    return body


def matmul_func(M, N, K, dtype="float32"):
    A, Bb, C = Buffer("A", (M, K), dtype), Buffer("B", (K, N), dtype), Buffer("C", (M, N), dtype)
    i, j, k = Var("i"), Var("j"), Var("k")
    vi, vj, vk = Var("vi"), Var("vj"), Var("vk")
    blk = block("C", [(vi, M, "S", i), (vj, N, "S", j), (vk, K, "R", k)],
                BufferStore(C, C[vi, vj] + A[vi, vk] * Bb[vk, vj], (vi, vj)),
                init=BufferStore(C, const(0, dtype), (vi, vj)))
    return prim_func([A, Bb, C], with_root(loops([(i, M), (j, N), (k, K)], blk)), name="matmul")


def rand(shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------
# whole programs against numpy


def test_matmul_with_init_matches_numpy():
    f = matmul_func(16, 12, 8)
    a, b = rand((16, 8)), rand((8, 12))
    c = np.full((16, 12), 7.0, "float32")  # garbage in the output: init must overwrite it
    evaluate(f, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_matmul_accumulates_in_float32_like_a_c_loop():
    f = matmul_func(4, 4, 64)
    a, b = rand((4, 64)), rand((64, 4))
    c = np.zeros((4, 4), "float32")
    evaluate(f, a, b, c)
    ref = np.zeros((4, 4), np.float32)
    for k in range(64):  # the same order, in float32
        ref = (ref + a[:, k:k + 1] * b[k:k + 1, :]).astype(np.float32)
    np.testing.assert_array_equal(c, ref)


def test_mm_relu_with_intermediate_buffer():
    n = 16
    A, Bb, C = (Buffer(x, (n, n), "float32") for x in "ABC")
    Y = Buffer("Y", (n, n), "float32")
    i, j, k, i2, j2 = (Var(x) for x in ("i", "j", "k", "i2", "j2"))
    vi, vj, vk, wi, wj = (Var(x) for x in ("vi", "vj", "vk", "wi", "wj"))
    y = block("Y", [(vi, n, "S", i), (vj, n, "S", j), (vk, n, "R", k)],
              BufferStore(Y, Y[vi, vj] + A[vi, vk] * Bb[vk, vj], (vi, vj)),
              init=BufferStore(Y, FloatImm(0.0), (vi, vj)))
    c = block("C", [(wi, n, "S", i2), (wj, n, "S", j2)], BufferStore(C, max_(Y[wi, wj], 0.0), (wi, wj)))
    body = SeqStmt((loops([(i, n), (j, n), (k, n)], y), loops([(i2, n), (j2, n)], c)))
    f = prim_func([A, Bb, C], with_root(body, [Y]))
    a, b, out = rand((n, n)), rand((n, n)), np.empty((n, n), "float32")
    evaluate(f, a, b, out)
    np.testing.assert_allclose(out, np.maximum(a @ b, 0), rtol=1e-5, atol=1e-5)


def test_nondividing_split_predicate_guards_the_tail():
    # for io in range(4), ii in range(32): block where io*32+ii < 100
    A, Bb = Buffer("A", (100,), "float32"), Buffer("B", (100,), "float32")
    io, ii, v = Var("io"), Var("ii"), Var("v")
    blk = block("B", [(v, 100, "S", io * 32 + ii)], BufferStore(Bb, A[v] + 1.0, (v,)),
                predicate=io * 32 + ii < 100)
    f = prim_func([A, Bb], with_root(loops([(io, 4), (ii, 32)], blk)))
    a, b = rand(100), np.zeros(100, "float32")
    evaluate(f, a, b)
    np.testing.assert_array_equal(b, a + np.float32(1))


def test_binding_outside_domain_without_predicate_raises():
    A, Bb = Buffer("A", (100,), "float32"), Buffer("B", (100,), "float32")
    io, ii, v = Var("io"), Var("ii"), Var("v")
    blk = block("B", [(v, 100, "S", io * 32 + ii)], BufferStore(Bb, A[v], (v,)))
    f = prim_func([A, Bb], with_root(loops([(io, 4), (ii, 32)], blk)))
    with pytest.raises(IndexError, match=r"block B: iteration variable v is bound to 100, outside its domain \[0, 100\)"):
        evaluate(f, rand(100), np.zeros(100, "float32"))


@pytest.mark.parametrize("kind,thread", [("serial", None), ("parallel", None), ("vectorized", None),
                                         ("unrolled", None), ("thread_binding", "threadIdx.x"),
                                         ("thread_binding", "blockIdx.y")])
def test_every_loop_kind_runs_every_iteration(kind, thread):
    A, Bb = Buffer("A", (6, 5), "float32"), Buffer("B", (6, 5), "float32")
    i, j = Var("i"), Var("j")
    inner = For(j, 0, 5, kind, BufferStore(Bb, A[i, j] * 3.0, (i, j)), thread=thread)
    f = prim_func([A, Bb], For(i, 0, 6, "serial", inner))
    a, b = rand((6, 5)), np.zeros((6, 5), "float32")
    evaluate(f, a, b)
    np.testing.assert_array_equal(b, a * np.float32(3))


def test_loop_with_nonzero_min_and_symbolic_bounds():
    A = Buffer("A", (10,), "int32")
    i = Var("i")
    lo, ext = Var("lo"), Var("ext")
    f = prim_func([A], For(i, lo, ext, "serial", BufferStore(A, i * i, (i,))), scalars=[lo, ext])
    a = np.zeros(10, "int32")
    evaluate(f, a, 3, 4)
    np.testing.assert_array_equal(a, [0, 0, 0, 9, 16, 25, 36, 0, 0, 0])
    a[:] = 0
    evaluate(f, a, 3, -2)  # a negative extent runs zero times
    assert not a.any()


def test_symbolic_vector_add_with_three_sizes():
    n = Var("n")
    A, Bb, C = (Buffer(x, (n,), "float32") for x in "ABC")
    i, v = Var("i"), Var("v")
    blk = block("C", [(v, n, "S", i)], BufferStore(C, A[v] + Bb[v], (v,)))
    f = prim_func([A, Bb, C], with_root(For(i, 0, n, "serial", blk)))
    for size in (1, 7, 130):
        a, b, c = rand(size), rand(size), np.zeros(size, "float32")
        evaluate(f, a, b, c)
        np.testing.assert_array_equal(c, a + b)
    evaluate(f, *(np.zeros(0, "float32") for _ in range(3)))  # n == 0: nothing runs


def test_zero_dim_buffers():
    A, C = Buffer("A", (8,), "float32"), Buffer("C", (), "float32")
    i = Var("i")
    body = SeqStmt((BufferStore(C, FloatImm(0.0), ()),
                    For(i, 0, 8, "serial", BufferStore(C, C[()] + A[i], ()))))
    f = prim_func([A, C], body)
    a, c = rand(8), np.zeros((), "float32")
    evaluate(f, a, c)
    ref = np.float32(0)
    for x in a:
        ref = np.float32(ref + x)
    assert c[()] == ref


def test_noncontiguous_arrays_are_fine_without_strides():
    A, Bb = Buffer("A", (4, 3), "float32"), Buffer("B", (4, 3), "float32")
    i, j = Var("i"), Var("j")
    f = prim_func([A, Bb], loops([(i, 4), (j, 3)], BufferStore(Bb, A[i, j] - 1.0, (i, j))))
    big = rand((8, 9))
    out = np.zeros((3, 4), "float32").T  # a transposed view
    evaluate(f, big[::2, ::3], out)
    np.testing.assert_array_equal(out, big[::2, ::3] - np.float32(1))


# ---------------------------------------------------------------------------
# integer semantics


def _unary_func(dtype_in, dtype_out, make, n):
    """B[i] = make(A[i]) over n elements."""
    A, Bb = Buffer("A", (n,), dtype_in), Buffer("B", (n,), dtype_out)
    i = Var("i")
    return prim_func([A, Bb], For(i, 0, n, "serial", BufferStore(Bb, make(A[i]), (i,))))


def _binary_func(dtype, make, n, out_dtype=None):
    A, Bb, C = Buffer("A", (n,), dtype), Buffer("B", (n,), dtype), Buffer("C", (n,), out_dtype or dtype)
    i = Var("i")
    return prim_func([A, Bb, C], For(i, 0, n, "serial", BufferStore(C, make(A[i], Bb[i]), (i,))))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"])
@pytest.mark.parametrize("op", ["+", "-", "*"])
def test_integer_arithmetic_wraps_like_c(dtype, op):
    info = np.iinfo(dtype)
    vals = np.array([info.min, info.max, 0, 1, info.max // 2 + 1, info.min // 2 - 1 if info.min else 3],
                    dtype=dtype)
    a = np.repeat(vals, len(vals))
    b = np.tile(vals, len(vals))
    fn = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}[op]
    f = _binary_func(dtype, fn, len(a))
    c = np.zeros(len(a), dtype)
    evaluate(f, a, b, c)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(c, fn(a, b))  # numpy arrays wrap modulo 2**bits


def _c_div(x, y):
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


def test_floordiv_floormod_match_python_on_negatives():
    xs = [-7, -6, -1, 0, 1, 6, 7, -2147483647, 2147483647]
    ys = [3, -3, 1, -1, 7, -7]
    a = np.array([x for x in xs for _ in ys], "int32")
    b = np.array([y for _ in xs for y in ys], "int32")
    for make, py in ((floordiv, lambda x, y: x // y), (floormod, lambda x, y: x % y)):
        f = _binary_func("int32", make, len(a))
        c = np.zeros(len(a), "int32")
        evaluate(f, a, b, c)
        assert c.tolist() == [py(int(x), int(y)) for x, y in zip(a, b)]


def test_truncating_div_and_mod_match_c():
    xs = [-7, -6, -1, 0, 1, 6, 7, -128]
    ys = [3, -3, 1, 2, -2, 7]
    a = np.array([x for x in xs for _ in ys], "int8")
    b = np.array([y for _ in xs for y in ys], "int8")
    f = _binary_func("int8", truncdiv, len(a))
    c = np.zeros(len(a), "int8")
    evaluate(f, a, b, c)
    assert c.tolist() == [_c_div(int(x), int(y)) for x, y in zip(a, b)]
    f = _binary_func("int8", truncmod, len(a))
    evaluate(f, a, b, c)
    assert c.tolist() == [int(x) - _c_div(int(x), int(y)) * int(y) for x, y in zip(a, b)]
    # INT_MIN / -1 wraps (C leaves it undefined; LLVM's sdiv traps; we wrap and say so)
    f = _binary_func("int8", truncdiv, 1)
    evaluate(f, np.array([-128], "int8"), np.array([-1], "int8"), c[:1])
    assert c[0] == -128


def test_int8_uint8_wraparound_through_casts():
    a = np.array([100, 127, -128, -1, 0], "int8")
    f = _unary_func("int8", "uint8", lambda x: Cast("uint8", x * IntImm(3, "int8")), 5)
    out = np.zeros(5, "uint8")
    evaluate(f, a, out)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, (a * np.int8(3)).astype("uint8"))
    f = _unary_func("uint8", "uint8", lambda x: x - IntImm(200, "uint8"), 5)
    u = np.array([0, 1, 199, 200, 255], "uint8")
    evaluate(f, u, out)
    np.testing.assert_array_equal(out, (u.astype(int) - 200) % 256)


def test_integer_division_by_zero_raises():
    f = _binary_func("int32", floordiv, 1)
    with pytest.raises(ZeroDivisionError):
        evaluate(f, np.array([1], "int32"), np.array([0], "int32"), np.zeros(1, "int32"))


def test_index_arithmetic_overflowing_int32_wraps():
    # (i + 2**31 - 8) in int32 wraps negative; guarded by a comparison, it picks the else branch
    A = Buffer("A", (16,), "int32")
    i = Var("i")
    big = IntImm(2 ** 31 - 8)
    f = prim_func([A], For(i, 0, 16, "serial", BufferStore(A, i + big, (i,))))
    a = np.zeros(16, "int32")
    evaluate(f, a)
    np.testing.assert_array_equal(a, (np.arange(16, dtype=np.int64) + 2 ** 31 - 8).astype(np.int32))


# ---------------------------------------------------------------------------
# floats and casts


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_float_arithmetic_rounds_in_its_dtype(dtype):
    npdt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    a = (RNG.standard_normal(64) * 3).astype(npdt)
    b = (RNG.standard_normal(64) * 3).astype(npdt)
    for fn in (lambda x, y: x * y + x, lambda x, y: (x - y) / y, lambda x, y: x * x * y):
        f = _binary_func(dtype, fn, 64)
        c = np.zeros(64, npdt)
        evaluate(f, a, b, c)
        ref = fn(a, b)  # numpy rounds each array op to the dtype
        assert ref.dtype == npdt
        np.testing.assert_array_equal(c.astype(np.float64), ref.astype(np.float64))


def test_float16_accumulation_is_not_done_in_float32():
    # 2048 + 1 is not representable in float16: a float16 sum stays at 2048
    f = _binary_func("float16", lambda x, y: x + y, 1)
    c = np.zeros(1, "float16")
    evaluate(f, np.array([2048], "float16"), np.array([1], "float16"), c)
    assert c[0] == 2048


def test_float_division_by_zero_gives_inf_and_nan():
    f = _binary_func("float32", lambda x, y: x / y, 3)
    c = np.zeros(3, "float32")
    evaluate(f, np.array([1, -1, 0], "float32"), np.zeros(3, "float32"), c)
    assert c[0] == np.inf and c[1] == -np.inf and np.isnan(c[2])


def test_casts():
    x = np.array([2.7, -2.7, 0.5, -0.5, 127.9, 1e9], "float32")
    f = _unary_func("float32", "int32", lambda v: Cast("int32", v), 6)
    out = np.zeros(6, "int32")
    evaluate(f, x, out)
    np.testing.assert_array_equal(out, np.trunc(x).astype("int32"))  # toward zero
    f = _unary_func("float32", "bool", lambda v: Cast("bool", v), 6)
    ob = np.zeros(6, bool)
    evaluate(f, np.array([0, -0.0, 1, np.nan, -3, 0.1], "float32"), ob)
    np.testing.assert_array_equal(ob, [False, False, True, True, True, True])
    f = _unary_func("int32", "float32", lambda v: Cast("float32", v), 3)
    of = np.zeros(3, "float32")
    ints = np.array([16777217, -16777219, 3], "int32")
    evaluate(f, ints, of)
    np.testing.assert_array_equal(of, ints.astype("float32"))
    f = _unary_func("int64", "float32", lambda v: Cast("float32", v), 2)
    big = np.array([2 ** 60 + 2 ** 36 + 1, -(2 ** 62) - 1], "int64")  # rounds once, not via double
    evaluate(f, big, of[:2])
    np.testing.assert_array_equal(of[:2], big.astype("float32"))
    f = _unary_func("float32", "bfloat16", lambda v: Cast("bfloat16", v), 6)
    obf = np.zeros(6, ml_dtypes.bfloat16)
    evaluate(f, x, obf)
    np.testing.assert_array_equal(obf, x.astype(ml_dtypes.bfloat16))
    f = _unary_func("float32", "float16", lambda v: Cast("float16", v), 6)
    oh = np.zeros(6, "float16")
    evaluate(f, x, oh)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(oh, x.astype("float16"))  # 1e9 overflows to inf


def test_cast_of_nan_to_int_raises():
    f = _unary_func("float32", "int32", lambda v: Cast("int32", v), 1)
    with pytest.raises(InterpreterError, match="cannot cast nan to int32"):
        evaluate(f, np.array([np.nan], "float32"), np.zeros(1, "int32"))


def test_min_max_select_on_floats():
    a = np.array([1, -2, np.nan, 5], "float32")
    b = np.array([0, 3, 1, np.nan], "float32")
    for make, ref in ((min_, np.minimum), (max_, np.maximum)):
        f = _binary_func("float32", make, 4)
        c = np.zeros(4, "float32")
        evaluate(f, a, b, c)
        np.testing.assert_array_equal(c, ref(a, b))  # NaN propagates, like numpy
    f = _binary_func("float32", lambda x, y: Select(x > y, x, y * 2.0), 4)
    c = np.zeros(4, "float32")
    evaluate(f, a, b, c)
    np.testing.assert_array_equal(c, np.where(a > b, a, b * np.float32(2)))


# ---------------------------------------------------------------------------
# intrinsics

_UNARY_REF = {
    "exp": np.exp, "exp2": np.exp2, "exp10": lambda x: np.power(10.0, x), "log": np.log, "log2": np.log2,
    "log10": np.log10, "log1p": np.log1p, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": np.vectorize(math.erf), "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin,
    "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "floor": np.floor,
    "ceil": np.ceil, "round": np.rint, "trunc": np.trunc, "nearbyint": np.rint, "abs": np.abs,
}
_BINARY_REF = {"pow": np.power, "atan2": np.arctan2, "fmod": np.fmod, "copysign": np.copysign,
               "hypot": np.hypot}


def _inputs(op):
    if op in ("asin", "acos"):
        return np.linspace(-0.99, 0.99, 24)
    if op in ("log", "log2", "log10", "sqrt", "rsqrt"):
        return np.linspace(0.01, 30, 24)
    if op == "log1p":
        return np.linspace(-0.9, 30, 24)
    if op in ("round", "nearbyint"):
        return np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 2.51] * 3)
    return np.linspace(-4, 4, 24)


@pytest.mark.parametrize("op", sorted(_UNARY_REF))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary_float_intrinsics_match_numpy(op, dtype):
    x = _inputs(op).astype(dtype)
    f = _unary_func(dtype, dtype, lambda v: call(op, v), len(x))
    out = np.zeros(len(x), dtype)
    evaluate(f, x, out)
    ref = _UNARY_REF[op](x.astype(np.float64)).astype(dtype)  # in double, rounded once
    np.testing.assert_allclose(out, ref, rtol=2e-7 if dtype == "float32" else 1e-15, atol=0)


@pytest.mark.parametrize("op", sorted(_BINARY_REF))
def test_binary_float_intrinsics_match_numpy(op):
    x = np.linspace(0.1, 3, 12).astype("float32")
    y = np.linspace(-2, 2.5, 12).astype("float32")
    f = _binary_func("float32", lambda a, b: call(op, a, b), 12)
    out = np.zeros(12, "float32")
    evaluate(f, x, y, out)
    np.testing.assert_allclose(out, _BINARY_REF[op](x.astype(np.float64), y.astype(np.float64)).astype("float32"),
                               rtol=2e-7)


def test_math_edge_cases_follow_c_not_python_exceptions():
    x = np.array([1000.0, 0.0, -1.0, np.inf, np.nan], "float32")
    f = _unary_func("float32", "float32", lambda v: call("exp", v), 5)
    out = np.zeros(5, "float32")
    evaluate(f, x, out)
    np.testing.assert_array_equal(out, [np.inf, 1, np.float32(math.exp(-1)), np.inf, np.nan])
    f = _unary_func("float32", "float32", lambda v: call("log", v), 5)
    evaluate(f, x, out)
    np.testing.assert_array_equal(out[1:], [-np.inf, np.nan, np.inf, np.nan])
    f = _unary_func("float32", "float32", lambda v: call("sqrt", v), 5)
    evaluate(f, x, out)
    assert np.isnan(out[2]) and out[3] == np.inf
    f = _binary_func("float32", lambda a, b: call("pow", a, b), 2)
    evaluate(f, np.array([-8, 10], "float32"), np.array([1 / 3, 100], "float32"), out[:2])
    assert np.isnan(out[0]) and out[1] == np.inf


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_intrinsics_on_narrow_floats_round_once(dtype):
    npdt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = np.linspace(-3, 3, 16).astype(npdt)
    for op in ("exp", "tanh", "sigmoid", "erf", "sqrt"):
        xin = np.abs(x) if op == "sqrt" else x
        f = _unary_func(dtype, dtype, lambda v: call(op, v), 16)
        out = np.zeros(16, npdt)
        evaluate(f, xin, out)
        ref = _UNARY_REF[op](xin.astype(np.float64)).astype(npdt)
        np.testing.assert_array_equal(out.astype(np.float64), ref.astype(np.float64))


def test_fma_rounds_once():
    # a*b+c where the double product already rounds: fused gives the exact answer
    a = np.array([1 + 2 ** -30, 3.0], "float64")
    b = np.array([1 - 2 ** -30, 5.0], "float64")
    c = np.array([-1.0, 0.5], "float64")
    A, Bb, C, D = (Buffer(x, (2,), "float64") for x in "ABCD")
    i = Var("i")
    f = prim_func([A, Bb, C, D], For(i, 0, 2, "serial", BufferStore(D, call("fma", A[i], Bb[i], C[i]), (i,))))
    d = np.zeros(2)
    evaluate(f, a, b, c, d)
    assert d[0] == -(2.0 ** -60) and d[1] == 15.5  # a*b+c in doubles would give 0.0
    # float32: exact result rounded once (no double rounding through float64)
    A, Bb, C, D = (Buffer(x, (1,), "float32") for x in "ABCD")
    f = prim_func([A, Bb, C, D], For(i, 0, 1, "serial", BufferStore(D, call("fma", A[i], Bb[i], C[i]), (i,))))
    x = np.float32(1 + 2 ** -23)
    d32 = np.zeros(1, "float32")
    evaluate(f, np.array([x]), np.array([x]), np.array([np.float32(-1)]), d32)
    assert d32[0] == np.float32(2 ** -22 + 2 ** -46)


def test_isnan_isinf_isfinite():
    x = np.array([0, np.nan, np.inf, -np.inf, 1e30], "float32")
    for op, ref in (("isnan", np.isnan), ("isinf", np.isinf), ("isfinite", np.isfinite)):
        f = _unary_func("float32", "bool", lambda v: call(op, v), 5)
        out = np.zeros(5, bool)
        evaluate(f, x, out)
        np.testing.assert_array_equal(out, ref(x))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint32", "int64"])
def test_bitwise_intrinsics_match_numpy(dtype):
    info = np.iinfo(dtype)
    a = np.array([0, 1, 5, info.max, info.min, 0x55 % (info.max + 1), 3, 7], dtype)
    b = np.array([3, 1, 2, 1, 4, 0, 1, 5], dtype)
    refs = {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor,
            "shift_left": np.left_shift, "shift_right": np.right_shift}
    for op, ref in refs.items():
        f = _binary_func(dtype, lambda x, y: call(op, x, y), 8)
        c = np.zeros(8, dtype)
        evaluate(f, a, b, c)
        np.testing.assert_array_equal(c, ref(a, b), err_msg=op)
    f = _unary_func(dtype, dtype, lambda v: call("bitwise_not", v), 8)
    c = np.zeros(8, dtype)
    evaluate(f, a, c)
    np.testing.assert_array_equal(c, np.invert(a))
    f = _unary_func(dtype, dtype, lambda v: call("popcount", v), 8)
    evaluate(f, a, c)
    np.testing.assert_array_equal(c, np.bitwise_count(a).astype(dtype))
    if dtype.startswith("int"):
        f = _unary_func(dtype, dtype, lambda v: call("abs", v), 8)
        evaluate(f, a, c)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(c, np.abs(a))  # abs(INT_MIN) wraps to INT_MIN


def test_every_registered_intrinsic_is_covered():
    covered = set(_UNARY_REF) | set(_BINARY_REF) | {"fma", "isnan", "isinf", "isfinite", "if_then_else",
                                                     "bitwise_and", "bitwise_or", "bitwise_xor", "shift_left",
                                                     "shift_right", "bitwise_not", "popcount"}
    assert set(INTRINSICS) <= covered, set(INTRINSICS) - covered


def test_unknown_call_raises_only_when_reached():
    A = Buffer("A", (2,), "float32")
    i = Var("i")
    ext = Call("call_extern", ("my_func", A[i]), "float32")
    f = prim_func([A], For(i, 0, 2, "serial",
                           IfThenElse(i > 5, BufferStore(A, ext, (i,)), BufferStore(A, FloatImm(1.0), (i,)))))
    a = np.zeros(2, "float32")
    evaluate(f, a)  # the call is never reached
    assert (a == 1).all()
    g = prim_func([A], For(i, 0, 2, "serial", BufferStore(A, ext, (i,))))
    with pytest.raises(InterpreterError, match="call_extern"):
        evaluate(g, a)


# ---------------------------------------------------------------------------
# control flow, lets, laziness


def test_if_then_else_is_lazy_and_guards_out_of_bounds_loads():
    A, Bb = Buffer("A", (8,), "float32"), Buffer("B", (10,), "float32")
    i = Var("i")
    # B[i] = if_then_else(i < 8, A[i], 0) for i in range(10): A[8], A[9] are never read
    f = prim_func([A, Bb], For(i, 0, 10, "serial",
                               BufferStore(Bb, if_then_else(i < 8, A[i], FloatImm(0.0)), (i,))))
    a, b = rand(8), np.full(10, 5, "float32")
    evaluate(f, a, b)
    np.testing.assert_array_equal(b, np.concatenate([a, [0, 0]]))
    # Select evaluates both sides: the same guard does not protect the load
    g = prim_func([A, Bb], For(i, 0, 10, "serial", BufferStore(Bb, Select(i < 8, A[i], FloatImm(0.0)), (i,))))
    with pytest.raises(IndexError, match="buffer A"):
        evaluate(g, a, b)


def test_if_statement_and_assert():
    A = Buffer("A", (6,), "int32")
    i = Var("i")
    f = prim_func([A], For(i, 0, 6, "serial", IfThenElse(floormod(i, 2) == 0, BufferStore(A, i, (i,)),
                                                         BufferStore(A, -i, (i,)))))
    a = np.zeros(6, "int32")
    evaluate(f, a)
    np.testing.assert_array_equal(a, [0, -1, 2, -3, 4, -5])
    n = Var("n")
    g = prim_func([A], AssertStmt(n < 4, "n must be below 4", Evaluate(IntImm(0))), scalars=[n])
    evaluate(g, a, 3)
    with pytest.raises(AssertionError, match="n must be below 4"):
        evaluate(g, a, 4)


def test_let_expression_and_let_statement():
    A, Bb = Buffer("A", (5,), "float32"), Buffer("B", (5,), "float32")
    i, x, y = Var("i"), Var("x", "float32"), Var("y", "float32")
    # B[i] = let x = A[i] * 2 in x * x + x ; via LetStmt y = ... around
    val = Let(x, Bb.load((i,)) if False else A[i] * 2.0, x * x + x)
    body = LetStmt(y, A[i] - 1.0, BufferStore(Bb, val + y, (i,)))
    f = prim_func([A, Bb], For(i, 0, 5, "serial", body))
    a, b = rand(5), np.zeros(5, "float32")
    evaluate(f, a, b)
    x_ = a * np.float32(2)
    np.testing.assert_array_equal(b, (x_ * x_ + x_) + (a - np.float32(1)))


def test_allocate_and_uninitialised_reads_show_as_nan():
    A, Bb = Buffer("A", (4,), "float32"), Buffer("B", (4,), "float32")
    T = Buffer("T", (4,), "float32", scope="local")
    i = Var("i")
    # T[0] is never written; B = T + A
    body = Allocate(T, SeqStmt((For(i, 1, 2, "serial", BufferStore(T, A[i], (i,))),
                                For(i, 0, 4, "serial", BufferStore(Bb, T[i] + A[i], (i,))))))
    f = prim_func([A, Bb], body)
    a, b = rand(4), np.zeros(4, "float32")
    evaluate(f, a, b)
    assert np.isnan(b[0]) and np.isnan(b[3])
    np.testing.assert_array_equal(b[1:3], a[1:3] * 2)


def test_block_alloc_buffer_is_fresh_for_each_block_instance():
    A = Buffer("A", (3,), "int32")
    T = Buffer("T", (1,), "int32")
    i, v = Var("i"), Var("v")
    # each instance: if v > 0 read T[0] left from before? It must be the fresh sentinel again.
    inner = SeqStmt((IfThenElse(v == 0, BufferStore(T, IntImm(42), (0,))), BufferStore(A, T[0], (v,))))
    blk = block("B", [(v, 3, "S", i)], inner, allocs=[T])
    f = prim_func([A], with_root(For(i, 0, 3, "serial", blk)))
    a = np.zeros(3, "int32")
    evaluate(f, a)
    assert a.tolist() == [42, np.iinfo("int32").min, np.iinfo("int32").min]


def test_nested_blocks_and_init_with_two_reduce_axes():
    # C[i] = sum_{j,k} A[i, j, k], init when both j and k are at their minimum
    A, C = Buffer("A", (3, 4, 5), "float64"), Buffer("C", (3,), "float64")
    i, j, k = Var("i"), Var("j"), Var("k")
    vi, vj, vk = Var("vi"), Var("vj"), Var("vk")
    inner = block("C", [(vi, 3, "S", i), (vj, 4, "R", j), (vk, 5, "R", k)],
                  BufferStore(C, C[vi] + A[vi, vj, vk], (vi,)), init=BufferStore(C, FloatImm(0.0, "float64"), (vi,)))
    oi = Var("oi")
    outer = block("outer", [(oi, 3, "S", i)], loops([(j, 4), (k, 5)], inner))
    f = prim_func([A, C], with_root(For(i, 0, 3, "serial", outer)))
    a, c = rand((3, 4, 5), "float64"), np.full(3, 99.0)
    evaluate(f, a, c)
    np.testing.assert_allclose(c, a.sum(axis=(1, 2)))


def test_init_with_reduce_domain_not_starting_at_zero():
    A, C = Buffer("A", (10,), "int32"), Buffer("C", (1,), "int32")
    k, vk, z = Var("k"), Var("vk"), Var("z")
    blk = block("S", [(z, 1, "S", IntImm(0)), (vk, Range(3, 4), "R", k + 3)], BufferStore(C, C[z] + A[vk], (z,)),
                init=BufferStore(C, IntImm(0), (z,)))
    f = prim_func([A, C], with_root(For(k, 0, 4, "serial", blk)))
    a, c = np.arange(10, dtype="int32"), np.array([1000], "int32")
    evaluate(f, a, c)
    assert c[0] == 3 + 4 + 5 + 6


def test_deep_loop_nests_are_supported():
    # 24 nested unit loops exceed CPython's 20 static blocks: the interpreter splits the function
    A = Buffer("A", (2,), "int32")
    vs = [Var(f"l{d}") for d in range(24)]
    body = BufferStore(A, A[vs[-1]] + 1, (vs[-1],))
    f = prim_func([A], loops([(v, 1) for v in vs[:-1]] + [(vs[-1], 2)], body))
    a = np.zeros(2, "int32")
    evaluate(f, a)
    assert a.tolist() == [1, 1]


# ---------------------------------------------------------------------------
# vectors


def test_vector_ramp_loads_and_stores():
    A, Bb = Buffer("A", (4, 16), "float32"), Buffer("B", (4, 16), "float32")
    i, jo = Var("i"), Var("jo")
    idx = Ramp(jo * 4, 1, 4)
    body = BufferStore(Bb, A[i, idx] * Broadcast(FloatImm(2.0), 4) + A[i, Ramp(jo * 4, 0, 4)], (i, idx))
    f = prim_func([A, Bb], loops([(i, 4), (jo, 4)], body))
    a, b = rand((4, 16)), np.zeros((4, 16), "float32")
    evaluate(f, a, b)
    first = np.repeat(a[:, ::4], 4, axis=1)
    np.testing.assert_array_equal(b, a * np.float32(2) + first)


def test_vector_gather_with_stride_and_int_ops():
    A, Bb = Buffer("A", (16,), "int32"), Buffer("B", (4,), "int32")
    lanes = Ramp(IntImm(0), IntImm(4), 4)  # 0, 4, 8, 12
    v = A[lanes]
    expr = floordiv(v - Broadcast(IntImm(7), 4), Broadcast(IntImm(2), 4)) + truncmod(v, Broadcast(IntImm(3), 4))
    f = prim_func([A, Bb], BufferStore(Bb, expr, (Ramp(IntImm(0), IntImm(1), 4),)))
    a = np.arange(16, dtype="int32") - 8
    b = np.zeros(4, "int32")
    evaluate(f, a, b)
    g = a[::4]
    np.testing.assert_array_equal(b, (g - 7) // 2 + np.fmod(g, 3))


def test_vector_out_of_bounds_lane_raises():
    A = Buffer("A", (8,), "float32")
    f = prim_func([A], BufferStore(A, Broadcast(FloatImm(1.0), 4), (Ramp(IntImm(6), IntImm(1), 4),)))
    with pytest.raises(IndexError, match=r"index \[8, 9\] is out of bounds for dimension 0 of buffer A"):
        evaluate(f, np.zeros(8, "float32"))


def test_vector_intrinsics_and_select():
    A, Bb = Buffer("A", (8,), "float32"), Buffer("B", (8,), "float32")
    r = Ramp(IntImm(0), IntImm(1), 8)
    x = A[r]
    e = Select(x > Broadcast(FloatImm(0.0), 8), call("exp", x), call("tanh", x))
    f = prim_func([A, Bb], BufferStore(Bb, e, (r,)))
    a, b = rand(8), np.zeros(8, "float32")
    evaluate(f, a, b)
    ref = np.where(a > 0, np.exp(a.astype(np.float64)), np.tanh(a.astype(np.float64))).astype("float32")
    np.testing.assert_allclose(b, ref, rtol=2e-7)


# ---------------------------------------------------------------------------
# match_buffer and strided views


def test_block_match_buffer_is_a_view_of_a_region():
    # for each 4x4 tile: a block matches A[4*ti:4*ti+4, 4*tj:4*tj+4] as "At" and writes At * 2 into C's tile
    A, C = Buffer("A", (8, 8), "float32"), Buffer("C", (8, 8), "float32")
    ti, tj, vi, vj, x, y = (Var(n) for n in ("ti", "tj", "vi", "vj", "x", "y"))
    off, s0, s1 = Var("At_off"), Var("At_s0"), Var("At_s1")
    At = Buffer("At", (4, 4), "float32", strides=(s0, s1), elem_offset=off, offset_factor=1)
    Ct = Buffer("Ct", (4, 4), "float32")
    m1 = MatchBufferRegion(At, BufferRegion(A, (Range(vi * 4, 4), Range(vj * 4, 4))))
    m2 = MatchBufferRegion(Ct, BufferRegion(C, (Range(vi * 4, 4), Range(vj * 4, 4))))
    # store the elem_offset and stride seen by the view into the tile, to check the binding
    body = loops([(x, 4), (y, 4)], BufferStore(Ct, At[x, y] * 2.0 + Cast("float32", off * 1000 + s0), (x, y)))
    blk = block("tile", [(vi, 2, "S", ti), (vj, 2, "S", tj)], body, match=[m1, m2])
    f = prim_func([A, C], with_root(loops([(ti, 2), (tj, 2)], blk)))
    a, c = rand((8, 8)), np.zeros((8, 8), "float32")
    evaluate(f, a, c)
    offsets = np.array([[(i // 4 * 4) * 8 + (j // 4 * 4) for j in range(8)] for i in range(8)], "float32")
    np.testing.assert_array_equal(c, a * np.float32(2) + (offsets * 1000 + 8))


def test_param_buffer_with_symbolic_strides_views_the_array():
    # A(n, 4) with strides (s0, s1): called with a column-sliced view of a wider array
    n, s0, s1, off = Var("n"), Var("s0"), Var("s1"), Var("off")
    A = Buffer("A", (n, 4), "float32", strides=(s0, s1), elem_offset=off, offset_factor=1)
    Bb = Buffer("B", (n, 4), "float32")
    i, j = Var("i"), Var("j")
    f = prim_func([A, Bb], loops([(i, n), (j, 4)], BufferStore(Bb, A[i, j] + Cast("float32", s0), (i, j))))
    big = rand((5, 10))
    b = np.zeros((5, 4), "float32")
    evaluate(f, big[:, 3:7], b)
    np.testing.assert_array_equal(b, big[:, 3:7] + np.float32(10))


def test_constant_strides_must_match_the_array():
    A = Buffer("A", (4, 4), "float32", strides=(8, 1))
    i = Var("i")
    f = prim_func([A], For(i, 0, 4, "serial", BufferStore(A, FloatImm(1.0), (i, i))))
    big = np.zeros((4, 8), "float32")
    evaluate(f, big[:, :4])
    assert big[:, :4].trace() == 4
    with pytest.raises(ValueError, match=r"argument 1 \(A\): expected strides \(8, 1\) \(in elements\), got \(4, 1\)"):
        evaluate(f, np.zeros((4, 4), "float32"))


# ---------------------------------------------------------------------------
# bad calls: clear errors, nothing runs


def _mm_args():
    return rand((128, 64)), rand((64, 32)), np.full((128, 32), 3.0, "float32")


def test_wrong_argument_count():
    f = matmul_func(128, 32, 64)
    a, b, c = _mm_args()
    with pytest.raises(TypeError, match=r"matmul takes 3 argument\(s\) \(A, B, C\); missing argument 3 \(C\)"):
        evaluate(f, a, b)
    with pytest.raises(TypeError, match="but 4 were given"):
        evaluate(f, a, b, c, c)


def test_wrong_shape_names_parameter_expected_and_actual():
    f = matmul_func(128, 32, 64)
    a, b, c = _mm_args()
    bad = rand((64, 33))
    with pytest.raises(ValueError, match=r"argument 2 \(B\): expected shape \(64, 32\), got \(64, 33\)"):
        evaluate(f, a, bad, c)
    with pytest.raises(ValueError, match=r"argument 1 \(A\): expected 2 dimension\(s\)"):
        evaluate(f, a[None], b, c)
    assert (c == 3).all()  # nothing ran


def test_wrong_dtype_and_type():
    f = matmul_func(128, 32, 64)
    a, b, c = _mm_args()
    with pytest.raises(TypeError, match=r"argument 1 \(A\): expected dtype float32, got float64"):
        evaluate(f, a.astype("float64"), b, c)
    with pytest.raises(TypeError, match=r"argument 2 \(B\): expected a numpy array .* got list"):
        evaluate(f, a, b.tolist(), c)
    g = matmul_func(4, 4, 4, "bfloat16")
    x = np.zeros((4, 4), ml_dtypes.bfloat16)
    with pytest.raises(TypeError, match=r"argument 3 \(C\): expected dtype bfloat16, got float16"):
        evaluate(g, x, x, np.zeros((4, 4), "float16"))
    assert (c == 3).all()


def test_inconsistent_symbolic_size():
    n = Var("n")
    A, Bb, C = (Buffer(x, (n,), "float32") for x in "ABC")
    i = Var("i")
    f = prim_func([A, Bb, C], For(i, 0, n, "serial", BufferStore(C, A[i] + Bb[i], (i,))))
    c = np.full(128, 3.0, "float32")
    with pytest.raises(ValueError, match=r"argument 2 \(B\): n is 128 from A.shape\[0\] but 64 from B.shape\[0\]"):
        evaluate(f, rand(128), rand(64), c)
    assert (c == 3).all()


def test_derived_symbolic_sizes_are_solved_and_checked():
    n = Var("n")
    A, Bb = Buffer("A", (n * 2 + 1,), "float32"), Buffer("B", (n,), "float32")
    i = Var("i")
    f = prim_func([A, Bb], For(i, 0, n, "serial", BufferStore(Bb, A[i * 2 + 1], (i,))))
    a, b = rand(9), np.zeros(4, "float32")
    evaluate(f, a, b)
    np.testing.assert_array_equal(b, a[1::2])
    with pytest.raises(ValueError, match=r"argument 1 \(A\): A.shape\[0\] should be n \* 2 \+ 1 = 11 "
                                         r"\(n = 5 from B.shape\[0\]\), got 9"):
        evaluate(f, a, np.zeros(5, "float32"))
    g = prim_func([A], For(i, 0, n, "serial", BufferStore(A, FloatImm(0.0), (i * 2 + 1,))))  # n only from A
    a = np.ones(9, "float32")
    evaluate(g, a)
    np.testing.assert_array_equal(a, [1, 0] * 4 + [1])
    with pytest.raises(ValueError, match=r"argument 1 \(A\): A.shape\[0\] is 10, which is not n \* 2 \+ 1"):
        evaluate(g, rand(10))


def test_scalar_parameters_checked():
    A = Buffer("A", (4,), "float32")
    i, s = Var("i"), Var("s", "float32")
    f = prim_func([A], For(i, 0, 4, "serial", BufferStore(A, A[i] * s, (i,))), scalars=[s])
    a = np.ones(4, "float32")
    evaluate(f, a, 2.5)
    evaluate(f, a, s=2)
    assert (a == 5).all()
    with pytest.raises(TypeError, match=r"argument 2 \(s\): expected a number \(float32\), got str"):
        evaluate(f, a, "2")
    k = Var("k", "int8")
    g = prim_func([A], Evaluate(k), scalars=[k])
    with pytest.raises(ValueError, match=r"argument 2 \(k\): 300 does not fit in int8"):
        evaluate(g, a, 300)


def test_read_only_output_refused_before_running():
    f = matmul_func(4, 4, 4)
    x = np.ones((4, 4), "float32")
    c = np.zeros((4, 4), "float32")
    c.setflags(write=False)
    with pytest.raises(ValueError, match=r"argument 3 \(C\): the array is read-only"):
        evaluate(f, x, x, c)
    x.setflags(write=False)  # read-only inputs are fine
    evaluate(f, x, x, np.zeros((4, 4), "float32"))


def test_out_of_bounds_store_names_the_buffer():
    A = Buffer("A", (4, 4), "float32")
    i = Var("i")
    f = prim_func([A], For(i, 0, 5, "serial", BufferStore(A, FloatImm(1.0), (i, 0))))
    with pytest.raises(IndexError, match=r"index 4 is out of bounds for dimension 0 of buffer A \(extent 4\)"):
        evaluate(f, np.zeros((4, 4), "float32"))
    g = prim_func([A], For(i, 0, 4, "serial", BufferStore(A, FloatImm(1.0), (i - 1, 0))))  # negative index
    with pytest.raises(IndexError, match="index -1 is out of bounds"):
        evaluate(g, np.zeros((4, 4), "float32"))


def test_undefined_variable_and_buffer_are_compile_errors():
    A = Buffer("A", (4,), "float32")
    T = Buffer("T", (4,), "float32")
    m = Var("m")
    with pytest.raises(CompileError, match="variable m is used but never defined"):
        evaluate(prim_func([A], BufferStore(A, FloatImm(1.0), (m,))), np.zeros(4, "float32"))
    with pytest.raises(CompileError, match="buffer T is used but never allocated"):
        evaluate(prim_func([A], BufferStore(T, FloatImm(1.0), (0,))), np.zeros(4, "float32"))


def test_irmodule_and_name():
    f = matmul_func(4, 4, 4)
    x = np.eye(4, dtype="float32")
    c = np.zeros((4, 4), "float32")
    evaluate(IRModule({"mm": f}), x, x, c)
    np.testing.assert_array_equal(c, x)
    mod = IRModule({"mm": f, "other": matmul_func(2, 2, 2)})
    with pytest.raises(ValueError, match="say which with name="):
        evaluate(mod, x, x, c)
    evaluate(mod, x, 2 * x, c, name="mm")
    np.testing.assert_array_equal(c, 2 * x)


def test_public_names():
    import workbench as wb

    # wb.evaluate is the script-form Evaluate statement; the interpreter lives at wb.ir.evaluate
    assert wb.ir.evaluate is evaluate


# ---------------------------------------------------------------------------
# speed and caching


def test_compiled_once_and_cached():
    f = matmul_func(4, 4, 4)
    s1 = python_source(f)
    assert python_source(f) is s1
    assert "for " in s1


def test_matmul_64_runs_from_the_cached_compilation():
    # speed is measured in benchmarks/ir_speed.py, not asserted here
    f = matmul_func(64, 64, 64)
    a, b, c = rand((64, 64)), rand((64, 64)), np.zeros((64, 64), "float32")
    evaluate(f, a, b, c)  # compile
    src = python_source(f)
    evaluate(f, a, b, c)
    assert python_source(f) is src
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


def test_very_deep_expressions_compile():
    # a 400-term unrolled sum: deeper than CPython's 200 nested parentheses
    A, C = Buffer("A", (400,), "float32"), Buffer("C", (1,), "float32")
    e = A[0]
    for k in range(1, 400):
        e = e + A[k]
    f = prim_func([A, C], BufferStore(C, e, (0,)))
    a, c = rand(400), np.zeros(1, "float32")
    evaluate(f, a, c)
    ref = np.float32(0) + a[0]
    for x in a[1:]:
        ref = np.float32(ref + x)
    assert c[0] == ref
    # deep integer index arithmetic inside a let, inside a loop
    i, x = Var("i"), Var("x")
    idx = i
    for _ in range(150):
        idx = (idx + 1) - 1
    B = Buffer("B", (5,), "int32")
    g = prim_func([B], For(i, 0, 5, "serial", BufferStore(B, Let(x, idx * 2, x + idx), (idx,))))
    b = np.zeros(5, "int32")
    evaluate(g, b)
    assert b.tolist() == [0, 3, 6, 9, 12]


# ---------------------------------------------------------------------------
# programs from te and the script form (other parts of workbench.ir, when present)


def test_te_matmul_and_symbolic_elementwise():
    te = pytest.importorskip("workbench.ir.te")
    A = te.placeholder((16, 8), "float32", name="A")
    Bt = te.placeholder((8, 12), "float32", name="B")
    k = te.reduce_axis(8, name="k")
    C = te.compute((16, 12), lambda i, j: te.sum(A[i, k] * Bt[k, j], axis=k), name="C")
    f = te.create_prim_func([A, Bt, C])
    a, b, c = rand((16, 8)), rand((8, 12)), np.empty((16, 12), "float32")
    evaluate(f, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)

    n = te.var("n")
    X = te.placeholder((n, 4), "float32", name="X")
    Y = te.compute((n, 4), lambda i, j: te.if_then_else(X[i, j] > 0.0, te.exp(X[i, j]), X[i, j] * 0.5), name="Y")
    g = te.create_prim_func([X, Y])
    for size in (1, 5):
        x, y = rand((size, 4)), np.empty((size, 4), "float32")
        evaluate(g, x, y)
        ref = np.where(x > 0, np.exp(x.astype(np.float64)).astype("float32"), x * np.float32(0.5))
        np.testing.assert_allclose(y, ref, rtol=2e-7)


_MM_RELU = '''
@wb.prim_func
def mm_relu(A: wb.Buffer((32, 32), "float32"), B: wb.Buffer((32, 32), "float32"),
            C: wb.Buffer((32, 32), "float32")):
    Y = wb.alloc_buffer((32, 32), "float32")
    for i, j, k in wb.grid(32, 32, 32):
        with wb.block("Y"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                Y[vi, vj] = 0.0
            Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    for i, j in wb.grid(32, 32):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = wb.max(Y[vi, vj], 0.0)
'''

# the "script form in full" of DESIGN.md
_FULL = '''
@wb.prim_func
def f(a: wb.handle, B: wb.Buffer(("n",), "float32"), C: wb.Buffer((), "float32")):
    n = wb.int32()
    A = wb.match_buffer(a, (n, 16), "float32", offset_factor=1)
    wb.func_attr({"global_symbol": "f"})
    T0 = wb.alloc_buffer((16,), "float32", scope="local")
    for i in wb.parallel(n):
        for j in wb.thread_binding(16, thread="threadIdx.x"):
            with wb.block("B"):
                vi = wb.axis.spatial(n, i)
                vj = wb.axis.reduce(16, j)
                wb.where(i * 16 + j < 1000)
                wb.reads(A[vi, 0:16]); wb.writes(B[vi])
                wb.block_attr({"key": 1})
                with wb.init():
                    B[vi] = wb.float32(0)
                x = wb.let(A[vi, vj] * 2.0)
                if vj < 8:
                    B[vi] = B[vi] + wb.if_then_else(x > 0.0, x, wb.cast(0, "float32"))
    C[()] = B[0]
'''


def test_parsed_mm_relu():
    parser = pytest.importorskip("workbench.ir.parser")
    f = parser.parse(_MM_RELU)
    a, b, c = rand((32, 32)), rand((32, 32)), np.empty((32, 32), "float32")
    evaluate(f, a, b, c)
    np.testing.assert_allclose(c, np.maximum(a @ b, 0), rtol=1e-5, atol=1e-5)


def test_parsed_full_script_form():
    parser = pytest.importorskip("workbench.ir.parser")
    f = parser.parse(_FULL)
    n = 70  # rows 63.. are cut by the predicate i*16 + j < 1000 and keep their input value
    a, b, c = rand((n, 16)), np.full(n, 5, "float32"), np.zeros((), "float32")
    evaluate(f, a, b, c)
    ref = np.full(n, 5, "float32")
    for i in range(n):
        if i * 16 < 1000:
            s = np.float32(0)
            for j in range(8):
                if i * 16 + j < 1000:
                    s = np.float32(s + max(np.float32(2) * a[i, j], np.float32(0)))
            ref[i] = s
    np.testing.assert_array_equal(b, ref)
    assert c[()] == ref[0]
    with pytest.raises(ValueError, match=r"argument 2 \(B\): n is 70 from A.shape\[0\] but 69 from B.shape\[0\]"):
        evaluate(f, a, b[:-1], c)


# ---------------------------------------------------------------------------
# random integer expressions: the interpreter's scalar path against numpy's wrapping arrays


def _random_int_expr(rng, leaves, dtype, depth):
    info = np.iinfo(dtype)
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.6:
            return leaves[rng.integers(len(leaves))]
        v = int(rng.choice([0, 1, 2, 3, 7, 16, 100, info.max, info.min, -1, -5]))
        v = v % (info.max + 1) if info.min == 0 else v
        return IntImm(v, dtype), (lambda n, v=v: np.full(n, v, dtype))
    op = rng.choice(["+", "-", "*", "//", "%", "min", "max", "sel"])
    a, fa = _random_int_expr(rng, leaves, dtype, depth - 1)
    b, fb = _random_int_expr(rng, leaves, dtype, depth - 1)
    if op in ("//", "%"):  # a non-zero divisor that is not -1 (INT_MIN // -1 differs between C and numpy)
        c = int(rng.choice([2, 3, 7, 16] if info.min == 0 else [2, 3, 7, -3, 16]))
        b, fb = IntImm(c, dtype), (lambda n, c=c: np.full(n, c, dtype))
    build = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
             "//": floordiv, "%": floormod, "min": min_, "max": max_, "sel": lambda x, y: Select(x < y, y, x)}[op]
    ref = {"+": np.add, "-": np.subtract, "*": np.multiply, "//": np.floor_divide, "%": np.mod,
           "min": np.minimum, "max": np.maximum, "sel": lambda x, y: np.where(x < y, y, x)}[op]
    return build(a, b), (lambda n: ref(fa(n), fb(n)))


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8", "int64"])
def test_random_integer_expressions_match_numpy(dtype):
    rng = np.random.default_rng(sum(dtype.encode()))
    n = 40
    i, s = Var("i"), Var("s", dtype)
    A = Buffer("A", (n,), dtype)
    out = Buffer("O", (n,), dtype)
    vals = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, n, dtype=dtype, endpoint=True)
    sval = int(rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, endpoint=True))
    iexpr = Cast(dtype, i) if dtype != "int32" else i
    leaves = [(iexpr, lambda m: np.arange(m).astype(dtype)), (A[i], lambda m: vals),
              (s, lambda m: np.full(m, sval, dtype))]
    for _ in range(25):
        e, ref = _random_int_expr(rng, leaves, dtype, 4)
        f = prim_func([A, out], For(i, 0, n, "serial", BufferStore(out, e, (i,))), scalars=[s])
        o = np.zeros(n, dtype)
        evaluate(f, vals, o, sval)
        with np.errstate(all="ignore"):
            expected = ref(n)
        np.testing.assert_array_equal(o, expected, err_msg=python_source(f))
