"""Caches of a symbolic size (``n = te.var("n")``) whose loop was split by a factor that need not
divide ``n``: every caching primitive, moved under the split's outer loop, checked against numpy
with the reference interpreter and with LLVM for several ``n`` (multiples of the split and not).

A cache block moved by ``compute_at`` / ``reverse_compute_at`` covers a whole tile of the split,
so for the last, partial tile it must be guarded (``i_0 * 32 + ax0 < n``); unguarded, the LLVM
build read past the input and wrote past the output (``double free or corruption``). The LLVM
runs therefore happen in a child process (this file run as a script), so that a crash fails the
test instead of killing the test runner.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import workbench as wb
from workbench import te

SIZES = (1, 31, 32, 33, 100)


def _elementwise():
    n = te.var("n")
    A = te.placeholder((n,), "float32", name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    return wb.create_prim_func([A, B])


def _matmul():
    n = te.var("n")
    A = te.placeholder((n, 16), "float32", name="A")
    W = te.placeholder((16, 24), "float32", name="W")
    k = te.reduce_axis(16, name="k")
    C = te.compute((n, 24), lambda i, j: te.sum(A[i, k] * W[k, j], axis=k), name="C")
    return wb.create_prim_func([A, W, C])


@wb.prim_func
def _accumulate(a: wb.handle, c: wb.handle):
    n = wb.int32()
    A = wb.match_buffer(a, (n,), "float32")
    C = wb.match_buffer(c, (n,), "float32")
    for i in wb.serial(n):
        with wb.block("C"):
            vi = wb.axis.spatial(n, i)
            C[vi] = C[vi] + A[vi]


def _split_outer(sch, block):
    outer, _ = sch.split(sch.get_loops(block)[0], factors=[None, 32])
    return outer


def read_at_outer():
    sch = wb.Schedule(_elementwise())
    b = sch.get_block("B")
    sch.compute_at(sch.cache_read(b, 0, "local"), _split_outer(sch, b))
    return sch


def read_at_inner():
    sch = wb.Schedule(_elementwise())
    b = sch.get_block("B")
    _split_outer(sch, b)
    sch.compute_at(sch.cache_read(b, 0, "local"), sch.get_loops(b)[1])
    return sch


def write_at_outer():
    sch = wb.Schedule(_elementwise())
    b = sch.get_block("B")
    outer = _split_outer(sch, b)
    sch.reverse_compute_at(sch.cache_write(b, 0, "local"), outer)
    return sch


def write_in_place():
    """cache_write without moving the copy: it copies back the whole of ``B``."""
    sch = wb.Schedule(_elementwise())
    b = sch.get_block("B")
    _split_outer(sch, b)
    sch.cache_write(b, 0, "local")
    return sch


def matmul_read_write():
    sch = wb.Schedule(_matmul())
    c = sch.get_block("C")
    outer = _split_outer(sch, c)
    sch.compute_at(sch.cache_read(c, 1, "shared"), outer)       # reads: C, A, W -> A
    sch.reverse_compute_at(sch.cache_write(c, 0, "local"), outer)
    return sch


def inplace_at_outer():
    sch = wb.Schedule(_accumulate)
    c = sch.get_block("C")
    outer = _split_outer(sch, c)
    copy_in, copy_out = sch.cache_inplace(c, 0, "local")
    sch.compute_at(copy_in, outer)
    sch.reverse_compute_at(copy_out, outer)
    return sch


SCENARIOS = {f.__name__: f for f in (read_at_outer, read_at_inner, write_at_outer, write_in_place,
                                     matmul_read_write, inplace_at_outer)}


def arrays(name: str, n: int, seed: int = 0):
    """Inputs, a poisoned output and the numpy result for scenario ``name`` at size ``n``."""
    rng = np.random.default_rng(seed + n)
    if name.startswith("matmul"):
        a, w = rng.standard_normal((n, 16)).astype("float32"), rng.standard_normal((16, 24)).astype("float32")
        return [a, w, np.full((n, 24), np.nan, "float32")], a @ w
    a = rng.standard_normal(n).astype("float32")
    if name.startswith("inplace"):
        c = rng.standard_normal(n).astype("float32")
        return [a, c], c + a
    return [a, np.full(n, np.nan, "float32")], a * 2.0 + 1.0


def run_llvm(name: str) -> None:
    """Build scenario ``name`` with LLVM and check it for every size (in the child process)."""
    f = wb.build(SCENARIOS[name]().mod, target="llvm")
    for n in SIZES:
        args, expected = arrays(name, n)
        f(*args)
        np.testing.assert_allclose(args[-1], expected, rtol=1e-5, atol=1e-5, err_msg=f"{name}, n={n}")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_symbolic_cache_interpreter(name):
    from workbench.ir.interpreter import evaluate

    func = SCENARIOS[name]().func
    for n in SIZES:
        args, expected = arrays(name, n)
        evaluate(func, *args)   # raises on an access or binding outside its bounds
        np.testing.assert_allclose(args[-1], expected, rtol=1e-5, atol=1e-5, err_msg=f"n={n}")


def test_moved_cache_blocks_are_guarded():
    """The copy under the split's outer loop covers a whole tile: only the part below n is copied."""
    script = write_at_outer().func.script()
    assert "wb.where(i_0 * 32 + ax0_1 < n)" in script, script


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_symbolic_cache_llvm(name):
    pytest.importorskip("llvmlite")
    proc = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"


if __name__ == "__main__":
    run_llvm(sys.argv[1])
