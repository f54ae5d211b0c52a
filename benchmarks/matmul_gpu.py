"""fp32 and fp16 (tensor-core) matmuls on an NVIDIA GPU: workbench schedules vs cuBLAS, in TFLOP/s.

Run:  .venv/bin/python benchmarks/matmul_gpu.py [--size 4096] [--repeats 10]
      .venv/bin/python benchmarks/matmul_gpu.py --ptx-only      # any machine: build every schedule to PTX
      .venv/bin/python benchmarks/matmul_gpu.py --opencl [--size 512]   # the fp32 schedules on OpenCL (PoCL)

It needs an NVIDIA GPU, its driver, the ``cuda`` extra (``pip install "workbench[cuda]"``)
and PyTorch or CuPy for cuBLAS (never dependencies). Without a GPU it says so and exits
(``--ptx-only`` still builds every schedule through NVRTC); importing it does nothing.
Prints one table: each program's time (CUDA events, median of ``--repeats`` runs after
a warm-up), TFLOP/s, and its ratio to cuBLAS of the same precision (fp32 with TF32 off;
fp16 inputs with fp32 accumulation). Results are checked against cuBLAS before timing.

Schedules: ``fp32 naive`` (one thread per element), ``fp32 tiled`` (course chapter 7:
blocks of 64 x 64, 8 x 8 per thread in registers; A and B read through the caches: the
shared-memory cooperative fetch under the thread-bound loops needs the C renderer to
accept a loop bound to the thread axis of a loop around it, not there yet), ``fp16 wmma`` (each warp accumulates 16 x 16 tiles of C with
``wmma.mma.sync``, operands from global memory; the accumulator tile goes through memory
on every k step, as the wmma intrinsic here works on memory, not on register fragments).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _matmul(n: int, in_dtype: str):
    from workbench import te
    import workbench as wb

    A = te.placeholder((n, n), in_dtype, name="A")
    B = te.placeholder((n, n), in_dtype, name="B")
    k = te.reduce_axis((0, n), name="k")
    if in_dtype == "float32":
        C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    else:
        C = te.compute((n, n), lambda i, j: te.sum(A[i, k].astype("float32") * B[k, j].astype("float32"), axis=k),
                       name="C")
    return wb.Schedule(wb.create_prim_func([A, B, C]))


def naive_fp32(n: int):
    sch = _matmul(n, "float32")
    i, j, _ = sch.get_loops(sch.get_block("C"))
    bx, tx = sch.split(sch.fuse(i, j), factors=[None, 256])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return sch


def tiled_fp32(n: int, tile: int = 8, threads: int = 8, k_tile: int = 8):
    """Blocks of (threads * tile)^2 outputs; each thread a tile x tile block of C in registers (``local``)."""
    sch = _matmul(n, "float32")
    blk = sch.get_block("C")
    i, j, k = sch.get_loops(blk)
    bi, ti, ii = sch.split(i, factors=[None, threads, tile])
    bj, tj, jj = sch.split(j, factors=[None, threads, tile])
    ko, ki = sch.split(k, factors=[None, k_tile])
    sch.reorder(bi, bj, ti, tj, ko, ki, ii, jj)
    sch.bind(bi, "blockIdx.y")
    sch.bind(bj, "blockIdx.x")
    sch.bind(ti, "threadIdx.y")
    sch.bind(tj, "threadIdx.x")
    local = sch.cache_write(blk, 0, "local")
    sch.reverse_compute_at(local, tj)
    sch.decompose_reduction(blk, ko)
    return sch


def wmma_fp16(n: int, warps=(4, 2)):
    import workbench.backend.cuda  # noqa: F401  (registers the wmma intrinsics)

    sch = _matmul(n, "float16")
    blk = sch.get_block("C")
    i, j, k = sch.get_loops(blk)
    bi, wi, i1 = sch.split(i, factors=[None, warps[0], 16])
    bj, wj, j1 = sch.split(j, factors=[None, warps[1], 16])
    k0, _ = sch.split(k, factors=[None, 16])
    sch.reorder(bi, bj, wi, wj, k0, i1, j1)
    sch.bind(bi, "blockIdx.y")
    sch.bind(bj, "blockIdx.x")
    sch.bind(wi, "threadIdx.z")
    sch.bind(wj, "threadIdx.y")
    init = sch.decompose_reduction(blk, k0)
    sch.tensorize(i1, "wmma_16x16x16_f16f32")
    sch.tensorize(sch.get_loops(init)[-2], "wmma_fill_16x16_f32")
    return sch


PROGRAMS = {"fp32 naive": (naive_fp32, "float32"), "fp32 tiled": (tiled_fp32, "float32"),
            "fp16 wmma": (wmma_fp16, "float16")}


def ptx_only(n: int) -> None:
    import workbench as wb

    for name, (make, _) in PROGRAMS.items():
        f = wb.build(make(n).mod, target="cuda -arch=sm_80")
        print(f"{name:12s} {len(f.source('ptx')):8d} bytes of PTX, {f.times}")


class _Cublas:
    """cuBLAS through PyTorch (preferred) or CuPy: random inputs, matmul, timing with CUDA events."""

    def __init__(self):
        try:
            import torch
            self.torch, self.cupy = torch, None
            torch.backends.cuda.matmul.allow_tf32 = False
        except ImportError:
            import cupy
            self.torch, self.cupy = None, cupy

    def random(self, n: int, dtype: str, seed: int):
        x = np.random.default_rng(seed).standard_normal((n, n)).astype(dtype)
        return self.torch.from_numpy(x).cuda() if self.torch else self.cupy.asarray(x)

    def zeros(self, n: int):
        return self.torch.zeros((n, n), device="cuda") if self.torch else self.cupy.zeros((n, n), "float32")

    def matmul(self, a, b):
        return a @ b

    def to_numpy(self, x) -> np.ndarray:
        return x.float().cpu().numpy() if self.torch else self.cupy.asnumpy(x).astype("float32")

    def time_ms(self, fn, repeats: int) -> float:
        fn()
        times = []
        for _ in range(repeats):
            if self.torch:
                s, e = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                e.synchronize()
                times.append(s.elapsed_time(e))
            else:
                s, e = self.cupy.cuda.Event(), self.cupy.cuda.Event()
                s.record()
                fn()
                e.record()
                e.synchronize()
                times.append(self.cupy.cuda.get_elapsed_time(s, e))
        return statistics.median(times)


def run(n: int, repeats: int) -> None:
    import workbench as wb
    from workbench.backend.cuda.runtime import device_state, driver_version

    if driver_version() is None:
        print("matmul_gpu: no NVIDIA GPU and driver on this machine; nothing to measure "
              "(--ptx-only builds the schedules to PTX)")
        return
    try:
        lib = _Cublas()
    except ImportError:
        print("matmul_gpu: needs PyTorch or CuPy for the cuBLAS reference; neither is installed")
        return
    flops = 2.0 * n ** 3
    rows = []
    ref = {}
    for dtype in ("float32", "float16"):
        a, b = lib.random(n, dtype, 0), lib.random(n, dtype, 1)
        ref[dtype] = (a, b, lib.time_ms(lambda: lib.matmul(a, b), repeats), lib.to_numpy(lib.matmul(a, b)))
        rows.append((f"cuBLAS {'fp32' if dtype == 'float32' else 'fp16'}", ref[dtype][2], None))
    for name, (make, dtype) in PROGRAMS.items():
        a, b, cublas_ms, expect = ref[dtype]
        f = wb.build(make(n).mod, target="cuda")
        c = lib.zeros(n)
        f(a, b, c)
        err = float(np.max(np.abs(lib.to_numpy(c) - expect)) / max(1.0, float(np.max(np.abs(expect)))))
        ms = lib.time_ms(lambda: f(a, b, c), repeats)
        rows.append((name, ms, cublas_ms, err))
    print(f"{n} x {n} x {n} matmul on {device_state(0).describe()}")
    print(f"{'program':14s} {'ms':>9s} {'TFLOP/s':>8s} {'vs cuBLAS':>10s} {'max rel err':>12s}")
    for row in rows:
        name, ms = row[0], row[1]
        ratio = f"{row[2] / ms:9.0%}" if row[2] else "        -"
        err = f"{row[3]:12.1e}" if len(row) > 3 else " " * 12
        print(f"{name:14s} {ms:9.3f} {flops / ms / 1e9:8.1f} {ratio:>10s} {err}")


def run_opencl(n: int) -> None:
    """The fp32 schedules on the OpenCL device (PoCL runs them on the CPU where there is no GPU), timed by
    ``wb.benchmark`` with the kernels' profiling events, against numpy on the host, in one table."""
    import workbench as wb

    try:
        import pyopencl  # noqa: F401
    except ImportError:
        print("matmul_gpu --opencl: pyopencl is not installed")
        return
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    variants = {"numpy": lambda x, y, out: np.matmul(x, y, out=out)}
    variants.update({name: make(n).mod for name, (make, dtype) in PROGRAMS.items() if dtype == "float32"})
    res = wb.benchmark(variants, target="opencl", args=(a, b, np.zeros((n, n), np.float32)), peak=None,
                       baseline="numpy", progress=False)
    print(f"{n} x {n} x {n} fp32 matmul on OpenCL (each program checked against numpy first)")
    print(res.table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--ptx-only", action="store_true", help="build every schedule to PTX (no GPU needed)")
    p.add_argument("--opencl", action="store_true", help="run the fp32 schedules on OpenCL (PoCL without a GPU)")
    args = p.parse_args(argv)
    if args.opencl:
        run_opencl(args.size)
    elif args.ptx_only:
        ptx_only(args.size)
    else:
        run(args.size, args.repeats)


if __name__ == "__main__":
    main()
