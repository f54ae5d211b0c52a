"""Generation and chat with workbench/frontend/llm.py: greedy tokens identical to the numpy reference,
the chat answer, streaming, the KV cache growing, and clear errors for bad requests."""
import numpy as np
import pytest

import workbench as wb
from workbench.frontend import llm as llm_module
from workbench.frontend.llm import LLM, load_llm

from .conftest import FRANCE
from .reference_llama import ReferenceLlama

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, there was a little"]


@pytest.fixture(scope="module")
def smollm2_llm(smollm2):
    return LLM(smollm2)


@pytest.fixture(scope="module")
def tiny_llm(tiny_llama_path):
    return load_llm(tiny_llama_path)


def without_stop(ids: list[int], stops) -> list[int]:
    return ids[:-1] if ids and ids[-1] in stops else ids


def test_greedy_32_tokens_match_the_reference(smollm2_llm, smollm2_reference):
    for prompt in PROMPTS:
        ids = smollm2_llm.encode(prompt)
        expected = smollm2_reference.generate(ids, 32, stop_ids=smollm2_llm.stop_token_ids)
        assert smollm2_llm.generate(ids, max_new_tokens=32) == without_stop(expected, smollm2_llm.stop_token_ids)


def test_chat_answers_paris_and_streams(smollm2_llm):
    answer = smollm2_llm.chat(FRANCE, max_new_tokens=24)
    assert "Paris" in answer
    pieces = list(smollm2_llm.chat(FRANCE, stream=True, max_new_tokens=24))
    assert len(pieces) > 1 and "".join(pieces) == answer
    assert smollm2_llm.stats["generated_tokens"] > 0 and smollm2_llm.stats["decode_tokens_per_s"] > 0


def test_text_in_text_out_and_stop_string(smollm2_llm):
    text = smollm2_llm.generate("The capital of France is", max_new_tokens=8)
    assert isinstance(text, str) and "Paris" in text
    cut = smollm2_llm.generate("The capital of France is", max_new_tokens=8, stop="Paris")
    assert "Paris" not in cut and text.startswith(cut)


def test_load_sends_gguf_to_the_llm_loader(tiny_llama_path):
    assert isinstance(wb.frontend.load(tiny_llama_path), LLM)


def test_tiny_generation_matches_the_reference_across_cache_growth(tiny_llm, monkeypatch):
    monkeypatch.setattr(llm_module, "INITIAL_CACHE", 4)     # grow the KV cache several times
    tiny_llm._cache = np.zeros((0,), np.float32)
    ref = ReferenceLlama.from_gguf(tiny_llm.model)
    ids = [40, 50, 60]
    expected = without_stop(ref.generate(ids, 20, stop_ids=tiny_llm.stop_token_ids), tiny_llm.stop_token_ids)
    assert tiny_llm.generate(ids, max_new_tokens=20) == expected
    assert tiny_llm._cache.shape[1] >= len(ids) + len(expected) - 1


def test_sampling_is_reproducible_with_a_seed(tiny_llm):
    a = tiny_llm.generate([40, 50], max_new_tokens=10, temperature=0.8, top_p=0.9, seed=7)
    b = tiny_llm.generate([40, 50], max_new_tokens=10, temperature=0.8, top_p=0.9, seed=7)
    assert a == b and all(0 <= t < tiny_llm.config.vocab_size for t in a)
    assert tiny_llm.generate([40, 50], max_new_tokens=0) == []


@pytest.mark.parametrize("kwargs,match", [
    (dict(prompt=[1] * 129), "the prompt has 129 tokens but the context limit is 128"),
    (dict(prompt=[1, 2], max_new_tokens=-1), "max_new_tokens must be an int >= 0"),
    (dict(prompt=[1, 2], temperature=-0.5), "temperature must be a number >= 0"),
    (dict(prompt=[1, 2], top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(prompt=[]), "the prompt is empty"),
    (dict(prompt=[1, 100000]), "token id 100000 of the prompt is outside the vocabulary"),
    (dict(prompt=[1.5]), "sequence of token ids"),
    (dict(prompt=[1, 2], stop="x"), "stop must be token ids"),
])
def test_bad_requests_are_clear_errors(tiny_llm, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_llm.generate(**kwargs)


def test_bad_chat_and_context_limit(tiny_llama_path, tiny_llm):
    with pytest.raises(ValueError, match="list of messages"):
        tiny_llm.chat("hello")
    with pytest.raises(ValueError, match="context_limit must be an int from 1 to"):
        load_llm(tiny_llama_path, context_limit=10_000)
