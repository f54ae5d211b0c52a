"""The compile cache: re-building the same program for the same target reuses the machine code.

The cache keeps a private copy of each built module and hands out a fresh one
(``module.share()``: same compiled code, its own attributes) per build, so a
setting changed on one build's result does not leak into the next build.

The key is ``workbench.ir.structural.structural_hash`` of each function, with
the names that show in error messages and the target string; re-running a
notebook cell therefore does not recompile.

>>> from workbench.backend import cache
>>> cache.stats()["compiles"] >= 0
True
"""
from __future__ import annotations

import threading
from collections import OrderedDict

MAX_ENTRIES = 64

_lock = threading.Lock()
_entries: "OrderedDict[tuple, object]" = OrderedDict()
_stats = {"compiles": 0, "hits": 0}


def make_key(funcs: dict, target, checks: bool, emulate: bool = False, allow_extern=frozenset()) -> tuple:
    """The cache key of functions (name -> PrimFunc) built for ``target`` with these options
    (``allow_extern``: the C functions the build lets ``wb.call_extern`` call besides the math library)."""
    from ..ir.structural import structural_hash
    from .llvm.codegen import extern_allowlist

    parts = []
    for name, f in funcs.items():
        names = tuple(f.buffer_map[p].name if p in f.buffer_map else p.name for p in f.params)
        parts.append((name, structural_hash(f), names))
    allowed = tuple(sorted(extern_allowlist(allow_extern)))
    return (tuple(parts), target.cache_key, bool(checks), bool(emulate), allowed)


def get(key):
    """A fresh module object for ``key`` sharing the cached compiled code, or None."""
    with _lock:
        hit = _entries.get(key)
        if hit is None:
            return None
        _entries.move_to_end(key)
        _stats["hits"] += 1
    return hit.share()


def put(key, module) -> None:
    """Cache ``module`` (a private copy of it: later changes to ``module`` stay out of the cache)."""
    module = module.share()
    with _lock:
        _entries[key] = module
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def count_compile() -> None:
    with _lock:
        _stats["compiles"] += 1


def stats() -> dict:
    """``{"compiles": n, "hits": n, "entries": n}`` since the process started."""
    with _lock:
        return dict(_stats, entries=len(_entries))


def clear() -> None:
    """Forget every cached module."""
    with _lock:
        _entries.clear()


__all__ = ["make_key", "get", "put", "stats", "clear", "count_compile"]
