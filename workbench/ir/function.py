"""Functions and modules: ``PrimFunc`` (a tensor program) and ``IRModule``."""
from __future__ import annotations

from typing import Iterator

from .buffer import Buffer
from .expr import Var
from .node import FrozenDict, Node, freeze_dict, node, set_field
from .stmt import Stmt


@node
class PrimFunc(Node):
    """A tensor program.

    ``params`` are variables: handles for buffer parameters (looked up in
    ``buffer_map``) or scalars. Symbolic sizes such as ``n`` that appear only in
    buffer shapes are bound from the arrays at call time.
    """

    params: tuple
    buffer_map: FrozenDict
    body: Stmt
    attrs: FrozenDict = None  # type: ignore[assignment]

    def __post_init__(self):
        params = tuple(self.params)
        for p in params:
            if not isinstance(p, Var):
                raise TypeError(f"function parameters must be Vars, got {type(p).__name__}")
        set_field(self, "params", params)
        bm = freeze_dict(self.buffer_map)
        for k, v in bm.items():
            if k not in params:
                raise ValueError(f"buffer_map names {k.name}, which is not a parameter")
            if not isinstance(v, Buffer):
                raise TypeError(f"buffer_map[{k.name}] must be a Buffer")
        set_field(self, "buffer_map", bm)
        if not isinstance(self.body, Stmt):
            raise TypeError(f"a function body must be a statement, got {type(self.body).__name__}")
        set_field(self, "attrs", freeze_dict(self.attrs))

    __hash__ = object.__hash__

    @property
    def buffers(self) -> list[Buffer]:
        """The buffer parameters, in parameter order."""
        return [self.buffer_map[p] for p in self.params if p in self.buffer_map]

    @property
    def name(self) -> str:
        return str(self.attrs.get("global_symbol", "main"))

    def with_body(self, body: Stmt) -> "PrimFunc":
        return self.replace(body=body)

    def with_attr(self, key: str, value) -> "PrimFunc":
        attrs = dict(self.attrs)
        attrs[key] = value
        return self.replace(attrs=FrozenDict(attrs))

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            from ..viz import mimebundle
        except Exception:  # viz not available: fall back to text
            return {"text/plain": self.script()}
        return mimebundle(self)


@node
class IRModule(Node):
    """A set of named functions: tensor programs (``PrimFunc``) and graph functions
    (``workbench.ir.graph.Function``), printed and parsed together.

    >>> import workbench as wb
    >>> from workbench import te
    >>> A = te.placeholder((4,), name="A")
    >>> mod = IRModule({"double": te.create_prim_func([A, te.compute((4,), lambda i: A[i] * 2.0)], "double")})
    >>> list(mod.prim_funcs), list(mod.graph_functions)
    (['double'], [])
    """

    functions: FrozenDict
    attrs: FrozenDict = None  # type: ignore[assignment]

    def __post_init__(self):
        fns = freeze_dict(self.functions)
        for k in fns:
            if not isinstance(k, str):
                raise TypeError(f"IRModule function names must be strings, got {k!r}")
        set_field(self, "functions", fns)
        set_field(self, "attrs", freeze_dict(self.attrs))

    __hash__ = object.__hash__

    @staticmethod
    def from_func(func: PrimFunc, name: str | None = None) -> "IRModule":
        return IRModule({name or func.name: func})

    def __getitem__(self, name: str):
        try:
            return self.functions[name]
        except KeyError:
            raise KeyError(f"module has no function {name!r}; it has {', '.join(self.functions) or 'none'}") from None

    def __contains__(self, name) -> bool:
        return name in self.functions

    def __iter__(self) -> Iterator[str]:
        return iter(self.functions)

    def __len__(self) -> int:
        return len(self.functions)

    def items(self):
        return self.functions.items()

    def with_function(self, name: str, func) -> "IRModule":
        fns = dict(self.functions)
        fns[name] = func
        return self.replace(functions=FrozenDict(fns))

    def without_function(self, name: str) -> "IRModule":
        fns = dict(self.functions)
        fns.pop(name)
        return self.replace(functions=FrozenDict(fns))

    @property
    def prim_funcs(self) -> dict:
        """The tensor programs, by name."""
        return {k: f for k, f in self.functions.items() if isinstance(f, PrimFunc)}

    @property
    def graph_functions(self) -> dict:
        """The graph functions, by name."""
        from .graph.expr import Function

        return {k: f for k, f in self.functions.items() if isinstance(f, Function)}

    def _repr_mimebundle_(self, include=None, exclude=None):
        try:
            from ..viz import mimebundle
        except Exception:
            return {"text/plain": self.script()}
        return mimebundle(self)


__all__ = ["PrimFunc", "IRModule"]
