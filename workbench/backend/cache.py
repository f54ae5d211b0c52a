"""The compile cache: re-building the same program for the same target reuses the machine code.

In memory, the cache keeps a private copy of each built module and hands out a
fresh one (``module.share()``: same compiled code, its own attributes) per build,
so a setting changed on one build's result does not leak into the next build.

The key is ``workbench.ir.structural.structural_hash`` of each function, with
the names that show in error messages, the target string and the build options;
re-running a notebook cell therefore does not recompile.

On disk (``$WORKBENCH_CACHE_DIR/builds``, else ``~/.cache/workbench/builds``), the
LLVM backend keeps what a new process needs to skip lowering, code generation,
optimisation and JIT compilation: the object code, the LLVM IR texts and the
call information of each function (JSON). An entry's file name hashes the key
and :func:`compiler_version` (the sources of ``workbench.backend`` and
``workbench.ir``, llvmlite's and LLVM's versions), so a changed compiler never
reads an older one's code. A corrupt entry (checksums) is ignored and rebuilt;
writers write a temporary file and rename it, so concurrent processes never read
half an entry. ``wb.build(..., cache=False)`` or ``WORKBENCH_NO_DISK_CACHE=1``
turn it off.

>>> from workbench.backend import cache
>>> cache.stats()["compiles"] >= 0
True
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections import OrderedDict

MAX_ENTRIES = 64

_lock = threading.Lock()
_entries: "OrderedDict[tuple, object]" = OrderedDict()
_STAT_NAMES = ("compiles", "hits", "disk_hits", "disk_misses", "disk_writes", "disk_rejected")
_stats = dict.fromkeys(_STAT_NAMES, 0)


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
    _count("compiles")


def _count(name: str) -> None:
    with _lock:
        _stats[name] += 1


def stats() -> dict:
    """Counters since the process started: ``compiles`` (programs compiled), ``hits`` (builds served from
    memory), ``entries`` (modules in memory), ``disk_hits`` / ``disk_misses`` (builds looked up on disk),
    ``disk_writes`` (entries written), ``disk_rejected`` (corrupt entries ignored)."""
    with _lock:
        return dict(_stats, entries=len(_entries))


def clear() -> None:
    """Forget every module cached in memory (the disk cache stays: :func:`clear_disk`)."""
    with _lock:
        _entries.clear()


# the disk cache ----------------------------------------------------------------------------------

#: bumped when the entry layout changes
FORMAT = 1
#: the disk cache of builds is trimmed to this size (least recently used entries go first)
MAX_DISK_BYTES = 1 << 30
_MAGIC = b"WBBUILD1"
_HEADER_LEN = struct.Struct("<Q")
_version: list[str] = []


def cache_root() -> str:
    """The folder of workbench's disk caches: ``$WORKBENCH_CACHE_DIR`` or ``~/.cache/workbench``."""
    return os.environ.get("WORKBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "workbench")


def builds_dir() -> str:
    """Where compiled builds are kept: ``<cache_root()>/builds``."""
    return os.path.join(cache_root(), "builds")


def disk_enabled() -> bool:
    """False when the environment variable ``WORKBENCH_NO_DISK_CACHE`` is set (to anything but ``0``)."""
    return os.environ.get("WORKBENCH_NO_DISK_CACHE", "0").strip() in ("", "0")


def compiler_version() -> str:
    """A hash of what compiled code depends on besides the program: the sources of ``workbench.backend``
    and ``workbench.ir``, llvmlite's and LLVM's versions and the entry format."""
    if not _version:
        import llvmlite
        import llvmlite.binding as llvm

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256(f"{FORMAT}|{llvmlite.__version__}|{llvm.llvm_version_info}".encode())
        for folder in ("backend", "ir"):
            for dirpath, dirs, files in os.walk(os.path.join(root, folder)):
                dirs.sort()
                for name in sorted(f for f in files if f.endswith(".py")):
                    path = os.path.join(dirpath, name)
                    with open(path, "rb") as f:
                        h.update(os.path.relpath(path, root).encode() + b"\0" + f.read())
        _version.append(h.hexdigest())
    return _version[0]


def disk_path(key: tuple) -> str:
    """The file of the entry for ``key`` (a :func:`make_key` key)."""
    return os.path.join(builds_dir(), _disk_name(key) + ".wbbuild")


def _disk_name(key: tuple) -> str:
    return hashlib.sha256(f"{compiler_version()}|{key!r}".encode()).hexdigest()[:40]


def disk_get(key: tuple, valid=None) -> tuple[dict, dict[str, bytes]] | None:
    """The entry for ``key``: ``(header, blobs)`` as :func:`disk_put` stored them, or None when there is
    none or it is corrupt, or ``valid(header, blobs)`` is false (such an entry is deleted and counted in
    ``disk_rejected``)."""
    path = disk_path(key)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:  # none (or unreadable): build
        _count("disk_misses")
        return None
    entry = _decode(data, key)
    if entry is None or (valid is not None and not valid(*entry)):
        _count("disk_rejected")
        _count("disk_misses")
        _remove(path)
        return None
    _count("disk_hits")
    _touch(path)
    return entry


def disk_put(key: tuple, header: dict, blobs: dict[str, bytes]) -> bool:
    """Store ``header`` (plain JSON data) and named byte strings for ``key``; atomic (a temporary file
    renamed into place). False when the cache folder cannot be written (the build still works)."""
    data = _encode(key, header, blobs)
    path = disk_path(key)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        _remove(tmp)
        return False
    _count("disk_writes")
    _trim(os.path.dirname(path), MAX_DISK_BYTES)
    return True


def clear_disk() -> int:
    """Delete every entry of the disk cache of builds; returns how many there were."""
    folder = builds_dir()
    names = [n for n in os.listdir(folder) if n.endswith(".wbbuild")] if os.path.isdir(folder) else []
    for name in names:
        _remove(os.path.join(folder, name))
    return len(names)


def _touch(path: str) -> None:
    """Mark an entry as used now (trimming removes the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _trim(folder: str, max_bytes: int) -> None:
    """Remove the least recently used entries of ``folder`` until they take at most ``max_bytes``."""
    entries = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.endswith(".wbbuild"):
                try:
                    st = e.stat()
                except OSError:  # removed meanwhile by another process
                    continue
                entries.append((st.st_mtime, st.st_size, e.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        _remove(path)
        total -= size


def _remove(path: str) -> None:
    """Delete ``path`` if it can be (best effort: a cache file another process removed, or one in a
    read-only folder, is left to it)."""
    try:
        os.remove(path)
    except OSError:
        pass


def _encode(key: tuple, header: dict, blobs: dict[str, bytes]) -> bytes:
    table = [[name, len(b), hashlib.sha256(b).hexdigest()] for name, b in blobs.items()]
    head = json.dumps({"key": repr(key), "version": compiler_version(), "blobs": table, "data": header},
                      sort_keys=True).encode()
    return b"".join([_MAGIC, _HEADER_LEN.pack(len(head)), head, *blobs.values()])


def _decode(data: bytes, key: tuple) -> tuple[dict, dict[str, bytes]] | None:
    """``(header, blobs)`` of an entry, or None unless it is complete, intact and for ``key``."""
    start = len(_MAGIC) + _HEADER_LEN.size
    if len(data) < start or not data.startswith(_MAGIC):
        return None
    (n,) = _HEADER_LEN.unpack_from(data, len(_MAGIC))
    try:
        head = json.loads(data[start:start + n].decode())
    except ValueError:  # not UTF-8 or not JSON
        return None
    if not (isinstance(head, dict) and head.get("key") == repr(key) and head.get("version") == compiler_version()
            and isinstance(head.get("data"), dict) and isinstance(head.get("blobs"), list)):
        return None
    blobs, pos = {}, start + n
    for item in head["blobs"]:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[1], int)):
            return None
        name, size, digest = item
        blob = data[pos:pos + size]
        if len(blob) != size or hashlib.sha256(blob).hexdigest() != digest:
            return None
        blobs[name], pos = blob, pos + size
    return (head["data"], blobs) if pos == len(data) else None


__all__ = ["make_key", "get", "put", "stats", "clear", "count_compile", "cache_root", "builds_dir",
           "disk_enabled", "compiler_version", "disk_path", "disk_get", "disk_put", "clear_disk"]
