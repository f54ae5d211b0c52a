"""The printer of the script form: IR nodes as Python text that parses back.

``script(node)`` prints any expression, statement, buffer, ``PrimFunc`` or
``IRModule``. The text is valid Python in the ``wb.`` vocabulary of
``workbench.ir.script``; ``workbench.ir.parser.parse`` reads it back to a
structurally equal program.

>>> from workbench.ir.expr import Var
>>> from workbench.ir.printer import script
>>> i, j = Var("i"), Var("j")
>>> script((i + 1) * 32 + j)
'(i + 1) * 32 + j'

Rules that make the text round-trip exactly:

- int32 and float32 constants print bare (``3``, ``0.5``); other dtypes spell the
  dtype (``wb.int64(3)``, ``wb.float16(0.5)``), bools are ``True``/``False``. A
  constant next to an operand of its own dtype prints bare (the parser gives a
  bare literal the dtype of the other operand).
- Parentheses appear exactly where Python's precedence needs them, so the
  tree shape (``a - (b - c)``) survives.
- Two different variables (or buffers) with the same name visible at once get
  suffixes (``i_1``), so names resolve back to the same objects.
- Nested negations ``0 - (0 - x)`` print as unary minuses (``0 - -x``), which the
  parser reads as the same ``Sub(0, ...)`` chain: Python allows only 200 levels of
  parentheses. Expressions up to a few thousand levels deep print; deeper ones raise
  a ``ValueError`` that says so.
"""
from __future__ import annotations

import keyword
import math
import re
import sys
from typing import Any

from .buffer import Buffer
from .dtype import is_bool
from .expr import (
    INTRINSICS,
    EQ, GE, GT, LE, LT, NE,
    Add, And, Broadcast, BufferLoad, Call, Cast, Div, FloatImm, FloorDiv, FloorMod,
    IntImm, Let, Max, Min, Mod, Mul, Not, Or, PrimExpr, Ramp, Range, Select, StringImm, Sub, Var,
)
from .function import IRModule, PrimFunc
from .stmt import (
    Allocate, AssertStmt, Block, BlockRealize, BufferRegion, BufferStore, Evaluate, For, ForKind,
    IfThenElse, IterType, IterVar, LetStmt, MatchBufferRegion, SeqStmt, Stmt,
)

PREFIX = "wb"
INDENT = "    "

# Python operator precedence (higher binds tighter)
_P_OR, _P_AND, _P_NOT, _P_CMP, _P_ADD, _P_MUL, _P_UNARY, _P_ATOM = 1, 2, 3, 4, 9, 10, 11, 13

_BIN = {Add: ("+", _P_ADD), Sub: ("-", _P_ADD), Mul: ("*", _P_MUL), Div: ("/", _P_MUL),
        FloorDiv: ("//", _P_MUL), FloorMod: ("%", _P_MUL),
        EQ: ("==", _P_CMP), NE: ("!=", _P_CMP), LT: ("<", _P_CMP), LE: ("<=", _P_CMP),
        GT: (">", _P_CMP), GE: (">=", _P_CMP)}
_FUNC_BIN = {Min: "min", Max: "max", Mod: "truncmod"}

_KIND_FN = {ForKind.SERIAL: "serial", ForKind.PARALLEL: "parallel", ForKind.VECTORIZED: "vectorized",
            ForKind.UNROLLED: "unroll", ForKind.THREAD_BINDING: "thread_binding"}
_ITER_FN = {IterType.SPATIAL: "spatial", IterType.REDUCE: "reduce", IterType.OPAQUE: "opaque"}
_ITER_CHAR = {IterType.SPATIAL: "S", IterType.REDUCE: "R"}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = set(keyword.kwlist) | {PREFIX, "True", "False", "None", "range"}


def script(node: Any) -> str:
    """The script form of ``node`` (an expression, statement, buffer, PrimFunc or IRModule).

    >>> from workbench.ir.buffer import Buffer
    >>> A = Buffer("A", (128, 128), "float32")
    >>> from workbench.ir.expr import Var, max_
    >>> i = Var("i")
    >>> script(max_(A[i, 0], 0.0))
    'wb.max(A[i, 0], 0.0)'
    """
    with deep_recursion():
        try:
            return Printer().print_node(node)
        except RecursionError:
            raise ValueError(f"cannot print this {type(node).__name__}: its expressions or statements are nested "
                             f"more than a few thousand levels deep; bind parts of it to variables "
                             f"(wb.let) to flatten it") from None


#: printing and parsing recurse once or twice per level of nesting; they run with at least this
#: recursion limit, so programs a few thousand levels deep still print and parse back
DEEP_RECURSION_LIMIT = 10000


class deep_recursion:
    """Run the body with Python's recursion limit raised to at least ``limit`` (restored after).

    A class used like a function (hence the lower-case name): ``with deep_recursion(): ...``.

    >>> import sys
    >>> with deep_recursion(20000):
    ...     sys.getrecursionlimit() >= 20000
    True
    """

    __slots__ = ("limit", "old")

    def __init__(self, limit: int = DEEP_RECURSION_LIMIT):
        self.limit = limit
        self.old = 0

    def __enter__(self) -> None:
        self.old = sys.getrecursionlimit()
        if self.old < self.limit:
            sys.setrecursionlimit(self.limit)

    def __exit__(self, *exc) -> None:
        if self.old < self.limit:
            sys.setrecursionlimit(self.old)


def _is_const(e) -> bool:
    return isinstance(e, (IntImm, FloatImm))


def _is_zero(e) -> bool:
    return isinstance(e, IntImm) and e.value == 0


def _sanitize(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name or "v")
    if not s or s[0].isdigit():
        s = "v_" + s
    if s in _RESERVED:
        s = s + "_"
    return s


def _float_text(v: float) -> str:
    return repr(float(v))


_EXPLICIT = "!explicit"


def const_text(e: PrimExpr, bare: bool = False, explicit: bool = False) -> str:
    """The text of a constant; ``bare`` drops the dtype wrapper where the context gives it,
    ``explicit`` keeps it even for int32/float32 (a Python number would fold with its neighbour)."""
    if isinstance(e, IntImm):
        if is_bool(e.dtype):
            if explicit:
                return f"{PREFIX}.bool({bool(e.value)})"
            return "True" if e.value else "False"
        if (bare or e.dtype == "int32") and not explicit:
            return str(e.value)
        return f"{PREFIX}.{e.dtype}({e.value})"
    assert isinstance(e, FloatImm)
    v = e.value
    if math.isinf(v) or math.isnan(v):
        s = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return f'{PREFIX}.{e.dtype}("{s}")'
    if (bare or e.dtype == "float32") and not explicit:
        return _float_text(v)
    return f"{PREFIX}.{e.dtype}({_float_text(v)})"


def _can_bare(e, dtype: str) -> bool:
    """May constant ``e`` print bare where the parser gives bare literals ``dtype``?"""
    if not _is_const(e) or e.dtype != dtype:
        return False
    if isinstance(e, FloatImm) and (math.isinf(e.value) or math.isnan(e.value)):
        return False
    return True


def _is_negation(e) -> bool:
    """``Sub(0, x)`` as the parser reads ``-x``: a +0 of ``x``'s (scalar) dtype minus a non-constant ``x``."""
    return (isinstance(e, Sub) and isinstance(e.a, (IntImm, FloatImm)) and e.a.value == 0
            and math.copysign(1.0, e.a.value) > 0 and e.a.dtype == e.b.dtype and not _is_const(e.b)
            and not is_bool(e.a.dtype))


def _range_end(r_min: PrimExpr, extent: PrimExpr) -> PrimExpr:
    """``min + extent`` as printed in ``lo:hi`` and ``(lo, hi)``; the parser undoes it exactly."""
    if isinstance(r_min, IntImm) and isinstance(extent, IntImm) and r_min.dtype == extent.dtype:
        return IntImm(r_min.value + extent.value, extent.dtype)
    if _is_zero(r_min):
        return extent
    return Add(r_min, extent)


class Printer:
    """Prints nodes; keeps the names given to variables and buffers consistent and unique."""

    def __init__(self):
        self.names: dict[int, str] = {}
        self.keep: list = []  # keeps named objects alive so ids stay unique
        self.scopes: list[set[str]] = [set()]
        self.loops: dict[int, For] = {}

    # names ----------------------------------------------------------------
    def _visible(self, name: str) -> bool:
        return any(name in s for s in self.scopes)

    def define(self, obj, base: str | None = None) -> str:
        """Give ``obj`` a name unique among the visible names (in the innermost scope)."""
        base = _sanitize(base if base is not None else obj.name)
        name, k = base, 1
        while self._visible(name):
            name = f"{base}_{k}"
            k += 1
        self.names[id(obj)] = name
        self.keep.append(obj)
        self.scopes[-1].add(name)
        return name

    def name(self, obj) -> str:
        n = self.names.get(id(obj))
        if n is None:
            # a free variable or buffer: unique against everything visible, kept for the whole text
            n = self.define(obj)
            self.scopes[-1].discard(n)
            self.scopes[0].add(n)
        return n

    def push(self):
        self.scopes.append(set())

    def pop(self):
        self.scopes.pop()

    # dispatch -------------------------------------------------------------
    def print_node(self, node: Any) -> str:
        from .graph.printer import is_graph_node

        if is_graph_node(node):
            from .graph.printer import print_graph

            return print_graph(node)
        if isinstance(node, PrimExpr):
            return self.expr(node)
        if isinstance(node, PrimFunc):
            return "\n".join(self.func_lines(node, None))
        if isinstance(node, IRModule):
            return "\n".join(self.module_lines(node))
        if isinstance(node, Stmt):
            return "\n".join(self.stmt_lines(node, 0))
        if isinstance(node, Buffer):
            return f"{self.name(node)}: {PREFIX}.Buffer({self.shape(node.shape)}, \"{node.dtype}\"{self.buffer_kwargs(node)})"
        if isinstance(node, BufferRegion):
            return self.region(node)
        if isinstance(node, Range):
            return f"{self.expr(node.min)}:{self.expr(_range_end(node.min, node.extent))}"
        if isinstance(node, IterVar):
            return f"{self.name(node.var)}: {node.iter_type}[{self.print_node(node.dom)}]"
        if isinstance(node, MatchBufferRegion):
            return f"{self.name(node.buffer)} = {self.match_buffer_call(node.buffer, self.region(node.source))}"
        if isinstance(node, (list, tuple)):
            return "[" + ", ".join(self.print_node(x) for x in node) + "]"
        return repr(node)

    # expressions ------------------------------------------------------------
    def expr(self, e: PrimExpr, bare_dtype: str | None = None) -> str:
        return self._expr(e, bare_dtype)[0]

    def _operand(self, e: PrimExpr, bare_dtype: str | None, parent_prec: int, right: bool,
                 cmp: bool = False) -> str:
        text, prec = self._expr(e, bare_dtype)
        if prec < parent_prec or (prec == parent_prec and (right or cmp)):
            return f"({text})"
        return text

    def _expr(self, e: PrimExpr, bare_dtype: str | None = None) -> tuple[str, int]:
        """(text, precedence) of ``e``; ``bare_dtype``: constants of this dtype may print bare."""
        if isinstance(e, (IntImm, FloatImm)):
            bare = bare_dtype is not None and _can_bare(e, bare_dtype)
            text = const_text(e, bare, explicit=bare_dtype == _EXPLICIT)
            neg = text.startswith("-")
            return text, (_P_UNARY if neg else _P_ATOM)
        if isinstance(e, Var):
            return self.name(e), _P_ATOM
        if isinstance(e, StringImm):
            return _str(e.value), _P_ATOM
        cls = type(e)
        if _is_negation(e) and _is_negation(e.b):
            return self._negations(e), _P_ADD
        if cls in _BIN:
            sym, prec = _BIN[cls]
            la, lb = self._bin_bare(e.a, e.b)
            cmp = prec == _P_CMP
            a = self._operand(e.a, la, prec, right=False, cmp=cmp)
            b = self._operand(e.b, lb, prec, right=True, cmp=cmp)
            return f"{a} {sym} {b}", prec
        if cls in _FUNC_BIN:
            la, lb = self._bin_bare(e.a, e.b)
            return f"{PREFIX}.{_FUNC_BIN[cls]}({self.expr(e.a, la)}, {self.expr(e.b, lb)})", _P_ATOM
        if isinstance(e, And) or isinstance(e, Or):
            sym, prec = ("and", _P_AND) if isinstance(e, And) else ("or", _P_OR)
            la, lb = self._bin_bare(e.a, e.b)
            a = self._operand(e.a, la, prec, right=False)
            b = self._operand(e.b, lb, prec, right=True)
            return f"{a} {sym} {b}", prec
        if isinstance(e, Not):
            return f"not {self._operand(e.a, None, _P_NOT, right=False)}", _P_NOT
        if isinstance(e, BufferLoad):
            return f"{self.name(e.buffer)}[{self.indices(e.indices)}]", _P_ATOM
        if isinstance(e, Select):
            lt, lf = self._bin_bare(e.true_value, e.false_value)
            return (f"{PREFIX}.Select({self.expr(e.condition)}, {self.expr(e.true_value, lt)}, "
                    f"{self.expr(e.false_value, lf)})"), _P_ATOM
        if isinstance(e, Cast):
            return f"{PREFIX}.cast({self.expr(e.value)}, \"{e.dtype}\")", _P_ATOM
        if isinstance(e, Call):
            return self.call(e), _P_ATOM
        if isinstance(e, Ramp):
            lb, ls = self._bin_bare(e.base, e.stride)
            return f"{PREFIX}.ramp({self.expr(e.base, lb)}, {self.expr(e.stride, ls)}, {e.lanes})", _P_ATOM
        if isinstance(e, Broadcast):
            return f"{PREFIX}.broadcast({self.expr(e.value)}, {e.lanes})", _P_ATOM
        if isinstance(e, Let):
            value = self.expr(e.value)
            self.push()
            name = self.define(e.var)
            body = self.expr(e.body)
            self.pop()
            return f"{PREFIX}.Let({name} := {value}, {body})", _P_ATOM
        return f"<{type(e).__name__}>", _P_ATOM

    def _negations(self, e: Sub) -> str:
        """``0 - (0 - (0 - x))`` as ``0 - --x``: nested negations print as unary minuses, which the parser
        reads back as the same ``Sub(0, ...)`` chain, so no parentheses pile up (Python allows 200 levels)."""
        count, inner = 0, e.b
        while _is_negation(inner):
            count += 1
            inner = inner.b
        zero = const_text(e.a, bare=True)
        return f"{zero} - {'-' * count}{self._operand(inner, None, _P_UNARY, right=False)}"

    def _bin_bare(self, a: PrimExpr, b: PrimExpr) -> tuple[str | None, str | None]:
        """Which operands of a matched pair may print as bare literals."""
        ca, cb = _is_const(a), _is_const(b)
        if ca and not cb:
            return a.dtype, None
        if cb and not ca:
            return None, b.dtype
        if ca and cb:
            return _EXPLICIT, a.dtype  # the left prints with its dtype, so the right may be bare
        return None, None

    def call(self, e: Call) -> str:
        op, args = e.op, e.args
        if op == "call_extern" and args and isinstance(args[0], StringImm):
            rest = "".join(", " + self.expr(a) for a in args[1:])
            return f"{PREFIX}.call_extern(\"{e.dtype}\", {_str(args[0].value)}{rest})"
        spec = INTRINSICS.get(op)
        if spec is not None and _call_dtype_ok(e, spec):
            ref = None
            idx = range(1, len(args)) if spec[1] == "branch" else range(len(args))
            for k in idx:
                if not _is_const(args[k]):
                    ref = args[k].dtype
                    break
            if ref is None and len(idx) > 1:
                # all constants: the first prints with its dtype, the rest may be bare
                ref = args[idx[0]].dtype
                texts = {idx[0]: self.expr(args[idx[0]], _EXPLICIT)}
            else:
                texts = {}
            parts = []
            for k, a in enumerate(args):
                if k in texts:
                    parts.append(texts[k])
                elif k in idx:
                    parts.append(self.expr(a, ref))
                else:
                    parts.append(self.expr(a))
            return f"{PREFIX}.{op}({', '.join(parts)})"
        rest = "".join(", " + self.expr(a) for a in args)
        return f"{PREFIX}.call_intrin(\"{e.dtype}\", {_str(op)}{rest})"

    def indices(self, idx) -> str:
        if len(idx) == 0:
            return "()"
        return ", ".join(self.expr(i) for i in idx)

    def region(self, r: BufferRegion) -> str:
        parts = []
        for rg in r.region:
            if isinstance(rg.extent, IntImm) and rg.extent.value == 1 and rg.extent.dtype == rg.min.dtype:
                parts.append(self.expr(rg.min))
            else:
                parts.append(f"{self.expr(rg.min)}:{self.expr(_range_end(rg.min, rg.extent))}")
        if not parts:
            return f"{self.name(r.buffer)}[()]"
        return f"{self.name(r.buffer)}[{', '.join(parts)}]"

    def shape(self, shape, strings: bool = False) -> str:
        """``(128, n)``; with ``strings`` symbolic dims are quoted (``("n", 16)``, for annotations)."""
        items = []
        for d in shape:
            if strings and not _is_const(d):
                items.append(_str(self.expr(d)))
            else:
                items.append(self.expr(d))
        if len(items) == 1:
            return f"({items[0]},)"
        return "(" + ", ".join(items) + ")"

    def dom(self, r: Range) -> str:
        if _is_zero(r.min) and r.min.dtype == r.extent.dtype:
            return self.expr(r.extent)
        return f"({self.expr(r.min)}, {self.expr(_range_end(r.min, r.extent))})"

    def value(self, v) -> str:
        """A Python value in attributes and annotations."""
        if isinstance(v, (IntImm, FloatImm)):
            if isinstance(v, IntImm) and is_bool(v.dtype):
                return f"{PREFIX}.bool({v.value != 0})"
            return f"{PREFIX}.{v.dtype}({_num_arg(v)})"
        if isinstance(v, PrimExpr):
            return self.expr(v)
        if isinstance(v, Buffer):
            return self.name(v)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{self.value(k)}: {self.value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(self.value(x) for x in v) + "]"
        if isinstance(v, tuple):
            inner = ", ".join(self.value(x) for x in v)
            return f"({inner},)" if len(v) == 1 else f"({inner})"
        if isinstance(v, str):
            return _str(v)
        if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
            return f'float("{v}")'
        return repr(v)

    def buffer_kwargs(self, b: Buffer, scope: bool = True) -> str:
        out = ""
        if b.strides:
            out += f", strides={self.shape(b.strides)}"
        if not (_is_zero(b.elem_offset) and b.elem_offset.dtype == "int32"):
            out += f", elem_offset={self.expr(b.elem_offset)}"
        if scope and b.scope != "global":
            out += f", scope=\"{b.scope}\""
        if b.offset_factor:
            out += f", offset_factor={b.offset_factor}"
        if b.align:
            out += f", align={b.align}"
        return out

    def match_buffer_call(self, b: Buffer, source: str) -> str:
        return (f"{PREFIX}.match_buffer({source}, {self.shape(b.shape)}, \"{b.dtype}\""
                f"{self.buffer_kwargs(b)})")

    # statements ----------------------------------------------------------------
    def stmt_lines(self, s: Stmt, depth: int, tail: bool = True) -> list[str]:
        """Lines of ``s`` at indentation ``depth``; ``tail``: nothing follows ``s`` in its suite."""
        ind = INDENT * depth
        if isinstance(s, SeqStmt):
            if not s.seq:
                return [ind + "pass"]
            out: list[str] = []
            for k, x in enumerate(s.seq):
                out += self.stmt_lines(x, depth, tail=tail and k == len(s.seq) - 1)
            return out
        if isinstance(s, BufferStore):
            v = self.expr(s.value, s.buffer.dtype if s.value.dtype == s.buffer.dtype else None)
            return [f"{ind}{self.name(s.buffer)}[{self.indices(s.indices)}] = {v}"]
        if isinstance(s, For):
            return self.for_lines(s, depth)
        if isinstance(s, BlockRealize):
            return self.block_lines(s, depth)
        if isinstance(s, IfThenElse):
            out = [f"{ind}if {self.expr(s.condition)}:"]
            self.push()
            out += self.stmt_lines(s.then_case, depth + 1)
            self.pop()
            e = s.else_case
            while e is not None:
                if isinstance(e, IfThenElse):
                    out.append(f"{ind}elif {self.expr(e.condition)}:")
                    self.push()
                    out += self.stmt_lines(e.then_case, depth + 1)
                    self.pop()
                    e = e.else_case
                else:
                    out.append(f"{ind}else:")
                    self.push()
                    out += self.stmt_lines(e, depth + 1)
                    self.pop()
                    e = None
            return out
        if isinstance(s, LetStmt):
            value = self.expr(s.value)
            return self._scoped(s.var, f"{PREFIX}.let({value})", s.body, depth, tail)
        if isinstance(s, Allocate):
            b = s.buffer
            call = f"{PREFIX}.allocate({self.shape(b.shape)}, \"{b.dtype}\", scope=\"{b.scope}\")"
            return self._scoped(b, call, s.body, depth, tail)
        if isinstance(s, AssertStmt):
            call = f"{PREFIX}.assert_({self.expr(s.condition)}, {_str(s.message)})"
            return self._scoped(None, call, s.body, depth, tail)
        if isinstance(s, Evaluate):
            return [f"{ind}{PREFIX}.evaluate({self.expr(s.value)})"]
        if isinstance(s, Block):
            # a Block outside a BlockRealize: print it as realized with its own iter vars
            return self.block_lines(BlockRealize(tuple(iv.var for iv in s.iter_vars), True, s), depth)
        return [f"{ind}# <unprintable {type(s).__name__}>"]

    def _scoped(self, obj, call: str, body: Stmt, depth: int, tail: bool) -> list[str]:
        """``x = call`` then the body at the same depth, or ``with call as x:`` when more follows."""
        ind = INDENT * depth
        self.push()
        name = self.define(obj) if obj is not None else None
        if tail:
            head = f"{ind}{name} = {call}" if name else f"{ind}{call}"
            out = [head] + self.stmt_lines(body, depth, tail=True)
        else:
            head = f"{ind}with {call} as {name}:" if name else f"{ind}with {call}:"
            out = [head] + self.stmt_lines(body, depth + 1)
        self.pop()
        return out

    def for_lines(self, s: For, depth: int) -> list[str]:
        ind = INDENT * depth
        if _grid_loop(s):
            loops = [s]
            while (isinstance(loops[-1].body, For) and _grid_loop(loops[-1].body)
                   and not _uses_any(loops[-1].body.extent, [x.loop_var for x in loops])):
                loops.append(loops[-1].body)
            if len(loops) > 1:
                extents = ", ".join(self.expr(x.extent) for x in loops)
                self.push()
                names = ", ".join(self.define(x.loop_var) for x in loops)
                for x in loops:
                    self.loops[id(x.loop_var)] = x
                out = [f"{ind}for {names} in {PREFIX}.grid({extents}):"]
                out += self.stmt_lines(loops[-1].body, depth + 1)
                for x in loops:
                    self.loops.pop(id(x.loop_var), None)
                self.pop()
                return out
        fn = _KIND_FN[s.kind]
        if _is_zero(s.min) and s.min.dtype == s.extent.dtype:
            args = [self.expr(s.extent)]
        else:
            args = [self.expr(s.min), self.expr(_range_end(s.min, s.extent))]
        if s.kind == ForKind.THREAD_BINDING:
            args.append(f"thread=\"{s.thread}\"")
        if s.annotations:
            args.append(f"annotations={self.value(dict(s.annotations))}")
        self.push()
        name = self.define(s.loop_var)
        self.loops[id(s.loop_var)] = s
        out = [f"{ind}for {name} in {PREFIX}.{fn}({', '.join(args)}):"]
        out += self.stmt_lines(s.body, depth + 1)
        self.loops.pop(id(s.loop_var), None)
        self.pop()
        return out

    def block_lines(self, br: BlockRealize, depth: int) -> list[str]:
        ind = INDENT * depth
        b = br.block
        inner = INDENT * (depth + 1)
        out = [f"{ind}with {PREFIX}.block({_str(b.name)}):"]
        self.push()
        # iteration variables
        remap = self._remap(br)
        if remap is not None and b.iter_vars:
            names = [self.define(iv.var) for iv in b.iter_vars]
            lhs = ", ".join(names) + ("," if len(names) == 1 else "")
            kinds = "".join(_ITER_CHAR[iv.iter_type] for iv in b.iter_vars)
            out.append(f"{inner}{lhs} = {PREFIX}.axis.remap(\"{kinds}\", [{', '.join(remap)}])")
        else:
            for iv, v in zip(b.iter_vars, br.iter_values):
                binding = self.expr(v)
                dom = self.dom(iv.dom)
                name = self.define(iv.var)
                out.append(f"{inner}{name} = {PREFIX}.axis.{_ITER_FN[iv.iter_type]}({dom}, {binding})")
        if not (isinstance(br.predicate, IntImm) and br.predicate.value == 1):
            out.append(f"{inner}{PREFIX}.where({self.expr(br.predicate)})")
        for buf in b.alloc_buffers:
            out.append(f"{inner}{self.define(buf)} = {self.alloc_call(buf)}")
        mbs = []
        for mb in b.match_buffers:
            src = self.region(mb.source)
            mbs.append(f"{inner}{self.define(mb.buffer)} = {self.match_buffer_call(mb.buffer, src)}")
        out.append(f"{inner}{PREFIX}.reads({', '.join(self.region(r) for r in b.reads)})")
        out.append(f"{inner}{PREFIX}.writes({', '.join(self.region(r) for r in b.writes)})")
        out += mbs
        if b.annotations:
            out.append(f"{inner}{PREFIX}.block_attr({self.value(dict(b.annotations))})")
        if b.init is not None:
            out.append(f"{inner}with {PREFIX}.init():")
            self.push()
            out += self.stmt_lines(b.init, depth + 2)
            self.pop()
        out += self.stmt_lines(b.body, depth + 1)
        self.pop()
        return out

    def alloc_call(self, buf: Buffer) -> str:
        return f"{PREFIX}.alloc_buffer({self.shape(buf.shape)}, \"{buf.dtype}\"{self.buffer_kwargs(buf)})"

    def _remap(self, br: BlockRealize) -> list[str] | None:
        from .structural import structural_equal

        names = []
        for iv, v in zip(br.block.iter_vars, br.iter_values):
            if iv.iter_type not in _ITER_CHAR or not isinstance(v, Var):
                return None
            loop = self.loops.get(id(v))
            if loop is None or loop.loop_var is not v or iv.var.dtype != v.dtype:
                return None
            if not (structural_equal(iv.dom.min, loop.min) and structural_equal(iv.dom.extent, loop.extent)):
                return None
            names.append(self.name(v))
        return names

    # functions ---------------------------------------------------------------------
    def func_lines(self, f: PrimFunc, method_name: str | None) -> list[str]:
        """Lines of a PrimFunc; ``method_name``: printed as a method of an IRModule class."""
        from .functor import collect_vars

        self.push()
        gsym = f.attrs.get("global_symbol")
        def_name = method_name or (gsym if isinstance(gsym, str) else "main")
        def_name = _sanitize(def_name)
        attrs = {k: v for k, v in f.attrs.items() if k != "global_symbol"}
        private = "global_symbol" not in f.attrs
        if not private and gsym != def_name:
            attrs = {"global_symbol": gsym, **attrs}
        head = [f"@{PREFIX}.prim_func(private=True)" if private else f"@{PREFIX}.prim_func"]

        # which vars are bound inside (not free)
        bound: set[int] = {id(p) for p in f.params}
        _collect_bound(f.body, bound)
        body_stmt, root_allocs = f.body, ()
        root = _elidable_root(f.body)
        if root is not None:
            body_stmt, root_allocs = root.body, root.alloc_buffers
        all_vars = collect_vars([f.buffer_map[p] for p in f.params if p in f.buffer_map]) + collect_vars(f.body)
        free = []
        seen = set()
        for v in all_vars:
            if id(v) not in bound and id(v) not in seen and v.dtype != "handle":
                seen.add(id(v))
                free.append(v)

        pre: list[str] = []
        # scalar parameters are named first: buffer shapes may use them
        for v in f.params:
            if v not in f.buffer_map:
                self.define(v)
        free_names = [self.define(v) for v in free]
        ind = INDENT
        for v, n in zip(free, free_names):
            pre.append(f"{ind}{n} = {PREFIX}.{v.dtype}()")
        params = []
        matches = []
        for p in f.params:
            if p in f.buffer_map:
                buf = f.buffer_map[p]
                if _simple_param_buffer(buf):
                    name = self.define(buf)
                    params.append(f"{name}: {PREFIX}.Buffer({self.shape(buf.shape, strings=True)}, "
                                  f"\"{buf.dtype}\")")
                else:
                    base = p.name if p.name != buf.name else buf.name + "_handle"
                    hname = self.define(p, base)
                    params.append(f"{hname}: {PREFIX}.handle")
                    matches.append((buf, hname))
            else:
                params.append(f"{self.names[id(p)]}: {PREFIX}.{p.dtype}")
        for buf, hname in matches:
            pre.append(f"{ind}{self.define(buf)} = {self.match_buffer_call(buf, hname)}")
        if attrs:
            pre.append(f"{ind}{PREFIX}.func_attr({self.value(attrs)})")
        for buf in root_allocs:
            pre.append(f"{ind}{self.define(buf)} = {self.alloc_call(buf)}")
        head += _wrap_params(f"def {def_name}(", params, "):")
        body = self.stmt_lines(body_stmt, 1)
        self.pop()
        return head + pre + body

    def module_lines(self, mod: IRModule) -> list[str]:
        out = [f"@{PREFIX}.ir_module", "class Module:"]
        first = True
        for name, fn in mod.functions.items():
            if not first:
                out.append("")
            first = False
            if isinstance(fn, PrimFunc):
                lines = Printer().func_lines(fn, name)
            elif _is_graph_function(fn):
                from .graph.printer import GraphPrinter

                lines = GraphPrinter().function_lines(fn, name)
            elif hasattr(fn, "script"):
                lines = fn.script().splitlines()
            else:
                lines = [f"# <unprintable {type(fn).__name__} {name}>"]
            out += [INDENT + ln if ln else ln for ln in lines]
        if first:
            out.append(INDENT + "pass")
        return out


def _is_graph_function(fn) -> bool:
    from .graph.expr import Function

    return isinstance(fn, Function)


def _wrap_params(start: str, params: list[str], end: str, width: int = 100) -> list[str]:
    """``def f(a, b,`` / ``      c):``: fill lines up to ``width``, continuing under the first parameter."""
    lines, cur = [], start
    pad = " " * len(start)
    for k, p in enumerate(params):
        piece = p + ("," if k < len(params) - 1 else end)
        if cur not in (start, pad) and len(cur) + 1 + len(piece) > width:
            lines.append(cur)
            cur = pad + piece
        else:
            cur = cur + ("" if cur in (start, pad) else " ") + piece
    if not params:
        cur += end
    lines.append(cur)
    return lines


def _str(s: str) -> str:
    """A double-quoted Python string literal."""
    r = repr(s)
    if r.startswith("'") and '"' not in s:
        r = '"' + r[1:-1].replace("\\'", "'") + '"'
    return r


def _num_arg(v) -> str:
    if isinstance(v, FloatImm):
        if math.isinf(v.value) or math.isnan(v.value):
            return '"nan"' if math.isnan(v.value) else ('"inf"' if v.value > 0 else '"-inf"')
        return _float_text(v.value)
    return str(v.value)


def _call_dtype_ok(e: Call, spec) -> bool:
    arity, result, _ = spec
    if len(e.args) != arity:
        return False
    from .dtype import lanes_of, with_lanes

    if result == "branch":
        return e.dtype == e.args[1].dtype == e.args[2].dtype and is_bool(e.args[0].dtype)
    dts = {a.dtype for a in e.args}
    if len(dts) != 1:
        return False
    ref = e.args[0].dtype
    want = with_lanes("bool", lanes_of(ref)) if result == "bool" else ref
    return e.dtype == want


def _grid_loop(s: For) -> bool:
    return (s.kind == ForKind.SERIAL and _is_zero(s.min) and s.min.dtype == s.extent.dtype
            and not s.annotations)


def _uses_any(e, vars_) -> bool:
    from .functor import uses_var

    ids = {id(v) for v in vars_}
    return uses_var(e, lambda v: id(v) in ids)


def _simple_param_buffer(b: Buffer) -> bool:
    return (not b.strides and _is_zero(b.elem_offset) and b.elem_offset.dtype == "int32"
            and b.scope == "global" and not b.offset_factor and not b.align)


def _elidable_root(body: Stmt):
    if not isinstance(body, BlockRealize):
        return None
    b = body.block
    if (b.name == "root" and not b.iter_vars and not body.iter_values and _is_true(body.predicate)
            and b.init is None and not b.match_buffers and not b.annotations and not b.reads
            and not b.writes):
        return b
    return None


def _is_true(e) -> bool:
    return isinstance(e, IntImm) and is_bool(e.dtype) and e.value == 1


def _collect_bound(n, bound: set[int]) -> None:
    from .functor import Visitor

    class V(Visitor):
        def visit_For(self, s):
            bound.add(id(s.loop_var))
            self.generic_visit(s)

        def visit_IterVar(self, iv):
            bound.add(id(iv.var))
            self.generic_visit(iv)

        def visit_LetStmt(self, s):
            bound.add(id(s.var))
            self.generic_visit(s)

        def visit_Let(self, e):
            bound.add(id(e.var))
            self.generic_visit(e)

    V().visit(n)


__all__ = ["script", "Printer", "const_text", "deep_recursion"]
