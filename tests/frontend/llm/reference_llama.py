"""A plain numpy llama decoder, the reference the compiled model is checked against.

Weights are dequantized to float32 by the ``gguf`` package (``gguf.quants.dequantize``), not by workbench, and
every step is written out in numpy as llama.cpp computes it for the llama architecture:

- embedding lookup (``token_embd.weight``, rows are tokens);
- per block: RMSNorm -> Q/K/V projections -> rotary embedding over ADJACENT pairs ``(x[2i], x[2i+1])`` with
  angle ``pos * theta ** (-2i / rope_dim)`` (GGUF's Q/K weights are permuted for this pairing) -> causal
  grouped-query attention (query head ``h`` reads KV head ``h // (heads / kv_heads)``) over the KV cache ->
  output projection, residual; RMSNorm -> ``down(silu(gate(x)) * up(x))``, residual;
- final RMSNorm and the output head (``output.weight``, or the token embedding when the file has none).

The KV cache is preallocated for ``max_len`` positions; :meth:`ReferenceLlama.forward` appends the new
tokens' keys and values and returns their logits, so a prompt is one call and each decoded token another.
"""
from __future__ import annotations

from dataclasses import dataclass

import gguf
import numpy as np

from workbench.frontend.gguf_file import GGUFFile
from workbench.frontend.llama_config import LlamaConfig


def dequantized_weights(model: GGUFFile) -> dict[str, np.ndarray]:
    """Every tensor of ``model`` as float32 in numpy shape, decoded by ``gguf.quants.dequantize``."""
    weights = {}
    for name, t in model.tensors.items():
        qtype = gguf.GGMLQuantizationType[t.quant_type]
        weights[name] = np.ascontiguousarray(gguf.quants.dequantize(t.data, qtype), dtype=np.float32).reshape(t.shape)
    return weights


@dataclass
class KVCache:
    """Keys and values of every layer for positions ``[0, length)``: ``[layers, max_len, kv_heads, head_dim]``."""

    keys: np.ndarray
    values: np.ndarray
    length: int = 0

    @property
    def max_len(self) -> int:
        return self.keys.shape[1]


class ReferenceLlama:
    """The llama forward pass in numpy float32 over dequantized weights (GGUF tensor names)."""

    def __init__(self, config: LlamaConfig, weights: dict[str, np.ndarray]):
        self.config = config
        self.weights = weights
        self.embedding = weights["token_embd.weight"]
        self.head = weights.get("output.weight", self.embedding)
        half = config.rope_dim // 2
        self.inv_freq = (config.rope_theta ** (-np.arange(half, dtype=np.float64) * 2.0 / config.rope_dim))

    @classmethod
    def from_gguf(cls, model: GGUFFile) -> ReferenceLlama:
        return cls(model.config, dequantized_weights(model))

    def new_cache(self, max_len: int = 512) -> KVCache:
        c = self.config
        shape = (c.num_layers, max_len, c.num_kv_heads, c.head_dim)
        return KVCache(np.zeros(shape, np.float32), np.zeros(shape, np.float32))

    def forward(self, tokens, cache: KVCache) -> np.ndarray:
        """Logits ``[len(tokens), vocab]`` of ``tokens`` placed after the ``cache.length`` cached positions."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        start, n = cache.length, tokens.size
        if start + n > cache.max_len:
            raise ValueError(f"{start + n} positions do not fit a KV cache of {cache.max_len}")
        positions = np.arange(start, start + n)
        x = self.embedding[tokens]
        for layer in range(self.config.num_layers):
            x = x + self._attention(layer, self._rms_norm(x, f"blk.{layer}.attn_norm.weight"), positions, cache)
            x = x + self._mlp(layer, self._rms_norm(x, f"blk.{layer}.ffn_norm.weight"))
        cache.length = start + n
        return self._rms_norm(x, "output_norm.weight") @ self.head.T

    def logits(self, tokens) -> np.ndarray:
        """Logits of a prompt from an empty cache."""
        tokens = list(tokens)
        return self.forward(tokens, self.new_cache(len(tokens)))

    def generate(self, tokens, max_new_tokens: int, stop_ids=()) -> list[int]:
        """Greedy continuation of ``tokens``: at most ``max_new_tokens`` ids, ending with a stop id if one came."""
        tokens = list(tokens)
        cache = self.new_cache(len(tokens) + max_new_tokens)
        out: list[int] = []
        logits = self.forward(tokens, cache)[-1]
        while len(out) < max_new_tokens:
            token = int(np.argmax(logits))
            out.append(token)
            if token in stop_ids or len(out) == max_new_tokens:
                break
            logits = self.forward([token], cache)[-1]
        return out

    def _rms_norm(self, x: np.ndarray, weight: str) -> np.ndarray:
        scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(self.config.rms_norm_eps))
        return (x * scale) * self.weights[weight]

    def _rope(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Rotate pairs (x[..., 2i], x[..., 2i+1]) of ``x [n, heads, head_dim]`` by ``pos * inv_freq[i]``."""
        angles = positions[:, None].astype(np.float64) * self.inv_freq[None, :]
        cos = np.cos(angles).astype(np.float32)[:, None, :]
        sin = np.sin(angles).astype(np.float32)[:, None, :]
        rot = self.config.rope_dim
        even, odd = x[..., 0:rot:2], x[..., 1:rot:2]
        out = x.copy()
        out[..., 0:rot:2] = even * cos - odd * sin
        out[..., 1:rot:2] = even * sin + odd * cos
        return out

    def _attention(self, layer: int, x: np.ndarray, positions: np.ndarray, cache: KVCache) -> np.ndarray:
        c, w = self.config, self.weights
        n, start = x.shape[0], int(positions[0])
        q = (x @ w[f"blk.{layer}.attn_q.weight"].T).reshape(n, c.num_heads, c.head_dim)
        k = (x @ w[f"blk.{layer}.attn_k.weight"].T).reshape(n, c.num_kv_heads, c.head_dim)
        v = (x @ w[f"blk.{layer}.attn_v.weight"].T).reshape(n, c.num_kv_heads, c.head_dim)
        cache.keys[layer, start:start + n] = self._rope(k, positions)
        cache.values[layer, start:start + n] = v
        keys = cache.keys[layer, :start + n]                        # [t, kv_heads, d]
        values = cache.values[layer, :start + n]
        q = self._rope(q, positions).reshape(n, c.num_kv_heads, c.group_size, c.head_dim)
        scores = np.einsum("nkgd,tkd->kgnt", q, keys) / np.float32(np.sqrt(c.head_dim))
        causal = np.arange(start + n)[None, :] > positions[:, None]   # [n, t]: a query sees positions <= its own
        scores = np.where(causal, -np.inf, scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        attended = np.einsum("kgnt,tkd->nkgd", probs, values).reshape(n, c.num_heads * c.head_dim)
        return attended @ w[f"blk.{layer}.attn_output.weight"].T

    def _mlp(self, layer: int, x: np.ndarray) -> np.ndarray:
        w = self.weights
        gate = x @ w[f"blk.{layer}.ffn_gate.weight"].T
        up = x @ w[f"blk.{layer}.ffn_up.weight"].T
        return (gate / (1.0 + np.exp(-gate)) * up) @ w[f"blk.{layer}.ffn_down.weight"].T
