"""The module API (workbench.frontend.nn): parameter discovery, export to a graph function, numerics."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.frontend import nn
from workbench.ir.graph.script import size_var
from workbench.ir.graph.verify import types_equal

from .graph_walk import run_graph


class MLP(nn.Module):
    def __init__(self):
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(nn.relu(self.fc1(x)))


def _mlp_params(rng):
    return {"fc1.weight": rng.standard_normal((128, 784)).astype("float32") * 0.05,
            "fc1.bias": rng.standard_normal(128).astype("float32"),
            "fc2.weight": rng.standard_normal((10, 128)).astype("float32") * 0.1,
            "fc2.bias": rng.standard_normal(10).astype("float32")}


def _mlp_numpy(x, p):
    h = np.maximum(x @ p["fc1.weight"].T + p["fc1.bias"], 0)
    return h @ p["fc2.weight"].T + p["fc2.bias"]


@pytest.fixture(scope="module")
def mlp():
    return MLP().export({"forward": {"x": nn.spec(("n", 784), "float32")}})


def test_mlp_export_types_and_parameter_order(mlp):
    mod, params = mlp
    f = mod["forward"]
    n = size_var("n")
    assert [name for name, _ in params] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [p.name for p in f.params] == ["x", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"]
    assert types_equal(f.params[0].type, wb.Tensor((n, 784), "float32"))
    assert types_equal(f.params[1].type, wb.Tensor((128, 784), "float32"))
    assert f.ret_type.shape[0] is n and f.ret_type.shape[1].value == 10 and f.ret_type.dtype == "float32"
    assert f.attrs["num_input"] == 1
    ops = [b.value.op.name for b in f.body.blocks[0].bindings[:-1]]
    assert ops == ["linear", "relu", "linear"]
    wb.verify_graph(mod)


def test_mlp_script_round_trips(mlp):
    mod, _ = mlp
    again = wb.parse(mod.script())
    assert wb.structural_equal(again, mod)
    assert again.script() == mod.script()


def test_mlp_op_references_match_numpy(mlp):
    mod, params = mlp
    rng = np.random.default_rng(0)
    p = _mlp_params(rng)
    x = rng.standard_normal((3, 784)).astype("float32")
    out = run_graph(mod, "forward", x, *(p[name] for name, _ in params))
    np.testing.assert_allclose(out, _mlp_numpy(x, p), rtol=1e-5, atol=1e-5)


def test_mlp_legalized_and_run_on_the_vm_matches_numpy(mlp):
    mod, params = mlp
    legalized = wb.transform.LegalizeOps()(mod)
    vm = wb.VirtualMachine(wb.build(legalized, target="llvm"))
    rng = np.random.default_rng(1)
    p = _mlp_params(rng)
    for n in (1, 5):                                   # one build, two batch sizes
        x = rng.standard_normal((n, 784)).astype("float32")
        out = vm["forward"](x, *(p[name] for name, _ in params))
        np.testing.assert_allclose(out, _mlp_numpy(x, p), rtol=1e-4, atol=1e-4)


class Block(nn.Module):
    """Nested modules, a list of modules, RMSNorm/LayerNorm/Embedding, a shared sub-expression."""

    def __init__(self):
        self.embed = nn.Embedding(50, 8)
        self.layers = [nn.Linear(8, 8, bias=False), nn.Linear(8, 8)]
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.rms = nn.RMSNorm(8)
        self.scale = nn.Parameter((8,), "float32")

    def forward(self, ids):
        h = self.embed(ids)
        for layer in self.layers:
            h = nn.silu(layer(h))
        g = nn.gelu(self.norm(h), approximate="tanh")
        return nn.softmax(wb.op.multiply(self.rms(wb.op.add(g, g)), self.scale), axis=-1)


def test_named_parameters_follow_attribute_order_with_list_indices():
    assert [(n, p.shape) for n, p in Block().named_parameters()] == [
        ("embed.weight", (50, 8)), ("layers.0.weight", (8, 8)), ("layers.1.weight", (8, 8)),
        ("layers.1.bias", (8,)), ("norm.weight", (8,)), ("norm.bias", (8,)), ("rms.weight", (8,)),
        ("scale", (8,))]


def test_nested_module_export_binds_each_op_once_and_matches_numpy():
    block = Block()
    mod, params = block.export({"forward": {"ids": nn.spec(("b", "s"), "int64")}})
    bindings = mod["forward"].body.blocks[0].bindings
    ops = [b.value.op.name for b in bindings[:-1]]
    assert ops.count("add") == 1 and ops.count("gelu") == 1     # g used twice, computed once
    assert isinstance(block.scale, nn.Parameter)                   # attributes restored after export
    rng = np.random.default_rng(2)
    w = {name: rng.standard_normal(p.shape).astype("float32") for name, p in params}
    ids = rng.integers(0, 50, size=(2, 3))
    out = run_graph(mod, "forward", ids, *(w[name] for name, _ in params))

    def ln(x, g, b, eps):
        m, v = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * g + b

    h = w["embed.weight"][ids]
    h = h @ w["layers.0.weight"].T
    h = h / (1 + np.exp(-h))
    h = h @ w["layers.1.weight"].T + w["layers.1.bias"]
    h = h / (1 + np.exp(-h))
    g = ln(h, w["norm.weight"], w["norm.bias"], 1e-6)
    g = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))
    r = 2 * g / np.sqrt(((2 * g) ** 2).mean(-1, keepdims=True) + 1e-5) * w["rms.weight"] * w["scale"]
    e = np.exp(r - r.max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=1e-4, atol=1e-5)


def test_parameter_with_a_size_name_and_tuple_results():
    class Two(nn.Module):
        def __init__(self):
            self.table = nn.Parameter(("rows", 4))

        def forward(self, x):
            return nn.exp(x), wb.op.add(x, self.table)

    mod, params = Two().export({"forward": {"x": nn.spec(("rows", 4))}})
    f = mod["forward"]
    assert f.params[1].type.shape[0] is size_var("rows") and len(f.ret_type.fields) == 2
    x, t = np.ones((3, 4), "float32"), np.full((3, 4), 2.0, "float32")
    a, b = run_graph(mod, "forward", x, t)
    np.testing.assert_allclose(a, np.e * x, rtol=1e-6)
    np.testing.assert_array_equal(b, x + t)


def test_te_op_adds_a_tensor_program_and_is_refused_outside_export():
    def halve(a):
        return te.compute(a.shape, lambda i: a[i] * 0.5, name="halve")

    class Half(nn.Module):
        def forward(self, x):
            return nn.relu(nn.te_op(halve, x))

    mod, _ = Half().export({"forward": {"x": nn.spec(("n",))}})
    assert "halve" in mod.prim_funcs
    np.testing.assert_array_equal(run_graph(mod, "forward", np.array([-2.0, 4.0], "float32")), [0.0, 2.0])
    with pytest.raises(nn.ExportError, match="only inside Module.export"):
        nn.te_op(halve, wb.graph.Var("x", wb.Tensor((4,), "float32")))


def test_bad_export_requests_are_clear_errors():
    with pytest.raises(nn.ExportError, match="has no method 'decode'"):
        MLP().export({"decode": {"x": nn.spec((1, 784))}})
    with pytest.raises(nn.ExportError, match="needs a type such as nn.spec"):
        MLP().export({"forward": {"x": (1, 784)}})
    with pytest.raises(wb.graph.GraphTypeError, match="linear"):          # wrong feature size
        MLP().export({"forward": {"x": nn.spec(("n", 100))}})

    class NotGraph(nn.Module):
        def forward(self, x):
            return 3

    with pytest.raises(nn.ExportError, match="must be a graph value"):
        NotGraph().export({"forward": {"x": nn.spec((2,))}})
