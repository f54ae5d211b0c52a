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

    # traces as data --------------------------------------------------------------------
    def to_json(self) -> str:
        """The trace as JSON text: each instruction's name, inputs, outputs and decision.

        Handles become ``{"rv": "l1"}`` references to the outputs of earlier instructions,
        index maps their lambda text; :meth:`Trace.from_json` reads it back, and the read
        trace replays to a structurally equal program.

        >>> import json
        >>> import workbench as wb
        >>> from workbench import te
        >>> A = te.placeholder((64,), "float32", name="A")
        >>> B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
        >>> sch = wb.Schedule(wb.create_prim_func([A, B]))
        >>> (i,) = sch.get_loops(sch.get_block("B"))
        >>> io, ii = sch.split(i, factors=[None, 16])
        >>> json.loads(sch.trace.to_json())["insts"][2]
        {'name': 'split', 'inputs': [{'rv': 'l1'}], 'kwargs': {'factors': [None, 16]}, 'outputs': ['l2', 'l3'], 'decision': None}
        >>> str(Trace.from_json(sch.trace.to_json())) == str(sch.trace)
        True
        """
        import json

        return json.dumps(self.to_data())

    def to_data(self) -> dict:
        """The trace as plain data (dicts, lists, strings, numbers); ``json.dumps`` of it is :meth:`to_json`."""
        names: dict[int, str] = {}
        counter = itertools.count()
        insts = []
        for k, inst in enumerate(self.insts):
            where = f"instruction {k} ({inst.name})"
            entry = {"name": inst.name,
                     "inputs": [_encode(a, names, where) for a in inst.args],
                     "kwargs": {key: _encode(v, names, where) for key, v in inst.kwargs.items()}}
            outs = inst.outputs
            flat = [] if outs is None else (outs if isinstance(outs, list) else [outs])
            for o in flat:
                names[o.id] = f"{o.prefix}{next(counter)}"
            if outs is None:
                entry["outputs"] = None
            elif isinstance(outs, list):
                entry["outputs"] = [names[o.id] for o in outs]
            else:
                entry["outputs"] = names[outs.id]
            entry["decision"] = _encode(inst.decision, names, where)
            insts.append(entry)
        return {"format": "workbench-trace", "version": 1, "insts": insts}

    @classmethod
    def from_json(cls, text: str) -> "Trace":
        """Read a trace written by :meth:`to_json` (see there for an example)."""
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"this is not a trace: the text is not JSON ({err})") from None
        return cls.from_data(data)

    @classmethod
    def from_data(cls, data: Mapping) -> "Trace":
        """Read a trace from :meth:`to_data`'s plain data."""
        if not isinstance(data, Mapping) or data.get("format") != "workbench-trace":
            raise ValueError("this is not a trace: expected an object with \"format\": \"workbench-trace\"")
        if data.get("version") != 1:
            raise ValueError(f"trace format version {data.get('version')!r} is not supported (this workbench reads 1)")
        rvs: dict[str, Any] = {}
        insts = []
        for k, entry in enumerate(data.get("insts", [])):
            where = f"instruction {k}"
            try:
                name = entry["name"]
                where = f"instruction {k} ({name})"
                args = tuple(_decode(a, rvs, where) for a in entry.get("inputs", []))
                kwargs = {key: _decode(v, rvs, where) for key, v in entry.get("kwargs", {}).items()}
                decision = _decode(entry.get("decision"), rvs, where)
                outs = entry.get("outputs")
            except (KeyError, TypeError, AttributeError) as err:
                raise ValueError(f"trace {where} is malformed: {err!r}") from None
            if outs is None:
                outputs = None
            elif isinstance(outs, list):
                outputs = [_new_rv(o, rvs, where) for o in outs]
            else:
                outputs = _new_rv(outs, rvs, where)
            insts.append(Instruction(name, args, kwargs, outputs, decision))
        return cls(insts)

    def apply(self, func, decisions: Mapping[int, Any] | None = None, seed: int | None = None):
        """Replay the trace on ``func`` and return the new ``Schedule``.

        ``decisions`` maps instruction indices (``trace.decisions``) to new decisions.
        """
        from .state import Schedule

        sch = Schedule(func, seed=seed)
        apply_to(self, sch, decisions)
        return sch


_RV_KINDS = {"b": BlockRV, "l": LoopRV}


def _encode(x, names: dict, where: str):
    if is_rv(x):
        if x.id not in names:
            raise ValueError(f"trace {where} uses a handle {x!r} that no earlier instruction made")
        return {"rv": names[x.id]}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [_encode(y, names, where) for y in x]
    if isinstance(x, tuple):
        return {"tuple": [_encode(y, names, where) for y in x]}
    if isinstance(x, dict):
        return {"dict": [[_encode(k, names, where), _encode(v, names, where)] for k, v in x.items()]}
    if isinstance(x, IndexMapText):
        return {"index_map": x.text}
    if hasattr(x, "dtype") and hasattr(x, "item") and getattr(x, "shape", None) == ():  # numpy scalar
        return x.item()
    raise ValueError(f"trace {where}: an argument of type {type(x).__name__} ({x!r}) cannot be written as data")


def _new_rv(name, rvs: dict, where: str):
    if not isinstance(name, str) or name[:1] not in ("b", "l", "v"):
        raise ValueError(f"trace {where}: output {name!r} is not a handle name such as b0, l1 or v2")
    if name[0] == "v":
        rv = ExprRV(0)  # the value comes from replay; only the identity matters here
    else:
        rv = _RV_KINDS[name[0]](name)
    rvs[name] = rv
    return rv


def _decode(x, rvs: dict, where: str):
    if isinstance(x, list):
        return [_decode(y, rvs, where) for y in x]
    if not isinstance(x, dict):
        return x
    if set(x) == {"rv"}:
        if x["rv"] not in rvs:
            raise ValueError(f"trace {where} uses the handle {x['rv']} before any instruction made it")
        return rvs[x["rv"]]
    if set(x) == {"tuple"}:
        return tuple(_decode(y, rvs, where) for y in x["tuple"])
    if set(x) == {"dict"}:
        return {_decode(k, rvs, where): _decode(v, rvs, where) for k, v in x["dict"]}
    if set(x) == {"index_map"}:
        return index_map_from_text(x["index_map"], where)
    raise ValueError(f"trace {where}: cannot read the value {x!r}")


def index_map_from_text(text: str, where: str = "index map") -> IndexMapText:
    """A callable index map from its lambda text, without ``eval``: only ``+ - * // %``,
    unary minus, integer constants and the lambda's own parameters are allowed.

    >>> m = index_map_from_text("lambda i, j: (j // 16, i, j % 16)")
    >>> m(3, 40)
    (2, 3, 8)
    """
    import ast
    import inspect
    import operator

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"{where}: {text!r} is not a lambda ({err.msg})") from None
    if not isinstance(tree, ast.Lambda) or tree.args.vararg or tree.args.kwarg or tree.args.kwonlyargs:
        raise ValueError(f"{where}: {text!r} is not a lambda of plain parameters")
    params = [a.arg for a in tree.args.args]

    def check(node):
        if isinstance(node, ast.Tuple):
            return all(check(e) for e in node.elts)
        if isinstance(node, ast.BinOp):
            return type(node.op) in ops and check(node.left) and check(node.right)
        if isinstance(node, ast.UnaryOp):
            return isinstance(node.op, ast.USub) and check(node.operand)
        if isinstance(node, ast.Name):
            return node.id in params
        return isinstance(node, ast.Constant) and type(node.value) is int

    if not check(tree.body):
        raise ValueError(f"{where}: {text!r} may only use + - * // %, integers and its parameters")

    def run(node, env):
        if isinstance(node, ast.Tuple):
            return tuple(run(e, env) for e in node.elts)
        if isinstance(node, ast.BinOp):
            return ops[type(node.op)](run(node.left, env), run(node.right, env))
        if isinstance(node, ast.UnaryOp):
            return 0 - run(node.operand, env)
        if isinstance(node, ast.Name):
            return env[node.id]
        return node.value

    def fn(*args):
        if len(args) != len(params):
            raise TypeError(f"the index map {text} takes {len(params)} indices, got {len(args)}")
        return run(tree.body, dict(zip(params, args)))

    fn.__signature__ = inspect.Signature(
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params])
    return IndexMapText(fn, text)


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


__all__ = ["RV", "BlockRV", "LoopRV", "ExprRV", "Instruction", "Trace", "IndexMapText", "index_map_from_text"]
