"""The IR core: node construction, dtype rules, immutability, visitors, structural equality."""
import pickle

import numpy as np
import pytest

from workbench.ir import (
    Add, Block, BlockRealize, Buffer, BufferStore, DTypeError, FloatImm, For, IntImm, IterVar, Mutator,
    PrimFunc, Range, SeqStmt, Var, Visitor, assert_structural_equal, cast, collect_vars, normalize_dtype,
    structural_equal, structural_hash, substitute,
)
from workbench.ir.dtype import from_numpy, to_numpy
from workbench.ir.structural import StructuralMismatch


def test_operators_build_expressions_with_dtypes():
    i, j = Var("i"), Var("j")
    e = i * 32 + j
    assert isinstance(e, Add) and e.dtype == "int32"
    assert e.a.a is i and e.a.b.value == 32
    x = Var("x", "float16")
    y = x * 2.0
    assert y.dtype == "float16" and isinstance(y.b, FloatImm) and y.b.dtype == "float16"
    assert (i < j).dtype == "bool"


def test_constant_folding_only_on_constants():
    assert (IntImm(3) + 4).value == 7
    assert (IntImm(7) // 2).value == 3 and (IntImm(-7) // 2).value == -4  # floor division
    assert (IntImm(-7) % 2).value == 1
    assert (IntImm(-7) / 2).value == -3  # truncating
    i = Var("i")
    assert (i + 0) is i and (i * 1) is i


@pytest.mark.parametrize("bad", ["float", "int31", "floaty32", "", "float32x0"])
def test_unknown_dtype_is_refused(bad):
    with pytest.raises(DTypeError, match="unknown dtype"):
        normalize_dtype(bad)
    with pytest.raises(DTypeError):
        Var("x", bad)


def test_mixing_dtypes_needs_a_cast():
    i = Var("i")
    x = Var("x", "float32")
    h = Var("h", "float16")
    with pytest.raises(DTypeError, match="cannot mix float32 and int32"):
        x + i
    with pytest.raises(DTypeError, match="cannot mix float32 and float16"):
        x * h
    with pytest.raises(DTypeError, match="float literal 1.5"):
        i + 1.5
    assert (x + cast(i, "float32")).dtype == "float32"


def test_store_dtype_and_arity_checked():
    A = Buffer("A", (4, 4), "float32")
    i = Var("i")
    with pytest.raises(IndexError, match="A has 2 dimension"):
        A[i]
    with pytest.raises(DTypeError, match="cannot store"):
        BufferStore(A, Var("n", "int32"), (i, i))
    with pytest.raises(DTypeError, match="must be an integer"):
        A[Var("f", "float32"), i]


def test_symbolic_expression_is_not_a_python_bool():
    i = Var("i")
    with pytest.raises(TypeError, match="Python bool"):
        if i < 3:
            pass


def test_nodes_are_immutable_and_replace_shares():
    i = Var("i")
    A = Buffer("A", (8,), "float32")
    store = BufferStore(A, A[i] + 1.0, (i,))
    loop = For(i, 0, 8, "serial", store)
    with pytest.raises(Exception):
        loop.extent = IntImm(4)
    loop2 = loop.replace(kind="parallel")
    assert loop2.body is loop.body and loop.kind == "serial" and loop2.kind == "parallel"
    with pytest.raises(TypeError):
        loop.annotations["x"] = 1


def test_bfloat16_numpy_interop():
    import ml_dtypes

    assert to_numpy("bfloat16") == np.dtype(ml_dtypes.bfloat16)
    assert from_numpy(ml_dtypes.bfloat16) == "bfloat16"
    assert from_numpy(np.float16) == "float16"


def _matmul_func(n=16):
    A, B, C = (Buffer(nm, (n, n), "float32") for nm in "ABC")
    i, j, k = Var("i"), Var("j"), Var("k")
    vi, vj, vk = Var("vi"), Var("vj"), Var("vk")
    block = Block(
        "C",
        iter_vars=(IterVar(vi, Range(0, n)), IterVar(vj, Range(0, n)), IterVar(vk, Range(0, n), "reduce")),
        reads=(A[vi, vk:vk + 1], B[vk:vk + 1, vj]),
        writes=(C[vi:vi + 1, vj:vj + 1],),
        body=BufferStore(C, C[vi, vj] + A[vi, vk] * B[vk, vj], (vi, vj)),
        init=BufferStore(C, 0.0, (vi, vj)),
    )
    realize = BlockRealize((i, j, k), True, block)
    body = For(i, 0, n, "serial", For(j, 0, n, "serial", For(k, 0, n, "serial", realize)))
    params = [Var(nm.lower(), "handle") for nm in "abc"]
    return PrimFunc(params, dict(zip(params, (A, B, C))), body, {"global_symbol": "mm"})


def test_structural_equality_up_to_renaming():
    f, g = _matmul_func(), _matmul_func()
    assert structural_equal(f, g)
    assert structural_hash(f) == structural_hash(g)
    h = _matmul_func(8)
    assert not structural_equal(f, h)
    assert structural_hash(f) != structural_hash(h)


def test_structural_equality_requires_consistent_mapping():
    i, j = Var("i"), Var("j")
    assert not structural_equal(i + i, i + j)
    assert not structural_equal(i + j, i + i)
    assert structural_equal(i + j, j + i)  # renaming i<->j is consistent


def test_assert_structural_equal_names_the_place():
    f = _matmul_func()
    g = _matmul_func()
    loop = g.body.body
    g2 = g.replace(body=g.body.replace(body=loop.replace(kind="parallel")))
    with pytest.raises(StructuralMismatch, match=r"\.body\.body\.kind"):
        assert_structural_equal(f, g2)


def test_substitute_and_collect_vars():
    i, j = Var("i"), Var("j")
    e = substitute(i * 4 + j, {i: j + 1})
    assert collect_vars(e) == [j]
    f = _matmul_func()
    names = {v.name for v in collect_vars(f.body)}
    assert {"i", "j", "k", "vi", "vj", "vk"} <= names


def test_mutator_shares_unchanged_subtrees():
    f = _matmul_func()

    class Parallelize(Mutator):
        def visit_For(self, loop):
            body = self.visit(loop.body)
            kind = "parallel" if loop.loop_var.name == "i" else loop.kind
            return loop.replace(body=body, kind=kind)

    g = Parallelize().visit(f)
    assert g.body.kind == "parallel" and f.body.kind == "serial"
    assert g.body.body is f.body.body  # the j loop is shared


def test_visitor_counts_nodes():
    f = _matmul_func()
    loads = []

    class V(Visitor):
        def visit_BufferLoad(self, n):
            loads.append(n.buffer.name)
            self.generic_visit(n)

    V().visit(f.body)
    assert sorted(loads) == ["A", "B", "C"]


def test_pickle_round_trip_keeps_structure():
    f = _matmul_func()
    g = pickle.loads(pickle.dumps(f))
    assert structural_equal(f, g)


def test_block_realize_checks_bindings():
    vi = Var("vi")
    A = Buffer("A", (4,), "float32")
    blk = Block("B", (IterVar(vi, Range(0, 4)),), (), (), BufferStore(A, 1.0, (vi,)))
    with pytest.raises(ValueError, match="1 iteration variables but 2 bindings"):
        BlockRealize((Var("i"), Var("j")), True, blk)
    with pytest.raises(ValueError, match="unknown loop kind"):
        For(Var("i"), 0, 4, "sideways", SeqStmt((BufferStore(A, 1.0, (0,)),)))
