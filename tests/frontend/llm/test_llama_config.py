"""LlamaConfig from GGUF metadata: defaults, the tensor shapes it implies, and bad values."""
import pytest

from workbench.frontend.errors import ModelFileError
from workbench.frontend.llama_config import LlamaConfig

BASE = {"general.architecture": "llama", "llama.block_count": 2, "llama.context_length": 64,
        "llama.embedding_length": 48, "llama.feed_forward_length": 96, "llama.attention.head_count": 6,
        "llama.attention.head_count_kv": 2}


def test_defaults_follow_llama_cpp():
    c = LlamaConfig.from_gguf_metadata(BASE, vocab_size=10)
    assert (c.head_dim, c.rope_dim, c.rope_theta, c.rms_norm_eps, c.vocab_size) == (8, 8, 10000.0, 1e-5, 10)
    assert (c.kv_dim, c.group_size) == (16, 3)


def test_tensor_shapes_with_and_without_output_head():
    tied = LlamaConfig.from_gguf_metadata(BASE, vocab_size=10).tensor_shapes()
    assert "output.weight" not in tied and len(tied) == 2 + 2 * 9
    assert tied["blk.1.ffn_down.weight"] == (48, 96) and tied["token_embd.weight"] == (10, 48)
    untied = LlamaConfig.from_gguf_metadata(BASE, vocab_size=10, tie_word_embeddings=False).tensor_shapes()
    assert untied["output.weight"] == (10, 48)


@pytest.mark.parametrize("change, message", [
    ({"llama.attention.head_count": 5}, "embedding_length 48 is not a multiple of llama.attention.head_count 5"),
    ({"llama.attention.head_count_kv": 4}, "head_count 6 is not a multiple of llama.attention.head_count_kv 4"),
    ({"llama.block_count": 0}, "llama.block_count must be a positive integer, got 0"),
    ({"llama.context_length": 1.5}, "llama.context_length must be a positive integer, got 1.5"),
    ({"llama.rope.dimension_count": 9}, "rope.dimension_count 9 must be even and at most the head size 8"),
])
def test_bad_values_are_named(change, message):
    with pytest.raises(ModelFileError, match=message.replace(".", r"\.")):
        LlamaConfig.from_gguf_metadata({**BASE, **change}, vocab_size=10)


def test_missing_entry_is_named():
    values = dict(BASE)
    del values["llama.feed_forward_length"]
    with pytest.raises(ModelFileError, match=r"has no 'llama\.feed_forward_length' entry"):
        LlamaConfig.from_gguf_metadata(values, vocab_size=10)
