"""FuseOps and FuseTIR: groups as TVM forms them, fused kernels equal to the unfused chains."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.ir.graph import Var
from workbench.transform import (AnnotateOpPattern, DeadCodeElimination, FuseOps, FuseTIR, LegalizeOps, PassError,
                                 Sequential)

from .graph_runner import GraphRunner, reference
from .models import bert_inputs, bert_layer, mlp, mlp_inputs


def _roundtrip(mod):
    again = wb.parse(mod.script())
    assert wb.structural_equal(mod, again)
    wb.verify_graph(again)
    for f in again.prim_funcs.values():
        wb.verify_well_formed(f)


def _fuse(mod, level=2):
    return Sequential([LegalizeOps(), AnnotateOpPattern(), FuseOps(fuse_opt_level=level), FuseTIR()])(mod)


def test_mlp_groups_and_names():
    marked = Sequential([LegalizeOps(), FuseOps()])(mlp())
    assert dict(marked["main"].attrs["fusion_groups"]) == {
        "fused_matmul_add_relu": ("lv", "lv1", "lv2"), "fused_matmul_add": ("lv3", "lv4")}
    _roundtrip(marked)
    fused = FuseTIR()(marked)
    assert sorted(fused.prim_funcs) == ["fused_matmul_add", "fused_matmul_add_relu", "softmax"]
    _roundtrip(fused)


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_mlp_fused_equals_unfused_and_numpy(backend):
    mod = mlp()
    legal = LegalizeOps()(mod)
    fused = _fuse(mod)
    args = mlp_inputs(np.random.default_rng(3), n=7)
    want = reference(mod, "main", *args)
    unfused_run, fused_run = GraphRunner(legal, backend), GraphRunner(fused, backend)
    np.testing.assert_allclose(unfused_run.run("main", *args), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused_run.run("main", *args), want, rtol=1e-5, atol=1e-6)
    assert (len(unfused_run.launches), len(fused_run.launches)) == (6, 3)
    # symbolic batch: the same kernels for another n
    args = mlp_inputs(np.random.default_rng(4), n=2)
    np.testing.assert_allclose(fused_run.run("main", *args), reference(mod, "main", *args), rtol=1e-5, atol=1e-6)


def test_bert_layer_fusion_launch_counts_and_numerics():
    mod = bert_layer()
    legal = LegalizeOps()(mod)
    fused = _fuse(mod)
    _roundtrip(fused)
    args = bert_inputs(np.random.default_rng(5), s=5)
    want = reference(mod, "main", *args)
    before, after = GraphRunner(legal), GraphRunner(fused)
    np.testing.assert_allclose(before.run("main", *args), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(after.run("main", *args), want, rtol=1e-4, atol=1e-5)
    assert (len(before.launches), len(after.launches)) == (26, 13)
    # matmul + bias + gelu; matmul + bias + residual (the layer_norm after it is a reduction of its own, as in TVM:
    # an out_ewise_fusible group does not join a reduction); reshape + permute_dims for q, k and v
    assert after.launches.count("fused_matmul_add_gelu") == 1
    assert after.launches.count("fused_reshape_permute_dims") == 3
    assert after.launches.count("fused_matmul_add") == 3      # q, k, v projections share one program


def test_each_fused_kernel_equals_its_chain():
    """Every fused program (LLVM) against its member programs run one after another (interpreter) on random
    inputs of the group's input types."""
    marked = Sequential([LegalizeOps(), FuseOps()])(bert_layer())
    fused = FuseTIR()(marked)
    rng = np.random.default_rng(6)
    bindings = {b.var.name: b for blk in marked["main"].body.blocks for b in blk.bindings}
    new_calls = {b.var.name: b.value for blk in fused["main"].body.blocks for b in blk.bindings}
    checked = set()
    for members in marked["main"].attrs["fusion_groups"].values():
        call = new_calls[members[-1]]
        if call.op.name in checked:
            continue
        checked.add(call.op.name)
        sizes = {}
        env = {}
        for a in call.args:
            shape = tuple(d.value if isinstance(d, wb.ir.expr.IntImm) else sizes.setdefault(d, 4)
                          for d in a.type.shape)
            env[id(a)] = rng.standard_normal(shape).astype(a.type.dtype)
        runner = GraphRunner(marked)
        runner.sizes = sizes
        for name in members:
            b = bindings[name]
            env[id(b.var)] = runner.value(b.value, env)
        kernel = wb.build(fused[call.op.name], target="llvm -mcpu=znver3")
        out = np.zeros(env[id(bindings[members[-1]].var)].shape, "float32")
        kernel(*[env[id(a)] for a in call.args], out)
        np.testing.assert_allclose(out, env[id(bindings[members[-1]].var)], rtol=1e-5, atol=1e-5)
    assert len(checked) >= 5


def test_fuse_opt_level_zero_fuses_nothing():
    out = _fuse(mlp(), level=0)
    assert "fusion_groups" not in out["main"].attrs
    assert sorted(out.prim_funcs) == ["add", "add1", "matmul", "matmul1", "relu", "softmax"]


def test_output_of_a_block_ends_a_group_but_does_not_feed_one():
    x = Var("x", wb.Tensor((4, 4), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit_output(wb.op.exp(x))      # leaves the block: cannot be fused into its consumer
            b = bb.emit_output(wb.op.relu(a))
        bb.emit_func_output([a, b])
    marked = Sequential([LegalizeOps(), FuseOps()])(bb.get())
    assert "fusion_groups" not in marked["main"].attrs


def test_group_with_two_outputs_binds_a_tuple():
    x = Var("x", wb.Tensor(("n", 4), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(wb.op.exp(x))
            b = bb.emit(wb.op.relu(a))
            gv = bb.emit_output(wb.op.negative(b))
        bb.emit_func_output(gv)
    mod = LegalizeOps()(bb.get())
    marked = FuseOps()(mod)
    # hand-made group whose intermediate is also used outside it: FuseTIR gives the program two outputs
    groups = {"fused_exp_relu": ("lv", "lv1")}
    marked = marked.with_function("main", marked["main"].with_attr("fusion_groups", groups))
    fused = FuseTIR()(marked)
    _roundtrip(fused)
    arr = np.random.default_rng(7).standard_normal((3, 4)).astype("float32")
    np.testing.assert_allclose(GraphRunner(fused).run("main", arr), -np.maximum(np.exp(arr), 0), rtol=1e-6)


def test_reduction_ends_a_group_and_broadcast_joins_it():
    x = Var("x", wb.Tensor(("n", 8), "float32"))
    g = Var("g", wb.Tensor((8,), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, g]):
        with bb.dataflow():
            a = bb.emit(wb.op.add(x, g))
            ln = bb.emit(wb.op.layer_norm(a, g, g))
            gv = bb.emit_output(wb.op.exp(ln))
        bb.emit_func_output(gv)
    marked = Sequential([LegalizeOps(), FuseOps()])(bb.get())
    assert dict(marked["main"].attrs["fusion_groups"]) == {"fused_add_layer_norm": ("lv", "lv1")}


def test_identical_groups_share_one_program():
    x = Var("x", wb.Tensor(("n", 4), "float32"))
    w = Var("w", wb.Tensor((4, 4), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, w]):
        with bb.dataflow():
            a = bb.emit(wb.op.relu(bb.emit(wb.op.matmul(x, w))))
            gv = bb.emit_output(wb.op.relu(bb.emit(wb.op.matmul(a, w))))
        bb.emit_func_output(gv)
    fused = _fuse(bb.get())
    names = [b.value.op.name for b in fused["main"].body.blocks[0].bindings]
    assert names == ["fused_matmul_relu", "fused_matmul_relu"]
    rng = np.random.default_rng(8)
    arr, warr = rng.standard_normal((2, 4)).astype("float32"), rng.standard_normal((4, 4)).astype("float32")
    want = np.maximum(np.maximum(arr @ warr, 0) @ warr, 0)
    np.testing.assert_allclose(GraphRunner(fused).run("main", arr, warr), want, rtol=1e-5)


def test_fuse_tir_bad_group_is_a_clear_error():
    mod = FuseOps()(LegalizeOps()(mlp()))
    bad = mod.with_function("main", mod["main"].with_attr("fusion_groups", {"fused_x": ("lv", "nope")}))
    with pytest.raises(PassError, match="fusion group fused_x of main names 'nope', which no binding defines"):
        FuseTIR()(bad)


def test_fuse_ops_bad_arguments():
    with pytest.raises(PassError, match="fuse_opt_level must be an int"):
        FuseOps(fuse_opt_level="2")


def test_dead_code_after_fusion_keeps_only_called_programs():
    fused = DeadCodeElimination()(_fuse(mlp()))
    assert sorted(fused.prim_funcs) == ["fused_matmul_add", "fused_matmul_add_relu", "softmax"]
