"""The OpenCL backend: OpenCL C from thread-bound programs, built and launched with pyopencl.

PoCL (``pocl-opencl-icd``) runs the kernels on the CPU where there is no GPU.
Schedule a program for a GPU by binding its loops to thread axes, then build it:

>>> import numpy as np
>>> import workbench as wb
>>> from workbench import te
>>> n = te.var("n")
>>> A = te.placeholder((n,), "float32", name="A")
>>> B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
>>> sch = wb.Schedule(wb.create_prim_func([A, B]))
>>> bx, tx = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 64])
>>> sch.bind(bx, "blockIdx.x"); sch.bind(tx, "threadIdx.x")
>>> f = wb.build(sch.mod, target="opencl")          # doctest: +SKIP
>>> dev = wb.device("opencl")                        # doctest: +SKIP
>>> a = wb.nd.array(np.arange(100, dtype="float32"), dev); b = wb.nd.empty((100,), "float32", dev)  # doctest: +SKIP
>>> f(a, b); b.numpy()[:3].tolist()                  # doctest: +SKIP
[1.0, 2.0, 3.0]
>>> print(f.source("cl"))                            # doctest: +SKIP
"""
from __future__ import annotations

import time

from ..driver import register_backend
from ..target import BackendUnavailableError, Target
from .codegen import ModuleSource, OpenCLCodegenError, generate
from .host_device import UnboundLoopError, split_host_device
from .runtime import DeviceLimitError, OpenCLFunction, OpenCLModule


def build_opencl(funcs: dict, tgt: Target, *, checks: bool = False, emulate: bool = False,
                 allow_extern=frozenset()) -> OpenCLModule:
    """Lower every function for ``tgt``, generate one OpenCL C program for all their kernels, build it once."""
    from ..lower import lower
    from .runtime import check_static_limits, device_index_for, device_state

    if checks:
        raise BackendUnavailableError("checks=True (run-time bound checks) is not available for opencl targets; "
                                      "check the program with target=\"llvm\" and checks=True first")
    if emulate:
        raise BackendUnavailableError("emulate=True is for CPU targets; opencl programs run on an OpenCL device")
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
    index = device_index_for(tgt)
    state = device_state(index)
    check_static_limits(source, tgt, state.device)
    mod = OpenCLModule(tgt, source, index, {"lower+codegen": t1 - t0})
    mod.program = state.build(source.text)
    mod.times["compile"] = time.perf_counter() - t1
    for n, f in funcs.items():
        mod.functions[n] = OpenCLFunction(mod, n, f, lowered[n], per_func[n])
    return mod


register_backend("opencl", build_opencl, split_host_device=split_host_device)

__all__ = ["build_opencl", "UnboundLoopError", "DeviceLimitError", "OpenCLCodegenError", "OpenCLModule",
           "OpenCLFunction"]
