"""load_gguf: SmolLM2's file (hyper-parameters, packed tensors) and small files written with GGUFWriter
(every supported tensor type, and each kind of bad file)."""
import os

import gguf
import numpy as np
import pytest

from workbench.frontend.errors import ModelFileError, UnsupportedArchitectureError
from workbench.frontend.gguf_file import UnsupportedTensorTypeError, load_gguf, read_gguf_tensors

from .tiny_gguf import Q, TINY, tiny_tensors, truncated_copy, write_gguf


def test_smollm2_hyper_parameters(smollm2):
    c = smollm2.config
    assert smollm2.architecture == "llama"
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim) == (30, 576, 9, 3, 64)
    assert (c.intermediate_size, c.vocab_size, c.context_length, c.rope_dim) == (1536, 49152, 8192, 64)
    assert c.rope_theta == 1e5 and c.rms_norm_eps == pytest.approx(1e-5)
    assert c.tie_word_embeddings and "output.weight" not in smollm2.tensors


def test_smollm2_weights_stay_packed_as_stored(smollm2):
    tensors = smollm2.tensors
    embed = tensors["token_embd.weight"]
    assert (embed.quant_type, embed.shape, embed.data.dtype, embed.data.shape) == \
        ("Q8_0", (49152, 576), np.uint8, (49152, 576 // 32 * 34))
    down = tensors["blk.0.ffn_down.weight"]
    assert (down.quant_type, down.shape, down.data.shape) == ("Q4_1", (576, 1536), (576, 1536 // 32 * 20))
    assert tensors["blk.29.attn_norm.weight"].data.dtype == np.float32
    types = {t.quant_type for t in tensors.values()}
    assert types == {"Q8_0", "Q4_1", "F32"}
    # views of the memory-mapped file, not copies: all tensor bytes together fit in the file
    assert sum(t.nbytes for t in tensors.values()) < os.path.getsize(smollm2.path)
    assert not embed.data.flags.writeable and embed.data.base is not None


def test_smollm2_metadata_leaves_tokenizer_arrays_to_the_vocab(smollm2):
    assert smollm2.metadata["general.architecture"] == "llama"
    assert "tokenizer.ggml.tokens" not in smollm2.metadata
    assert len(smollm2.vocab.tokens) == 49152 and len(smollm2.vocab.merges) == 48900


@pytest.mark.parametrize("matrix_type", [Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.F16, Q.F32])
def test_tiny_file_of_each_supported_type_loads_and_dequantizes(tmp_path, matrix_type):
    weights = tiny_tensors(matrix_type=matrix_type)
    model = load_gguf(write_gguf(tmp_path / "m.gguf", weights))
    q = model.tensors["blk.1.attn_q.weight"]
    assert q.quant_type == matrix_type.name and q.shape == (TINY["hidden"], TINY["hidden"])
    stored = gguf.quants.quantize(weights["blk.1.attn_q.weight"][0], matrix_type)
    assert np.array_equal(q.data.view(np.uint8).reshape(-1), stored.view(np.uint8).reshape(-1))
    assert np.array_equal(q.dequantize(), gguf.quants.dequantize(stored, matrix_type).reshape(q.shape))
    assert model.config.num_layers == TINY["layers"] and model.config.num_kv_heads == TINY["kv_heads"]


def test_untied_output_head(tmp_path):
    model = load_gguf(write_gguf(tmp_path / "m.gguf", tiny_tensors(tied=False)))
    assert not model.config.tie_word_embeddings and model.tensors["output.weight"].quant_type == "Q4_1"


def test_unsupported_tensor_type_is_named(tmp_path):
    weights = tiny_tensors()
    weights["blk.1.ffn_up.weight"] = (weights["blk.1.ffn_up.weight"][0], Q.Q5_0)
    with pytest.raises(UnsupportedTensorTypeError, match=r"'blk\.1\.ffn_up\.weight' is stored as Q5_0.*Q4_1"):
        load_gguf(write_gguf(tmp_path / "m.gguf", weights))


def test_unsupported_architecture(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", tiny_tensors(), arch="gpt2")
    with pytest.raises(UnsupportedArchitectureError, match=r"'gpt2' model; supported architectures: llama"):
        load_gguf(path)
    assert "token_embd.weight" in read_gguf_tensors(path)     # the tensors alone still read


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("this is a text file, not a model")
    with pytest.raises(ModelFileError, match=r"is not a GGUF file: it starts with b'this'"):
        load_gguf(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_gguf(tmp_path / "nothing.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(ModelFileError, match="truncated: 0 bytes"):
        load_gguf(tmp_path / "empty.gguf")


@pytest.mark.parametrize("fraction", [0.0001, 0.01, 0.05, 0.2, 0.5, 0.9, 0.9999])
def test_truncated_file_is_a_clear_error(tiny_llama_path, tmp_path, fraction):
    size = os.path.getsize(tiny_llama_path)
    cut = truncated_copy(tiny_llama_path, max(4, int(size * fraction)), str(tmp_path / "cut.gguf"))
    with pytest.raises(ModelFileError, match="is truncated"):
        load_gguf(cut)


def test_truncated_tensor_data(tiny_llama_path, tmp_path):
    cut = truncated_copy(tiny_llama_path, os.path.getsize(tiny_llama_path) - 1, str(tmp_path / "cut.gguf"))
    with pytest.raises(ModelFileError, match=r"cut\.gguf' is truncated or corrupted: .*cannot reshape"):
        read_gguf_tensors(cut)


def test_missing_tensor_and_wrong_shape(tmp_path):
    weights = tiny_tensors()
    del weights["blk.1.ffn_up.weight"]
    with pytest.raises(ModelFileError, match=r"lacks tensor\(s\) blk\.1\.ffn_up\.weight"):
        load_gguf(write_gguf(tmp_path / "a.gguf", weights))
    weights = tiny_tensors()
    weights["blk.0.attn_k.weight"] = (np.zeros((TINY["hidden"], TINY["hidden"]), np.float32), Q.Q4_1)
    with pytest.raises(ModelFileError, match=r"'blk\.0\.attn_k\.weight' has shape \(64, 64\).* need \(32, 64\)"):
        load_gguf(write_gguf(tmp_path / "b.gguf", weights))


def test_missing_hyper_parameters_and_tokenizer(tmp_path):
    with pytest.raises(ModelFileError, match=r"has no 'llama\.embedding_length' entry"):
        load_gguf(write_gguf(tmp_path / "a.gguf", tiny_tensors(), metadata=False))
    with pytest.raises(ModelFileError, match=r"has no 'tokenizer\.ggml\.tokens' entry: it holds no tokenizer"):
        load_gguf(write_gguf(tmp_path / "b.gguf", tiny_tensors(), tokenizer=False))
