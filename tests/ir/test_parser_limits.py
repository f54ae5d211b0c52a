"""The parser and printer at their limits: huge constants, deep nesting, duplicate block names.

Each case used to hang, escape as a raw RecursionError, print unreadable text or be silently
accepted; now it works or fails with a ScriptError naming the line.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import workbench as wb
from workbench.ir import (
    Add, BlockRealize, Buffer, BufferLoad, FloatImm, IntImm, IRModule, PrimFunc, Sub, Var,
    assert_structural_equal, post_order_visit,
)
from workbench.ir.interpreter import evaluate
from workbench.ir.parser import ScriptError
from workbench.ir.printer import deep_recursion, script

# line 4 of this text is the store whose value is substituted for VALUE
STORE = '''
def f(A: wb.Buffer((4,), "DT"), B: wb.Buffer((4,), "DT")):
    for i in wb.serial(4):
        B[i] = VALUE
'''


def store_text(value: str, dtype: str = "float64") -> str:
    return STORE.replace("VALUE", value).replace("DT", dtype)


def stored_value(f: PrimFunc):
    return f.body.body.value


# --- 1. constant folding is bounded ------------------------------------------------------------------


def test_huge_power_is_refused_without_computing_it():
    # before: 9 ** 387420489 was computed with Python's unbounded integers (minutes, gigabytes)
    code = textwrap.dedent(f'''
        import workbench as wb
        from workbench.ir.parser import ScriptError
        try:
            wb.parse({store_text("A[i] + wb.float64(9 ** 9 ** 9)")!r})
        except ScriptError as err:
            print(err)
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "line 4:" in out.stdout and "`9 ** 9 ** 9` does not fit in 64 bits" in out.stdout


@pytest.mark.parametrize("expr,message", [
    ("1 << 10 ** 10", "`1 << 10 ** 10` does not fit in 64 bits"),
    ("10 ** 18 * 10 ** 18", "`10 ** 18 * 10 ** 18` does not fit in 64 bits"),
    ("(-3) ** 1000", "`(-3) ** 1000` does not fit in 64 bits"),
    ("2.0 ** 9 ** 9", "`2.0 ** 9 ** 9` is too large for a float64"),
    ("7 // (3 - 3)", "division by zero in the constant expression `7 // (3 - 3)`"),
])
def test_overflowing_constant_expressions_name_the_line(expr, message):
    with pytest.raises(ScriptError, match="line 4") as info:
        wb.parse(store_text(f"A[i] + wb.float64({expr})"))
    assert message in str(info.value)


def test_constants_within_64_bits_still_fold():
    f = wb.parse(store_text("A[i] + wb.int64(2 ** 62 + (1 << 61) - 3 ** 39)", "int64"))
    assert stored_value(f).b.value == 2 ** 62 + 2 ** 61 - 3 ** 39
    g = wb.parse(store_text("A[i] * wb.float64(2 ** -2 + 1 ** 1000)"))
    assert stored_value(g).b.value == 1.25


# --- 2. deep nesting: supported to a few thousand levels, a clear error beyond ---------------------


def test_a_two_thousand_term_sum_parses_prints_and_parses_back():
    f = wb.parse(store_text(" + ".join(["A[i]"] * 2000)))   # 2000 levels of Add: RecursionError before
    text = f.script()
    assert_equal_deep(wb.parse(text), f)
    a = np.random.default_rng(0).random(4)
    b = np.zeros(4)
    evaluate_deep(f, a, b)
    np.testing.assert_allclose(b, a * 2000)


def test_an_expression_too_deep_for_the_parser_names_its_line():
    with pytest.raises(ScriptError, match="^line 4: this statement nests expressions too deeply"):
        wb.parse(store_text(" + ".join(["A[i]"] * 20000)))


def test_text_too_deep_for_pythons_own_parser_names_its_line():
    with pytest.raises(ScriptError, match="^line 4: the text nests expressions too deeply for Python's parser"):
        wb.parse(store_text("-" * 7000 + "A[i]"))


def test_printer_handles_deep_expressions_and_refuses_absurd_ones_clearly():
    A = Buffer("A", (4,), "float32")
    i = Var("i")
    e = A[i]
    for _ in range(3000):
        e = Add(e, A[i])
    assert script(e).count("+") == 3000
    for _ in range(40000):
        e = Add(e, A[i])
    with pytest.raises(ValueError, match="nested more than a few thousand levels deep"):
        script(e)
    assert "unprintable" in repr(e)


# --- 3. nested negations print as text that reads back ---------------------------------------------


def test_a_thousand_nested_negations_round_trip():
    f = wb.parse(store_text("-" * 1000 + "-A[i]"))          # 1001 negations
    text = f.script()                                       # was 1000 nested parentheses: unreadable
    g = wb.parse(text)
    assert script(g) == text
    assert_equal_deep(g, f)
    value, count = stored_value(g), 0
    while isinstance(value, Sub):
        assert isinstance(value.a, FloatImm) and value.a.value == 0.0
        value, count = value.b, count + 1
    assert count == 1001 and isinstance(value, BufferLoad)
    a, b = np.random.default_rng(1).random(4), np.zeros(4)
    evaluate_deep(g, a, b)
    np.testing.assert_allclose(b, -a)


@pytest.mark.parametrize("dtype,text", [("int32", "0 - --A[i]"), ("float64", "0.0 - --A[i]"),
                                        ("int64", "0 - --A[i]")])
def test_nested_negations_print_as_unary_minuses(dtype, text):
    f = wb.parse(store_text("---A[i]", dtype))
    assert f.script().splitlines()[-1].strip() == f"B[i] = {text}"
    assert_structural_equal(wb.parse(f.script()), f)


def test_one_negation_and_negative_zero_keep_their_spelling():
    i = Var("i")
    assert script(Sub(IntImm(0), i)) == "0 - i"
    assert script(Sub(IntImm(0), Sub(IntImm(0), IntImm(5)))) == "0 - (wb.int32(0) - 5)"
    x = Var("x", "float32")
    neg_zero = Sub(FloatImm(-0.0), Sub(FloatImm(-0.0), x))
    assert script(neg_zero) == "-0.0 - (-0.0 - x)"


# --- 4. duplicate block names ------------------------------------------------------------------------

TWO_BLOCKS = '''
def f(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    for i in wb.serial(4):
        with wb.block("B"):
            vi = wb.axis.spatial(4, i)
            B[vi] = A[vi]
    for i in wb.serial(4):
        with wb.block("SECOND"):
            vi = wb.axis.spatial(4, i)
            B[vi] = B[vi] * 2.0
'''


def test_two_blocks_with_one_name_are_refused():
    with pytest.raises(ScriptError, match=r"^line 8: two blocks are named 'B' \(lines 4 and 8\)"):
        wb.parse(TWO_BLOCKS.replace("SECOND", "B"))


def test_a_nested_block_repeating_its_parents_name_is_refused():
    text = '''
def f(A: wb.Buffer((4,), "float32")):
    with wb.block("outer"):
        for i in wb.serial(4):
            with wb.block("outer"):
                vi = wb.axis.spatial(4, i)
                A[vi] = 0.0
'''
    with pytest.raises(ScriptError, match=r"^line 5: two blocks are named 'outer' \(lines 3 and 5\)"):
        wb.parse(text)


def test_the_root_block_name_is_reserved_unless_it_is_the_root():
    with pytest.raises(ScriptError, match="^line 8: the block name 'root' is reserved"):
        wb.parse(TWO_BLOCKS.replace("SECOND", "root"))
    explicit = wb.parse('''
def f(A: wb.Buffer((4,), "float32")):
    with wb.block("root"):
        for i in wb.serial(4):
            with wb.block("A"):
                vi = wb.axis.spatial(4, i)
                A[vi] = 0.0
''')
    names = []
    post_order_visit(explicit.body, lambda n: names.append(n.block.name) if isinstance(n, BlockRealize) else None)
    assert sorted(names) == ["A", "root"]


def test_functions_of_a_module_may_reuse_block_names():
    mod = wb.parse("@wb.ir_module\nclass M:\n" + textwrap.indent(TWO_BLOCKS.replace("def f", "def f1"), "    ")
                   + textwrap.indent(TWO_BLOCKS.replace("def f", "def f2"), "    "))
    assert isinstance(mod, IRModule) and list(mod) == ["f1", "f2"]
    sch = wb.Schedule(mod, func_name="f2")
    assert sch.get(sch.get_block("B")).name == "B"


# --- helpers -------------------------------------------------------------------------------------------


def assert_equal_deep(a, b):
    """Structural equality recurses per level; deep programs need the printer's raised limit."""
    with deep_recursion():
        assert_structural_equal(a, b)


def evaluate_deep(f, *arrays):
    with deep_recursion():
        evaluate(f, *arrays)
