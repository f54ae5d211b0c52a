"""int8 (u8 x s8 -> s32), bf16 and fp32 matmul on this CPU, with and without tensor intrinsics.

Run: ``.venv/bin/python benchmarks/int8_matmul_cpu.py [--n 1024]``

Each tensorized variant is compared with the *same* loop schedule without the intrinsic,
and with the best schedule found without tensorize: a 4 x (2 * lanes) tile of C kept in
a local buffer (``cache_inplace``, loaded and stored once per tile), B pre-packed
``[N // lanes, K // group, lanes, group]`` (``[N // lanes, K, lanes]`` for fp32), the inner
``lanes x group`` tile tensorized with ``dot_u8s8_vnni`` where the CPU has AVX512-VNNI
and with ``dot_u8s8_avx2`` (both exact for full-range u8/s8 inputs), ``dot_bf16_avx512`` (else its AVX2 emulation),
``fma_f32x16_avx512`` (else ``fma_f32x8_avx2``). The int8 and fp32 rows also run tutorial
2's recipe (the flagship demo's "packed B" schedule, with its init and B packed inside the
function). Every result is checked against numpy before it is timed.

Where this CPU lacks AVX-512 VNNI / BF16, a second table runs the AVX-512 pairs
(``dot_u8s8_vnni``, ``dot_bf16_avx512``, ``fma_f32x16_avx512``, built for
``llvm -mcpu=sapphirerapids``) in the Bochs CPU emulator at ``--emulate-n`` (default 128),
checks them against numpy, and counts the instructions each retires: a measure of
the work the target CPU would do, independent of this machine. Emulated seconds
are not the target's speed and are shown only to say what the run cost.
"""
from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

import workbench as wb
from workbench.backend.llvm.target_intrinsics import missing_features
from workbench.demo import matmul_schedules, tile_sizes
from workbench.schedule.tensor_intrin import get_tensor_intrin


def program(n, lanes, group, in_a, in_b, acc, packed=True):
    """``C[i, j] += A[i, k] * B[k, j]`` with B packed ``[n // lanes, n // group, lanes, group]``
    (``[n // lanes, n, lanes]`` when ``group`` is 1), or plain ``[k, j]``."""
    if packed and group == 1:
        b_shape, b_idx = f"({n // lanes}, {n}, {lanes})", f"vj // {lanes}, vk, vj % {lanes}"
    elif packed:
        b_shape = f"({n // lanes}, {n // group}, {lanes}, {group})"
        b_idx = f"vj // {lanes}, vk // {group}, vj % {lanes}, vk % {group}"
    else:
        b_shape, b_idx = f"({n}, {n})", "vk, vj"
    cast = (lambda x: f'wb.cast({x}, "{acc}")') if in_a != acc else (lambda x: x)
    return wb.parse(f'''
@wb.prim_func
def mm(A: wb.Buffer(({n}, {n}), "{in_a}"), B: wb.Buffer({b_shape}, "{in_b}"), C: wb.Buffer(({n}, {n}), "{acc}")):
    for i, j, k in wb.grid({n}, {n}, {n}):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + {cast("A[vi, vk]")} * {cast(f"B[{b_idx}]")}
''')


def tiled_simple(func, lanes, ti=4):
    """Loops (i_0, j_0, k, i_1, j_1) with a ti x lanes tile of C in memory, j_1 vectorized, i_0 parallel."""
    sch = wb.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, ti])
    jo, ji = sch.split(j, factors=[None, lanes])
    sch.reorder(io, jo, k, ii, ji)
    sch.parallel(io)
    sch.vectorize(ji)
    return sch


def te_program(n, in_a, in_b, acc):
    """``C = A @ B`` with an init (``te.sum``), the form tutorial 2 schedules."""
    from workbench import te

    A = te.placeholder((n, n), in_a, name="A")
    B = te.placeholder((n, n), in_b, name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(te.cast(A[i, k], acc) * te.cast(B[k, j], acc), axis=k), name="C")
    return wb.create_prim_func([A, B, C])


def tutorial2(n, func, target="llvm"):
    """Tutorial 2's recipe (the flagship demo's "packed B": a 4 x 2*lanes register tile with
    ``cache_write`` + ``decompose_reduction``, vectorized, B packed in the function, row tiles
    parallel) applied to ``func``."""
    return matmul_schedules(n, target, func=func)["packed B"]


def register_tile(func, lanes, group, *, intrin=None, vectorize=False, mr=4, nsub=2):
    """An ``mr x (nsub * lanes)`` tile of C kept in a local buffer (``cache_inplace``: loaded once
    and stored once per tile), k innermost-but-one, the tile's rows and column vectors unrolled,
    row tiles parallel; the ``lanes x group`` inner tile tensorized with ``intrin`` (or vectorized,
    or left scalar). The programs accumulate into C, so there is no init to decompose."""
    sch = wb.Schedule(func)
    c = sch.get_block("C")
    copy_in, copy_out = sch.cache_inplace(c, 0, "local")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, factors=[None, mr])
    jo, jm, ji = sch.split(j, factors=[None, nsub, lanes])
    if group > 1:
        ko, ki = sch.split(k, factors=[None, group])
        sch.reorder(io, jo, ko, ii, jm, ji, ki)
        if intrin is None:
            sch.reorder(ki, ji)
    else:
        sch.reorder(io, jo, k, ii, jm, ji)
    sch.reverse_compute_at(copy_out, jo)
    sch.compute_at(copy_in, jo)
    for blk in (copy_in, copy_out):
        rows, cols = sch.get_loops(blk)[-2:]
        sch.unroll(rows)
        sch.vectorize(cols)
    sch.unroll(ii)
    sch.unroll(jm)
    sch.parallel(io)
    if intrin is not None:
        sch.tensorize(ji, intrin)
    elif vectorize:
        sch.vectorize(ji)
    return sch


def pack(b, lanes, group):
    k, n = b.shape
    if group == 1:
        return b.T.reshape(n // lanes, lanes, k).transpose(0, 2, 1).copy()
    return b.T.reshape(n // lanes, lanes, k // group, group).transpose(0, 2, 1, 3).copy()


def measure(sch, args, want, check, repeat):
    mod = wb.build(sch.func)
    out = args[-1]
    out[...] = 0
    mod(*args)
    check(out, want)
    times = []
    for _ in range(repeat):
        out[...] = 0
        t0 = time.perf_counter()
        mod(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def emulated_counts(n):
    """Instructions retired on an emulated Sapphire Rapids, with and without each AVX-512 intrinsic."""
    from workbench.backend import emulate

    if not emulate.available():
        print("\n(emulator not installed: pip install 'workbench[emulate]' for the AVX-512 instruction counts)")
        return
    spr = "llvm -mcpu=sapphirerapids"
    rng = np.random.default_rng(1)
    rows = []

    def count(sch, args, want, check):
        mod = wb.build(sch.func, target=spr, emulate=True)
        mod.count_instructions = True
        args[-1][...] = 0
        t0 = time.perf_counter()
        mod(*args)
        secs = time.perf_counter() - t0
        check(args[-1], want)
        return next(iter(mod.functions.values())).last_run.instructions, secs

    a = rng.integers(0, 256, (n, n)).astype("uint8")
    b = rng.integers(-128, 128, (n, n)).astype("int8")
    want = a.astype(np.int32) @ b.astype(np.int32)
    c = np.zeros((n, n), "int32")
    exact = np.testing.assert_array_equal
    rows.append(("int8 u8*s8->s32", "no tensorize: tutorial 2's recipe, 4 x 32 tile (zmm)",
                 *count(tutorial2(n, te_program(n, "uint8", "int8", "int32"), spr), [a, b, c], want, exact)))
    packed = program(n, 16, 4, "uint8", "int8", "int32")
    rows.append(("int8 u8*s8->s32", "tensorize dot_u8s8_vnni (vpdpbusd zmm), 4 x 32 tile",
                 *count(register_tile(packed, 16, 4, intrin="dot_u8s8_vnni"), [a, pack(b, 16, 4), c], want, exact)))

    def close(o, w):
        np.testing.assert_allclose(o, w, rtol=2e-3, atol=1e-2)

    ab = rng.standard_normal((n, n)).astype(ml_dtypes.bfloat16)
    bb = rng.standard_normal((n, n)).astype(ml_dtypes.bfloat16)
    wantb = ab.astype(np.float32) @ bb.astype(np.float32)
    cb = np.zeros((n, n), "float32")
    bprog = program(n, 16, 2, "bfloat16", "bfloat16", "float32")
    bbp = pack(bb, 16, 2)
    rows.append(("bf16->fp32", "same 4 x 32 register tile, no tensorize",
                 *count(register_tile(bprog, 16, 2), [ab, bbp, cb], wantb, close)))
    rows.append(("bf16->fp32", "tensorize dot_bf16_avx512 (vdpbf16ps zmm)",
                 *count(register_tile(bprog, 16, 2, intrin="dot_bf16_avx512"), [ab, bbp, cb], wantb, close)))
    af, bf = rng.random((n, n), dtype="float32"), rng.random((n, n), dtype="float32")
    wantf = af @ bf
    cf = np.zeros((n, n), "float32")
    fprog = program(n, 16, 1, "float32", "float32", "float32")
    bfp = pack(bf, 16, 1)
    rows.append(("fp32", "same 4 x 32 register tile, no tensorize, not vectorized",
                 *count(register_tile(fprog, 16, 1), [af, bfp, cf], wantf, close)))
    rows.append(("fp32", "tensorize fma_f32x16_avx512 (same tile)",
                 *count(register_tile(fprog, 16, 1, intrin="fma_f32x16_avx512"), [af, bfp, cf], wantf, close)))
    macs = n ** 3
    print(f"\nemulated Sapphire Rapids (Bochs), n = {n}: instructions retired per call, all checked against numpy")
    print(f"{'kind':<16} {'schedule':<56} {'instructions':>13} {'MACs/insn':>10} {'emulated s':>11}")
    for kind, what, insns, secs in rows:
        print(f"{kind:<16} {what:<56} {insns:13,d} {macs / insns:10.2f} {secs:11.2f}")
    for k in range(0, len(rows), 2):
        print(f"{rows[k][0]}: the tensorized schedule retires {rows[k][2] / rows[k + 1][2]:.2f}x fewer "
              "instructions than the one above it")


def pick(*names):
    host = wb.Target("llvm")
    for nm in names:
        if not missing_features(get_tensor_intrin(nm).target_features, host):
            return nm
    return None


def main(n=1024, repeat=3, emulate_n=128):
    rng = np.random.default_rng(0)
    ops = 2.0 * n ** 3
    host = wb.Target("llvm")
    print(f"host: {host.cpu}  (avx2={host.has('avx2')}, avx512f={host.has('avx512f')}, "
          f"avx512vnni={host.has('avx512vnni')}, avx512bf16={host.has('avx512bf16')}); n = {n}")
    rows = []
    exact = np.testing.assert_array_equal

    def close(o, w):
        np.testing.assert_allclose(o, w, rtol=2e-3, atol=1e-2)

    # int8 ------------------------------------------------------------------------------
    i8 = pick("dot_u8s8_vnni", "dot_u8s8_avx2")
    a = rng.integers(0, 256, (n, n)).astype("uint8")   # full range: both int8 intrinsics are exact
    b = rng.integers(-128, 128, (n, n)).astype("int8")
    want = a.astype(np.int32) @ b.astype(np.int32)
    c = np.zeros((n, n), "int32")
    mr, nr, _ = tile_sizes()
    plain = program(n, 32, 1, "uint8", "int8", "int32", packed=False)
    candidates = {
        "no tensorize: i4 x j32 tile, j vectorized, i_0 parallel":
            (tiled_simple(plain, 32), (a, b, c)),
        f"no tensorize: tutorial 2's recipe ({mr} x {nr} register tile, B packed)":
            (tutorial2(n, te_program(n, "uint8", "int8", "int32")), (a, b, c)),
    }
    t_int = None
    for what, (sch, args) in candidates.items():
        t = measure(sch, args, want, exact, repeat)
        rows.append(("int8 u8*s8->s32", what, t))
        t_int = t if t_int is None else min(t_int, t)
    t_i8 = None
    for name in [nm for nm in ("dot_u8s8_vnni", "dot_u8s8_avx2") if pick(nm)]:
        lanes = 16 if name == "dot_u8s8_vnni" else 8
        packed = program(n, lanes, 4, "uint8", "int8", "int32")
        t = measure(register_tile(packed, lanes, 4, intrin=name), (a, pack(b, lanes, 4), c), want, exact, repeat)
        rows.append(("int8 u8*s8->s32", f"tensorize {name} (4 x {2 * lanes} register tile, B packed)", t))
        t_i8 = t if name == i8 else t_i8
    # fp32 --------------------------------------------------------------------------------
    f32 = pick("fma_f32x16_avx512", "fma_f32x8_avx2")
    fl = 16 if f32.endswith("avx512") else 8
    af, bf = rng.random((n, n), dtype="float32"), rng.random((n, n), dtype="float32")
    wantf = af @ bf
    cf = np.zeros((n, n), "float32")
    fprog = program(n, fl, 1, "float32", "float32", "float32")
    bfp = pack(bf, fl, 1)
    t_f_plain = measure(register_tile(fprog, fl, 1), (af, bfp, cf), wantf, close, repeat)
    rows.append(("fp32", f"4 x {2 * fl} register tile, B packed, no tensorize, not vectorized", t_f_plain))
    t_f_vec = measure(register_tile(fprog, fl, 1, vectorize=True), (af, bfp, cf), wantf, close, repeat)
    rows.append(("fp32", "same tile, j vectorized (no tensorize)", t_f_vec))
    t_f = measure(register_tile(fprog, fl, 1, intrin=f32), (af, bfp, cf), wantf, close, repeat)
    rows.append(("fp32", f"same tile, tensorize {f32}", t_f))
    t_demo = measure(tutorial2(n, te_program(n, "float32", "float32", "float32")), (af, bf, cf), wantf, close, repeat)
    rows.append(("fp32", "tutorial 2's recipe (the flagship demo's packed B)", t_demo))
    t_f_best = min(t_f_vec, t_demo)
    # bf16 --------------------------------------------------------------------------------
    b16 = pick("dot_bf16_avx512", "dot_bf16_avx2_emulated")
    bl = 16 if b16 == "dot_bf16_avx512" else 8
    ab = rng.standard_normal((n, n)).astype(ml_dtypes.bfloat16)
    bb = rng.standard_normal((n, n)).astype(ml_dtypes.bfloat16)
    wantb = ab.astype(np.float32) @ bb.astype(np.float32)
    cb = np.zeros((n, n), "float32")
    bprog = program(n, bl, 2, "bfloat16", "bfloat16", "float32")
    bbp = pack(bb, bl, 2)
    t_b_plain = measure(register_tile(bprog, bl, 2), (ab, bbp, cb), wantb, close, repeat)
    rows.append(("bf16->fp32", f"4 x {2 * bl} register tile, B packed, no tensorize", t_b_plain))
    t_b = measure(register_tile(bprog, bl, 2, intrin=b16), (ab, bbp, cb), wantb, close, repeat)
    rows.append(("bf16->fp32", f"same tile, tensorize {b16}", t_b))

    print(f"\n{'kind':<16} {'schedule':<66} {'ms':>9} {'GOP/s':>8}")
    for kind, what, t in rows:
        print(f"{kind:<16} {what:<66} {t * 1e3:9.1f} {ops / t / 1e9:8.2f}")
    print(f"\nint8: tensorized ({i8}) / best int schedule without tensorize = {t_int / t_i8:.2f}x faster")
    print(f"int8 tensorized vs fp32 best: {t_f_best / t_i8:.2f}x")
    print(f"fp32: {f32} / same tile without it = {t_f_plain / t_f:.2f}x; "
          f"vs the same tile vectorized = {t_f_vec / t_f:.2f}x")
    print(f"bf16: {b16} / same tile without it = {t_b_plain / t_b:.2f}x")
    if emulate_n and not (host.has("avx512vnni") and host.has("avx512bf16")):
        emulated_counts(emulate_n)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--emulate-n", type=int, default=128,
                   help="size of the emulated AVX-512 runs (instruction counts); 0 skips them")
    p.add_argument("--emulate-only", action="store_true", help="only the emulated table")
    args = p.parse_args()
    if args.emulate_only:
        emulated_counts(args.emulate_n)
    else:
        main(args.n, args.repeat, args.emulate_n)
