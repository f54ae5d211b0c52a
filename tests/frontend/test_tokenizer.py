"""workbench.frontend.tokenizer: tokenizer.json batch-encoded to numpy arrays padded to the longest sentence."""
import numpy as np
import pytest
import tokenizers

from workbench.frontend import ModelFileError, Tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return load_tokenizer(minilm_dir)


def test_pads_to_the_longest_not_to_the_files_fixed_length(tokenizer, sentences):
    batch = tokenizer(sentences)
    lengths = batch.attention_mask.sum(axis=1)
    assert batch.input_ids.shape == batch.attention_mask.shape == (len(sentences), lengths.max())
    assert lengths.max() < 128 and lengths.min() == 3   # "Hi" -> [CLS] hi [SEP]
    assert batch.input_ids.dtype == np.int64 and (batch.token_type_ids == 0).all()


def test_matches_the_tokenizers_library(tokenizer, minilm_dir, sentences):
    # independent: the tokenizers library itself, asked to pad to the longest
    reference = tokenizers.Tokenizer.from_file(f"{minilm_dir}/tokenizer.json")
    reference.enable_padding(pad_id=0, pad_token="[PAD]")
    encodings = reference.encode_batch(sentences)
    batch = tokenizer(sentences)
    np.testing.assert_array_equal(batch.input_ids, [e.ids for e in encodings])
    np.testing.assert_array_equal(batch.attention_mask, [e.attention_mask for e in encodings])


def test_pad_id_special_tokens_and_vocab(tokenizer):
    assert tokenizer.pad_id == 0 and tokenizer.vocab_size == 30522
    ids = tokenizer.encode("Hello, world!")
    assert ids[0] == 101 and ids[-1] == 102          # [CLS] ... [SEP]
    assert tokenizer.decode(ids) == "hello, world!"  # uncased
    batch = tokenizer(["a", "a b c d"])
    assert (batch.input_ids[0, 3:] == 0).all() and (batch.attention_mask[0, 3:] == 0).all()


def test_int32_output(tokenizer):
    batch = tokenizer(["one", "two words"], dtype="int32")
    assert batch.input_ids.dtype == batch.attention_mask.dtype == np.int32


def test_max_length_truncates(minilm_dir):
    batch = load_tokenizer(minilm_dir, max_length=5)(["one two three four five six seven"])
    assert batch.input_ids.shape == (1, 5) and batch.input_ids[0, -1] == 102


def test_files_own_truncation_is_kept(tokenizer):
    assert tokenizer(["word " * 300]).input_ids.shape == (1, 128)


@pytest.mark.parametrize("bad, error, fragment", [
    ("a single string", TypeError, "list of sentences"),
    ([], ValueError, "at least one sentence"),
    (["fine", 3], TypeError, "sentence 1 is a int"),
    (None, TypeError, "NoneType"),
])
def test_bad_sentences(tokenizer, bad, error, fragment):
    with pytest.raises(error, match=fragment):
        tokenizer(bad)


def test_missing_tokenizer_json(tmp_path):
    with pytest.raises(ModelFileError, match="tokenizer.json.*does not exist"):
        load_tokenizer(tmp_path)


def test_malformed_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": 7}')
    with pytest.raises(ModelFileError, match="not a valid tokenizer.json"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_tokenizer_without_padding_config_uses_the_pad_token(minilm_dir):
    backend = tokenizers.Tokenizer.from_file(f"{minilm_dir}/tokenizer.json")
    backend.no_padding()
    assert Tokenizer(backend).pad_id == backend.token_to_id("[PAD]")
