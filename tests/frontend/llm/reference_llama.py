"""A plain numpy llama decoder, the reference the compiled model is checked against.

Weights are dequantized to float32 by the ``gguf`` package (``gguf.quants.dequantize``), not by workbench, and
every step is written out in numpy as llama.cpp computes it for the llama architecture:

- embedding lookup (``token_embd.weight``, rows are tokens);
- per block: RMSNorm -> Q/K/V projections -> rotary embedding over ADJACENT pairs ``(x[2i], x[2i+1])`` with
  angle ``pos * theta ** (-2i / rope_dim)`` (GGUF's Q/K weights are permuted for this pairing) -> causal
  grouped-query attention (query head ``h`` reads KV head ``h // (heads / kv_heads)``) over the KV cache ->
  output projection, residual; RMSNorm -> ``down(silu(gate(x)) * up(x))``, residual;
- final RMSNorm and the output head (``output.weight``, or the token embedding when the file has none).

``from_gguf(model, int8_decode=True)`` is the reference of ``activations="int8"``: a single token's products
with Q4_1 weights quantize the activation to 8 bits per block of 32 and sum the exact integer dot products,
as llama.cpp does (:func:`q8_1_dot`, written here from llama.cpp's definition of its Q8_1 blocks).

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


def q4_1_blocks(data: np.ndarray, shape: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Q4_1 matrix's blocks from its stored bytes (20 per block: float16 scale, float16 minimum, 16 bytes
    of two 4-bit codes, weights j and j + 16 sharing byte j): scales and minimums ``[rows, blocks]`` as
    float32, codes ``[rows, blocks, 32]``."""
    rows, cols = shape
    raw = np.asarray(data, np.uint8).reshape(rows, cols // 32, 20)
    scale = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    minimum = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    codes = np.concatenate([raw[..., 4:] & 15, raw[..., 4:] >> 4], axis=-1)
    return scale, minimum, codes


def q8_1_dot(x: np.ndarray, scale: np.ndarray, minimum: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """llama.cpp's product of one activation row with a Q4_1 matrix: ``x`` quantized per 32 values to int8
    (``d = max|x| / 127``, round half to even, ``d`` and ``d * sum(q)`` kept as float16), each block's codes
    dotted with ``q`` exactly, then ``sum over blocks of scale * d * dot + minimum * d * sum(q)``."""
    blocks = x.astype(np.float32).reshape(-1, 32)
    d = np.abs(blocks).max(axis=1) / np.float32(127)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, np.float32(1)), np.float32(0)).astype(np.float32)
    q = np.round(blocks * inv[:, None]).astype(np.int64)
    d16 = d.astype(np.float16).astype(np.float32)
    s16 = (d * q.sum(axis=1).astype(np.float32)).astype(np.float16).astype(np.float32)
    # exact in float32: a block's dot is at most 32 * 15 * 127 = 60960 in magnitude, far below 2 ** 24
    dots = (codes.astype(np.float32) * q.astype(np.float32)[None]).sum(axis=2)
    return ((scale * d16) * dots + minimum * s16).sum(axis=1, dtype=np.float32)


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

    def __init__(self, config: LlamaConfig, weights: dict[str, np.ndarray],
                 int8_blocks: dict[str, tuple] | None = None):
        self.config = config
        self.weights = weights
        #: with int8_blocks (Q4_1 weight name -> (scales, minimums, codes)), a single token's products with
        #: those weights are computed as llama.cpp does: the activation quantized to 8 bits per block
        self.int8_blocks = int8_blocks or {}
        self._one_token = False
        self.embedding = weights["token_embd.weight"]
        self.head = weights.get("output.weight", self.embedding)
        half = config.rope_dim // 2
        self.inv_freq = (config.rope_theta ** (-np.arange(half, dtype=np.float64) * 2.0 / config.rope_dim))

    @classmethod
    def from_gguf(cls, model: GGUFFile, int8_decode: bool = False) -> ReferenceLlama:
        """The reference of ``model``; ``int8_decode``: single-token steps with 8-bit activations (for the
        ``activations="int8"`` mode), the Q4_1 weights' blocks read from the file's bytes here."""
        blocks = {name: q4_1_blocks(t.data, t.shape) for name, t in model.tensors.items()
                  if t.quant_type == "Q4_1"} if int8_decode else None
        return cls(model.config, dequantized_weights(model), blocks)

    def _matmul(self, x: np.ndarray, name: str) -> np.ndarray:
        """``x @ W.T`` for the weight ``name``: in float32, or, for a single token with int8 blocks, llama.cpp's
        Q4_1 x Q8_1 dot products."""
        if self._one_token and name in self.int8_blocks:
            return np.stack([q8_1_dot(row, *self.int8_blocks[name]) for row in x])
        return x @ self.weights[name].T

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
        self._one_token = n == 1
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
        c = self.config
        n, start = x.shape[0], int(positions[0])
        q = self._matmul(x, f"blk.{layer}.attn_q.weight").reshape(n, c.num_heads, c.head_dim)
        k = self._matmul(x, f"blk.{layer}.attn_k.weight").reshape(n, c.num_kv_heads, c.head_dim)
        v = self._matmul(x, f"blk.{layer}.attn_v.weight").reshape(n, c.num_kv_heads, c.head_dim)
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
        return self._matmul(attended, f"blk.{layer}.attn_output.weight")

    def _mlp(self, layer: int, x: np.ndarray) -> np.ndarray:
        gate = self._matmul(x, f"blk.{layer}.ffn_gate.weight")
        up = self._matmul(x, f"blk.{layer}.ffn_up.weight")
        return self._matmul(gate / (1.0 + np.exp(-gate)) * up, f"blk.{layer}.ffn_down.weight")
