"""Link an ELF relocatable object (x86-64) into one host buffer, for the emulator to run in place.

LLVM emits the object with the large code model, as its JIT does: every reference to
another section or symbol is an absolute 64-bit address (``R_X86_64_64``), so
laying the allocatable sections out in one page-aligned buffer and writing each
symbol's final address into its relocation slots is the whole job. Symbols the
object does not define (``expf`` and friends) are looked up in the process
(libm/libc) and their libraries are mapped into the guest read-only.

pyelftools reads the object; the buffer is a numpy array the host never executes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import io
import struct
from dataclasses import dataclass, field

import numpy as np

from .bochs import PAGE, EmulationError, _aligned

R_X86_64_NONE, R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_32, R_X86_64_32S, R_X86_64_PC64 = 0, 1, 2, 4, 10, 11, 24

_libs: list = []


def _host_symbol(name: str) -> int | None:
    if not _libs:
        _libs.append(ctypes.CDLL(None))
        for lib in ("m", "c"):
            path = ctypes.util.find_library(lib)
            if path:
                _libs.append(ctypes.CDLL(path))
    for lib in _libs:
        try:
            return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


@dataclass
class LinkedImage:
    """The linked code and data: ``symbols`` maps each defined name to its host address."""

    buffer: np.ndarray
    symbols: dict[str, int]
    code_ranges: list[tuple[int, int]] = field(default_factory=list)
    data_ranges: list[tuple[int, int]] = field(default_factory=list)
    externals: dict[str, int] = field(default_factory=dict)

    def address(self, name: str) -> int:
        try:
            return self.symbols[name]
        except KeyError:
            raise EmulationError(f"the linked object defines no symbol {name!r}") from None


def link(obj: bytes) -> LinkedImage:
    """Lay out the allocatable sections of ``obj`` in one buffer and apply its relocations."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    elf = ELFFile(io.BytesIO(obj))
    if elf["e_machine"] != "EM_X86_64" or elf["e_type"] != "ET_REL":
        raise EmulationError("the emulator links x86-64 relocatable objects only")
    place: dict[int, int] = {}          # section index -> offset in the buffer
    size = 0
    alloc = []
    for idx, sec in enumerate(elf.iter_sections()):
        flags = sec["sh_flags"]
        if not flags & SH_FLAGS.SHF_ALLOC or sec.name in (".eh_frame",) or sec["sh_size"] == 0:
            continue
        align = max(1, sec["sh_addralign"])
        if flags & SH_FLAGS.SHF_EXECINSTR and alloc and not alloc[-1][2]:
            size = (size + PAGE - 1) // PAGE * PAGE
        size = (size + align - 1) // align * align
        place[idx] = size
        alloc.append((idx, sec, bool(flags & SH_FLAGS.SHF_EXECINSTR), bool(flags & SH_FLAGS.SHF_WRITE)))
        size += sec["sh_size"]
    buf = _aligned(max(PAGE, (size + PAGE - 1) // PAGE * PAGE))
    base = buf.ctypes.data
    image = LinkedImage(buf, {})
    for idx, sec, is_code, _ in alloc:
        off = place[idx]
        if sec["sh_type"] != "SHT_NOBITS":
            buf[off:off + sec["sh_size"]] = np.frombuffer(sec.data(), np.uint8)
        (image.code_ranges if is_code else image.data_ranges).append((base + off, sec["sh_size"]))
    symtab = elf.get_section_by_name(".symtab")

    def resolve(sym) -> int:
        shndx = sym["st_shndx"]
        if shndx == "SHN_UNDEF":
            name = sym.name
            if name not in image.externals:
                addr = _host_symbol(name)
                if addr is None:
                    raise EmulationError(f"the code calls {name!r}, which neither the program nor libm/libc "
                                         "defines")
                image.externals[name] = addr
            return image.externals[name]
        if shndx == "SHN_ABS":
            return sym["st_value"]
        if not isinstance(shndx, int) or shndx not in place:
            raise EmulationError(f"symbol {sym.name!r} lives in section {shndx}, which is not loaded")
        return base + place[shndx] + sym["st_value"]

    if symtab is not None:
        for sym in symtab.iter_symbols():
            if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE") \
                    and sym["st_shndx"] != "SHN_UNDEF" and isinstance(sym["st_shndx"], int) \
                    and sym["st_shndx"] in place:
                image.symbols[sym.name] = resolve(sym)
    for rel_sec in elf.iter_sections():
        if not isinstance(rel_sec, RelocationSection):
            continue
        target = rel_sec["sh_info"]
        if target not in place:
            continue
        syms = elf.get_section(rel_sec["sh_link"])
        for rel in rel_sec.iter_relocations():
            kind = rel["r_info_type"]
            sym = syms.get_symbol(rel["r_info_sym"])
            addend = rel["r_addend"] if rel.is_RELA() else 0
            where = place[target] + rel["r_offset"]
            value = resolve(sym) + addend
            if kind == R_X86_64_64:
                struct.pack_into("<Q", buf, where, value & (2 ** 64 - 1))
            elif kind == R_X86_64_PC64:
                struct.pack_into("<q", buf, where, value - (base + where))
            elif kind in (R_X86_64_PC32, R_X86_64_PLT32):
                delta = value - (base + where)
                if not -2 ** 31 <= delta < 2 ** 31:
                    raise EmulationError(f"relocation to {sym.name or 'a section'} is out of 32-bit range; "
                                         "the emulator expects large-code-model objects")
                struct.pack_into("<i", buf, where, delta)
            elif kind == R_X86_64_NONE:
                continue
            else:
                raise EmulationError(f"unsupported relocation type {kind} against {sym.name or 'a section'}")
    return image


__all__ = ["LinkedImage", "link"]
