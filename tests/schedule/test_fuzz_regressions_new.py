"""Regressions found by the random-schedule fuzzer in the newer primitives (checked against numpy)."""
import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir import op_library
from workbench.ir.interpreter import evaluate


def _run_both(func, case):
    """Interpreter and LLVM results of ``func`` on the case's arrays, each checked against numpy."""
    for run in (lambda *a: evaluate(func, *a), wb.build(func, target="llvm")):
        ins, outs, expected = case.make_arrays(np.random.default_rng(0))
        run(*ins, *outs)
        case.assert_close(outs, expected)


@pytest.mark.parametrize("how", ["reindex", "reindex_cache_read"])
def test_reindex_of_a_guarded_read_is_refused(how):
    """conv2d_pad reads x[v - 1] only inside if_then_else; a copy over the whole domain read x[-1]."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    b = sch.get_block("conv2d_pad")
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="out of bounds"):
        if how == "reindex":
            sch.reindex(b, ("read", 0))
        else:
            sch.reindex_cache_read(b, 0, "local", lambda v0, v1, v2, v3: (v2, v1, v3, v0))
    assert sch.func is before
    _run_both(sch.func, case)


def test_reindex_of_an_in_bounds_read_still_applies():
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    sch.reindex(sch.get_block("conv2d"), ("read", 1))
    _run_both(sch.func, case)


def test_cache_index_keeps_computations_of_different_variables_apart():
    """`v_i2 - 1` and `v_i3 - 1` are equal up to renaming, but not the same index: both were replaced
    by one index buffer over v_i2."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    blocks = sch.cache_index(sch.get_block("conv2d_pad"), "shared")
    assert len(blocks) == 2
    _run_both(sch.func, case)


def test_cache_index_merges_the_same_computation():
    A = te.placeholder((8, 3), name="A")
    B = te.compute((8, 8), lambda i, j: A[i // 2 + j // 4, j % 3] + A[i // 2 + j // 4, 0], name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    blocks = sch.cache_index(sch.get_block("B"), "global")
    assert len(blocks) == 2            # i // 2 + j // 4 once, j % 3
    a = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
    ii, jj = np.indices((8, 8))
    expected = a[ii // 2 + jj // 4, jj % 3] + a[ii // 2 + jj // 4, 0]
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        out = np.full((8, 8), np.nan, "float32")
        run(a, out)
        np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_reverse_compute_inline_of_a_block_with_a_second_writer_is_refused():
    """Fuzzer 1205007015:conv2d. After decompose_padding, conv2d_pad is written by the padding block and by
    conv2d_pad; reverse-inlining conv2d_pad into x_local moved its stores ahead of the padding block's zeros,
    which then overwrote them."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    b = sch.get_block("conv2d_pad")
    sch.decompose_padding(b, sch.get_loops(b)[-1])
    sch.cache_read(b, 0, "local")
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="conv2d_pad_pad_const also writes conv2d_pad"):
        sch.reverse_compute_inline(b)
    assert sch.func is before
    _run_both(sch.func, case)


def test_reverse_compute_inline_of_the_sole_writer_still_applies():
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((8,), lambda i: B[i] + 1.0, name="C")
    sch = wb.Schedule(wb.create_prim_func([A, C]))
    sch.reverse_compute_inline(sch.get_block("C"))
    a = np.random.default_rng(0).standard_normal(8).astype("float32")
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        out = np.full((8,), np.nan, "float32")
        run(a, out)
        np.testing.assert_allclose(out, a * 2 + 1, rtol=1e-6)


def _blockized_row_sum():
    A = te.placeholder((4, 16), name="A")
    k = te.reduce_axis((0, 16), name="k")
    B = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    sch.blockize(sch.get_loops(sch.get_block("B"))[0])
    return sch


def test_reindex_write_of_an_update_whose_init_was_lifted_is_refused():
    """Fuzzer 1205003694:layer_norm. The inner block of a blockized reduction accumulates into B without an
    init (the init is the outer block's), and its reads leave B out; a write copy started from garbage."""
    sch = _blockized_row_sum()
    before = sch.func
    b = sch.get_block("B")
    with pytest.raises(wb.ScheduleError, match="reads B before writing it and has no init"):
        sch.reindex(b, ("write", 0))
    assert sch.func is before
    a = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        out = np.full((4,), np.nan, "float32")
        run(a, out)
        np.testing.assert_allclose(out, a.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_reindex_write_of_a_reduction_with_its_init_still_applies():
    A = te.placeholder((4, 16), name="A")
    k = te.reduce_axis((0, 16), name="k")
    B = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    sch.reindex(sch.get_block("B"), ("write", 0))
    a = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        out = np.full((4,), np.nan, "float32")
        run(a, out)
        np.testing.assert_allclose(out, a.sum(axis=1), rtol=1e-5, atol=1e-5)


def _fuzz_module():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_schedules.py"
    spec = importlib.util.spec_from_file_location("fuzz_schedules", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    return mod


def test_fuzzer_accepts_the_inf_cast_error_of_a_narrowing_dtype_change():
    """Fuzzer 1205000535:max_pool2d: unsafe_set_dtype of the -inf padded buffer to int32 makes the
    interpreter refuse the cast; that is a changed value (unchecked after narrowing), not a bug."""
    fuzz = _fuzz_module()
    prog = fuzz.program("max_pool2d")
    sch = wb.Schedule(prog.func)
    sch.unsafe_set_dtype(sch.get_block("max_pool2d_pad"), 0, "int32")
    trace = str(sch.trace)
    checked = fuzz.check_program(prog, prog.func, sch.func, {}, trace, values=True)
    assert any(f["kind"] == "interp-error" and "cannot cast -inf" in f["message"] for f in checked)
    assert fuzz.check_program(prog, prog.func, sch.func, {}, trace, values=False) == []
    nan_cast = {"kind": "interp-error", "message": "InterpreterError: cannot cast nan to int32 (is an ...)"}
    assert not fuzz._is_value_failure(nan_cast)   # an uninitialised read stays a failure


def test_reindex_cache_read_for_a_reader_before_the_last_writer_is_refused():
    """After decompose_reduction + cache_inplace, layer_norm_sum is written by the init (before the copy-in
    block that reads it) and by the copy back (after it). reindex_cache_read of the copy-in placed its copy after
    the last writer, after its reader, which then read an unwritten cache (NaN; fuzzer seed 121213006651).
    Refused as cache_read refuses it; cache_read of the same read is refused too."""
    case = op_library.OPS["layer_norm"]()
    sch = wb.Schedule(case.func)
    b = sch.get_block("layer_norm_sum")
    sch.decompose_reduction(b, sch.get_loops(b)[0])
    sch.cache_inplace(b, 0, "local")
    copy_in = sch.get_block("layer_norm_sum_local_in")
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="runs before block layer_norm_sum_local writes layer_norm_sum"):
        sch.reindex_cache_read(copy_in, 0, "global", lambda v0: (v0,))
    with pytest.raises(wb.ScheduleError, match="runs before block layer_norm_sum_local writes layer_norm_sum"):
        sch.cache_read(copy_in, 0, "global")
    assert sch.func is before
    _run_both(sch.func, case)


def test_overshooting_split_over_a_loop_whose_range_loads_a_buffer_is_refused():
    """cache_index makes index buffers of extent 18 and read_at copies under a loop whose range loads them; a
    split of the outer loop by [7, 1, 5] (35 > 18) guarded only the blocks, so the copy loop's range read
    index_var_0[18..34] (fuzzer seed 121213006321, blur1d). Refused; a dividing split still applies."""
    A = te.placeholder((20,), name="A")
    B = te.compute((20,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((18,), lambda i: B[i] + B[i + 1] + B[i + 2], name="C")
    func = wb.create_prim_func([A, C])

    def scheduled():
        sch = wb.Schedule(func)
        sch.cache_index(sch.get_block("C"), storage_scope="local")
        (i,) = sch.get_loops(sch.get_block("C"))
        sch.read_at(i, sch.get_block("C"), 0, "shared")
        return sch

    sch = scheduled()
    (i,) = sch.get_loops(sch.get_block("C"))
    before = sch.func
    with pytest.raises(wb.ScheduleError, match=r"(?s)do not divide its extent.*computes its range from "
                                               r"`index_var_0\["):
        sch.split(i, factors=[7, 1, 5])
    assert sch.func is before
    sch.split(i, factors=[6, 3])
    a = np.random.default_rng(0).standard_normal(20).astype("float32")
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        c = np.full(18, np.nan, "float32")
        run(a, c)
        np.testing.assert_allclose(c, 2 * (a[:-2] + a[1:-1] + a[2:]), rtol=1e-5)


def test_write_at_a_partitioned_reduction_piece_that_never_runs_its_init_is_refused():
    """loop_partition splits a sum over k into blocks over k in [0, 5), [5, 7), [7, 9); only the first runs the
    init (at v_k == 0). write_at at the second piece's loop let it add to an uninitialised cache (NaN in the
    interpreter and in LLVM: fuzzer seed 121215001704, log_softmax). Refused; write_at at the row loop, which also
    holds the first piece, still applies and matches numpy."""
    case = op_library.OPS["log_softmax"]()

    def partitioned():
        sch = wb.Schedule(case.func)
        _, k = sch.get_loops(sch.get_block("log_softmax_expsum"))
        sch.loop_partition(k, factors=[None, 2, 2])
        return sch

    sch = partitioned()
    piece = sch.get_block("log_softmax_expsum_k1")
    i, k1 = sch.get_loops(piece)
    before = sch.func
    with pytest.raises(wb.ScheduleError, match=r"(?s)log_softmax_expsum_k1 adds to log_softmax_expsum.*reduction "
                                               r"axis v_k at 5"):
        sch.write_at(k1, piece, 0, "global")
    assert sch.func is before
    sch.write_at(i, piece, 0, "global")
    _run_both(sch.func, case)


def test_decompose_padding_of_a_rolling_buffer_is_refused():
    """After compute_at and rolling_buffer, conv2d's padding block stores to conv2d_pad[.., v_i2 % 3, ..]: one
    slot holds padding for one row and data for another. decompose_padding filled the slots once before the loop,
    and later rows' data overwrote padding that a later row needed (28 of 64 outputs wrong: fuzzer seed
    121215001915). Refused; without the rolling buffer the same decomposition applies and matches numpy."""
    case = op_library.OPS["conv2d"]()

    def computed_at(rolling: bool):
        sch = wb.Schedule(case.func)
        pad = sch.get_block("conv2d_pad")
        (consumer,) = sch.get_consumers(pad)
        outer, _ = sch.split(sch.get_loops(consumer)[3], factors=[None, 2])
        sch.compute_at(pad, outer)
        if rolling:
            sch.rolling_buffer(pad, 0)
        return sch

    sch = computed_at(rolling=True)
    pad = sch.get_block("conv2d_pad")
    before = sch.func
    with pytest.raises(wb.ScheduleError, match=r"conv2d_pad\[v_i0, v_i1, v_i2 % 3, v_i3\] cannot be shown one-to-one"):
        sch.decompose_padding(pad, sch.get_loops(pad)[1])
    assert sch.func is before
    assert not bool(sch.can_decompose_padding(pad, sch.get_loops(pad)[1]))
    sch = computed_at(rolling=False)
    pad = sch.get_block("conv2d_pad")
    sch.decompose_padding(pad, sch.get_loops(pad)[1])
    _run_both(sch.func, case)


@pytest.mark.parametrize("preserve_unit_iters", [True, False])
def test_blockize_keeps_an_axis_for_a_unit_outer_part_that_varies_with_the_loops(preserve_unit_iters):
    """After merge and an overshooting split, conv2d's batch axis (extent 1) is bound to i0_m_0 * 3 + i0_m_1
    under where(i0_m_0 * 3 + i0_m_1 < 1). blockize substituted that binding into the blocks, which then used
    loops outside them: an ill-formed program (fuzzer seed 121217001642). The outer block now has an axis of
    extent 1 bound to it, and the result matches numpy."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    merged = sch.merge(sch.get_loops(sch.get_block("conv2d_pad"))[0], sch.get_loops(sch.get_block("conv2d"))[0])
    sch.split(merged, factors=[7, 3])
    loops = sch.get_loops(sch.get_block("conv2d"))
    sch.bind(loops[2], "blockIdx.x")
    sch.blockize(loops[6], preserve_unit_iters=preserve_unit_iters)
    assert "v_nn_o = wb.axis.spatial(1, i0_m_0 * 3 + i0_m_1)" in sch.func.script()
    _run_both(sch.func, case)


def test_compute_inline_into_a_consumer_reading_outside_the_producers_domain_is_refused():
    """pad_einsum pads gelu's rows to 16 but its copy block x_pad computes rows 0..3 only; read_at then copies
    all 16 rows into a cache. Inlining x_pad into that copy evaluated `x[v0, v1]` for v0 up to 15, out of bounds
    of the 4-row input (fuzzer seed 121217002362). Refused, naming the rows read and the rows computed; the
    schedule still matches numpy."""
    case = op_library.OPS["gelu"]()
    sch = wb.Schedule(case.func)
    i, _ = sch.get_loops(sch.get_block("gelu"))
    sch.split(i, factors=[16, 16])
    sch.pad_einsum(sch.get_block("gelu"), padding=[16, 8])
    outer = sch.get_loops(sch.get_block("gelu"))[0]
    sch.read_at(outer, sch.get_block("gelu"), 0, "local")
    before = sch.func
    with pytest.raises(wb.ScheduleError, match=r"block x_pad_local reads x_pad\[0:16\] in dimension 0, but x_pad "
                                               r"computes x_pad\[0:4\] there"):
        sch.compute_inline(sch.get_block("x_pad"))
    assert sch.func is before
    _run_both(sch.func, case)


def test_primitives_on_a_blockized_outer_block_keep_its_regions_inside_the_buffers():
    """rotary's i2 loop (extent 2) split by 8 puts `where(i2_0 * 8 + i2_1 < 2)` on the block, and it reads
    x[.., v - 4] and x[.., v + 4] under if_then_else. blockize cut the outer block's regions to the buffers;
    transform_block_layout of that outer block inferred them again without the predicate and the guards:
    x[0, 0:6, 0:8, -4:12] of a (1, 6, 2, 8) buffer, an ill-formed program (fuzzer seed 121218001234). Every
    primitive that refreshes a block's regions now cuts those of a block holding blocks."""
    case = op_library.OPS["rotary"]()
    sch = wb.Schedule(case.func)
    i0, i1, i2, i3 = sch.get_loops(sch.get_block("rotary"))
    outer_i2, inner_i2 = sch.split(i2, factors=[None, 8])
    sch.reorder(outer_i2, i3, inner_i2)
    outer = sch.blockize(sch.get_loops(sch.get_block("rotary"))[0])
    sch.transform_block_layout(outer, lambda: ())
    block = sch.get(outer)
    for region in block.reads + block.writes:
        for rng, size in zip(region.region, region.buffer.shape):
            assert int(rng.min) >= 0 and int(rng.min) + int(rng.extent) <= int(size), region
    _run_both(sch.func, case)


def test_decompose_reduction_over_loops_that_recompute_an_iteration_is_refused():
    """After transform_block_layout flattens layer_norm's output to 64 iterations split by 2, compute_at puts the
    row sum of squares under the 32 outer ones: v_i0 = ax0_0 // 8 recomputes each row 8 times, each starting
    from the init. decompose_reduction at that loop hoisted one init before it, and the update then added the
    row up 8 times (60 of 64 outputs wrong: fuzzer seed 121219001650). Refused; decomposing at the inner loop
    still applies and matches numpy."""
    case = op_library.OPS["layer_norm"]()
    sch = wb.Schedule(case.func)
    sch.transform_block_layout(sch.get_block("layer_norm"), lambda v0, v1: (v0 * 16 + v1,))
    (flat,) = sch.get_loops(sch.get_block("layer_norm"))
    outer, _ = sch.split(flat, factors=[None, 2])
    sch.compute_at(sch.get_block("layer_norm_varsum"), outer)
    varsum = sch.get_block("layer_norm_varsum")
    recomputing, k = sch.get_loops(varsum)
    before = sch.func
    with pytest.raises(wb.ScheduleError, match=r"do not map one-to-one onto the block's axes \(v_i0 = ax0_0 // 8"):
        sch.decompose_reduction(varsum, recomputing)
    assert sch.func is before
    sch.decompose_reduction(varsum, k)
    _run_both(sch.func, case)


def test_blockize_over_a_read_indexed_by_a_float_index_buffer_does_not_overflow_int32():
    """cache_index stores conv2d_pad's row index in a buffer that unsafe_set_dtype made float64; the read
    x[.., cast(index_var_0[v], "int32"), ..] then spans the whole int32 range, and the region's extent, 2**32,
    did not fit in int32: blockize crashed with a DTypeError (fuzzer seed 121220004352). A dimension that wide
    now covers the whole buffer dimension, as a data-dependent index does, and the result matches numpy."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    sch.cache_index(sch.get_block("conv2d_pad"), storage_scope="global", cse_thresh=1)
    sch.unsafe_set_dtype(sch.get_block("index_0"), buffer_index=0, dtype="float64")
    outer = sch.blockize(sch.get_loops(sch.get_block("conv2d_pad"))[0])
    x_region = next(r for r in sch.get(outer).reads if r.buffer.name == "x")
    assert [(int(r.min), int(r.extent)) for r in x_region.region][2] == (0, 7)
    _run_both(sch.func, case)


def test_blockize_of_a_padding_column_drops_the_read_its_guard_never_runs():
    """loop_partition splits conv2d_pad's column loop at 3 and 8; the last piece computes column 8 only, a padding
    column. Blockized there, the column axis became the constant 8: the block kept `x[.., 8 - 1]` under the
    guard `8 < 8`, and its regions read column 7 of a 7-column input, an ill-formed program (fuzzer seed
    121222001708). The guard is folded away with the read, the regions no longer claim it, and the result
    matches numpy."""
    case = op_library.OPS["conv2d"]()
    sch = wb.Schedule(case.func)
    *_, col = sch.get_loops(sch.get_block("conv2d_pad"))
    *_, last = sch.loop_partition(col, factors=[3, 5])
    outer = sch.blockize(last, preserve_unit_iters=True)
    for block in (sch.get(outer), sch.get(sch.get_block("conv2d_pad_i32"))):
        assert "x" not in [r.buffer.name for r in block.reads], block.reads
    assert "x[" not in sch.func.script().split('wb.block("conv2d_pad_i32")')[1].split("for nn")[0]
    _run_both(sch.func, case)


def test_compute_at_of_a_data_indexed_cache_keeps_the_consumers_guard():
    """take reads table[ids[v], :]. With its row loop split 3 x 5 (15 > 5 rows), a cache_read of table computed at
    the inner row loop is bound to v0 = min(max(ids[i0_0 * 5 + i0_1], 0), 19), and loaded ids[5..14] in the
    iterations the consumer's where(i0_0 * 5 + i0_1 < 5) skips: an out-of-bounds read (fuzzer seed
    121223001476). The moved block now takes that guard, and the result matches numpy."""
    case = op_library.OPS["take"]()
    sch = wb.Schedule(case.func)
    rows, _ = sch.get_loops(sch.get_block("take"))
    _, inner = sch.split(rows, factors=[3, 5])
    cache = sch.cache_read(sch.get_block("take"), 0, "global")
    sch.compute_at(cache, inner)
    moved = sch.func.script().split('wb.block("table_global")')[1].split("wb.reads")[0]
    assert "wb.where(i0_0 * 5 + i0_1 < 5)" in moved, moved
    _run_both(sch.func, case)


def _gather(factors):
    table = te.placeholder((20,), "float32", name="table")
    ids = te.placeholder((5,), "int32", name="ids")
    out = te.compute((5,), lambda i: table[ids[i]] * 2.0, name="out")
    sch = wb.Schedule(wb.create_prim_func([table, ids, out]))
    (i,) = sch.get_loops(sch.get_block("out"))
    _, inner = sch.split(i, factors=factors)
    return sch, sch.cache_read(sch.get_block("out"), 0, "global"), inner


def test_compute_at_of_an_unclamped_data_indexed_cache_under_a_non_dividing_split_is_refused():
    """out[i] = table[ids[i]] with no clamp: the moved copy's predicate checks ids[i_0 * 2 + i_1] against the
    table's rows, and every term of a predicate is evaluated, so the consumer's guard cannot stop it reading
    ids[5]: refused. With a dividing split it applies, and matches numpy."""
    sch, cache, inner = _gather([3, 2])
    before = sch.func
    with pytest.raises(wb.ScheduleError, match=r"would load ids\[i_0 \* 2 \+ i_1\] outside the buffer ids"):
        sch.compute_at(cache, inner)
    assert sch.func is before
    sch, cache, inner = _gather([None, 5])
    sch.compute_at(cache, inner)
    table = np.random.default_rng(0).standard_normal(20).astype("float32")
    ids = np.array([3, 19, 0, 7, 7], "int32")
    for run in (lambda *a: evaluate(sch.func, *a), wb.build(sch.func, target="llvm")):
        out = np.zeros(5, "float32")
        run(table, ids, out)
        np.testing.assert_allclose(out, table[ids] * 2.0, rtol=1e-6)


def test_transform_layout_padding_fill_goes_where_the_buffer_is_allocated():
    """After blockize of concatenate's whole nest, cache_index allocates its index buffer inside the new block
    concatenate_o. transform_layout of that buffer to a padded (2, 5) shape put the block filling the padding at
    the start of the root, outside the buffer's scope: an ill-formed program (fuzzer seed 121224008778). The fill
    now goes at the start of the allocating block, and the result matches numpy."""
    case = op_library.OPS["concatenate"]()
    sch = wb.Schedule(case.func)
    sch.blockize(sch.get_loops(sch.get_block("concatenate"))[0])
    sch.cache_index(sch.get_block("concatenate"), storage_scope="shared")
    sch.transform_layout(sch.get_block("index_0"), ("write", 0), lambda i0: (i0 // 5, i0 % 5), pad_value=0)
    inside = [sch.get(b).name for b in sch.get_child_blocks(sch.get_block("concatenate_o"))]
    assert inside[0] == "index_var_0_pad", inside
    wb.verify_well_formed(sch.func)
    _run_both(sch.func, case)


def test_pad_einsum_of_an_init_block_that_blockize_moved_into_an_init_is_refused():
    """blockize of batch_matmul's outer loop makes the init its own block C_init inside the init of C_o, where
    pad_einsum found no place for its copy blocks and crashed with a bare StopIteration (fuzzer seed
    121224009876). Refused with a ScheduleError naming the block; the program is unchanged."""
    case = op_library.OPS["batch_matmul"]()
    sch = wb.Schedule(case.func)
    sch.blockize(sch.get_loops(sch.get_block("C"))[0])
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="cannot pad_einsum block C_init: it is inside the init of block C_o"):
        sch.pad_einsum(sch.get_block("C_init"), [4, 1, 16])
    assert sch.func is before
    _run_both(sch.func, case)


def test_compute_inline_into_a_tensorized_reader_is_refused():
    """pad_einsum pads batch_matmul's j to 8 and fma_f32x8_avx2 tensorizes the update, which then reads B_pad
    through a match_buffer view. compute_inline of B_pad replaced no load there, dropped the block that wrote
    B_pad, and every output came out NaN (fuzzer seed 121225001623). Refused; the program still matches numpy."""
    case = op_library.OPS["batch_matmul"]()
    sch = wb.Schedule(case.func)
    c = sch.get_block("C")
    sch.pad_einsum(c, padding=[1, 1, 8, 1])
    _, _, j, k = sch.get_loops(c)
    j0, j1 = sch.split(j, factors=[None, 8])
    sch.reorder(j0, k, j1)
    sch.decompose_reduction(c, j0)
    sch.tensorize(j1, tensor_intrin="fma_f32x8_avx2")
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="reads B_pad through a match_buffer view"):
        sch.compute_inline(sch.get_block("B_pad"))
    assert sch.func is before
    _run_both(sch.func, case)


def test_cache_inplace_of_a_buffer_only_the_block_writes_is_refused():
    """After blockize of rms_norm's two blocks, the outer block reads and writes the allocated rms_norm_sqsum,
    which nothing else writes. cache_inplace copied it in before anything had written it (the interpreter's NaN
    fill), and after unsafe_set_dtype to int32 the copy cast NaN to an integer (fuzzer seed 121226000997).
    Refused, naming the buffer; cache_write is the primitive for a buffer the block produces."""
    case = op_library.OPS["rms_norm"]()
    sch = wb.Schedule(case.func)
    outer = sch.blockize([sch.get_block("rms_norm_sqsum"), sch.get_block("rms_norm")])
    assert sch.get(outer).reads[1].buffer.name == "rms_norm_sqsum"
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="nothing but that block writes rms_norm_sqsum"):
        sch.cache_inplace(outer, read_buffer_index=1, scope="shared")
    assert sch.func is before
    _run_both(sch.func, case)


def _partitioned_row_sum():
    A = te.placeholder((4, 16), name="A")
    P = te.compute((4, 16), lambda i, k: A[i, k] * 2.0, name="P")
    k = te.reduce_axis((0, 16), name="k")
    S = te.compute((4,), lambda i: te.sum(P[i, k], axis=k), name="S")
    sch = wb.Schedule(wb.create_prim_func([A, S]))
    _, kl = sch.get_loops(sch.get_block("S"))
    sch.loop_partition(kl, factors=[13])
    a = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    return sch, a, (a * 2.0).sum(axis=1)


@pytest.mark.parametrize("preserve", [False, True])
def test_reverse_compute_at_of_a_reduction_partition_piece_runs_only_its_iterations(preserve):
    """loop_partition cuts a row sum's k loop at 13: the piece S_k0 keeps the domain reduce(16) but runs k in
    0..12. reverse_compute_at of it under the producer's k loop ran it for all 16 values of k, and the piece
    S_k1 added 13..15 again (fuzzer seed 121227001771, on layer_norm after pad_einsum). The moved piece now
    keeps `k < 13` as a predicate; the result matches numpy."""
    sch, a, expected = _partitioned_row_sum()
    _, pk = sch.get_loops(sch.get_block("P"))
    sch.reverse_compute_at(sch.get_block("S_k0"), pk, preserve_unit_loops=preserve)
    moved = sch.get(sch.get_block("S_k0"))
    assert moved.name == "S_k0"
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        out = np.zeros(4, "float32")
        run(a, out)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)



def test_reindex_cache_read_indexed_by_a_cached_buffer_goes_after_that_cache():
    """take reads table[min(max(ids_shared[v], 0), 19), :] after a cache_read of ids. reindex_cache_read of
    table put its copy first in the function, before ids_shared was filled, so it gathered rows by garbage
    (fuzzer seed 121227002541). The copy goes after the block writing ids_shared; the result matches numpy."""
    case = op_library.OPS["take"]()
    sch = wb.Schedule(case.func)
    sch.cache_read(sch.get_block("take"), 1, "shared")
    copy = sch.reindex_cache_read(sch.get_block("take"), 0, "local", lambda v0, v1: (v1, v0))
    text = sch.func.script()
    assert text.index('wb.block("ids_shared")') < text.index(f'wb.block("{sch.get(copy).name}")')
    _run_both(sch.func, case)


def test_reindex_cache_read_indexed_by_a_buffer_written_in_the_same_nest_is_refused():
    """The same after reverse_compute_at moved take under ids_shared's loop: no place is after the writer and
    before the reader, so it is refused and the program is unchanged."""
    case = op_library.OPS["take"]()
    sch = wb.Schedule(case.func)
    ids_copy = sch.cache_read(sch.get_block("take"), 1, "shared")
    (loop,) = sch.get_loops(ids_copy)
    sch.reverse_compute_at(sch.get_block("take"), loop)
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="indexed by ids_shared, which block ids_shared writes in the same"):
        sch.reindex_cache_read(sch.get_block("take"), 0, "local", lambda v0, v1: (v1, v0 // 4, v0 % 4))
    assert sch.func is before
    _run_both(sch.func, case)


@wb.prim_func
def _gather_then_ids_rewritten(table: wb.Buffer((20, 8), "float32"), ids: wb.Buffer((5,), "int32"),
                               out: wb.Buffer((5, 8), "float32"), ids_after: wb.Buffer((5,), "int32")):
    ids_s = wb.alloc_buffer((5,), "int32")
    for i in wb.serial(5):
        with wb.block("ids_s"):
            v = wb.axis.remap("S", [i])
            ids_s[v] = ids[v]
    for i, j in wb.grid(5, 8):
        with wb.block("take"):
            vi, vj = wb.axis.remap("SS", [i, j])
            out[vi, vj] = table[wb.min(wb.max(ids_s[vi], 0), 19), vj]
    for i in wb.serial(5):
        with wb.block("ids_s_again"):
            v = wb.axis.remap("S", [i])
            ids_s[v] = 19 - ids[v]
    for i in wb.serial(5):
        with wb.block("ids_after"):
            v = wb.axis.remap("S", [i])
            ids_after[v] = ids_s[v]


def test_reindex_cache_read_indexed_by_a_buffer_goes_after_its_writers_before_the_block_only():
    """A block rewriting the index buffer after the gather does not move the copy past the gather."""
    sch = wb.Schedule(_gather_then_ids_rewritten)
    sch.reindex_cache_read(sch.get_block("take"), 0, "global", lambda v0, v1: (v1, v0))
    rng = np.random.default_rng(0)
    table = rng.standard_normal((20, 8)).astype("float32")
    ids = rng.integers(0, 20, 5).astype("int32")
    for run in (lambda *x: evaluate(sch.func, *x), wb.build(sch.func, target="llvm")):
        out, after = np.zeros((5, 8), "float32"), np.zeros(5, "int32")
        run(table, ids, out, after)
        np.testing.assert_array_equal(out, table[ids])
        np.testing.assert_array_equal(after, 19 - ids)


def _rolled_max_pool():
    case = op_library.OPS["max_pool2d"]()
    sch = wb.Schedule(case.func)
    pad = sch.get_block("max_pool2d_pad")
    _, _, _, xx, _, _ = sch.get_loops(sch.get_block("max_pool2d"))
    xx_0, _ = sch.split(xx, factors=[None, 2])
    sch.compute_at(pad, xx_0)
    sch.rolling_buffer(pad, 0)
    return case, sch


def test_reorder_that_breaks_rolling_buffer_reuse_is_refused():
    """After rolling_buffer, max_pool2d_pad runs only where `(yy < 1 or ax0 >= 1) and (xx_0 < 1 or ax1 >= 1)`:
    it skips the row and column the previous iteration computed. reorder moved the column tile loop xx_0
    outside yy; the rows cycling through the 3-row window then overwrote column 4 before xx_0 = 1 read it
    (3 of 32 outputs wrong: fuzzer seed 121230005540). Refused; the program is unchanged and right."""
    case, sch = _rolled_max_pool()
    nn, cc, yy, xx_0, _, _ = sch.get_loops(sch.get_block("max_pool2d_pad"))
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="rolling_buffer's reuse"):
        sch.reorder(xx_0, nn, yy, cc)
    assert sch.func is before
    _run_both(sch.func, case)


def test_reorder_of_loops_the_rolling_buffer_reuse_does_not_use_still_applies():
    case, sch = _rolled_max_pool()
    nn, cc, _, _, _, _ = sch.get_loops(sch.get_block("max_pool2d_pad"))
    sch.reorder(cc, nn)
    _run_both(sch.func, case)


@pytest.mark.parametrize("how", ["parallel", "bind"])
def test_parallel_loop_over_rolling_buffer_reuse_is_refused(how):
    """The same reuse makes iteration xx_0 = 1 read column 4, which iteration xx_0 = 0 computed: run at once
    (CPU threads, GPU threads) they race. Found while fixing seed 121230005540; the interpreter runs parallel
    loops in order, so only this refusal protects the native build."""
    case, sch = _rolled_max_pool()
    _, cc, _, xx_0, _, _ = sch.get_loops(sch.get_block("max_pool2d_pad"))
    before = sch.func
    with pytest.raises(wb.ScheduleError, match="skips elements an earlier iteration of it computed"):
        if how == "parallel":
            sch.parallel(xx_0)
        else:
            sch.bind(xx_0, "threadIdx.x")
    assert sch.func is before
    sch.parallel(cc)          # the channel loop is not in the reuse: still allowed
    _run_both(sch.func, case)
