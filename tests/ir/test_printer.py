"""The printer: exact script text for expressions, statements, functions and modules."""
from __future__ import annotations

import pytest

from workbench.ir import (
    EQ, Add, And, Block, BlockRealize, Broadcast, Buffer, BufferRegion, BufferStore, Call, Cast, Div, FloatImm,
    FloorDiv, FloorMod, For, IfThenElse, IntImm, IRModule, IterVar, LetStmt, Max, Min, Mod, Mul, Not, Or,
    PrimFunc, Ramp, Range, Select, SeqStmt, StringImm, Sub, Var, call, call_extern, cast, const, max_,
)
from workbench.ir.printer import script

i, j, k = Var("i"), Var("j"), Var("k")
A = Buffer("A", (128, 128), "float32")


@pytest.mark.parametrize("e,text", [
    (i * 32 + j, "i * 32 + j"),
    ((i + 1) * 32 + j, "(i + 1) * 32 + j"),
    (Sub(i, Sub(j, k)), "i - (j - k)"),
    (Sub(Sub(i, j), k), "i - j - k"),
    (Mul(i, Mul(j, k)), "i * (j * k)"),
    (Div(i, Mul(j, k)), "i / (j * k)"),
    (FloorDiv(i, 4) * 4 + FloorMod(i, 4), "i // 4 * 4 + i % 4"),
    (FloorDiv(i + j, 4), "(i + j) // 4"),
    (Mod(i, 3), "wb.truncmod(i, 3)"),
    (A[i, k], "A[i, k]"),
    (max_(A[i, j], 0.0), "wb.max(A[i, j], 0.0)"),
    (Min(i, j), "wb.min(i, j)"),
    (call("exp", A[i, j]), "wb.exp(A[i, j])"),
    (Select(i < j, A[i, j], 0.0), "wb.Select(i < j, A[i, j], 0.0)"),
    (cast(A[i, j], "float16"), 'wb.cast(A[i, j], "float16")'),
    (Cast("float32", IntImm(0)), 'wb.cast(0, "float32")'),
    (const(1.0, "float16"), "wb.float16(1.0)"),
    (const(3, "int64"), "wb.int64(3)"),
    (IntImm(3), "3"),
    (IntImm(-3), "-3"),
    (FloatImm(0.5), "0.5"),
    (FloatImm(2.0), "2.0"),
    (FloatImm(1e-07), "1e-07"),
    (FloatImm(float("inf")), 'wb.float32("inf")'),
    (FloatImm(float("-inf"), "float16"), 'wb.float16("-inf")'),
    (FloatImm(float("nan")), 'wb.float32("nan")'),
    (IntImm(1, "bool"), "True"),
    (And(i < j, Not(j < k)), "i < j and not j < k"),
    (Or(And(i < j, j < k), i > k), "i < j and j < k or i > k"),
    (And(i < j, Or(j < k, i > k)), "i < j and (j < k or i > k)"),
    (Not(And(i < j, j < k)), "not (i < j and j < k)"),
    (EQ(i < j, IntImm(1, "bool")), "(i < j) == True"),
    (Add(IntImm(1), IntImm(2)), "wb.int32(1) + 2"),
    (Mul(i, IntImm(-1)), "i * -1"),
    (Sub(IntImm(0), i), "0 - i"),
    (call("if_then_else", i < 4, A[i, 0], 1.0), "wb.if_then_else(i < 4, A[i, 0], 1.0)"),
    (call_extern("float32", "expf", A[i, 0]), 'wb.call_extern("float32", "expf", A[i, 0])'),
    (Call("llvm.x", (i,), "int32"), 'wb.call_intrin("int32", "llvm.x", i)'),
    (Ramp(i, 1, 4), "wb.ramp(i, 1, 4)"),
    (Broadcast(FloatImm(0.0), 8), "wb.broadcast(0.0, 8)"),
    (StringImm("it's"), '"it\'s"'),
])
def test_expression_text(e, text):
    assert script(e) == text
    assert repr(e) == text  # Node.__repr__ prints the script form


def test_constants_next_to_same_dtype_operands_print_bare():
    x = Var("x", "float16")
    n = Var("n", "int64")
    assert script(x * const(0.5, "float16")) == "x * 0.5"
    assert script(n + const(1, "int64")) == "n + 1"
    assert script(const(2, "int64") * n) == "2 * n"
    assert script(Max(x, const(0.0, "float16"))) == "wb.max(x, 0.0)"
    # no operand to take the dtype from: the dtype is spelled
    assert script(Add(const(1, "int64"), const(2, "int64"))) == "wb.int64(1) + 2"
    assert script(x * FloatImm(float("inf"), "float16")) == 'x * wb.float16("inf")'


def test_two_variables_with_one_name_get_distinct_names():
    i2 = Var("i")
    assert script(i + i2) == "i + i_1"
    assert script(i + i) == "i + i"


def test_buffer_store_of_a_narrow_dtype_prints_the_literal_bare():
    H = Buffer("H", (4,), "float16")
    s = BufferStore(H, const(0.0, "float16"), (i,))
    assert script(s) == "H[i] = 0.0"


MM_RELU_TEXT = '''@wb.prim_func
def mm_relu(A: wb.Buffer((128, 128), "float32"), B: wb.Buffer((128, 128), "float32"),
            C: wb.Buffer((128, 128), "float32")):
    Y = wb.alloc_buffer((128, 128), "float32")
    for i, j, k in wb.grid(128, 128, 128):
        with wb.block("Y"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            wb.reads(Y[vi, vj], A[vi, vk], B[vk, vj])
            wb.writes(Y[vi, vj])
            with wb.init():
                Y[vi, vj] = 0.0
            Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    for i, j in wb.grid(128, 128):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            wb.reads(Y[vi, vj])
            wb.writes(C[vi, vj])
            C[vi, vj] = wb.max(Y[vi, vj], 0.0)'''


def build_mm_relu() -> PrimFunc:
    """DESIGN.md cell 1's mm_relu, built with constructors (no parser)."""
    Ab, Bb, Cb = (Buffer(n, (128, 128), "float32") for n in "ABC")
    Y = Buffer("Y", (128, 128), "float32")
    i, j, k = Var("i"), Var("j"), Var("k")
    vi, vj, vk = Var("vi"), Var("vj"), Var("vk")
    y = Block("Y", (IterVar(vi, Range(0, 128)), IterVar(vj, Range(0, 128)), IterVar(vk, Range(0, 128), "reduce")),
              (BufferRegion(Y, (vi, vj)), BufferRegion(Ab, (vi, vk)), BufferRegion(Bb, (vk, vj))),
              (BufferRegion(Y, (vi, vj)),),
              BufferStore(Y, Y[vi, vj] + Ab[vi, vk] * Bb[vk, vj], (vi, vj)), BufferStore(Y, 0.0, (vi, vj)))
    loops1 = For(i, 0, 128, "serial", For(j, 0, 128, "serial", For(k, 0, 128, "serial",
                                                                 BlockRealize((i, j, k), True, y))))
    i2, j2, vi2, vj2 = Var("i"), Var("j"), Var("vi"), Var("vj")
    c = Block("C", (IterVar(vi2, Range(0, 128)), IterVar(vj2, Range(0, 128))),
              (BufferRegion(Y, (vi2, vj2)),), (BufferRegion(Cb, (vi2, vj2)),),
              BufferStore(Cb, max_(Y[vi2, vj2], 0.0), (vi2, vj2)))
    loops2 = For(i2, 0, 128, "serial", For(j2, 0, 128, "serial", BlockRealize((i2, j2), True, c)))
    root = BlockRealize((), True, Block("root", body=SeqStmt((loops1, loops2)), alloc_buffers=(Y,)))
    hs = [Var(n, "handle") for n in "abc"]
    return PrimFunc(tuple(hs), dict(zip(hs, (Ab, Bb, Cb))), root, {"global_symbol": "mm_relu"})


def test_prim_func_prints_the_design_form_exactly():
    assert script(build_mm_relu()) == MM_RELU_TEXT


def test_module_prints_as_a_class_with_methods():
    f = build_mm_relu()
    text = script(IRModule({"mm_relu": f}))
    lines = text.splitlines()
    assert lines[:3] == ["@wb.ir_module", "class Module:", "    @wb.prim_func"]
    assert lines[3].startswith("    def mm_relu(A: wb.Buffer(")
    assert "\n".join(ln[4:] for ln in lines[2:]) == MM_RELU_TEXT


def test_statement_reprs():
    B = Buffer("B", (8,), "float32")
    x = Var("x", "float32")
    s = For(i, 0, 8, "vectorized", IfThenElse(i < 4, LetStmt(x, B[i] * 2.0, BufferStore(B, x, (i,)))))
    assert repr(s) == ("for i in wb.vectorized(8):\n"
                       "    if i < 4:\n"
                       "        x = wb.let(B[i] * 2.0)\n"
                       "        B[i] = x")
    s2 = For(j, 0, 16, "thread_binding", BufferStore(B, 0.0, (j,)), "threadIdx.x", {"pragma": 1})
    assert repr(s2).splitlines()[0] == 'for j in wb.thread_binding(16, thread="threadIdx.x", annotations={"pragma": 1}):'


def test_free_size_variables_are_declared_and_quoted_in_annotations():
    n = Var("n")
    X = Buffer("X", (n, 16), "float32")
    h = Var("x", "handle")
    f = PrimFunc((h,), {h: X}, For(i, 0, n, "serial", BufferStore(X, 1.0, (i, 0))), {"global_symbol": "f"})
    assert script(f).splitlines()[:3] == [
        "@wb.prim_func",
        'def f(X: wb.Buffer(("n", 16), "float32")):',
        "    n = wb.int32()",
    ]


def test_regions_ranges_and_buffers_print():
    assert script(A[0:16, i]) == "A[0:16, i]"
    assert script(BufferRegion(A, (Range(i, 4), Range(j * 4, 4)))) == "A[i:i + 4, j * 4:j * 4 + 4]"
    assert script(Range(2, 8)) == "2:10"
    assert script(A) == 'A: wb.Buffer((128, 128), "float32")'
    assert script(Buffer("S", (4,), "float16", scope="shared")) == 'S: wb.Buffer((4,), "float16", scope="shared")'
