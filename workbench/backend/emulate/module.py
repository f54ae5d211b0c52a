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
libraries: their code mapped read-only, their data (and the thread control block,
errno) as private copies. Each argument array is copied onto pages of its own between
guard pages (:class:`GuestBuffer`) and copied back after a successful call, so an
out-of-bounds access is an :class:`EmulationError` and never changes host memory.

>>> import numpy as np, workbench as wb                        # doctest: +SKIP
>>> f = wb.build(sch, target="llvm -mcpu=sapphirerapids", emulate=True)   # doctest: +SKIP
>>> f(a, b, c); f.last_run.seconds                             # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import re
import time

import numpy as np

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
        fs = 0
        if image.externals:
            # the stack canary (fs:0x28) and errno live next to host thread state: the guest gets copies
            fs = bochs.fs_base()
            m.map_copy(fs, 64, name="thread control block (a private copy)")
            errno = getattr(ctypes.CDLL(None), "__errno_location")   # (getattr: no name mangling)
            errno.restype = ctypes.c_void_p
            m.map_copy(errno(), 4, name="errno (a private copy)")
        for name, addr in image.externals.items():
            for start, nbytes, writable in bochs.library_regions(addr):
                if writable:
                    m.map_copy(start, nbytes, name=f"the library holding {name} (a private copy of its data)")
                else:
                    m.map(start, nbytes, writable=False, name=f"the library holding {name}")
        params = [p for p in self.params if p.buffer is not None]
        guests = [GuestBuffer(m, a, writable=p.written, name=f"buffer {p.buffer.name}")
                  for p, a in zip(params, arrays)]
        for k, g in enumerate(guests):
            bufs[k] = g.address
        tables = [_guest_table(m, arr, writable=writable, name=name)
                  for arr, writable, name in ((bufs, False, "the argument table"), (scal, False, "the size table"),
                                              (err, True, "the error slots"))]
        heap = None
        if "__wb_emu_heap" in image.symbols:
            heap = bochs._aligned(mod.heap_bytes) if mod.heap_bytes else None
            lo = heap.ctypes.data if heap is not None else 0
            ctypes.c_uint64.from_address(image.symbols["__wb_emu_heap"]).value = lo
            ctypes.c_uint64.from_address(image.symbols["__wb_emu_heap_end"]).value = lo + mod.heap_bytes
            if heap is not None:
                m.map(lo, mod.heap_bytes, name="the heap arena")
        info = m.call(self._cfn, [t.ctypes.data for t in tables],
                      fs=fs, count=mod.count_instructions, max_seconds=mod.max_seconds)
        for g in guests:
            g.check_no_stray_writes()
        for g, a in zip(guests, arrays):
            if g.writable:
                g.copy_back(a)
        ctypes.memmove(ctypes.addressof(err), tables[2].ctypes.data, ctypes.sizeof(err))
        self.last_run = info
        return ctypes.c_int32(info.regs["rax"] & 0xFFFFFFFF).value

    def time(self, *args, number: int = 1) -> float:
        """Seconds of one emulated call (emulation speed, not the target CPU's)."""
        t = time.perf_counter()
        for _ in range(number):
            self(*args)
        return (time.perf_counter() - t) / number


_CANARY = 0xA5


def _guest_table(m: bochs.Machine, arr, *, writable: bool, name: str):
    """A private, page-aligned copy of a ctypes array for the guest (the original lives in the host heap)."""
    nbytes = ctypes.sizeof(arr)
    copy = bochs._aligned(-(-nbytes // bochs.PAGE) * bochs.PAGE)
    ctypes.memmove(copy.ctypes.data, ctypes.addressof(arr), nbytes)
    m.map(copy.ctypes.data, copy.nbytes, writable=writable, name=name)
    return copy


class GuestBuffer:
    """An argument array as the guest sees it: a private copy on pages of its own.

    The copy ends (64-byte aligned) just before an unmapped guard page and starts after
    one, so the guest never touches host memory through it: a read or write past either
    end of its pages is a page fault, and a write into the slack of its own pages (or
    between the elements of a strided view) is found afterwards by comparing the pages
    with a snapshot. Only a successful call copies the elements back into the caller's
    array, and only for buffers the program writes.
    """

    def __init__(self, m: bochs.Machine, a: np.ndarray, *, writable: bool, name: str):
        from numpy.lib.array_utils import byte_bounds

        page = bochs.PAGE
        low, high = byte_bounds(a)
        span = max(1, high - low)
        self.pages = -(-(span + 63) // page)
        self.mem = bochs._aligned((self.pages + 2) * page)     # the first and last page are guards, never mapped
        self.mem[:] = _CANARY
        self.start = ((self.pages + 1) * page - span) & ~63    # offset of the lowest byte in self.mem
        ctypes.memmove(self.mem.ctypes.data + self.start, low, high - low)
        self.first = self.start + (a.ctypes.data - low)        # offset of element 0
        self.span, self.name, self.writable = span, name, writable
        self.shape, self.dtype, self.strides = a.shape, a.dtype, a.strides
        self.snapshot = self._pages().copy()
        m.map(self.mem.ctypes.data + page, self.pages * page, writable=writable, name=name)
        m.name_region(self.mem.ctypes.data, page, f"the guard page before {name}")
        m.name_region(self.mem.ctypes.data + (self.pages + 1) * page, page, f"the guard page after {name}")
        self.address = self.mem.ctypes.data + self.first

    def _pages(self) -> np.ndarray:
        return self.mem[bochs.PAGE:(self.pages + 1) * bochs.PAGE]

    def _elements(self, pages: np.ndarray) -> np.ndarray:
        return np.ndarray(self.shape, self.dtype, buffer=pages, offset=self.first - bochs.PAGE,
                          strides=self.strides)

    def check_no_stray_writes(self) -> None:
        after = self._pages().copy()
        self._elements(after)[...] = self._elements(self.snapshot)
        changed = np.flatnonzero(after != self.snapshot)
        if changed.size:
            lo_off = self.start - bochs.PAGE
            hi_off = lo_off + self.span
            first, last = int(changed[0]), int(changed[-1])
            if last >= hi_off:
                where = f"{last - hi_off + 1} byte(s) past its end"
            elif first < lo_off:
                where = f"{lo_off - first} byte(s) before its start"
            else:
                where = "between the elements of the strided view"
            raise EmulationError(f"emulated code wrote outside {self.name}: {where} (out of bounds: on real "
                                 "hardware this corrupts neighbouring memory; build with checks=True to locate "
                                 "it). The arguments were left unchanged.")

    def copy_back(self, a: np.ndarray) -> None:
        a[...] = self._elements(self._pages())


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


__all__ = ["EmulatedModule", "EmulatedFunction", "EmulationError", "GuestBuffer", "compile_emulated", "RUNTIME_IR"]
