"""Run x86-64 machine code in the Bochs CPU emulator (``bochscpu-python``), on this process's own memory.

The guest is a single CPU in 64-bit mode at privilege level 3, modelled as an
Intel Sapphire Rapids (AVX-512 with VNNI, BF16 and FP16). Its page tables map
each page the code may touch to a guest-physical page that Bochs backs with a
host page: code and read-only libraries are shown as they are (read-only), so the
guest runs code linked for the addresses it has in this process; everything the
guest may write is a private copy (:meth:`Machine.map_copy`, and the argument
buffers of ``emulate/module.py``), so it never writes host memory.

Only the regions handed to the machine are mapped: an access anywhere else is a
guest page fault, reported as an :class:`EmulationError` instead of touching (or
crashing) the host.

The function returns into a ``hlt``; at privilege level 3 that raises a general
protection fault at the known address, which ends the run.

About the wheel: ``bochscpu-python`` 0.4.0 is built against glibc 2.38 and asks
for ``__isoc23_strtoull`` and ``__isoc23_sscanf``. On an older glibc (Debian 12
has 2.36) :func:`load` points those two imports at ``strtoull``/``sscanf`` in a
copy of the extension under ``~/.cache/workbench`` (the C23 versions differ only
in accepting ``0b`` prefixes) and imports the copy; the installed files are not
touched.
"""
from __future__ import annotations

import bisect
import ctypes
import importlib.machinery
import importlib.util
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

PAGE = 4096
_PRESENT, _WRITE, _USER = 0x1, 0x2, 0x4

#: LLVM feature name -> (CPUID leaf, subleaf, register, bit)
CPUID_FEATURES: dict[str, tuple[int, int, str, int]] = {
    "fma": (1, 0, "rcx", 12), "sse4.1": (1, 0, "rcx", 19), "sse4.2": (1, 0, "rcx", 20),
    "movbe": (1, 0, "rcx", 22), "popcnt": (1, 0, "rcx", 23), "avx": (1, 0, "rcx", 28), "f16c": (1, 0, "rcx", 29),
    "bmi": (7, 0, "rbx", 3), "avx2": (7, 0, "rbx", 5), "bmi2": (7, 0, "rbx", 8),
    "avx512f": (7, 0, "rbx", 16), "avx512dq": (7, 0, "rbx", 17), "avx512ifma": (7, 0, "rbx", 21),
    "avx512cd": (7, 0, "rbx", 28), "avx512bw": (7, 0, "rbx", 30), "avx512vl": (7, 0, "rbx", 31),
    "avx512vbmi": (7, 0, "rcx", 1), "avx512vbmi2": (7, 0, "rcx", 6), "avx512vnni": (7, 0, "rcx", 11),
    "avx512bitalg": (7, 0, "rcx", 12), "avx512vpopcntdq": (7, 0, "rcx", 14),
    "avx512fp16": (7, 0, "rdx", 23),
    "avxvnni": (7, 1, "rax", 4), "avx512bf16": (7, 1, "rax", 5),
    "lzcnt": (0x80000001, 0, "rcx", 5),
}

#: the Bochs CPU model the guest uses: its index in the ``cpu.model`` list of bochscpu-python 0.4.0,
#: and the CPUID brand string that confirms it
MODEL_INDEX, MODEL_NAME, MODEL_BRAND = 30, "sapphire_rapids", "Xeon(R) w9-3475X"

_EXCEPTIONS = {0: "#DE divide error", 1: "#DB debug", 3: "#BP breakpoint", 4: "#OF overflow", 5: "#BR bound range",
               6: "#UD invalid opcode", 7: "#NM device not available", 8: "#DF double fault",
               10: "#TS invalid TSS", 11: "#NP segment not present", 12: "#SS stack fault",
               13: "#GP general protection", 14: "#PF page fault", 16: "#MF x87 floating point",
               17: "#AC alignment check", 18: "#MC machine check", 19: "#XM SIMD floating point"}


class EmulationError(RuntimeError):
    """The emulator is missing, or the emulated code faulted (the message says where and why)."""


# loading the wheel -------------------------------------------------------------------------------

_lock = threading.RLock()   # bochscpu keeps one global memory map: one run at a time
_state: dict = {}


def _redirect_isoc23(src: str, dst: str) -> None:
    """Copy the ELF shared object ``src`` to ``dst`` with its ``__isoc23_*`` imports renamed to the
    plain names (each dynamic symbol's name offset moved past the 9-byte ``__isoc23_`` prefix)."""
    data = bytearray(open(src, "rb").read())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise EmulationError(f"{src} is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, _ = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + k * shentsize) for k in range(shnum)]
    dynsym = next(s for s in sections if s[1] == 11)          # SHT_DYNSYM
    strtab_off = sections[dynsym[6]][4]
    for k in range(dynsym[5] // dynsym[9]):
        at = dynsym[4] + k * dynsym[9]
        name_off, = struct.unpack_from("<I", data, at)
        start = strtab_off + name_off
        if data[start:start + 9] == b"__isoc23_":
            struct.pack_into("<I", data, at, name_off + 9)
    tmp = f"{dst}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, dst)


def load():
    """Import ``bochscpu`` (through the glibc redirect where needed) and select the CPU model."""
    with _lock:
        if "bochscpu" in _state:
            return _state["bochscpu"]
        spec = importlib.util.find_spec("bochscpu")
        if spec is None or spec.origin is None:
            raise EmulationError("running code for another CPU needs the Bochs emulator: "
                                 "pip install 'bochscpu-python==0.4.0' pyelftools (the [emulate] extra)")
        pkg = os.path.dirname(spec.origin)
        so = next((f for f in os.listdir(pkg) if f.startswith("_bochscpu") and f.endswith(".so")), None)
        if so is None:
            raise EmulationError(f"bochscpu at {pkg} has no compiled extension _bochscpu*.so")
        path = os.path.join(pkg, so)
        try:
            import bochscpu._bochscpu  # noqa: F401
        except ImportError as e:
            if "__isoc23_" not in str(e):
                raise EmulationError(f"cannot import bochscpu: {e}") from e
            cache = os.path.join(os.path.expanduser("~"), ".cache", "workbench")
            os.makedirs(cache, exist_ok=True)
            path = os.path.join(cache, f"glibc236_{so}")
            if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(os.path.join(pkg, so)):
                _redirect_isoc23(os.path.join(pkg, so), path)
            loader = importlib.machinery.ExtensionFileLoader("bochscpu._bochscpu", path)
            mspec = importlib.util.spec_from_file_location("bochscpu._bochscpu", path, loader=loader)
            module = importlib.util.module_from_spec(mspec)
            sys.modules["bochscpu._bochscpu"] = module
            loader.exec_module(module)
        import bochscpu
        import bochscpu.cpu
        import bochscpu.memory

        lib = ctypes.CDLL(path)
        lib.sim_get_param_enum.restype = ctypes.c_void_p
        lib.sim_get_param_enum.argtypes = [ctypes.c_char_p]
        param = lib.sim_get_param_enum(b"cpu.model")
        set_val = lib._ZN14bx_param_num_c15set_initial_valEl
        set_val.argtypes = [ctypes.c_void_p, ctypes.c_long]
        set_val(param, MODEL_INDEX)
        _state["bochscpu"] = bochscpu
        _state["features"], brand = _probe_cpuid(bochscpu)
        if MODEL_BRAND not in brand:
            raise EmulationError(f"bochscpu model {MODEL_INDEX} is {brand!r}, not {MODEL_NAME}: this emulator "
                                 "glue expects bochscpu-python 0.4.0")
        _state["brand"] = brand
        return bochscpu


def model_features() -> frozenset:
    """The features (LLVM names, from the table in this module) that the emulated CPU reports."""
    load()
    return _state["features"]


def model_name() -> str:
    """The CPUID brand string of the emulated CPU."""
    load()
    return _state["brand"]


def _probe_cpuid(bochscpu) -> tuple[frozenset, str]:
    code = _aligned(PAGE)
    regs: dict[tuple[int, int], dict] = {}

    def cpuid(leaf: int, sub: int = 0) -> dict:
        if (leaf, sub) not in regs:
            prog = (b"\xb8" + leaf.to_bytes(4, "little") + b"\xb9" + sub.to_bytes(4, "little")
                    + b"\x0f\xa2" + b"\xc3")                      # mov eax; mov ecx; cpuid; ret
            code[:len(prog)] = np.frombuffer(prog, np.uint8)
            m = Machine()
            m.map(code.ctypes.data, PAGE, writable=False)
            regs[(leaf, sub)] = m.call(code.ctypes.data, [], want_regs=True).regs
        return regs[(leaf, sub)]

    feats = frozenset(name for name, (leaf, sub, reg, bit) in CPUID_FEATURES.items()
                      if cpuid(leaf, sub)[reg] >> bit & 1)
    brand = b"".join(r[k].to_bytes(8, "little")[:4] for leaf in (0x80000002, 0x80000003, 0x80000004)
                     for r in [cpuid(leaf)] for k in ("rax", "rbx", "rcx", "rdx"))
    return feats, brand.rstrip(b"\0").decode("ascii", "replace").strip()


# host memory helpers -----------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


def _aligned(nbytes: int) -> np.ndarray:
    """A zeroed, page-aligned uint8 array (it keeps its parent alive)."""
    raw = np.zeros(nbytes + PAGE, np.uint8)
    off = (-raw.ctypes.data) % PAGE
    return raw[off:off + nbytes]


def host_mapped(addr: int, nbytes: int) -> bool:
    """True when every page of ``[addr, addr + nbytes)`` is mapped in this process."""
    start = addr & ~(PAGE - 1)
    return _libc.msync(start, addr + nbytes - start, 1) == 0          # MS_ASYNC


def fs_base() -> int:
    """The calling thread's FS base (its thread control block), for code that reads thread-locals."""
    value = ctypes.c_uint64()
    if _libc.syscall(158, 0x1003, ctypes.byref(value)) != 0:           # arch_prctl(ARCH_GET_FS)
        raise EmulationError("arch_prctl(ARCH_GET_FS) failed")
    return value.value


def library_regions(addr: int) -> list[tuple[int, int, bool]]:
    """Every mapping ``(start, nbytes, writable)`` of the file that holds host address ``addr``."""
    rows = []
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            rows.append((lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else ""))
    path = next((p for lo, hi, _, p in rows if lo <= addr < hi), None)
    if not path:
        raise EmulationError(f"host address {addr:#x} is not in a mapped file")
    return [(lo, hi - lo, "w" in perm) for lo, hi, perm, p in rows if p == path and "r" in perm]


# the machine -------------------------------------------------------------------------------------


@dataclass
class RunInfo:
    """What one emulated call did."""

    seconds: float
    instructions: int | None
    regs: dict


class Machine:
    """One emulated call: map host regions, then :meth:`call` a function at a host address.

    Building the page tables touches no emulator state; guest-physical pages are
    backed (``page_insert``) only while :meth:`call` runs, under a lock, and
    removed when it returns, so machines in several threads do not interfere.
    """

    def __init__(self):
        self._tables: dict[int, np.ndarray] = {}      # guest-physical address -> table page
        self._next_gpa = 0x10000
        self._ranges: list[tuple[int, int, int]] = []  # (gpa, va, pages), sorted by gpa
        self._names: list[tuple[int, int, str]] = []
        self._inserted: list[int] = []
        self._unbacked: list[int] = []
        self._scratch: list[np.ndarray] = []
        self.pml4 = self._table()

    def _alloc_gpa(self, pages: int) -> int:
        g = self._next_gpa
        self._next_gpa += pages * PAGE
        return g

    def _table(self) -> int:
        page = _aligned(PAGE).view(np.uint64)
        gpa = self._alloc_gpa(1)
        self._tables[gpa] = page
        bisect.insort(self._ranges, (gpa, page.ctypes.data, 1))   # backed on first touch, like any page
        return gpa

    def _insert(self, gpa: int, hva: int) -> None:
        _state["bochscpu"].memory.page_insert(gpa, hva)
        self._inserted.append(gpa)

    def _child(self, table_gpa: int, index: int) -> int:
        table = self._tables[table_gpa]
        if not table[index]:
            table[index] = np.uint64(self._table() | _PRESENT | _WRITE | _USER)
        return int(table[index]) & ~0xFFF & ((1 << 52) - 1)

    def map(self, addr: int, nbytes: int, *, writable: bool = True, name: str = "",
            backing: int | None = None) -> None:
        """Make host ``[addr, addr + nbytes)`` visible to the guest at the same virtual addresses.

        With ``backing`` (a page-aligned host address), the guest's pages are backed by the
        host memory there instead of by the pages at ``addr`` (see :meth:`map_copy`).
        """
        if nbytes <= 0:
            return
        start = addr & ~(PAGE - 1)
        pages = (addr + nbytes - start + PAGE - 1) // PAGE
        if backing is None:
            if not host_mapped(start, pages * PAGE):
                raise EmulationError(f"cannot map {name or 'a region'} at {addr:#x}: not mapped in this process")
            backing = start
        gpa0 = self._alloc_gpa(pages)
        flags = _PRESENT | _USER | (_WRITE if writable else 0)
        va = start
        while va < start + pages * PAGE:
            pdpt = self._child(self.pml4, (va >> 39) & 511)
            pd = self._child(pdpt, (va >> 30) & 511)
            pt = self._tables[self._child(pd, (va >> 21) & 511)]
            first = (va >> 12) & 511
            count = min(512 - first, (start + pages * PAGE - va) // PAGE)
            gpas = gpa0 + (va - start) + np.arange(count, dtype=np.uint64) * PAGE
            old = pt[first:first + count]
            if np.any(old):          # a page shared with an earlier region: its page, either one's write right
                keep = old != 0
                gpas = np.where(keep, old & np.uint64(~0xFFF & ((1 << 52) - 1)), gpas)
                wr = (old & np.uint64(_WRITE)) | np.uint64(flags & _WRITE)
                pt[first:first + count] = gpas | np.uint64(_PRESENT | _USER) | wr
            else:
                pt[first:first + count] = gpas | np.uint64(flags)
            va += count * PAGE
        bisect.insort(self._ranges, (gpa0, backing, pages))
        self._names.append((start, pages * PAGE, name))

    def map_copy(self, addr: int, nbytes: int, *, writable: bool = True, name: str = "") -> np.ndarray:
        """Show the guest a private copy of host ``[addr, addr + nbytes)`` at the same virtual addresses.

        The guest reads what the host pages hold now and its writes stay in the copy (returned:
        the whole pages, from ``addr`` rounded down to a page), so host data that merely shares a
        page with the region (a thread control block, a library's globals) can never change.
        """
        start = addr & ~(PAGE - 1)
        pages = (addr + max(1, nbytes) - start + PAGE - 1) // PAGE
        if not host_mapped(start, pages * PAGE):
            raise EmulationError(f"cannot map {name or 'a region'} at {addr:#x}: not mapped in this process")
        copy = _aligned(pages * PAGE)
        ctypes.memmove(copy.ctypes.data, start, pages * PAGE)
        self._scratch.append(copy)
        self.map(start, pages * PAGE, writable=writable, name=name, backing=copy.ctypes.data)
        return copy

    def _missing_page(self, gpa: int) -> None:
        k = bisect.bisect_right(self._ranges, (gpa, float("inf"), 0)) - 1
        if k >= 0:
            g0, va0, pages = self._ranges[k]
            if g0 <= gpa < g0 + pages * PAGE:
                self._insert(gpa & ~(PAGE - 1), va0 + (gpa & ~(PAGE - 1)) - g0)
                return
        # cannot happen (every guest-physical page comes from a mapped range); never raise inside the
        # emulator: back it with a scratch page and report after the run
        self._unbacked.append(gpa)
        scratch = _aligned(PAGE)
        self._scratch.append(scratch)
        self._insert(gpa & ~(PAGE - 1), scratch.ctypes.data)

    def name_region(self, addr: int, nbytes: int, name: str) -> None:
        """Name host addresses that stay unmapped (a guard page), for fault messages."""
        self._names.append((addr, nbytes, name))

    def region_name(self, addr: int) -> str:
        for start, nbytes, name in self._names:
            if start <= addr < start + nbytes:
                return name
        return ""

    def call(self, entry: int, args: list[int], *, fs: int = 0, count: bool = False,
             want_regs: bool = False, stack_bytes: int = 1 << 20, max_seconds: float | None = 600.0) -> RunInfo:
        """Call the function at host address ``entry`` with integer/pointer ``args`` (System V ABI).

        The emulator holds the GIL while it runs, so a call that does not finish would freeze
        the process (and a Jupyter kernel); after ``max_seconds`` the run stops with an error.
        """
        bochscpu = _state["bochscpu"]
        stack = _aligned(stack_bytes)
        stop = _aligned(PAGE)
        stop[:] = 0xF4                                            # hlt
        self.map(stack.ctypes.data, stack_bytes, name="the stack")
        self.map(stop.ctypes.data, PAGE, writable=False, name="the return stub")
        top = stack.ctypes.data + stack_bytes - 64 - 8                  # the call pushed 8 bytes: rsp % 16 == 8
        ctypes.c_uint64.from_address(top).value = stop.ctypes.data   # the return address
        with _lock:
            sess = bochscpu.Session()
            sess.missing_page_handler = self._missing_page
            st = bochscpu.State()
            bochscpu.cpu.set_long_mode(st)
            st.cr3 = self.pml4
            st.cr0 = (st.cr0 & ~(1 << 2)) | (1 << 1)                  # no x87 emulation trap; monitor coprocessor
            st.cr4 = st.cr4 | (1 << 9) | (1 << 10) | (1 << 18)        # OSFXSR, OSXMMEXCPT, OSXSAVE
            st.xcr0 = 0xE7                                            # x87, SSE, AVX, opmask, ZMM state
            st.mxcsr = 0x1F80
            st.fpcw = 0x37F
            st.rflags = 0x202
            st.rsp = top
            st.rip = entry
            for reg, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args):
                setattr(st, reg, value)
            code = bochscpu.Segment()
            code.present, code.selector, code.base, code.limit, code.attr = True, 0x33, 0, 0xFFFFFFFF, 0x22FB
            st.cs = code
            for seg_name, base in (("ds", 0), ("es", 0), ("ss", 0), ("gs", 0), ("fs", fs)):
                seg = bochscpu.Segment()
                seg.present, seg.selector, seg.base, seg.limit, seg.attr = True, 0x2B, base, 0xFFFFFFFF, 0xCF3
                setattr(st, seg_name, seg)
            sess.cpu.state = st
            fault: list = []
            counter = [0]
            hook = bochscpu.Hook()

            def on_exception(s, cpu_id, vector, error_code):
                fault.append((vector, error_code, s.cpu.rip, s.cpu.cr2))
                s.stop()

            hook.exception = on_exception
            deadline = [time.perf_counter() + max_seconds if max_seconds else None, 0]

            def on_branch(s, cpu_id, *_):
                # loops branch back: the one place a run can go on for long; look at the clock now and then
                deadline[1] += 1
                if deadline[1] & 0x3FFF == 0 and time.perf_counter() > deadline[0]:
                    fault.append(("timeout", 0, s.cpu.rip, 0))
                    s.stop()

            if max_seconds:
                hook.cnear_branch_taken = on_branch
                hook.ucnear_branch = on_branch
            if count:
                def after(s, cpu_id, insn):
                    counter[0] += 1
                hook.after_execution = after
            t0 = time.perf_counter()
            try:
                sess.run([hook])
            finally:
                seconds = time.perf_counter() - t0
                regs = {r: getattr(sess.cpu, r) for r in ("rax", "rbx", "rcx", "rdx")} if want_regs \
                    else {"rax": sess.cpu.rax}
                # destroy the session (and its CPU) now, under the lock: a session kept alive by a
                # traceback and collected later, in the middle of another run, aborts the process
                del sess, hook
                for gpa in self._inserted:
                    bochscpu.memory.page_remove(gpa)
                self._inserted.clear()
        if self._unbacked:
            raise EmulationError(f"internal error: guest-physical page(s) {', '.join(map(hex, self._unbacked))} "
                                 "had no backing")
        if not fault:
            raise EmulationError("the emulated call stopped without returning")
        vector, error_code, rip, cr2 = fault[0]
        if vector == "timeout":
            raise EmulationError(f"the emulated call ran longer than {max_seconds:g} s (at instruction address "
                                 f"{rip:#x}) and was stopped; emulation is about 30 million instructions a "
                                 "second: try smaller sizes, or raise max_seconds")
        if not (vector == 13 and rip in (stop.ctypes.data, stop.ctypes.data + 1)):   # rip may be past the hlt
            raise EmulationError(self._describe_fault(vector, error_code, rip, cr2))
        return RunInfo(seconds, counter[0] if count else None, regs)

    def _describe_fault(self, vector: int, error_code: int, rip: int, cr2: int) -> str:
        what = _EXCEPTIONS.get(vector, f"exception {vector}")
        where = self.region_name(rip)
        # Bochs reports a page fault at the faulting instruction, other faults at it or just after it
        at = f"{'at' if vector == 14 else 'at or just before'} instruction address {rip:#x}" + \
            (f" (in {where})" if where else "")
        if vector == 14:
            access = "a write to" if error_code & 2 else ("an instruction fetch from" if error_code & 16
                                                           else "a read of")
            target = self.region_name(cr2)
            if error_code & 1:
                why = f"{access} {cr2:#x}, which is read-only ({target})"
            elif target:
                why = (f"{access} {cr2:#x}, in {target} (out of bounds: on real hardware this is a crash or "
                       "silent corruption; build with checks=True to locate it)")
            else:
                why = (f"{access} {cr2:#x}, outside every argument buffer, the stack and the code "
                       "(out of bounds: on real hardware this is a crash or silent corruption; "
                       "build with checks=True to locate it)")
            return f"emulated code raised {what} {at}: {why}"
        if vector == 6:
            return (f"emulated code raised {what} {at}: the emulated {MODEL_NAME} CPU does not implement an "
                    "instruction the code uses")
        if vector == 13:
            return (f"emulated code raised {what} {at}: typically an aligned vector access (vmovaps) to a "
                    "misaligned address, or a non-canonical address")
        return f"emulated code raised {what} {at} (error code {error_code})"


__all__ = ["EmulationError", "Machine", "RunInfo", "load", "model_features", "model_name", "host_mapped",
           "library_regions", "fs_base", "CPUID_FEATURES"]
