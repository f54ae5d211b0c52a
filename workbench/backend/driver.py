"""``build``: lower, generate LLVM IR, optimise and JIT-compile tensor programs for the host CPU."""
from __future__ import annotations

import time

from ..ir.function import IRModule, PrimFunc
from . import cache as _cache
from .target import Target

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
          emulate: bool = False):
    """Compile a tensor program for the host CPU; returns a callable module.

    ``obj`` is a PrimFunc, an IRModule (every PrimFunc in it, each callable by
    name) or a Schedule (its ``.mod``). ``checks=True`` adds bound checks: an
    out-of-bounds access raises ``IndexError`` instead of crashing. The result is
    cached by the program's structural hash and the target, so building the same
    program twice compiles once (``cache=False`` forces a fresh build).

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
    funcs = _collect(obj)
    if name is not None and len(funcs) == 1:
        funcs = {name: next(iter(funcs.values()))}
    tgt = Target(target)
    key = _cache.make_key(funcs, tgt, checks, emulate) if cache else None
    if key is not None:
        hit = _cache.get(key)
        if hit is not None:
            return hit
    mod = _compile(funcs, tgt, checks, emulate)
    if key is not None:
        _cache.put(key, mod)
    return mod


def _compile(funcs: dict, tgt: Target, checks: bool, emulate: bool = False):
    import ctypes

    from .llvm.codegen import ModuleCodegen
    from .llvm.module import BuiltFunction, LLVMModule, compile_ir, size_vars
    from .llvm.runtime import LAUNCH_ADDR
    from .lower import lower

    times: dict = {}
    t0 = time.perf_counter()
    lowered = {n: lower(f, tgt, checks=checks) for n, f in funcs.items()}
    from .llvm.target_intrinsics import check_target_intrinsics

    check_target_intrinsics(lowered, tgt)  # llvm.x86.* calls need their CPU features
    t1 = time.perf_counter()
    cg = ModuleCodegen("workbench")
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
    engine, opt_text, tm = compile_ir(text, tgt, times)
    slot = engine.get_global_value_address("__wb_launch")
    ctypes.c_void_p.from_address(slot).value = LAUNCH_ADDR
    _cache.count_compile()
    m = LLVMModule(tgt, engine, text, opt_text, tm, times)
    for n, f in funcs.items():
        info, var_order = infos[n]
        m.functions[n] = BuiltFunction(m, n, info.symbol, f, lowered[n], info, var_order)
    return m


__all__ = ["build"]
