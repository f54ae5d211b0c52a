"""The ``Schedule``: a program, the history of programs after each step, handles, the trace.

IR nodes are immutable: each primitive is a function from program to program that
returns a new ``PrimFunc`` sharing every untouched subtree. The schedule keeps the
list of programs (``sch.history``), which gives ``sch.undo()`` and ``sch.fork()``
for free. Handles (``BlockRV``/``LoopRV``) name blocks by name and loops by their
loop variable, so they stay valid while the thing they name exists.

>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64, 64), "float32", name="A")
>>> B = te.compute((64, 64), lambda i, j: A[i, j] + 1.0, name="B")
>>> sch = wb.Schedule(wb.create_prim_func([A, B]))
>>> i, j = sch.get_loops(sch.get_block("B"))
>>> io, ii = sch.split(i, factors=[None, 8])
>>> len(sch.history), sch.get(io).extent.value
(2, 8)
>>> sch.undo(); len(sch.history)
1
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from ..ir.function import IRModule, PrimFunc
from ..ir.stmt import BlockRealize, For
from .errors import InvalidHandleError, ScheduleArgumentError, ScheduleError
from .trace import BlockRV, ExprRV, Instruction, LoopRV, RV, Trace
from .tree import Index


@dataclass
class Outcome:
    """What a primitive returns to the schedule.

    ``outputs`` uses identities: ``("loop", var)``, ``("block", name)``, ``("expr", int)``
    or lists of them; ``renames`` maps old block names to new ones.
    """

    func: PrimFunc | None = None
    outputs: Any = None
    renames: dict = field(default_factory=dict)
    decision: Any = None


@dataclass
class Step:
    """One entry of ``sch.history``: the program after a primitive."""

    index: int
    name: str
    func: PrimFunc
    text: str = ""
    # state before this step, to undo it
    _rvs_before: dict = field(default_factory=dict, repr=False)
    _trace_len_before: int = 0
    _rng_before: Any = None

    def __repr__(self) -> str:
        return f"Step({self.index}, {self.text or self.name!r})"


_VERB = {"split": "split", "fuse": "fused", "reorder": "reordered", "compute_at": "moved",
         "reverse_compute_at": "moved", "compute_inline": "inlined", "reverse_compute_inline": "inlined",
         "decompose_reduction": "decomposed", "rfactor": "rfactored"}


class Schedule:
    """Schedules one tensor program, one primitive at a time.

    ``sch.mod`` / ``sch.func`` are the current program, ``sch.history`` the programs
    after each step, ``sch.trace`` the primitives as replayable Python.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((16,), "float32", name="A")
    >>> B = te.compute((16,), lambda i: A[i] * 2.0, name="B")
    >>> sch = wb.Schedule(wb.create_prim_func([A, B]), seed=0)
    >>> (i,) = sch.get_loops(sch.get_block("B"))
    >>> sch.vectorize(i); print(sch.get(i).kind)
    vectorized
    """

    def __init__(self, func_or_module: PrimFunc | IRModule, *, seed: int | None = None, func_name: str | None = None):
        if isinstance(func_or_module, Schedule):
            func_or_module = func_or_module.func
        if isinstance(func_or_module, IRModule):
            prims = [(k, f) for k, f in func_or_module.items() if isinstance(f, PrimFunc)]
            if func_name is not None:
                prims = [(k, f) for k, f in prims if k == func_name]
            if len(prims) != 1:
                names = ", ".join(k for k, _ in prims) or "none"
                raise ScheduleArgumentError(
                    f"the module has {len(prims)} tensor programs ({names}); pass func_name= to choose one")
            self._name, func = prims[0]
            self._module = func_or_module
        elif isinstance(func_or_module, PrimFunc):
            func = func_or_module
            self._name = func.name
            self._module = None
        else:
            raise ScheduleArgumentError(
                f"Schedule needs a PrimFunc or an IRModule, got {type(func_or_module).__name__}")
        self._seed = seed
        self._rng = random.Random(seed)
        self._steps: list[Step] = [Step(0, "initial", func, "the original program")]
        self._insts: list[Instruction] = []
        self._rvs: dict[int, tuple] = {}
        self._index_cache: tuple | None = None
        #: the error of the last refused primitive (None after a success); the widget shows it
        self.last_error: ScheduleError | None = None

    # the program ---------------------------------------------------------------------
    @property
    def func(self) -> PrimFunc:
        """The current program."""
        return self._steps[-1].func

    @property
    def mod(self) -> IRModule:
        """The current program in an ``IRModule``: the whole module the schedule was made from (its
        other functions unchanged) with this program replaced, or a module of this program alone."""
        if self._module is None:
            return IRModule({self._name: self.func})
        funcs = dict(self._module.functions)
        funcs[self._name] = self.func
        return self._module.replace(functions=funcs)

    @property
    def history(self) -> list[Step]:
        """The steps so far; ``history[0]`` is the original program, ``history[k].func`` the program after step k."""
        return list(self._steps)

    @property
    def trace(self) -> Trace:
        """Every instruction so far (``print(sch.trace)`` is replayable Python)."""
        return Trace(list(self._insts))

    def index(self) -> Index:
        f = self.func
        if self._index_cache is None or self._index_cache[0] is not f:
            self._index_cache = (f, Index(f))
        return self._index_cache[1]

    def undo(self) -> None:
        """Go back one step (the last primitive that changed the program)."""
        if len(self._steps) == 1:
            raise ScheduleError("there is nothing to undo: the schedule is at its original program")
        step = self._steps.pop()
        self._rvs = step._rvs_before
        del self._insts[step._trace_len_before:]
        self._rng.setstate(step._rng_before)

    def fork(self) -> "Schedule":
        """A cheap copy to explore another branch; handles of this schedule work on the copy."""
        other = object.__new__(Schedule)
        other._name = self._name
        other._module = self._module
        other._seed = self._seed
        other._rng = random.Random()
        other._rng.setstate(self._rng.getstate())
        other._steps = list(self._steps)
        other._insts = list(self._insts)
        other._rvs = dict(self._rvs)
        other._index_cache = self._index_cache
        other.last_error = None
        return other

    copy = fork

    # handles -------------------------------------------------------------------------
    def get(self, rv):
        """The node a handle names: ``For`` for a loop, ``Block`` for a block, the int of a sampled value."""
        if isinstance(rv, LoopRV):
            return self.loop_of(rv)[0]
        if isinstance(rv, BlockRV):
            return self.block_of(rv)[0].block
        if isinstance(rv, ExprRV):
            return int(rv)
        raise ScheduleArgumentError(f"sch.get needs a block or loop handle, got {type(rv).__name__}")

    def _identity(self, rv, kind: str, what: str):
        if not isinstance(rv, RV):
            raise ScheduleArgumentError(
                f"{what} must be a {kind} handle (from sch.get_block / sch.get_loops), got {type(rv).__name__} {rv!r}",
                func=self.func)
        ident = self._rvs.get(rv.id)
        if ident is None:
            raise InvalidHandleError(
                f"the handle {rv!r} is not known to this schedule: the step that made it was undone, "
                "or it belongs to another schedule; get a fresh one with sch.get_block / sch.get_loops",
                func=self.func)
        if ident[0] != kind:
            raise ScheduleArgumentError(f"{what} must be a {kind} handle, got the {ident[0]} handle {rv!r}",
                                        func=self.func)
        return ident[1]

    def is_root_mark(self, loop) -> bool:
        """True for the loop handle that names the root of the program as a compute location
        (what ``sample_compute_location`` returns for "nowhere", TVM's root mark)."""
        ident = self._rvs.get(getattr(loop, "id", None))
        return ident is not None and ident[0] == "loop" and isinstance(ident[1], str)

    def _removed_by(self, present: Callable[[Index], bool]) -> Step | None:
        last = None
        for step in self._steps:
            if present(Index(step.func)):
                last = step.index
        if last is not None and last + 1 < len(self._steps):
            return self._steps[last + 1]
        return None

    def loop_of(self, rv, what: str = "loop") -> tuple[For, tuple]:
        """``(For, ancestors)`` of a loop handle; a clear error when the loop is gone."""
        var = self._identity(rv, "loop", what)
        if isinstance(var, str):
            raise ScheduleArgumentError("this handle names the root of the program, not a loop", func=self.func)
        idx = self.index()
        hit = idx.loops.get(var)
        if hit is not None:
            return hit
        step = self._removed_by(lambda ix: var in ix.loops)
        if step is not None:
            verb = _VERB.get(step.name, "removed")
            raise InvalidHandleError(
                f"loop {var.name} was already {verb} by step {step.index} ({step.name}); its handle no longer "
                f"names a loop — run sch.undo() to go back before that step, or get fresh handles with "
                f"sch.get_loops(...)", func=self.func)
        raise InvalidHandleError(f"loop {var.name} no longer exists in the program", func=self.func)

    def block_of(self, rv, what: str = "block") -> tuple[BlockRealize, tuple]:
        """``(BlockRealize, ancestors)`` of a block handle; a clear error when the block is gone."""
        name = self._identity(rv, "block", what)
        idx = self.index()
        hit = idx.blocks.get(name)
        if hit is not None:
            return hit
        step = self._removed_by(lambda ix: name in ix.blocks)
        if step is not None:
            verb = _VERB.get(step.name, "removed")
            raise InvalidHandleError(
                f"block {name} was already {verb} by step {step.index} ({step.name}); its handle no longer names "
                f"a block — run sch.undo() to go back before that step", func=self.func)
        raise InvalidHandleError(f"block {name} no longer exists in the program", func=self.func)

    def _make_rv(self, ident):
        if isinstance(ident, list):
            return [self._make_rv(x) for x in ident]
        kind, value = ident
        if kind == "loop":
            rv = LoopRV(value if isinstance(value, str) else value.name)
        elif kind == "block":
            rv = BlockRV(value)
        elif kind == "expr":
            rv = ExprRV(value)
        else:  # pragma: no cover
            raise AssertionError(kind)
        self._rvs[rv.id] = (kind, value)
        return rv

    # running primitives ----------------------------------------------------------------
    def _run(self, name: str, fn: Callable[..., Outcome], args: tuple, kwargs: dict, *, record_args=None):
        rvs_before = dict(self._rvs)
        rng_before = self._rng.getstate()
        try:
            out = fn(self, *args, **kwargs)
            from ..ir import verify

            if verify.VERIFY_AFTER_PRIMITIVES and out.func is not None and out.func is not self.func:
                verify.check_primitive_result(name, out.func)
        except ScheduleError as err:
            if err.func is None:
                err.func = self.func
            self._rng.setstate(rng_before)
            again = self._applied_step(name, record_args) if isinstance(err, InvalidHandleError) else None
            if again is not None:  # the cell that made this step was run again
                err = InvalidHandleError(
                    f"this step is already step {again.index} ({again.text}); undo first (sch.undo()) or "
                    f"fork (sch.fork()) to apply it again", detail=err.message, func=self.func)
                self.last_error = err
                raise err from None
            self.last_error = err
            raise
        except Exception:
            self._rng.setstate(rng_before)
            raise
        self.last_error = None
        trace_len = len(self._insts)
        if out.func is not None and out.func is not self.func:
            self._steps.append(Step(len(self._steps), name, out.func, "", rvs_before, trace_len, rng_before))
        for old, new in out.renames.items():
            for k, ident in list(self._rvs.items()):
                if ident[0] == "block" and ident[1] == old:
                    self._rvs[k] = ("block", new)
        outputs = None if out.outputs is None else self._make_rv(out.outputs)
        rargs, rkwargs = record_args if record_args is not None else (args, kwargs)
        inst = Instruction(name, tuple(rargs), dict(rkwargs), outputs, out.decision)
        self._insts.append(inst)
        if self._steps[-1].text == "" and self._steps[-1].name == name:
            self._steps[-1].text = readable_call(name, rargs, rkwargs, rvs_before)
        return outputs

    def _applied_step(self, name: str, record_args) -> Step | None:
        """The step that is exactly this call (same primitive, same handle objects, same arguments),
        when its handles no longer name anything because that step consumed them; else None."""
        if record_args is None:
            return None
        args, kwargs = record_args
        for step in self._steps[1:]:
            at = step._trace_len_before
            inst = self._insts[at] if at < len(self._insts) else None
            if inst is not None and inst.name == name and _same_call(inst.args, tuple(args)) \
                    and inst.kwargs.keys() == kwargs.keys() \
                    and all(_same_call(inst.kwargs[k], kwargs[k]) for k in kwargs):
                return step
        return None

    # display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        try:
            text = self.func.script()
        except Exception:
            text = f"<PrimFunc {self._name}>"
        return f"# Schedule after {len(self._steps) - 1} step(s)\n{text}"

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            from ..viz import mimebundle

            return mimebundle(self)
        except Exception:
            return {"text/plain": repr(self)}

    # look-ups --------------------------------------------------------------------------
    def get_block(self, name: str) -> BlockRV:
        """The block called ``name``; the error lists the blocks there are.

        >>> b = sch.get_block("C")   # doctest: +SKIP
        """
        from . import lookup

        return self._run("get_block", lookup.get_block, (name,), {})

    def get_loops(self, block: BlockRV) -> list[LoopRV]:
        """The loops above ``block``, outermost first, up to the enclosing block."""
        from . import lookup

        return self._run("get_loops", lookup.get_loops, (block,), {})

    def get_child_blocks(self, block_or_loop) -> list[BlockRV]:
        """The blocks directly inside a block or loop (not nested in another block)."""
        from . import lookup

        return self._run("get_child_blocks", lookup.get_child_blocks, (block_or_loop,), {})

    def get_producers(self, block: BlockRV) -> list[BlockRV]:
        """Blocks of the same scope that write a buffer ``block`` reads, before it."""
        from . import lookup

        return self._run("get_producers", lookup.get_producers, (block,), {})

    def get_consumers(self, block: BlockRV) -> list[BlockRV]:
        """Blocks of the same scope that read a buffer ``block`` writes, after it."""
        from . import lookup

        return self._run("get_consumers", lookup.get_consumers, (block,), {})

    def get_output_blocks(self, scope_block: BlockRV | None = None) -> list[BlockRV]:
        """Blocks of the scope (the root by default) that write a buffer of the function's parameters."""
        from . import lookup

        args = () if scope_block is None else (scope_block,)
        return self._run("get_output_blocks", lookup.get_output_blocks, args, {})


def _attach_primitives():
    """A ``Schedule`` method for every registered primitive (``@primitive`` in the family modules), with the
    core's docstring and signature; the look-ups defined on the class itself are kept."""
    import functools

    from .primitive import PRIMITIVES, load_all

    for name, spec in load_all().items():
        if name in Schedule.__dict__:
            continue

        def method(self, *args, __name=name, **kwargs):
            fn = PRIMITIVES[__name].fn     # looked up per call: the registry is the one place a primitive lives
            return self._run(__name, fn, args, kwargs, record_args=_record_args(fn, self, args, kwargs))

        functools.update_wrapper(method, spec.fn, assigned=("__doc__",), updated=())
        method.__name__ = name
        method.__qualname__ = f"Schedule.{name}"
        method.__signature__ = _drop_first_param(spec.fn)
        setattr(Schedule, name, method)


def readable_call(name: str, args, kwargs: dict, rvs: dict) -> str:
    """A step as the user names things: ``reverse_compute_at(block "C", loop j_0)`` (handles shown as
    the block or loop they named when the primitive ran; the trace keeps its replayable form)."""

    def fmt(x) -> str:
        ident = rvs.get(x.id) if isinstance(x, (RV, ExprRV)) else None
        if ident is not None:
            kind, value = ident
            if kind == "block":
                return f'block "{value}"'
            if kind == "loop":
                return "root" if isinstance(value, str) else f"loop {value.name}"
            return str(value)
        if isinstance(x, (list, tuple)):
            return "[" + ", ".join(fmt(y) for y in x) + "]"
        if isinstance(x, str):
            return '"' + x + '"'
        return repr(x)

    parts = [fmt(a) for a in args] + [f"{k}={fmt(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _drop_first_param(fn):
    import inspect

    sig = inspect.signature(fn)
    return sig.replace(parameters=list(sig.parameters.values())[1:], return_annotation=inspect.Signature.empty)


def _record_args(fn, sch, args, kwargs):
    """How a call is written in the trace: handles positional, other arguments by keyword."""
    import inspect

    from .trace import is_rv

    sig = inspect.signature(fn)
    try:
        bound = sig.bind(sch, *args, **kwargs)
    except TypeError as err:
        raise ScheduleArgumentError(f"{fn.__name__}: {err}") from None
    pos: list = []
    kw: dict = {}
    positional_ok = True
    for k, (pname, param) in enumerate(sig.parameters.items()):
        if k == 0 or pname == "decision":
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            pos.extend(bound.arguments.get(pname, ()))
            continue
        if pname not in bound.arguments:
            continue
        value = _plain(bound.arguments[pname])
        if isinstance(value, tuple) and pname != "buffer":
            value = list(value)
        if callable(value) and not is_rv(value):
            value = _index_map_text(value)
        handle = is_rv(value) or (isinstance(value, list) and value and all(is_rv(x) for x in value))
        if positional_ok and (handle or k == 1):
            pos.append(value)
            continue
        positional_ok = False
        if param.default is not inspect.Parameter.empty and _same(value, param.default):
            continue
        kw[pname] = value
    return pos, kw


def _plain(value):
    """numpy integers recorded as Python ints, so the printed trace replays without numpy."""
    import numbers

    from .trace import is_rv

    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and not is_rv(value) \
            and type(value) is not int and hasattr(value, "dtype"):
        return int(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _same_call(a, b) -> bool:
    """Arguments of two calls are the same: handles the very same objects, values equal."""
    from .trace import IndexMapText, is_rv

    if is_rv(a) or is_rv(b):
        return a is b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_call(x, y) for x, y in zip(a, b))
    if isinstance(a, IndexMapText) and isinstance(b, IndexMapText):
        return a.text == b.text
    if isinstance(a, (int, float, str, type(None))):
        return _same(a, b)
    return a is b  # IR objects: `==` may build an expression


def _same(a, b) -> bool:
    try:
        return type(a) is type(b) and a == b
    except Exception:
        return False


def _index_map_text(fn):
    """A lambda as a printable, callable index map (``lambda i, j: (j // 16, i, j % 16)``)."""
    import inspect

    from ..ir.expr import Var
    from .trace import IndexMapText

    if isinstance(fn, IndexMapText):
        return fn
    try:
        names = list(inspect.signature(fn).parameters)
        outs = fn(*[Var(n) for n in names])
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        body = ", ".join(str(e) for e in outs) + ("," if len(outs) == 1 else "")
        return IndexMapText(fn, f"lambda {', '.join(names)}: ({body})")
    except Exception:
        return fn
