"""The BERT encoder (Devlin et al.; Hugging Face ``BertModel``) as an :class:`~workbench.frontend.nn.Module`.

``BertModel(config).export(bert_specs())`` is the graph function
``forward(input_ids, attention_mask, *params)`` with symbolic ``batch`` and ``seq``, returning the last
hidden state ``[batch, seq, hidden]``::

    x = LayerNorm(word_emb[ids] + pos_emb[0..seq) + type_emb[0])
    for each layer:
        a = LayerNorm(x + Dense(MultiHeadSelfAttention(x, mask)))
        x = LayerNorm(a + Dense(act(Dense(a))))

Padded keys are hidden by an additive mask: 0 where ``attention_mask`` is 1, the most negative float32
where it is 0 (as Hugging Face does). Parameter names are the checkpoint's canonical names
(:meth:`~workbench.frontend.config.BertConfig.weight_shapes`). Token type ids are all 0 (single-sentence
input).

>>> from workbench.frontend.config import BertConfig
>>> cfg = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
...                  intermediate_size=16, max_position_embeddings=12)
>>> mod, params = BertModel(cfg).export(bert_specs())
>>> f = mod["forward"]
>>> [p.type for p in f.params[:2]], f.ret_type
([Tensor((batch, seq), "int64"), Tensor((batch, seq), "int64")], Tensor((batch, seq, 8), "float32"))
>>> [name for name, _ in params] == list(cfg.weight_shapes())
True
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..ir.expr import PrimExpr
from ..ir.graph.expr import Expr
from ..ir.graph.script import const, op, size_var
from ..ir.graph.types import TensorType
from . import nn
from .config import BertConfig

__all__ = ["BertModel", "bert_specs", "BATCH", "SEQ"]

#: names of the symbolic dimensions of the inputs
BATCH, SEQ = "batch", "seq"

#: the graph-level activation of each config.json ``hidden_act``
_ACTIVATIONS = {
    "gelu": lambda x: nn.gelu(x, approximate="none"),
    "gelu_new": lambda x: nn.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate="tanh"),
    "relu": nn.relu,
}


def bert_specs(ids_dtype: str = "int64") -> dict[str, dict[str, TensorType]]:
    """The export spec of :class:`BertModel`: ``forward(input_ids, attention_mask)``, both ``[batch, seq]``."""
    return {"forward": {"input_ids": nn.spec((BATCH, SEQ), ids_dtype),
                        "attention_mask": nn.spec((BATCH, SEQ), ids_dtype)}}


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: Expr) -> Expr:
        words = self.word_embeddings(input_ids)
        positions = nn.te_op(first_rows, self.position_embeddings.weight, size_var(SEQ), name_hint="position_rows")
        token_type = op.strided_slice(self.token_type_embeddings.weight, axes=[0], begin=[0], end=[1])
        return self.LayerNorm(op.add(op.add(words, positions), token_type))


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.num_heads, self.head_dim = cfg.num_attention_heads, cfg.head_dim

    def forward(self, x: Expr, key_bias: Expr) -> Expr:
        q, k, v = (self._heads(proj(x)) for proj in (self.query, self.key, self.value))
        context = op.scaled_dot_product_attention(q, k, v, key_bias)
        merged = op.permute_dims(context, axes=[0, 2, 1, 3])
        return op.reshape(merged, shape=(size_var(BATCH), size_var(SEQ), self.num_heads * self.head_dim))

    def _heads(self, x: Expr) -> Expr:
        """``[batch, seq, hidden]`` -> ``[batch, heads, seq, head_dim]``."""
        split = op.reshape(x, shape=(size_var(BATCH), size_var(SEQ), self.num_heads, self.head_dim))
        return op.permute_dims(split, axes=[0, 2, 1, 3])


class BertDenseNorm(nn.Module):
    """``LayerNorm(residual + Dense(x))``: BERT's attention output and FFN output blocks."""

    def __init__(self, in_features: int, cfg: BertConfig):
        self.dense = nn.Linear(in_features, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: Expr, residual: Expr) -> Expr:
        return self.LayerNorm(op.add(residual, self.dense(x)))


class BertAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        setattr(self, "self", BertSelfAttention(cfg))      # the checkpoint calls it attention.self
        self.output = BertDenseNorm(cfg.hidden_size, cfg)

    def forward(self, x: Expr, key_bias: Expr) -> Expr:
        return self.output(getattr(self, "self")(x, key_bias), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: BertConfig):
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.activation = _ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: Expr) -> Expr:
        return self.activation(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig):
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertDenseNorm(cfg.intermediate_size, cfg)

    def forward(self, x: Expr, key_bias: Expr) -> Expr:
        a = self.attention(x, key_bias)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig):
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.num_hidden_layers)])

    def forward(self, x: Expr, key_bias: Expr) -> Expr:
        for layer in self.layer:
            x = layer(x, key_bias)
        return x


class BertModel(nn.Module):
    """The BERT encoder of ``config``; ``forward(input_ids, attention_mask)`` -> last hidden state."""

    def __init__(self, config: BertConfig):
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)

    def forward(self, input_ids: Expr, attention_mask: Expr) -> Expr:
        return self.encoder(self.embeddings(input_ids), additive_key_mask(attention_mask))


def first_rows(table: te.Tensor, count: PrimExpr) -> te.Tensor:
    """Rows ``0 .. count-1`` of ``table`` (clamped to its last row): the position embeddings of a sequence.

    A tensor program because ``strided_slice`` takes only integer bounds, and ``count`` is the symbolic
    sequence length.
    """
    last = table.shape[0] - 1
    return te.compute((count, table.shape[1]), lambda i, j: table[te.min(i, last), j], name="position_rows")


def additive_key_mask(attention_mask: Expr) -> Expr:
    """``[batch, seq]`` 1/0 mask -> ``[batch, 1, 1, seq]`` float32 bias: 0 for real keys, the most negative
    float32 for padding (``(mask - 1) * float32 max``)."""
    as_float = op.astype(attention_mask, dtype="float32")
    most = const(float(np.finfo(np.float32).max), "float32")
    bias = op.multiply(op.subtract(as_float, const(1.0, "float32")), most)
    return op.expand_dims(bias, axis=[1, 2])
