"""parse(script(f)) is structurally equal to f, for every form the IR can hold.

Each case builds a program by hand (constructors, no parser involved), prints it,
parses the text back and compares structurally; the reprint must also be the same
text. A hypothesis property test does the same for random small programs.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.ir import (
    EQ, GE, GT, INTRINSICS, LE, LT, NE,
    Add, Allocate, And, AssertStmt, Block, BlockRealize, Broadcast, Buffer, BufferLoad, BufferRegion,
    BufferStore, Call, Cast, Div, Evaluate, FloatImm, FloorDiv, FloorMod, For, IfThenElse, IntImm,
    IRModule, IterVar, Let, LetStmt, MatchBufferRegion, Max, Min, Mod, Mul, Not, Or, PrimFunc, Ramp, Range,
    Select, SeqStmt, StringImm, Sub, Var, assert_structural_equal, call, call_extern, const,
)
from workbench.ir.parser import parse
from workbench.ir.printer import script


def roundtrip(f):
    text = script(f)
    g = parse(text)
    assert_structural_equal(g, f)
    assert script(g) == text, f"reprint differs:\n{text}\n---\n{script(g)}"
    return text


def func(body, *buffers, scalars=(), attrs=None, name="main", root_allocs=None, wrap_root=None):
    """A PrimFunc over buffer params (and scalar params); root-wrapped when it has blocks/allocs."""
    params, bmap = [], {}
    for b in buffers:
        h = Var(b.name + "_h", "handle")
        params.append(h)
        bmap[h] = b
    params.extend(scalars)
    has_block = _has_block(body)
    if wrap_root if wrap_root is not None else (has_block or root_allocs):
        body = BlockRealize((), True, Block("root", body=body, alloc_buffers=tuple(root_allocs or ())))
    a = {"global_symbol": name}
    a.update(attrs or {})
    return PrimFunc(tuple(params), bmap, body, a)


def _has_block(s) -> bool:
    from workbench.ir import post_order_visit

    found = []
    post_order_visit(s, lambda n: found.append(1) if isinstance(n, BlockRealize) else None)
    return bool(found)


def spatial_block(name, out: Buffer, value_fn, loops_extents, kinds=None, reads=None):
    """Loops over out's shape with a block writing out[v...] = value_fn(*v)."""
    lv = [Var(n) for n in "ijkl"[: len(loops_extents)]]
    iv = [Var("v" + n) for n in "ijkl"[: len(loops_extents)]]
    ivs = tuple(IterVar(v, Range(0, e), "spatial") for v, e in zip(iv, loops_extents))
    store = BufferStore(out, value_fn(*iv), tuple(iv))
    blk = Block(name, ivs, tuple(reads or ()), (BufferRegion(out, tuple(Range(v, 1) for v in iv)),), store)
    s = BlockRealize(tuple(lv), True, blk)
    for v, e in reversed(list(zip(lv, loops_extents))):
        s = For(v, 0, e, "serial", s)
    return s


# --- expressions --------------------------------------------------------------------------------


def expr_func(make, dtype="float32", n=8):
    A = Buffer("A", (n,), dtype)
    B = Buffer("B", (n,), dtype)
    i = Var("i")
    body = For(i, 0, n, "serial", BufferStore(B, make(A[i], i), (i,)))
    return func(body, A, B)


@pytest.mark.parametrize("make", [
    lambda x, i: x * 2.0 + 1.0,
    lambda x, i: (x + 1.0) * (x - 2.0),
    lambda x, i: x - (x - 1.0),
    lambda x, i: x / (x / 2.0),
    lambda x, i: Max(x, FloatImm(0.0)),
    lambda x, i: Min(FloatImm(1.0), x),
    lambda x, i: Max(FloatImm(1.0), FloatImm(2.0)),
    lambda x, i: Add(FloatImm(1.0), FloatImm(2.0)),
    lambda x, i: Select(i < 4, x, FloatImm(0.0)),
    lambda x, i: Select(And(i < 4, Not(i == 2)), x, 0.0 - x),
    lambda x, i: Select(Or(i < 2, i >= 6), x, x),
    lambda x, i: Select(EQ(LT(i, 3), IntImm(1, "bool")), x, x),
    lambda x, i: call("if_then_else", i > 0, x, FloatImm(1.0)),
    lambda x, i: Cast("float32", i) * x,
    lambda x, i: Cast("float32", IntImm(0)) + x,
    lambda x, i: Cast("float32", Cast("float16", x)),
    lambda x, i: x + Cast("float32", FloorDiv(i, 3) + FloorMod(i, 3) + Mod(i, 3) + Div(i, 2)),
    lambda x, i: x + Cast("float32", Sub(i, Sub(i, 1)) * Mul(i, Mul(i, 2))),
    lambda x, i: x * FloatImm(float("inf")),
    lambda x, i: Max(x, FloatImm(float("-inf"))),
    lambda x, i: x + FloatImm(1e-30) + FloatImm(-2.5) + FloatImm(123456789.0),
    lambda x, i: x + Cast("float32", i * -1 + IntImm(-3) * i),
    lambda x, i: x + Cast("float32", Add(IntImm(1), IntImm(2))),
    lambda x, i: x + Cast("float32", Sub(IntImm(0), i)),
    lambda x, i: Let(Var("t"), x * 2.0, Var("t") + 1.0) if False else _let_expr(x),
    lambda x, i: x + call_extern("float32", "my_func", x, i, 2.5),
    lambda x, i: x + Call("llvm.custom", (x,), "float32"),
])
def test_expression_forms_round_trip(make):
    roundtrip(expr_func(make))


def _let_expr(x):
    t = Var("t", "float32")
    return Let(t, x * 2.0, t + t)


@pytest.mark.parametrize("op", sorted(INTRINSICS))
def test_every_intrinsic_round_trips(op):
    arity, result, kind = INTRINSICS[op]
    if kind == "int":
        A = Buffer("A", (8,), "int32")
        B = Buffer("B", (8,), "int32")
    else:
        A = Buffer("A", (8,), "float32")
        B = Buffer("B", (8,), "float32")
    i = Var("i")
    x = A[i]
    if op == "if_then_else":
        e = call(op, i < 3, x, x + 1)
    elif result == "bool":
        e = Select(call(op, x), x, 0.0)
    else:
        args = [x] + [x + (k + 1) for k in range(arity - 1)]
        e = call(op, *args)
    roundtrip(func(For(i, 0, 8, "serial", BufferStore(B, e, (i,))), A, B))


@pytest.mark.parametrize("dtype,value", [
    ("float16", 1.5), ("bfloat16", -2.0), ("float64", 0.1), ("int8", -7), ("uint8", 255), ("int16", 3),
    ("int64", 2 ** 40), ("uint32", 7), ("bool", 1), ("bool", 0), ("float32", float("nan")),
    ("float16", float("inf")),
])
def test_constants_of_every_dtype_round_trip(dtype, value):
    A = Buffer("A", (4,), dtype)
    i = Var("i")
    c = const(value, dtype)
    # standalone store, a constant next to a same-dtype load, and two constants together
    stores = [BufferStore(A, c, (i,))]
    if dtype != "bool":
        stores.append(BufferStore(A, Add(A[i], c), (i,)))
        stores.append(BufferStore(A, Max(c, c), (i,)))
        stores.append(BufferStore(A, Add(c, c), (i,)))
    stores.append(BufferStore(A, Select(EQ(A[i], c), c, A[i]), (i,)))
    text = roundtrip(func(For(i, 0, 4, "serial", SeqStmt(tuple(stores))), A))
    if dtype not in ("float32", "int32", "bool"):
        assert f"wb.{dtype}(" in text


def test_int64_loops_and_indices_round_trip():
    n = Var("n", "int64")
    A = Buffer("A", (n, IntImm(4, "int64")), "float32")
    i, j = Var("i", "int64"), Var("j", "int64")
    body = For(i, IntImm(0, "int64"), n, "serial",
               For(j, IntImm(0, "int64"), IntImm(4, "int64"), "serial",
                   BufferStore(A, 0.0, (i, j * IntImm(1, "int64")))))
    text = roundtrip(func(body, A))
    assert "n = wb.int64()" in text


def test_vector_ramp_and_broadcast_round_trip():
    A = Buffer("A", (64,), "float32")
    B = Buffer("B", (64,), "float32")
    i = Var("i")
    idx = Ramp(i * 4, 1, 4)
    body = For(i, 0, 16, "serial", BufferStore(B, BufferLoad(A, (idx,)) + Broadcast(FloatImm(2.0), 4), (idx,)))
    roundtrip(func(body, A, B))


# --- statements -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,thread", [
    ("serial", None), ("parallel", None), ("vectorized", None), ("unrolled", None),
    ("thread_binding", "threadIdx.x"), ("thread_binding", "blockIdx.y"),
])
def test_every_loop_kind_round_trips(kind, thread):
    A = Buffer("A", (16,), "float32")
    i = Var("i")
    text = roundtrip(func(For(i, 0, 16, kind, BufferStore(A, 1.0, (i,)), thread), A))
    assert {"serial": "wb.serial(16)", "parallel": "wb.parallel(16)", "vectorized": "wb.vectorized(16)",
            "unrolled": "wb.unroll(16)", "thread_binding": f'thread="{thread}"'}[kind] in text


def test_loop_annotations_min_and_grid_round_trip():
    A = Buffer("A", (16, 16, 16), "float32")
    i, j, k, m = Var("i"), Var("j"), Var("k"), Var("m")
    i2, j2, k2 = Var("i"), Var("j"), Var("k")
    body = SeqStmt((
        For(i, 0, 16, "serial", For(j, 0, 16, "serial", For(k, 0, 16, "serial", BufferStore(A, 0.0, (i, j, k))))),
        For(i2, 2, 10, "parallel", BufferStore(A, 1.0, (i2, 0, 0)),
            annotations={"pragma_unroll": 4, "note": "x", "flag": True, "ratio": 0.5, "lst": [1, 2]}),
        For(m, 0, 16, "serial", For(j2, 0, m, "serial", BufferStore(A, 2.0, (m, j2, 0)))),
        For(k2, 1, 15, "thread_binding", BufferStore(A, 3.0, (k2, 0, 0)), "threadIdx.y"),
    ))
    text = roundtrip(func(body, A))
    assert "for i, j, k in wb.grid(16, 16, 16):" in text
    assert "wb.parallel(2, 12, annotations=" in text
    assert "wb.thread_binding(1, 16, thread=" in text


def test_if_else_elif_let_assert_evaluate_allocate_round_trip():
    A = Buffer("A", (16,), "float32")
    i = Var("i")
    x, y = Var("x", "float32"), Var("y", "int32")
    T0 = Buffer("T0", (1024,), "float32")
    body = For(i, 0, 16, "serial", SeqStmt((
        IfThenElse(i < 4, BufferStore(A, 1.0, (i,))),
        IfThenElse(i < 8, BufferStore(A, 2.0, (i,)),
                   IfThenElse(i < 12, BufferStore(A, 3.0, (i,)), BufferStore(A, 4.0, (i,)))),
        LetStmt(x, A[i] * 2.0, BufferStore(A, x + x, (i,))),  # not last: printed as `with wb.let`
        Evaluate(call_extern("int32", "puts", StringImm("hi"))),
        AssertStmt(i < 16, "i is in range", BufferStore(A, 5.0, (i,))),
        Allocate(T0, SeqStmt((BufferStore(T0, A[i], (i,)), BufferStore(A, T0[i], (i,))))),
        LetStmt(y, i + 1, BufferStore(A, Cast("float32", y), (i,))),
    )))
    text = roundtrip(func(body, A))
    assert "with wb.let(A[i] * 2.0) as x:" in text
    assert "elif i < 12:" in text
    assert "y = wb.let(i + 1)" in text


def test_tail_allocate_and_assert_print_flat():
    A = Buffer("A", (4,), "float32")
    T0 = Buffer("T0", (4,), "float32", scope="local")
    i = Var("i")
    body = AssertStmt(LT(IntImm(0), IntImm(1)), "ok",
                      Allocate(T0, For(i, 0, 4, "serial", BufferStore(T0, A[i], (i,)))))
    text = roundtrip(func(body, A))
    assert 'wb.assert_(wb.int32(0) < 1, "ok")' in text
    assert 'T0 = wb.allocate((4,), "float32", scope="local")' in text


def test_zero_dim_buffers_round_trip():
    C = Buffer("C", (), "float32")
    B = Buffer("B", (4,), "float32")
    text = roundtrip(func(BufferStore(C, B[0] + C[()], ()), B, C))
    assert "C[()] = B[0] + C[()]" in text


def test_symbolic_shapes_and_scalar_params_round_trip():
    n, m = Var("n"), Var("m")
    A = Buffer("A", (n, 16), "float32")
    B = Buffer("B", (n * 16 + m,), "float32")
    i, j = Var("i"), Var("j")
    body = For(i, 0, n, "serial", For(j, 0, 16, "serial", BufferStore(B, A[i, j], (i * 16 + j,))))
    text = roundtrip(func(body, A, B, scalars=(m,)))
    assert 'A: wb.Buffer(("n", 16), "float32")' in text and "m: wb.int32" in text
    assert 'B: wb.Buffer(("n * 16 + m",), "float32")' in text


def test_match_buffer_params_with_strides_and_offsets_round_trip():
    n = Var("n")
    off = Var("A_elem_offset")
    A = Buffer("A", (n, 16), "float32", strides=(Var("s0"), 1), elem_offset=off, offset_factor=16)
    B = Buffer("B", (16,), "float16", offset_factor=1, align=64)
    a, b = Var("a", "handle"), Var("B", "handle")
    i = Var("i")
    body = For(i, 0, 16, "serial", BufferStore(B, Cast("float16", A[0, i]), (i,)))
    f = PrimFunc((a, b), {a: A, b: B}, body, {"global_symbol": "g", "tir.noalias": True})
    text = roundtrip(f)
    assert "a: wb.handle" in text and "A = wb.match_buffer(a, (n, 16)" in text
    assert 'wb.func_attr({"tir.noalias": True})' in text
    assert "offset_factor=16" in text and "align=64" in text


def test_plain_handle_param_and_private_function_round_trip():
    h = Var("h", "handle")
    A = Buffer("A", (4,), "float32")
    a = Var("a", "handle")
    f = PrimFunc((a, h), {a: A}, Evaluate(IntImm(0)), {})
    text = roundtrip(f)
    assert text.startswith("@wb.prim_func(private=True)") and "h: wb.handle" in text


def test_blocks_nested_allocs_match_buffers_scopes_round_trip():
    A = Buffer("A", (16, 16), "float32")
    B = Buffer("B", (16, 16), "float32")
    S = Buffer("S", (16, 16), "float32", scope="shared")
    L = Buffer("L", (4,), "float32", scope="local")
    i, j, k = Var("i"), Var("j"), Var("k")
    vi, vj = Var("vi"), Var("vj")
    wi, wk = Var("wi"), Var("wk")
    sub = Buffer("A_sub", (4,), "float32", offset_factor=1)
    inner = Block("inner", (IterVar(wi, Range(0, 16), "spatial"), IterVar(wk, Range(0, 4), "reduce")),
                  (BufferRegion(A, (Range(wi, 1), Range(wk, 1))),), (BufferRegion(L, (Range(0, 4),)),),
                  BufferStore(L, L[wk] + A[wi, wk], (wk,)), BufferStore(L, 0.0, (wk,)))
    outer_body = SeqStmt((
        For(k, 0, 4, "serial", BlockRealize((vi, k), True, inner)),
        BufferStore(B, L[0] + sub[1], (vi, vj)),
    ))
    outer = Block("outer", (IterVar(vi, Range(0, 16), "spatial"), IterVar(vj, Range(0, 16), "spatial")),
                  (BufferRegion(A, (Range(vi, 1), Range(0, 16))),), (BufferRegion(B, (Range(vi, 1), Range(vj, 1))),),
                  outer_body, None, (L,),
                  (MatchBufferRegion(sub, BufferRegion(A, (Range(vi, 1), Range(vj // 4 * 4, 4)))),),
                  {"meta_schedule.tiling_structure": "SSRSRS", "priority": 2})
    body = For(i, 0, 16, "serial", For(j, 0, 16, "serial", BlockRealize((i, j), True, outer)))
    text = roundtrip(func(body, A, B, root_allocs=(S,)))
    assert 'S = wb.alloc_buffer((16, 16), "float32", scope="shared")' in text
    assert 'L = wb.alloc_buffer((4,), "float32", scope="local")' in text
    assert "wb.match_buffer(A[vi, vj // 4 * 4:vj // 4 * 4 + 4], (4,)" in text
    assert "wi = wb.axis.spatial(16, vi)" in text  # bound to a block var, not a loop: no remap


def test_block_bindings_domains_and_where_round_trip():
    A = Buffer("A", (128,), "float32")
    n = Var("n")
    i, j = Var("i"), Var("j")
    v, w, o = Var("v"), Var("w"), Var("o")
    blk = Block("B", (IterVar(v, Range(0, 128), "spatial"), IterVar(w, Range(4, 12), "reduce"),
                      IterVar(o, Range(n, 16), "opaque")),
                (), (BufferRegion(A, (Range(v, 1),)),), BufferStore(A, 1.0, (v,)))
    body = For(i, 0, 32, "serial", For(j, 0, 4, "serial",
               BlockRealize((i * 4 + j, j + 4, n + j), (i * 4 + j < 100) & (j >= 1), blk)))
    text = roundtrip(func(body, A, scalars=(n,)))
    assert "v = wb.axis.spatial(128, i * 4 + j)" in text
    assert "w = wb.axis.reduce((4, 16), j + 4)" in text
    assert "o = wb.axis.opaque((n, n + 16), n + j)" in text
    assert "wb.where(i * 4 + j < 100 and j >= 1)" in text
    assert "wb.reads()" in text


def test_region_forms_round_trip():
    n = Var("n")
    A = Buffer("A", (n, 64), "float32")
    B = Buffer("B", (64,), "float32")
    vi = Var("vi")
    reads = (BufferRegion(A, (Range(vi, n), Range(2, 30))), BufferRegion(A, (Range(0, n), Range(vi * 4, 4))),
             BufferRegion(B, (Range(1, n),)))
    blk = Block("R", (IterVar(vi, Range(0, 16), "spatial"),), reads, (BufferRegion(B, (Range(vi, 1),)),),
                BufferStore(B, 0.0, (vi,)))
    i = Var("i")
    text = roundtrip(func(For(i, 0, 16, "serial", BlockRealize((i,), True, blk)), A, B))
    assert "wb.reads(A[vi:vi + n, 2:32], A[0:n, vi * 4:vi * 4 + 4], B[1:1 + n])" in text


def test_explicit_root_block_and_opaque_blocks_round_trip():
    A = Buffer("A", (4,), "float32")
    body = BlockRealize((), True, Block("root", (), (), (), BlockRealize((), True, Block(
        "opaque", (), (), (BufferRegion(A, (Range(0, 4),)),), BufferStore(A, 0.0, (0,)))),
        annotations={"k": "v"}))
    text = roundtrip(func(body, A, wrap_root=False))
    assert 'with wb.block("root"):' in text


def test_same_names_for_different_variables_get_suffixes():
    A = Buffer("A", (4, 4), "float32")
    A2 = Buffer("A", (4, 4), "float32")
    i1, i2 = Var("i"), Var("i")
    body = For(i1, 0, 4, "serial", For(i2, 0, 4, "serial", BufferStore(A2, A[i1, i2], (i2, i1))))
    text = roundtrip(func(body, A, A2))
    assert "for i, i_1 in wb.grid(4, 4):" in text
    assert "A_1[i_1, i] = A[i, i_1]" in text


def test_odd_names_are_sanitised():
    A = Buffer("A.shared", (4,), "float32")
    x = Var("for", "int32")
    body = For(x, 0, 4, "serial", BufferStore(A, 0.0, (x,)))
    text = roundtrip(func(body, A))
    assert "A_shared" in text and "for_" in text


def test_ir_module_round_trip():
    A = Buffer("A", (4,), "float32")
    i = Var("i")
    f1 = func(For(i, 0, 4, "serial", BufferStore(A, 1.0, (i,))), A, name="one")
    B = Buffer("B", (4,), "float32")
    j = Var("j")
    f2 = func(For(j, 0, 4, "serial", BufferStore(B, 2.0, (j,))), B, name="other_symbol")
    mod = IRModule({"one": f1, "two": f2})
    text = script(mod)
    assert text.startswith("@wb.ir_module\nclass Module:\n    @wb.prim_func\n    def one(")
    back = parse(text)
    assert list(back) == ["one", "two"]
    assert_structural_equal(back, mod)
    assert back["two"].attrs["global_symbol"] == "other_symbol"


# --- random programs (hypothesis) -------------------------------------------------------------------

_BIN = [Add, Sub, Mul, Max, Min]
_INT_BIN = [Add, Sub, Mul, FloorDiv, FloorMod, Mod, Div, Max, Min]
_CMP = [EQ, NE, LT, LE, GT, GE]


@st.composite
def int_expr(draw, vars_, depth=0):
    choices = ["var", "const"] + (["bin", "bin"] if depth < 3 else [])
    c = draw(st.sampled_from(choices))
    if c == "var" and vars_:
        return draw(st.sampled_from(vars_))
    if c in ("var", "const"):
        return IntImm(draw(st.integers(-5, 20)))
    op = draw(st.sampled_from(_INT_BIN))
    return op(draw(int_expr(vars_, depth + 1)), draw(int_expr(vars_, depth + 1)))


@st.composite
def bool_expr(draw, vars_, depth=0):
    c = draw(st.sampled_from(["cmp", "cmp", "and", "or", "not"] if depth < 2 else ["cmp"]))
    if c == "cmp":
        return draw(st.sampled_from(_CMP))(draw(int_expr(vars_, 2)), draw(int_expr(vars_, 2)))
    if c == "not":
        return Not(draw(bool_expr(vars_, depth + 1)))
    cls = And if c == "and" else Or
    return cls(draw(bool_expr(vars_, depth + 1)), draw(bool_expr(vars_, depth + 1)))


@st.composite
def float_expr(draw, vars_, bufs, depth=0):
    choices = ["load", "const"] + (["bin", "bin", "call", "select", "cast"] if depth < 3 else [])
    c = draw(st.sampled_from(choices))
    if c == "load":
        b = draw(st.sampled_from(bufs))
        return BufferLoad(b, tuple(draw(int_expr(vars_, 2)) for _ in b.shape))
    if c == "const":
        return FloatImm(draw(st.sampled_from([0.0, 1.0, -2.5, 0.125, 3e-5, float("inf")])))
    if c == "bin":
        return draw(st.sampled_from(_BIN))(draw(float_expr(vars_, bufs, depth + 1)),
                                           draw(float_expr(vars_, bufs, depth + 1)))
    if c == "call":
        op = draw(st.sampled_from(["exp", "sqrt", "tanh", "fabs" if False else "abs", "pow", "fma"]))
        n = INTRINSICS[op][0]
        return call(op, *[draw(float_expr(vars_, bufs, depth + 1)) for _ in range(n)])
    if c == "select":
        return Select(draw(bool_expr(vars_)), draw(float_expr(vars_, bufs, depth + 1)),
                      draw(float_expr(vars_, bufs, depth + 1)))
    return Cast("float32", draw(int_expr(vars_, 1)))


@st.composite
def stmt(draw, vars_, bufs, depth=0, counter=None):
    counter = counter if counter is not None else [0]
    choices = ["store"] + (["loop", "loop", "if", "let", "seq", "block"] if depth < 3 else [])
    c = draw(st.sampled_from(choices))
    if c == "store":
        b = draw(st.sampled_from(bufs))
        return BufferStore(b, draw(float_expr(vars_, bufs)), tuple(draw(int_expr(vars_, 2)) for _ in b.shape))
    if c == "loop":
        v = Var(draw(st.sampled_from(["i", "j", "k"])))
        kind = draw(st.sampled_from(["serial", "serial", "parallel", "unrolled", "vectorized"]))
        lo = draw(st.sampled_from([0, 0, 1]))
        return For(v, lo, draw(st.integers(1, 8)), kind, draw(stmt(vars_ + [v], bufs, depth + 1, counter)))
    if c == "if":
        other = draw(st.one_of(st.none(), stmt(vars_, bufs, depth + 1, counter)))
        return IfThenElse(draw(bool_expr(vars_)), draw(stmt(vars_, bufs, depth + 1, counter)), other)
    if c == "let":
        v = Var(draw(st.sampled_from(["x", "i"])))
        return LetStmt(v, draw(int_expr(vars_, 1)), draw(stmt(vars_ + [v], bufs, depth + 1, counter)))
    if c == "seq":
        return SeqStmt(tuple(draw(stmt(vars_, bufs, depth + 1, counter)) for _ in range(2)))
    # a block binding one spatial iter var to an expression of the visible vars
    counter[0] += 1
    vv = Var("v")
    binding = draw(int_expr(vars_, 1))
    b = bufs[0]
    inner = BufferStore(b, draw(float_expr([vv], bufs)), tuple(draw(int_expr([vv], 2)) for _ in b.shape))
    blk = Block(f"b{counter[0]}", (IterVar(vv, Range(0, 16), "spatial"),), (), (BufferRegion(b, tuple(
        Range(0, d) for d in b.shape)),), inner)
    return BlockRealize((binding,), True, blk)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_programs_round_trip(data):
    A = Buffer("A", (16, 16), "float32")
    B = Buffer("B", (16,), "float32")
    body = data.draw(stmt([], [A, B]))
    roundtrip(func(body, A, B))


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_random_expressions_print_and_parse_back(data):
    i, j = Var("i"), Var("j")
    A = Buffer("A", (16, 16), "float32")
    e = data.draw(float_expr([i, j], [A]))
    roundtrip(func(For(i, 0, 4, "serial", For(j, 0, 4, "serial", BufferStore(A, e, (i, j)))), A))


@st.composite
def block_program(draw):
    """A loop nest over a buffer of a random dtype with a remapped block (S/R kinds, init, allocs)."""
    dtype = draw(st.sampled_from(["float32", "float16", "bfloat16", "int8", "int32", "int64", "uint8"]))
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    sym = draw(st.booleans())
    n = Var("n")
    if sym:
        shape = (n,) + shape[1:]
    X = Buffer("X", shape, dtype)
    Y = Buffer("Y", shape[:1], dtype)
    loops = [Var(c) for c in "ijk"[:ndim]]
    ivs = [Var("v" + c) for c in "ijk"[:ndim]]
    kinds = ["spatial"] + [draw(st.sampled_from(["spatial", "reduce"])) for _ in range(ndim - 1)]
    iter_vars = tuple(IterVar(v, Range(0, d), k) for v, d, k in zip(ivs, shape, kinds))
    c = const(draw(st.sampled_from([0, 1, 3])), dtype)
    value = draw(st.sampled_from([
        lambda: Add(Y[ivs[0]], X[tuple(ivs)]),
        lambda: Max(X[tuple(ivs)], c),
        lambda: Mul(c, Cast(dtype, ivs[-1])),
        lambda: Select(ivs[0] < 2, X[tuple(ivs)], c),
    ]))()
    init = BufferStore(Y, c, (ivs[0],)) if "reduce" in kinds else None
    local = Buffer("T", (4,), dtype, scope=draw(st.sampled_from(["global", "local", "shared"])))
    allocs = (local,) if draw(st.booleans()) else ()
    blk = Block("B", iter_vars, (X.full_region(),), (BufferRegion(Y, (Range(ivs[0], 1),)),),
                BufferStore(Y, value, (ivs[0],)), init, allocs,
                annotations={"k": 1} if draw(st.booleans()) else None)
    pred = (loops[0] < 100) if draw(st.booleans()) else True
    s = BlockRealize(tuple(loops), pred, blk)
    for v, d in reversed(list(zip(loops, shape))):
        kind = draw(st.sampled_from(["serial", "serial", "parallel", "unrolled"]))
        s = For(v, 0, d, kind, s)
    roots = (Buffer("R", (2,), dtype),) if draw(st.booleans()) else ()
    return func(s, X, Y, root_allocs=roots)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_program())
def test_random_block_programs_round_trip(f):
    roundtrip(f)
