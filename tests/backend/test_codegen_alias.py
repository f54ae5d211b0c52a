"""LLVM is told that distinct buffers never overlap (``!alias.scope`` / ``!noalias`` on every buffer
access) and that allocations are 64-byte aligned, so a register-tiled matmul keeps its accumulators
in registers for the whole k loop, as TVM's code does (issue 16)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import workbench as wb
from workbench import te

AVX512 = "llvm -mcpu=skylake-avx512"
AVX2 = "llvm -mcpu=znver3"


def _matmul(n: int):
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def register_tiled_matmul(n: int, lanes: int) -> wb.Schedule:
    """Issue 16's schedule: i split 64 / 8, j split (16 * lanes) / lanes, reordered i0 j0 i1 j1 k i2 j2,
    C accumulated in a local cache at j1, B packed as ``[j // lanes, k, j % lanes]``, i0 and j0 fused
    and parallel, i2 unrolled, j2 vectorized, the reduction's init decomposed."""
    sch = wb.Schedule(_matmul(n))
    c = sch.get_block("C")
    i, j, k = sch.get_loops(c)
    i0, i1, i2 = sch.split(i, factors=[None, 8, 8])
    j0, j1, j2 = sch.split(j, factors=[None, 16, lanes])
    sch.reorder(i0, j0, i1, j1, k, i2, j2)
    cl = sch.cache_write(c, 0, "local")
    sch.reverse_compute_at(cl, j1)
    bp = sch.cache_read(c, 1, "global")
    sch.transform_layout(bp, ("write", 0), lambda kk, jj: (jj // lanes, kk, jj % lanes))
    sch.parallel(sch.fuse(i0, j0))
    sch.unroll(i2)
    sch.vectorize(j2)
    sch.decompose_reduction(c, k)
    return sch


_LABEL = re.compile(r"^(\.LBB\w+):")
_BRANCH = re.compile(r"^\s+j\w+\s+(\.LBB\w+)")


def innermost_fma_loops(asm: str) -> list[list[str]]:
    """The instructions of each innermost loop (a label, then a branch back to it, no label between)
    that contains a vector FMA."""
    lines = asm.splitlines()
    loops, label, start = [], None, 0
    for n, line in enumerate(lines):
        m = _LABEL.match(line)
        if m:
            label, start = m.group(1), n + 1
            continue
        b = _BRANCH.match(line)
        if b and b.group(1) == label:
            body = [ln.strip() for ln in lines[start:n + 1] if ln.startswith("\t") and not ln.strip().startswith(".")]
            if any("vfmadd" in ln for ln in body):
                loops.append(body)
    return loops


def stores(body: list[str]) -> list[str]:
    """The instructions of ``body`` that write memory (AT&T syntax: a memory operand last)."""
    return [ln for ln in body if ln.split()[0].startswith(("vmov", "mov")) and ln.rstrip().endswith(")")]


def single_block_fma_loops(ll: str) -> list[list[str]]:
    """The instructions of each loop of the optimised LLVM IR that is one basic block branching back
    to itself (an innermost loop) and computes vector multiply-adds."""
    loops = []
    for block in re.split(r"\n(?=[\w.]+:)", ll):
        name = block.split(":", 1)[0]
        body = []
        for ln in block.splitlines()[1:]:
            if not ln.startswith("  "):   # the end of the function
                break
            body.append(ln)
        if body and f"label %{name}," in body[-1] + "," and any("fmuladd" in ln or "llvm.fma" in ln or
                                                                 "fmul" in ln for ln in body):
            loops.append(body)
    return loops


@pytest.mark.parametrize("target, lanes", [(AVX512, 16), (AVX2, 8)])
def test_register_tiled_matmul_keeps_accumulators_in_registers(target, lanes):
    f = wb.build(register_tiled_matmul(1024, lanes).mod, target=target)   # the size
    ir_loops = single_block_fma_loops(f.source("ll"))
    assert ir_loops, "no innermost loop with multiply-adds in the optimised IR"
    for body in ir_loops:   # was one store per multiply-add: C_local might alias B_global
        assert not [ln for ln in body if ln.lstrip().startswith("store")], "\n".join(body)
    loops = innermost_fma_loops(f.source("asm"))
    assert loops, "no innermost loop with FMAs found"
    for body in loops:
        assert len([ln for ln in body if "vfmadd" in ln]) >= 8, body      # the 8 unrolled rows of the tile
        written = [ln for ln in stores(body) if target == AVX512 or "(%rsp)" not in ln]
        assert written == [], "\n".join(body)  # AVX2's 16 registers may spill a temporary, never to a buffer


def test_buffer_accesses_carry_alias_scopes():
    f = wb.build(register_tiled_matmul(1024, 16).mod, target=AVX512)
    raw = f.source("ll-raw")
    accesses = [ln for ln in raw.splitlines() if re.search(r"= load <16 x float>|store <16 x float>", ln)]
    assert accesses and all("!alias.scope" in ln and "!noalias" in ln for ln in accesses), accesses
    for name in ("A", "B_global", "C_local", "C"):
        assert '"wb.buffer.' in raw and f".{name}\"" in raw, name


def test_allocations_captured_by_a_parallel_loop_are_known_aligned():
    f = wb.build(register_tiled_matmul(1024, 16).mod, target=AVX512)
    par = re.split(r"define [^\n]*_par0", f.source("ll-raw"))[1]
    aligned = re.findall(r"load ptr, ptr [^\n]*!align", par)
    assert len(aligned) >= 1, par[:2000]        # B_global (heap) reaches the parallel body aligned
    assert "vmovaps" in f.source("asm")         # and the packed panel is read with aligned loads


@pytest.mark.parametrize("n", [256, 512])   # C_local a small stack tile (256), a heap buffer (512)
def test_register_tiled_matmul_matches_numpy(n, rng):
    target = "llvm"
    lanes = wb.Target(target).vector_lanes("float32")
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.full((n, n), np.nan, np.float32)
    wb.build(register_tiled_matmul(n, lanes).mod, target=target)(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)


def test_same_array_for_two_read_only_parameters(rng):
    """Read-only arguments may share memory: no access of either is a write, so noalias changes nothing."""
    n = 256
    a = rng.random((n, n), dtype=np.float32)
    c = np.full((n, n), np.nan, np.float32)
    wb.build(register_tiled_matmul(n, wb.Target("llvm").vector_lanes("float32")).mod, target="llvm")(a, a, c)
    np.testing.assert_allclose(c, a @ a, rtol=1e-4)


def test_in_place_update_of_one_buffer_through_two_indices(rng):
    """Accesses of one buffer share one scope, so LLVM still orders a read after a write of it."""
    from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var

    x = Var("x", "handle")
    X = Buffer("X", (64,), "float32")
    i = Var("i")
    body = For(i, 1, 63, "serial", BufferStore(X, X[i - 1] + X[i], [i]))   # i = 1 .. 63
    f = wb.build(PrimFunc([x], {x: X}, body, {"global_symbol": "prefix"}), target="llvm")
    v = rng.random(64, dtype=np.float32)
    want = np.cumsum(v)
    f(v)
    np.testing.assert_allclose(v, want, rtol=1e-5)
