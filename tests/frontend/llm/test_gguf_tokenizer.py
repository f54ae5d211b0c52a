"""The tokenizers.Tokenizer rebuilt from a GGUF file's vocabulary, and the chat template."""
import numpy as np
import pytest

from workbench.frontend import gguf_tokenizer
from workbench.frontend.errors import ModelFileError
from workbench.frontend.gguf_tokenizer import GGUFVocab, apply_chat_template, build_tokenizer

from .conftest import FRANCE
from .tiny_gguf import CHATML_TEMPLATE, tiny_vocab

FRANCE_PROMPT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                 "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")

TEXTS = [
    "What is the capital of France?",
    "  leading spaces, trailing spaces  \n\n\ttabs and new lines\n",
    "Numbers 1234567 and 3.14159, dates 2024-05-06.",
    "Unicode: café, naïve, 東京, Ελληνικά, emoji 🤗🚀",
    "def f(x):\n    return x ** 2  # code\n",
]


def test_vocabulary_matches_the_file_token_list(smollm2):
    tok, tokens = smollm2.tokenizer, smollm2.vocab.tokens
    assert tok.get_vocab_size(with_added_tokens=True) == len(tokens) == 49152
    assert all(tok.id_to_token(i) == t for i, t in enumerate(tokens))


@pytest.mark.parametrize("text", TEXTS)
def test_encode_decode_round_trip(smollm2, text):
    ids = smollm2.tokenizer.encode(text).ids
    assert smollm2.tokenizer.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_are_single_ids(smollm2):
    specials = smollm2.vocab.special_tokens
    assert len(specials) == 17 and specials["<|im_start|>"] == 1 and specials["<|im_end|>"] == 2
    for text, i in specials.items():
        assert smollm2.tokenizer.encode(f"a{text}b").ids[1] == i
    ids = smollm2.tokenizer.encode("<|im_start|>user\nHi<|im_end|>").ids
    assert ids[0] == 1 and ids[-1] == 2
    assert smollm2.tokenizer.decode(ids) == "user\nHi"          # special tokens skipped by default
    assert 2 in smollm2.vocab.stop_token_ids


def test_words_and_digits_split_as_smollm(smollm2):
    encoding = smollm2.tokenizer.encode("What is the capital of France? 2024")
    assert encoding.tokens == ["What", "Ġis", "Ġthe", "Ġcapital", "Ġof", "ĠFrance", "?", "Ġ", "2", "0", "2", "4"]


@pytest.mark.parametrize("renderer", ["jinja2", "chatml"])
def test_chat_template_of_smollm2(smollm2, renderer):
    if renderer == "jinja2":
        pytest.importorskip("jinja2")
    assert smollm2.apply_chat_template(FRANCE, renderer=renderer) == FRANCE_PROMPT
    ids = smollm2.tokenizer.encode(FRANCE_PROMPT).ids
    assert len(ids) == 37 and ids[:3] == [1, 9690, 198] and ids[-4:] == [1, 520, 9531, 198]


def test_chat_renderers_agree_on_a_conversation():
    pytest.importorskip("jinja2")
    conversations = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "Bye"}],
        [],
    ]
    for messages in conversations:
        for prompt in (True, False):
            assert apply_chat_template(CHATML_TEMPLATE, messages, prompt, renderer="jinja2") == \
                apply_chat_template(CHATML_TEMPLATE, messages, prompt, renderer="chatml")


def test_auto_renderer_without_jinja2_uses_chatml(monkeypatch):
    monkeypatch.setattr(gguf_tokenizer, "_has_jinja2", lambda: False)
    text = apply_chat_template(CHATML_TEMPLATE, [{"role": "user", "content": "Hi"}])
    assert text == "<|im_start|>system\nYou are tiny.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="only knows ChatML templates"):
        apply_chat_template("{{ messages[0]['content'] }}", [{"role": "user", "content": "Hi"}])


def test_bad_messages_are_clear_errors():
    with pytest.raises(TypeError, match="messages must be a list"):
        apply_chat_template(CHATML_TEMPLATE, "What is the capital of France?")
    with pytest.raises(TypeError, match="message 0 must be a dict with string 'role' and 'content'"):
        apply_chat_template(CHATML_TEMPLATE, [{"role": "user"}])
    with pytest.raises(ValueError, match="unknown chat template renderer 'mustache'"):
        apply_chat_template(CHATML_TEMPLATE, [], renderer="mustache")


def tiny_metadata(**changes):
    tokens, types, merges = tiny_vocab()
    values = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm", "tokenizer.ggml.tokens": tokens,
              "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges,
              "tokenizer.ggml.eos_token_id": 2}
    values.update(changes)
    return values


def test_tiny_vocabulary_merges_and_specials():
    tok = build_tokenizer(GGUFVocab.from_metadata(tiny_metadata()))
    assert tok.encode("the the and<|im_end|>").tokens == ["t", "he", "Ġthe", "Ġand", "<|im_end|>"]
    assert GGUFVocab.from_metadata(tiny_metadata()).stop_token_ids == (0, 2)


@pytest.mark.parametrize("changes, message", [
    ({"tokenizer.ggml.model": "llama"}, "tokenizer model 'llama' is not supported yet"),
    ({"tokenizer.ggml.pre": "qwen2"}, "pre-tokenizer 'qwen2' is not supported yet"),
    ({"tokenizer.ggml.merges": ["t h e"]}, "merge 0 't h e' is not two tokens"),
    ({"tokenizer.ggml.merges": ["x y"]}, "merge 0 'x y' is not two tokens"),
    ({"tokenizer.ggml.token_type": [1, 3]}, "token_type has 2 entries for 266 tokens"),
    ({"tokenizer.ggml.eos_token_id": 999}, "eos_token_id is 999, outside the vocabulary of 266 tokens"),
])
def test_bad_vocabulary_is_a_clear_error(changes, message):
    with pytest.raises(ModelFileError, match=message):
        build_tokenizer(GGUFVocab.from_metadata(tiny_metadata(**changes)))


def test_duplicate_token_is_named():
    tokens = tiny_vocab()[0]
    tokens = tokens[:-1] + [tokens[5]]
    with pytest.raises(ModelFileError, match=f"token '{tokens[5]}' appears twice"):
        build_tokenizer(GGUFVocab.from_metadata(tiny_metadata(**{"tokenizer.ggml.tokens": tokens,
                                                                  "tokenizer.ggml.merges": []})))


def test_token_types_are_int32_array():
    vocab = GGUFVocab.from_metadata(tiny_metadata())
    assert vocab.token_types.dtype == np.int32 and vocab.special_tokens == {"<|endoftext|>": 0, "<|im_start|>": 1,
                                                                            "<|im_end|>": 2}
