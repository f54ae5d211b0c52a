"""A plain numpy BERT encoder and sentence embedding: the reference the model-level tests compare against.

Independent of workbench on purpose: weights come from the ``safetensors`` library, token ids from the
``tokenizers`` library, and the forward pass is written out here from the published BERT definition
(Devlin et al.; Hugging Face ``BertModel``):

    x = LayerNorm(word_emb[ids] + pos_emb[0..S) + type_emb[type_ids])
    for each layer:
        a = LayerNorm(x + Dense(MultiHeadSelfAttention(x, mask)))
        x = LayerNorm(a + Dense(GELU_erf(Dense(a))))

then (sentence-transformers' all-MiniLM-L6-v2) the mean of the last hidden states over real tokens,
L2-normalised. Linear weights are stored ``(out, in)``: ``y = x @ W.T + b``.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import tokenizers
from safetensors.numpy import load_file

_erf = np.vectorize(math.erf, otypes=[np.float64])


def read_reference_weights(folder: str) -> dict[str, np.ndarray]:
    """All tensors of ``folder``/model.safetensors, read by the safetensors library (not workbench)."""
    return load_file(os.path.join(folder, "model.safetensors"))


def read_reference_config(folder: str) -> dict:
    """config.json of ``folder`` as a plain dict."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def reference_tokenize(folder: str, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 ``[B, S]`` padded on the right to the longest sentence."""
    tk = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tk.enable_padding(pad_id=0, pad_token="[PAD]")          # no length: pad to the longest in the batch
    encodings = tk.encode_batch(sentences)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu_erf(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def bert_hidden_states(weights: dict[str, np.ndarray], input_ids: np.ndarray, attention_mask: np.ndarray,
                       num_heads: int, eps: float = 1e-12, dtype=np.float32,
                       token_type_ids: np.ndarray | None = None) -> np.ndarray:
    """Last hidden states ``[B, S, H]`` of the BERT encoder whose weights (checkpoint names) are ``weights``."""
    raw = {name.removeprefix("bert."): a for name, a in weights.items()}
    batch, seq = input_ids.shape
    token_type_ids = np.zeros_like(input_ids) if token_type_ids is None else token_type_ids
    # rows are gathered before the cast so a float64 run does not convert the whole vocabulary
    x = (raw["embeddings.word_embeddings.weight"][input_ids].astype(dtype)
         + raw["embeddings.position_embeddings.weight"][:seq].astype(dtype)[None]
         + raw["embeddings.token_type_embeddings.weight"][token_type_ids].astype(dtype))
    w = {name: np.asarray(a, dtype=dtype) for name, a in raw.items()
         if a.dtype.kind == "f" and not name.endswith("_embeddings.weight")}
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    # additive mask over keys: padded keys get the most negative finite value (as Hugging Face does)
    key_bias = np.where(attention_mask[:, None, None, :] > 0, 0.0, np.finfo(dtype).min).astype(dtype)
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        x = _encoder_layer(w, f"encoder.layer.{layer}.", x, key_bias, num_heads, eps)
        layer += 1
    assert x.shape == (batch, seq, w["embeddings.LayerNorm.weight"].shape[0])
    return x


def _encoder_layer(w, p, x, key_bias, num_heads, eps):
    def dense(name, v):
        return v @ w[f"{p}{name}.weight"].T + w[f"{p}{name}.bias"]

    batch, seq, hidden = x.shape
    head_dim = hidden // num_heads

    def heads(v):   # [B, S, H] -> [B, heads, S, head_dim]
        return v.reshape(batch, seq, num_heads, head_dim).transpose(0, 2, 1, 3)

    q, k, v = (heads(dense(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.asarray(math.sqrt(head_dim), x.dtype) + key_bias
    context = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    a = layer_norm(x + dense("attention.output.dense", context),
                   w[f"{p}attention.output.LayerNorm.weight"], w[f"{p}attention.output.LayerNorm.bias"], eps)
    ffn = dense("output.dense", gelu_erf(dense("intermediate.dense", a)))
    return layer_norm(a + ffn, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], eps)


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of ``hidden`` ``[B, S, H]`` over the positions where ``attention_mask`` is 1 -> ``[B, H]``."""
    m = attention_mask.astype(hidden.dtype)[:, :, None]
    return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def reference_embed(folder: str, sentences: list[str], dtype=np.float32,
                    weights: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Sentence embeddings ``[len(sentences), H]`` of the model in ``folder``, as sentence-transformers computes them."""
    config = read_reference_config(folder)
    weights = read_reference_weights(folder) if weights is None else weights
    ids, mask = reference_tokenize(folder, sentences)
    hidden = bert_hidden_states(weights, ids, mask, config["num_attention_heads"], config["layer_norm_eps"], dtype)
    return l2_normalize(mean_pool(hidden, mask))
