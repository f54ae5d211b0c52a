"""Structural equality and hashing work on deep expressions (no RecursionError at a few thousand levels)."""
from workbench.ir import Buffer, Var
from workbench.ir.expr import Add, BufferLoad
from workbench.ir.structural import structural_equal, structural_hash


def _chain(depth: int, buf: Buffer, i: Var):
    e = BufferLoad(buf, [i])
    for _ in range(depth):
        e = Add(e, BufferLoad(buf, [i]))
    return e


def test_deep_expressions_compare_and_hash():
    a_buf, b_buf = Buffer("A", (4,)), Buffer("B", (4,))
    i, j = Var("i"), Var("j")
    a, b = _chain(2000, a_buf, i), _chain(2000, b_buf, j)   # equal up to renaming
    assert structural_equal(a, b)
    assert structural_hash(a) == structural_hash(b)
    assert not structural_equal(a, _chain(1999, b_buf, j))
