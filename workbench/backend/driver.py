"""``build``: lower and compile tensor programs with the backend of the target's kind.

Backends are registered by target kind: ``register_backend("llvm", build_llvm)``
is built in; an OpenCL or CUDA backend registers itself the same way (and, for
GPU kinds, its host/device split pass) without changes here or in the LLVM
backend. A kind with no backend registered is looked up as the sub-package
``workbench.backend.<kind>``, which registers itself when imported.

>>> "llvm" in available_backends()     # others register when their sub-package is first imported
True
"""
from __future__ import annotations

import importlib
import os
import time
from typing import Callable

from ..ir.function import IRModule, PrimFunc
from . import cache as _cache
from .target import BackendUnavailableError, Target

#: ``build_fn(funcs, target, checks=..., emulate=..., allow_extern=...) -> module``; ``funcs`` maps names
#: to PrimFuncs
BuildFn = Callable[..., object]

_BACKENDS: dict[str, BuildFn] = {}


def register_backend(kind: str, build_fn: BuildFn, split_host_device: Callable | None = None) -> None:
    """Make ``wb.build(..., target="<kind> ...")`` call ``build_fn(funcs, target, checks=..., emulate=..., ...)``.

    ``funcs`` maps each name to its (unlowered) PrimFunc; the backend lowers them with
    ``workbench.backend.lower.lower(func, target)``. GPU backends pass the pass that
    splits host code from device kernels as ``split_host_device``.
    """
    from .target import KINDS

    if kind not in KINDS:
        raise ValueError(f"register_backend: unknown target kind {kind!r}; known kinds: {', '.join(KINDS)}")
    _BACKENDS[kind] = build_fn
    if split_host_device is not None:
        from .lower import register_host_device_split

        register_host_device_split(kind, split_host_device)


def available_backends() -> list[str]:
    """The target kinds a backend is registered for."""
    return list(_BACKENDS)


def backend_for(tgt: Target) -> BuildFn:
    """The build function of ``tgt``'s kind; :class:`BackendUnavailableError` when there is none."""
    fn = _BACKENDS.get(tgt.kind)
    if fn is None:
        _import_backend_package(tgt.kind)
        fn = _BACKENDS.get(tgt.kind)
    if fn is None:
        raise BackendUnavailableError(
            f"cannot build for {tgt} ({tgt.describe()}): no {tgt.kind} backend is available yet; "
            f"available: {', '.join(_BACKENDS)}")
    return fn


def _import_backend_package(kind: str) -> None:
    name = f"{__package__}.{kind}"
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:  # the package exists but lacks a dependency: say which
            raise

_RESERVED = {"free", "malloc", "aligned_alloc", "memcpy", "memset", "main_", "abort", "exit", "printf"}


def _symbol(name: str) -> str:
    from ..ir.expr import INTRINSICS

    bad = name in _RESERVED or name in INTRINSICS or name.rstrip("f") in INTRINSICS or name.startswith("llvm.")
    bad = bad or name.startswith("__wb")
    return f"{name}_wb" if bad else name


def _collect(obj) -> dict:
    if isinstance(obj, PrimFunc):
        return {obj.name: obj}
    if isinstance(obj, IRModule):
        funcs = {}
        for k, f in obj.functions.items():
            if isinstance(f, PrimFunc):
                funcs[k] = f
        if not funcs:
            raise ValueError("build() found no tensor program (PrimFunc) in this module; graph-level functions "
                             "need LegalizeOps first")
        return funcs
    if hasattr(obj, "mod"):
        return _collect(obj.mod)
    raise TypeError(f"build() takes a PrimFunc, an IRModule or a Schedule (anything with .mod), "
                    f"got {type(obj).__name__}")


def build(obj, target="llvm", *, checks: bool = False, cache: bool = True, name: str | None = None,
          emulate: bool = False, allow_extern=frozenset()):
    """Compile a tensor program for ``target``; returns a callable module.

    ``obj`` is a PrimFunc, an IRModule (every PrimFunc in it, each callable by
    name) or a Schedule (its ``.mod``). A module with graph functions gives an
    :class:`~workbench.backend.executable.Executable` (its tensor programs compiled
    together, plus the graph functions) to run with ``wb.VirtualMachine(ex)``.
    ``checks=True`` adds bound checks: an out-of-bounds access raises ``IndexError``
    instead of crashing. The result is cached by the program's structural hash and the target, so building the same
    program twice compiles once (``cache=False`` forces a fresh build); each build
    returns its own module object sharing the compiled code. LLVM builds are also kept on disk
    (:mod:`workbench.backend.cache`), so a new process loads the machine code instead of compiling
    again (not for ``emulate=True``; ``cache=False`` or ``WORKBENCH_NO_DISK_CACHE=1`` turn it off).
    ``wb.call_extern`` may call the C math functions (``expf``, ``tanhf``, ``erff``, ``powf``, ...); any other
    C function must be allowed explicitly, ``allow_extern={"memset"}``, or the build
    refuses (a program could otherwise call ``system``).

    >>> import numpy as np
    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((8,), "float32", name="A")
    >>> B = te.compute((8,), lambda i: A[i] * 2.0, name="B")
    >>> f = wb.build(wb.create_prim_func([A, B]), target="llvm")
    >>> a = np.arange(8, dtype="float32"); b = np.empty(8, "float32")
    >>> f(a, b); b.tolist() == (a * 2).tolist()
    True
    """
    graph_mod = _graph_module(obj)
    if graph_mod is not None:
        return _build_executable(graph_mod, target, checks=checks, cache=cache, emulate=emulate,
                                 allow_extern=allow_extern)
    funcs = _collect(obj)
    if name is not None and len(funcs) == 1:
        funcs = {name: next(iter(funcs.values()))}
    tgt = Target(target)
    build_fn = backend_for(tgt)
    from .llvm.codegen import extern_allowlist

    allow = extern_allowlist(allow_extern)
    key = _cache.make_key(funcs, tgt, checks, emulate, allow) if cache else None
    if key is not None:
        hit = _cache.get(key)
        if hit is not None:
            return hit
    extra = {"cache_key": key} if build_fn is build_llvm else {}
    mod = build_fn(funcs, tgt, checks=checks, emulate=emulate, allow_extern=allow, **extra)
    if key is not None:
        _cache.put(key, mod)
    return mod


def built_on_disk(obj, target="llvm") -> bool:
    """Whether ``wb.build(obj, target)`` would read the machine code from the disk cache instead of compiling
    (False with the disk cache off)."""
    graph_mod = _graph_module(obj)
    if graph_mod is not None:
        return not graph_mod.prim_funcs or built_on_disk(IRModule(graph_mod.prim_funcs), target)
    if not _cache.disk_enabled():
        return False
    from .llvm.codegen import extern_allowlist

    key = _cache.make_key(_collect(obj), Target(target), False, False, extern_allowlist(frozenset()))
    return os.path.exists(_cache.disk_path(key))


def _graph_module(obj) -> IRModule | None:
    """The module of ``obj`` (an IRModule or anything with ``.mod``) when it has graph functions."""
    mod = obj if isinstance(obj, IRModule) else getattr(obj, "mod", None)
    if isinstance(mod, IRModule) and mod.graph_functions:
        return mod
    return None


def _build_executable(mod: IRModule, target, **options):
    """Build every tensor program of ``mod`` into one module; an Executable holds it and the graph functions."""
    from .executable import Executable

    kernels = build(IRModule(mod.prim_funcs), target, **options) if mod.prim_funcs else None
    return Executable(mod, kernels, Target(target))


def build_llvm(funcs: dict, tgt: Target, *, checks: bool = False, emulate: bool = False,
               allow_extern=frozenset(), cache_key: tuple | None = None):
    """The LLVM backend: lower, generate LLVM IR, optimise and JIT-compile (or run in the CPU emulator).

    With ``cache_key`` (the compile cache's key of this build) a native build is read from the disk
    cache when it is there, and written to it otherwise (unless ``WORKBENCH_NO_DISK_CACHE`` is set).
    """
    use_disk = cache_key is not None and not emulate and _cache.disk_enabled()
    if use_disk:
        m = _load_llvm_build(cache_key, funcs, tgt, checks)
        if m is not None:
            return m
    import ctypes

    from .llvm.codegen import ModuleCodegen
    from .llvm.module import BuiltFunction, LLVMModule, compile_ir, size_vars
    from .llvm.runtime import launch_address
    from .lower import lower

    times: dict = {}
    t0 = time.perf_counter()
    lowered = {n: lower(f, tgt, checks=checks) for n, f in funcs.items()}
    from .llvm.target_intrinsics import check_target_intrinsics

    check_target_intrinsics(lowered, tgt)  # llvm.x86.* calls need their CPU features
    t1 = time.perf_counter()
    cg = ModuleCodegen("workbench", allow_extern=allow_extern)
    infos = {}
    for n, f in funcs.items():
        low = lowered[n]
        var_order = size_vars(f)
        buf_params = [low.buffer_map[p] for p in f.params if p in f.buffer_map]
        infos[n] = (cg.add_function(low, _symbol(n), var_order, buf_params), var_order)
    text = cg.text()
    t2 = time.perf_counter()
    times["lower"], times["codegen"] = t1 - t0, t2 - t1
    if emulate:
        from .emulate.module import compile_emulated

        _cache.count_compile()
        return compile_emulated(funcs, lowered, infos, text, tgt, times, _symbol)
    engine, opt_text, tm, obj = compile_ir(text, tgt, times)
    slot = engine.get_global_value_address("__wb_launch")
    ctypes.c_void_p.from_address(slot).value = launch_address()
    _cache.count_compile()
    m = LLVMModule(tgt, engine, text, opt_text, tm, times)
    for n, f in funcs.items():
        info, var_order = infos[n]
        m.functions[n] = BuiltFunction(m, n, info.symbol, f, lowered[n], info, var_order)
    if use_disk and obj:
        _store_llvm_build(cache_key, m, obj)
    return m


# the disk cache of LLVM builds ------------------------------------------------------------------------

def _store_llvm_build(key: tuple, m, obj: bytes) -> None:
    """Write what :func:`_load_llvm_build` needs: the object code, both IR texts (zlib) and, per function,
    its symbol, run-time check messages and which parameters it writes (JSON)."""
    import zlib

    functions = {}
    for n, bf in m.functions.items():
        info = bf.info
        functions[n] = {"symbol": info.symbol, "info_name": info.name, "messages": list(info.messages),
                        "parallel_fns": list(info.parallel_fns), "written": [p.written for p in bf.params],
                        "num_vars": len(bf.var_order)}
    if not all(isinstance(s, str) for f in functions.values() for s in f["messages"] + f["parallel_fns"]):
        return  # not plain text: the build stays in memory only
    blobs = {"object": obj, "ir": zlib.compress(m.source("ll-raw").encode(), 1),
             "opt": zlib.compress(m.source("ll").encode(), 1)}
    _cache.disk_put(key, {"functions": functions}, blobs)


def _load_llvm_build(key: tuple, funcs: dict, tgt: Target, checks: bool):
    """The module for ``funcs`` rebuilt from its disk cache entry (no lowering or compiling), or None."""
    from .llvm.module import size_vars

    var_orders = {n: size_vars(f) for n, f in funcs.items()}
    entry = _cache.disk_get(key, valid=lambda header, blobs: _entry_fits(header, blobs, funcs, var_orders))
    if entry is None:
        return None
    header, blobs = entry
    import ctypes
    import zlib

    from .llvm.codegen import FuncInfo
    from .llvm.module import BuiltFunction, LLVMModule, load_object, restored_param_specs
    from .llvm.runtime import launch_address
    from .lower import lower

    times: dict = {}
    engine, tm = load_object(blobs["object"], tgt, times)
    ctypes.c_void_p.from_address(engine.get_global_value_address("__wb_launch")).value = launch_address()
    m = LLVMModule(tgt, engine, zlib.decompress(blobs["ir"]).decode(), zlib.decompress(blobs["opt"]).decode(),
                   tm, times)
    for n, f in funcs.items():
        rec = header["functions"][n]
        info = FuncInfo(rec["info_name"], rec["symbol"], list(rec["messages"]), list(rec["parallel_fns"]))
        m.functions[n] = BuiltFunction(m, n, info.symbol, f, None, info, var_orders[n],
                                       params=restored_param_specs(f, rec["written"]),
                                       lower=lambda f=f: lower(f, tgt, checks=checks))
    return m


def _entry_fits(header: dict, blobs: dict, funcs: dict, var_orders: dict) -> bool:
    """Whether a disk cache entry has every blob and a well-formed record of each function of ``funcs``."""
    if set(blobs) != {"object", "ir", "opt"}:
        return False
    records = header.get("functions")
    if not isinstance(records, dict) or set(records) != set(funcs):
        return False
    for n, f in funcs.items():
        rec = records[n]
        if not (isinstance(rec, dict) and isinstance(rec.get("symbol"), str) and isinstance(rec.get("info_name"), str)
                and isinstance(rec.get("messages"), list) and isinstance(rec.get("parallel_fns"), list)
                and isinstance(rec.get("written"), list) and len(rec["written"]) == len(f.params)
                and rec.get("num_vars") == len(var_orders[n])):
            return False
    return True


register_backend("llvm", build_llvm)

__all__ = ["build", "register_backend", "available_backends", "backend_for", "build_llvm"]
