"""Features of a scheduled program for the cost model: a fixed-length vector read from its lowered loop nest.

The program is lowered to loops (blocks removed, ``lower_blocks`` + ``simplify``), then
each buffer store is described by its loop context: trip counts by loop kind (parallel,
vectorized, unrolled, serial), the innermost loop, the stride of each access along the
innermost and the vectorized loop, and the bytes each loop level touches (its
*footprint*), from which come estimates of the traffic through 32 KiB and 1 MiB caches.
The store with the most iterations (the main computation) gives the detailed features;
counts over all stores are added.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64, 64), "float32", name="A")
>>> B = te.compute((64, 64), lambda i, j: A[i, j] * 2.0, name="B")
>>> v = extract_features(wb.create_prim_func([A, B]))
>>> len(v) == len(FEATURE_NAMES)
True
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import expr as E
from ..ir.functor import Visitor
from ..ir.stmt import BufferStore, For, ForKind

FEATURE_NAMES = (
    "log_stores", "log_total_trips", "log_main_trips", "log_parallel_extent", "log_vector_lanes",
    "log_unrolled", "log_serial", "inner_is_vectorized", "inner_is_unrolled", "log_inner_extent",
    "n_loads", "n_local_accesses", "frac_unit_stride_inner", "frac_zero_stride_inner", "frac_other_stride_inner",
    "frac_unit_stride_vector", "frac_other_stride_vector", "log_footprint_inner", "log_traffic_l1",
    "log_traffic_l2", "log_flops_per_store", "depth",
)

L1_BYTES, L2_BYTES = 32 * 1024, 1024 * 1024


def _log(x: float) -> float:
    return math.log2(1.0 + max(0.0, x))


class _Stores(Visitor):
    """Each BufferStore with the loops around it (outermost first)."""

    def __init__(self):
        self.loops: list[For] = []
        self.stores: list[tuple[BufferStore, tuple]] = []

    def visit_For(self, f: For):
        self.loops.append(f)
        self.visit(f.body)
        self.loops.pop()

    def visit_BufferStore(self, s: BufferStore):
        self.stores.append((s, tuple(self.loops)))


class _Loads(Visitor):
    def __init__(self):
        self.loads: list = []
        self.flops = 0

    def visit_BufferLoad(self, e):
        self.loads.append(e)
        for i in e.indices:
            self.visit(i)

    def generic_visit(self, node):
        if isinstance(node, (E.Add, E.Sub, E.Mul, E.Div, E.Max, E.Min)) and node.dtype.startswith("float"):
            self.flops += 1
        return super().generic_visit(node)


class _ZeroDefault(dict):
    """An ``eval_int`` environment in which every variable not given is 0."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        return dict.get(self, key, 0)


def _stride(indices, shape, var) -> int | None:
    """How far (in elements) the row-major flattened index moves when ``var`` grows by one
    (every other variable 0); None when an index cannot be evaluated."""
    from ._program import eval_int

    try:
        at0 = [eval_int(i, _ZeroDefault()) for i in indices]
        at1 = [eval_int(i, _ZeroDefault({id(var): 1})) for i in indices]
    except ValueError:
        return None
    return _flatten(at1, shape) - _flatten(at0, shape)


def _flatten(idx: list, shape: list) -> int:
    out = 0
    for i, n in zip(idx, shape):
        out = out * n + i
    return out


def _shape(buf) -> list[int]:
    return [E.as_int(d) or 1 for d in buf.shape]


def _itemsize(dtype: str) -> int:
    from .flops import _itemsize as size

    return size(dtype)


def _store_features(store: BufferStore, loops: tuple) -> dict:
    exts = [E.as_int(f.extent) or 1 for f in loops]
    trips = math.prod(exts)
    by_kind = {k: 1 for k in ("parallel", "vectorized", "unrolled", "serial")}
    for f, n in zip(loops, exts):
        kind = {ForKind.PARALLEL: "parallel", ForKind.VECTORIZED: "vectorized",
                ForKind.UNROLLED: "unrolled"}.get(f.kind, "serial")
        by_kind[kind] *= n
    loads = _Loads()
    loads.visit(store.value)
    accesses = [(store.buffer, store.indices)] + [(ld.buffer, ld.indices) for ld in loads.loads]
    inner = loops[-1] if loops else None
    vec = next((f for f in reversed(loops) if f.kind == ForKind.VECTORIZED), None)
    strides_inner = [_stride(idx, _shape(b), inner.loop_var) if inner else 0 for b, idx in accesses]
    strides_vec = [_stride(idx, _shape(b), vec.loop_var) for b, idx in accesses] if vec else []
    n = len(accesses)
    foot = _footprints(accesses, loops, exts)
    traffic = {}
    for cap in (L1_BYTES, L2_BYTES):
        t = next((t for t in range(len(loops) + 1) if foot[t] <= cap), len(loops))
        traffic[cap] = foot[t] * math.prod(exts[:t])
    return {
        "trips": trips,
        "log_main_trips": _log(trips),
        "log_parallel_extent": _log(by_kind["parallel"]),
        "log_vector_lanes": _log(by_kind["vectorized"]),
        "log_unrolled": _log(by_kind["unrolled"]),
        "log_serial": _log(by_kind["serial"]),
        "inner_is_vectorized": float(inner is not None and inner.kind == ForKind.VECTORIZED),
        "inner_is_unrolled": float(inner is not None and inner.kind == ForKind.UNROLLED),
        "log_inner_extent": _log(exts[-1] if exts else 1),
        "n_loads": float(len(loads.loads)),
        "n_local_accesses": float(sum(b.scope == "local" for b, _ in accesses)),
        "frac_unit_stride_inner": sum(s in (1, -1) for s in strides_inner) / n,
        "frac_zero_stride_inner": sum(s == 0 for s in strides_inner) / n,
        "frac_other_stride_inner": sum(s not in (0, 1, -1) for s in strides_inner) / n,
        "frac_unit_stride_vector": sum(s == 1 for s in strides_vec) / n if vec else 0.0,
        "frac_other_stride_vector": sum(s not in (0, 1) for s in strides_vec) / n if vec else 0.0,
        "log_footprint_inner": _log(foot[len(loops) - 1] if loops else foot[0]),
        "log_traffic_l1": _log(traffic[L1_BYTES]),
        "log_traffic_l2": _log(traffic[L2_BYTES]),
        "log_flops_per_store": _log(loads.flops),
        "depth": float(len(loops)),
    }


def _footprints(accesses, loops, exts) -> list[float]:
    """Bytes touched by one iteration of each loop level (``[t]``: the loops from ``t`` inwards; the
    last entry is one store)."""
    out = []
    for t in range(len(loops) + 1):
        total = 0.0
        for buf, idx in accesses:
            size = _itemsize(buf.dtype)
            for f, n in zip(loops[t:], exts[t:]):
                if _stride(idx, _shape(buf), f.loop_var) != 0:
                    size *= n
            total += size
        out.append(total)
    return out


def extract_features(func) -> np.ndarray:
    """The feature vector (``FEATURE_NAMES``) of a scheduled PrimFunc."""
    from ..backend.lower import lower_blocks, simplify

    low = simplify(lower_blocks(func))
    stores = _Stores()
    stores.visit(low.body)
    per = [_store_features(s, loops) for s, loops in stores.stores]
    out = dict.fromkeys(FEATURE_NAMES, 0.0)
    if per:
        main = max(per, key=lambda d: (d["trips"], d["n_loads"]))
        out.update({k: v for k, v in main.items() if k in out})
        out["log_stores"] = _log(len(per))
        out["log_total_trips"] = _log(sum(d["trips"] for d in per))
    return np.array([out[k] for k in FEATURE_NAMES], dtype="float64")


__all__ = ["extract_features", "FEATURE_NAMES"]
