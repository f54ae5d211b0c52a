"""CUDA C code generation from a lowered, host/device-split program.

The OpenCL renderer (:class:`~workbench.backend.opencl.codegen.CKernelGen`) does the
C-family work; this module changes the dialect: ``extern "C" __global__`` kernels,
``blockIdx.x`` / ``threadIdx.x``, ``__shared__`` arrays, ``__syncthreads()``, C++ types.
NVRTC ships no headers here, so nothing is ``#include``d: ``float16`` values live in
memory as ``unsigned short`` and are computed in ``float``, rounded back to half after
every operation (``cvt.rn.f16.f32`` in inline PTX), which gives the IEEE half result.

Warp-collective calls (the ``wmma`` tensor-core helpers of :mod:`.intrin`) are run by
a whole warp with the same arguments: they may not sit inside a loop bound to
``threadIdx.x``; a kernel that uses them and binds nothing to ``threadIdx.x`` is
launched with ``threadIdx.x = 32`` (one warp per ``threadIdx.y/z`` index).

>>> import workbench as wb
>>> from workbench import te
>>> from workbench.backend.lower import lower
>>> from workbench.backend.target import Target
>>> import workbench.backend.cuda
>>> A = te.placeholder((128,), "float32", name="A")
>>> B = te.compute((128,), lambda i: A[i] * 2.0, name="B")
>>> sch = wb.Schedule(wb.create_prim_func([A, B]))
>>> io, ii = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 64])
>>> sch.bind(io, "blockIdx.x"); sch.bind(ii, "threadIdx.x")
>>> print(generate(lower(sch.mod, Target("cuda"))).kernels[0].source, end="")
extern "C" __global__ void __launch_bounds__(64) main_kernel0(float* __restrict__ A, float* __restrict__ B) {
  const int i_0 = blockIdx.x;
  const int i_1 = threadIdx.x;
  B[i_0 * 64 + i_1] = A[i_0 * 64 + i_1] * 2.0f;
}
"""
from __future__ import annotations

import dataclasses
import struct

from ...ir import expr as E
from ...ir.dtype import bits_of, is_float, lanes_of
from ...ir.expr import as_int
from ...ir.function import PrimFunc
from ..opencl.codegen import CKernelGen, Kernel, ModuleSource, kernel_roots
from ..opencl.host_device import KERNEL_KEY

#: IR dtype -> CUDA C type of a value in registers (float16 is computed in float)
CUDA_TYPES = {"float32": "float", "float64": "double", "float16": "float", "int8": "signed char",
              "uint8": "unsigned char", "int16": "short", "uint16": "unsigned short", "int32": "int",
              "uint32": "unsigned int", "int64": "long long", "uint64": "unsigned long long", "bool": "bool"}

#: dtypes whose memory type differs from their register type
_STORAGE = {"float16": "unsigned short", "bool": "unsigned char"}

_INTRINSICS = {"exp": "exp", "exp2": "exp2", "exp10": "exp10", "log": "log", "log2": "log2", "log10": "log10",
               "log1p": "log1p", "sqrt": "sqrt", "rsqrt": "rsqrt", "tanh": "tanh", "erf": "erf", "sin": "sin",
               "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh",
               "cosh": "cosh", "floor": "floor", "ceil": "ceil", "round": "round", "trunc": "trunc",
               "nearbyint": "rint", "pow": "pow", "atan2": "atan2", "fmod": "fmod", "copysign": "copysign",
               "hypot": "hypot", "fma": "fma"}

_RESERVED = set("""auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while bool
true false class namespace template typename new delete this operator private public protected friend virtual using
asm half min max abs exp log sqrt floor ceil round rint trunc pow sin cos tan erf tanh isnan isinf isfinite
blockIdx threadIdx blockDim gridDim warpSize dim3 __syncthreads __syncwarp""".split())

#: warp-collective helpers: name -> (index of the buffer each writes among the call's arguments, its C source)
WARP_HELPERS: dict[str, tuple[int, str]] = {}

_HALF_HELPERS = r"""__device__ __forceinline__ float wb_h2f(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short wb_f2h(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ float wb_rh(float f) { return wb_h2f(wb_f2h(f)); }
"""

_HELPERS = {
    "floordiv": "__device__ __forceinline__ {t} wb_floordiv_{d}({t} a, {t} b) {{ {t} q = a / b; "
                "return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q; }}",
    "floormod": "__device__ __forceinline__ {t} wb_floormod_{d}({t} a, {t} b) {{ {t} r = a % b; "
                "return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }}",
    "floormod_f": "__device__ __forceinline__ {t} wb_floormod_{d}({t} a, {t} b) {{ return a - floor(a / b) * b; }}",
    # NaN-propagating, like numpy's minimum/maximum
    "min": "__device__ __forceinline__ {t} wb_min_{d}({t} a, {t} b) {{ return (a < b || isnan(a)) ? a : b; }}",
    "max": "__device__ __forceinline__ {t} wb_max_{d}({t} a, {t} b) {{ return (a > b || isnan(a)) ? a : b; }}",
}


class CUDACodegenError(ValueError):
    """The program uses something the CUDA backend cannot express (the message says what and where)."""


@dataclasses.dataclass
class CUDAKernel(Kernel):
    """A kernel, plus the buffers its warp-collective calls write (they have no BufferStore in the IR)."""

    call_writes: tuple = ()


def cuda_type(dtype: str, where: str) -> str:
    if lanes_of(dtype) != 1:
        raise CUDACodegenError(f"{where}: vector dtype {dtype} (a vectorized loop); the cuda backend runs one "
                               "element per thread: remove sch.vectorize for GPU targets")
    t = CUDA_TYPES.get(dtype)
    if t is None:
        raise CUDACodegenError(f"{where}: dtype {dtype} has no CUDA C type; supported: {', '.join(CUDA_TYPES)}")
    return t


class CUDAKernelGen(CKernelGen):
    TYPES = CUDA_TYPES
    INTRINSICS = _INTRINSICS
    Error = CUDACodegenError
    BACKEND = "cuda"
    LANGUAGE = "CUDA C"
    BARRIER = "__syncthreads();"
    SHARED_PREFIX = "__shared__ "
    RESERVED = _RESERVED

    def __init__(self, module: ModuleSource, name: str):
        super().__init__(module, name)
        self.warp_calls: list[str] = []
        self.call_writes: dict[int, object] = {}

    # the dialect -------------------------------------------------------------------------------------------
    def c_type(self, dtype: str, where: str) -> str:
        return cuda_type(dtype, where)

    def storage_of(self, dtype: str, where: str) -> str:
        return _STORAGE.get(dtype) or cuda_type(dtype, where)

    def nonfinite(self, v: float, dtype: str) -> str:
        if dtype == "float64":
            bits = struct.unpack("<q", struct.pack("<d", v))[0]
            return f"__longlong_as_double({bits}LL)"
        bits = struct.unpack("<i", struct.pack("<f", v))[0]
        return f"__int_as_float({bits})"

    def thread_index(self, tag: str) -> str:
        return tag

    def buffer_param(self, buf) -> str:
        return f"{self.storage(buf.dtype)}* __restrict__ {self.names.get(buf, buf.name)}"

    def signature(self, params: list[str]) -> str:
        bounds = ""
        block = [as_int(self.thread_extent.get(f"threadIdx.{a}", E.IntImm(1))) for a in "xyz"]
        if self.warp_calls and "threadIdx.x" not in self.thread_extent:
            block[0] = 32
        if all(b is not None for b in block):
            bounds = f"__launch_bounds__({block[0] * block[1] * block[2]}) "
        return f'extern "C" __global__ void {bounds}{self.name}({", ".join(params)}) {{'

    # float16: computed in float, rounded to half after each operation --------------------------------------
    def wrap(self, text: str, dtype: str) -> str:
        if dtype == "float16":
            self.module.dtypes.add("float16")
            return f"wb_rh({text})"
        return super().wrap(text, dtype)

    def e_FloatImm(self, e: E.FloatImm):
        if e.dtype == "float16":
            return self.wrap(super().e_FloatImm(E.FloatImm(e.value, "float32")), "float16")
        return super().e_FloatImm(e)

    def e_Cast(self, e):
        if e.dtype == "float16":
            return self.wrap(f"(float){self._paren(e.value)}", "float16")
        return super().e_Cast(e)

    def e_FloorDiv(self, e):
        return self.wrap(super().e_FloorDiv(e), e.dtype) if e.dtype == "float16" else super().e_FloorDiv(e)

    def e_FloorMod(self, e):
        return self.wrap(super().e_FloorMod(e), e.dtype) if e.dtype == "float16" else super().e_FloorMod(e)

    def e_BufferLoad(self, e):
        text = super().e_BufferLoad(e)
        return f"wb_h2f({text})" if e.buffer.dtype == "float16" else text

    def s_BufferStore(self, s):
        if s.buffer.dtype != "float16":
            return super().s_BufferStore(s)
        buf = s.buffer
        self._use_buffer(buf)
        self.module.dtypes.add("float16")
        self.emit(f"{self.names.get(buf, buf.name)}[{self.expr(s.indices[0])}] = wb_f2h({self.expr(s.value)});")

    def e_Call(self, e):
        op, args = e.op, e.args
        if op == "popcount":
            fn = "__popcll" if bits_of(args[0].dtype) == 64 else "__popc"
            return f"(({self.t(e.dtype)}){fn}({self.expr(args[0])}))"
        if op == "call_extern" and e.args[0].value in WARP_HELPERS:
            return self._warp_call(e)
        text = super().e_Call(e)
        if e.dtype == "float16" and op != "if_then_else":
            return self.wrap(text, "float16")
        return text

    def _warp_call(self, e) -> str:
        name = e.args[0].value
        if "threadIdx.x" in self._open_tags:
            raise self.Error(f"kernel {self.name}: {name} is a warp-collective tensor-core operation (all 32 threads "
                             "of a warp run it together on one tile), so it cannot be inside a loop bound to "
                             "threadIdx.x; bind the warps to threadIdx.y / threadIdx.z instead")
        if self.divergent:
            raise self.Error(f"kernel {self.name}: {name} (warp-collective) is inside a branch on the thread index, "
                             "where not every thread of the warp reaches it")
        self.module.dtypes.add(("warp", name))
        self.warp_calls.append(name)
        written = WARP_HELPERS[name][0]
        texts = []
        for k, a in enumerate(e.args[1:]):
            if isinstance(a, E.BufferLoad):
                self._use_buffer(a.buffer)
                if k == written:
                    self.call_writes[id(a.buffer)] = a.buffer
                texts.append(f"&{self.names.get(a.buffer, a.buffer.name)}[{self.expr(a.indices[0])}]")
            else:
                texts.append(self.expr(a))
        return f"{name}({', '.join(texts)})"

    def run(self, root, order: dict) -> CUDAKernel:
        k = super().run(root, order)
        block = k.block
        if self.warp_calls:
            x = as_int(block[0])
            if "threadIdx.x" not in self.thread_extent:
                block = (E.IntImm(32),) + tuple(block[1:])
            elif x is None or x % 32:
                raise self.Error(f"kernel {self.name} calls {self.warp_calls[0]} (warp-collective) but threadIdx.x "
                                 f"has extent {block[0]}; it must be a multiple of 32 so whole warps run it")
        return CUDAKernel(**{f.name: getattr(k, f.name) for f in dataclasses.fields(Kernel)} | {"block": block},
                          call_writes=tuple(b.name for b in self.call_writes.values()))


def _preamble(module: ModuleSource) -> str:
    parts = []
    helpers = sorted(x for x in module.dtypes if isinstance(x, tuple))
    if "float16" in module.dtypes or any(h[0] == "warp" for h in helpers):
        parts.append(_HALF_HELPERS)
    for item in helpers:
        if item[0] == "warp":
            parts.append(WARP_HELPERS[item[1]][1])
            continue
        _, what, dt = item
        key = "floormod_f" if what == "floormod" and is_float(dt) else what
        parts.append(_HELPERS[key].format(t=CUDA_TYPES[dt], d=dt) + "\n")
    return "".join(parts) + ("\n" if parts else "")


def generate(lowered: PrimFunc, module: ModuleSource | None = None) -> ModuleSource:
    """Add the kernels of ``lowered`` (a program after the cuda pipeline) to ``module`` (a new one if None)."""
    module = module if module is not None else ModuleSource("")
    order = {id(b): k for k, b in enumerate(lowered.buffer_map.values())}
    for root in kernel_roots(lowered.body):
        gen = CUDAKernelGen(module, root.annotations[KERNEL_KEY])
        module.kernels.append(gen.run(root, order))
    module.preamble = _preamble(module)
    return module


__all__ = ["generate", "CUDAKernel", "CUDACodegenError", "CUDA_TYPES", "WARP_HELPERS", "cuda_type"]
