"""``wb.BlockBuilder``: build graph functions (and the tensor programs they call) from Python.

As in TVM Relax and the MLC course: open a function, optionally a dataflow block, emit
values (each becomes a variable), then emit the function's output.

>>> import workbench as wb
>>> from workbench import te
>>> n = wb.var("n")
>>> x = wb.graph.Var("x", wb.Tensor((n, 4), "float32"))
>>> def double(a):
...     return te.compute(a.shape, lambda i, j: a[i, j] * 2.0, name="double")
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         lv = bb.emit_te(double, x)
...         gv = bb.emit_output(wb.op.demo.negative(lv))
...     bb.emit_func_output(gv)
>>> mod = bb.get()
>>> print(mod["main"].script())
@wb.function
def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
    with wb.dataflow():
        lv = wb.call_tir(Module.double, (x,), out=wb.Tensor(("n", 4), "float32"))
        gv = wb.output(wb.op.demo.negative(lv))
    return gv
>>> sorted(mod.functions)
['double', 'main']

Parameters are graph ``Var`` s typed with ``wb.Tensor``: size variables are either
``wb.var("n")`` objects or strings (``wb.Tensor(("n", 4), "float32")``), which name one
shared size variable per name (:func:`workbench.ir.graph.script.size_var`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

from ..function import IRModule, PrimFunc
from .expr import (
    BindingBlock, Call, DataflowBlock, DataflowVar, Expr, Function, GlobalVar, MatchCast, SeqExpr, Tuple, Var,
    VarBinding, as_expr,
)
from .types import GraphType, TensorType, TupleType


class BlockBuilderError(ValueError):
    """The block builder was used out of order (emit outside a function, output outside dataflow, ...)."""


class _FunctionFrame:
    def __init__(self, name: str, params: list | None, attrs: dict, private: bool):
        self.name = name
        self.params = params
        self.attrs = attrs
        self.private = private
        self.blocks: list = []
        self.bindings: list = []
        self.in_dataflow = False
        self.names: dict[str, int] = {}
        self.done = False


class BlockBuilder:
    """Builds an :class:`~workbench.ir.function.IRModule` of graph functions and tensor programs.

    ``BlockBuilder(mod=None)``: start from an existing module (its functions are kept).
    """

    def __init__(self, mod: IRModule | None = None):
        self._functions: dict[str, Any] = dict(mod.functions) if mod is not None else {}
        self._frame: _FunctionFrame | None = None
        self._program_hashes: dict[str, tuple[PrimFunc, int]] = {}  # name -> (program, hash without its name)

    # scopes ---------------------------------------------------------------------
    @contextlib.contextmanager
    def function(self, name: str, params: Sequence[Var] | None = None, attrs: dict | None = None,
                 private: bool = False) -> Iterator[None]:
        """``with bb.function("main", [x, w]):`` a graph function; end it with :meth:`emit_func_output`."""
        if self._frame is not None:
            raise BlockBuilderError(f"bb.function({name!r}): already building function {self._frame.name!r}; "
                                    f"functions do not nest")
        if not isinstance(name, str) or not name.isidentifier():
            raise BlockBuilderError(f"bb.function: the name must be a Python identifier, got {name!r}")
        if name in self._functions:
            raise BlockBuilderError(f"bb.function({name!r}): the module already has a function {name!r}")
        frame = _FunctionFrame(name, None if params is None else self._check_params(name, params),
                               dict(attrs or {}), private)
        self._frame = frame
        try:
            yield
        finally:
            self._frame = None
        if not frame.done:
            raise BlockBuilderError(f"bb.function({name!r}): call bb.emit_func_output(value) before the end of "
                                    f"the `with` block")

    @staticmethod
    def _check_params(name: str, params) -> list:
        params = list(params)
        for p in params:
            if not isinstance(p, Var) or isinstance(p, DataflowVar):
                raise BlockBuilderError(f"bb.function({name!r}): parameters are graph Vars "
                                        f"(wb.graph.Var(\"x\", wb.Tensor(shape, dtype))), got {type(p).__name__}")
        return params

    @contextlib.contextmanager
    def dataflow(self) -> Iterator[None]:
        """``with bb.dataflow():`` a pure region; values leave it through :meth:`emit_output`."""
        frame = self._need_frame("bb.dataflow()")
        if frame.in_dataflow:
            raise BlockBuilderError("bb.dataflow(): dataflow blocks do not nest")
        self._close_block()
        frame.in_dataflow = True
        try:
            yield
        finally:
            frame.in_dataflow = False
            frame.blocks.append(DataflowBlock(tuple(frame.bindings)))
            frame.bindings = []

    def _need_frame(self, what: str) -> _FunctionFrame:
        if self._frame is None:
            raise BlockBuilderError(f"{what} must be inside `with bb.function(name, params):`")
        if self._frame.done:
            raise BlockBuilderError(f"{what}: function {self._frame.name!r} already has its output")
        return self._frame

    def _close_block(self) -> None:
        frame = self._frame
        if frame is not None and frame.bindings:
            frame.blocks.append(BindingBlock(tuple(frame.bindings)))
            frame.bindings = []

    def _fresh(self, hint: str) -> str:
        frame = self._frame
        k = frame.names.get(hint, 0)
        frame.names[hint] = k + 1
        return hint if k == 0 else f"{hint}{k}"

    # emitting ---------------------------------------------------------------------
    def emit(self, expr, name_hint: str = "lv") -> Var:
        """Bind ``expr`` to a new variable (a DataflowVar inside a dataflow block) and return it."""
        frame = self._need_frame("bb.emit")
        value = as_expr(expr, "bb.emit's value")
        cls = DataflowVar if frame.in_dataflow else Var
        var = cls(self._fresh(name_hint), value.type)
        frame.bindings.append(VarBinding(var, value))
        return var

    def emit_output(self, expr, name_hint: str = "gv") -> Var:
        """Bind ``expr`` to a variable visible after the dataflow block (``gv = wb.output(expr)``)."""
        frame = self._need_frame("bb.emit_output")
        if not frame.in_dataflow:
            raise BlockBuilderError("bb.emit_output must be inside `with bb.dataflow():`; outside, use bb.emit")
        value = as_expr(expr, "bb.emit_output's value")
        var = Var(self._fresh(name_hint), value.type)
        frame.bindings.append(VarBinding(var, value))
        return var

    def match_cast(self, expr, type_: GraphType, name_hint: str = "lv") -> Var:
        """``lv = wb.match_cast(expr, type_)``: check ``expr`` against ``type_`` (new size variables are bound)."""
        frame = self._need_frame("bb.match_cast")
        value = as_expr(expr, "bb.match_cast's value")
        cls = DataflowVar if frame.in_dataflow else Var
        var = cls(self._fresh(name_hint), type_)
        frame.bindings.append(MatchCast(var, value, type_))
        return var

    def emit_te(self, te_func: Callable, *args, primfunc_name_hint: str | None = None, **kwargs) -> Var:
        """Call ``te_func`` on ``te.placeholder`` s of the graph arguments' types, add the tensor program
        (``create_prim_func``) to the module under a unique name, and emit ``call_tir`` of it. A program
        identical to one already in the module (structural hash and equality) is not added again: the
        call uses the existing one (30 identical per-layer kernels are one program, compiled once).

        Graph values among ``args``/``kwargs`` (also inside lists) become placeholders and the call's
        arguments, in order; anything else is passed to ``te_func`` as it is.
        """
        self._need_frame("bb.emit_te")
        call = self.call_te(te_func, *args, primfunc_name_hint=primfunc_name_hint, **kwargs)
        return self.emit(call)

    def call_te(self, te_func: Callable, *args, primfunc_name_hint: str | None = None, **kwargs) -> Call:
        """Like :meth:`emit_te` but return the ``call_tir`` value instead of binding it."""
        from ..te import create_prim_func, placeholder
        from ..te.tensor import Tensor as TeTensor

        graph_args: list[Expr] = []
        holders: list = []

        def to_te(v):
            if isinstance(v, Expr):
                t = v.type
                if not isinstance(t, TensorType) or t.shape is None:
                    raise BlockBuilderError(f"bb.emit_te: argument {len(graph_args)} has type {t!r}; only tensors "
                                            f"of known rank become te placeholders")
                ph = placeholder(t.shape, t.dtype, name=_placeholder_name(v, len(graph_args)))
                graph_args.append(v)
                holders.append(ph)
                return ph
            if isinstance(v, (list, tuple)):
                return type(v)(to_te(x) for x in v)
            return v

        te_args = [to_te(a) for a in args]
        te_kwargs = {k: to_te(v) for k, v in kwargs.items()}
        out = te_func(*te_args, **te_kwargs)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if not outs or not all(isinstance(o, TeTensor) for o in outs):
            raise BlockBuilderError(f"bb.emit_te: {getattr(te_func, '__name__', te_func)} must return a te tensor "
                                    f"or a list of them, got {type(out).__name__}")
        name = self._unique_name(_hint_of(te_func, primfunc_name_hint))
        prim = create_prim_func([*holders, *outs], name=name)
        name = self._same_program(prim) or name
        self._functions.setdefault(name, prim)
        types = [TensorType(tuple(o.shape), o.dtype) for o in outs]
        out_type = types[0] if not isinstance(out, (list, tuple)) else TupleType(tuple(types))
        return Call(GlobalVar(name), tuple(graph_args), None, out_type)

    def emit_func_output(self, output, params: Sequence[Var] | None = None) -> None:
        """End the function with ``output`` (a value, or a list/tuple of values: a tuple result)."""
        frame = self._need_frame("bb.emit_func_output")
        if frame.in_dataflow:
            raise BlockBuilderError("bb.emit_func_output must come after the `with bb.dataflow():` block; inside "
                                    "it use bb.emit_output")
        if params is not None:
            if frame.params is not None:
                raise BlockBuilderError(f"bb.emit_func_output: function {frame.name!r} already has its parameters")
            frame.params = self._check_params(frame.name, params)
        if frame.params is None:
            raise BlockBuilderError(f"function {frame.name!r} has no parameters: pass them to bb.function(name, "
                                    f"params) or bb.emit_func_output(output, params)")
        self._close_block()
        result = Tuple(tuple(as_expr(o) for o in output)) if isinstance(output, (list, tuple)) else \
            as_expr(output, "the function's output")
        for value in (result.fields if isinstance(result, Tuple) else (result,)):
            if isinstance(value, DataflowVar):
                raise BlockBuilderError(
                    f"bb.emit_func_output: {value.name} is a dataflow variable, visible only inside its "
                    f"`with bb.dataflow():` block; make it an output there with bb.emit_output")
        attrs = dict(frame.attrs)
        if not frame.private:
            attrs = {"global_symbol": frame.name, **attrs}
        self._functions[frame.name] = Function(tuple(frame.params), SeqExpr(tuple(frame.blocks), result), None,
                                               attrs)
        frame.done = True

    # the module -------------------------------------------------------------------------
    def add_func(self, func, name_hint: str) -> GlobalVar:
        """Add a PrimFunc or graph Function under a unique name (``name_hint``, ``name_hint1``, ...)."""
        if not isinstance(func, (PrimFunc, Function)):
            raise BlockBuilderError(f"bb.add_func takes a PrimFunc or a graph Function, got {type(func).__name__}")
        name = self._unique_name(name_hint)
        if "global_symbol" in func.attrs:
            func = func.with_attr("global_symbol", name)
        self._functions[name] = func
        return GlobalVar(name)

    def _same_program(self, prim: PrimFunc) -> str | None:
        """The name of a tensor program of the module identical to ``prim`` (structural hash, then
        equality; names aside), or None."""
        from ..structural import structural_equal, structural_hash

        anonymous = _anonymous(prim)
        key = structural_hash(anonymous)
        for name, func in self._functions.items():
            if not isinstance(func, PrimFunc):
                continue
            known = self._program_hashes.get(name)
            if known is None or known[0] is not func:
                known = self._program_hashes[name] = (func, structural_hash(_anonymous(func)))
            if known[1] == key and structural_equal(_anonymous(func), anonymous):
                return name
        return None

    def _unique_name(self, hint: str) -> str:
        base = hint if hint.isidentifier() else "func"
        name, k = base, 1
        while name in self._functions:
            name = f"{base}{k}"
            k += 1
        return name

    def get(self) -> IRModule:
        """The module built so far (tensor programs and finished graph functions)."""
        if self._frame is not None and not self._frame.done:
            raise BlockBuilderError(f"bb.get(): function {self._frame.name!r} is still being built")
        return IRModule(dict(self._functions))


def _anonymous(prim: PrimFunc) -> PrimFunc:
    """``prim`` under a fixed name, to compare programs whatever they are called."""
    return prim.with_attr("global_symbol", "_")


def _hint_of(te_func, hint: str | None) -> str:
    if hint:
        return hint
    name = getattr(te_func, "__name__", "te_func")
    return name if name.isidentifier() and name != "<lambda>" else "te_func"


def _placeholder_name(v: Expr, k: int) -> str:
    name = getattr(v, "name", None)
    return name if isinstance(name, str) and name.isidentifier() else f"A{k}"


__all__ = ["BlockBuilder", "BlockBuilderError"]
