"""Giving the C heap's free memory back to the operating system.

Parsing a model file or compiling a module makes and frees many small objects; glibc's allocator keeps
the freed pages (the process's resident memory stays at its peak) until ``malloc_trim`` returns them.
:func:`return_free_memory` does that where the C library has it (glibc), and nothing elsewhere.

>>> return_free_memory() in (True, False)
True
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):   # not glibc (musl, macOS, Windows)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def return_free_memory(collect: bool = True) -> bool:
    """Collect Python's garbage cycles (unless ``collect`` is false: that takes milliseconds in a process with
    many objects), then return the C heap's free pages to the system; whether the C library could (False
    where it has no ``malloc_trim``)."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["return_free_memory"]
