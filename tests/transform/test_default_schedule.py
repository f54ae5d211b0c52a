"""DefaultSchedule: every kernel of a module scheduled by kind, computing what numpy computes."""
import warnings

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend.lower import VectorizeWarning
from workbench.ir.graph.op import get_op
from workbench.schedule.errors import ScheduleError
from workbench.transform.default_schedule import DefaultSchedule, loops_of, schedule_kernel

AVX2 = "llvm -mcpu=znver3"


def op_kernel(name, shapes, **attrs):
    """The op's legalization as a PrimFunc over placeholders ``x0, x1, ...`` of ``shapes``."""
    ph = [te.placeholder(s, "float32", name=f"x{i}") for i, s in enumerate(shapes)]
    out = get_op(name).legalize(ph, attrs)
    return wb.create_prim_func(ph + (out if isinstance(out, list) else [out]))


def fused_matmul_bias_gelu(m, k, n):
    """``gelu(x @ w + b)`` as one te chain: a matmul block, an add block and a gelu block."""
    x = te.placeholder((m, k), "float32", name="x")
    w = te.placeholder((k, n), "float32", name="w")
    b = te.placeholder((n,), "float32", name="b")
    r = te.reduce_axis(k, name="r")
    mm = te.compute((m, n), lambda i, j: te.sum(x[i, r] * w[r, j], axis=r), name="mm")
    add = te.compute((m, n), lambda i, j: mm[i, j] + b[j], name="add")
    out = get_op("gelu").legalize([add], {})
    return wb.create_prim_func([x, w, b, out])


def kinds(func):
    return [str(f.kind) for f in loops_of(func)]


def run(func, inputs, out_shape):
    out = np.zeros(out_shape, "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", VectorizeWarning)   # DefaultSchedule never leaves a loop the
        wb.build(func, target="llvm")(*inputs, out)         # code generator keeps scalar
    return out


def data(rng, *shapes):
    return [rng.standard_normal(s).astype("float32") for s in shapes]


# (op, symbolic shapes, concrete shapes of one call, attrs)
N = wb.var("n")
CASES = {
    "matmul_sym": ("matmul", [(N, 64), (64, 48)], [(37, 64), (64, 48)], {}),
    "matmul_odd": ("matmul", [(13, 20), (20, 100)], [(13, 20), (20, 100)], {}),
    "matmul_batch": ("matmul", [(2, N, 16), (16, 40)], [(2, 9, 16), (16, 40)], {}),
    "linear": ("linear", [(N, 24), (32, 24), (32,)], [(10, 24), (32, 24), (32,)], {}),
    "layer_norm": ("layer_norm", [(N, 40), (40,), (40,)], [(7, 40), (40,), (40,)], {"axes": [-1]}),
    "softmax": ("softmax", [(2, N, 24)], [(2, 5, 24)], {"axis": -1}),
    "sum_axis0": ("sum", [(N, 100)], [(13, 100)], {"axis": [0]}),
    "gelu_odd": ("gelu", [(N, 13)], [(11, 13)], {}),
    "permute": ("permute_dims", [(N, 8, 12)], [(3, 8, 12)], {"axes": [1, 0, 2]}),
    "sdpa": ("scaled_dot_product_attention", [(1, 2, N, 16)] * 3, [(1, 2, 9, 16)] * 3, {"causal": True}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_scheduled_op_kernels_match_numpy(case, rng):
    name, sym_shapes, shapes, attrs = CASES[case]
    func = op_kernel(name, sym_shapes, **attrs)
    mod = DefaultSchedule(AVX2)(wb.IRModule({"k": func}))
    scheduled = mod["k"]
    assert scheduled.attrs["scheduled"] is True
    assert "parallel" in kinds(scheduled) or "vectorized" in kinds(scheduled)
    inputs = data(rng, *shapes)
    expect = np.asarray(get_op(name).reference(inputs, attrs))
    np.testing.assert_allclose(run(scheduled, inputs, expect.shape), expect, rtol=1e-4, atol=1e-4)


def test_fused_matmul_epilogue_is_inlined_into_the_register_tile(rng):
    func = fused_matmul_bias_gelu(13, 32, 48)
    scheduled = DefaultSchedule(AVX2)(wb.IRModule({"f": func}))["f"]
    blocks = []
    wb.ir.functor.post_order_visit(scheduled.body, lambda n: blocks.append(n.name)
                                   if isinstance(n, wb.ir.stmt.Block) else None)
    assert "add" not in blocks and "mm_local" in blocks          # bias inlined, accumulator cached
    assert "parallel" in kinds(scheduled) and "vectorized" in kinds(scheduled)
    x, w, b = data(rng, (13, 32), (32, 48), (48,))
    y = x @ w + b
    expect = 0.5 * y * (1.0 + np.vectorize(__import__("math").erf)(y / np.sqrt(2.0)))
    np.testing.assert_allclose(run(scheduled, [x, w, b], (13, 48)), expect, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target, lanes", [(AVX2, 8), ("llvm -mcpu=skylake-avx512", 16)])
def test_matmul_is_register_tiled_for_the_vector_width(target, lanes):
    func = op_kernel("matmul", [(128, 64), (64, 96)])
    scheduled = schedule_kernel(func, target)
    loops = loops_of(scheduled)
    assert str(loops[0].kind) == "parallel"
    vec = [f for f in loops if str(f.kind) == "vectorized"]
    assert vec and all(f.extent.value % lanes == 0 for f in vec)
    k_loop = next(f for f in loops if f.loop_var.name == "k")
    inner = [str(f.kind) for f in loops_of(scheduled.with_body(k_loop))]
    assert inner == ["serial", "unrolled", "unrolled", "vectorized"]   # k outside the register tile


def test_row_chain_is_computed_per_row_under_one_parallel_loop():
    scheduled = schedule_kernel(op_kernel("softmax", [(12, 128, 128)], axis=-1), AVX2)
    top = scheduled.body.block.body
    assert isinstance(top, wb.ir.stmt.For) and str(top.kind) == "parallel"   # one nest for the whole chain
    assert "vectorized" in kinds(scheduled)


def test_elementwise_is_fused_split_and_vectorized():
    scheduled = schedule_kernel(op_kernel("gelu", [(128, 384)]), AVX2)
    assert kinds(scheduled) == ["parallel", "vectorized"]
    assert loops_of(scheduled)[1].extent.value == 32


def test_small_kernels_stay_serial():
    assert "parallel" not in kinds(schedule_kernel(op_kernel("relu", [(4, 8)]), AVX2))


def test_marked_kernels_are_left_alone():
    func = op_kernel("relu", [(64, 64)]).with_attr("tuned", True)
    mod = wb.IRModule({"k": func})
    assert DefaultSchedule(AVX2)(mod)["k"] is func


def test_refused_steps_are_skipped(monkeypatch, rng):
    """Every primitive refusing leaves the program as it was, and the pass still succeeds."""
    from workbench.schedule.state import Schedule

    def refuse(self, *args, **kwargs):
        raise ScheduleError("refused for the test")

    for name in ("split", "fuse", "reorder", "cache_write", "compute_at", "compute_inline", "parallel"):
        monkeypatch.setattr(Schedule, name, refuse)
    func = fused_matmul_bias_gelu(8, 16, 16)
    scheduled = DefaultSchedule(AVX2)(wb.IRModule({"f": func}))["f"]
    x, w, b = data(rng, (8, 16), (16, 16), (16,))
    ref = np.zeros((8, 16), "float32")
    wb.build(func, target="llvm")(x, w, b, ref)
    np.testing.assert_allclose(run(scheduled, [x, w, b], (8, 16)), ref, rtol=1e-5, atol=1e-6)


def test_tuned_record_is_replayed(tmp_path):
    from workbench.tuning.database import Database, Record, workload_key
    from workbench.tuning.space import program_key

    func = op_kernel("relu", [(64, 64)])
    sch = wb.Schedule(func)
    i, j = sch.get_loops(sch.get_block("relu"))
    sch.unroll(j)
    db = Database(tmp_path / "db.jsonl")
    workload, tkey = workload_key(func, AVX2)
    db.add(Record(workload, tkey, sch.trace.to_data(), program_key(sch.func), True, 1e-6))
    db.add(Record(workload, tkey, {"format": "workbench-trace", "version": 1, "insts": []}, program_key(func),
                  True, 1e-3))   # slower: not chosen
    out = DefaultSchedule(AVX2, database=str(tmp_path / "db.jsonl"))(wb.IRModule({"k": func}))["k"]
    assert out.attrs["tuned"] is True
    assert kinds(out) == ["serial", "unrolled"]


def test_bad_database_argument_is_a_clear_error():
    with pytest.raises(TypeError, match="database must be"):
        DefaultSchedule(AVX2, database=42)


def test_linear_weight_is_packed_into_contiguous_panels(rng):
    func = op_kernel("linear", [(16, 24), (64, 24), (64,)])
    scheduled = schedule_kernel(func, AVX2)
    packed = [b for b in scheduled.body.block.alloc_buffers if b.name == "x1_global"]
    assert packed and [int(d) for d in packed[0].shape] == [4, 24, 16]   # [j // 16, k, j % 16]
    inputs = data(rng, (16, 24), (64, 24), (64,))
    np.testing.assert_allclose(run(scheduled, inputs, (16, 64)), inputs[0] @ inputs[1].T + inputs[2],
                               rtol=1e-4, atol=1e-4)
