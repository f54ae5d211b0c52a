"""Built modules whose functions run in the CPU emulator: ``wb.build(..., emulate=True)``.

The program is lowered, generated and optimised exactly as for a native build,
then emitted as an object file for the target CPU (large code model, like the
JIT), linked into a host buffer with a small runtime, and called inside Bochs.
The runtime replaces the pieces that would leave the guest:

* parallel loops run their chunks one after another (``__wb_launch`` is a serial
  launcher; the emulator has one CPU);
* heap buffers come from an arena handed to the guest (``aligned_alloc`` bumps a
  pointer, ``free`` does nothing; the arena is fresh for every call).

Calls of libm/libc functions (``expf``, ``memset``) go to this process's own
libraries, mapped into the guest read-only.

>>> import numpy as np, workbench as wb                        # doctest: +SKIP
>>> f = wb.build(sch, target="llvm -mcpu=sapphirerapids", emulate=True)   # doctest: +SKIP
>>> f(a, b, c); f.last_run.seconds                             # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import re
import time

from ..llvm.module import BuiltFunction, LLVMModule
from . import bochs
from .bochs import EmulationError
from .link import link

RUNTIME_IR = r"""
@__wb_emu_heap = global i64 0
@__wb_emu_heap_end = global i64 0

define i32 @__wb_emu_launch(ptr %fn, ptr %closure, i64 %extent) {
entry:
  %rc = call i32 %fn(i64 0, i64 %extent, ptr %closure)
  ret i32 %rc
}

define ptr @aligned_alloc(i64 %align, i64 %size) {
entry:
  %cur = load i64, ptr @__wb_emu_heap
  %am1 = sub i64 %align, 1
  %bumped = add i64 %cur, %am1
  %mask = xor i64 %am1, -1
  %start = and i64 %bumped, %mask
  %next = add i64 %start, %size
  %end = load i64, ptr @__wb_emu_heap_end
  %fits = icmp ule i64 %next, %end
  br i1 %fits, label %ok, label %full
ok:
  store i64 %next, ptr @__wb_emu_heap
  %p = inttoptr i64 %start to ptr
  ret ptr %p
full:
  ret ptr null
}

define void @free(ptr %p) {
entry:
  ret void
}
"""


#: intrinsics whose memory-operand form the emulator decodes wrongly: bochscpu-python 0.4.0 scales an
#: EVEX compressed 8-bit displacement of ``vdpbf16ps`` by 4 instead of the vector size, so
#: ``vdpbf16ps 64(%rcx), %zmm1, %zmm0`` reads from ``rcx + 4`` (found by tests/backend/test_emulate.py)
_REGISTER_ONLY = re.compile(
    r"^(\s*)(%[\w.]+) = (tail |notail |musttail )?call (<\d+ x float>) "
    r"@(llvm\.x86\.avx512bf16\.dpbf16ps\.\d+)\((.*), (<\d+ x bfloat>) (%[\w.]+)\)", re.M)


def keep_in_register(ir_text: str) -> str:
    """Route the last vector operand of each intrinsic in ``_REGISTER_ONLY`` through an empty inline asm,
    so LLVM loads it into a register instead of folding the load into the instruction (emulation only)."""
    count = [0]

    def fix(m):
        indent, res, tail, rty, name, head, vty, val = m.groups()
        count[0] += 1
        tmp = f"%__emu_reg{count[0]}"
        return (f'{indent}{tmp} = call {vty} asm sideeffect "", "=v,0"({vty} {val})\n'
                f"{indent}{res} = {tail or ''}call {rty} @{name}({head}, {vty} {tmp})")

    return _REGISTER_ONLY.sub(fix, ir_text)


def emulation_target_machine(target):
    """An LLVM target machine for ``target`` that emits relocatable objects in the large code model."""
    import llvmlite.binding as llvm

    from ..llvm.module import init_llvm

    init_llvm()
    return llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
        cpu=target.cpu or "", features=target.mattr, opt=min(3, target.opt_level), reloc="static",
        codemodel="large")


class EmulatedModule(LLVMModule):
    """A built module whose functions run in the emulator (see the module docstring).

    ``heap_bytes`` is the arena for heap-allocated buffers per call;
    ``count_instructions = True`` makes every call count the instructions it
    retires (``f.last_run.instructions``), about five times slower;
    ``max_seconds`` stops a call that runs longer, with an error.
    """

    def __init__(self, target, ir_text: str, opt_text: str, tm, times, image, *, heap_bytes: int = 64 << 20):
        super().__init__(target, None, ir_text, opt_text, tm, times)
        self.image = image
        self.heap_bytes = heap_bytes
        self.count_instructions = False
        #: a call that runs longer is stopped with an error (the emulator would otherwise hold the GIL)
        self.max_seconds: float | None = 600.0
        self.host_lacks = []
        missing = sorted(f for f in target.features if f in bochs.CPUID_FEATURES
                         and f not in bochs.model_features())
        if missing:
            raise EmulationError(f"target {target} uses {', '.join(missing)}, which the emulated CPU "
                                 f"({bochs.model_name()}) does not have")

    def __repr__(self) -> str:
        return f"<EmulatedModule [{', '.join(self.functions)}] for {self.target} on {bochs.MODEL_NAME}>"


class EmulatedFunction(BuiltFunction):
    """A function of an :class:`EmulatedModule`; ``last_run`` holds the last call's :class:`RunInfo`."""

    last_run: bochs.RunInfo | None = None

    def _entry(self):
        return self.module.image.address(self.entry_name)

    def _invoke(self, bufs, scal, err, arrays) -> int:
        mod: EmulatedModule = self.module
        image = mod.image
        m = bochs.Machine()
        for start, nbytes in image.code_ranges:
            m.map(start, nbytes, writable=False, name="the program's code")
        for start, nbytes in image.data_ranges:
            m.map(start, nbytes, name="the program's data")
        for name, addr in image.externals.items():
            for start, nbytes, writable in bochs.library_regions(addr):
                m.map(start, nbytes, writable=writable, name=f"the library holding {name}")
        fs = 0
        if image.externals:
            fs = bochs.fs_base()
            m.map(fs, 64, name="thread control block")
            errno = getattr(ctypes.CDLL(None), "__errno_location")   # (getattr: no name mangling)
            errno.restype = ctypes.c_void_p
            m.map(errno(), 4, name="errno")
        for p, a in zip([p for p in self.params if p.buffer is not None], arrays):
            m.map(a.ctypes.data, max(1, a.nbytes), writable=p.written, name=f"buffer {p.buffer.name}")
        for name, arr in (("the argument table", bufs), ("the size table", scal), ("the error slots", err)):
            m.map(ctypes.addressof(arr), ctypes.sizeof(arr), name=name)
        heap = None
        if "__wb_emu_heap" in image.symbols:
            heap = bochs._aligned(mod.heap_bytes) if mod.heap_bytes else None
            lo = heap.ctypes.data if heap is not None else 0
            ctypes.c_uint64.from_address(image.symbols["__wb_emu_heap"]).value = lo
            ctypes.c_uint64.from_address(image.symbols["__wb_emu_heap_end"]).value = lo + mod.heap_bytes
            if heap is not None:
                m.map(lo, mod.heap_bytes, name="the heap arena")
        info = m.call(self._cfn, [ctypes.addressof(bufs), ctypes.addressof(scal), ctypes.addressof(err)],
                      fs=fs, count=mod.count_instructions, max_seconds=mod.max_seconds)
        self.last_run = info
        return ctypes.c_int32(info.regs["rax"] & 0xFFFFFFFF).value

    def time(self, *args, number: int = 1) -> float:
        """Seconds of one emulated call (emulation speed, not the target CPU's)."""
        t = time.perf_counter()
        for _ in range(number):
            self(*args)
        return (time.perf_counter() - t) / number


def compile_emulated(funcs: dict, lowered: dict, infos: dict, text: str, tgt, times: dict, symbol):
    """Optimise, emit and link ``text`` with the runtime; returns an :class:`EmulatedModule`."""
    import llvmlite.binding as llvm

    from ..llvm.module import optimize_ir

    bochs.load()
    try:
        import elftools  # noqa: F401
    except ImportError:
        raise EmulationError("the emulator links objects with pyelftools: pip install pyelftools") from None
    t0 = time.perf_counter()
    tm = emulation_target_machine(tgt)
    mod = optimize_ir(text, tgt, tm)
    opt_text = str(mod)
    patched = keep_in_register(opt_text)
    if patched != opt_text:
        mod = llvm.parse_assembly(patched)
    runtime = llvm.parse_assembly(RUNTIME_IR)
    runtime.triple, runtime.data_layout = mod.triple, mod.data_layout
    mod.link_in(runtime)
    t1 = time.perf_counter()
    image = link(tm.emit_object(mod))
    ctypes.c_uint64.from_address(image.address("__wb_launch")).value = image.address("__wb_emu_launch")
    times["optimize"], times["jit"] = t1 - t0, time.perf_counter() - t1
    m = EmulatedModule(tgt, text, opt_text, tm, times, image)
    for n, f in funcs.items():
        info, var_order = infos[n]
        m.functions[n] = EmulatedFunction(m, n, info.symbol, f, lowered[n], info, var_order)
    return m


__all__ = ["EmulatedModule", "EmulatedFunction", "EmulationError", "compile_emulated", "RUNTIME_IR"]
