"""LegalizeOps and AnnotateOpPattern."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.graph import Var
from workbench.transform import AnnotateOpPattern, LegalizeOps, PassError, Sequential, analyze_op_pattern

from .graph_runner import GraphRunner, reference
from .models import bert_inputs, bert_layer, mlp, mlp_inputs


def _roundtrip(mod):
    again = wb.parse(mod.script())
    assert wb.structural_equal(mod, again)
    wb.verify_graph(again)


def test_legalize_mlp_matches_numpy_references():
    mod = mlp()
    out = LegalizeOps()(mod)
    assert not any(isinstance(b.value.op, wb.graph.Op) for blk in out["main"].body.blocks for b in blk.bindings
                   if isinstance(b.value, wb.graph.Call))
    # identical programs are shared; names follow the op
    assert sorted(out.prim_funcs) == ["add", "add1", "matmul", "matmul1", "relu", "softmax"]
    wb.verify_graph(out)
    _roundtrip(out)
    args = mlp_inputs(np.random.default_rng(0))
    np.testing.assert_allclose(GraphRunner(out).run("main", *args), reference(mod, "main", *args), rtol=1e-5,
                               atol=1e-6)


def test_legalize_dedups_identical_programs_and_keeps_size_vars():
    x = Var("x", wb.Tensor(("n", 4), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            lv = bb.emit(wb.op.exp(x))
            gv = bb.emit_output(wb.op.exp(lv))
        bb.emit_func_output(gv)
    out = LegalizeOps()(bb.get())
    assert list(out.prim_funcs) == ["exp"]
    n = x.type.shape[0]
    assert out["exp"].buffers[0].shape[0] is n      # the graph's size variable, not a copy
    assert [b.name for b in out["exp"].buffers] == ["A", "exp"]   # inputs then outputs (DPS)


def test_legalize_nested_calls_become_bindings():
    x = Var("x", wb.Tensor((4,), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            gv = bb.emit_output(wb.op.relu(wb.op.exp(x)))
        bb.emit_func_output(gv)
    out = LegalizeOps()(bb.get())
    bindings = out["main"].body.blocks[0].bindings
    assert [b.var.name for b in bindings] == ["lv", "gv"]
    assert isinstance(bindings[0].var, wb.graph.DataflowVar)
    a = np.linspace(-2, 2, 4).astype("float32")
    np.testing.assert_allclose(GraphRunner(out).run("main", a), np.maximum(np.exp(a), 0), rtol=1e-6)


def test_legalize_split_gives_tuple_call_and_concat_flattens():
    x = Var("x", wb.Tensor(("n", 6), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            parts = bb.emit(wb.op.split(x, indices_or_sections=3, axis=1))
            a = bb.emit(wb.graph.TupleGetItem(parts, 0))
            c = bb.emit_output(wb.op.concat((a, x), axis=1))
            gv = bb.emit_output(wb.op.concat(parts, axis=1))
        bb.emit_func_output([gv, c])
    mod = bb.get()
    out = LegalizeOps()(mod)
    split = out["main"].body.blocks[0].bindings[0].value
    assert split.is_call_tir and isinstance(split.type, wb.graph.TupleType)
    _roundtrip(out)
    arr = np.random.default_rng(1).standard_normal((3, 6)).astype("float32")
    got = GraphRunner(out).run("main", arr)
    want = reference(mod, "main", arr)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_bert_layer_legalized_matches_references():
    mod = bert_layer()
    out = LegalizeOps()(mod)
    _roundtrip(out)
    args = bert_inputs(np.random.default_rng(2))
    np.testing.assert_allclose(GraphRunner(out).run("main", *args), reference(mod, "main", *args), rtol=1e-4,
                               atol=1e-5)


def test_legalize_refuses_unknown_rank_with_clear_error():
    x = Var("x", wb.Tensor(None, "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            gv = bb.emit_output(wb.op.exp(x))
        bb.emit_func_output(gv)
    with pytest.raises(PassError, match="binding gv: op exp .*known rank"):
        LegalizeOps()(bb.get())


def test_pass_rejects_non_module():
    with pytest.raises(PassError, match="LegalizeOps takes an IRModule"):
        LegalizeOps()("not a module")
    with pytest.raises(PassError, match="pass 1 is int"):
        Sequential([LegalizeOps(), 3])


# -- AnnotateOpPattern -------------------------------------------------------------------------------

def _prim(fn, *shapes, dtypes=None):
    dtypes = dtypes or ["float32"] * len(shapes)
    phs = [te.placeholder(s, d, name=f"A{k}") for k, (s, d) in enumerate(zip(shapes, dtypes))]
    out = fn(*phs)
    return wb.create_prim_func([*phs, out])


def test_pattern_elementwise():
    assert analyze_op_pattern(_prim(lambda a: te.compute((4, 4), lambda i, j: te.exp(a[i, j])), (4, 4))) == \
        "elementwise"


def test_pattern_broadcast():
    f = _prim(lambda a, b: te.compute((4, 4), lambda i, j: a[i, j] + b[j]), (4, 4), (4,))
    assert analyze_op_pattern(f) == "broadcast"


def test_pattern_injective():
    f = _prim(lambda a: te.compute((4, 3), lambda i, j: a[j, i]), (3, 4))
    assert analyze_op_pattern(f) == "injective"
    g = _prim(lambda t, ids: te.compute((5, 4), lambda i, j: t[ids[i], j]), (8, 4), (5,), dtypes=["float32", "int32"])
    assert analyze_op_pattern(g) == "injective"


def test_pattern_reduction():
    def rowsum(a):
        k = te.reduce_axis(8, name="k")
        return te.compute((4,), lambda i: te.sum(a[i, k], axis=k))
    assert analyze_op_pattern(_prim(rowsum, (4, 8))) == "reduction"


def test_pattern_out_ewise_fusible():
    def mm(a, b):
        k = te.reduce_axis(8, name="k")
        return te.compute((4, 4), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k))
    assert analyze_op_pattern(_prim(mm, (4, 8), (8, 4))) == "out_ewise_fusible"

    def pool(a):   # a reduction reading at computed indices (pooling) is out_ewise_fusible too
        k = te.reduce_axis(2, name="k")
        return te.compute((4,), lambda i: te.max(a[i * 2 + k], axis=k))
    assert analyze_op_pattern(_prim(pool, (8,))) == "out_ewise_fusible"


def test_pattern_opaque():
    scatter = wb.parse('''
@wb.prim_func
def rev(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    for i in range(4):
        with wb.block("B"):
            v_i = wb.axis.spatial(4, i)
            B[3 - v_i] = A[v_i]
''')
    assert analyze_op_pattern(scatter) == "opaque"      # a store at a computed index, no reduction
    blockless = wb.parse('''
@wb.prim_func
def copy(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    for i in range(4):
        B[i] = A[i]
''')
    assert analyze_op_pattern(blockless) == "opaque"


def test_annotate_matches_registry_patterns_and_keeps_existing():
    mod = LegalizeOps()(bert_layer())
    out = AnnotateOpPattern()(mod)
    want = {"matmul": "out_ewise_fusible", "add": "broadcast", "reshape": "injective", "permute_dims": "injective",
            "scaled_dot_product_attention": "out_ewise_fusible", "layer_norm": "reduction", "gelu": "elementwise"}
    for name, f in out.prim_funcs.items():
        base = name.rstrip("0123456789")
        assert f.attrs["op_pattern"] == want[base], name
    fixed = out.with_function("gelu", out["gelu"].with_attr("op_pattern", "opaque"))
    assert AnnotateOpPattern()(fixed)["gelu"].attrs["op_pattern"] == "opaque"
    _roundtrip(out)


def test_legalize_names_keep_the_op_name_digits_included():
    p = Var("p", wb.Tensor((4, 40), "uint8"))
    q = Var("q", wb.Tensor((2, 40), "uint8"))
    x = Var("x", wb.Tensor((3, 4), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [p, q, x]):
        with bb.dataflow():
            w = bb.emit(wb.op.decode_q4(p, qtype="Q4_1"))
            v = bb.emit(wb.op.decode_q4(q, qtype="Q4_1"))       # another shape: a second program
            a = bb.emit(wb.op.add(x, x))
            b = bb.emit(wb.op.add(a, wb.const(1.0, "float32")))  # another program: a numeric suffix
            gv = bb.emit_output((w, v, b))
        bb.emit_func_output(gv)
    out = LegalizeOps()(bb.get())
    assert list(out.prim_funcs) == ["decode_q4", "decode_q4_1", "add", "add1"]   # was decode_q, decode_q1
    assert all(f.attrs["global_symbol"] == name for name, f in out.prim_funcs.items())


def test_fused_kernel_names_keep_the_digits_of_op_names():
    from workbench.transform.fuse_ops import _kernel_base_name

    assert _kernel_base_name("decode_q4") == "decode_q4"
    assert _kernel_base_name("decode_q4_1") == "decode_q4"
    assert _kernel_base_name("add1") == "add"
    assert _kernel_base_name("matmul") == "matmul"
