"""wb.frontend.quantize(model, "q4f32_1") (workbench/frontend/quantize.py) and the decode_q4f32 op
(workbench/ir/graph/ops/quant.py): the op's LLVM build and the quantized MiniLM against numpy quantization and
dequantization written here, the packed parameters, the fused kernels reading the packed words, and errors."""
import json
import os

import numpy as np
import pytest

import workbench as wb
from workbench.frontend.model import compile_module
from workbench.frontend.group_quantize import (
    QuantizedModel, accuracy_change, dequantize_weight_q4f32, quantize, quantize_weight_q4f32,
)
from workbench.ir.functor import post_order_visit
from workbench.ir.graph.op import get_op
from workbench.ir.graph.types import GraphTypeError, TensorType
from workbench.ir.stmt import Block

from .conftest import PARAPHRASES, SENTENCES
from .reference_bert import bert_hidden_states, reference_embed


# -- q4f32_1 in plain numpy (MLC-LLM's GroupQuantize: int4 codes, uint32 storage, groups of 32) -------------

def np_quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(words uint32 [N, K/8], scales float32 [N, K/32]): scale = max|w|/7, q = clip(rint(w/scale + 7), 0, 14)."""
    n, k = w.shape
    g = w.astype(np.float32).reshape(n, k // 32, 32)
    scale = (np.abs(g).max(axis=2) / np.float32(7)).astype(np.float32)
    q = np.full(g.shape, 7, np.uint64)
    nz = scale > 0
    q[nz] = np.clip(np.rint(g[nz] / scale[nz][:, None] + np.float32(7)), 0, 14).astype(np.uint64)
    q = q.reshape(n, k // 8, 8)
    words = sum(q[:, :, i] << np.uint64(4 * i) for i in range(8)).astype(np.uint32)
    return words, scale


def np_dequantize(words: np.ndarray, scale: np.ndarray) -> np.ndarray:
    n, kw = words.shape
    w = np.empty((n, kw * 8), np.float32)
    for i in range(8):
        w[:, i::8] = ((words >> np.uint32(4 * i)) & np.uint32(15)).astype(np.float32) - np.float32(7)
    return w * np.repeat(scale, 32, axis=1)


def random_weight(n: int, k: int, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32) * 0.05
    w[0, :32] = 0.0                 # an all-zero group: scale 0, every code 7
    return w


def decode_module(rows, words_per_row: int, x_cols: int | None = None) -> wb.IRModule:
    """``decode_q4f32(q, s)``, or ``linear(x, decode_q4f32(q, s), b)`` when ``x_cols`` is given."""
    q = wb.graph.Var("q", wb.Tensor((rows, words_per_row), "uint32"))
    s = wb.graph.Var("s", wb.Tensor((rows, words_per_row // 4), "float32"))
    params = [q, s]
    if x_cols is not None:
        x = wb.graph.Var("x", wb.Tensor(("n", x_cols), "float32"))
        b = wb.graph.Var("b", wb.Tensor((rows,), "float32"))
        params = [x, q, s, b]
    bb = wb.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            w = bb.emit(wb.op.decode_q4f32(q, s))
            gv = bb.emit_output(wb.op.linear(x, w, b) if x_cols is not None else w)
        bb.emit_func_output(gv)
    return bb.get()


def float_allocs_of_shape(func, shape: tuple) -> list:
    found = []

    def visit(node):
        if isinstance(node, Block):
            found.extend(b for b in node.alloc_buffers if b.dtype.startswith("float") and
                         tuple(getattr(d, "value", None) for d in b.shape) == shape)
    post_order_visit(func.body, visit)
    return found


def block_names(func) -> list[str]:
    names = []
    post_order_visit(func.body, lambda n: names.append(n.name) if isinstance(n, Block) else None)
    return names


# -- the op --------------------------------------------------------------------------------------------

def test_quantize_weight_is_mlc_q4f32_1():
    w = random_weight(6, 96)
    words, scale = quantize_weight_q4f32(w)
    expected_words, expected_scale = np_quantize(w)
    assert words.dtype == np.uint32 and words.shape == (6, 12) and scale.dtype == np.float32 and scale.shape == (6, 3)
    np.testing.assert_array_equal(words, expected_words)
    np.testing.assert_array_equal(scale, expected_scale)
    back = np_dequantize(words, scale)
    assert np.all(np.abs(back - w) <= np.repeat(scale, 32, axis=1) / 2 * (1 + 1e-6))
    assert np.all(back[0, :32] == 0.0)
    np.testing.assert_array_equal(dequantize_weight_q4f32(words, scale), back)


def test_decode_q4f32_built_with_llvm_matches_numpy():
    words, scale = np_quantize(random_weight(6, 64))
    words[1, 0] = 0xFFFFFFFF                        # code 15 everywhere in a word (the top bit of every nibble)
    mod = wb.transform.LegalizeOps()(decode_module("rows", 8))
    vm = wb.VirtualMachine(wb.build(mod, target="llvm"))
    for rows in (6, 1):
        out = vm["main"](words[:rows], scale[:rows])
        np.testing.assert_array_equal(out, np_dequantize(words[:rows], scale[:rows]))
    np.testing.assert_array_equal(get_op("decode_q4f32").reference([words, scale], {}), np_dequantize(words, scale))
    assert wb.transform.AnnotateOpPattern()(mod)["decode_q4f32"].attrs["op_pattern"] == "injective"


def test_decode_q4f32_infer_and_errors():
    op = get_op("decode_q4f32")
    assert repr(op.infer([TensorType((384, 48), "uint32"), TensorType((384, 12), "float32")], {})) == \
        repr(TensorType((384, 384), "float32"))
    bad = [
        ([TensorType((4, 8), "uint8"), TensorType((4, 2), "float32")], "q_weight must be the packed codes, a uint32"),
        ([TensorType((4, 8), "uint32"), TensorType((4, 3), "float32")], r"one scale per 32 weights.*expected \(4, 2\)"),
        ([TensorType((4, 8), "uint32"), TensorType((5, 2), "float32")], "one scale per 32 weights"),
        ([TensorType((4, 8), "uint32"), TensorType((4, 2), "float16")], "q_scale must be a float32 tensor"),
        ([TensorType((4, 8), "uint32")], r"expects 2 argument\(s\)"),
    ]
    for args, message in bad:
        with pytest.raises(GraphTypeError, match="^decode_q4f32: .*" + message):
            op.infer(args, {})


def test_decode_fuses_into_the_linear_and_reads_only_packed_words():
    w = random_weight(64, 96, seed=2)
    words, scale = np_quantize(w)
    bias = np.linspace(-1, 1, 64).astype(np.float32)
    mod = compile_module(decode_module(64, 12, x_cols=96), "llvm")
    (name,) = mod.prim_funcs
    fused = mod[name]
    assert name.startswith("fused_decode_q4f32_linear")
    assert [b.dtype for b in fused.buffer_map.values()] == ["uint32", "float32", "float32", "float32", "float32"]
    assert not any(n.startswith("decode_q4f32") for n in block_names(fused))        # inlined into the matmul
    assert not float_allocs_of_shape(fused, (64, 96))
    x = np.random.default_rng(1).standard_normal((5, 96)).astype(np.float32)
    vm = wb.VirtualMachine(wb.build(mod, target="llvm"))
    np.testing.assert_allclose(vm["main"](x, words, scale, bias), x @ np_dequantize(words, scale).T + bias,
                               rtol=1e-5, atol=1e-5)


# -- all-MiniLM-L6-v2 ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return wb.frontend.load(minilm_dir)


@pytest.fixture(scope="module")
def quantized(minilm):
    before = {name: a.copy() for name, a in list(minilm.params.items())[5:8]}
    mod = minilm.mod
    q = wb.frontend.quantize(minilm, "q4f32_1")
    assert minilm.mod is mod and all(np.array_equal(minilm.params[n], a) for n, a in before.items())
    return q


def linear_names(minilm) -> list[str]:
    return [n for n, a in minilm.params.items() if a.ndim == 2 and not n.startswith("embeddings.")]


def test_params_hold_packed_weights_and_no_float_copy(minilm, quantized):
    q = quantized
    assert isinstance(q, QuantizedModel) and q.mode == "q4f32_1"
    names = linear_names(minilm)
    assert len(names) == 36 and q.report.quantized == tuple(names)
    assert list(q.report.kept_float) == ["embeddings.word_embeddings.weight",
                                         "embeddings.position_embeddings.weight",
                                         "embeddings.token_type_embeddings.weight"]
    assert "wb.op.embedding" in q.report.kept_float["embeddings.word_embeddings.weight"]
    for name in names:
        base = name[: -len(".weight")]
        n, k = minilm.params[name].shape
        assert name not in q.params
        assert q.params[base + ".q_weight"].dtype == np.uint32 and q.params[base + ".q_weight"].shape == (n, k // 8)
        assert q.params[base + ".q_scale"].dtype == np.float32 and q.params[base + ".q_scale"].shape == (n, k // 32)
        np.testing.assert_array_equal(q.params[base + ".q_weight"], np_quantize(minilm.params[name])[0])
    float_matrices = [n for n, a in q.params.items() if a.dtype == np.float32 and a.ndim == 2 and a.shape[1] % 32 == 0
                      and not n.endswith(".q_scale")]
    assert float_matrices == list(q.report.kept_float)
    forward = q.mod["forward"]
    assert [str(a.dtype) for a in q.param_list] == [p.type.dtype for p in forward.params[2:]]
    assert q.report.bytes_before == sum(a.nbytes for a in minilm.param_list)
    assert q.report.bytes_after == sum(a.nbytes for a in q.param_list) < q.report.bytes_before
    assert q.report.quantized_bytes_after * 6 < q.report.quantized_bytes_before        # 5 bits a weight, not 32
    text = repr(q.report)
    assert "36 weights quantized" in text and "kept float: embeddings.word_embeddings.weight" in text
    assert repr(q).startswith("QuantizedModel(bert, q4f32_1, 36 weights quantized")
    wb.verify_graph(q.mod)
    assert wb.structural_equal(wb.parse(q.mod.script()), q.mod)


def test_embeddings_match_numpy_dequantized_bert_and_stay_close_to_float(minilm, quantized, minilm_dir,
                                                                        minilm_reference_weights):
    sentences = SENTENCES[:8]
    emb = quantized.embed(sentences)
    weights = dict(minilm_reference_weights)
    for name in quantized.report.quantized:
        weights[name] = np_dequantize(*np_quantize(weights[name]))
    np.testing.assert_allclose(emb, reference_embed(minilm_dir, sentences, weights=weights), atol=1e-4)
    change = accuracy_change(minilm, quantized, sentences)
    # measured: mean cosine 0.9528, min 0.9306, max |difference| 0.077 (4-bit, 15 levels: ~10% weight error)
    assert change.sentences == 8 and change.max_abs_diff > 1e-2
    assert change.mean_cosine >= 0.94 and change.min_cosine >= 0.92
    cos = emb @ emb.T
    for a, b in PARAPHRASES:                        # paraphrases still closer than unrelated sentences
        assert cos[a, b] > max(cos[a, c] for c in range(len(sentences)) if c not in (a, b))
    assert "mean cosine similarity" in repr(change)


def test_fused_kernels_read_the_packed_weights(minilm, quantized):
    compiled = compile_module(quantized.mod, "llvm")           # read back from the disk cache of embed
    assert not any(n.startswith("decode_q4f32") for n in compiled.prim_funcs)
    fused = [n for n in compiled.prim_funcs if n.startswith("fused_decode_q4f32_linear")]
    assert len(fused) == 4, sorted(compiled.prim_funcs)        # q/k/v/out + add, intermediate + gelu, output + add
    for name in fused:
        func = compiled[name]
        (words,) = [b for b in func.buffer_map.values() if b.dtype == "uint32"]
        rows, per_row = (d.value for d in words.shape)
        assert not float_allocs_of_shape(func, (rows, per_row * 8)), name
        assert not any(n.startswith("decode_q4f32") for n in block_names(func)), name


# -- a tiny BERT: a matrix whose in_features is not a multiple of 32 stays float --------------------

def write_tiny_bert(folder, tokenizer: str, hidden: int = 48, intermediate: int = 64):
    from safetensors.numpy import save_file

    (folder / "tokenizer.json").symlink_to(tokenizer)
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": hidden, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": intermediate, "hidden_act": "gelu",
              "max_position_embeddings": 16, "type_vocab_size": 2, "vocab_size": 50, "layer_norm_eps": 1e-12}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    shapes = wb.frontend.config_from_dict(config).weight_shapes()
    rng = np.random.default_rng(5)
    weights = {n: (rng.standard_normal(s) * 0.2 + (1.0 if n.endswith("LayerNorm.weight") else 0.0)).astype(np.float32)
               for n, s in shapes.items()}
    save_file(weights, str(folder / "model.safetensors"))
    return str(folder), weights


def test_tiny_bert_keeps_matrices_whose_inputs_are_not_groups_of_32(tmp_path, minilm_dir):
    folder, weights = write_tiny_bert(tmp_path, os.path.join(minilm_dir, "tokenizer.json"))
    model = wb.frontend.load(folder)
    q = quantize(model)
    assert q.report.quantized == ("encoder.layer.0.output.dense.weight",)          # in_features 64
    assert q.report.kept_float["encoder.layer.0.attention.self.query.weight"] == \
        "in_features 48 is not a multiple of 32"
    ids = np.array([[1, 7, 9, 3, 0], [1, 4, 2, 0, 0]], np.int64)
    mask = (ids > 0).astype(np.int64)
    hidden = q.forward(ids, mask)
    expected_weights = dict(weights)
    name = "encoder.layer.0.output.dense.weight"
    expected_weights[name] = np_dequantize(*np_quantize(weights[name]))
    np.testing.assert_allclose(hidden, bert_hidden_states(expected_weights, ids, mask, num_heads=2), atol=1e-4)


# -- errors --------------------------------------------------------------------------------------------

def test_bad_mode_lists_the_supported_modes(minilm):
    for mode in ("q4f16_1", "Q4F32_1", None):
        with pytest.raises(ValueError, match=r"quantize\(\): unknown mode .*; supported modes: q4f32_1"):
            quantize(minilm, mode)


def test_refuses_quantized_models_and_other_objects(quantized, tmp_path):
    from workbench.frontend.llm import load_llm

    from .llm.tiny_gguf import tiny_tensors, write_gguf

    llm = load_llm(write_gguf(tmp_path / "tiny.gguf", tiny_tensors(seed=0)))
    with pytest.raises(ValueError, match="GGUF LLM, whose weights are already quantized"):
        quantize(llm, "q4f32_1")
    with pytest.raises(ValueError, match=r"already quantized \(q4f32_1\)"):
        quantize(quantized, "q4f32_1")
    with pytest.raises(TypeError, match="model must be a float model loaded from a model folder"):
        quantize({"w": np.zeros((4, 32), np.float32)}, "q4f32_1")
    with pytest.raises(ValueError, match="last dimension of the weight"):
        quantize_weight_q4f32(np.zeros((4, 30), np.float32))


def test_accuracy_change_refuses_bad_sentences(minilm, quantized):
    for bad in ([], "one sentence", [1, 2]):
        with pytest.raises(ValueError, match="sentences must be a non-empty list of strings"):
            accuracy_change(minilm, quantized, bad)

