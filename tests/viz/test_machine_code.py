"""Issue 15, beyond the anchors: program <-> machine code (debug locations), cost heat map, benchmark links."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.llvm.codegen import ModuleCodegen
from workbench.tuning.benchmark import BenchmarkResult, VariantResult
from workbench.tuning.timing import Timing
from workbench.viz.benchmark_view import BenchmarkWidget, benchmark_html
from workbench.viz.cost import program_cost
from workbench.viz.loop_tree import loop_tree
from workbench.viz.machine_code import machine_code, node_locations
from workbench.viz.widgets import ProgramWidget, ScheduleWidget

AVX2 = "llvm -mcpu=znver3"
M, N, K = 16, 32, 8


def matmul():
    A = te.placeholder((M, K), "float32", name="A")
    B = te.placeholder((K, N), "float32", name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def tiled():
    sch = wb.Schedule(matmul())
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 8])
    sch.reorder(i, jo, k, ji)
    sch.vectorize(ji)
    return sch


def test_a_loops_assembly_lines_exist_and_map_back_to_it():
    sch = tiled()
    mc = machine_code(sch, target=AVX2)
    i_lines = mc.lines_of("loop-i", "asm")
    c_lines = mc.lines_of("block-C", "asm")
    assert c_lines and set(c_lines) < set(i_lines)             # the block is inside loop i
    assert set(mc.lines_of("loop-k", "asm")) == set(c_lines)   # k (8 trips) is unrolled by LLVM: only its body
    assert all(mc.node_of("asm", n) == "block-C" for n in c_lines)
    assert any("vfmadd" in mc.asm[n][0] or "vmulps" in mc.asm[n][0] for n in c_lines)  # the update's math
    own = [mc.asm[n][0].split()[0] for n in i_lines if mc.node_of("asm", n) == "loop-i"]
    assert own and own[-1].startswith("j")                     # loop i's latch: its counter and branch
    # the IR side: the block's float math is located at the block
    assert any(" fmul " in mc.ir[n][0] or "fma" in mc.ir[n][0] for n in mc.lines_of("block-C", "ir"))
    tree_ids = {d for d in (loop_tree(sch.func).nodes)}
    assert {nid for _, nid in mc.asm if nid} <= tree_ids


def test_a_vectorized_loop_has_its_bodys_lines():
    mc = machine_code(tiled(), target=AVX2)
    assert mc.lines_of("loop-j_1", "asm") == mc.lines_of("block-C", "asm")  # lowering removed the loop itself
    assert any("ymm" in mc.asm[n][0] for n in mc.lines_of("loop-j_1", "asm"))


def test_loops_of_one_grid_line_get_distinct_locations():
    tree = loop_tree(matmul())
    locs = node_locations(tree)
    assert locs["loop-i"][0] == locs["loop-j"][0] == locs["loop-k"][0]   # `for i, j, k in wb.grid(...)`
    assert len({locs[n] for n in ("loop-i", "loop-j", "loop-k")}) == 3


def test_unknown_node_names_the_nodes():
    mc = machine_code(matmul(), target=AVX2)
    with pytest.raises(KeyError, match="no loop or block 'loop-zz'.*block-C"):
        mc.lines_of("loop-zz")


def test_debug_locations_are_off_in_ordinary_builds():
    assert ModuleCodegen("m").debug_locations is None
    f = wb.build(matmul(), target=AVX2)
    assert "!dbg" not in f.source("ll-raw") and ".loc" not in f.source("asm")
    a, b = np.random.rand(M, K).astype("float32"), np.random.rand(K, N).astype("float32")
    c = np.zeros((M, N), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)


def test_machine_code_refuses_gpu_targets_and_graphs():
    with pytest.raises(ValueError, match="CPU code"):
        machine_code(matmul(), target="cuda")
    with pytest.raises(TypeError, match="needs a tensor program"):
        machine_code(42)


def test_heat_map_counts_match_a_hand_count_of_matmul():
    for prog in (matmul(), tiled()):
        cost = program_cost(prog)
        assert cost["block-C"]["flops"] == 2 * M * N * K
        # per update: load C, A, B and store C (4 floats); the init stores C once per (i, j)
        assert cost["block-C"]["bytes"] == 4 * 4 * M * N * K + 4 * M * N
        assert all(v["flops_share"] == 1.0 for v in cost.values())


def test_heat_map_shares_of_two_blocks():
    A = te.placeholder((M, K), "float32", name="A")
    B = te.placeholder((K, N), "float32", name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    D = te.compute((M, N), lambda i, j: te.max(C[i, j], 0.0), name="D")
    cost = program_cost(wb.create_prim_func([A, B, D]))
    total = 2 * M * N * K + M * N
    assert cost["block-D"]["flops"] == M * N and cost["block-D"]["bytes"] == 8 * M * N
    assert cost["block-C"]["flops_share"] == pytest.approx(2 * M * N * K / total)
    assert cost["block-D"]["flops_share"] + cost["block-C"]["flops_share"] == pytest.approx(1.0)


def test_schedule_widget_overlays_follow_the_step():
    sch = tiled()
    w = ScheduleWidget(sch, cost=True, machine_code=True, target=AVX2, measured=2e-3)
    assert w.cost["measured_ms"] == pytest.approx(2.0)
    assert w.cost["gflops"] == pytest.approx(2 * M * N * K / 2e-3 / 1e9)
    assert "block-C" in {n for _, n in w.machine["asm"] if n} and "loop-j_1" in w.cost["nodes"]
    vector_code = "\n".join(t for t, _ in w.machine["asm"])
    w.step = 0
    assert {n for _, n in w.machine["asm"] if n} <= {"loop-i", "loop-j", "loop-k", "block-C"}
    assert "loop-j_1" not in w.cost["nodes"] and "loop-j" in w.cost["nodes"]
    assert "\n".join(t for t, _ in w.machine["asm"]) != vector_code
    assert ProgramWidget(matmul()).machine == {}  # computed only when switched on


def test_machine_code_panel_says_why_there_is_no_code():
    w = ProgramWidget(matmul(), machine_code=True, target="cuda")
    assert "CPU code" in w.machine["error"]


def _result() -> BenchmarkResult:
    def timing(med):
        return Timing(median=med, p10=med, p90=med, mean=med, repeats=5, number=1)

    rows = [VariantResult("naive", "program", timing=timing(4e-3), flops=2 * M * N * K, bytes=1e4),
            VariantResult("tiled", "program", timing=timing(1e-3), flops=2 * M * N * K, bytes=1e4),
            VariantResult("numpy", "callable", timing=timing(5e-4))]
    return BenchmarkResult(rows, "naive", "naive", None, "llvm", 2 * M * N * K, 1e4)


def test_each_benchmark_row_opens_its_variant_with_the_measured_time():
    variants = {"naive": matmul(), "tiled": tiled(), "numpy": lambda a, b, c: np.matmul(a, b, out=c)}
    w = BenchmarkWidget(_result(), variants)
    assert [r["program"] for r in w.rows] == [True, True, False]
    assert w.variant == "naive" and w.cost["measured_ms"] == pytest.approx(4.0)
    w.variant = "tiled"
    assert "tiled" in w.program["title"] and w.cost["measured_ms"] == pytest.approx(1.0)
    assert "loop-j_1" in w.cost["nodes"]
    w.variant = "numpy"
    assert w.program["tree"] is None
    html = benchmark_html(_result(), variants)
    assert 'href="#wb-variant-tiled"' in html and 'id="wb-variant-tiled"' in html and 'href="#wb-variant-numpy"' not in html
    with pytest.raises(KeyError, match="'other' is not a variant"):
        BenchmarkWidget(_result(), {"other": matmul()})
