"""The tensor-intrinsic registry: named (description, implementation) pairs for ``sch.tensorize``.

A tensor intrinsic is two small PrimFuncs over the same buffer parameters:

* ``desc`` says *what* is computed, as ordinary loops and one block
  (``C[i] += A[k] * B[i, k]`` over a 16 x 4 grid);
* ``impl`` says *how*: target intrinsic calls (``wb.call_intrin("int32x16",
  "llvm.x86.avx512.vpdpbusd.512", ...)``), vector code with ``wb.ramp``/``wb.broadcast``,
  ``wb.call_extern``, or plain loops.

``sch.tensorize(block, name)`` matches a block against ``desc`` and puts ``impl`` in
its place. ``target_features`` are the CPU features ``impl`` needs; tensorize
refuses an intrinsic whose features the target lacks. ``precision`` states how
``impl``'s results relate to ``desc``'s (``"exact"``, or the contract where they may
differ, e.g. a float sum in another order); ``wb.list_tensor_intrins()`` shows it.

>>> import workbench as wb
>>> from workbench.schedule.tensor_intrin import get_tensor_intrin
>>> t = get_tensor_intrin("matmul_add_4x4")
>>> t.target_features
()
>>> print(t.desc.script().splitlines()[0])
@wb.prim_func
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ...ir.function import PrimFunc
from ..errors import ScheduleArgumentError


class TensorIntrinNotFoundError(ScheduleArgumentError, KeyError):
    """No tensor intrinsic of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return ScheduleArgumentError.__str__(self)


@dataclass(frozen=True)
class TensorIntrin:
    """A registered tensor intrinsic: ``desc`` (what), ``impl`` (how), the CPU features ``impl`` needs,
    and ``precision``: how ``impl``'s results relate to ``desc``'s (``"exact"``, or the contract)."""

    name: str
    desc: PrimFunc
    impl: PrimFunc
    target_features: tuple = ()
    summary: str = ""
    notes: str = ""
    precision: str = ""

    def __repr__(self) -> str:
        feats = ", ".join(self.target_features) or "none (any CPU)"
        return (f"TensorIntrin({self.name!r}: {self.summary}; needs {feats}; precision: {_precision(self)})\n"
                f"# description\n{self.desc.script()}\n# implementation\n{self.impl.script()}")


_REGISTRY: dict[str, TensorIntrin] = {}
_BUILTINS_LOADED = False


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from . import teaching, x86  # noqa: F401  (they register themselves)
    from ...backend.cuda import intrin  # noqa: F401  (CUDA tensor cores; needs no cuda-python to register)


def register_tensor_intrin(name: str, desc: PrimFunc, impl: PrimFunc, *, target_features: Iterable[str] = (),
                           summary: str = "", notes: str = "", precision: str = "",
                           override: bool = False) -> TensorIntrin:
    """Register a tensor intrinsic under ``name``; ``sch.tensorize(block, name)`` then uses it.

    ``desc`` and ``impl`` take the same buffers (same number, shapes and dtypes, in the
    same order). ``target_features`` lists the LLVM CPU features ``impl`` needs
    (``("avx512f", "avx512vnni")``). ``summary`` is the one line ``wb.list_tensor_intrins()``
    shows (derived from ``desc`` when omitted). ``precision`` is the contract between
    ``impl``'s results and ``desc``'s: ``"exact"`` where they are always equal, else how
    they may differ (``wb.list_tensor_intrins()`` shows it; "not stated" when omitted).

    >>> import workbench as wb
    >>> @wb.prim_func
    ... def add4_desc(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    ...     for i in range(4):
    ...         with wb.block("add"):
    ...             vi = wb.axis.spatial(4, i)
    ...             B[vi] = B[vi] + A[vi]
    >>> @wb.prim_func
    ... def add4_impl(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    ...     B[wb.ramp(0, 1, 4)] = B[wb.ramp(0, 1, 4)] + A[wb.ramp(0, 1, 4)]
    >>> _ = wb.register_tensor_intrin("doc_add4", add4_desc, add4_impl, override=True)
    """
    _load_builtins()
    if not isinstance(name, str) or not name:
        raise ScheduleArgumentError(f"a tensor intrinsic needs a non-empty name, got {name!r}")
    for what, f in (("desc", desc), ("impl", impl)):
        if not isinstance(f, PrimFunc):
            raise ScheduleArgumentError(f"tensor intrinsic {name}: {what} must be a PrimFunc (write it with "
                                        f"@wb.prim_func), got {type(f).__name__}")
    db, ib = desc.buffers, impl.buffers
    if len(db) != len(ib):
        raise ScheduleArgumentError(f"tensor intrinsic {name}: desc has {len(db)} buffer parameters but impl has "
                                    f"{len(ib)}; they must take the same buffers in the same order")
    from ...ir.structural import structural_equal

    for k, (a, b) in enumerate(zip(db, ib)):
        if a.dtype != b.dtype or not structural_equal(tuple(a.shape), tuple(b.shape)):
            raise ScheduleArgumentError(
                f"tensor intrinsic {name}: buffer {k} is {a.name}{_shape(a)} {a.dtype} in desc but "
                f"{b.name}{_shape(b)} {b.dtype} in impl; they must agree")
    if name in _REGISTRY and not override:
        raise ScheduleArgumentError(f"a tensor intrinsic named {name!r} is already registered; pick another "
                                    f"name or pass override=True")
    from .describe import describe_desc

    intrin = TensorIntrin(name, desc, impl, tuple(target_features), summary or describe_desc(desc), notes,
                          precision)
    _REGISTRY[name] = intrin
    return intrin


def _precision(t: TensorIntrin) -> str:
    return t.precision or "not stated"


def _shape(b) -> str:
    return "[" + ", ".join(str(d) for d in b.shape) + "]"


def get_tensor_intrin(name: str) -> TensorIntrin:
    """The tensor intrinsic registered as ``name``; the error lists the names there are.

    >>> get_tensor_intrin("dot_u8s8_avx2").target_features
    ('avx2',)
    """
    _load_builtins()
    hit = _REGISTRY.get(name)
    if hit is None:
        raise TensorIntrinNotFoundError(
            f"no tensor intrinsic is named {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}")
    return hit


class IntrinTable(list):
    """The rows of ``wb.list_tensor_intrins()``: a list of :class:`TensorIntrin` that prints as a table."""

    def names(self) -> list[str]:
        return [t.name for t in self]

    def rows(self, target=None) -> list[tuple[str, ...]]:
        """(name, target features, computes, precision[, runs on ``target``]) for each intrinsic."""
        out = []
        for t in self:
            feats = ", ".join(t.target_features) or "-"
            row = (t.name, feats, t.summary, _precision(t))
            if target is not None:
                from ...backend.target import missing_features

                miss = missing_features(t.target_features, target)
                row += ("yes" if not miss else "no (lacks " + ", ".join(miss) + "): build with emulate=True",)
            out.append(row)
        return out

    def __str__(self) -> str:
        try:
            from ...backend.target import Target

            host = Target("llvm")
        except Exception:  # pragma: no cover - no LLVM
            host = None
        rows = self.rows(host)
        head = ("name", "target features", "computes", "precision") + (("runs on this host",) if host is not None else ())
        widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(head)]
        fmt = "  ".join("{:<%d}" % w for w in widths)
        lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*r) for r in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        import html

        rows = self.rows()
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return ("<table><tr><th>name</th><th>target features</th><th>computes</th><th>precision</th></tr>" + body
                + "</table>")

    def to_frame(self):
        """The table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=["name", "target features", "computes", "precision"])


def list_tensor_intrins() -> IntrinTable:
    """Every registered tensor intrinsic: ``print(wb.list_tensor_intrins())`` shows name, features, computation.

    >>> import workbench as wb
    >>> "dot_u8s8_vnni" in wb.list_tensor_intrins().names()
    True
    """
    _load_builtins()
    return IntrinTable(sorted(_REGISTRY.values(), key=lambda t: t.name))


__all__ = ["TensorIntrin", "TensorIntrinNotFoundError", "register_tensor_intrin", "get_tensor_intrin",
           "list_tensor_intrins", "IntrinTable"]
