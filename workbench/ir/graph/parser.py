"""The parser of graph functions (``@wb.function``): script text to graph IR.

The text is read with ``ast``, never run. Each size-variable name (``"n"`` in
``wb.Tensor(("n", 784), "float32")``) is one variable across the function; parameters and
``wb.match_cast`` may introduce names, everything else must use names already defined.

>>> import workbench as wb
>>> f = wb.parse('''
... @wb.function
... def main(x: wb.Tensor(("n", 4), "float32")) -> wb.Tensor(("n", 4), "float32"):
...     with wb.dataflow():
...         y = wb.op.demo.negative(x)
...         gv = wb.output(y)
...     return gv
... ''')
>>> f.params[0].type.shape[0] is f.ret_type.shape[0]
True
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from ..expr import PrimExpr, Var as SizeVar, convert
from ..parser import ScriptError, _Error, _Parser, _parse_tree, _source_of
from ..printer import deep_recursion
from .expr import (
    BindingBlock, Call, DataflowBlock, DataflowVar, ExternFunc, Function, GlobalVar, MatchCast, Op, SeqExpr, Tuple,
    TupleGetItem, Var, VarBinding,
)
from .script import const as _const, meta as _meta
from .types import GraphType, GraphTypeError, TensorType, TupleType

_GRAPH_CONSTRUCTS = ("op.<name>", "call_tir", "call_dps_library", "const", "meta", "match_cast", "output",
                     "Tensor", "Tuple")


def is_graph_decorator(dec) -> bool:
    """Is the decorator node ``@wb.function`` / ``@wb.function(private=True)`` (any module alias)?"""
    node = dec.func if isinstance(dec, ast.Call) else dec
    return isinstance(node, ast.Attribute) and node.attr == "function" or \
        isinstance(node, ast.Name) and node.id == "function"


class GraphParser:
    """Reads one ``@wb.function`` definition; ``module_name``/``module_names``: the enclosing module class."""

    def __init__(self, lines: list[str], line_offset: int = 0, filename: str | None = None,
                 module_name: str | None = None, module_names: set[str] | None = None):
        self.lines = lines
        self.line_offset = line_offset
        self.filename = filename
        self.module_name = module_name or "Module"
        self.module_names = module_names
        self.size_vars: dict[str, SizeVar] = {}
        self.vars: dict[str, Var] = {}
        self.dataflow_gone: dict[str, int] = {}
        self.in_dataflow = False

    # errors -------------------------------------------------------------------
    def error(self, node, message: str) -> ScriptError:
        line = getattr(node, "lineno", None)
        src = self.lines[line - 1] if line is not None and 0 < line <= len(self.lines) else None
        return ScriptError(message, None if line is None else line + self.line_offset, src, self.filename)

    def guard(self, node, fn, *args):
        try:
            return fn(*args)
        except ScriptError:
            raise
        except _Error as err:
            raise self.error(err.node if hasattr(err.node, "lineno") else node, err.message) from None
        except (ValueError, TypeError, IndexError, KeyError) as err:
            raise self.error(node, str(err)) from None

    # names ----------------------------------------------------------------------
    def construct(self, node) -> str | None:
        """``wb.op.add`` -> ``"op.add"``; None when ``node`` is not a ``<alias>.<name>`` chain."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or not parts or node.id in self.vars:
            return None
        if node.id == self.module_name:
            return None
        return ".".join(reversed(parts))

    # types and dimensions ----------------------------------------------------------
    def dim(self, node, text_or_node, allow_new: bool) -> PrimExpr:
        tree = text_or_node
        if isinstance(text_or_node, str):
            try:
                tree = ast.parse(text_or_node.strip(), mode="eval").body
            except SyntaxError:
                raise _Error(node, f"cannot read the dimension {text_or_node!r}; expected a name such as \"n\" "
                                   f"or an expression such as \"n * 4\"") from None
        p = _Parser(dict(self.size_vars))
        p.scopes = [{}]
        p.auto_vars = True
        value = p.ev(tree)
        new = p.scopes[0]
        if new and not allow_new:
            names = ", ".join(sorted(new))
            raise _Error(node, f"the size variable {names} is not defined here; size variables are introduced by "
                               f"the parameters' types or by wb.match_cast")
        self.size_vars.update(new)
        return convert(value) if not isinstance(value, PrimExpr) else value

    def type_of(self, node, allow_new: bool) -> GraphType:
        if not isinstance(node, ast.Call):
            raise _Error(node, f"expected a type such as wb.Tensor((\"n\", 784), \"float32\"), got "
                               f"{ast.unparse(node)}")
        name = self.construct(node.func)
        if name == "Tuple":
            if node.keywords:
                raise _Error(node, "wb.Tuple takes the field types as positional arguments")
            return TupleType(tuple(self.type_of(a, allow_new) for a in node.args))
        if name != "Tensor":
            raise _Error(node, f"expected wb.Tensor(shape, dtype) or wb.Tuple(...), got {ast.unparse(node.func)}")
        args = list(node.args)
        kws = {k.arg: k.value for k in node.keywords}
        unknown = set(kws) - {"shape", "dtype"}
        if unknown or len(args) > 2:
            raise _Error(node, "wb.Tensor takes (shape, dtype)")
        shape_node = args[0] if args else kws.get("shape")
        dtype_node = args[1] if len(args) > 1 else kws.get("dtype")
        dtype = "float32" if dtype_node is None else self.literal(dtype_node)
        if not isinstance(dtype, str):
            raise _Error(node, f"wb.Tensor: the dtype must be a string such as \"float32\", got {dtype!r}")
        if shape_node is None or isinstance(shape_node, ast.Constant) and shape_node.value is None:
            return TensorType(None, dtype)
        elts = shape_node.elts if isinstance(shape_node, (ast.Tuple, ast.List)) else [shape_node]
        dims = []
        for d in elts:
            if isinstance(d, ast.Constant) and isinstance(d.value, str):
                dims.append(self.dim(d, d.value, allow_new))
            else:
                dims.append(self.dim(d, d, allow_new))
        return TensorType(tuple(dims), dtype)

    def literal(self, node):
        """An attribute value: Python literals (None included), tuples, dicts, size expressions."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.literal(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _Error(node, "'**' in a dict is not supported in the script form")
            return {self.literal(k): self.literal(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -node.operand.value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float" \
                and len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
            return float(node.args[0].value)
        return self.dim(node, node, allow_new=False)

    # values -------------------------------------------------------------------------
    def value(self, node):
        if isinstance(node, ast.Name):
            v = self.vars.get(node.id)
            if v is not None:
                return v
            if node.id in self.dataflow_gone:
                raise _Error(node, f"{node.id} is a dataflow variable of the block ending on line "
                                   f"{self.dataflow_gone[node.id] + self.line_offset}; only values bound with "
                                   f"wb.output(...) are visible after the block")
            if node.id in self.size_vars:
                raise _Error(node, f"{node.id} is a size variable, not a graph value")
            raise _Error(node, f"unknown name {node.id!r}; expected a parameter or a value bound before")
        if isinstance(node, (ast.Tuple, ast.List)):
            return Tuple(tuple(self.value(e) for e in node.elts))
        if isinstance(node, ast.Subscript):
            idx = self.literal(node.slice)
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise _Error(node, "only tuple values can be indexed, with an integer constant (t[0])")
            return TupleGetItem(self.value(node.value), idx)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
            raise _Error(node, f"the Python number {node.value!r} is not a graph value; write it as a constant "
                               f"with its dtype: wb.const({node.value!r}, \"float32\")")
        raise _Error(node, f"{ast.unparse(node)} is not a graph value; expected a variable, a tuple, t[i] or "
                           f"a call of {', '.join('wb.' + c for c in _GRAPH_CONSTRUCTS[:5])}")

    def call(self, node: ast.Call):
        name = self.construct(node.func)
        if name is None:
            raise _Error(node, f"cannot call {ast.unparse(node.func)} in a graph function; expected "
                               f"wb.op.<name>(...), wb.call_tir(...) or wb.call_dps_library(...)")
        if name.startswith("op."):
            return self.op_call(node, name[3:])
        if name in ("call_tir", "call_dps_library"):
            return self.dps_call(node, name)
        if name == "const":
            args = [self.literal(a) for a in node.args]
            kws = {k.arg: self.literal(k.value) for k in node.keywords}
            return _const(*args, **kws)
        if name == "meta":
            args = [self.literal(a) for a in node.args]
            try:
                return _meta(*args)
            except GraphTypeError as err:
                raise _Error(node, str(err)) from None
        if name in ("match_cast", "output", "dataflow"):
            raise _Error(node, f"wb.{name}(...) must be the whole right-hand side of a binding "
                               f"(x = wb.{name}(...)){' inside `with wb.dataflow():`' if name == 'output' else ''}")
        raise _Error(node, f"unknown construct wb.{name} in a graph function; expected one of "
                           f"{', '.join('wb.' + c for c in _GRAPH_CONSTRUCTS)}")

    def op_call(self, node: ast.Call, op_name: str):
        try:
            op = Op(op_name)
        except GraphTypeError as err:
            raise _Error(node, str(err)) from None
        args = tuple(self.value(a) for a in node.args)
        attrs = {}
        for k in node.keywords:
            if k.arg is None:
                raise _Error(node, f"wb.op.{op_name}: '**' arguments are not supported in the script form")
            attrs[k.arg] = self.literal(k.value)
        try:
            return Call(op, args, attrs)
        except GraphTypeError as err:
            raise _Error(node, str(err)) from None

    def dps_call(self, node: ast.Call, name: str):
        kws = {k.arg: k.value for k in node.keywords}
        unknown = set(kws) - {"out", "attrs"}
        if len(node.args) != 2 or "out" not in kws or unknown:
            what = "Module.func" if name == "call_tir" else "\"library.function\""
            raise _Error(node, f"wb.{name} takes ({what}, (args...), out=wb.Tensor(...)) and optionally attrs={{...}}")
        target = node.args[0]
        if name == "call_tir":
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == self.module_name):
                raise _Error(node, f"wb.call_tir: the first argument names a tensor program of the module as "
                                   f"{self.module_name}.<name>, got {ast.unparse(target)}")
            fname = target.attr
            if self.module_names is not None and fname not in self.module_names:
                raise _Error(node, f"wb.call_tir: the module has no function {fname!r}; it has "
                                   f"{', '.join(sorted(self.module_names)) or 'none'}")
            op: Any = GlobalVar(fname)
        else:
            lib = self.literal(target)
            if not isinstance(lib, str):
                raise _Error(node, "wb.call_dps_library: the first argument is the routine's name as a string")
            op = ExternFunc(lib)
        arg_node = node.args[1]
        elts = arg_node.elts if isinstance(arg_node, (ast.Tuple, ast.List)) else [arg_node]
        args = tuple(self.value(a) for a in elts)
        out = self.type_of(kws["out"], allow_new=False)
        attrs = self.literal(kws["attrs"]) if "attrs" in kws else None
        try:
            return Call(op, args, attrs, out)
        except GraphTypeError as err:
            raise _Error(node, str(err)) from None

    # statements -----------------------------------------------------------------------------
    def binding(self, st: ast.Assign):
        if len(st.targets) != 1 or not isinstance(st.targets[0], ast.Name):
            raise _Error(st, "a binding assigns one name (x = ...); unpack tuples with t[0], t[1]")
        name = st.targets[0].id
        rhs = st.value
        is_output = False
        if isinstance(rhs, ast.Call) and self.construct(rhs.func) == "output":
            if not self.in_dataflow:
                raise _Error(st, "wb.output(...) is only meaningful inside `with wb.dataflow():`; outside, "
                                 "write x = value")
            if len(rhs.args) != 1 or rhs.keywords:
                raise _Error(st, "wb.output takes one value")
            is_output = True
            rhs = rhs.args[0]
        var_cls = DataflowVar if self.in_dataflow and not is_output else Var
        if isinstance(rhs, ast.Call) and self.construct(rhs.func) == "match_cast":
            if len(rhs.args) != 2 or rhs.keywords:
                raise _Error(rhs, "wb.match_cast takes (value, wb.Tensor(shape, dtype))")
            value = self.value(rhs.args[0])
            t = self.type_of(rhs.args[1], allow_new=True)
            var = var_cls(name, t)
            try:
                b = MatchCast(var, value, t)
            except GraphTypeError as err:
                raise _Error(rhs, str(err)) from None
        else:
            value = self.value(rhs)
            var = var_cls(name, value.type)
            b = VarBinding(var, value)
        self.vars[name] = var
        self.dataflow_gone.pop(name, None)
        return b

    def dataflow(self, st: ast.With) -> DataflowBlock:
        item = st.items[0]
        if len(st.items) != 1 or item.optional_vars is not None or not isinstance(item.context_expr, ast.Call) \
                or self.construct(item.context_expr.func) != "dataflow" or item.context_expr.args:
            raise _Error(st, "the only `with` in a graph function is `with wb.dataflow():`")
        if self.in_dataflow:
            raise _Error(st, "dataflow blocks do not nest")
        self.in_dataflow = True
        bindings = []
        local: list[str] = []
        for s in st.body:
            if isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):
                continue
            if not isinstance(s, ast.Assign):
                raise self.error(s, "a dataflow block holds only bindings (x = ... or gv = wb.output(...))")
            b = self.guard(s, self.binding, s)
            bindings.append(b)
            if isinstance(b.var, DataflowVar):
                local.append(b.var.name)
        self.in_dataflow = False
        end = getattr(st, "end_lineno", st.lineno)
        for n in local:
            if isinstance(self.vars.get(n), DataflowVar):
                del self.vars[n]
                self.dataflow_gone[n] = end
        return DataflowBlock(tuple(bindings))

    def function(self, fn: ast.FunctionDef, method_name: str | None = None) -> Function:
        private = False
        for d in fn.decorator_list:
            if isinstance(d, ast.Call):
                for k in d.keywords:
                    if k.arg == "private" and isinstance(k.value, ast.Constant):
                        private = bool(k.value.value)
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise self.error(fn, "graph functions take plain positional parameters only")
        params = []
        for arg in a.args:
            if arg.annotation is None:
                raise self.error(arg, f"parameter {arg.arg!r} needs a type such as wb.Tensor((\"n\", 784), "
                                      f"\"float32\")")
            t = self.guard(arg, self.type_of, arg.annotation, True)
            if arg.arg in self.vars:
                raise self.error(arg, f"parameter {arg.arg!r} appears twice")
            v = Var(arg.arg, t)
            self.vars[arg.arg] = v
            params.append(v)
        attrs: dict = {}
        blocks: list = []
        plain: list = []
        result = None
        for k, st in enumerate(fn.body):
            if result is not None:
                raise self.error(st, "nothing may follow `return` in a graph function")
            if isinstance(st, ast.Pass) or (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)):
                continue
            if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and \
                    self.construct(st.value.func) == "func_attr":
                got = self.guard(st, self.literal, st.value.args[0]) if len(st.value.args) == 1 else None
                if not isinstance(got, dict):
                    raise self.error(st, "wb.func_attr takes one dict: wb.func_attr({\"key\": value})")
                attrs.update(got)
            elif isinstance(st, ast.Assign):
                plain.append(self.guard(st, self.binding, st))
            elif isinstance(st, ast.With):
                if plain:
                    blocks.append(BindingBlock(tuple(plain)))
                    plain = []
                blocks.append(self.guard(st, self.dataflow, st))
            elif isinstance(st, ast.Return):
                if st.value is None:
                    raise self.error(st, "a graph function returns a value: return x")
                result = self.guard(st, self.value, st.value)
            else:
                raise self.error(st, f"'{type(st).__name__}' statements are not supported in a graph function; "
                                     f"it holds bindings, `with wb.dataflow():` blocks and one `return`")
        if plain:
            blocks.append(BindingBlock(tuple(plain)))
        if result is None:
            raise self.error(fn, f"graph function {fn.name} has no `return`")
        ret = None
        if fn.returns is not None:
            ret = self.guard(fn.returns, self.type_of, fn.returns, False)
        name = method_name or fn.name
        if not private:
            attrs = {"global_symbol": name, **attrs}
        return Function(tuple(params), SeqExpr(tuple(blocks), result), ret, attrs)


def parse_function(fn_node: ast.FunctionDef, lines: list[str], line_offset: int = 0, filename: str | None = None,
                   module_name: str | None = None, module_names: set[str] | None = None,
                   method_name: str | None = None) -> Function:
    """A ``@wb.function`` definition (an ``ast.FunctionDef``) as a :class:`Function`; ScriptError on bad input."""
    p = GraphParser(lines, line_offset, filename, module_name, module_names)
    with deep_recursion():
        return p.guard(fn_node, p.function, fn_node, method_name)


class PendingFunction:
    """What ``@wb.function`` gives inside a ``@wb.ir_module`` class body: parsed by ``ir_module`` once the
    module's function names are known (``Module.fused`` refers to a sibling)."""

    def __init__(self, fn, private: bool):
        text, start, filename = _source_of(fn)
        self.text = textwrap.dedent(text)
        self.start = start
        self.filename = filename
        self.private = private
        self.name = fn.__name__

    def parse(self, module_name: str | None, module_names: set[str] | None) -> Function:
        tree = _parse_tree(self.text, self.start - 1, self.filename)
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        if not defs:
            raise ScriptError(f"could not find the definition of {self.name} in its source", self.start, None,
                              self.filename)
        f = parse_function(defs[0], self.text.splitlines(), self.start - 1, self.filename, module_name,
                           module_names, self.name)
        if self.private and "global_symbol" in f.attrs:
            f = f.replace(attrs={k: v for k, v in f.attrs.items() if k != "global_symbol"})
        return f

    def __repr__(self) -> str:
        return f"<graph function {self.name}, parsed by @wb.ir_module>"


def _in_class_body() -> bool:
    frame = inspect.currentframe()
    try:
        caller = frame.f_back if frame is not None else None
        while caller is not None and str(caller.f_globals.get("__name__", "")).startswith("workbench.ir"):
            caller = caller.f_back
        return caller is not None and "__qualname__" in caller.f_locals and "__module__" in caller.f_locals \
            and caller.f_locals is not caller.f_globals
    finally:
        del frame


def function(fn=None, *, private: bool = False):
    """``@wb.function``: parse a graph function (inside a ``@wb.ir_module`` class, when the module is made).

    >>> import workbench as wb
    >>> @wb.function
    ... def double_neg(x: wb.Tensor((4,), "float32")) -> wb.Tensor((4,), "float32"):
    ...     y = wb.op.demo.negative(x)
    ...     return wb.op.demo.negative(y)
    >>> double_neg.name, len(double_neg.body.blocks[0].bindings)
    ('double_neg', 1)
    """
    if fn is None:
        return lambda f: function(f, private=private)
    if isinstance(fn, str):
        raise TypeError("wb.function decorates a function; to read text use wb.parse(text)")
    pending = PendingFunction(fn, private)
    if _in_class_body():
        return pending
    return pending.parse(None, None)


__all__ = ["GraphParser", "parse_function", "PendingFunction", "function", "is_graph_decorator"]
