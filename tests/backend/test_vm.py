"""The virtual machine: graph functions built with wb.build and run with numpy arrays (checked against numpy)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.executable import Executable
from workbench.backend.vm_compile import VMError
from workbench.ir.graph import Call, GlobalVar, Var

RNG = np.random.default_rng(0)


def randn(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


# te building blocks -------------------------------------------------------------------------
def linear(x, w, b):
    k = te.reduce_axis((0, x.shape[1]), name="k")
    mm = te.compute((x.shape[0], w.shape[0]), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="mm")
    return te.compute(mm.shape, lambda i, j: mm[i, j] + b[j], name="linear")


def relu(x):
    return te.compute(x.shape, lambda *i: te.max(x[i], 0.0), name="relu")


def scale(x, factor=2.0):
    return te.compute(x.shape, lambda *i: x[i] * factor, name="scale")


def add(a, b):
    return te.compute(a.shape, lambda *i: a[i] + b[i], name="add")


def sum_and_max(x):
    k = te.reduce_axis((0, x.shape[1]), name="k")
    s = te.compute((x.shape[0],), lambda i: te.sum(x[i, k], axis=k), name="rowsum")
    k2 = te.reduce_axis((0, x.shape[1]), name="k2")
    m = te.compute((x.shape[0],), lambda i: te.max(x[i, k2], axis=k2), name="rowmax")
    return [s, m]


def tensor(name, shape, dtype="float32"):
    return Var(name, wb.Tensor(shape, dtype))


def build_vm(mod):
    ex = wb.build(mod, target="llvm")
    assert isinstance(ex, Executable)
    return wb.VirtualMachine(ex)


def mlp_module():
    x = tensor("x", ("n", 8))
    w1, b1, w2, b2 = tensor("w1", (16, 8)), tensor("b1", (16,)), tensor("w2", (4, 16)), tensor("b2", (4,))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, w1, b1, w2, b2]):
        with bb.dataflow():
            h = bb.emit_te(relu, bb.emit_te(linear, x, w1, b1))
            gv = bb.emit_output(bb.emit_te(linear, h, w2, b2))
        bb.emit_func_output(gv)
    return bb.get()


MLP_PARAMS = [randn(16, 8), randn(16), randn(4, 16), randn(4)]


def mlp_reference(x, w1, b1, w2, b2):
    return np.maximum(x @ w1.T + b1, 0) @ w2.T + b2


@pytest.fixture(scope="module")
def mlp_vm():
    return build_vm(mlp_module())


# running --------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_mlp_symbolic_batch_matches_numpy(mlp_vm, batch):
    x = randn(batch, 8)
    out = mlp_vm["main"](x, *MLP_PARAMS)
    assert out.shape == (batch, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, mlp_reference(x, *MLP_PARAMS), rtol=1e-5, atol=1e-5)


def test_outputs_are_64_byte_aligned_and_fresh_per_call(mlp_vm):
    x = randn(5, 8)
    a = mlp_vm["main"](x, *MLP_PARAMS)
    b = mlp_vm["main"](x * 2, *MLP_PARAMS)
    assert a.ctypes.data % 64 == 0 and b.ctypes.data % 64 == 0
    assert not np.shares_memory(a, b)
    np.testing.assert_allclose(a, mlp_reference(x, *MLP_PARAMS), rtol=1e-5, atol=1e-5)


def test_strided_input_is_accepted(mlp_vm):
    x = randn(6, 16)[:, ::2]  # not C-contiguous
    np.testing.assert_allclose(mlp_vm["main"](x, *MLP_PARAMS), mlp_reference(x, *MLP_PARAMS), rtol=1e-5,
                               atol=1e-5)


def test_batch_and_sequence_symbolic_without_rebuilding():
    x = tensor("x", ("batch", "seq", 4))
    y = tensor("y", ("batch", "seq", 4))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, y]):
        with bb.dataflow():
            gv = bb.emit_output(bb.emit_te(scale, bb.emit_te(add, x, y), factor=3.0))
        bb.emit_func_output(gv)
    vm = build_vm(bb.get())
    for batch in (1, 4):
        for seq in (7, 32):
            a, b = randn(batch, seq, 4), randn(batch, seq, 4)
            np.testing.assert_allclose(vm["main"](a, b), (a + b) * 3.0, rtol=1e-6)


def test_tuple_outputs_from_a_kernel_and_a_tuple_result():
    x = tensor("x", ("n", 6))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            both = bb.emit_te(sum_and_max, x)
            s = bb.emit(wb.graph.TupleGetItem(both, 0))
            m = bb.emit(wb.graph.TupleGetItem(both, 1))
            doubled = bb.emit_te(scale, s)
            gv0, gv1 = bb.emit_output(doubled), bb.emit_output(m)
        bb.emit_func_output([gv0, gv1, x])
    vm = build_vm(bb.get())
    a = randn(5, 6)
    out = vm["main"](a)
    assert isinstance(out, tuple) and len(out) == 3
    np.testing.assert_allclose(out[0], a.sum(1) * 2, rtol=1e-5)
    np.testing.assert_allclose(out[1], a.max(1))
    np.testing.assert_array_equal(out[2], a)


def test_tuple_value_as_call_tir_argument_is_spread():
    x, y = tensor("x", (4,)), tensor("y", (4,))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, y]):
        with bb.dataflow():
            pair = bb.emit(wb.graph.Tuple((x, y)))
            add_gv = bb.add_func(te.create_prim_func(_add_args(), name="add"), "add")
            gv = bb.emit_output(Call(add_gv, (pair,), type=wb.Tensor((4,), "float32")))
        bb.emit_func_output(gv)
    vm = build_vm(bb.get())
    a, b = randn(4), randn(4)
    np.testing.assert_allclose(vm["main"](a, b), a + b)


def _add_args():
    a, b = te.placeholder((4,), "float32", name="a"), te.placeholder((4,), "float32", name="b")
    return [a, b, add(a, b)]


# match_cast -----------------------------------------------------------------------------------
def match_cast_module():
    x = tensor("x", ("n", 4))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            lv = bb.emit_te(scale, x)
            cast = bb.match_cast(lv, wb.Tensor(("m", 4), "float32"))
            fixed = bb.match_cast(cast, wb.Tensor((2, "k"), "float32"))
            gv = bb.emit_output(bb.emit_te(scale, fixed, factor=0.5))
        bb.emit_func_output(gv)
    return bb.get()


def test_match_cast_binds_new_size_variables():
    vm = build_vm(match_cast_module())
    a = randn(2, 4)
    out = vm["main"](a)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, a, rtol=1e-6)


def test_match_cast_failure_is_a_clear_error():
    vm = build_vm(match_cast_module())
    with pytest.raises(ValueError, match=r"match_cast of lv\d*.*dimension 0 is 3 but .*requires 2"):
        vm["main"](randn(3, 4))


def test_match_cast_of_a_size_variable_already_bound_checks_it():
    x = tensor("x", ("n", 4))
    y = tensor("y", ("m", 4))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, y]):
        lv = bb.match_cast(y, wb.Tensor(("n", 4), "float32"))
        bb.emit_func_output(bb.emit_te(add, x, lv))
    vm = build_vm(bb.get())
    a, b = randn(3, 4), randn(3, 4)
    np.testing.assert_allclose(vm["main"](a, b), a + b)
    with pytest.raises(ValueError, match=r"main\(\): match_cast of lv has shape \(5, 4\): dimension 0 is 5 but "
                                         r"n = 3 from parameter x "):
        vm["main"](a, randn(5, 4))


# argument checks ------------------------------------------------------------------------------
def test_wrong_dtype_names_the_parameter(mlp_vm):
    with pytest.raises(TypeError, match=r"main\(\): parameter x \(argument 0\) has dtype float64 but "
                                        r"wb.Tensor\(\(n, 8\), \"float32\"\) is expected"):
        mlp_vm["main"](randn(2, 8, dtype="float64"), *MLP_PARAMS)


def test_wrong_rank_names_the_parameter(mlp_vm):
    with pytest.raises(ValueError, match=r"parameter x \(argument 0\) has 3 dimension\(s\), shape \(1, 2, 8\)"):
        mlp_vm["main"](randn(1, 2, 8), *MLP_PARAMS)


def test_wrong_static_dim_names_the_parameter_and_dim(mlp_vm):
    w2 = randn(5, 16)
    with pytest.raises(ValueError, match=r"parameter w2 \(argument 3\) has shape \(5, 16\): dimension 0 is 5 but "
                                         r".* requires 4"):
        mlp_vm["main"](randn(2, 8), MLP_PARAMS[0], MLP_PARAMS[1], w2, MLP_PARAMS[3])


def test_inconsistent_size_variable_names_both_places():
    x, y = tensor("x", ("n", 4)), tensor("y", ("n", 4))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, y]):
        bb.emit_func_output(bb.emit_te(add, x, y))
    vm = build_vm(bb.get())
    with pytest.raises(ValueError, match=r"parameter y \(argument 1\) has shape \(3, 4\): dimension 0 is 3 but "
                                         r"n = 2 from parameter x \(argument 0\) dimension 0"):
        vm["main"](randn(2, 4), randn(3, 4))


def test_expression_dimension_is_checked():
    x, y = tensor("x", ("n",)), tensor("y", (wb.graph.size_var("n") * 2,))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, y]):
        bb.emit_func_output(bb.emit_te(scale, x))
    vm = build_vm(bb.get())
    np.testing.assert_allclose(vm["main"](np.ones(3, "float32"), randn(6)), np.full(3, 2.0))
    with pytest.raises(ValueError, match=r"parameter y .*dimension 0 is 5 but `n \* 2` = 6"):
        vm["main"](randn(3), randn(5))


def test_wrong_argument_count_and_kind(mlp_vm):
    with pytest.raises(TypeError, match=r"main\(\) takes 5 argument\(s\) \(x, w1, b1, w2, b2\) but got 1"):
        mlp_vm["main"](randn(2, 8))
    with pytest.raises(TypeError, match=r"parameter x \(argument 0\) must be a numpy array.*got list"):
        mlp_vm["main"]([[1.0] * 8], *MLP_PARAMS)


def test_unknown_function_name(mlp_vm):
    with pytest.raises(KeyError, match="no graph function 'forward'; it has main"):
        mlp_vm["forward"]


# call_dps_library, constants, several functions ----------------------------------------------
def test_call_dps_library_numpy_matmul():
    x, w = tensor("x", ("n", 8)), tensor("w", (8, 3))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, w]):
        with bb.dataflow():
            mm = bb.emit(wb.call_dps_library("numpy.matmul", (x, w), out=wb.Tensor(("n", 3), "float32")))
            gv = bb.emit_output(bb.emit_te(relu, mm))
        bb.emit_func_output(gv)
    vm = build_vm(bb.get())
    a, b = randn(5, 8), randn(8, 3)
    np.testing.assert_allclose(vm["main"](a, b), np.maximum(a @ b, 0), rtol=1e-5, atol=1e-6)
    assert vm["main"].kernel_calls == ["numpy.matmul", "relu"]


def test_module_with_only_library_calls_builds_without_kernels():
    x = tensor("x", (2, 2))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(wb.call_dps_library("numpy.exp", (x,), out=wb.Tensor((2, 2), "float32"))))
    ex = wb.build(bb.get(), target="llvm")
    assert ex.kernels is None
    a = randn(2, 2)
    np.testing.assert_allclose(wb.VirtualMachine(ex)["main"](a), np.exp(a), rtol=1e-6)


def test_unknown_library_function_is_refused_at_construction():
    x = tensor("x", (2, 2))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(wb.call_dps_library("numpy.fft", (x,), out=wb.Tensor((2, 2), "float32"))))
    ex = wb.build(bb.get(), target="llvm")
    with pytest.raises(VMError, match=r"unknown library function 'numpy.fft'; the VM provides .*numpy.matmul"):
        wb.VirtualMachine(ex)


def test_library_arity_is_checked_at_construction():
    x = tensor("x", (2, 2))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(wb.call_dps_library("numpy.add", (x,), out=wb.Tensor((2, 2), "float32"))))
    with pytest.raises(VMError, match=r"numpy.add takes 2 input\(s\) and writes 1 output, got 1 input"):
        wb.VirtualMachine(wb.build(bb.get(), target="llvm"))


def test_constants():
    x = tensor("x", ("n", 3))
    bias = np.arange(1, 10, dtype="float32")[::3]  # a strided constant: [1, 4, 7]
    weight = wb.graph.Constant(np.array([[2.0, 0, 0], [0, 3, 0], [0, 0, 4]], "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            lv = bb.emit_te(add, x, wb.graph.Constant(np.broadcast_to(bias, (4, 3)).copy()))
            lv1 = bb.emit(wb.call_dps_library("numpy.matmul", (lv, weight), out=wb.Tensor((4, 3), "float32")))
            gv = bb.emit_output(lv1)
        bb.emit_func_output([gv, weight])
    vm = build_vm(bb.get())
    a = randn(4, 3)
    out, w = vm["main"](a)
    np.testing.assert_allclose(out, (a + bias) @ weight.data, rtol=1e-5)
    np.testing.assert_array_equal(w, weight.data)


def test_two_graph_functions_in_one_module():
    x = tensor("x", ("n",))
    bb = wb.BlockBuilder()
    with bb.function("double", [x]):
        bb.emit_func_output(bb.emit_te(scale, x))
    y = tensor("y", ("m",))
    with bb.function("triple", [y]):
        bb.emit_func_output(bb.emit_te(scale, y, factor=3.0))
    vm = build_vm(bb.get())
    a = randn(7)
    np.testing.assert_allclose(vm["double"](a), a * 2, rtol=1e-6)
    np.testing.assert_allclose(vm["triple"](a[:3]), a[:3] * 3, rtol=1e-6)
    assert vm.function_names == ["double", "triple"]


# errors found at construction -----------------------------------------------------------------
def test_graph_op_calls_ask_for_legalize_ops():
    x = tensor("x", ("n", 4))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            gv = bb.emit_output(wb.op.relu(x))
        bb.emit_func_output(gv)
    ex = wb.build(bb.get(), target="llvm")
    with pytest.raises(VMError, match=r"main: binding gv calls the graph operator wb.op.relu.*"
                                      r"wb.transform.LegalizeOps\(\)\(mod\)"):
        wb.VirtualMachine(ex)


def test_call_tir_arity_mismatch_is_refused_at_construction():
    x = tensor("x", (4,))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        lv = bb.emit_te(scale, x)
        bad = bb.emit(Call(GlobalVar("scale"), (x, lv), type=wb.Tensor((4,), "float32")))
        bb.emit_func_output(bad)
    with pytest.raises(VMError, match=r"call_tir\(scale\): the tensor program has 2 buffer parameter\(s\) .* but "
                                      r"the call passes 2 argument\(s\) and 1 output"):
        wb.VirtualMachine(wb.build(bb.get(), target="llvm"))


def test_output_shape_with_unbound_size_variable_is_refused():
    x = tensor("x", ("n",))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        bb.emit_te(scale, x)
        bad = bb.emit(wb.call_dps_library("numpy.exp", (x,), out=wb.Tensor(("q",), "float32")))
        bb.emit_func_output(bad)
    with pytest.raises(VMError, match="uses the size variable q, which no parameter or earlier match_cast binds"):
        wb.VirtualMachine(wb.build(bb.get(), target="llvm"))


def test_kernel_run_time_error_names_the_binding():
    x = tensor("x", ("n",))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        lv = bb.emit_te(scale, x)
        # the output type disagrees with the kernel's buffer (n + 1 vs n): the kernel refuses at run time
        bad = bb.emit(Call(GlobalVar("scale"), (lv,), type=wb.Tensor((wb.graph.size_var("n") + 1,), "float32")))
        bb.emit_func_output(bad)
    vm = build_vm(bb.get())
    with pytest.raises(ValueError, match=r"main\(\): binding lv1 = call_tir\(scale\): "):
        vm["main"](randn(3))


def test_vm_needs_an_executable():
    with pytest.raises(TypeError, match="VirtualMachine takes what wb.build returns"):
        wb.VirtualMachine(mlp_module())


def test_prim_func_only_module_builds_as_before():
    a = te.placeholder((4,), "float32", name="a")
    mod = wb.IRModule({"scale": te.create_prim_func([a, scale(a)], name="scale")})
    m = wb.build(mod, target="llvm")
    assert not isinstance(m, Executable) and type(m).__name__ == "LLVMModule"


def test_executable_exposes_kernels():
    ex = wb.build(mlp_module(), target="llvm")
    assert ex.kernel_names == ["linear", "relu", "linear1"]
    x, out = randn(2, 16), np.empty((2, 16), "float32")
    ex["relu"](x, out)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    with pytest.raises(KeyError, match="'main' is a graph function: run it with vm"):
        ex["main"]


# profile ------------------------------------------------------------------------------------
def test_profile_table(mlp_vm):
    df = wb.profile(mlp_vm, "main", randn(16, 8), *MLP_PARAMS, number=3)
    assert list(df.columns) == ["kernel", "calls", "total_ms", "share"]
    assert sorted(df["kernel"]) == ["linear", "linear1", "relu"]
    assert df["calls"].tolist() == [1, 1, 1]
    assert df["share"].sum() == pytest.approx(1.0)
    assert (df["total_ms"] > 0).all() and df["total_ms"].is_monotonic_decreasing
    assert df.attrs["wall_ms"] >= df["total_ms"].sum()


def test_profile_counts_repeated_kernels():
    x = tensor("x", (8,))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        lv = x
        for _ in range(3):
            lv = bb.emit(bb.call_te(scale, lv, primfunc_name_hint="scale"))
        bb.emit_func_output(bb.emit(wb.call_dps_library("numpy.exp", (lv,), out=wb.Tensor((8,), "float32"))))
    vm = build_vm(bb.get())
    df = wb.profile(vm, "main", randn(8))
    counts = dict(zip(df["kernel"], df["calls"]))
    assert counts == {"scale": 3, "numpy.exp": 1}     # emit_te reuses the identical kernel: one row, 3 calls
    assert df["share"].sum() == pytest.approx(1.0)


# with the graph passes -----------------------------------------------------------------------
def test_legalized_op_module_runs_against_numpy():
    transform = pytest.importorskip("workbench.transform.legalize_ops")
    x, w, b = tensor("x", ("n", 8)), tensor("w", (8, 4)), tensor("b", (4,))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, w, b]):
        with bb.dataflow():
            h = bb.emit(wb.op.add(wb.op.matmul(x, w), b))
            gv = bb.emit_output(wb.op.relu(h))
        bb.emit_func_output(gv)
    mod = transform.LegalizeOps()(bb.get())
    vm = build_vm(mod)
    for n in (1, 6):
        a, wa, ba = randn(n, 8), randn(8, 4), randn(4)
        np.testing.assert_allclose(vm["main"](a, wa, ba), np.maximum(a @ wa + ba, 0), rtol=1e-5, atol=1e-5)


def test_fused_pipeline_runs_against_numpy():
    transform = pytest.importorskip("workbench.transform")
    pytest.importorskip("workbench.transform.fuse_tir")
    x, w, b = tensor("x", ("n", 8)), tensor("w", (8, 4)), tensor("b", (4,))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, w, b]):
        with bb.dataflow():
            h = bb.emit(wb.op.relu(wb.op.add(wb.op.matmul(x, w), b)))
            gv = bb.emit_output(wb.op.exp(wb.op.matmul(wb.op.exp(h), wb.op.permute_dims(w))))
        bb.emit_func_output(gv)
    mod = transform.Sequential([transform.LegalizeOps(), transform.FuseOps(), transform.FuseTIR(),
                                transform.StaticPlanBlockMemory()])(bb.get())
    vm = build_vm(mod)
    for n in (3, 9):
        a, wa, ba = randn(n, 8), randn(8, 4) * 0.3, randn(4) * 0.3
        ref = np.exp(np.exp(np.maximum(a @ wa + ba, 0)) @ wa.T)
        np.testing.assert_allclose(vm["main"](a, wa, ba), ref, rtol=1e-4)


def test_kernel_shape_checks_hold_for_every_new_shape():
    """Kernels run unchecked only for argument shapes they already accepted: a new shape is checked again."""
    x = tensor("x", ("n",))
    fixed = te.placeholder((4,), "float32", name="a")
    bb = wb.BlockBuilder()
    gv_scale = bb.add_func(te.create_prim_func([fixed, scale(fixed)], name="scale4"), "scale4")
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(Call(gv_scale, (x,), type=wb.Tensor(("n",), "float32"))))
    vm = build_vm(bb.get())
    for _ in range(2):
        np.testing.assert_allclose(vm["main"](np.ones(4, "float32")), np.full(4, 2.0))
    for _ in range(2):
        with pytest.raises(ValueError, match=r"main\(\): binding lv = call_tir\(scale4\): .*must be 4, got 5"):
            vm["main"](np.ones(5, "float32"))


# memory plan ------------------------------------------------------------------------------------
def chain_module(ops=("exp", "relu", "exp", "relu")):
    x = tensor("x", ("n", 4))
    bb = wb.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            lv = x
            for name in ops[:-1]:
                lv = bb.emit(getattr(wb.op, name)(lv))
            gv = bb.emit_output(getattr(wb.op, ops[-1])(lv))
        bb.emit_func_output(gv)
    return bb.get()


def chain_reference(a, ops=("exp", "relu", "exp", "relu")):
    for name in ops:
        a = np.exp(a) if name == "exp" else np.maximum(a, 0)
    return a


def test_memory_plan_is_followed_and_results_match_numpy(monkeypatch):
    import workbench.backend.vm_compile as vm_compile

    transform = pytest.importorskip("workbench.transform")
    pytest.importorskip("workbench.transform.static_plan_block_memory")
    mod = transform.Sequential([transform.LegalizeOps(), transform.StaticPlanBlockMemory()])(chain_module())
    assert "memory_plan" in mod["main"].attrs
    vm = build_vm(mod)
    assert vm["main"].memory_plan == {"storages": 2, "planned_tensors": 3}
    for n in (2, 5, 1):
        a = randn(n, 4)
        out = vm["main"](a)
        np.testing.assert_allclose(out, chain_reference(a), rtol=1e-5)
        assert out.ctypes.data % 64 == 0
    storages = []
    monkeypatch.setattr(vm_compile, "aligned_storage", lambda nbytes: storages.append(nbytes) or
                        np.empty(nbytes, np.uint8))
    vm["main"](randn(6, 4))
    assert storages == [6 * 16, 6 * 16]  # three intermediates in two storages, sized from n
    first = vm["main"](np.zeros((3, 4), "float32"))
    vm["main"](np.ones((3, 4), "float32"))
    np.testing.assert_allclose(first, chain_reference(np.zeros((3, 4), "float32")), rtol=1e-6)


def _with_plan(mod, tensors, sizes):
    func = mod["main"].with_attr("memory_plan", {"storage_sizes": sizes, "tensors": tensors})
    return mod.with_function("main", func)


def test_unsafe_memory_plan_is_refused():
    transform = pytest.importorskip("workbench.transform")
    mod = transform.LegalizeOps()(chain_module())
    n16 = wb.graph.size_var("n") * 16
    overlapping = _with_plan(mod, {"lv": (0, n16), "lv1": (0, n16)}, (n16,))   # lv is read by lv1's call
    with pytest.raises(VMError, match=r"puts lv and lv1 in storage 0, but lv is still used at binding 1 when lv1 "
                                      r"is made at binding 1"):
        wb.VirtualMachine(wb.build(overlapping, target="llvm"))
    escaping = _with_plan(mod, {"gv": (0, n16)}, (n16,))
    with pytest.raises(VMError, match=r"plans gv, but the function's result uses it"):
        wb.VirtualMachine(wb.build(escaping, target="llvm"))
    unknown = _with_plan(mod, {"nope": (0, 16)}, (16,))
    with pytest.raises(VMError, match=r"names nope, which is bound 0 time\(s\)"):
        wb.VirtualMachine(wb.build(unknown, target="llvm"))


def test_memory_plan_storage_too_small_is_a_clear_error():
    transform = pytest.importorskip("workbench.transform")
    mod = _with_plan(transform.LegalizeOps()(chain_module()), {"lv": (0, 32)}, (32,))
    vm = build_vm(mod)
    np.testing.assert_allclose(vm["main"](np.ones((2, 4), "float32")), chain_reference(np.ones((2, 4))), rtol=1e-5)
    with pytest.raises(ValueError, match=r"binding lv = call_tir\(exp\): the memory plan gives storage 0 32 bytes, "
                                         r"but the output \(3, 4\) of float32 needs 48"):
        vm["main"](np.ones((3, 4), "float32"))


def test_tuple_parameter():
    t = Var("t", wb.Tuple(wb.Tensor(("n",), "float32"), wb.Tensor(("n",), "float32")))
    bb = wb.BlockBuilder()
    with bb.function("main", [t]):
        a = bb.emit(wb.graph.TupleGetItem(t, 0))
        b = bb.emit(wb.graph.TupleGetItem(t, 1))
        bb.emit_func_output(bb.emit_te(add, a, b))
    vm = build_vm(bb.get())
    x, y = randn(3), randn(3)
    np.testing.assert_allclose(vm["main"]((x, y)), x + y)
    with pytest.raises(ValueError, match=r"parameter t \(argument 0\)\[1\] has shape \(4,\): dimension 0 is 4 but "
                                         r"n = 3 from parameter t \(argument 0\)\[0\] dimension 0"):
        vm["main"]((x, randn(4)))
    with pytest.raises(TypeError, match=r"parameter t \(argument 0\) must be a tuple of 2 value\(s\)"):
        vm["main"](x)


def test_memory_plan_storages_are_kept_between_calls_and_per_thread(monkeypatch):
    """A call reuses the last call's storages when they are big enough (no allocation), grows them when not,
    and each thread has its own (two threads at once never share an intermediate)."""
    import threading

    import workbench.backend.vm_compile as vm_compile

    transform = pytest.importorskip("workbench.transform")
    mod = transform.Sequential([transform.LegalizeOps(), transform.StaticPlanBlockMemory()])(chain_module())
    vm = build_vm(mod)
    storages = []
    real = vm_compile.aligned_storage
    monkeypatch.setattr(vm_compile, "aligned_storage", lambda nbytes: storages.append(nbytes) or real(nbytes))
    for n in (4, 4, 2, 3):
        a = randn(n, 4)
        np.testing.assert_allclose(vm["main"](a), chain_reference(a), rtol=1e-5)
    assert storages == [4 * 16, 4 * 16]          # made by the first call, reused by the three others
    vm["main"](randn(7, 4))
    assert storages[2:] == [7 * 16, 7 * 16]      # grown
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            a = rng.standard_normal((5, 4)).astype("float32")
            if not np.allclose(vm["main"](a), chain_reference(a), rtol=1e-5):
                errors.append(seed)
    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(storages) == 4 + 2 * 2            # each of the two new threads made its own two


def test_kernel_call_reads_new_pointers_when_the_arrays_change():
    """The direct call reuses the last call's pointers only for the very same array objects."""
    from workbench.backend.vm_kernel import KernelCall

    a = te.placeholder((4,), "float32", name="a")
    call = KernelCall(wb.build(te.create_prim_func([a, scale(a)], name="s"), target="llvm")["s"])
    x, y = np.arange(4, dtype="float32"), np.zeros(4, "float32")
    for _ in range(3):
        call(x, y)
    np.testing.assert_allclose(y, 2 * x)
    x2, y2 = np.full(4, 3.0, "float32"), np.zeros(4, "float32")
    call(x2, y2)
    np.testing.assert_allclose(y2, 6.0)
    call(x, y2)
    np.testing.assert_allclose(y2, 2 * x)
    x[:] = 5
    call(x, y2)                                  # same objects, new contents
    np.testing.assert_allclose(y2, 10.0)


def test_kernel_call_accepts_a_new_size_variable_value_without_the_full_check_and_refuses_a_mismatch():
    """A new value of a size variable (a KV cache one position longer) takes the direct call when every
    buffer agrees on it; two buffers that disagree still get the kernel's full check and its clear error."""
    from workbench.backend.vm_kernel import KernelCall

    n = wb.var("n")
    a = te.placeholder((n, 4), "float32", name="a")
    b = te.placeholder((n, 4), "float32", name="b")
    call = KernelCall(wb.build(te.create_prim_func([a, b, add(a, b)], name="add2"), target="llvm")["add2"])
    calls = []
    call.kernel = _Spy(call.kernel, calls)
    for rows in (2, 3, 4, 5):
        x, y = randn(rows, 4), randn(rows, 4)
        out = np.empty((rows, 4), "float32")
        call(x, y, out)
        np.testing.assert_allclose(out, x + y)
    assert len(calls) == 1, "after the first call, a consistent new size took the full checked call"
    with pytest.raises(ValueError, match="n"):
        call(randn(3, 4), randn(2, 4), np.empty((3, 4), "float32"))
    assert len(calls) == 2


class _Spy:
    """Counts the full checked calls of a kernel (its ``__call__``) and passes everything else through."""

    def __init__(self, kernel, calls: list):
        self._kernel, self._calls = kernel, calls

    def __call__(self, *arrays):
        self._calls.append(arrays)
        return self._kernel(*arrays)

    def __getattr__(self, name):
        return getattr(self._kernel, name)


def test_threads_calling_one_vm_with_different_shapes_never_mix_results():
    """Threads share the VM's call sites (their remembered arrays and pointers) and each planned storage's last
    view: with a thread switch possible between any two bytecodes, a thread must never take another thread's
    view or pointers (it once did: a result computed into, or read from, the other thread's arrays)."""
    import sys
    import threading

    transform = pytest.importorskip("workbench.transform")
    mod = transform.Sequential([transform.LegalizeOps(), transform.StaticPlanBlockMemory()])(chain_module())
    vm = build_vm(mod)
    errors = []

    def worker(n):
        rng = np.random.default_rng(n)
        inputs = [rng.standard_normal((n, 4)).astype("float32") for _ in range(4)]
        expected = [chain_reference(a) for a in inputs]
        for k in range(400):
            got = vm["main"](inputs[k % 4])
            if got.shape != (n, 4) or not np.allclose(got, expected[k % 4], rtol=1e-5):
                errors.append((n, k))
                return
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in (2, 3, 5, 6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, f"wrong results (rows, call) in threads: {errors}"
