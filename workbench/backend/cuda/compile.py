"""CUDA C -> PTX (and a cubin for a real architecture) with NVRTC; no GPU or driver needed.

NVRTC comes from ``pip install "workbench[cuda]"`` (``cuda-python`` and
``nvidia-cuda-nvrtc``). A driver loads PTX only up to the PTX ISA version it knows
(:func:`max_ptx_isa`): NVRTC 13.0 writes ISA 9.0, which a 13.0 driver accepts; a newer
NVRTC writes a newer ISA. Where the device is present the module is loaded from the
cubin NVRTC also makes for the device's architecture, which every driver of the same
major version loads; the PTX is the fallback, checked against the driver first.

>>> ptx = compile_cuda('extern "C" __global__ void k(float* a) { a[threadIdx.x] += 1.0f; }', "sm_80")  # doctest: +SKIP
>>> ptx.ptx_isa, ".entry k" in ptx.ptx                                     # doctest: +SKIP
((9, 0), True)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..target import BackendUnavailableError

#: where there is no device and the target names no -arch
DEFAULT_ARCH = "sm_80"

_INSTALL = 'pip install "workbench[cuda]" (cuda-python and nvidia-cuda-nvrtc)'


class NVRTCError(RuntimeError):
    """NVRTC rejected the generated CUDA C (a workbench bug: the message has the log and the source)."""


@dataclass(frozen=True)
class CompiledCUDA:
    """What NVRTC made of one CUDA C program: PTX text, a cubin (for a real ``sm_XX`` architecture) and the log."""

    arch: str
    ptx: str
    cubin: bytes | None
    log: str
    nvrtc_version: tuple

    @property
    def ptx_isa(self) -> tuple[int, int]:
        """The PTX ISA version of the ``.version`` line: what a driver must support to load the PTX."""
        m = re.search(r"^\.version (\d+)\.(\d+)", self.ptx, re.M)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        raise BackendUnavailableError(f"the cuda backend compiles with NVRTC: {_INSTALL}") from None
    return nvrtc


def _call(result, what: str):
    """Unpack a cuda.bindings NVRTC result tuple; raise on an error code."""
    nvrtc = _nvrtc()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, text = nvrtc.nvrtcGetErrorString(err)
        raise NVRTCError(f"{what} failed: {text.decode() if isinstance(text, bytes) else text}")
    return values[0] if len(values) == 1 else values


@lru_cache(maxsize=None)
def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the NVRTC library that compiles; a clear error where it is not installed."""
    nvrtc = _nvrtc()
    try:
        return tuple(_call(nvrtc.nvrtcVersion(), "nvrtcVersion"))
    except RuntimeError as e:   # cuda.pathfinder's "library not found" is a RuntimeError
        if isinstance(e, NVRTCError):
            raise
        raise BackendUnavailableError(f"the NVRTC library could not be loaded ({e}); {_INSTALL}") from None


@lru_cache(maxsize=None)
def supported_archs() -> tuple[int, ...]:
    """The compute capabilities this NVRTC compiles for (75 for sm_75, ...)."""
    nvrtc_version()
    return tuple(_call(_nvrtc().nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))


def max_ptx_isa(driver_version: int) -> tuple[int, int]:
    """The newest PTX ISA a driver of ``driver_version`` (``cuDriverGetVersion``: 12040 is 12.4) loads.

    >>> max_ptx_isa(12040), max_ptx_isa(12080), max_ptx_isa(13000)
    ((8, 4), (8, 7), (9, 0))
    """
    major, minor = driver_version // 1000, driver_version % 1000 // 10
    table = {(12, 6): (8, 5), (12, 8): (8, 7), (12, 9): (8, 8)}
    if (major, minor) in table:
        return table[(major, minor)]
    if major == 11:
        return (7, minor)
    if major == 12:
        return (8, min(minor, 5)) if minor < 6 else (8, minor - 1)
    return (major - 4, minor)


def _arch_number(arch: str) -> int:
    return int(re.match(r"sm_(\d+)", arch).group(1))


def compile_cuda(source: str, arch: str, name: str = "workbench.cu") -> CompiledCUDA:
    """Compile CUDA C for ``arch`` (``"sm_80"``): PTX always, a cubin too."""
    nvrtc = _nvrtc()
    version = nvrtc_version()
    archs = supported_archs()
    if _arch_number(arch) not in archs:
        raise BackendUnavailableError(f"NVRTC {version[0]}.{version[1]} cannot compile for {arch}; it supports "
                                      + ", ".join(f"sm_{a}" for a in archs))
    prog = _call(nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17", b"-default-device"]
        err, = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        log = _text(_buffer(nvrtc.nvrtcGetProgramLogSize, nvrtc.nvrtcGetProgramLog, prog))
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise NVRTCError(f"NVRTC rejected the generated CUDA C for {arch} (a workbench bug; please report it "
                             f"with this source):\n{log}\n--- source ---\n{source}")
        ptx = _text(_buffer(nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX, prog))
        cubin = _buffer(nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN, prog) or None
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return CompiledCUDA(arch, ptx, cubin, log, version)


def _buffer(size_fn, get_fn, prog) -> bytes:
    n = _call(size_fn(prog), size_fn.__name__)
    if not n:
        return b""
    buf = b" " * n
    _call(get_fn(prog, buf), get_fn.__name__)
    return buf


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode(errors="replace")


__all__ = ["compile_cuda", "CompiledCUDA", "NVRTCError", "nvrtc_version", "supported_archs", "max_ptx_isa",
           "DEFAULT_ARCH"]
