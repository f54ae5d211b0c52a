"""te: compute descriptions and create_prim_func (structure against hand-written programs, numpy results)."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir import (Block, BlockRealize, Buffer, BufferRegion, BufferStore, DTypeError, For, IfThenElse,
                          IntImm, IterType, IterVar, PrimFunc, Range, Var, assert_structural_equal)
from workbench.ir.te import TEError


def _interp():
    return pytest.importorskip("workbench.ir.interpreter")


def _evaluate(func, *arrays):
    _interp().evaluate(func, *arrays)


def _root(func: PrimFunc) -> Block:
    assert isinstance(func.body, BlockRealize) and func.body.block.name == "root"
    return func.body.block


def _stages(func: PrimFunc) -> list:
    body = _root(func).body
    return list(body.seq) if hasattr(body, "seq") else [body]


def _nest(stmt):
    """(loops, block) of one stage."""
    loops = []
    while isinstance(stmt, For):
        loops.append(stmt)
        stmt = stmt.body
    assert isinstance(stmt, BlockRealize)
    return loops, stmt


def _region(buf, *idx):
    return BufferRegion(buf, tuple(Range(i, IntImm(1)) for i in idx))


# ---------------------------------------------------------------------------
# DESIGN.md cell 1


def test_design_cell_1_builds_matmul():
    A = te.placeholder((1024, 1024), "float32", name="A")
    B = te.placeholder((1024, 1024), "float32", name="B")
    k = te.reduce_axis(1024, name="k")
    C = te.compute((1024, 1024), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    matmul = wb.create_prim_func([A, B, C])

    # the program TVM's create_prim_func gives, written out by hand
    a, b, c = Buffer("A", (1024, 1024)), Buffer("B", (1024, 1024)), Buffer("C", (1024, 1024))
    pa, pb, pc = Var("A", "handle"), Var("B", "handle"), Var("C", "handle")
    i, j, kk = Var("i"), Var("j"), Var("k")
    vi, vj, vk = Var("v_i"), Var("v_j"), Var("v_k")
    block = Block(
        "C",
        (IterVar(vi, Range(0, 1024), "spatial"), IterVar(vj, Range(0, 1024), "spatial"),
         IterVar(vk, Range(0, 1024), "reduce")),
        reads=(_region(a, vi, vk), _region(b, vk, vj)),
        writes=(_region(c, vi, vj),),
        body=BufferStore(c, c[vi, vj] + a[vi, vk] * b[vk, vj], (vi, vj)),
        init=BufferStore(c, 0.0, (vi, vj)))
    nest = For(i, 0, 1024, "serial", For(j, 0, 1024, "serial", For(kk, 0, 1024, "serial",
                                                                    BlockRealize((i, j, kk), True, block))))
    root = Block("root", body=nest)
    expected = PrimFunc((pa, pb, pc), {pa: a, pb: b, pc: c}, BlockRealize((), True, root),
                        {"global_symbol": "main"})
    assert_structural_equal(matmul, expected)
    # names follow TVM
    loops, realize = _nest(_stages(matmul)[0])
    assert [lp.loop_var.name for lp in loops] == ["i", "j", "k"]
    assert [iv.var.name for iv in realize.block.iter_vars] == ["v_i", "v_j", "v_k"]
    assert [b.name for b in matmul.buffers] == ["A", "B", "C"]
    assert matmul.attrs["global_symbol"] == "main"


def test_tensor_properties():
    A = te.placeholder((4, 8), "float16", name="A")
    B = te.compute((8, 4), lambda i, j: A[j, i], name="B")
    assert [int(d) for d in A.shape] == [4, 8] and A.dtype == "float16" and A.ndim == 2 and A.name == "A"
    assert isinstance(A.op, te.PlaceholderOp) and isinstance(B.op, te.ComputeOp)
    assert B.op.input_tensors == (A,)
    assert [ax.name for ax in B.op.axis] == ["i", "j"]
    assert B.dtype == "float16"


def test_matmul_evaluates_like_numpy():
    A = te.placeholder((5, 7), name="A")
    B = te.placeholder((7, 3), name="B")
    k = te.reduce_axis(7, name="k")
    C = te.compute((5, 3), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    f = te.create_prim_func([A, B, C])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)).astype("float32"), rng.standard_normal((7, 3)).astype("float32")
    c = np.full((5, 3), np.nan, "float32")
    _evaluate(f, a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# structure of create_prim_func


def test_intermediates_become_root_alloc_buffers_in_topological_order():
    A = te.placeholder((4, 6), name="A")
    k1 = te.reduce_axis(6, name="k")
    M = te.compute((4,), lambda i: te.max(A[i, k1], axis=k1), name="M")
    E = te.compute((4, 6), lambda i, j: te.exp(A[i, j] - M[i]), name="E")
    k2 = te.reduce_axis(6, name="k")
    S = te.compute((4,), lambda i: te.sum(E[i, k2], axis=k2), name="S")
    Y = te.compute((4, 6), lambda i, j: E[i, j] / S[i], name="Y")
    f = te.create_prim_func([A, Y], name="softmax")
    root = _root(f)
    assert [b.name for b in root.alloc_buffers] == ["M", "E", "S"]
    assert [b.name for b in f.buffers] == ["A", "Y"]
    blocks = [_nest(s)[1].block for s in _stages(f)]
    assert [b.name for b in blocks] == ["M", "E", "S", "Y"]
    assert [b.init is not None for b in blocks] == [True, False, True, False]
    # max reduction starts at -inf
    assert blocks[0].init.value.value == float("-inf")
    assert [iv.iter_type for iv in blocks[0].iter_vars] == [IterType.SPATIAL, IterType.REDUCE]
    assert f.attrs["global_symbol"] == "softmax"
    # the buffers in blocks are the function's own (alloc or param), never te's
    diff = blocks[1].body.value.args[0]  # exp(A[v_i, v_j] - M[v_i])
    assert diff.a.buffer is f.buffers[0]
    assert diff.b.buffer is root.alloc_buffers[0]


def test_params_follow_the_given_order():
    A = te.placeholder((4,), name="A")
    B = te.compute((4,), lambda i: A[i] * 2.0, name="B")
    f = te.create_prim_func([B, A])
    assert [b.name for b in f.buffers] == ["B", "A"]
    assert all(p.dtype == "handle" for p in f.params)


def test_listed_intermediate_is_a_parameter_not_an_alloc():
    A = te.placeholder((4,), name="A")
    B = te.compute((4,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((4,), lambda i: B[i] * 2.0, name="C")
    f = te.create_prim_func([A, B, C])
    assert _root(f).alloc_buffers == ()
    assert [_nest(s)[1].block.name for s in _stages(f)] == ["B", "C"]


def test_loop_order_spatial_then_reduce_and_multi_axis_reduction():
    A = te.placeholder((3, 4, 5), name="A")
    r = te.reduce_axis(3, name="r")
    s = te.reduce_axis(5, name="s")
    B = te.compute((4,), lambda j: te.sum(A[r, j, s], axis=[r, s]), name="B")
    f = te.create_prim_func([A, B])
    loops, realize = _nest(_stages(f)[0])
    assert [lp.loop_var.name for lp in loops] == ["j", "r", "s"]
    assert [int(lp.extent) for lp in loops] == [4, 3, 5]
    assert [iv.iter_type for iv in realize.block.iter_vars] == [IterType.SPATIAL, IterType.REDUCE, IterType.REDUCE]
    assert all(v is lp.loop_var for v, lp in zip(realize.iter_values, loops))
    a = np.random.default_rng(1).standard_normal((3, 4, 5)).astype("float32")
    out = np.zeros(4, "float32")
    _evaluate(f, a, out)
    np.testing.assert_allclose(out, a.sum(axis=(0, 2)), rtol=1e-5, atol=1e-5)


def test_reduce_axis_with_lower_bound_and_where_predicate():
    A = te.placeholder((6, 10), name="A")
    k = te.reduce_axis((2, 10), name="k")
    B = te.compute((6,), lambda i: te.sum(A[i, k], axis=k, where=k % 2 == 0), name="B")
    f = te.create_prim_func([A, B])
    loops, realize = _nest(_stages(f)[0])
    assert (int(loops[1].min), int(loops[1].extent)) == (2, 8)
    dom = realize.block.iter_vars[1].dom
    assert (int(dom.min), int(dom.extent)) == (2, 8)
    assert isinstance(realize.block.body, IfThenElse)
    a = np.random.default_rng(2).standard_normal((6, 10)).astype("float32")
    out = np.zeros(6, "float32")
    _evaluate(f, a, out)
    np.testing.assert_allclose(out, a[:, 2:10:2].sum(axis=1), rtol=1e-5, atol=1e-5)


def test_reduction_with_user_init():
    A = te.placeholder((3, 4), name="A")
    Bias = te.placeholder((3,), name="Bias")
    k = te.reduce_axis(4, name="k")
    B = te.compute((3,), lambda i: te.sum(A[i, k], axis=k, init=Bias[i]), name="B")
    f = te.create_prim_func([A, Bias, B])
    blk = _nest(_stages(f)[0])[1].block
    assert blk.init.value.buffer is f.buffers[1]
    rng = np.random.default_rng(3)
    a, bias = rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(3).astype("float32")
    out = np.zeros(3, "float32")
    _evaluate(f, a, bias, out)
    np.testing.assert_allclose(out, a.sum(1) + bias, rtol=1e-5, atol=1e-5)


def test_symbolic_sizes_are_shared_and_evaluate_at_two_sizes():
    n = te.var("n")
    A = te.placeholder((n, 8), name="A")
    W = te.placeholder((8, 3), name="W")
    k = te.reduce_axis(8, name="k")
    C = te.compute((n, 3), lambda i, j: te.sum(A[i, k] * W[k, j], axis=k), name="C")
    f = te.create_prim_func([A, W, C])
    assert f.buffers[0].shape[0] is n and f.buffers[2].shape[0] is n
    assert _nest(_stages(f)[0])[0][0].extent is n
    assert len(f.params) == 3  # n is bound from the arrays' shapes, not a parameter
    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, 3)).astype("float32")
    for rows in (2, 9):
        a = rng.standard_normal((rows, 8)).astype("float32")
        c = np.zeros((rows, 3), "float32")
        _evaluate(f, a, w, c)
        np.testing.assert_allclose(c, a @ w, rtol=1e-5, atol=1e-5)


def test_varargs_lambda_names_and_attrs_become_annotations():
    A = te.placeholder((2, 3, 4), name="A")
    B = te.compute(A.shape, lambda *i: A[i] + 1.0, name="B", attrs={"note": "x"})
    assert [ax.name for ax in B.op.axis] == ["i0", "i1", "i2"]
    f = te.create_prim_func([A, B])
    blk = _nest(_stages(f)[0])[1].block
    assert dict(blk.annotations) == {"note": "x"}


def test_duplicate_stage_names_are_made_unique():
    A = te.placeholder((4,), name="A")
    B = te.compute((4,), lambda i: A[i] + 1.0, name="T")
    C = te.compute((4,), lambda i: B[i] * 2.0, name="T")
    f = te.create_prim_func([A, C])
    assert [_nest(s)[1].block.name for s in _stages(f)] == ["T", "T_1"]
    names = [b.name for b in f.buffers] + [b.name for b in _root(f).alloc_buffers]
    assert len(set(names)) == len(names)


def test_multi_output_compute():
    A = te.placeholder((5,), name="A")
    lo, hi = te.compute((5,), lambda i: (A[i] - 1.0, A[i] + 1.0), name="LH")
    assert lo.op is hi.op and (lo.value_index, hi.value_index) == (0, 1)
    f = te.create_prim_func([A, lo, hi])
    blk = _nest(_stages(f)[0])[1].block
    assert len(blk.body.seq) == 2
    a = np.arange(5, dtype="float32")
    o1, o2 = np.zeros(5, "float32"), np.zeros(5, "float32")
    _evaluate(f, a, o1, o2)
    np.testing.assert_array_equal(o1, a - 1)
    np.testing.assert_array_equal(o2, a + 1)


# ---------------------------------------------------------------------------
# helpers: reducers, conditions, intrinsics


def test_max_min_sum_binary_form_and_reduction_form():
    A = te.placeholder((4,), name="A")
    relu = te.compute((4,), lambda i: te.max(A[i], 0.0), name="relu")
    assert type(relu.op.body[0]).__name__ == "Max"
    assert type(te.sum(A[0], A[1]) ).__name__ == "Add"
    assert type(te.min(A[0], A[1], A[2])).__name__ == "Min"
    k = te.reduce_axis(4, name="k")
    mn = te.compute((), lambda: te.min(A[k], axis=k), name="mn")
    assert isinstance(mn.op.body[0], te.Reduce)
    f = te.create_prim_func([A, relu, mn])
    assert _nest(_stages(f)[1])[1].block.init.value.value == float("inf")
    a = np.array([-1.5, 2.0, -3.0, 4.0], "float32")
    r, m = np.zeros(4, "float32"), np.zeros((), "float32")
    _evaluate(f, a, r, m)
    np.testing.assert_array_equal(r, np.maximum(a, 0))
    assert m == a.min()


def test_integer_max_reduction_starts_at_the_dtype_minimum():
    A = te.placeholder((3, 4), "int32", name="A")
    k = te.reduce_axis(4, name="k")
    B = te.compute((3,), lambda i: te.max(A[i, k], axis=k), name="B")
    f = te.create_prim_func([A, B])
    init = _nest(_stages(f)[0])[1].block.init.value
    assert init.dtype == "int32" and init.value == np.iinfo(np.int32).min


def test_comm_reducer_product():
    prod = te.comm_reducer(lambda x, y: x * y, lambda dtype: 1, name="prod")
    A = te.placeholder((3, 4), name="A")
    k = te.reduce_axis(4, name="k")
    P = te.compute((3,), lambda i: prod(A[i, k], axis=k), name="P")
    f = te.create_prim_func([A, P])
    a = np.random.default_rng(5).uniform(0.5, 1.5, (3, 4)).astype("float32")
    out = np.zeros(3, "float32")
    _evaluate(f, a, out)
    np.testing.assert_allclose(out, a.prod(1), rtol=1e-5)


def test_if_then_else_all_any_and_intrinsics():
    A = te.placeholder((6,), name="A")
    B = te.compute((6,), lambda i: te.if_then_else(te.all(i >= 1, i < 5), A[i - 1], 0.0), name="B")
    C = te.compute((6,), lambda i: te.if_then_else(te.any(i < 1, i >= 5), te.exp(A[i]), te.sqrt(te.abs(A[i]))),
                   name="C")
    D = te.compute((6,), lambda i: (i // 2 + i % 4).astype("float32") + te.cast(i, "float32"), name="D")
    f = te.create_prim_func([A, B, C, D])
    a = np.random.default_rng(6).standard_normal(6).astype("float32")
    b, c, d = (np.zeros(6, "float32") for _ in range(3))
    _evaluate(f, a, b, c, d)
    idx = np.arange(6)
    np.testing.assert_allclose(b, np.where((idx >= 1) & (idx < 5), np.roll(a, 1), 0.0), rtol=1e-6)
    np.testing.assert_allclose(c, np.where((idx < 1) | (idx >= 5), np.exp(a), np.sqrt(np.abs(a))), rtol=1e-5)
    np.testing.assert_allclose(d, (idx // 2 + idx % 4) + idx, rtol=1e-6)


def test_intrinsics_are_calls():
    x = te.var("x", "float32")
    for name in ("exp", "sqrt", "tanh", "erf", "sigmoid", "log", "floor", "ceil"):
        e = getattr(te, name)(x)
        assert e.op == name and e.dtype == "float32"
    assert te.pow(x, 2.0).op == "pow"
    assert te.max_value("int8").value == 127 and te.min_value("float32").value == float("-inf")
    assert te.size_var("m").name == "m" and te.var("n").dtype == "int32"


# ---------------------------------------------------------------------------
# bad input


def test_wrong_number_of_index_variables():
    A = te.placeholder((4, 4), name="A")
    with pytest.raises(TEError, match=r'compute "C": fcompute takes 2 index variables but the shape has 3 dimensions'):
        te.compute((4, 4, 4), lambda i, j: A[i, j], name="C")


def test_wrong_indexing_arity_names_the_tensor():
    A = te.placeholder((4, 4), name="A")
    with pytest.raises(IndexError, match=r'compute "C": tensor "A" has 2 dimension\(s\) but is indexed with 3'):
        te.compute((4, 4), lambda i, j: A[i, j, i], name="C")
    with pytest.raises(IndexError, match="out of bounds"):
        A[4, 0]
    with pytest.raises(TypeError, match="cannot be sliced"):
        A[0:2, 0]


def test_unknown_dtype_raises_dtype_error():
    with pytest.raises(DTypeError, match='placeholder "A": unknown dtype'):
        te.placeholder((4,), "flaot32", name="A")
    assert issubclass(te.DTypeError, TypeError)


def test_mixed_dtypes_in_compute_name_the_stage():
    A = te.placeholder((4,), "float32", name="A")
    B = te.placeholder((4,), "int32", name="B")
    with pytest.raises(DTypeError, match='compute "C": cannot mix float32 and int32'):
        te.compute((4,), lambda i: A[i] + B[i], name="C")


def test_unused_reduce_axis_is_reported():
    A = te.placeholder((4, 4), name="A")
    k = te.reduce_axis(4, name="k")
    with pytest.raises(TEError, match="reduce axis k is not used"):
        te.compute((4,), lambda i: te.sum(A[i, 0], axis=k), name="B")


def test_reduce_axis_outside_a_reduction_is_reported():
    A = te.placeholder((4, 4), name="A")
    k = te.reduce_axis(4, name="k")
    with pytest.raises(TEError, match="reduce axis k is used outside a reduction"):
        te.compute((4,), lambda i: A[i, k], name="B")
    r = te.reduce_axis(4, name="r")
    with pytest.raises(TEError, match="reduce axis r is used outside a reduction over it"):
        te.compute((4,), lambda i: te.sum(A[r, k], axis=k), name="B")


def test_reduction_must_be_the_whole_body():
    A = te.placeholder((4, 4), name="A")
    k = te.reduce_axis(4, name="k")
    with pytest.raises(TEError, match="must be the whole body"):
        te.compute((4,), lambda i: te.sum(A[i, k], axis=k) * 2.0, name="B")


def test_spatial_axis_as_reduce_axis_and_missing_axis():
    A = te.placeholder((4, 4), name="A")
    with pytest.raises(TEError, match="not a reduce axis"):
        te.compute((4,), lambda i: te.sum(A[i, i], axis=i), name="B")
    with pytest.raises(TypeError, match="needs axis="):
        te.sum(A[0, 0])


def test_tensor_arithmetic_is_refused_with_a_hint():
    A = te.placeholder((4,), name="A")
    with pytest.raises(TypeError, match="te.compute"):
        A + A  # noqa: B018


def test_create_prim_func_errors():
    A = te.placeholder((4,), name="A")
    B = te.placeholder((4,), name="B")
    C = te.compute((4,), lambda i: A[i] + B[i], name="C")
    with pytest.raises(TEError, match='placeholder "B" is read by "C" but is not in the argument list'):
        te.create_prim_func([A, C])
    with pytest.raises(TEError, match='"A" appears twice'):
        te.create_prim_func([A, A, B, C])
    with pytest.raises(TypeError, match="argument 1 is a int"):
        te.create_prim_func([A, 3])
    m = te.var("m")
    D = te.compute((m,), lambda i: A[i % 4], name="D")
    E = te.compute((4,), lambda i: D[i], name="E")
    with pytest.raises(TEError, match='stage "D" uses the symbolic value m'):
        te.create_prim_func([A, E])  # m is only in the shape of the intermediate D
    # the user's tensors are unchanged by the failed calls
    f = te.create_prim_func([A, B, C])
    assert [b.name for b in f.buffers] == ["A", "B", "C"] and C.op.input_tensors == (A, B)


def test_shape_errors():
    with pytest.raises(TypeError, match="te.var"):
        te.placeholder(("n", 4), name="A")
    with pytest.raises(ValueError, match="negative"):
        te.placeholder((-1,), name="A")
    with pytest.raises(ValueError, match="empty"):
        te.reduce_axis(0, name="k")
