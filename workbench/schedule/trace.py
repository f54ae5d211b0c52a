"""The trace: every primitive applied to a schedule, printable as Python and replayable.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64, 64), "float32", name="A")
>>> B = te.compute((64, 64), lambda i, j: A[i, j] * 2.0, name="B")
>>> sch = wb.Schedule(wb.create_prim_func([A, B]))
>>> i, j = sch.get_loops(sch.get_block("B"))
>>> io, ii = sch.split(i, factors=[None, 16])
>>> print(sch.trace)
b0 = sch.get_block("B")
l1, l2 = sch.get_loops(b0)
l3, l4 = sch.split(l1, factors=[None, 16])
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping

_ids = itertools.count()


class RV:
    """A handle (random variable, in TVM's words) naming a block or loop of a schedule.

    Handles stay valid across later primitives while the thing they name exists.
    """

    __slots__ = ("id", "hint")
    prefix = "x"

    def __init__(self, hint: str = ""):
        self.id = next(_ids)
        self.hint = hint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hint!r})"


class BlockRV(RV):
    """Handle of a block; ``sch.get(b)`` is the ``Block``."""

    __slots__ = ()
    prefix = "b"


class LoopRV(RV):
    """Handle of a loop; ``sch.get(l)`` is the ``For``."""

    __slots__ = ()
    prefix = "l"


class ExprRV(int):
    """A sampled integer (a tile factor, a categorical choice); usable wherever an int is."""

    prefix = "v"

    def __new__(cls, value: int):
        obj = super().__new__(cls, int(value))
        obj.id = next(_ids)
        return obj

    def __repr__(self) -> str:
        return f"ExprRV({int(self)})"


def is_rv(x) -> bool:
    return isinstance(x, (RV, ExprRV))


@dataclass
class Instruction:
    """One primitive call: ``name(*args, **kwargs) -> outputs``; ``decision`` for sampling."""

    name: str
    args: tuple
    kwargs: dict
    outputs: Any  # an RV, a list of RVs, or None
    decision: Any = None


class IndexMapText:
    """A callable index map that prints as the lambda it was built from."""

    def __init__(self, fn, text: str):
        self.fn = fn
        self.text = text

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self) -> str:
        return self.text


@dataclass
class Trace:
    """The instructions of a schedule, in order.

    ``str(trace)`` is Python that, run with ``sch = wb.Schedule(original)``, reproduces
    the schedule; ``trace.apply(func)`` replays it (``decisions=`` replaces sampling
    decisions, keyed by instruction index, see ``trace.decisions``).
    """

    insts: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.insts)

    def __iter__(self):
        return iter(self.insts)

    @property
    def decisions(self) -> dict[int, Any]:
        """``{instruction index: decision}`` of the sampling instructions."""
        return {k: inst.decision for k, inst in enumerate(self.insts) if inst.decision is not None}

    def as_python(self, sch_name: str = "sch") -> str:
        names: dict[int, str] = {}
        counter = itertools.count()
        lines: list[str] = []

        def fmt(x) -> str:
            if is_rv(x):
                return names.get(x.id, f"<unknown {type(x).__name__}>")
            if isinstance(x, (list, tuple)):
                inner = ", ".join(fmt(y) for y in x)
                return f"[{inner}]" if isinstance(x, list) else (f"({inner},)" if len(x) == 1 else f"({inner})")
            if isinstance(x, str):
                return '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return repr(x)

        for inst in self.insts:
            parts = [fmt(a) for a in inst.args]
            kwargs = dict(inst.kwargs)
            if inst.decision is not None:
                kwargs["decision"] = inst.decision
            parts += [f"{k}={fmt(v)}" for k, v in kwargs.items()]
            call = f"{sch_name}.{inst.name}({', '.join(parts)})"
            outs = inst.outputs
            if outs is None:
                lines.append(call)
                continue
            flat = outs if isinstance(outs, list) else [outs]
            for o in flat:
                names[o.id] = f"{o.prefix}{next(counter)}"
            if isinstance(outs, list):
                if not outs:
                    lines.append(call)
                elif len(outs) == 1:
                    lines.append(f"{names[outs[0].id]}, = {call}")
                else:
                    lines.append(f"{', '.join(names[o.id] for o in outs)} = {call}")
            else:
                lines.append(f"{names[outs.id]} = {call}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_python()

    def __repr__(self) -> str:
        return self.as_python()

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(self.as_python()) + "</pre>"

    def apply(self, func, decisions: Mapping[int, Any] | None = None, seed: int | None = None):
        """Replay the trace on ``func`` and return the new ``Schedule``.

        ``decisions`` maps instruction indices (``trace.decisions``) to new decisions.
        """
        from .state import Schedule

        sch = Schedule(func, seed=seed)
        apply_to(self, sch, decisions)
        return sch


def apply_to(trace: Trace, sch, decisions: Mapping[int, Any] | None = None) -> None:
    """Run ``trace``'s instructions on ``sch`` (mapping old handles to new ones)."""
    decisions = dict(decisions or {})
    remap: dict[int, Any] = {}

    def conv(x):
        if is_rv(x):
            if x.id not in remap:
                raise ValueError(f"the trace uses a handle {x!r} before any instruction made it")
            return remap[x.id]
        if isinstance(x, list):
            return [conv(y) for y in x]
        if isinstance(x, tuple):
            return tuple(conv(y) for y in x)
        return x

    for k, inst in enumerate(trace.insts):
        args = [conv(a) for a in inst.args]
        kwargs = {key: conv(v) for key, v in inst.kwargs.items()}
        if inst.decision is not None or k in decisions:
            kwargs["decision"] = decisions.get(k, inst.decision)
        out = getattr(sch, inst.name)(*args, **kwargs)
        if inst.outputs is None:
            continue
        if isinstance(inst.outputs, list):
            for old, new in zip(inst.outputs, out):
                remap[old.id] = new
        else:
            remap[inst.outputs.id] = out


__all__ = ["RV", "BlockRV", "LoopRV", "ExprRV", "Instruction", "Trace", "IndexMapText"]
