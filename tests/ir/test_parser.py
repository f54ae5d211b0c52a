"""The parser: DESIGN.md's scripts, alternative spellings, decorators, errors with line numbers,
and the runtime vocabulary behind ``wb.<name>``."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.ir import (
    Add, BlockRealize, Buffer, BufferStore, Call, Cast, FloatImm, For, ForKind, IfThenElse,
    IntImm, IRModule, IterType, LetStmt, Max, PrimFunc, Var, assert_structural_equal,
)
from workbench.ir.parser import ScriptError, ir_module, parse, prim_func
from workbench.ir.printer import script


def blocks(f) -> dict:
    out = {}
    from workbench.ir import post_order_visit

    post_order_visit(f.body, lambda n: out.__setitem__(n.block.name, n) if isinstance(n, BlockRealize) else None)
    return out


def region_text(regions) -> list[str]:
    return [script(r) for r in regions]


# --- DESIGN.md cell 1, exactly as written ----------------------------------------------------


@wb.prim_func
def mm_relu(A: wb.Buffer((128, 128), "float32"), B: wb.Buffer((128, 128), "float32"),
            C: wb.Buffer((128, 128), "float32")):
    Y = wb.alloc_buffer((128, 128), "float32")
    for i, j, k in wb.grid(128, 128, 128):
        with wb.block("Y"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                Y[vi, vj] = 0.0
            Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    for i, j in wb.grid(128, 128):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = wb.max(Y[vi, vj], 0.0)


def test_design_cell1_parses_with_the_expected_structure():
    f = mm_relu
    assert isinstance(f, PrimFunc) and f.name == "mm_relu"
    assert [b.name for b in f.buffers] == ["A", "B", "C"]
    root = f.body
    assert isinstance(root, BlockRealize) and root.block.name == "root"
    assert [b.name for b in root.block.alloc_buffers] == ["Y"]
    loops = root.block.body.seq[0]
    assert [loops.extent.value, loops.body.extent.value, loops.body.body.extent.value] == [128, 128, 128]
    y = blocks(f)["Y"].block
    assert [iv.iter_type for iv in y.iter_vars] == [IterType.SPATIAL, IterType.SPATIAL, IterType.REDUCE]
    assert isinstance(y.init, BufferStore) and y.init.value.value == 0.0
    # inferred regions, TVM-style: the reduction buffer Y is read too
    assert region_text(y.reads) == ["Y[vi, vj]", "A[vi, vk]", "B[vk, vj]"]
    assert region_text(y.writes) == ["Y[vi, vj]"]
    c = blocks(f)["C"].block
    assert isinstance(c.body.value, Max) and c.body.value.b.dtype == "float32"


def test_design_cell1_computes_mm_relu(rng):
    from workbench.ir.interpreter import evaluate

    a = rng.standard_normal((128, 128)).astype("float32")
    b = rng.standard_normal((128, 128)).astype("float32")
    c = np.zeros((128, 128), "float32")
    evaluate(parse(mm_relu.script()), a, b, c)
    np.testing.assert_allclose(c, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-4)


def test_design_cell1_round_trips():
    text = mm_relu.script()
    assert_structural_equal(parse(text), mm_relu)
    assert "wb.reads(Y[vi, vj], A[vi, vk], B[vk, vj])" in text


# --- "The script form, in full" ------------------------------------------------------------------

FULL = '''
@wb.prim_func
def f(a: wb.handle, B: wb.Buffer(("n",), "float32"), C: wb.Buffer((), "float32")):
    n = wb.int32()                                     # a symbolic size, named in shapes as "n"
    A = wb.match_buffer(a, (n, 16), "float32", offset_factor=1)   # params with free offset/strides
    wb.func_attr({"global_symbol": "f"})
    T0 = wb.alloc_buffer((16,), "float32", scope="local")
    for i in wb.parallel(n):                           # wb.serial(start, end), wb.vectorized, wb.unroll,
        for j in wb.thread_binding(16, thread="threadIdx.x"):   # loop annotations via annotations={...}
            with wb.block("B"):
                vi = wb.axis.spatial(n, i)             # also wb.axis.reduce, wb.axis.remap("SR", [...])
                vj = wb.axis.reduce(16, j)
                wb.where(i * 16 + j < 1000)            # block predicate
                wb.reads(A[vi, 0:16]); wb.writes(B[vi])  # explicit regions (inferred when omitted)
                wb.block_attr({"key": 1})
                with wb.init():
                    B[vi] = wb.float32(0)
                x = wb.let(A[vi, vj] * 2.0)            # let-bound value
                if vj < 8:                             # IfThenElse statement
                    B[vi] = B[vi] + wb.if_then_else(x > 0.0, x, wb.cast(0, "float32"))
    C[()] = B[0]                                       # 0-d buffers
'''


def test_full_syntax_example_parses_to_the_expected_structure():
    f = parse(FULL)
    assert f.name == "f" and dict(f.attrs) == {"global_symbol": "f"}
    a, B, C = f.params
    assert a.dtype == "handle" and f.buffer_map[a].name == "A" and f.buffer_map[a].offset_factor == 1
    n = f.buffer_map[B].shape[0]
    assert isinstance(n, Var) and n.name == "n"
    assert f.buffer_map[a].shape[0] is n  # one size variable shared by A and B
    assert f.buffer_map[C].shape == ()
    root = f.body.block
    assert root.alloc_buffers[0].scope == "local"
    outer = root.body.seq[0]
    assert outer.kind == ForKind.PARALLEL and outer.extent is n
    inner = outer.body
    assert inner.kind == ForKind.THREAD_BINDING and inner.thread == "threadIdx.x"
    br = inner.body
    blk = br.block
    assert [iv.iter_type for iv in blk.iter_vars] == [IterType.SPATIAL, IterType.REDUCE]
    assert script(br.predicate) == "i * 16 + j < 1000"
    assert region_text(blk.reads) == ["A[vi, 0:16]"] and region_text(blk.writes) == ["B[vi]"]
    assert dict(blk.annotations) == {"key": 1}
    assert isinstance(blk.init.value, FloatImm)
    assert isinstance(blk.body, LetStmt) and isinstance(blk.body.body, IfThenElse)
    ite = blk.body.body.then_case.value.b
    assert isinstance(ite, Call) and ite.op == "if_then_else"
    assert isinstance(ite.args[2], Cast) and isinstance(ite.args[2].value, IntImm)
    last = root.body.seq[1]
    assert isinstance(last, BufferStore) and last.indices == ()


def test_full_syntax_example_prints_back_and_round_trips():
    f = parse(FULL)
    text = script(f)
    for line in ['def f(a: wb.handle, B: wb.Buffer(("n",), "float32"), C: wb.Buffer((), "float32")):',
                 "    n = wb.int32()",
                 '    A = wb.match_buffer(a, (n, 16), "float32", offset_factor=1)',
                 '    T0 = wb.alloc_buffer((16,), "float32", scope="local")',
                 "    for i in wb.parallel(n):",
                 '        for j in wb.thread_binding(16, thread="threadIdx.x"):',
                 '                wb.where(i * 16 + j < 1000)',
                 '                wb.block_attr({"key": 1})',
                 "                x = wb.let(A[vi, vj] * 2.0)",
                 '                    B[vi] = B[vi] + wb.if_then_else(x > 0.0, x, wb.cast(0, "float32"))',
                 "    C[()] = B[0]"]:
        assert line in text.splitlines(), line
    assert_structural_equal(parse(text), f)


# --- spellings ------------------------------------------------------------------------------------


def test_any_alias_and_no_decorator():
    text = '''
def g(A: T.Buffer((8,), "float32"), B: T.Buffer((8,), "float32")):
    for i in T.serial(8):
        B[i] = T.exp(A[i])
'''
    f = parse(text)
    assert f.name == "g" and isinstance(f.body, For) and f.body.body.value.op == "exp"


def test_python_spellings_range_elif_augassign_and_bare_literals():
    f = parse('''
def g(A: wb.Buffer((8,), "float16"), n: wb.int64):
    for i in range(8):
        if i < 2:
            A[i] = 1
        elif i < 4:
            A[i] += wb.float16(0.5)
        else:
            A[i] = A[i] * 2 + 0.25
''')
    loop = f.body
    assert loop.kind == ForKind.SERIAL and f.params[1].dtype == "int64"
    ite = loop.body
    assert ite.then_case.value.dtype == "float16"
    assert isinstance(ite.else_case, IfThenElse)
    inc = ite.else_case.then_case
    assert isinstance(inc.value, Add) and inc.value.a.buffer.name == "A"
    last = ite.else_case.else_case.value
    assert last.dtype == "float16" and last.b.dtype == "float16" and last.a.b.dtype == "float16"


def test_globals_and_closures_resolve_constants():
    f = parse('''
def g(A: wb.Buffer((N, M), "float32")):
    for i, j in wb.grid(N, M // 2):
        A[i, j * 2] = SCALE
''', globals={"N": 4, "M": 8, "SCALE": 0.5})
    assert [d.value for d in f.buffers[0].shape] == [4, 8]
    assert f.body.body.extent.value == 4 and f.body.body.body.value.value == 0.5

    def make(n):
        half = n // 2

        @wb.prim_func
        def h(A: wb.Buffer((n,), "float32")):
            for i in wb.serial(half):
                A[i * 2] = 1.0

        return h

    h = make(6)
    assert h.buffers[0].shape[0].value == 6 and h.body.extent.value == 3


def test_plain_assignments_bind_python_values_and_int_division_truncates():
    f = parse('''
def g(A: wb.Buffer((8,), "float32")):
    half = 8 / 3
    for i in wb.serial(half):
        A[i] = 0.0
''')
    assert f.body.extent.value == 2


def test_private_functions_and_other_attrs():
    f = parse('''
@wb.prim_func(private=True)
def g(A: wb.Buffer((2,), "float32")):
    wb.func_attr({"tir.noalias": True, "target": "llvm"})
    A[0] = 1.0
''')
    assert dict(f.attrs) == {"tir.noalias": True, "target": "llvm"}


def test_ir_module_decorator_and_text():
    @ir_module
    class Module:
        @prim_func
        def one(A: wb.Buffer((4,), "float32")):
            for i in wb.serial(4):
                A[i] = 1.0

        @prim_func
        def two(A: wb.Buffer((4,), "float32")):
            for i in wb.serial(4):
                A[i] = 2.0

    assert isinstance(Module, IRModule) and list(Module) == ["one", "two"]
    assert_structural_equal(parse(script(Module)), Module)


def test_block_with_explicit_bindings_and_omitted_regions_infers_them():
    f = parse('''
def g(A: wb.Buffer((64,), "float32"), B: wb.Buffer((16,), "float32")):
    for i in wb.serial(16):
        with wb.block("S"):
            vi = wb.axis.spatial(16, i)
            with wb.init():
                B[vi] = 0.0
            for k in wb.serial(4):
                B[vi] = B[vi] + A[vi * 4 + k]
''')
    blk = blocks(f)["S"].block
    assert region_text(blk.writes) == ["B[vi]"]
    reads = region_text(blk.reads)
    assert "A[vi * 4:vi * 4 + 4]" in reads and "B[vi]" in reads


def test_decorated_function_evaluates_like_numpy(rng):
    from workbench.ir.interpreter import evaluate

    @wb.prim_func
    def clip_scale(A: wb.Buffer((4, 6), "float32"), B: wb.Buffer((4, 6), "float32")):
        for i, j in wb.grid(4, 6):
            with wb.block("B"):
                vi, vj = wb.axis.remap("SS", [i, j])
                x = wb.let(A[vi, vj] * 2.0)
                if x > 1.0:
                    B[vi, vj] = wb.float32(1)
                else:
                    B[vi, vj] = wb.Select(x < -1.0, wb.float32(-1), x)

    a = rng.standard_normal((4, 6)).astype("float32")
    b = np.zeros_like(a)
    evaluate(clip_scale, a, b)
    np.testing.assert_allclose(b, np.clip(a * 2, -1, 1))


# --- errors ---------------------------------------------------------------------------------------

ERRORS = [
    ("A[i] = foo + 1.0", 4, "unknown name 'foo'; expected a buffer, a loop variable or a wb.* construct"),
    ("while True:\n            pass", 4, "'while' loops are not supported in the script form; use for ... in wb.grid(...)"),
    ("try:\n            A[0] = 1.0\n        except Exception:\n            pass", 4, "'try' is not supported"),
    ("def g():\n            pass", 4, "nested function definitions are not supported"),
    ("A[i] = wb.frobnicate(A[i])", 4, "unknown construct wb.frobnicate"),
    ("A[i] = wb.exp(A[i], 2.0)", 4, "wb.exp takes 1 positional argument(s), got 2"),
    ("A[i] = A[i] + I[i]", 4, "cannot mix float32 and int32"),
    ("A[i] = wb.cast(A[i], \"float31\")", 4, "unknown dtype 'float31'"),
    ("A[i, 0] = 1.0", 4, "buffer A has 1 dimension(s) but is indexed with 2"),
    ("return A", 4, "'return' is not supported"),
    ("wb.reads(A[i])", 4, "must be inside a `with wb.block(...)`"),
    ("A[i] = wb.block(\"x\")", 4, "wb.block(...) is a statement"),
    ("B = wb.alloc_buffer((4,), \"float32\", scope=\"sharde\")", 4, "unknown storage scope 'sharde'"),
]


@pytest.mark.parametrize("body,line,msg", ERRORS)
def test_errors_name_the_line(body, line, msg):
    text = f'''
@wb.prim_func
def f(A: wb.Buffer((4,), "float32"), I: wb.Buffer((4,), "int32")):
    for i in wb.serial(4):
        {body}
'''
    with pytest.raises(ScriptError) as info:
        parse(text)
    err = info.value
    assert err.lineno == line + 1, str(err)
    assert msg in str(err)
    assert str(err).startswith(f"line {line + 1}: ")
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("text,line,msg", [
    ('def f(A: wb.Buffer((4, 4), "float32")):\n    for i, j in wb.grid(4, 4):\n        with wb.block("B"):\n'
     '            vi, vj = wb.axis.remap("S", [i, j])\n            A[vi, vj] = 0.0', 4,
     "wrong number of variables in wb.axis.remap"),
    ('def f(A: wb.Buffer((4,), "float32")):\n    for i in wb.serial(4):\n        with wb.block("B"):\n'
     '            vi = wb.axis.remap("S", [i + 1])\n            A[vi] = 0.0', 4, "is not one"),
    ('def f(A: wb.Buffer((4,), "flaot32")):\n    A[0] = 1.0', 1, "unknown dtype 'flaot32'"),
    ('def f(A):\n    A[0] = 1.0', 1, "needs an annotation"),
    ('def f(A: wb.Buffer((4,), "float32")):\n    for i in wb.serial(4)\n        A[i] = 1.0', 2,
     "invalid Python syntax"),
    ('def f(A: wb.Buffer((4,), "float32")):\n    for i, j in wb.grid(4):\n        A[i] = 1.0', 2,
     "wb.grid has 1 extent(s) but the loop names 2 variable(s)"),
    ('def f(A: wb.Buffer((4,), "float32")):\n    for i in [0, 1]:\n        A[i] = 1.0', 2, "a loop iterates over"),
    ('def f(A: wb.Buffer((4,), "float32")):\n    for i in wb.serial(4):\n        A[i] = wb.ramp(i, 1)', 3,
     "wb.ramp takes 3 positional argument(s), got 2"),
    ('def f(A: wb.Buffer((4,), "float32")):\n    for i in wb.serial(4, step=2):\n        A[i] = 1.0', 2,
     "unexpected keyword argument 'step'"),
    ('x = 1', 1, "expected a function"),
])
def test_more_errors(text, line, msg):
    with pytest.raises(ScriptError) as info:
        parse(text)
    assert info.value.lineno == line and msg in str(info.value), str(info.value)


def test_decorator_errors_give_the_file_line():
    import inspect

    with pytest.raises(ScriptError) as info:
        @wb.prim_func
        def bad(A: wb.Buffer((4,), "float32")):
            for i in wb.serial(4):
                A[i] = undefined_thing  # noqa: F821
    here = inspect.currentframe().f_lineno
    assert info.value.lineno == here - 1
    assert "unknown name 'undefined_thing'" in str(info.value) and "test_parser.py" in str(info.value)


# --- the runtime vocabulary ---------------------------------------------------------------------


def test_runtime_vocabulary_builds_values():
    b = wb.Buffer(("n", 16), "float32")
    assert isinstance(b, Buffer) and isinstance(b.shape[0], Var) and b.shape[0].name == "n"
    assert b.shape[1].value == 16 and b.dtype == "float32"
    assert wb.Buffer((128, 128), "float32").shape[0].value == 128
    assert isinstance(wb.int32(), Var) and wb.int32().dtype == "int32"
    z = wb.float32(0)
    assert isinstance(z, FloatImm) and z.value == 0.0
    assert wb.float32("inf").value == float("inf")
    assert wb.float16(0.5).dtype == "float16" and wb.int8(3).dtype == "int8" and wb.bool(True).value == 1
    x = Var("x", "float32")
    assert script(wb.max(x, 0.0)) == "wb.max(x, 0.0)" and script(wb.exp(x)) == "wb.exp(x)"
    assert script(wb.sqrt(x)) == "wb.sqrt(x)"
    assert script(wb.cast(x, "float16")) == 'wb.cast(x, "float16")'
    assert script(wb.if_then_else(x > 0.0, x, 1.0)) == "wb.if_then_else(x > 0.0, x, 1.0)"
    assert script(wb.Select(x > 0.0, x, 1.0)) == "wb.Select(x > 0.0, x, 1.0)"
    i = Var("i")
    assert script(wb.truncmod(i, 4)) == "wb.truncmod(i, 4)"
    assert script(wb.ramp(i, 1, 4)) == "wb.ramp(i, 1, 4)" and script(wb.broadcast(x, 4)) == "wb.broadcast(x, 4)"
    assert wb.handle is not None and wb.prim_func is prim_func or callable(wb.prim_func)


def test_script_only_constructs_explain_themselves():
    from workbench.ir.script import ScriptOnlyError

    g = wb.grid(4, 4)  # calling a loop construct does not crash
    with pytest.raises(ScriptOnlyError, match="only run inside a @wb.prim_func"):
        for _ in g:
            pass
    with pytest.raises(ScriptOnlyError, match="wb.block only has a meaning inside a @wb.prim_func"):
        wb.block("x")
    with pytest.raises(ScriptOnlyError):
        wb.axis.remap("SS", [])
    for name in ["init", "where", "reads", "writes", "block_attr", "func_attr", "alloc_buffer",
                 "match_buffer", "let", "allocate", "assert_"]:
        with pytest.raises(ScriptOnlyError):
            getattr(wb, name)()


def test_ir_script_stays_callable_after_the_vocabulary_module_loads():
    import importlib

    import workbench.ir as ir

    importlib.import_module("workbench.ir.script")
    assert ir.script(Var("q") + 1) == "q + 1"


# --- the operator corpus --------------------------------------------------------------------------


def test_op_library_corpus_round_trips():
    op_library = pytest.importorskip("workbench.ir.op_library")
    cases = op_library.corpus()
    assert cases
    for case in cases:
        text = script(case.func)
        back = parse(text)
        assert_structural_equal(back, case.func)
        assert script(back) == text, case.name


def test_decorator_works_on_code_run_from_a_notebook_cell():
    """Jupyter registers each cell's source in linecache; the decorator reads it from there."""
    import linecache

    src = '''import workbench as wb
N = 8

@wb.prim_func
def cell_fn(A: wb.Buffer((N,), "float32")):
    for i in wb.serial(N):
        A[i] = wb.float32(i) if False else wb.cast(i, "float32")
'''
    name = "<ipython-input-7-test>"
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    ns: dict = {}
    exec(compile(src, name, "exec"), ns)
    f = ns["cell_fn"]
    assert isinstance(f, PrimFunc) and f.buffers[0].shape[0].value == 8
    assert script(f.body.body.value) == 'wb.cast(i, "float32")'
