"""The numpy BERT reference (tests/frontend/reference_bert.py) on all-MiniLM-L6-v2: checked against
sentence-transformers / transformers where installed, and for self-consistency everywhere."""
import importlib.util

import numpy as np
import pytest

from .conftest import PARAPHRASES
from .reference_bert import bert_hidden_states, mean_pool, reference_embed, reference_tokenize


@pytest.fixture(scope="module")
def embeddings(minilm_dir, minilm_reference_weights, sentences):
    return reference_embed(minilm_dir, sentences, weights=minilm_reference_weights)


def test_embeddings_are_unit_vectors_of_the_hidden_size(embeddings, sentences):
    assert embeddings.shape == (len(sentences), 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)


def test_batch_has_sentences_of_different_lengths(minilm_dir, sentences):
    ids, mask = reference_tokenize(minilm_dir, sentences)
    lengths = mask.sum(axis=1)
    assert len(sentences) >= 8 and len(set(lengths.tolist())) >= 6
    assert ids.shape[1] == lengths.max() and (ids[mask == 0] == 0).all()


def test_sentence_alone_equals_sentence_in_padded_batch(minilm_dir, minilm_reference_weights, sentences,
                                                        embeddings):
    # padding must not leak into a sentence's embedding: masked keys and masked mean pooling
    for i in (0, 7, 8):   # a middle-length, the shortest and the longest sentence
        alone = reference_embed(minilm_dir, [sentences[i]], weights=minilm_reference_weights)[0]
        np.testing.assert_allclose(embeddings[i], alone, atol=1e-5, err_msg=sentences[i])


def test_padding_does_not_change_real_tokens_hidden_states(minilm_dir, minilm_reference_weights):
    ids, mask = reference_tokenize(minilm_dir, ["The cat sleeps on the sofa."])
    padded_ids = np.concatenate([ids, np.zeros((1, 5), ids.dtype)], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((1, 5), mask.dtype)], axis=1)
    h = bert_hidden_states(minilm_reference_weights, ids, mask, num_heads=12)
    hp = bert_hidden_states(minilm_reference_weights, padded_ids, padded_mask, num_heads=12)
    np.testing.assert_allclose(hp[:, : ids.shape[1]], h, atol=1e-5)
    np.testing.assert_allclose(mean_pool(hp, padded_mask), mean_pool(h, mask), atol=1e-6)


def test_paraphrases_are_more_similar_than_unrelated_sentences(embeddings):
    cos = embeddings @ embeddings.T
    for a, b in PARAPHRASES:
        others = [j for j in range(len(cos)) if j not in (a, b)]
        assert cos[a, b] > 0.5, (a, b, cos[a, b])
        assert cos[a, b] > cos[a, others].max() + 0.2 and cos[a, b] > cos[b, others].max() + 0.2
    unrelated = [cos[i, j] for i in range(len(cos)) for j in range(i) if (j, i) not in PARAPHRASES]
    assert max(unrelated) < 0.3, sorted(unrelated)[-3:]


def test_float32_reference_agrees_with_float64(minilm_dir, minilm_reference_weights, sentences, embeddings):
    # the float32 reference is accurate well inside the 1e-4 the model tests allow
    e64 = reference_embed(minilm_dir, sentences, dtype=np.float64, weights=minilm_reference_weights)
    assert np.abs(embeddings - e64).max() < 1e-6


def _sentence_transformers_embeddings(folder, sentences):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(folder, device="cpu").encode(sentences, convert_to_numpy=True,
                                                            normalize_embeddings=True)


def _transformers_embeddings(folder, sentences):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tok(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.numpy()
    mask = batch["attention_mask"].numpy()
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


@pytest.mark.parametrize("library", ["sentence_transformers", "transformers"])
def test_reference_matches_hugging_face_libraries(library, minilm_dir, sentences, embeddings):
    if importlib.util.find_spec(library) is None or importlib.util.find_spec("torch") is None:
        pytest.skip(f"{library} (with torch) is not installed; the reference is checked by the self-consistency "
                    f"tests instead")
    compute = _sentence_transformers_embeddings if library == "sentence_transformers" else _transformers_embeddings
    np.testing.assert_allclose(embeddings, compute(minilm_dir, sentences), atol=1e-5)
