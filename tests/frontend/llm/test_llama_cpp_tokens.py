"""Greedy tokens of workbench against llama.cpp (through ``llama-cpp-python``) on the three prompts of
test_generate.py, where llama-cpp-python is installed (it is an optional comparison: building it from
source takes about 9 minutes, so the suite skips this without it)."""
import numpy as np
import pytest

from workbench.frontend.llm import LLM

from .test_generate import PROMPTS

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (optional comparison)")


@pytest.fixture(scope="module")
def llama(smollm2_path):
    # no extra buffer types: the AMX path of a native build dies on prompts longer than one token
    return llama_cpp.Llama(model_path=str(smollm2_path), n_ctx=256, n_threads=2, logits_all=False, verbose=False,
                           use_extra_bufts=False)


def _llama_cpp_greedy(llama, ids: list[int], n: int) -> list[int]:
    llama.reset()
    llama.eval(ids)
    out = []
    for _ in range(n):
        # the last token's logits from the context: Llama.scores stays zero unless logits_all=True
        logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),))
        assert np.isfinite(logits).all() and logits.std() > 0, "llama.cpp gave no logits"
        token = int(np.argmax(logits))
        out.append(token)
        if token == llama.token_eos():
            break
        llama.eval([token])
    return out


def test_greedy_32_tokens_match_llama_cpp(smollm2, llama):
    wb_llm = LLM(smollm2)
    for prompt in PROMPTS:
        ids = wb_llm.encode(prompt)
        expected = _llama_cpp_greedy(llama, ids, 32)
        stops = [k for k, t in enumerate(expected) if t in wb_llm.stop_token_ids]
        expected = expected[:stops[0]] if stops else expected   # workbench leaves the stop token out
        assert len(expected) >= 8, f"llama.cpp stopped after {len(expected)} tokens on {prompt!r}"
        got = wb_llm.generate(ids, max_new_tokens=len(expected))
        assert got == expected, prompt
