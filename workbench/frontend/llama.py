"""The llama decoder as graph functions over a KV cache, with the weights kept as stored in the GGUF file.

:func:`build_llama` makes an :class:`~workbench.ir.function.IRModule` with two graph functions::

    prefill(tokens: (n,) int32, *kv_cache, *params)
        -> (logits: (1, vocab) float32, new_kv: (n, L, 2, kv_heads, head_dim) float32)
    decode(token: (1,) int32, *kv_cache, *params) -> the same with n = 1

``n`` (prompt length) and ``m`` (cached positions) are symbolic. **The KV cache** is ``2 L`` parameters
``k_cache_0, v_cache_0, k_cache_1, ...``, each ``(m, kv_heads, head_dim)`` float32: the keys (after RoPE) and
values of the ``m`` positions already processed, position-major so that the first ``m`` rows of a
preallocated buffer are one contiguous array (the VM takes such a prefix view without copying). One array per
layer (not one ``(m, L, ...)`` tensor) keeps the kernels that read the cache the same for every layer, so they
are compiled once.
The graph IR has no in-place update and the VM allocates every ``call_tir`` output, so the functions do not
write the cache: they return the new positions' rows (``new_kv``, keys after RoPE) and the caller appends
them (:class:`~workbench.frontend.llm.LLM` keeps one buffer allocated for the context limit, grown on
demand, and copies ``new_kv`` into rows ``m:m+n``). The new tokens sit at positions ``m .. m+n-1``: the
rotary embedding reads the offset ``m`` from the cache's shape. ``logits`` are those of the last position.

Per block: RMSNorm -> Q/K/V projections -> RoPE over adjacent pairs ``(x[2i], x[2i+1])`` -> causal
grouped-query ``scaled_dot_product_attention`` of the ``n`` queries over the ``m + n`` keys (bottom-right
aligned mask) -> output projection + residual; RMSNorm -> ``down(silu(gate) * up)`` + residual. Final
RMSNorm and the head (``output.weight``, or the token embedding when tied). The attention is one kernel
per layer (``attention_with_past``): the "cached rows then new rows" keys and values are blocks of that
kernel which its default schedule inlines into the reads (the transposed key copy, the ``p @ v`` sum), so
the cache is read where it lies and never concatenated into a new array.

**Weights** are parameters in the stored form: a quantized matrix (Q4_0, Q4_1, Q8_0) is the ``uint8``
block array and the graph reads it through ``decode_q4``/``decode_q8`` followed by ``linear``; FuseOps
fuses each decode into its matmul (a weight prologue) and :func:`schedule_quantized_matmuls` gives the
fused kernel a schedule that decodes 16 weights at a time in registers (the reduction split by
``rfactor`` into 16 vector lanes): no float copy of a weight matrix is ever allocated. The embedding is
``decode_q8(take(packed_table, tokens))``: only the looked-up rows are decoded. F32 tensors are used as they
are, F16 ones through ``astype``.
"""
from __future__ import annotations

import os
from typing import Sequence

from .. import te
from ..ir.function import IRModule, PrimFunc
from ..ir.graph.expr import Var
from ..ir.graph.ops.quant import Q4_TYPES
from ..ir.graph.types import TensorType
from .gguf_file import GGUFTensor
from .llama_config import LlamaConfig

__all__ = ["build_llama", "param_names", "compile_llama", "schedule_quantized_matmuls", "LLAMA_FUNCTIONS"]

#: the graph functions of the module, in the order they are built
LLAMA_FUNCTIONS = ("prefill", "decode")
_LAYER_WEIGHTS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                  "ffn_down")


def param_names(config: LlamaConfig) -> list[str]:
    """GGUF tensor names of the weight parameters, in the order of the graph functions' ``*params``."""
    names = ["token_embd.weight", "output_norm.weight"]
    if not config.tie_word_embeddings:
        names.append("output.weight")
    for layer in range(config.num_layers):
        names += [f"blk.{layer}.{w}.weight" for w in _LAYER_WEIGHTS]
    return names


def param_type(t: GGUFTensor) -> TensorType:
    """The graph type of a weight as stored: the block array of a quantized tensor, else its float array."""
    dtype = "uint8" if t.is_quantized else {"F32": "float32", "F16": "float16"}[t.quant_type]
    return TensorType(tuple(t.data.shape), dtype)


def kv_cache_type(config: LlamaConfig, length) -> TensorType:
    """The type of one layer's key (or value) cache of ``length`` positions."""
    return TensorType((length, config.num_kv_heads, config.head_dim), "float32")


def build_llama(config: LlamaConfig, tensors: dict[str, GGUFTensor]) -> IRModule:
    """The module with ``prefill`` and ``decode`` (see the module docstring) for ``config`` and the stored
    tensor types of ``tensors`` (GGUF name -> :class:`GGUFTensor`; only names, types and shapes are used)."""
    from ..ir.graph.block_builder import BlockBuilder
    from ..ir.graph.script import size_var

    bb = BlockBuilder()
    m = size_var("m")
    for name, length in (("prefill", size_var("n")), ("decode", 1)):
        tokens = Var("tokens" if name == "prefill" else "token", TensorType((length,), "int32"))
        caches = [Var(f"{kind}_cache_{layer}", kv_cache_type(config, m))
                  for layer in range(config.num_layers) for kind in ("k", "v")]
        weights = {w: Var(_var_name(w), param_type(tensors[w])) for w in param_names(config)}
        with bb.function(name, [tokens, *caches, *weights.values()], attrs={"num_input": 1 + len(caches)}):
            with bb.dataflow():
                logits, new_kv = _Decoder(bb, config, tensors, weights, caches).forward(tokens, length)
                out = (bb.emit_output(logits), bb.emit_output(new_kv))
            bb.emit_func_output(list(out))
    return bb.get()


def _var_name(tensor_name: str) -> str:
    return tensor_name.replace(".weight", "").replace(".", "_")


class _Decoder:
    """Emits one graph function's bindings."""

    def __init__(self, bb, config: LlamaConfig, tensors: dict, weights: dict, caches: list):
        self.bb, self.c, self.tensors, self.weights, self.caches = bb, config, tensors, weights, caches

    def forward(self, tokens: Var, length):
        import workbench as wb

        bb, c = self.bb, self.c
        x = self.embed(tokens)
        new_rows = []
        for layer in range(c.num_layers):
            h = bb.emit(wb.op.rms_norm(x, self.weight(f"blk.{layer}.attn_norm.weight"), eps=c.rms_norm_eps))
            attended, k, v = self.attention(layer, h, length)
            x = bb.emit(wb.op.add(x, attended))
            h = bb.emit(wb.op.rms_norm(x, self.weight(f"blk.{layer}.ffn_norm.weight"), eps=c.rms_norm_eps))
            x = bb.emit(wb.op.add(x, self.mlp(layer, h)))
            new_rows += [k, v]
        last = bb.emit_te(_last_row, x, primfunc_name_hint="last_row")
        h = bb.emit(wb.op.rms_norm(last, self.weight("output_norm.weight"), eps=c.rms_norm_eps))
        head = "token_embd.weight" if c.tie_word_embeddings else "output.weight"
        logits = self.linear(h, head)
        new_kv = bb.emit_te(_stack_kv, new_rows, c.num_layers, primfunc_name_hint="stack_kv")
        return logits, new_kv

    # pieces ------------------------------------------------------------------------------------
    def weight(self, name: str):
        """A float weight (norm vectors): F32 as it is, F16 widened."""
        import workbench as wb

        w = self.weights[name]
        return w if w.type.dtype == "float32" else self.bb.emit(wb.op.astype(w, "float32"))

    def matrix(self, name: str, rows=None):
        """A weight matrix in float32 as the graph sees it: decoded from its blocks (``rows``: only those)."""
        import workbench as wb

        w, qtype = self.weights[name], self.tensors[name].quant_type
        if rows is not None:
            w = self.bb.emit(wb.op.take(w, rows, axis=0))
        if qtype in Q4_TYPES:
            return self.bb.emit(wb.op.decode_q4(w, qtype=qtype))
        if qtype == "Q8_0":
            return self.bb.emit(wb.op.decode_q8(w))
        return w if qtype == "F32" else self.bb.emit(wb.op.astype(w, "float32"))

    def linear(self, x, name: str):
        import workbench as wb

        return self.bb.emit(wb.op.linear(x, self.matrix(name)))

    def embed(self, tokens: Var):
        return self.matrix("token_embd.weight", rows=tokens)

    def attention(self, layer: int, h, length):
        import workbench as wb

        bb, c = self.bb, self.c
        p = f"blk.{layer}."
        q = bb.emit(wb.op.reshape(self.linear(h, p + "attn_q.weight"), shape=(length, c.num_heads, c.head_dim)))
        k = bb.emit(wb.op.reshape(self.linear(h, p + "attn_k.weight"), shape=(length, c.num_kv_heads, c.head_dim)))
        v = bb.emit(wb.op.reshape(self.linear(h, p + "attn_v.weight"), shape=(length, c.num_kv_heads, c.head_dim)))
        k_cache, v_cache = self.caches[2 * layer], self.caches[2 * layer + 1]
        q = bb.emit_te(_rope, q, k_cache, c.rope_theta, c.rope_dim, primfunc_name_hint="rope")
        k = bb.emit_te(_rope, k, k_cache, c.rope_theta, c.rope_dim, primfunc_name_hint="rope")
        out = bb.emit_te(_attention_with_past, q, k, v, k_cache, v_cache, primfunc_name_hint="attention_with_past")
        out = bb.emit(wb.op.reshape(bb.emit(wb.op.permute_dims(out, axes=(0, 2, 1, 3))),
                                    shape=(length, c.num_heads * c.head_dim)))
        return self.linear(out, p + "attn_output.weight"), k, v

    def mlp(self, layer: int, h):
        import workbench as wb

        p = f"blk.{layer}."
        gate = self.linear(h, p + "ffn_gate.weight")
        up = self.linear(h, p + "ffn_up.weight")
        act = self.bb.emit(wb.op.multiply(self.bb.emit(wb.op.silu(gate)), up))
        return self.linear(act, p + "ffn_down.weight")


# te kernels ------------------------------------------------------------------------------------

def _rope(x: te.Tensor, cache: te.Tensor, theta: float, rope_dim: int) -> te.Tensor:
    """RoPE over adjacent pairs of ``x [n, heads, d]`` at positions ``m + i`` (``m``: cached positions);
    angles in float64 (``pos * theta ** (-2i / rope_dim)``), as the reference."""
    m = cache.shape[0]
    f64, f32 = "float64", "float32"

    def rotated(i, h, e):
        pair = e // 2
        angle = te.cast(m + i, f64) * te.pow(te.const(float(theta), f64),
                                             te.cast(pair, f64) * te.const(-2.0 / rope_dim, f64))
        cos, sin = te.cast(te.cos(angle), f32), te.cast(te.sin(angle), f32)
        even = e % 2 == 0
        partner = te.if_then_else(even, x[i, h, e + 1 - 2 * (e % 2)] * (0.0 - sin),
                                  x[i, h, e + 1 - 2 * (e % 2)] * sin)
        value = x[i, h, e] * cos + partner
        return value if rope_dim == x.shape[2] else te.if_then_else(e < rope_dim, value, x[i, h, e])

    return te.compute(x.shape, rotated, name="rope")


def _with_past(cache: te.Tensor, new: te.Tensor, name: str) -> te.Tensor:
    """One layer's keys or values: the ``m`` cached rows then the ``n`` new ones, in the attention layout
    ``[1, kv_heads, m + n, d]`` (a block of the attention kernel, which reads the cache in place)."""
    m, n = cache.shape[0], new.shape[0]
    kvh, d = new.shape[1], new.shape[2]
    return te.compute((1, kvh, m + n, d), lambda b, h, t, e: te.if_then_else(
        t < m, cache[t, h, e], new[t - m, h, e]), name=name)


def _attention_with_past(q: te.Tensor, k: te.Tensor, v: te.Tensor, k_cache: te.Tensor,
                         v_cache: te.Tensor) -> te.Tensor:
    """Causal grouped-query attention of the ``n`` queries ``q [n, heads, d]`` over the cached keys and values
    then the new ones (``k``, ``v`` ``[n, kv_heads, d]``): ``[1, heads, n, d]``. One kernel: the cache
    rows and the new rows are put together by blocks (``keys_with_past``, ``values_with_past``) that the
    attention schedule inlines into its reads, so the cache is read where it is, never copied."""
    from ..ir.graph.op import get_op

    n, heads, d = q.shape
    query = te.compute((1, heads, n, d), lambda b, h, i, e: q[i, h, e], name="query")
    keys, values = _with_past(k_cache, k, "keys_with_past"), _with_past(v_cache, v, "values_with_past")
    return get_op("scaled_dot_product_attention").legalize([query, keys, values], {"causal": True})


def _stack_kv(rows: Sequence[te.Tensor], layers: int) -> te.Tensor:
    """The new positions' keys and values ``[n, layers, 2, kv_heads, d]`` from ``[k_0, v_0, k_1, v_1, ...]``."""
    n, kvh, d = rows[0].shape

    def body(t, layer, which, h, e):
        k = layer * 2 + which

        def pick(lo: int, hi: int):   # rows[lo:hi] by halving: log2(2 * layers) tests per element, not 2 * layers
            if hi - lo == 1:
                return rows[lo][t, h, e]
            mid = (lo + hi) // 2
            return te.if_then_else(k < mid, pick(lo, mid), pick(mid, hi))
        return pick(0, len(rows))

    return te.compute((n, layers, 2, kvh, d), body, name="stack_kv")


def _last_row(x: te.Tensor) -> te.Tensor:
    n = x.shape[0]
    return te.compute((1, x.shape[1]), lambda _, c: x[n - 1, c], name="last_row")


# compiling -------------------------------------------------------------------------------------

def compiled_path(mod: IRModule, target: str = "llvm", activations: str = "float32") -> str | None:
    """Where :func:`compile_llama` keeps ``mod`` compiled for ``target`` (None with the disk cache off)."""
    from ..backend.cache import disk_enabled
    from . import model
    from .int8_decode import check_activations

    check_activations(activations)
    if not disk_enabled():
        return None
    suffix = "" if activations == "float32" else f"-{activations}"
    key = model._cache_key(mod, target)     # covers the whole package's sources, these schedules included
    return os.path.join(model.cache_dir(), f"llama-{key}{suffix}.py")


def compile_llama(mod: IRModule, target: str = "llvm", activations: str = "float32") -> IRModule:
    """LegalizeOps, FuseOps, FuseTIR, :func:`schedule_quantized_matmuls`, DefaultSchedule,
    StaticPlanBlockMemory; the result kept on disk as :func:`workbench.frontend.model.compile_module` does.
    ``activations="int8"``: the decode step's Q4_1 matrix-vector kernels quantize their activation to 8 bits,
    as llama.cpp does (:mod:`workbench.frontend.int8_decode`)."""
    from . import model

    passes = _passes(target, activations)
    path = compiled_path(mod, target, activations)
    if path is None:
        return passes(mod)
    cached = model._read_cached(path)
    if cached is not None:
        return cached
    compiled = passes(mod)
    model._write_cached(path, compiled.script())
    return compiled


def _passes(target: str, activations: str = "float32"):
    from .. import transform
    from .int8_decode import use_int8_decode

    int8 = [lambda mod: use_int8_decode(mod, target)] if activations == "int8" else []
    return transform.Sequential([transform.LegalizeOps(), transform.FuseOps(), transform.FuseTIR(), *int8,
                                 lambda mod: schedule_quantized_matmuls(mod, target),
                                 transform.DefaultSchedule(target), transform.StaticPlanBlockMemory()])


def schedule_quantized_matmuls(mod: IRModule, target: str = "llvm") -> IRModule:
    """Every fused kernel that decodes a weight into a ``linear`` scheduled by :func:`schedule_decode_linear`
    (marked ``"scheduled"`` so DefaultSchedule leaves it); other kernels unchanged."""
    funcs = dict(mod.functions)
    for name, func in mod.prim_funcs.items():
        if _decode_blocks(func) and _linear_block(func):
            funcs[name] = schedule_decode_linear(func, target)
    return mod.replace(functions=funcs)


def _block_names(func: PrimFunc) -> list[str]:
    from ..schedule.state import Schedule

    return [n for n in Schedule(func).index().order if n != "root"]


def _decode_blocks(func: PrimFunc) -> list[str]:
    return [n for n in _block_names(func) if n.startswith(("decode_q4", "decode_q8"))]


def _linear_block(func: PrimFunc) -> str | None:
    return next((n for n in _block_names(func) if n == "linear"), None)


def schedule_decode_linear(func: PrimFunc, target: str = "llvm") -> PrimFunc:
    """The fused ``decode + linear (+ epilogue)`` kernel scheduled for matrix-vector and matrix-matrix shapes:
    the decode inlined into the matmul (so the kernel reads the packed bytes), the reduction split
    ``k -> (block, half, lane)`` with ``lane`` (16 weights that share their bytes' positions) factored out by
    ``rfactor`` into a local accumulator vector, the output rows and columns fused and parallel."""
    from ..backend.target import Target
    from ..schedule.state import Schedule

    lanes = 16 if Target(target).vector_lanes("float32") >= 16 else 8
    sch = Schedule(func)
    for name in _decode_blocks(func):
        sch.compute_inline(sch.get_block(name))
    block = sch.get_block("linear")
    i, j, k = sch.get_loops(block)
    _, _, lane = sch.split(k, factors=[None, 32 // lanes, lanes])
    rf = sch.rfactor(lane, factor_axis=2)
    oi, oj, _ = sch.get_loops(sch.get_block("linear"))
    sch.compute_at(rf, oj)
    loops = sch.get_loops(rf)
    sch.reorder(loops[-2], loops[-1], loops[-3])
    sch.decompose_reduction(rf, sch.get_loops(rf)[2])
    sch.vectorize(sch.get_loops(rf)[-1])
    sch.set_scope(rf, 0, "local")
    sch.parallel(sch.fuse(oi, oj))
    return sch.func.with_attr("scheduled", True)

