"""wb.BlockBuilder: a 2-layer MLP built with emit_te; its tensor programs build and match numpy."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.graph import BlockBuilder, DataflowVar, Var
from workbench.ir.graph.block_builder import BlockBuilderError
from workbench.ir.graph.verify import verify_graph
from workbench.ir.structural import assert_structural_equal


def te_linear(x, w, b):
    k = te.reduce_axis(x.shape[1], name="k")
    mm = te.compute((x.shape[0], w.shape[0]), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="matmul")
    return te.compute(mm.shape, lambda i, j: mm[i, j] + b[j], name="linear")


def te_relu(x):
    return te.compute(x.shape, lambda i, j: te.max(x[i, j], 0.0), name="relu")


def build_mlp():
    x = Var("x", wb.Tensor(("n", 16), "float32"))
    w0 = Var("w0", wb.Tensor((8, 16), "float32"))
    b0 = Var("b0", wb.Tensor((8,), "float32"))
    w1 = Var("w1", wb.Tensor((4, 8), "float32"))
    b1 = Var("b1", wb.Tensor((4,), "float32"))
    bb = BlockBuilder()
    with bb.function("main", [x, w0, b0, w1, b1]):
        with bb.dataflow():
            lv0 = bb.emit_te(te_linear, x, w0, b0)
            lv1 = bb.emit_te(te_relu, lv0)
            out = bb.emit_te(te_linear, lv1, w1, b1)
            gv = bb.emit_output(out)
        bb.emit_func_output(gv)
    return bb.get()


def test_mlp_module_shape_and_roundtrip():
    mod = build_mlp()
    assert sorted(mod.functions) == ["main", "te_linear", "te_linear1", "te_relu"]
    main = mod["main"]
    n = main.params[0].type.shape[0]
    assert main.ret_type.shape[0] is n and main.ret_type.shape[1].value == 4
    bindings = main.body.blocks[0].bindings
    assert [b.value.op.name for b in bindings[:3]] == ["te_linear", "te_relu", "te_linear1"]
    assert all(isinstance(b.var, DataflowVar) for b in bindings[:3])
    verify_graph(mod)
    back = wb.parse(mod.script())
    assert_structural_equal(mod, back)


def test_mlp_kernels_build_and_match_numpy_one_by_one():
    mod = build_mlp()
    rng = np.random.default_rng(0)
    n = 5
    x = rng.standard_normal((n, 16)).astype("float32")
    w0, b0 = rng.standard_normal((8, 16)).astype("float32"), rng.standard_normal(8).astype("float32")
    w1, b1 = rng.standard_normal((4, 8)).astype("float32"), rng.standard_normal(4).astype("float32")
    env = {}
    main = mod["main"]
    for p, a in zip(main.params, (x, w0, b0, w1, b1)):
        env[p] = a
    for b in main.body.blocks[0].bindings:
        call = b.value
        if isinstance(call, wb.graph.Call) and call.is_call_tir:
            f = wb.build(mod[call.op.name], target="llvm")
            out = np.zeros([n if isinstance(d, wb.ir.Var) else d.value for d in call.type.shape], call.type.dtype)
            f(*[env[a] for a in call.args], out)
            env[b.var] = out
        else:
            env[b.var] = env[call]
    want = np.maximum(x @ w0.T + b0, 0) @ w1.T + b1
    np.testing.assert_allclose(env[main.body.body], want, rtol=1e-5, atol=1e-5)


def test_match_cast_and_tuple_output():
    x = Var("x", wb.Tensor(None, "float32"))
    bb = BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.match_cast(x, wb.Tensor(("m", 3), "float32"))
            z = bb.emit(wb.op.demo.negative(y))
            gv = bb.emit_output(z)
        bb.emit_func_output([gv, gv])
    mod = bb.get()
    verify_graph(mod)
    assert mod["main"].ret_type.fields[0].shape[1].value == 3
    assert_structural_equal(mod, wb.parse(mod.script()))


def test_builder_misuse_is_explained():
    x = Var("x", wb.Tensor((4,), "float32"))
    bb = BlockBuilder()
    with pytest.raises(BlockBuilderError, match="inside `with bb.function"):
        bb.emit(x)
    with pytest.raises(BlockBuilderError, match="inside `with bb.dataflow"):
        with bb.function("f", [x]):
            bb.emit_output(x)
    with pytest.raises(BlockBuilderError, match="emit_func_output"):
        with bb.function("g", [x]):
            bb.emit(x)
    with pytest.raises(BlockBuilderError, match="te tensor"):
        with bb.function("h", [x]):
            bb.emit_te(lambda a: 3, x)


def test_a_dataflow_variable_as_the_function_result_is_refused():
    import pytest

    import workbench as wb
    from workbench.ir.graph.block_builder import BlockBuilderError

    x = wb.graph.Var("x", wb.Tensor((4,), "float32"))
    bb = wb.BlockBuilder()
    with pytest.raises(BlockBuilderError, match="is a dataflow variable, visible only inside"):
        with bb.function("main", [x]):
            with bb.dataflow():
                c = bb.emit(wb.op.exp(x))
            bb.emit_func_output(c)


def test_emit_te_reuses_an_identical_program():
    x = Var("x", wb.Tensor(("n", 8), "float32"))
    ws = [Var(f"w{k}", wb.Tensor((8, 8), "float32")) for k in range(3)]
    bs = [Var(f"b{k}", wb.Tensor((8,), "float32")) for k in range(3)]
    bb = BlockBuilder()
    with bb.function("main", [x, *ws, *bs]):
        with bb.dataflow():
            h = x
            for w, b in zip(ws, bs):                 # three identical layers: one program each kind
                h = bb.emit_te(te_relu, bb.emit_te(te_linear, h, w, b))
            other = bb.emit_te(te_linear, h, ws[0], bs[0], primfunc_name_hint="proj")   # hint aside: reused
            gv = bb.emit_output(other)
        bb.emit_func_output(gv)
    mod = bb.get()
    assert list(mod.prim_funcs) == ["te_linear", "te_relu"]   # was te_linear, te_relu, te_linear1, ... (6 + 1)
    calls = [b.value.op.name for blk in mod["main"].body.blocks for b in blk.bindings
             if getattr(b.value, "is_call_tir", False)]
    assert calls == ["te_linear", "te_relu"] * 3 + ["te_linear"]
    verify_graph(mod)
    n = 5
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s, dtype="float32") for s in [(n, 8)] + [(8, 8)] * 3 + [(8,)] * 3]
    got = wb.VirtualMachine(wb.build(mod, target="llvm"))["main"](*arrays)
    h = arrays[0]
    for w, b in zip(arrays[1:4], arrays[4:7]):
        h = np.maximum(h @ w.T + b, 0)
    np.testing.assert_allclose(got, h @ arrays[1].T + arrays[4], rtol=1e-5, atol=1e-5)


def test_emit_te_keeps_different_programs_apart():
    x = Var("x", wb.Tensor((4, 8), "float32"))
    y = Var("y", wb.Tensor((4, 6), "float32"))
    bb = BlockBuilder()
    with bb.function("main", [x, y]):
        with bb.dataflow():
            a = bb.emit_te(te_relu, x)
            b = bb.emit_te(te_relu, y)                # another shape: another program
            gv = bb.emit_output((a, b))
        bb.emit_func_output(gv)
    assert list(bb.get().prim_funcs) == ["te_relu", "te_relu1"]


def test_function_displays_its_graph_like_a_module(monkeypatch):
    fn = build_mlp()["main"]
    bundle = fn._repr_mimebundle_()
    assert bundle["text/plain"] == fn.script()
    assert "wb-static-graph-view" in bundle["text/html"]          # was text only: no graph view
    assert bundle["text/html"] == wb.IRModule({"main": fn})._repr_mimebundle_()["text/html"]
    monkeypatch.setitem(__import__("sys").modules, "workbench.viz", None)   # viewer missing: the script
    assert fn._repr_mimebundle_() == {"text/plain": fn.script()}
