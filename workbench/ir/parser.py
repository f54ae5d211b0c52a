"""The parser of the script form: Python text (or a decorated function) to IR.

The text is read with Python's ``ast`` module, never executed, so loops become
IR loops and ``A[i, j]`` a ``BufferLoad``. Constructs are recognised by their
attribute name under any module alias (``wb.grid``, ``T.grid``).

>>> from workbench.ir.parser import parse
>>> f = parse('''
... @wb.prim_func
... def scale(A: wb.Buffer((8,), "float32"), B: wb.Buffer((8,), "float32")):
...     for i in wb.serial(8):
...         B[i] = A[i] * 2.0
... ''')
>>> f.name, len(f.params)
('scale', 2)

Nodes are built with constructors (``Add(a, b)``), so nothing is folded and
``parse(f.script())`` is structurally equal to ``f``. A bare Python literal next to
an expression takes that expression's dtype.
"""
from __future__ import annotations

import ast
import inspect
import numbers
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .buffer import Buffer
from .dtype import DTypeError, SCALAR_DTYPES, is_bool, normalize_dtype
from .expr import (
    EQ, GE, GT, INTRINSICS, LE, LT, NE,
    Add, And, Broadcast, BufferLoad, Call, Cast, Div, FloorDiv, FloorMod, IntImm, Let, Max, Min,
    Mod, Mul, Not, Or, PrimExpr, Ramp, Range, Select, StringImm, Sub, Var, _match, call, convert, const,
)
from .function import IRModule, PrimFunc
from .printer import deep_recursion
from .stmt import (
    Allocate, AssertStmt, Block, BlockRealize, BufferRegion, BufferStore, Evaluate, For, ForKind, IfThenElse,
    IterType, IterVar, LetStmt, MatchBufferRegion, SeqStmt, Stmt,
)


class ScriptError(ValueError):
    """A script that cannot be read; ``lineno`` is the line (in the text or file) where it went wrong.

    >>> try:
    ...     parse("def f():\\n    while True:\\n        pass")
    ... except ScriptError as err:
    ...     print(err.lineno)
    2
    """

    def __init__(self, message: str, lineno: int | None = None, source_line: str | None = None,
                 filename: str | None = None):
        self.message = message
        self.lineno = lineno
        self.source_line = source_line
        self.filename = filename
        text = f"line {lineno}: {message}" if lineno is not None else message
        if filename:
            text += f" (in {filename})"
        if source_line and source_line.strip():
            shown = source_line.strip()
            text += f"\n    {shown if len(shown) <= 120 else shown[:117] + '...'}"
        super().__init__(text)


class _Error(Exception):
    """Internal: an error at a node, turned into ScriptError with the right line."""

    def __init__(self, node, message: str):
        super().__init__(message)
        self.node = node
        self.message = message


_DTYPE_NAMES = set(SCALAR_DTYPES)
_LOOP_KINDS = {"serial": ForKind.SERIAL, "range": ForKind.SERIAL, "parallel": ForKind.PARALLEL,
               "vectorized": ForKind.VECTORIZED, "unroll": ForKind.UNROLLED,
               "thread_binding": ForKind.THREAD_BINDING}
_ITER_KINDS = {"S": IterType.SPATIAL, "R": IterType.REDUCE, "O": IterType.OPAQUE}
_BINOPS = {ast.Add: Add, ast.Sub: Sub, ast.Mult: Mul, ast.Div: Div, ast.FloorDiv: FloorDiv, ast.Mod: FloorMod}
_CMPOPS = {ast.Eq: EQ, ast.NotEq: NE, ast.Lt: LT, ast.LtE: LE, ast.Gt: GT, ast.GtE: GE}
_UNSUPPORTED = {
    ast.While: "'while' loops are not supported in the script form; use for ... in wb.grid(...)",
    ast.Try: "'try' is not supported in the script form",
    ast.FunctionDef: "nested function definitions are not supported in the script form",
    ast.AsyncFunctionDef: "nested function definitions are not supported in the script form",
    ast.ClassDef: "class definitions are not supported inside a script function",
    ast.Return: "'return' is not supported in the script form; results are written to buffers",
    ast.Break: "'break' is not supported in the script form; loops run their full range",
    ast.Continue: "'continue' is not supported in the script form; wrap the body in an 'if' instead",
    ast.Import: "'import' is not supported inside a script function; import at module level",
    ast.ImportFrom: "'import' is not supported inside a script function; import at module level",
    ast.Raise: "'raise' is not supported in the script form; use wb.assert_(cond, \"message\")",
    ast.Delete: "'del' is not supported in the script form",
    ast.Global: "'global' is not supported in the script form",
    ast.Nonlocal: "'nonlocal' is not supported in the script form",
}


def _is_num(x) -> bool:
    return isinstance(x, (numbers.Number, np.number, np.bool_)) and not isinstance(x, PrimExpr)


def _extent(lo, hi) -> tuple[PrimExpr, PrimExpr]:
    """(min, extent) of the half-open ``[lo, hi)``, undoing the printer's ``hi = lo + extent`` exactly."""
    from .structural import structural_equal

    if _is_num(lo) and _is_num(hi):
        lo, hi = convert(lo), convert(hi)
    lo, hi = _match(lo, hi, ":")
    if isinstance(lo, IntImm) and isinstance(hi, IntImm):
        return lo, IntImm(hi.value - lo.value, hi.dtype)
    if isinstance(lo, IntImm) and lo.value == 0:
        return lo, hi
    if isinstance(hi, Add) and structural_equal(hi.a, lo):
        return lo, hi.b
    return lo, Sub(hi, lo)


@dataclass
class _BlockFrame:
    name: str
    is_root: bool = False
    iter_vars: list = field(default_factory=list)
    bindings: list = field(default_factory=list)
    predicate: Any = None
    reads: list | None = None
    writes: list | None = None
    attrs: dict | None = None
    allocs: list = field(default_factory=list)
    match_buffers: list = field(default_factory=list)
    init: Any = None


class _Rest:
    """A statement that consumed the rest of its suite (let, allocate, assert)."""

    def __init__(self, stmt):
        self.stmt = stmt


class _Construct:
    """A ``wb.<name>`` reference (the module alias is not looked up)."""

    def __init__(self, name: str):
        self.name = name


class _Parser:
    def __init__(self, globals_: dict | None, line_offset: int = 0, filename: str | None = None,
                 lines: list[str] | None = None):
        self.globals = dict(globals_ or {})
        self.line_offset = line_offset
        self.filename = filename
        self.lines = lines or []
        self.scopes: list[dict[str, Any]] = []
        self.frames: list[_BlockFrame] = []
        self.loops: dict[int, For | tuple] = {}
        self.auto_vars = False

    # errors ------------------------------------------------------------------
    def script_error(self, node, message: str) -> ScriptError:
        line = getattr(node, "lineno", None)
        src = self.lines[line - 1] if line is not None and 0 < line <= len(self.lines) else None
        return ScriptError(message, None if line is None else line + self.line_offset, src, self.filename)

    def guard(self, node, fn, *args):
        """Run ``fn`` turning any error into a ScriptError at ``node``'s line."""
        try:
            return fn(*args)
        except ScriptError:
            raise
        except _Error as err:
            raise self.script_error(err.node if hasattr(err.node, "lineno") else node, err.message) from None
        except RecursionError:
            raise self.script_error(node, "this statement nests expressions too deeply (more than a few "
                                          "thousand levels); bind parts of it with wb.let(...)") from None
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, ArithmeticError) as err:
            msg = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise self.script_error(node, msg) from err

    # scopes --------------------------------------------------------------------
    def push(self):
        self.scopes.append({})

    def pop(self):
        self.scopes.pop()

    def define(self, name: str, value):
        self.scopes[-1][name] = value

    def lookup(self, name: str, node=None):
        for s in reversed(self.scopes):
            if name in s:
                return s[name]
        if name in self.globals:
            return self.globals[name]
        if name in ("min", "max", "abs", "range", "len", "int", "float"):
            return _Construct(name)
        if self.auto_vars:
            v = Var(name)
            self.scopes[0][name] = v
            return v
        raise _Error(node, f"unknown name {name!r}; expected a buffer, a loop variable or a wb.* construct")

    def in_scope(self, name: str) -> bool:
        return any(name in s for s in self.scopes)

    # construct names -------------------------------------------------------------
    def construct_name(self, node) -> str | None:
        """``wb.axis.remap`` -> ``"axis.remap"`` when ``node`` names a wb.* construct, else None."""
        parts = []
        n = node
        while isinstance(n, ast.Attribute):
            parts.append(n.attr)
            n = n.value
        if not isinstance(n, ast.Name) or not parts:
            return None
        root = n.id
        if self.in_scope(root):
            return None
        if root in self.globals:
            g = self.globals[root]
            if not isinstance(g, types.ModuleType) and not isinstance(g, _Construct):
                return None
            if isinstance(g, types.ModuleType) and not g.__name__.startswith(("workbench", "tvm")):
                # another module (math.pi): a construct only if it is one of ours by name
                name = ".".join(reversed(parts))
                return name if _known_construct(name) else None
        return ".".join(reversed(parts))

    # expressions --------------------------------------------------------------------
    def ev(self, node) -> Any:
        m = getattr(self, "ev_" + type(node).__name__, None)
        if m is None:
            raise _Error(node, f"{type(node).__name__} expressions are not supported in the script form")
        return m(node)

    def expr(self, node) -> PrimExpr:
        v = self.ev(node)
        if isinstance(v, PrimExpr):
            return v
        if _is_num(v) or isinstance(v, (str, np.bool_)):
            return convert(v)
        raise _Error(node, f"expected an expression, got {_describe(v)}")

    def ev_Constant(self, node):
        if node.value is None or isinstance(node.value, (bytes, complex)) or node.value is Ellipsis:
            raise _Error(node, f"the constant {node.value!r} has no meaning in the script form")
        return node.value

    def ev_Name(self, node):
        return self.lookup(node.id, node)

    def ev_Tuple(self, node):
        return tuple(self.ev(e) for e in node.elts)

    def ev_List(self, node):
        return [self.ev(e) for e in node.elts]

    def ev_Dict(self, node):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise _Error(node, "'**' in a dict is not supported in the script form")
            out[self.ev(k)] = self.ev(v)
        return out

    def ev_BinOp(self, node):
        a, b = self.ev(node.left), self.ev(node.right)
        op = type(node.op)
        if _is_num(a) and _is_num(b):
            if op is ast.Div and isinstance(a, numbers.Integral) and isinstance(b, numbers.Integral):
                q = abs(a) // abs(b)
                return q if (a >= 0) == (b >= 0) else -q
            return _py_binop(node, op, a, b)
        if op in _BINOPS:
            return _BINOPS[op](self._operand(node.left, a), self._operand(node.right, b))
        if op is ast.Pow:
            return call("pow", a, b)
        if op in (ast.BitAnd, ast.BitOr):
            x, y = _match(a, b, "&")
            if is_bool(x.dtype):
                return (And if op is ast.BitAnd else Or)(x, y)
            return call("bitwise_and" if op is ast.BitAnd else "bitwise_or", x, y)
        if op is ast.BitXor:
            return call("bitwise_xor", a, b)
        if op is ast.LShift:
            return call("shift_left", a, b)
        if op is ast.RShift:
            return call("shift_right", a, b)
        raise _Error(node, f"the operator {type(node.op).__name__} is not supported in the script form")

    def _operand(self, node, v):
        if isinstance(v, PrimExpr) or _is_num(v):
            return v
        raise _Error(node, f"expected an expression, got {_describe(v)}")

    def ev_UnaryOp(self, node):
        v = self.ev(node.operand)
        if isinstance(node.op, ast.USub):
            if _is_num(v):
                return -v
            e = self._operand(node.operand, v)
            return Sub(const(0, e.dtype), e)
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Not):
            if _is_num(v):
                return not v
            return Not(self._operand(node.operand, v))
        if isinstance(node.op, ast.Invert):
            e = convert(self._operand(node.operand, v))
            return Not(e) if is_bool(e.dtype) else call("bitwise_not", e)
        raise _Error(node, "unsupported unary operator")

    def ev_BoolOp(self, node):
        cls = And if isinstance(node.op, ast.And) else Or
        vals = [self.ev(v) for v in node.values]
        if all(_is_num(v) for v in vals):
            out = vals[0]
            for v in vals[1:]:
                out = (out and v) if cls is And else (out or v)
            return out
        out = convert(vals[0], "bool")
        for v in vals[1:]:
            out = cls(out, convert(v, "bool"))
        return out

    def ev_Compare(self, node):
        left = self.ev(node.left)
        result = None
        for op, comp in zip(node.ops, node.comparators):
            right = self.ev(comp)
            cls = _CMPOPS.get(type(op))
            if cls is None:
                raise _Error(node, f"the comparison {type(op).__name__} is not supported in the script form")
            if _is_num(left) and _is_num(right):
                r = _py_cmp(cls, left, right)
            else:
                r = cls(self._operand(node.left, left), self._operand(comp, right))
            if result is None:
                result = r
            elif _is_num(result) and _is_num(r):
                result = result and r
            else:
                result = And(convert(result, "bool"), convert(r, "bool"))
            left = right
        return result

    def ev_IfExp(self, node):
        c = self.ev(node.test)
        if _is_num(c):
            return self.ev(node.body) if c else self.ev(node.orelse)
        return Select(c, self.ev(node.body), self.ev(node.orelse))

    def ev_Attribute(self, node):
        name = self.construct_name(node)
        if name is not None:
            return _Construct(name)
        base = self.ev(node.value)
        if isinstance(base, Buffer) and node.attr in ("shape", "dtype", "ndim", "strides", "elem_offset",
                                                         "scope", "name"):
            return getattr(base, node.attr)
        if isinstance(base, (types.ModuleType,)) or not isinstance(base, (PrimExpr, Buffer)):
            try:
                return getattr(base, node.attr)
            except AttributeError:
                pass
        raise _Error(node, f"{_describe(base)} has no attribute {node.attr!r} in the script form")

    def ev_Subscript(self, node):
        base = self.ev(node.value)
        sl = node.slice
        items = sl.elts if isinstance(sl, ast.Tuple) else [sl]
        if isinstance(base, (tuple, list)):
            idx = self.ev(sl)
            return base[idx]
        if not isinstance(base, Buffer):
            raise _Error(node, f"only buffers can be indexed in the script form, got {_describe(base)}")
        if any(isinstance(i, ast.Slice) for i in items):
            ranges = []
            for k, it in enumerate(items):
                if isinstance(it, ast.Slice):
                    if it.step is not None:
                        raise _Error(node, f"buffer {base.name}: regions take unit steps")
                    lo = 0 if it.lower is None else self.ev(it.lower)
                    hi = base.shape[k] if it.upper is None else self.ev(it.upper)
                    ranges.append(Range(*_extent(lo, hi)))
                else:
                    e = self.expr(it)
                    ranges.append(Range(e, IntImm(1, e.dtype)))
            return BufferRegion(base, tuple(ranges))
        idx = [self.ev(i) for i in items]
        if isinstance(sl, ast.Tuple) and not sl.elts:
            idx = []
        return BufferLoad(base, tuple(idx))

    def ev_NamedExpr(self, node):
        raise _Error(node, "':=' is only allowed as the first argument of wb.Let(x := value, body)")

    def ev_Call(self, node):
        name = self.construct_name(node.func) if isinstance(node.func, ast.Attribute) else None
        if name is None and isinstance(node.func, ast.Name):
            f = self.lookup(node.func.id, node.func)
            if isinstance(f, _Construct):
                name = f.name
            elif type(f).__name__ in ("_DType", "_Handle") and getattr(f, "__module__", "").startswith("workbench"):
                name = f.dtype
            else:
                name = _construct_of_runtime(f)
        if name is None:
            raise _Error(node, f"cannot call {ast.unparse(node.func)} in the script form; "
                               f"expected a wb.* construct")
        return self.call_construct(node, name)

    def args(self, node, *, lo: int, hi: int, name: str, kw: tuple = ()):
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _Error(node, f"wb.{name}: '*' arguments are not supported in the script form")
        if not (lo <= len(node.args) <= hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise _Error(node, f"wb.{name} takes {want} positional argument(s), got {len(node.args)}")
        kws = {}
        for k in node.keywords:
            if k.arg is None or k.arg not in kw:
                raise _Error(node, f"wb.{name} got an unexpected keyword argument {k.arg!r}"
                             + (f"; it accepts {', '.join(kw)}" if kw else ""))
            kws[k.arg] = k.value
        return node.args, kws

    def call_construct(self, node, name: str):
        short = name.split(".")[-1]
        if name in _DTYPE_NAMES or _is_vec_dtype(name):
            args, _ = self.args(node, lo=0, hi=1, name=name)
            if not args:
                raise _Error(node, f"wb.{name}() declares a size variable: write `n = wb.{name}()` on its own line")
            v = self.ev(args[0])
            if isinstance(v, str):
                try:
                    return const(float(v), name)
                except ValueError:
                    raise _Error(node, f"wb.{name}({v!r}): expected a number, or \"inf\", \"-inf\", \"nan\"") from None
            if isinstance(v, PrimExpr):
                return v if v.dtype == name else Cast(name, v)
            if _is_num(v):
                return const(v, name)
            raise _Error(node, f"wb.{name} expects a number, got {_describe(v)}")
        if name in ("max", "min"):
            args, _ = self.args(node, lo=2, hi=2, name=name)
            a, b = self.ev(args[0]), self.ev(args[1])
            if _is_num(a) and _is_num(b):
                import builtins

                return getattr(builtins, name)(a, b)
            return (Max if name == "max" else Min)(a, b)
        if name in ("truncmod", "truncdiv", "floordiv", "floormod"):
            args, _ = self.args(node, lo=2, hi=2, name=name)
            a, b = self.ev(args[0]), self.ev(args[1])
            cls = {"truncmod": Mod, "truncdiv": Div, "floordiv": FloorDiv, "floormod": FloorMod}[name]
            if _is_num(a) and _is_num(b):
                a = convert(a)
            return cls(a, b)
        if name == "if_then_else":
            args, _ = self.args(node, lo=3, hi=3, name=name)
            c, t, f = (self.ev(a) for a in args)
            c = convert(c, "bool")
            if not is_bool(c.dtype):
                raise _Error(node, f"wb.if_then_else needs a bool condition, got `{c}` ({c.dtype})")
            t, f = _match(t, f, "if_then_else")
            return Call("if_then_else", (c, t, f), t.dtype)
        if name in INTRINSICS:
            spec = INTRINSICS[name]
            args, _ = self.args(node, lo=spec[0], hi=spec[0], name=name)
            return call(name, *[self.ev(a) for a in args])
        if name == "Select":
            args, _ = self.args(node, lo=3, hi=3, name=name)
            c, t, f = (self.ev(a) for a in args)
            return Select(convert(c, "bool"), t, f)
        if name == "cast":
            args, kws = self.args(node, lo=1, hi=2, name=name, kw=("dtype",))
            value = self.ev(args[0])
            dt = self.ev(args[1]) if len(args) > 1 else self.ev(kws["dtype"]) if "dtype" in kws else None
            if dt is None:
                raise _Error(node, "wb.cast needs a dtype: wb.cast(x, \"float32\")")
            return Cast(self.dtype(node, dt), convert(value))
        if name == "ramp":
            args, _ = self.args(node, lo=3, hi=3, name=name)
            return Ramp(self.ev(args[0]), self.ev(args[1]), self.int_arg(args[2], "lanes"))
        if name == "broadcast":
            args, _ = self.args(node, lo=2, hi=2, name=name)
            return Broadcast(convert(self.ev(args[0])), self.int_arg(args[1], "lanes"))
        if name == "call_extern":
            if len(node.args) < 2:
                raise _Error(node, "wb.call_extern needs a dtype and a function name: wb.call_extern(\"float32\", \"f\", x)")
            dt = self.dtype(node, self.ev(node.args[0]))
            fname = self.ev(node.args[1])
            rest = tuple(convert(self.ev(a)) for a in node.args[2:])
            return Call("call_extern", (StringImm(str(fname)),) + rest, dt)
        if name == "call_intrin":
            if len(node.args) < 2:
                raise _Error(node, "wb.call_intrin needs a dtype and an op name: wb.call_intrin(\"float32\", \"op\", x)")
            dt = self.dtype(node, self.ev(node.args[0]))
            op = self.ev(node.args[1])
            return Call(str(op), tuple(convert(self.ev(a)) for a in node.args[2:]), dt)
        if name == "Let":
            args, _ = self.args(node, lo=2, hi=2, name=name)
            if not isinstance(args[0], ast.NamedExpr):
                raise _Error(node, "wb.Let takes (x := value, body)")
            value = self.expr(args[0].value)
            var = Var(args[0].target.id, value.dtype)
            self.push()
            self.define(var.name, var)
            body = self.expr(args[1])
            self.pop()
            return Let(var, value, body)
        if name in ("len", "int", "float"):
            args, _ = self.args(node, lo=1, hi=1, name=name)
            v = self.ev(args[0])
            if isinstance(v, IntImm):
                v = v.value
            return {"len": len, "int": int, "float": float}[name](v)
        if _known_construct(name) or short in _STMT_CONSTRUCTS:
            raise _Error(node, f"wb.{name}(...) is a statement; it cannot be used inside an expression")
        raise _Error(node, f"unknown construct wb.{name}; see workbench.ir.script for the vocabulary")

    def int_arg(self, node, what: str) -> int:
        v = self.ev(node)
        if isinstance(v, IntImm):
            v = v.value
        if not isinstance(v, numbers.Integral):
            raise _Error(node, f"{what} must be a Python integer, got {_describe(v)}")
        return int(v)

    def dtype(self, node, v) -> str:
        if type(v).__name__ in ("_DType", "_Handle") or isinstance(v, np.dtype) or \
                (isinstance(v, type) and issubclass(v, np.generic)):
            v = v.dtype if hasattr(v, "dtype") and isinstance(v.dtype, str) else np.dtype(v).name
        if isinstance(v, _Construct):
            v = v.name
        if not isinstance(v, str):
            raise _Error(node, f"expected a dtype string such as \"float32\", got {_describe(v)}")
        try:
            return normalize_dtype(v)
        except DTypeError as err:
            raise _Error(node, str(err)) from None

    def str_arg(self, node, what: str) -> str:
        v = self.ev(node)
        if not isinstance(v, str):
            raise _Error(node, f"{what} must be a string, got {_describe(v)}")
        return v

    # values for attributes --------------------------------------------------------------
    def attr_value(self, node):
        v = self.ev(node)
        return v

    # shapes and buffers ----------------------------------------------------------------
    def shape(self, node) -> tuple:
        v = self.ev(node)
        if not isinstance(v, (tuple, list)):
            v = (v,)
        out = []
        for d in v:
            if isinstance(d, str):
                out.append(self.dim_text(node, d))
            elif isinstance(d, (PrimExpr,)) or _is_num(d):
                out.append(d)
            else:
                raise _Error(node, f"a buffer dimension must be an integer or expression, got {_describe(d)}")
        return tuple(out)

    def dim_text(self, node, text: str):
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            raise _Error(node, f"cannot read the dimension {text!r}; expected a name such as \"n\"") from None
        saved = self.auto_vars
        self.auto_vars = True
        try:
            return self.ev(tree)
        finally:
            self.auto_vars = saved

    def buffer_from_call(self, node, name: str, shape_node, rest_args: list, kws: dict, default_scope="global"):
        shape = self.shape(shape_node)
        dtype = "float32"
        if rest_args:
            dtype = self.dtype(node, self.ev(rest_args[0]))
        if "dtype" in kws:
            dtype = self.dtype(node, self.ev(kws["dtype"]))
        scope = self.ev(kws["scope"]) if "scope" in kws else default_scope
        strides = tuple(self.shape(kws["strides"])) if "strides" in kws else ()
        elem_offset = self.ev(kws["elem_offset"]) if "elem_offset" in kws else None
        offset_factor = self.int_arg(kws["offset_factor"], "offset_factor") if "offset_factor" in kws else 0
        align = self.int_arg(kws["align"], "align") if "align" in kws else 0
        return Buffer(name, shape, dtype, strides, elem_offset, scope, offset_factor, align)

    # statements -------------------------------------------------------------------------
    def suite(self, stmts: list) -> Stmt:
        out: list[Stmt] = []
        for k, node in enumerate(stmts):
            r = self.guard(node, self.stmt, node, stmts[k + 1:])
            if isinstance(r, _Rest):
                out.append(r.stmt)
                break
            if r is not None:
                out.append(r)
        if len(out) == 1:
            return out[0]
        return SeqStmt(tuple(out))

    def stmt(self, node, rest: list):
        t = type(node)
        if t in _UNSUPPORTED:
            raise _Error(node, _UNSUPPORTED[t])
        m = getattr(self, "st_" + t.__name__, None)
        if m is None:
            raise _Error(node, f"'{t.__name__}' statements are not supported in the script form")
        return m(node, rest)

    def st_Pass(self, node, rest):
        return None

    def st_Expr(self, node, rest):
        v = node.value
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            return None  # a docstring or comment string
        if isinstance(v, ast.Call):
            name = self.construct_name(v.func) if isinstance(v.func, ast.Attribute) else None
            if name is not None:
                h = getattr(self, "sc_" + name.replace(".", "_"), None)
                if h is not None:
                    return h(v, rest)
                if name.split(".")[-1] in _STMT_CONSTRUCTS:
                    raise _Error(v, f"wb.{name}(...) must be assigned to a name, e.g. `X = wb.{name}(...)`")
        e = self.ev(v)
        if isinstance(e, PrimExpr):
            return Evaluate(e)
        raise _Error(node, f"this expression statement has no effect in the script form ({_describe(e)})")

    # statement constructs (expression statements) ---------------------------
    def frame(self, node, what: str) -> _BlockFrame:
        if not self.frames:
            raise _Error(node, f"wb.{what} must be inside a `with wb.block(...)`")
        f = self.frames[-1]
        if f.is_root and what.split(".")[0] in ("where", "reads", "writes", "block_attr", "axis"):
            raise _Error(node, f"wb.{what}(...) must be inside a `with wb.block(...)`")
        return f

    def sc_evaluate(self, node, rest):
        args, _ = self.args(node, lo=1, hi=1, name="evaluate")
        return Evaluate(convert(self.ev(args[0])))

    def sc_where(self, node, rest):
        args, _ = self.args(node, lo=1, hi=1, name="where")
        f = self.frame(node, "where")
        f.predicate = convert(self.ev(args[0]), "bool")
        return None

    def regions(self, node, args) -> list:
        out = []
        for a in args:
            v = self.ev(a)
            items = v if isinstance(v, (list, tuple)) else [v]
            for r in items:
                if isinstance(r, BufferLoad):
                    r = BufferRegion(r.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in r.indices))
                elif isinstance(r, Buffer):
                    r = r.full_region()
                if not isinstance(r, BufferRegion):
                    raise _Error(a, f"expected a buffer region such as A[vi, 0:16], got {_describe(r)}")
                out.append(r)
        return out

    def sc_reads(self, node, rest):
        self.frame(node, "reads").reads = self.regions(node, node.args)
        return None

    def sc_writes(self, node, rest):
        self.frame(node, "writes").writes = self.regions(node, node.args)
        return None

    def sc_block_attr(self, node, rest):
        args, _ = self.args(node, lo=1, hi=1, name="block_attr")
        v = self.ev(args[0])
        if not isinstance(v, dict):
            raise _Error(node, f"wb.block_attr takes a dict, got {_describe(v)}")
        self.frame(node, "block_attr").attrs = v
        return None

    def sc_func_attr(self, node, rest):
        args, _ = self.args(node, lo=1, hi=1, name="func_attr")
        v = self.ev(args[0])
        if not isinstance(v, dict):
            raise _Error(node, f"wb.func_attr takes a dict, got {_describe(v)}")
        if len(self.frames) != 1 or self.loops:
            raise _Error(node, "wb.func_attr(...) belongs at the top level of the function body")
        self.func_attrs.update(v)
        return None

    def sc_assert_(self, node, rest):
        args, _ = self.args(node, lo=2, hi=2, name="assert_")
        cond = convert(self.ev(args[0]), "bool")
        msg = self.str_arg(args[1], "the assert message")
        self.push()
        body = self.suite(rest)
        self.pop()
        return _Rest(AssertStmt(cond, msg, body))

    # with -------------------------------------------------------------------------
    def st_With(self, node, rest):
        if len(node.items) != 1:
            raise _Error(node, "one construct per `with` statement in the script form")
        item = node.items[0]
        c = item.context_expr
        name = self.construct_name(c.func) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) else None
        if name == "block":
            return self.with_block(node, c, item)
        if name == "init":
            f = self.frame(node, "init")
            if f.is_root:
                raise _Error(node, "`with wb.init():` must be directly inside a `with wb.block(...)`")
            if f.init is not None:
                raise _Error(node, f"block {f.name!r} has two `with wb.init():` sections")
            self.push()
            f.init = self.suite(node.body)
            self.pop()
            return None
        if name == "let":
            args, _ = self.args(c, lo=1, hi=1, name="let")
            value = convert(self.ev(args[0]))
            var = Var(self.as_name(item.optional_vars, "let"), value.dtype)
            self.push()
            self.define(var.name, var)
            body = self.suite(node.body)
            self.pop()
            return LetStmt(var, value, body)
        if name == "allocate":
            bname = self.as_name(item.optional_vars, "allocate")
            buf = self.allocate_buffer(c, bname)
            self.push()
            self.define(bname, buf)
            body = self.suite(node.body)
            self.pop()
            return Allocate(buf, body)
        if name == "assert_":
            args, _ = self.args(c, lo=2, hi=2, name="assert_")
            cond = convert(self.ev(args[0]), "bool")
            msg = self.str_arg(args[1], "the assert message")
            self.push()
            body = self.suite(node.body)
            self.pop()
            return AssertStmt(cond, msg, body)
        raise _Error(node, "unsupported `with` statement; expected wb.block(...), wb.init(), wb.let(...), "
                           "wb.allocate(...) or wb.assert_(...)")

    def as_name(self, target, what: str) -> str:
        if not isinstance(target, ast.Name):
            raise _Error(target, f"`with wb.{what}(...) as x:` needs a single name after 'as'")
        return target.id

    def with_block(self, node, c, item):
        args, kws = self.args(c, lo=1, hi=1, name="block", kw=("no_realize",))
        bname = self.str_arg(args[0], "the block name")
        if item.optional_vars is not None:
            raise _Error(node, "`with wb.block(...)` takes no `as` name")
        self.claim_block_name(node, bname)
        f = _BlockFrame(bname)
        self.frames.append(f)
        self.push()
        try:
            body = self.suite(node.body)
        finally:
            self.pop()
            self.frames.pop()
        return self.realize(node, f, body)

    def claim_block_name(self, node, name: str) -> None:
        """Block names are unique in a function (``sch.get_block`` finds blocks by name)."""
        first = self.block_names.get(name)
        if first is not None:
            raise _Error(node, f"two blocks are named {name!r} (lines {first.lineno + self.line_offset} and "
                               f"{node.lineno + self.line_offset}); block names must be unique within a "
                               f"function, rename one")
        self.block_names[name] = node

    def realize(self, node, f: _BlockFrame, body: Stmt) -> BlockRealize:
        block = Block(f.name, tuple(f.iter_vars), tuple(f.reads or ()), tuple(f.writes or ()), body, f.init,
                      tuple(f.allocs), tuple(f.match_buffers), f.attrs)
        if f.reads is None or f.writes is None:
            reads, writes = infer_regions(block)
            block = block.replace(reads=tuple(reads) if f.reads is None else block.reads,
                                  writes=tuple(writes) if f.writes is None else block.writes)
        pred = IntImm(1, "bool") if f.predicate is None else f.predicate
        return BlockRealize(tuple(f.bindings), pred, block)

    # assignments ----------------------------------------------------------------------
    def st_AugAssign(self, node, rest):
        if not isinstance(node.target, ast.Subscript):
            raise _Error(node, "augmented assignment (+=) works on buffer elements only, e.g. C[i] += x")
        load = self.ev(node.target)
        if not isinstance(load, BufferLoad):
            raise _Error(node, "augmented assignment needs a buffer element on the left")
        value = self.ev(node.value)
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise _Error(node, f"the operator {type(node.op).__name__}= is not supported in the script form")
        return BufferStore(load.buffer, op(load, value), load.indices)

    def st_AnnAssign(self, node, rest):
        raise _Error(node, "annotated assignments are not supported; bind values with `x = wb.let(value)`")

    def st_Assign(self, node, rest):
        if len(node.targets) != 1:
            raise _Error(node, "chained assignment (a = b = ...) is not supported in the script form")
        target = node.targets[0]
        v = node.value
        if isinstance(target, ast.Subscript):
            buf = self.ev(target.value)
            if not isinstance(buf, Buffer):
                raise _Error(target, f"only buffer elements can be assigned, got {_describe(buf)}")
            load = self.ev(target)
            if not isinstance(load, BufferLoad):
                raise _Error(target, "a store writes one element: use indices, not slices, on the left")
            value = self.ev(v)
            return BufferStore(buf, value, load.indices)
        name = self.construct_name(v.func) if isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) else None
        if isinstance(target, (ast.Tuple, ast.List)):
            if name == "axis.remap":
                return self.axis_remap(node, target, v)
            value = self.ev(v)
            names = [t.id if isinstance(t, ast.Name) else None for t in target.elts]
            if None in names or not isinstance(value, (tuple, list)) or len(value) != len(names):
                raise _Error(node, "tuple assignment is only supported for `vi, vj = wb.axis.remap(...)` "
                                   "and unpacking Python tuples of the same length")
            for n, x in zip(names, value):
                self.define(n, x)
            return None
        if not isinstance(target, ast.Name):
            raise _Error(node, "the left side of an assignment must be a name or a buffer element")
        tname = target.id
        if name is not None:
            if name in _DTYPE_NAMES or name == "handle":
                if v.args or v.keywords:
                    pass  # a constant: bound as a plain Python value below
                else:
                    pre = self.size_vars.get(tname)
                    if pre is not None and len(self.scopes) == 1:
                        return None  # declared before the parameters were read
                    self.define(tname, Var(tname, name))
                    return None
            if name == "axis.remap":
                return self.axis_remap(node, ast.Tuple(elts=[target], ctx=ast.Store()), v)
            if name.startswith("axis."):
                return self.axis_one(node, tname, name[5:], v)
            if name == "alloc_buffer":
                f = self.frame(node, "alloc_buffer")
                args, kws = self.args(v, lo=1, hi=2, name=name,
                                      kw=("dtype", "scope", "strides", "elem_offset", "offset_factor", "align"))
                buf = self.buffer_from_call(v, tname, args[0], args[1:], kws)
                f.allocs.append(buf)
                self.define(tname, buf)
                return None
            if name == "match_buffer":
                return self.match_buffer(node, tname, v)
            if name == "let":
                args, _ = self.args(v, lo=1, hi=1, name="let")
                value = convert(self.ev(args[0]))
                var = Var(tname, value.dtype)
                self.push()
                self.define(tname, var)
                body = self.suite(rest)
                self.pop()
                return _Rest(LetStmt(var, value, body))
            if name == "allocate":
                buf = self.allocate_buffer(v, tname)
                self.push()
                self.define(tname, buf)
                body = self.suite(rest)
                self.pop()
                return _Rest(Allocate(buf, body))
            if name in ("block", "init", "where", "reads", "writes", "block_attr", "func_attr", "evaluate"):
                raise _Error(node, f"wb.{name}(...) is a statement; it cannot be assigned to a name")
        # a plain Python binding (an alias or constant), as in Python
        value = self.ev(v)
        self.define(tname, value)
        return None

    def allocate_buffer(self, c, bname: str) -> Buffer:
        args, kws = self.args(c, lo=1, hi=2, name="allocate", kw=("dtype", "scope"))
        return self.buffer_from_call(c, bname, args[0], args[1:], kws)

    def match_buffer(self, node, tname, v):
        args, kws = self.args(v, lo=2, hi=3, name="match_buffer",
                              kw=("dtype", "scope", "strides", "elem_offset", "offset_factor", "align"))
        src = self.ev(args[0])
        buf = self.buffer_from_call(v, tname, args[1], args[2:], kws)
        if isinstance(src, Var) and src.dtype == "handle":
            if len(self.frames) != 1 or self.loops or src not in self.params:
                raise _Error(node, f"wb.match_buffer of the handle {src.name!r} belongs at the top of the "
                                   f"function body, and the handle must be a parameter")
            if src in self.buffer_map:
                raise _Error(node, f"the parameter {src.name!r} already has a buffer")
            self.buffer_map[src] = buf
            self.define(tname, buf)
            return None
        if isinstance(src, Buffer):
            src = src.full_region()
        if isinstance(src, BufferLoad):
            src = BufferRegion(src.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in src.indices))
        if not isinstance(src, BufferRegion):
            raise _Error(node, f"wb.match_buffer takes a handle parameter or a buffer region, got {_describe(src)}")
        f = self.frame(node, "match_buffer")
        if f.is_root:
            raise _Error(node, "wb.match_buffer of a region must be inside a `with wb.block(...)`")
        f.match_buffers.append(MatchBufferRegion(buf, src))
        self.define(tname, buf)
        return None

    def dom(self, node, v) -> Range:
        if isinstance(v, (tuple, list)):
            if len(v) != 2:
                raise _Error(node, "an iteration domain is an extent or a (min, max) pair")
            return Range(*_extent(v[0], v[1]))
        if isinstance(v, Range):
            return v
        e = convert(v)
        return Range(IntImm(0, e.dtype), e)

    def axis_one(self, node, tname: str, kind: str, v):
        if kind not in ("spatial", "reduce", "opaque", "S", "R", "O"):
            raise _Error(node, f"unknown construct wb.axis.{kind}; expected spatial, reduce, opaque or remap")
        f = self.frame(node, f"axis.{kind}")
        args, kws = self.args(v, lo=2, hi=3, name=f"axis.{kind}", kw=("dtype",))
        dom = self.dom(args[0], self.ev(args[0]))
        binding = self.ev(args[1])
        dt = None
        if len(args) > 2:
            dt = self.dtype(node, self.ev(args[2]))
        elif "dtype" in kws:
            dt = self.dtype(node, self.ev(kws["dtype"]))
        binding = convert(binding, dt or dom.extent.dtype)
        itype = {"S": "spatial", "R": "reduce", "O": "opaque"}.get(kind, kind)
        var = Var(tname, dt or binding.dtype)
        f.iter_vars.append(IterVar(var, dom, IterType(itype)))
        f.bindings.append(binding)
        self.define(tname, var)
        return None

    def axis_remap(self, node, target, v):
        f = self.frame(node, "axis.remap")
        args, _ = self.args(v, lo=2, hi=2, name="axis.remap")
        kinds = self.str_arg(args[0], "the kinds of wb.axis.remap")
        loops = self.ev(args[1])
        if not isinstance(loops, (list, tuple)):
            loops = [loops]
        names = []
        for t in target.elts:
            if not isinstance(t, ast.Name):
                raise _Error(node, "wb.axis.remap assigns to plain names: vi, vj = wb.axis.remap(...)")
            names.append(t.id)
        if not (len(kinds) == len(loops) == len(names)):
            raise _Error(node, f"wrong number of variables in wb.axis.remap: {len(names)} name(s) on the left, "
                               f"{len(kinds)} kind(s) in {kinds!r} and {len(loops)} loop variable(s)")
        for ch, lv, n in zip(kinds, loops, names):
            if ch not in _ITER_KINDS:
                raise _Error(node, f"wb.axis.remap: unknown kind {ch!r} in {kinds!r}; use S (spatial) or R (reduce)")
            info = self.loops.get(id(lv)) if isinstance(lv, Var) else None
            if info is None:
                raise _Error(node, f"wb.axis.remap binds iteration variables to enclosing loop variables; "
                                   f"`{lv}` is not one")
            lo, ext = info
            var = Var(n, lv.dtype)
            f.iter_vars.append(IterVar(var, Range(lo, ext), _ITER_KINDS[ch]))
            f.bindings.append(lv)
            self.define(n, var)
        return None

    # loops --------------------------------------------------------------------------
    def st_For(self, node, rest):
        if node.orelse:
            raise _Error(node, "'for ... else' is not supported in the script form")
        it = node.iter
        if not isinstance(it, ast.Call):
            raise _Error(node, "a loop iterates over wb.grid(...), wb.serial(...), wb.parallel(...), ... ")
        name = self.construct_name(it.func) if isinstance(it.func, ast.Attribute) else None
        if name is None and isinstance(it.func, ast.Name) and it.func.id == "range" and not self.in_scope("range"):
            name = "range"
        if isinstance(node.target, ast.Name):
            targets = [node.target.id]
        elif isinstance(node.target, ast.Tuple) and all(isinstance(t, ast.Name) for t in node.target.elts):
            targets = [t.id for t in node.target.elts]
        else:
            raise _Error(node, "loop variables must be plain names")
        if name == "grid":
            if it.keywords:
                raise _Error(node, "wb.grid takes only extents; use wb.serial(..., annotations=...) for annotations")
            extents = [self.ev(a) for a in it.args]
            if len(extents) != len(targets):
                raise _Error(node, f"wb.grid has {len(extents)} extent(s) but the loop names {len(targets)} "
                                   f"variable(s)")
            specs = []
            for e in extents:
                e = convert(e)
                specs.append((IntImm(0, e.dtype), e, ForKind.SERIAL, None, None))
            return self.loop_nest(node, targets, specs)
        if name in _LOOP_KINDS:
            kind = _LOOP_KINDS[name]
            if len(targets) != 1:
                raise _Error(node, f"wb.{name} makes one loop; use wb.grid(...) for several variables")
            pos = list(it.args)
            thread = None
            kws = {}
            for k in it.keywords:
                if k.arg not in ("thread", "annotations") or (k.arg == "thread" and kind != ForKind.THREAD_BINDING):
                    raise _Error(node, f"wb.{name} got an unexpected keyword argument {k.arg!r}")
                kws[k.arg] = k.value
            vals = [self.ev(a) for a in pos]
            if kind == ForKind.THREAD_BINDING:
                if vals and isinstance(vals[-1], str):
                    thread = vals.pop()
                if "thread" in kws:
                    thread = self.str_arg(kws["thread"], "thread")
                if thread is None:
                    raise _Error(node, "wb.thread_binding needs a thread axis: thread=\"threadIdx.x\"")
            if name == "range" and len(vals) == 3:
                raise _Error(node, "range with a step is not supported; loops have unit steps")
            if len(vals) == 1:
                e = convert(vals[0])
                lo, ext = IntImm(0, e.dtype), e
            elif len(vals) == 2:
                lo, ext = _extent(vals[0], vals[1])
            else:
                raise _Error(node, f"wb.{name} takes an extent or (start, end), got {len(vals)} argument(s)")
            ann = self.ev(kws["annotations"]) if "annotations" in kws else None
            if ann is not None and not isinstance(ann, dict):
                raise _Error(node, "annotations= takes a dict")
            return self.loop_nest(node, targets, [(lo, ext, kind, thread, ann)])
        raise _Error(node, f"cannot loop over {ast.unparse(it)}; use wb.grid, wb.serial, wb.parallel, "
                           f"wb.vectorized, wb.unroll or wb.thread_binding")

    def loop_nest(self, node, targets, specs):
        self.push()
        vars_ = []
        for t, (lo, ext, *_r) in zip(targets, specs):
            v = Var(t, ext.dtype)
            vars_.append(v)
            self.define(t, v)
            self.loops[id(v)] = (lo, ext)
        try:
            body = self.suite(node.body)
        finally:
            for v in vars_:
                self.loops.pop(id(v), None)
            self.pop()
        for v, (lo, ext, kind, thread, ann) in reversed(list(zip(vars_, specs))):
            body = For(v, lo, ext, kind, body, thread, ann)
        return body

    def st_If(self, node, rest):
        c = self.ev(node.test)
        if _is_num(c) or isinstance(c, bool):
            # a Python condition (a global flag): choose the branch now
            return self.suite(node.body) if c else (self.suite(node.orelse) if node.orelse else None)
        c = convert(c, "bool")
        self.push()
        then = self.suite(node.body)
        self.pop()
        other = None
        if node.orelse:
            self.push()
            other = self.suite(node.orelse)
            self.pop()
        return IfThenElse(c, then, other)

    # functions ----------------------------------------------------------------------------
    def function(self, fn: ast.FunctionDef, method_name: str | None = None) -> PrimFunc:
        private = False
        for d in fn.decorator_list:
            if isinstance(d, ast.Call):
                for k in d.keywords:
                    if k.arg == "private":
                        private = bool(self.ev(k.value))
        self.scopes = [{}]
        self.frames = [_BlockFrame("root", is_root=True)]
        self.loops = {}
        self.func_attrs: dict = {}
        self.params: list[Var] = []
        self.buffer_map: dict = {}
        self.size_vars: dict[str, Var] = {}
        self.block_names: dict[str, ast.AST] = {}
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise _Error(fn, "script functions take plain positional parameters only")
        # 1. scalar and handle params, then size-variable declarations, then buffer annotations
        pending = []
        for arg in a.args:
            ann = arg.annotation
            if ann is None and arg.arg == "self":
                raise _Error(arg, "script functions take no 'self' parameter, also as methods of a @wb.ir_module "
                                  "class; remove it")
            if ann is None:
                raise _Error(arg, f"parameter {arg.arg!r} needs an annotation such as "
                                  f"wb.Buffer((128,), \"float32\"), wb.handle or wb.int32")
            kind = self.construct_name(ann.func if isinstance(ann, ast.Call) else ann)
            if isinstance(ann, ast.Call) and kind == "Buffer":
                v = Var(arg.arg, "handle")
                pending.append((arg, v, ann))
            elif not isinstance(ann, ast.Call) and kind == "handle":
                v = Var(arg.arg, "handle")
            elif not isinstance(ann, ast.Call) and kind is not None and (kind in _DTYPE_NAMES or _is_vec_dtype(kind)):
                v = Var(arg.arg, kind)
                self.define(arg.arg, v)
            else:
                raise _Error(arg, f"parameter {arg.arg!r}: unknown annotation {ast.unparse(ann)}; expected "
                                  f"wb.Buffer(shape, dtype), wb.handle or a dtype such as wb.int32")
            self.params.append(v)
            if kind == "handle":
                self.define(arg.arg, v)
        for st in fn.body:
            if (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)
                    and isinstance(st.value, ast.Call) and not st.value.args and not st.value.keywords):
                k = self.construct_name(st.value.func) if isinstance(st.value.func, ast.Attribute) else None
                if k in _DTYPE_NAMES:
                    v = Var(st.targets[0].id, k)
                    self.size_vars[v.name] = v
                    self.define(v.name, v)
        for arg, v, ann in pending:
            args, kws = self.guard(ann, lambda: self.args(
                ann, lo=1, hi=2, name="Buffer",
                kw=("dtype", "scope", "strides", "elem_offset", "offset_factor", "align")))
            saved = self.auto_vars
            buf = self.guard(ann, self.buffer_from_call, ann, arg.arg, args[0], args[1:], kws)
            self.auto_vars = saved
            self.buffer_map[v] = buf
            self.define(arg.arg, buf)
        body = self.suite(fn.body)
        root = self.frames[0]

        has_block = _contains_block(body)
        explicit_root = (isinstance(body, BlockRealize) and body.block.name == "root" and not root.allocs)
        if (has_block or root.allocs) and not explicit_root:
            if "root" in self.block_names:
                raise _Error(self.block_names["root"], "the block name 'root' is reserved for the function's "
                                                       "root block, which the parser adds; rename this block")
            body = BlockRealize((), IntImm(1, "bool"), Block("root", (), (), (), body, None, tuple(root.allocs)))
        name = method_name or fn.name
        attrs = {} if private else {"global_symbol": name}
        attrs.update(self.func_attrs)
        return PrimFunc(tuple(self.params), self.buffer_map, body, attrs)


#: integer constants folded by the parser stay within what the widest integer dtypes hold
#: (int64 below, uint64 above); anything larger is refused before it is computed
_FOLD_MIN, _FOLD_MAX = -(2 ** 63), 2 ** 64 - 1


def _py_binop(node, op, a, b):
    """Fold ``a op b`` on Python numbers, refusing results no dtype can hold (never computing them)."""
    import operator

    fn = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
          ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
          ast.LShift: operator.lshift, ast.RShift: operator.rshift}.get(op)
    if fn is None:
        raise _Error(node, f"the operator {op.__name__} is not supported in the script form")
    if _int_result_too_large(op, a, b):
        raise _fold_overflow(node)
    try:
        r = fn(a, b)
    except ZeroDivisionError:
        raise _Error(node, f"division by zero in the constant expression `{_node_text(node)}`") from None
    except OverflowError:
        raise _Error(node, f"the constant expression `{_node_text(node)}` is too large for a float64") from None
    if isinstance(r, numbers.Integral) and not isinstance(r, bool) and not (_FOLD_MIN <= r <= _FOLD_MAX):
        raise _fold_overflow(node)
    return r


def _int_result_too_large(op, a, b) -> bool:
    """Would ``a ** b`` or ``a << b`` on integers overflow 64 bits? (Decided without computing it.)"""
    if not (isinstance(a, numbers.Integral) and isinstance(b, numbers.Integral)):
        return False
    if op is ast.Pow:
        return abs(a) > 1 and b > 64
    if op is ast.LShift:
        return a != 0 and b > 64
    return False


def _fold_overflow(node) -> _Error:
    return _Error(node, f"the constant expression `{_node_text(node)}` does not fit in 64 bits, the widest "
                        f"integer dtype (int64/uint64); integer constants are folded at that width")


def _node_text(node) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _py_cmp(cls, a, b):
    import operator

    return {EQ: operator.eq, NE: operator.ne, LT: operator.lt, LE: operator.le, GT: operator.gt,
            GE: operator.ge}[cls](a, b)


def _is_vec_dtype(name: str) -> bool:
    if name in _DTYPE_NAMES:
        return True
    try:
        return normalize_dtype(name) == name and name != "handle"
    except DTypeError:
        return False


_STMT_CONSTRUCTS = {"grid", "serial", "parallel", "vectorized", "unroll", "thread_binding", "block", "init",
                    "where", "reads", "writes", "block_attr", "func_attr", "alloc_buffer", "match_buffer",
                    "let", "evaluate", "allocate", "assert_", "remap", "spatial", "reduce", "opaque"}


def _known_construct(name: str) -> bool:
    short = name.split(".")[-1]
    return (short in _STMT_CONSTRUCTS or short in INTRINSICS or short in _DTYPE_NAMES
            or short in ("max", "min", "cast", "Select", "ramp", "broadcast", "truncmod", "truncdiv",
                         "floordiv", "floormod", "call_extern", "call_intrin", "Let", "Buffer", "handle"))


def _construct_of_runtime(f) -> str | None:
    """A global bound to one of our vocabulary objects (``from workbench import max as wbmax``)."""
    mod = getattr(f, "__module__", None)
    name = getattr(f, "__name__", None)
    if mod and mod.startswith("workbench") and isinstance(name, str) and _known_construct(name):
        return name
    return None


def _describe(v) -> str:
    if isinstance(v, Buffer):
        return f"the buffer {v.name}"
    if isinstance(v, PrimExpr):
        return f"the expression `{v}`"
    if isinstance(v, _Construct):
        return f"wb.{v.name}"
    if isinstance(v, BufferRegion):
        return "a buffer region"
    return f"{type(v).__name__} {v!r}"[:80]


def _contains_block(s) -> bool:
    from .functor import Visitor

    found = False

    class V(Visitor):
        def visit_BlockRealize(self, n):
            nonlocal found
            found = True

        def visit(self, n):
            if not found and isinstance(n, (Stmt, tuple, list)):
                super().visit(n)

    V().visit(s)
    return found


# region inference -----------------------------------------------------------------------


def infer_regions(block: Block) -> tuple[list, list]:
    """Read and write regions of a block, as TVM infers them.

    Uses ``workbench.ir.arith.infer_block_access_regions`` when it is available;
    otherwise a simple local version (exact for point accesses over the block's
    iteration variables; whole dimensions where inner loop variables appear).
    """
    try:
        from .arith import infer_block_access_regions  # type: ignore
    except Exception:  # arith not there yet
        infer_block_access_regions = None
    if infer_block_access_regions is not None:
        reads, writes = infer_block_access_regions(block)
        return list(reads), list(writes)
    return _fallback_regions(block)


def _fallback_regions(block: Block) -> tuple[list, list]:
    from .functor import Visitor, uses_var
    from .structural import structural_equal

    local = {id(b) for b in block.alloc_buffers}
    inner: set[int] = set()
    reads: dict[int, list] = {}
    writes: dict[int, list] = {}
    order_r: list = []
    order_w: list = []

    def note(table, order, buf, indices):
        if id(buf) in local:
            return
        if id(buf) not in table:
            table[id(buf)] = [buf, list(indices)]
            order.append(id(buf))
            return
        ent = table[id(buf)]
        for k, i in enumerate(indices):
            if ent[1][k] is not None and not structural_equal(ent[1][k], i):
                ent[1][k] = None

    class V(Visitor):
        def visit_For(self, s):
            inner.add(id(s.loop_var))
            self.generic_visit(s)

        def visit_BlockRealize(self, s):
            for iv in s.block.iter_vars:
                inner.add(id(iv.var))
            self.generic_visit(s)

        def visit_BufferLoad(self, e):
            note(reads, order_r, e.buffer, e.indices)
            self.generic_visit(e)

        def visit_BufferStore(self, s):
            self.visit(s.value)
            for i in s.indices:
                self.visit(i)
            note(writes, order_w, s.buffer, s.indices)

    v = V()
    if block.init is not None:
        v.visit(block.init)
    v.visit(block.body)

    def regions(table, order):
        out = []
        for k in order:
            buf, idx = table[k]
            rs = []
            for d, i in enumerate(idx):
                if i is None or uses_var(i, lambda x: id(x) in inner):
                    rs.append(Range(IntImm(0, buf.shape[d].dtype), buf.shape[d]))
                else:
                    rs.append(Range(i, IntImm(1, i.dtype)))
            out.append(BufferRegion(buf, tuple(rs)))
        return out

    return regions(reads, order_r), regions(writes, order_w)


# entry points -----------------------------------------------------------------------------


def _syntax_error(err: SyntaxError, line_offset: int, filename: str | None) -> ScriptError:
    line = None if err.lineno is None else err.lineno + line_offset
    return ScriptError(f"invalid Python syntax: {err.msg}", line, err.text, filename)


def _parse_tree(text: str, line_offset: int = 0, filename: str | None = None) -> ast.Module:
    try:
        with deep_recursion():
            return ast.parse(textwrap.dedent(text))
    except SyntaxError as err:
        raise _syntax_error(err, line_offset, filename) from None
    except (RecursionError, MemoryError):
        k = _too_deep_line(text)
        raise ScriptError("the text nests expressions too deeply for Python's parser (more than a few "
                          "thousand levels); bind parts of them with wb.let(...)",
                          None if k is None else k + 1 + line_offset,
                          None if k is None else text.splitlines()[k], filename) from None


def _too_deep_line(text: str) -> int | None:
    """The index of the first line that alone is too deeply nested for ``ast.parse`` (None: not found)."""
    for k, line in enumerate(text.splitlines()):
        try:
            with deep_recursion():
                ast.parse(line.strip())
        except (RecursionError, MemoryError):
            return k
        except SyntaxError:
            continue
    return None


def _run(parser: _Parser, fn_node, method_name=None) -> PrimFunc:
    with deep_recursion():
        return parser.guard(fn_node, parser.function, fn_node, method_name)


def parse(text: str, globals: dict | None = None) -> PrimFunc | IRModule:  # noqa: A002
    """Read script-form text (as ``script()`` prints it) into a ``PrimFunc`` or ``IRModule``.

    ``globals`` resolves free Python names (constants such as ``N = 128``).

    >>> import workbench as wb
    >>> f = wb.parse('''
    ... def add_one(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    ...     for i in wb.serial(4):
    ...         B[i] = A[i] + 1.0
    ... ''')
    >>> print(f.script().splitlines()[1])
    def add_one(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    """
    if not isinstance(text, str):
        raise TypeError(f"wb.parse takes the script text as a string, got {type(text).__name__}")
    text = textwrap.dedent(text)
    tree = _parse_tree(text)
    lines = text.splitlines()
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    others = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import,
                                                          ast.ImportFrom))]
    if others:
        n = others[0]
        raise ScriptError("expected a function (def ...) or a module (class ...) at the top level",
                          n.lineno, lines[n.lineno - 1] if n.lineno <= len(lines) else None)
    if len(defs) != 1:
        raise ScriptError(f"expected exactly one function or module in the text, found {len(defs)}",
                          defs[1].lineno if len(defs) > 1 else None)
    node = defs[0]
    if isinstance(node, ast.ClassDef):
        return _parse_module(node, globals, 0, None, lines)
    if _is_graph_function(node):
        from .graph.parser import parse_function

        return parse_function(node, lines)
    return _run(_Parser(globals, 0, None, lines), node)


def _is_graph_function(node: ast.FunctionDef) -> bool:
    """Is ``node`` decorated ``@wb.function`` (a graph function) rather than ``@wb.prim_func``?"""
    from .graph.parser import is_graph_decorator

    return any(is_graph_decorator(d) for d in node.decorator_list)


def _parse_module(node: ast.ClassDef, globals_, offset, filename, lines) -> IRModule:
    fns = {}
    names = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and _is_graph_function(item):
            from .graph.parser import parse_function

            fns[item.name] = parse_function(item, lines, offset, filename, node.name, names, item.name)
        elif isinstance(item, ast.FunctionDef):
            fns[item.name] = _run(_Parser(globals_, offset, filename, lines), item, item.name)
        elif isinstance(item, ast.Pass) or (isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)):
            continue
        else:
            raise ScriptError("a script module holds only @wb.prim_func and @wb.function methods",
                              item.lineno + offset, None, filename)
    return IRModule(fns)


def _source_of(fn) -> tuple[str, int, str | None]:
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError) as err:
        raise ScriptError(f"cannot read the source of {getattr(fn, '__name__', fn)!r} ({err}); "
                          f"pass the text to wb.parse(...) instead") from None
    return "".join(lines), start, inspect.getsourcefile(fn) or getattr(fn.__code__, "co_filename", None)


def _globals_of(fn) -> dict:
    g = dict(getattr(fn, "__globals__", {}))
    if getattr(fn, "__closure__", None):
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__):
            try:
                g[name] = cell.cell_contents
            except ValueError:
                pass
    # names used only in annotations are not free variables of the code; the caller's frame has them
    return g


def prim_func(fn=None, *, private: bool = False):
    """Decorator: parse a Python function written in the script form into a ``PrimFunc``.

    >>> import workbench as wb
    >>> @wb.prim_func
    ... def copy(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
    ...     for i in wb.serial(4):
    ...         B[i] = A[i]
    >>> copy.name
    'copy'
    """
    if fn is None:
        return lambda f: prim_func(f, private=private)
    if isinstance(fn, str):
        raise TypeError("wb.prim_func decorates a function; to read text use wb.parse(text)")
    text, start, filename = _source_of(fn)
    text = textwrap.dedent(text)
    tree = _parse_tree(text, start - 1, filename)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not defs:
        raise ScriptError(f"could not find the definition of {fn.__name__} in its source", start, None, filename)
    g = _globals_of(fn)
    # names used only in annotations (a local N in a test function) live in the caller's frame
    frame = inspect.currentframe()
    try:
        caller = frame.f_back if frame is not None else None
        while caller is not None and str(caller.f_globals.get("__name__", "")).startswith("workbench.ir."):
            caller = caller.f_back
        if caller is not None and caller.f_locals is not caller.f_globals:
            g = {**caller.f_locals, **g}
    finally:
        del frame
    parser = _Parser(g, start - 1, filename, text.splitlines())
    f = _run(parser, defs[0])
    if private and "global_symbol" in f.attrs:
        attrs = {k: v for k, v in f.attrs.items() if k != "global_symbol"}
        f = f.replace(attrs=attrs)
    return f


def ir_module(cls):
    """Decorator: a class whose ``@wb.prim_func`` methods become the functions of an ``IRModule``.

    >>> import workbench as wb
    >>> @wb.ir_module
    ... class Module:
    ...     @wb.prim_func
    ...     def main(A: wb.Buffer((4,), "float32")):
    ...         for i in wb.serial(4):
    ...             A[i] = 0.0
    >>> list(Module)
    ['main']
    """
    from .graph.parser import PendingFunction

    members = {name: value for name, value in vars(cls).items() if isinstance(value, (PrimFunc, PendingFunction))}
    if not members:
        raise ScriptError(f"@wb.ir_module class {cls.__name__} has no @wb.prim_func or @wb.function methods")
    fns = {}
    for name, value in members.items():
        fns[name] = value.parse(cls.__name__, set(members)) if isinstance(value, PendingFunction) else value
    return IRModule(fns)


__all__ = ["parse", "prim_func", "ir_module", "ScriptError", "infer_regions"]
