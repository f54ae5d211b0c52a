"""Every tutorial in notebooks/ runs top to bottom without an error, in small mode.

Each notebook is executed with nbclient in an ipykernel of this Python (the .venv),
with ``WB_TUTORIAL_SMALL=1`` so its first cell picks small sizes. A check cell is
appended that prints a JSON line (``WB_CHECK {...}``) with values read back from the
notebook's variables; the test asserts on those and on the outputs (tables, figures).

One test per notebook (parametrized), so ``pytest -n 2`` spreads them over both workers;
they are the slowest tests of the suite (each tens of seconds: a kernel start, LLVM
builds and timings).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9]*.ipynb"))
CELL_TIMEOUT = 240  # seconds per cell (small mode needs a few at most)

# code appended to each notebook: print values for the assertions below
CHECKS = {
    "01_tensor_programs": """
import json
print("WB_CHECK " + json.dumps({
    "N": N, "err_interp": float(np.abs(c - a @ b).max()), "err_built": float(np.abs(c2 - a @ b).max()),
    "statuses": list(res.table["status"]), "has_fma": any(i.startswith("vfmadd") for i in instructions)
        or any(i.split()[0].startswith(("vmul", "mul")) for i in instructions)}))
""",
    "02_optimizing_matmul_cpu": """
import json
print("WB_CHECK " + json.dumps({
    "N": N, "history": history.reset_index().to_dict(orient="list"),
    "final_status": list(final.table["status"]), "final_columns": list(final.table.columns),
    "trace": str(sch.trace), "figs": [type(fig_bar).__name__, type(fig_roof).__name__]}))
""",
    "03_fusion_and_compute_location": """
import json
print("WB_CHECK " + json.dumps({
    "blocks_before": blocks_before, "blocks_after": blocks_after,
    "statuses": list(res.table["status"]), "variants": list(res.table["variant"])}))
""",
    "04_tensorize": """
import json
print("WB_CHECK " + json.dumps({
    "intrin": INTRIN, "statuses": list(res.table["status"]), "variants": list(res.table["variant"]),
    "speedup": float(res[TENSORIZED].timing.median and res[PLAIN].timing.median / res[TENSORIZED].timing.median),
    "tensorized_script": sch_t.func.script()}))
""",
    "08_auto_tuning": """
import json
print("WB_CHECK " + json.dumps({
    "N": N, "replayed_equal": bool(structural_equal(replayed.func, sch.func)), "hand": len(found),
    "fn_ok": int(result_fn.table["ok"].sum()), "rules_ok": int(result.table["ok"].sum()),
    "best_trace": str(best.trace), "best_matches": bool(structural_equal(best.schedule.func,
                                                                          best.trace.apply(matmul).func)),
    "again_from_db": int(again.table["from_database"].sum()), "kernel_attrs": sorted(tuned_model[kernel_name].attrs),
    "model_err": model_err, "fig": type(fig_tune).__name__}))
""",
    "07_gpu": """
import json
print("WB_CHECK " + json.dumps({
    "N": N, "vadd_err": vadd_err, "wsum_err": wsum_err, "wsum_src": wsum_src, "reg_src": reg_src,
    "variants": list(final.table["variant"]), "statuses": list(final.table["status"]),
    "naive_status": list(res_naive.table["status"]), "cuda_extra": HAS_CUDA_EXTRA, "gpu": HAS_GPU,
    "wmma_lines": len(wmma_lines), "tc_err": tc_err, "fig": type(fig_bar).__name__}))
""",
    "06_llm": """
import json
print("WB_CHECK " + json.dumps({
    "kernel": KERNEL, "unfused": unfused_names, "launches": launches, "hand_err": hand_err,
    "hand_params": hand_params, "hand_float_weight": hand_float_weight, "same_as_library": bool(same_as_library),
    "variants": list(res.table["variant"]), "statuses": list(res.table["status"]), "times": times,
    "text": text, "ids_workbench": ids_workbench, "ids_numpy": ids_numpy, "logits_err": logits_err,
    "new_tokens": NEW_TOKENS, "answer": answer, "chat_stats": chat_stats,
    "profile_kernels": list(profile["kernel"]), "profile_share": float(profile["share"].sum()),
    "fig": type(fig_bar).__name__}))
""",
    "05_end_to_end_model": """
import json
print("WB_CHECK " + json.dumps({
    "mlp_errors": mlp_errors, "launches": [launches_before, launches_after],
    "per_layer": [per_layer_before, per_layer_after], "err_hand": err_hand, "err_api": err_api,
    "profile_kernels": list(profile["kernel"]), "profile_share": float(profile["share"].sum()),
    "hand_attrs": sorted(hand[KERNEL].attrs), "hand_script": hand[KERNEL].script(),
    "speed": speed, "kernel_ms": [hand_ms, default_ms], "after_fusion": sorted(fused.prim_funcs)}))
""",
}


def _run(path: Path, monkeypatch) -> tuple[object, dict]:
    monkeypatch.setenv("WB_TUTORIAL_SMALL", "1")
    # figures as inline PNGs in the outputs, as in Jupyter (conftest sets Agg for the tests themselves)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name} is committed with outputs; run notebooks/_build.py"
    check = CHECKS.get(path.stem)
    if check:
        nb.cells.append(nbformat.v4.new_code_cell(check))
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError (with the cell's traceback) on any error
    values = {}
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith("WB_CHECK "):
                values = json.loads(line[len("WB_CHECK "):])
    if check:
        assert values, f"{path.name}: the check cell printed nothing"
    return nb, values


def _texts(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _mimes(nb) -> set:
    return {m for cell in nb.cells for out in cell.get("outputs", []) for m in out.get("data", {})}


def test_notebooks_are_there():
    names = [p.stem for p in NOTEBOOKS]
    for want in ("01_tensor_programs", "02_optimizing_matmul_cpu", "03_fusion_and_compute_location"):
        assert want in names, f"notebooks/{want}.ipynb is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nb, v = _run(path, monkeypatch)
    text = _texts(nb)
    mimes = _mimes(nb)
    name = path.stem
    if name == "01_tensor_programs":
        assert v["N"] == 64  # small mode took effect
        assert v["err_interp"] < 1e-3 and v["err_built"] < 1e-3
        assert v["statuses"] == ["ok", "ok"]
        assert "@wb.prim_func" in text and "wb.block(\"C\")" in text
        assert "text/html" in mimes  # the loop-nest view (widget or static fallback)
    elif name == "02_optimizing_matmul_cpu":
        assert v["N"] == 256
        h = v["history"]
        assert h["variant"][0] == "naive" and h["variant"][-1] == "packed B", h["variant"]
        assert all(s == "ok" for s in h["status"]), h
        speed = dict(zip(h["variant"], h["speedup_vs_naive"]))
        # speed belongs in benchmarks/ (it depends on the host and its load): only check it was measured
        assert all(s > 0 for s in speed.values()), speed
        assert all(s == "ok" for s in v["final_status"])
        for col in ("median_ms", "gflops", "pct_of_peak"):
            assert col in v["final_columns"]
        assert "sch.cache_write" in v["trace"] and "sch.transform_layout" in v["trace"]
        assert v["figs"] == ["Figure", "Figure"]
        assert "image/png" in mimes  # the bar chart and the roofline were drawn
        # the notebook's schedule is the one the main command (workbench.demo) times
        from workbench.demo import matmul_schedules

        assert str(matmul_schedules(256)["packed B"].trace) == v["trace"]
    elif name == "03_fusion_and_compute_location":
        assert set(v["blocks_before"]) == {"Y", "Z", "C"}
        assert set(v["blocks_after"]) == {"Y", "C"}
        assert all(s == "ok" for s in v["statuses"]), v
        assert "producers of C" in text
    elif name == "04_tensorize":
        assert v["intrin"] in ("dot_u8s8_vnni", "dot_u8s8_avx2")
        assert all(s == "ok" for s in v["statuses"]), v
        assert "call_intrin" in v["tensorized_script"]
        assert v["speedup"] > 0, v   # measured; how much it gains is for benchmarks/int8_matmul_cpu.py
        assert "image/png" in mimes
    elif name == "08_auto_tuning":
        assert v["N"] == 128 and v["replayed_equal"] and v["hand"] == 2
        assert v["fn_ok"] >= 1 and v["rules_ok"] >= 1, v
        assert "sample_perfect_tile" in v["best_trace"] and v["best_matches"]
        assert v["again_from_db"] >= 8, v       # resumed: both earlier runs' measurements came from the file
        assert "tuned" in v["kernel_attrs"], v  # DefaultSchedule replayed the database's trace
        assert v["model_err"] < 1e-3 * 128, v
        assert v["fig"] == "Figure" and "image/png" in mimes
        assert '"insts"' in text or "sample_perfect_tile" in text   # the trace and its JSON were printed
    elif name == "07_gpu":
        assert v["N"] == 256
        assert v["vadd_err"] == 0.0 and v["wsum_err"] < 1e-6, v
        assert "__local float A_shared[66]" in v["wsum_src"] and "barrier(CLK_LOCAL_MEM_FENCE)" in v["wsum_src"]
        # register tiling: shared tiles compacted to one block's 64 x 8 / 8 x 64, one thread's 8 x 8 accumulators
        assert "__local float A_shared[512]" in v["reg_src"] and "float C_local[64]" in v["reg_src"]
        assert v["variants"] == ["numpy", "naive", "shared tiling", "register tiling"], v["variants"]
        assert all(s == "ok" for s in v["statuses"] + v["naive_status"]), v   # each checked against numpy
        assert v["fig"] == "Figure" and "image/png" in mimes
        if v["cuda_extra"]:
            assert v["wmma_lines"] > 0 and "wmma.mma.sync" in text   # the PTX was compiled and shown
        if v["gpu"]:
            assert v["tc_err"] < 1e-2, v
        else:
            assert v["tc_err"] is None and "no NVIDIA GPU and driver on this machine" in text
    elif name == "06_llm":
        # the fused dequantize-matmul kernel of layer 0's gate projection (decode), scheduled by hand
        assert v["kernel"].startswith("fused_decode_q4_linear") and "silu" in v["kernel"], v["kernel"]
        assert [n.startswith(p) for n, p in zip(v["unfused"], ("decode_q4", "linear", "silu"))] == [True] * 3, v
        assert v["launches"][1] < v["launches"][0], v["launches"]          # FuseOps + FuseTIR on decode
        assert v["hand_err"] < 1e-4, v["hand_err"]                          # vs gguf dequantize + np.dot
        assert v["hand_params"][0] == "uint8[1536, 360]", v["hand_params"]  # reads the packed Q4_1 blocks
        assert not v["hand_float_weight"] and v["same_as_library"], v
        assert v["variants"] == ["numpy", "unfused (DefaultSchedule)", "fused, DefaultSchedule", "fused, by hand",
                                 "fused, by hand, SiLU per row"], v["variants"]
        assert all(s == "ok" for s in v["statuses"]), v["statuses"]          # each checked against numpy
        assert all(t > 0 for t in v["times"].values()), v["times"]
        # greedy generation equals the notebook's numpy llama, token for token
        assert v["logits_err"] < 1e-3, v["logits_err"]
        assert v["ids_workbench"] == v["ids_numpy"] and len(v["ids_workbench"]) == v["new_tokens"] == 6, v
        assert v["text"].startswith(" Paris"), v["text"]
        assert "Paris" in v["answer"], v["answer"]                          # chat, streamed
        stats = v["chat_stats"]
        assert stats["generated_tokens"] > 0 and stats["decode_tokens_per_s"] > 0, stats
        assert stats["prefill_tokens_per_s"] > 0 and stats["prompt_tokens"] > 10, stats
        assert "fused_decode_q8_linear" in v["profile_kernels"] and abs(v["profile_share"] - 1.0) < 1e-6
        assert v["fig"] == "Figure" and "image/png" in mimes
        assert "application/vnd.jupyter.widget-view+json" in mimes         # graph and schedule widgets
        assert "wb-static-graph-view" in text
    elif name == "05_end_to_end_model":
        assert max(v["mlp_errors"]) < 1e-4, v["mlp_errors"]        # BlockBuilder and nn.Module MLPs vs numpy
        assert v["launches"] == [130, 82] and v["per_layer"] == [20, 13], v   # FuseOps + FuseTIR
        assert "fused_linear_gelu" in v["after_fusion"]
        assert v["err_hand"] <= 1e-4 and v["err_api"] <= 1e-4, v   # embeddings vs the notebook's numpy BERT
        assert "fused_linear_gelu" in v["profile_kernels"] and abs(v["profile_share"] - 1.0) < 1e-6
        assert "scheduled" in v["hand_attrs"] and "wb.parallel(48)" in v["hand_script"]
        assert "wb.vectorized(32)" in v["hand_script"]
        assert all(x > 0 for x in v["speed"].values()) and all(x > 0 for x in v["kernel_ms"]), v
        assert "wb-static-graph-view" in text          # the graph views' static fallback (exported notebooks)
        assert "kernel launches 130 \u2192 82 (per encoder_layer: 20 \u2192 13)" in text
        assert "application/vnd.jupyter.widget-view+json" in mimes
