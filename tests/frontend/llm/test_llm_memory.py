"""What keeps an LLM's resident memory low: the compile runs in a child process when the disk caches miss
(this process only reads the machine code), and the vocabulary's strings are re-made compactly after the
parse. Checked by behaviour (what was compiled where, what the strings are), not by measuring memory."""
import numpy as np

from workbench.backend import cache
from workbench.frontend import llm as llm_module
from workbench.frontend.gguf_file import load_gguf
from workbench.frontend.llm import LLM

from .reference_llama import ReferenceLlama


def test_a_cold_cache_compiles_in_a_child_and_this_process_only_loads(tiny_llama_path, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(llm_module.COMPILE_IN_PROCESS, raising=False)
    cache.clear()
    model = load_gguf(tiny_llama_path)
    before = cache.stats()
    llm = LLM(model)
    llm.vm
    after = cache.stats()
    assert after["compiles"] == before["compiles"], "this process compiled the kernels itself"
    assert after["disk_hits"] > before["disk_hits"]
    ids = [5, 17, 42, 7]
    expected = ReferenceLlama.from_gguf(model).logits(ids)[-1]
    np.testing.assert_allclose(llm.forward(ids, 0), expected, rtol=1e-3, atol=1e-3)


def test_compiling_in_this_process_when_asked(tiny_llama_path, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(llm_module.COMPILE_IN_PROCESS, "1")
    cache.clear()                            # the kernels of the test above are in memory
    before = cache.stats()
    LLM(load_gguf(tiny_llama_path)).vm
    assert cache.stats()["compiles"] > before["compiles"]


def test_repacked_vocabulary_strings_are_the_same(tiny_llama_path):
    import gguf

    reader = gguf.GGUFReader(tiny_llama_path, "r")
    tokens = list(reader.fields["tokenizer.ggml.tokens"].contents())
    merges = list(reader.fields["tokenizer.ggml.merges"].contents())
    vocab = load_gguf(tiny_llama_path).vocab
    assert vocab.tokens == tokens and vocab.merges == merges
    vocab.tokens.append("a\x00b")            # a string with the separator: left as it is
    kept = list(vocab.tokens)
    vocab.repack_strings()
    assert vocab.tokens == kept
