"""The numpy reference llama: SmolLM2 answers the France question, the KV cache changes nothing, RoPE rotates
adjacent pairs."""
import numpy as np
import pytest

from workbench.frontend.gguf_file import load_gguf

from .conftest import FRANCE
from .reference_llama import ReferenceLlama


@pytest.fixture(scope="module")
def tiny_reference(tiny_llama_path):
    return ReferenceLlama.from_gguf(load_gguf(tiny_llama_path))


def test_smollm2_greedy_answer_names_paris(smollm2, smollm2_reference):
    prompt = smollm2.tokenizer.encode(smollm2.apply_chat_template(FRANCE)).ids
    answer = smollm2_reference.generate(prompt, max_new_tokens=10, stop_ids=smollm2.vocab.stop_token_ids)
    text = smollm2.tokenizer.decode(answer, skip_special_tokens=False)
    assert "Paris" in text, text
    assert text == "The capital of France is Paris.<|im_end|>"


def test_kv_cache_decode_equals_full_prefill(tiny_reference):
    tokens = [5, 17, 200, 3, 99, 42, 7, 123]
    full = tiny_reference.logits(tokens)
    cache = tiny_reference.new_cache(16)
    parts = [tiny_reference.forward(tokens[:5], cache)]
    parts += [tiny_reference.forward([t], cache) for t in tokens[5:]]
    assert cache.length == len(tokens)
    np.testing.assert_allclose(np.concatenate(parts), full, rtol=1e-5, atol=1e-5)


def test_generation_is_greedy_and_stops(tiny_reference):
    prompt = [5, 17, 200]
    out = tiny_reference.generate(prompt, max_new_tokens=6)
    assert len(out) == 6 and out[0] == int(np.argmax(tiny_reference.logits(prompt)[-1]))
    assert int(np.argmax(tiny_reference.logits(prompt + out[:3])[-1])) == out[3]
    assert tiny_reference.generate(prompt, max_new_tokens=6, stop_ids=(out[1],)) == out[:2]
    with pytest.raises(ValueError, match="do not fit a KV cache of 4"):
        tiny_reference.forward(list(range(5)), tiny_reference.new_cache(4))


def test_rope_rotates_adjacent_pairs(tiny_reference):
    head_dim = tiny_reference.config.head_dim
    x = np.zeros((1, 1, head_dim), np.float32)
    x[0, 0, 0] = 1.0                      # pair 0 has frequency 1: (1, 0) -> (cos p, sin p) in slots 0 and 1
    x[0, 0, 3] = 1.0                      # pair 1 (slots 2, 3): (0, 1) -> (-sin(p f1), cos(p f1))
    p, f1 = 3, tiny_reference.config.rope_theta ** (-2 / head_dim)
    y = tiny_reference._rope(x, np.array([p]))[0, 0]
    np.testing.assert_allclose(y[:4], [np.cos(p), np.sin(p), -np.sin(p * f1), np.cos(p * f1)], atol=1e-6)
    assert np.count_nonzero(y[4:]) == 0


def test_rope_scores_depend_on_relative_position(tiny_reference):
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 1, 1, tiny_reference.config.head_dim)).astype(np.float32)

    def score(pq, pk):
        return float(np.sum(tiny_reference._rope(q, np.array([pq])) * tiny_reference._rope(k, np.array([pk]))))

    assert score(7, 3) == pytest.approx(score(40, 36), rel=1e-5)
