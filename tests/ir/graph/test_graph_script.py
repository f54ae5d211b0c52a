"""Graph functions: script round-trips, structural equality, type inference, parser errors, verify."""
import numpy as np
import pytest

import workbench as wb
from workbench.ir.graph import (
    Call, Constant, DataflowBlock, DataflowVar, Function, GraphTypeError, MatchCast, Op, SeqExpr, Tuple,
    TupleGetItem, Var, VarBinding,
)
from workbench.ir.graph.op import list_ops
from workbench.ir.graph.verify import GraphWellFormedError, verify_graph
from workbench.ir.structural import assert_structural_equal, structural_equal, structural_hash

HAS_ADD = "add" in list_ops()


def roundtrip(obj):
    text = obj.script()
    back = wb.parse(text)
    assert_structural_equal(obj, back)
    assert structural_hash(obj) == structural_hash(back)
    assert back.script() == text
    return back


MODULE_TEXT = '''
@wb.ir_module
class Module:
    @wb.prim_func
    def neg(A: wb.Buffer(("n", 4), "float32"), B: wb.Buffer(("n", 4), "float32")):
        n = wb.int32()
        for i, j in wb.grid(n, 4):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                B[vi, vj] = 0.0 - A[vi, vj]

    @wb.function
    def main(x: wb.Tensor(("n", 4), "float32"), t: wb.Tuple(wb.Tensor((2,), "int32"), wb.Tensor(("m",), "float32"))) -> wb.Tuple(wb.Tensor(("n", 4), "float32"), wb.Tensor(("k",), "float32")):
        wb.func_attr({"num_input": 1})
        c = wb.const([[1.0, 2.0, 3.0, 4.0]], "float32")
        with wb.dataflow():
            lv = wb.call_tir(Module.neg, (x,), out=wb.Tensor(("n", 4), "float32"))
            lv1 = wb.op.demo.negative(lv)
            lv2 = wb.call_dps_library("numpy.negative", (lv1,), out=wb.Tensor(("n", 4), "float32"))
            y = wb.match_cast(t[1], wb.Tensor(("k",), "float32"))
            gv = wb.output((lv2, y))
            gv1 = wb.output(wb.match_cast(c, wb.Tensor((1, 4), "float32")))
        r = (gv[0], gv[1])
        return r
'''


def test_module_with_every_construct_roundtrips():
    mod = wb.parse(MODULE_TEXT)
    assert sorted(mod.functions) == ["main", "neg"]
    main = mod["main"]
    assert isinstance(main, Function) and main.attrs["num_input"] == 1
    n = main.params[0].type.shape[0]
    # one size variable per name across the function
    assert main.ret_type.fields[0].shape[0] is n
    df = main.body.blocks[1]
    assert isinstance(df, DataflowBlock)
    assert isinstance(df.bindings[0].var, DataflowVar) and df.bindings[0].value.is_call_tir
    assert df.bindings[2].value.is_call_dps_library
    assert isinstance(df.bindings[3], MatchCast)
    assert type(df.bindings[4].var) is Var
    back = roundtrip(mod)
    verify_graph(back)


def test_decorated_module_equals_parsed_text():
    @wb.ir_module
    class Module:
        @wb.prim_func
        def neg(A: wb.Buffer(("n", 4), "float32"), B: wb.Buffer(("n", 4), "float32")):
            n = wb.int32()
            for i, j in wb.grid(n, 4):
                with wb.block("B"):
                    vi, vj = wb.axis.remap("SS", [i, j])
                    B[vi, vj] = 0.0 - A[vi, vj]

        @wb.function
        def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
            with wb.dataflow():
                lv = wb.call_tir(Module.neg, (x,), out=wb.Tensor(("n", 4), "float32"))
                gv = wb.output(wb.op.demo.negative(lv))
            return gv

    assert isinstance(Module, wb.IRModule)
    roundtrip(Module)
    assert Module["main"].body.blocks[0].bindings[0].value.op.name == "neg"


def test_names_do_not_matter_values_do():
    a = wb.parse('''
@wb.function
def f(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
    y = wb.op.demo.negative(x)
    return y
''')
    b = wb.parse('''
@wb.function
def f(inp: wb.Tensor(("batch", 4), "float32")) -> wb.Tensor(("batch", 4), "float32"):
    out = wb.op.demo.negative(inp)
    return out
''')
    c = wb.parse('''
@wb.function
def f(x: wb.Tensor(("n", 5), "float32")) -> wb.Tensor(("n", 5), "float32"):
    y = wb.op.demo.negative(x)
    return y
''')
    assert structural_equal(a, b) and structural_hash(a) == structural_hash(b)
    assert not structural_equal(a, c)


def test_size_variables_map_consistently():
    f1 = wb.parse('''
@wb.function
def f(x: wb.Tensor(("n", "m"), "float32"), y: wb.Tensor(("n", "m"), "float32")) -> wb.Tensor(("n", "m"), "float32"):
    return x
''')
    f2 = wb.parse('''
@wb.function
def f(x: wb.Tensor(("n", "m"), "float32"), y: wb.Tensor(("m", "n"), "float32")) -> wb.Tensor(("n", "m"), "float32"):
    return x
''')
    assert not structural_equal(f1, f2)


def test_constants_compare_by_value_and_big_ones_print_by_reference():
    x = Var("x", wb.Tensor((64, 64), "float32"))
    big = np.arange(64 * 64, dtype="float32").reshape(64, 64)
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        lv = bb.emit(Tuple((x, Constant(big), wb.const(np.float32(0.5)))))
        bb.emit_func_output(lv)
    mod = bb.get()
    text = mod.script()
    assert "wb.meta(" in text and 'wb.const(0.5, "float32")' in text
    back = roundtrip(mod)
    other = big.copy()
    other[3, 3] = -1
    bb2 = wb.BlockBuilder()
    x2 = Var("x", wb.Tensor((64, 64), "float32"))
    with bb2.function("main", [x2]):
        bb2.emit_func_output(bb2.emit(Tuple((x2, Constant(other), wb.const(np.float32(0.5))))))
    assert not structural_equal(back, bb2.get())


def test_type_inference_with_symbolic_dims():
    n = wb.var("n")
    x = Var("x", wb.Tensor((n, 4), "float32"))
    y = Call(Op("demo.negative"), (x,))
    assert y.type.shape[0] is n
    if HAS_ADD:
        z = wb.op.add(y, Var("b", wb.Tensor((4,), "float32")))
        assert z.type.shape[0] is n and z.type.shape[1].value == 4
    t = Tuple((x, y))
    assert TupleGetItem(t, 1).type is y.type
    with pytest.raises(GraphTypeError, match="out of range"):
        TupleGetItem(t, 2)


@pytest.mark.skipif("reshape" not in list_ops(), reason="reshape not in the op library yet")
def test_symbolic_attribute_roundtrips():
    f = wb.parse('''
@wb.function
def f(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n * 4",), "float32"):
    y = wb.op.reshape(x, shape=(n * 4,))
    return y
''')
    n = f.params[0].type.shape[0]
    assert f.body.blocks[0].bindings[0].value.attrs["shape"][0].a is n   # the attribute uses the same n
    roundtrip(f)


def test_match_cast_checks_static_parts():
    x = Var("x", wb.Tensor((4, 8), "float32"))
    with pytest.raises(GraphTypeError, match="dimension 1 is 8"):
        MatchCast(Var("y", wb.Tensor(("m", 4), "float32")), x, wb.Tensor(("m", 4), "float32"))
    with pytest.raises(GraphTypeError, match="dtype"):
        MatchCast(Var("y", wb.Tensor((4, 8), "int32")), x, wb.Tensor((4, 8), "int32"))


def _error_of(text):
    with pytest.raises(wb.ScriptError) as info:
        wb.parse(text)
    return info.value


def test_unknown_op_lists_close_names():
    err = _error_of('''
@wb.function
def f(x: wb.Tensor((4,), "float32")) -> wb.Tensor((4,), "float32"):
    y = wb.op.demo.negativ(x)
    return y
''')
    assert err.lineno == 4 and "demo.negativ" in str(err) and "demo.negative" in str(err)


def test_wrong_arity_reports_the_ops_error_with_line():
    err = _error_of('''
@wb.function
def f(x: wb.Tensor((4,), "float32")) -> wb.Tensor((4,), "float32"):
    with wb.dataflow():
        y = wb.op.demo.negative(x, x)
        gv = wb.output(y)
    return gv
''')
    assert err.lineno == 5 and "demo.negative" in str(err)


@pytest.mark.parametrize("body, line, words", [
    ("    with wb.dataflow():\n        y = wb.op.demo.negative(x)\n    return y", 5, "dataflow variable"),
    ("    y = wb.output(x)\n    return y", 3, "only meaningful inside"),
    ("    y = wb.op.demo.negative(z)\n    return y", 3, "unknown name 'z'"),
    ("    y = wb.match_cast(x, wb.Tensor((5,), \"float32\"))\n    return y", 3, "dimension 0 is 4"),
    ("    y = wb.call_tir(Module.nothere, (x,), out=wb.Tensor((4,), \"float32\"))\n    return y", 3, "no function"),
    ("    y = wb.call_tir(Module.g, (x,), out=wb.Tensor((\"q\",), \"float32\"))\n    return y", 3, "size variable q"),
    ("    for i in range(3):\n        pass\n    return x", 3, "not supported"),
    ("    y = wb.op.demo.negative(1.0)\n    return y", 3, "wb.const"),
])
def test_bad_graph_scripts_have_clear_errors(body, line, words):
    text = ("@wb.ir_module\nclass Module:\n    @wb.prim_func\n    def g(A: wb.Buffer((4,), \"float32\")):\n"
            "        A[0] = 1.0\n\n    @wb.function\n    def f(x: wb.Tensor((4,), \"float32\")):\n"
            + "\n".join("    " + ln for ln in body.splitlines()))
    err = _error_of(text)
    assert words in str(err)
    assert err.lineno == line + 6


def test_verify_catches_undefined_and_mistyped():
    x = Var("x", wb.Tensor((4,), "float32"))
    y = Var("y", wb.Tensor((4,), "float32"))
    f = Function([x], SeqExpr([], wb.op.demo.negative(y)))
    with pytest.raises(GraphWellFormedError, match="uses y before it is defined"):
        verify_graph(f)
    lv = DataflowVar("lv", wb.Tensor((5,), "float32"))
    g = Function([x], SeqExpr([DataflowBlock([VarBinding(lv, x)])], x))
    with pytest.raises(GraphWellFormedError, match="not its value's type"):
        verify_graph(g)
    h = Function([x], SeqExpr([], x), wb.Tensor((5,), "float32"))
    with pytest.raises(GraphWellFormedError, match="return type"):
        verify_graph(h)
    assert isinstance(GraphWellFormedError("f", ["p"]), wb.WellFormedError)


def test_verify_checks_call_tir_arity():
    mod = wb.parse('''
@wb.ir_module
class Module:
    @wb.prim_func
    def g(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
        for i in wb.serial(4):
            B[i] = A[i]

    @wb.function
    def f(x: wb.Tensor((4,), "float32")) -> wb.Tensor((4,), "float32"):
        y = wb.call_tir(Module.g, (x, x), out=wb.Tensor((4,), "float32"))
        return y
''')
    with pytest.raises(GraphWellFormedError, match="takes 2 parameter"):
        verify_graph(mod)


def test_module_repr_is_text_for_graph_modules():
    mod = wb.parse(MODULE_TEXT)
    bundle = mod._repr_mimebundle_()
    assert bundle["text/plain"] == mod.script()
    assert mod["main"]._repr_mimebundle_()["text/plain"].startswith("@wb.function")
    assert list(mod.graph_functions) == ["main"] and list(mod.prim_funcs) == ["neg"]


def test_script_only_constructs_explain_themselves():
    with pytest.raises(wb.ScriptOnlyError, match="BlockBuilder"):
        wb.output(1)
