"""The llama graph (workbench/frontend/llama.py) and the decode_q4/decode_q8 ops (workbench/ir/graph/ops/quant.py):
numerics against numpy (the gguf package's dequantization, the reference decoder) and the fused
dequantize-matmul kernels reading the packed weights."""
import numpy as np
import pytest

import workbench as wb
from workbench.frontend import llama
from workbench.frontend.gguf_file import load_gguf
from workbench.frontend.gguf_quants import dequantize_blocks
from workbench.ir.graph.op import get_op
from workbench.ir.graph.types import GraphTypeError, TensorType

from .reference_llama import ReferenceLlama
from .tiny_gguf import Q, tiny_tensors, write_gguf

BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}


def random_blocks(qtype: str, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Random packed rows with sane f16 scales (and minimums)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (rows, cols // 32, BLOCK_BYTES[qtype]), dtype=np.uint8)
    half = lambda lo, hi: np.frombuffer(rng.uniform(lo, hi, (rows, cols // 32)).astype(np.float16).tobytes(),
                                        np.uint8).reshape(rows, cols // 32, 2)
    blocks[:, :, 0:2] = half(0.01, 0.1)
    if qtype == "Q4_1":
        blocks[:, :, 2:4] = half(-0.1, 0.1)
    return blocks.reshape(rows, -1)


def one_op_module(name: str, packed: np.ndarray, qtype: str, x_cols: int | None = None) -> wb.IRModule:
    """``decode(p)``, or ``linear(x, decode(p))`` when ``x_cols`` is given."""
    p = wb.graph.Var("p", wb.Tensor(packed.shape, "uint8"))
    params = [p]
    bb = wb.BlockBuilder()
    if x_cols is not None:
        x = wb.graph.Var("x", wb.Tensor(("n", x_cols), "float32"))
        params = [x, p]
    with bb.function("main", params):
        with bb.dataflow():
            w = bb.emit(getattr(wb.op, name)(p, qtype=qtype))
            gv = bb.emit_output(wb.op.linear(x, w) if x_cols is not None else w)
        bb.emit_func_output(gv)
    return bb.get()


@pytest.mark.parametrize("name,qtype", [("decode_q4", "Q4_1"), ("decode_q4", "Q4_0"), ("decode_q8", "Q8_0")])
def test_decode_op_is_bit_identical_to_numpy(name, qtype):
    packed = random_blocks(qtype, 6, 64)
    mod = wb.transform.LegalizeOps()(one_op_module(name, packed, qtype))
    out = wb.VirtualMachine(wb.build(mod, target="llvm"))["main"](packed)
    expected = dequantize_blocks(packed, qtype, (6, 64))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(get_op(name).reference([packed], {"qtype": qtype}), expected)


def test_decode_op_infer_and_errors():
    assert repr(get_op("decode_q4").infer([TensorType((8, 40), "uint8")], {"qtype": "Q4_1"})) == \
        repr(TensorType((8, 64), "float32"))
    with pytest.raises(GraphTypeError, match="whole number of Q4_1 blocks"):
        get_op("decode_q4").infer([TensorType((8, 41), "uint8")], {"qtype": "Q4_1"})
    with pytest.raises(GraphTypeError, match="qtype must be one of Q4_0, Q4_1"):
        get_op("decode_q4").infer([TensorType((8, 40), "uint8")], {"qtype": "Q8_0"})
    with pytest.raises(GraphTypeError, match="uint8 tensor"):
        get_op("decode_q8").infer([TensorType((8, 34), "float32")], {})


def test_decode_is_injective_and_fuses_into_the_linear():
    packed = random_blocks("Q4_1", 32, 64)
    mod = wb.transform.LegalizeOps()(one_op_module("decode_q4", packed, "Q4_1", x_cols=64))
    patterns = wb.transform.AnnotateOpPattern()(mod)
    assert [f.attrs["op_pattern"] for f in patterns.prim_funcs.values()] == ["injective", "out_ewise_fusible"]
    groups = wb.transform.FuseOps()(mod)["main"].attrs["fusion_groups"]
    assert list(groups.values()) == [("lv", "gv")]


def float_buffers_at_least(func, elements: int) -> list:
    """The float buffers a kernel allocates (any scope) with at least ``elements`` elements."""
    from workbench.ir.functor import post_order_visit
    from workbench.ir.stmt import Block

    found = []

    def visit(node):
        if isinstance(node, Block):
            for buf in node.alloc_buffers:
                dims = [getattr(d, "value", 1) for d in buf.shape]      # a symbolic row count counts as 1
                if buf.dtype.startswith("float") and np.prod(dims) >= elements:
                    found.append(buf)
    post_order_visit(func.body, visit)
    return found


def test_fused_kernel_reads_packed_weights_and_matches_numpy():
    packed = random_blocks("Q4_1", 96, 128, seed=3)
    mod = llama._passes("llvm")(one_op_module("decode_q4", packed, "Q4_1", x_cols=128))
    (name,) = mod.prim_funcs
    fused = mod[name]
    assert name.startswith("fused_decode") and fused.attrs["scheduled"]
    assert [b.dtype for b in fused.buffer_map.values()] == ["uint8", "float32", "float32"]
    text = fused.script()
    assert not any('wb.block("decode' in line for line in text.splitlines())   # no decode block left: inlined
    assert not float_buffers_at_least(fused, 96 * 128)      # the weight matrix is never materialised in float
    vm = wb.VirtualMachine(wb.build(mod, target="llvm"))
    x = np.random.default_rng(0).standard_normal((5, 128)).astype(np.float32)
    expected = x @ dequantize_blocks(packed, "Q4_1", (96, 128)).T
    for rows in (x, x[:1]):      # matrix-matrix (prefill) and matrix-vector (decode) shapes
        np.testing.assert_allclose(vm["main"](rows, packed), expected[:len(rows)], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = write_gguf(tmp_path_factory.mktemp("gguf") / "tiny_q40.gguf",
                      tiny_tensors(seed=1, matrix_type=Q.Q4_0, embed_type=Q.Q8_0))
    model = load_gguf(path)
    mod = llama.compile_llama(llama.build_llama(model.config, model.tensors))
    vm = wb.VirtualMachine(wb.build(mod, target="llvm"))
    params = [np.asarray(model.tensors[n].data) for n in llama.param_names(model.config)]
    return model, mod, vm, params


def test_tiny_prefill_and_decode_match_the_reference(tiny):
    model, mod, vm, params = tiny
    c = model.config
    ref = ReferenceLlama.from_gguf(model)
    cache = ref.new_cache(32)
    tokens = [5, 17, 33, 2, 99, 100, 7, 250]
    caches = np.zeros((2 * c.num_layers, 32, c.num_kv_heads, c.head_dim), np.float32)
    logits, new_kv = vm["prefill"](np.array(tokens, np.int32), *[a[:0] for a in caches], *params)
    expected = ref.forward(tokens, cache)
    np.testing.assert_allclose(logits[0], expected[-1], rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(new_kv[:, :, 0], cache.keys[:, :8].transpose(1, 0, 2, 3), atol=1e-5)
    np.testing.assert_allclose(new_kv[:, :, 1], cache.values[:, :8].transpose(1, 0, 2, 3), atol=1e-5)
    caches[:, :8] = new_kv.reshape(8, -1, c.num_kv_heads, c.head_dim).transpose(1, 0, 2, 3)
    for m, token in enumerate([3, 40, 41], start=8):
        logits, new_kv = vm["decode"](np.array([token], np.int32), *[a[:m] for a in caches], *params)
        expected = ref.forward([token], cache)
        np.testing.assert_allclose(logits[0], expected[-1], rtol=1e-4, atol=1e-4 * np.abs(expected).max())
        caches[:, m] = new_kv[0].reshape(-1, c.num_kv_heads, c.head_dim)


def test_tiny_graph_shape_and_kernels(tiny):
    model, mod, vm, params = tiny
    prefill = mod["prefill"]
    c = model.config
    assert len(prefill.params) == 1 + 2 * c.num_layers + len(params)
    fused = [n for n in mod.prim_funcs if n.startswith("fused_decode") and "linear" in n]
    assert fused, sorted(mod.prim_funcs)
    for name in fused:
        func = mod[name]
        (packed,) = [b for b in func.buffer_map.values() if b.dtype == "uint8"]
        rows, nbytes = (d.value for d in packed.shape)
        assert not float_buffers_at_least(func, rows * nbytes * 32 // 34), name   # < rows * cols of any type


def test_smollm2_logits_of_a_20_token_prompt(smollm2, smollm2_reference):
    from workbench.frontend.llm import LLM

    llm = LLM(smollm2)
    tokens = llm.encode("The quick brown fox jumps over the lazy dog. In 1889, the Eiffel tower was built")[:20]
    assert len(tokens) == 20
    logits = llm.forward(tokens, 0)
    expected = smollm2_reference.logits(tokens)[-1]
    assert np.abs(logits - expected).max() <= 1e-3 * np.abs(expected).max()
    cache = smollm2_reference.new_cache(24)
    smollm2_reference.forward(tokens, cache)
    for position, token in enumerate([int(np.argmax(expected)), 11, 314], start=20):   # decode steps
        logits = llm.forward([token], position)
        expected = smollm2_reference.forward([token], cache)[-1]
        assert np.abs(logits - expected).max() <= 1e-3 * np.abs(expected).max()
