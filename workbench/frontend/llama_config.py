"""Hyper-parameters of a llama-architecture decoder, read from a GGUF file's metadata.

GGUF stores them under ``<arch>.*`` keys (``llama.block_count``, ``llama.attention.head_count_kv``, ...);
:meth:`LlamaConfig.from_gguf_metadata` reads them, fills in llama.cpp's defaults for the optional ones
(RoPE base 10000, head_dim = hidden / heads, KV heads = heads, vocabulary size = number of tokens) and
checks that they fit together. :meth:`LlamaConfig.tensor_shapes` gives the numpy shape of every weight the
file must hold, by GGUF tensor name; the output head ``output.weight`` is optional (without it the token
embedding doubles as the head: ``tie_word_embeddings``).

>>> cfg = LlamaConfig.from_gguf_metadata({
...     "general.architecture": "llama", "llama.block_count": 2, "llama.context_length": 64,
...     "llama.embedding_length": 16, "llama.feed_forward_length": 32, "llama.attention.head_count": 4,
...     "llama.attention.head_count_kv": 2, "llama.attention.layer_norm_rms_epsilon": 1e-5}, vocab_size=100)
>>> cfg.head_dim, cfg.kv_dim, cfg.rope_theta, cfg.group_size
(4, 8, 10000.0, 2)
>>> cfg.tensor_shapes()["blk.1.attn_k.weight"]
(8, 16)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ModelFileError

__all__ = ["LlamaConfig"]


@dataclass(frozen=True)
class LlamaConfig:
    """A llama decoder's shape: embedding, ``num_layers`` blocks (RMSNorm, grouped-query attention with RoPE,
    SiLU-gated MLP), final RMSNorm and output head."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_dim: int
    rope_theta: float
    rms_norm_eps: float
    context_length: int
    tie_word_embeddings: bool = True

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any], vocab_size: int | None = None,
                           tie_word_embeddings: bool = True, source: str = "GGUF file") -> LlamaConfig:
        """The config of ``metadata`` (GGUF key -> value); ``vocab_size`` is used when the file has no
        ``<arch>.vocab_size`` (pass the number of tokens)."""
        arch = metadata.get("general.architecture", "llama")

        def get(key: str, default: Any = None) -> Any:
            full = f"{arch}.{key}"
            if full in metadata:
                return metadata[full]
            if default is None:
                raise ModelFileError(f"{source} has no {full!r} entry (a {arch} model needs it)")
            return default

        hidden = _count(source, f"{arch}.embedding_length", get("embedding_length"))
        heads = _count(source, f"{arch}.attention.head_count", get("attention.head_count"))
        if hidden % heads:
            raise ModelFileError(f"{source}: {arch}.embedding_length {hidden} is not a multiple of "
                                 f"{arch}.attention.head_count {heads}")
        kv_heads = _count(source, f"{arch}.attention.head_count_kv", get("attention.head_count_kv", heads))
        if heads % kv_heads:
            raise ModelFileError(f"{source}: {arch}.attention.head_count {heads} is not a multiple of "
                                 f"{arch}.attention.head_count_kv {kv_heads}")
        head_dim = _count(source, f"{arch}.attention.key_length", get("attention.key_length", hidden // heads))
        rope_dim = _count(source, f"{arch}.rope.dimension_count", get("rope.dimension_count", head_dim))
        if rope_dim > head_dim or rope_dim % 2:
            raise ModelFileError(f"{source}: {arch}.rope.dimension_count {rope_dim} must be even and at most "
                                 f"the head size {head_dim}")
        return cls(
            vocab_size=_count(source, f"{arch}.vocab_size", get("vocab_size", vocab_size)),
            hidden_size=hidden,
            intermediate_size=_count(source, f"{arch}.feed_forward_length", get("feed_forward_length")),
            num_layers=_count(source, f"{arch}.block_count", get("block_count")),
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            rope_dim=rope_dim,
            rope_theta=float(get("rope.freq_base", 10000.0)),
            rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
            context_length=_count(source, f"{arch}.context_length", get("context_length")),
            tie_word_embeddings=tie_word_embeddings,
        )

    @property
    def kv_dim(self) -> int:
        """Width of the K and V projections: ``num_kv_heads * head_dim``."""
        return self.num_kv_heads * self.head_dim

    @property
    def group_size(self) -> int:
        """Query heads sharing one KV head."""
        return self.num_heads // self.num_kv_heads

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Numpy shape of each weight, by GGUF tensor name (matrices are ``[out_features, in_features]``)."""
        h, f, q, kv = self.hidden_size, self.intermediate_size, self.num_heads * self.head_dim, self.kv_dim
        shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (self.vocab_size, h), "output_norm.weight": (h,)}
        if not self.tie_word_embeddings:
            shapes["output.weight"] = (self.vocab_size, h)
        for i in range(self.num_layers):
            shapes.update({
                f"blk.{i}.attn_norm.weight": (h,),
                f"blk.{i}.attn_q.weight": (q, h),
                f"blk.{i}.attn_k.weight": (kv, h),
                f"blk.{i}.attn_v.weight": (kv, h),
                f"blk.{i}.attn_output.weight": (h, q),
                f"blk.{i}.ffn_norm.weight": (h,),
                f"blk.{i}.ffn_gate.weight": (f, h),
                f"blk.{i}.ffn_up.weight": (f, h),
                f"blk.{i}.ffn_down.weight": (h, f),
            })
        return shapes


def _count(source: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ModelFileError(f"{source}: {key} must be a positive integer, got {value!r}")
    value = int(value)
    if value <= 0:
        raise ModelFileError(f"{source}: {key} must be a positive integer, got {value}")
    return value
