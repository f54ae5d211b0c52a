"""The registry of schedule primitives, and primitives as pure functions of a program.

Each primitive is declared once, in the module of its family, by :func:`primitive`::

    @primitive("loops")
    def split(sch, loop: LoopRV, factors: Sequence) -> Outcome:
        ...

Its core is a function of a *program state* (the program, handles naming its loops and
blocks, a random generator for sampling) and its arguments, returning an
:class:`~workbench.schedule.state.Outcome` with the new program; it never changes the
state it is given. Two things wrap the same core:

* :class:`~workbench.schedule.Schedule` adds user handles, the history, undo/fork and
  the trace (its method of the same name is generated from the registry, with the
  core's docstring and signature);
* :func:`apply` runs it on a bare ``PrimFunc`` and returns the new one: what graph
  passes and the tuner call, with no schedule around it.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64,), "float32", name="A")
>>> B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
>>> f = wb.create_prim_func([A, B])
>>> (i,) = [loop.loop_var for loop in loops_of(f, "B")]
>>> g, (io, ii) = apply(f, "split", i, factors=[None, 16])
>>> [loop.extent.value for loop in loops_of(g, "B")], f is not g
([4, 16], True)
"""
from __future__ import annotations

import importlib
import pkgutil
import random
from dataclasses import dataclass
from typing import Any, Callable

from ..ir.expr import Var
from ..ir.stmt import Block, BlockRealize, For
from .errors import InvalidHandleError, ScheduleArgumentError
from .trace import BlockRV, LoopRV, RV

#: the root of the program as a compute location (``sample_compute_location``'s "nowhere")
ROOT = "root"


@dataclass(frozen=True)
class PrimitiveSpec:
    """A registered primitive: its name, family (the module that defines it) and core function."""

    name: str
    family: str
    fn: Callable


PRIMITIVES: dict[str, PrimitiveSpec] = {}


def primitive(family: str, name: str | None = None) -> Callable[[Callable], Callable]:
    """Register a primitive's core under ``name`` (default: the function's name).

    The core takes the program state first (a :class:`ProgramState` or a ``Schedule``)
    and returns an ``Outcome``; the decorator returns it unchanged.
    """
    def register(fn: Callable) -> Callable:
        spec = PrimitiveSpec(name or fn.__name__, family, fn)
        old = PRIMITIVES.get(spec.name)
        if old is not None and old.fn.__module__ != fn.__module__:
            raise ValueError(f"two schedule primitives are called {spec.name!r}: in {old.fn.__module__} and "
                             f"{fn.__module__}")
        PRIMITIVES[spec.name] = spec
        return fn

    return register


def load_all() -> dict[str, PrimitiveSpec]:
    """Import every family module of ``workbench.schedule`` (each registers its primitives)."""
    import workbench.schedule as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"workbench.schedule.{info.name}")
    return PRIMITIVES


class ProgramState:
    """A program with handles and a random generator: what a primitive's core works on.

    The same interface as ``Schedule`` offers the cores (``func``, ``index()``,
    ``loop_of``, ``block_of``, ``is_root_mark``), without history or trace.
    """

    def __init__(self, func, seed: int | None = None):
        from .tree import Index

        self.func = func
        self._rng = random.Random(seed)
        self._rvs: dict[int, tuple] = {}
        self._idx = Index(func)

    def index(self):
        return self._idx

    def handle(self, x):
        """A handle for an IR object: a loop (its ``For`` or loop ``Var``), a block (``Block``,
        ``BlockRealize``), the string ``"root"`` where a loop is expected; lists element-wise;
        anything else unchanged."""
        if isinstance(x, For):
            x = x.loop_var
        if isinstance(x, Var) and x in self._idx.loops:
            rv = LoopRV(x.name)
            self._rvs[rv.id] = ("loop", x)
            return rv
        if isinstance(x, (Block, BlockRealize)):
            name = x.name if isinstance(x, Block) else x.block.name
            rv = BlockRV(name)
            self._rvs[rv.id] = ("block", name)
            return rv
        if isinstance(x, list):
            return [self.handle(y) for y in x]
        if isinstance(x, tuple):
            return tuple(self.handle(y) for y in x)
        return x

    def _ident(self, rv, kind: str, what: str):
        ident = self._rvs.get(getattr(rv, "id", None)) if isinstance(rv, RV) else None
        if ident is None or ident[0] != kind:
            raise ScheduleArgumentError(f"{what} must be a {kind} of the program, got {rv!r}", func=self.func)
        return ident[1]

    def loop_of(self, rv, what: str = "loop"):
        var = self._ident(rv, "loop", what)
        if isinstance(var, str):
            raise ScheduleArgumentError("this handle names the root of the program, not a loop", func=self.func)
        hit = self._idx.loops.get(var)
        if hit is None:
            raise InvalidHandleError(f"loop {var.name} is not in the program", func=self.func)
        return hit

    def block_of(self, rv, what: str = "block"):
        name = self._ident(rv, "block", what)
        hit = self._idx.blocks.get(name)
        if hit is None:
            raise InvalidHandleError(f"block {name} is not in the program", func=self.func)
        return hit

    def is_root_mark(self, loop) -> bool:
        """True for the handle that names the root of the program as a compute location."""
        ident = self._rvs.get(getattr(loop, "id", None))
        return ident is not None and ident[0] == "loop" and isinstance(ident[1], str)


@dataclass
class Applied:
    """The result of :func:`apply`: the new program and the primitive's outputs
    (loops as their loop ``Var``, blocks as their ``Block`` in the new program, sampled values as ints)."""

    func: Any
    outputs: Any

    def __iter__(self):
        return iter((self.func, self.outputs))


def apply(func, name: str, *args, seed: int | None = None, **kwargs) -> Applied:
    """Run the primitive ``name`` on ``func`` and return the new program (``func`` is unchanged).

    Loops are given as their ``For`` or loop ``Var``, blocks as their ``Block``; see the
    module docstring for an example. A refused request raises the same ``ScheduleError``
    as the ``Schedule`` method.
    """
    load_all()
    spec = PRIMITIVES.get(name)
    if spec is None:
        raise ScheduleArgumentError(f"there is no schedule primitive called {name!r}; the primitives are "
                                    f"{', '.join(sorted(PRIMITIVES))}")
    state = ProgramState(func, seed)
    if name == "compute_at" or name == "reverse_compute_at":
        args = tuple(_root_handle(state, a) for a in args)
    out = spec.fn(state, *state.handle(args), **{k: state.handle(v) for k, v in kwargs.items()})
    new = func if out.func is None else out.func
    return Applied(new, _plain_outputs(out.outputs, new))


def _root_handle(state: ProgramState, x):
    if isinstance(x, str) and x == ROOT:
        rv = LoopRV(ROOT)
        state._rvs[rv.id] = ("loop", ROOT)
        return rv
    return x


def _plain_outputs(outs, func):
    from .tree import Index

    if outs is None:
        return None
    if isinstance(outs, list):
        return [_plain_outputs(o, func) for o in outs]
    kind, value = outs
    if kind == "block":
        return Index(func).block(value)
    if kind == "expr":
        return int(value)
    return value


def loops_of(func, block_name: str) -> list[For]:
    """The loops above the block ``block_name``, outermost first (a look-up for :func:`apply`'s users)."""
    from .tree import Index

    idx = Index(func)
    if block_name not in idx.blocks:
        raise ScheduleArgumentError(f"there is no block {block_name!r}; the blocks are {', '.join(idx.order)}")
    return idx.loops_of(block_name)


__all__ = ["primitive", "PRIMITIVES", "PrimitiveSpec", "ProgramState", "apply", "Applied", "load_all", "loops_of",
           "ROOT"]
