"""The CUDA backend: CUDA C from thread-bound programs, compiled to PTX with NVRTC, run with the driver API.

It shares the OpenCL backend's host/device split and C renderer. Without an NVIDIA
driver everything up to PTX works: ``wb.build`` returns a module whose
``source("cuda")`` and ``source("ptx")`` are there, and calling it says that there is
no CUDA driver. The architecture is the target's ``-arch``, else the device's, else
``sm_80`` (no device). The tensor-core intrinsics for ``sch.tensorize`` are in
:mod:`workbench.backend.cuda.intrin` (registered when this package is imported).

With PyTorch in the same process, import torch before the first CUDA build: on an
H100 machine (torch 2.11, NVRTC 13, driver 580) a torch imported *after* an NVRTC
compile failed to import (``RuntimeError: expected ident but found ')'`` from its
operator-schema parser), while one imported first worked alongside workbench's kernels
in the same process. The cause is not established yet.

>>> import workbench as wb
>>> from workbench import te
>>> import workbench.backend.cuda
>>> A = te.placeholder((1024,), "float32", name="A")
>>> B = te.compute((1024,), lambda i: A[i] + 1.0, name="B")
>>> sch = wb.Schedule(wb.create_prim_func([A, B]))
>>> bx, tx = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 256])
>>> sch.bind(bx, "blockIdx.x"); sch.bind(tx, "threadIdx.x")
>>> f = wb.build(sch.mod, target="cuda -arch=sm_80")  # doctest: +SKIP
>>> ".visible .entry main_kernel0" in f.source("ptx")  # doctest: +SKIP
True
>>> dev = wb.device("cuda", 0)                         # doctest: +SKIP
>>> a = wb.nd.array(np.ones(1024, "float32"), dev); b = wb.nd.empty((1024,), "float32", dev)  # doctest: +SKIP
>>> f(a, b); b.numpy()[:2].tolist()                   # doctest: +SKIP
[2.0, 2.0]
"""
from __future__ import annotations

import time

from ..driver import register_backend
from ..target import BackendUnavailableError, Target
from ..opencl.codegen import ModuleSource
from ..opencl.host_device import UnboundLoopError, make_split_host_device
from ..opencl.runtime import DeviceLimitError
from . import intrin  # noqa: F401  (registers the tensor-core intrinsics)
from .codegen import CUDACodegenError, generate
from .compile import DEFAULT_ARCH, NVRTCError, compile_cuda
from .runtime import NO_DRIVER, CUDAFunction, CUDAModule, check_static_limits, device_state, driver_version


def build_cuda(funcs: dict, tgt: Target, *, checks: bool = False, emulate: bool = False,
               allow_extern=frozenset()) -> CUDAModule:
    """Lower every function for ``tgt``, generate one CUDA C program for all their kernels, compile it once."""
    from ..lower import lower

    if checks:
        raise BackendUnavailableError("checks=True (run-time bound checks) is not available for cuda targets; "
                                      "check the program with target=\"llvm\" and checks=True first")
    if emulate:
        raise BackendUnavailableError("emulate=True is for CPU targets; cuda programs run on an NVIDIA GPU")
    t0 = time.perf_counter()
    funcs = {n: f if f.name == n else f.with_attr("global_symbol", n) for n, f in funcs.items()}
    lowered = {n: lower(f, tgt) for n, f in funcs.items()}
    source = ModuleSource("")
    per_func = {}
    for n, low in lowered.items():
        before = len(source.kernels)
        generate(low, source)
        per_func[n] = {k.name: k for k in source.kernels[before:]}
    t1 = time.perf_counter()
    state = device_state(0) if driver_version() is not None else None
    check_static_limits(source, tgt, state)
    arch = tgt.arch or (state.arch if state is not None else DEFAULT_ARCH)
    compiled = compile_cuda(source.text, arch)
    mod = CUDAModule(tgt, source, compiled, 0, {"lower+codegen": t1 - t0, "nvrtc": time.perf_counter() - t1})
    for n, f in funcs.items():
        mod.functions[n] = CUDAFunction(mod, n, f, lowered[n], per_func[n])
    if state is not None:
        mod.load()
    return mod


register_backend("cuda", build_cuda, split_host_device=make_split_host_device("cuda"))

__all__ = ["build_cuda", "CUDAModule", "CUDAFunction", "CUDACodegenError", "NVRTCError", "UnboundLoopError",
           "DeviceLimitError", "NO_DRIVER"]
