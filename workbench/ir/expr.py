"""Expressions of the loop-level IR.

Operators on expressions build new expressions, so index arithmetic reads as
Python does::

    >>> from workbench.ir.expr import Var
    >>> i, j = Var("i"), Var("j")
    >>> print(i * 32 + j)
    i * 32 + j

Python numbers next to an expression take its dtype; two expressions of different
dtypes are refused (use ``cast``). ``/`` on integers truncates (C semantics);
``//`` and ``%`` are floor division and floor modulo, as in Python.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .dtype import (
    DTypeError,
    bits_of,
    element_of,
    is_bool,
    is_float,
    is_int,
    is_integer,
    is_uint,
    lanes_of,
    max_value,
    min_value,
    normalize_dtype,
    to_numpy,
    with_lanes,
)
from .node import Node, node, set_field


class PrimExpr(Node):
    """Base of scalar (and vector) expressions. Every expression has a ``dtype``."""

    __slots__ = ()
    dtype: str

    # Expressions are values built by operators; identity hashing keeps dict
    # look-ups of variables correct (``__eq__`` builds an ``EQ`` node).
    __hash__ = object.__hash__

    # arithmetic -----------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __floordiv__(self, other):
        return floordiv(self, other)

    def __rfloordiv__(self, other):
        return floordiv(other, self)

    def __mod__(self, other):
        return floormod(self, other)

    def __rmod__(self, other):
        return floormod(other, self)

    def __pow__(self, other):
        return call("pow", self, other)

    def __neg__(self):
        if isinstance(self, IntImm):
            return IntImm(-self.value, self.dtype)
        if isinstance(self, FloatImm):
            return FloatImm(-self.value, self.dtype)
        return sub(const(0, self.dtype), self)

    def __pos__(self):
        return self

    def __abs__(self):
        return call("abs", self)

    # comparisons ----------------------------------------------------------
    def __lt__(self, other):
        return _compare(LT, self, other)

    def __le__(self, other):
        return _compare(LE, self, other)

    def __gt__(self, other):
        return _compare(GT, self, other)

    def __ge__(self, other):
        return _compare(GE, self, other)

    def __eq__(self, other):  # type: ignore[override]
        return _compare(EQ, self, other)

    def __ne__(self, other):  # type: ignore[override]
        return _compare(NE, self, other)

    # logic / bits ---------------------------------------------------------
    def __and__(self, other):
        return _logic_or_bits(And, "bitwise_and", self, other)

    def __rand__(self, other):
        return _logic_or_bits(And, "bitwise_and", other, self)

    def __or__(self, other):
        return _logic_or_bits(Or, "bitwise_or", self, other)

    def __ror__(self, other):
        return _logic_or_bits(Or, "bitwise_or", other, self)

    def __xor__(self, other):
        a, b = _match(self, other, "^")
        return call("bitwise_xor", a, b)

    def __invert__(self):
        if is_bool(self.dtype):
            return Not(self)
        return call("bitwise_not", self)

    def __lshift__(self, other):
        a, b = _match(self, other, "<<")
        return call("shift_left", a, b)

    def __rshift__(self, other):
        a, b = _match(self, other, ">>")
        return call("shift_right", a, b)

    def __bool__(self):
        raise TypeError(
            f"cannot use the symbolic expression `{self}` as a Python bool; "
            "inside a compute lambda use te.if_then_else / wb.Select, and te.all / te.any for and/or")

    def astype(self, dtype) -> "PrimExpr":
        """``x.astype("float16")`` is ``Cast("float16", x)``."""
        return cast(self, dtype)


# ---------------------------------------------------------------------------
# leaves


@node
class Var(PrimExpr):
    """A variable: a loop index, an iteration variable, a symbolic size, a handle.

    Variables are compared by identity: two ``Var("i")`` are different variables.
    """

    name: str
    dtype: str = "int32"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a variable needs a non-empty name, got {self.name!r}")
        set_field(self, "dtype", normalize_dtype(self.dtype))


@node
class IntImm(PrimExpr):
    """An integer (or bool) constant."""

    value: int
    dtype: str = "int32"

    def __post_init__(self):
        dtype = normalize_dtype(self.dtype)
        set_field(self, "dtype", dtype)
        v = self.value
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        if not isinstance(v, (numbers.Integral,)):
            if isinstance(v, numbers.Real) and float(v).is_integer():
                v = int(v)
            else:
                raise DTypeError(f"IntImm needs an integer value, got {self.value!r}")
        v = int(v)
        if not (is_integer(dtype) or is_bool(dtype)):
            raise DTypeError(f"IntImm needs an integer or bool dtype, got {dtype!r}")
        if not (min_value(dtype) <= v <= max_value(dtype)):
            raise DTypeError(f"the constant {v} does not fit in {dtype}")
        set_field(self, "value", v)

    def __int__(self):
        return self.value

    def __index__(self):
        return self.value

    def __float__(self):
        return float(self.value)

    def __bool__(self):
        return self.value != 0


@node
class FloatImm(PrimExpr):
    """A floating-point constant."""

    value: float
    dtype: str = "float32"

    def __post_init__(self):
        dtype = normalize_dtype(self.dtype)
        set_field(self, "dtype", dtype)
        if not is_float(dtype):
            raise DTypeError(f"FloatImm needs a float dtype, got {dtype!r}")
        if not isinstance(self.value, numbers.Real):
            raise DTypeError(f"FloatImm needs a real value, got {self.value!r}")
        set_field(self, "value", float(self.value))

    def __float__(self):
        return self.value


@node
class StringImm(PrimExpr):
    """A string constant (names of external functions, annotations)."""

    value: str
    dtype: str = "handle"


# ---------------------------------------------------------------------------
# arithmetic


class BinaryOp(PrimExpr):
    __slots__ = ()
    a: PrimExpr
    b: PrimExpr
    symbol = "?"

    def __post_init__(self):
        a, b = _match(self.a, self.b, self.symbol)
        set_field(self, "a", a)
        set_field(self, "b", b)
        if self.dtype is None:
            set_field(self, "dtype", self._result_dtype(a.dtype))
        else:
            set_field(self, "dtype", normalize_dtype(self.dtype))

    @staticmethod
    def _result_dtype(operand: str) -> str:
        return operand


@node
class Add(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "+"


@node
class Sub(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "-"


@node
class Mul(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "*"


@node
class Div(BinaryOp):
    """``a / b``: true division for floats, truncating division for integers."""

    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "/"


@node
class Mod(BinaryOp):
    """Truncating remainder (C's ``%``); printed as ``wb.truncmod(a, b)``."""

    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "truncmod"


@node
class FloorDiv(BinaryOp):
    """``a // b``: division rounding towards minus infinity."""

    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "//"


@node
class FloorMod(BinaryOp):
    """``a % b``: remainder with the sign of ``b`` (Python's ``%``)."""

    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "%"


@node
class Min(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "min"


@node
class Max(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "max"


class CmpOp(BinaryOp):
    __slots__ = ()

    @staticmethod
    def _result_dtype(operand: str) -> str:
        return with_lanes("bool", lanes_of(operand))


@node
class EQ(CmpOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "=="

    def __bool__(self):
        # ``x == y`` used as a Python bool (dict look-ups, ``in``): same node, or equal constants.
        return _same_value(self.a, self.b)


@node
class NE(CmpOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "!="

    def __bool__(self):
        return not _same_value(self.a, self.b)


@node
class LT(CmpOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "<"


@node
class LE(CmpOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "<="


@node
class GT(CmpOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = ">"


@node
class GE(CmpOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = ">="


class LogicOp(BinaryOp):
    __slots__ = ()

    def __post_init__(self):
        super().__post_init__()
        if not is_bool(self.a.dtype):
            raise DTypeError(f"`{self.symbol}` needs bool operands, got {self.a.dtype}")


@node
class And(LogicOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "and"


@node
class Or(LogicOp):
    a: PrimExpr
    b: PrimExpr
    dtype: str = None  # type: ignore[assignment]
    symbol = "or"


@node
class Not(PrimExpr):
    a: PrimExpr
    dtype: str = None  # type: ignore[assignment]

    def __post_init__(self):
        a = convert(self.a, "bool")
        if not is_bool(a.dtype):
            raise DTypeError(f"`not` needs a bool operand, got {a.dtype}")
        set_field(self, "a", a)
        set_field(self, "dtype", a.dtype)


@node
class Select(PrimExpr):
    """``condition ? true_value : false_value``; both sides are evaluated.

    Use the intrinsic ``if_then_else`` when the unchosen side must not run
    (an out-of-bounds load guarded by the condition).
    """

    condition: PrimExpr
    true_value: PrimExpr
    false_value: PrimExpr
    dtype: str = None  # type: ignore[assignment]

    def __post_init__(self):
        c = convert(self.condition, "bool")
        if not is_bool(c.dtype):
            raise DTypeError(f"Select needs a bool condition, got `{c}` of dtype {c.dtype}")
        t, f = _match(self.true_value, self.false_value, "Select")
        set_field(self, "condition", c)
        set_field(self, "true_value", t)
        set_field(self, "false_value", f)
        set_field(self, "dtype", t.dtype)


@node
class Cast(PrimExpr):
    """Conversion of ``value`` to ``dtype`` (C rules; float to int truncates)."""

    dtype: str
    value: PrimExpr

    def __post_init__(self):
        set_field(self, "dtype", normalize_dtype(self.dtype))
        set_field(self, "value", convert(self.value))


@node
class BufferLoad(PrimExpr):
    """``A[i, j]``: one element of a buffer."""

    buffer: Any  # Buffer
    indices: tuple
    dtype: str = None  # type: ignore[assignment]

    def __post_init__(self):
        from .buffer import Buffer

        if not isinstance(self.buffer, Buffer):
            raise TypeError(f"BufferLoad needs a Buffer, got {type(self.buffer).__name__}")
        idx = tuple(convert_index(i, self.buffer, k) for k, i in enumerate(self.indices))
        if len(idx) != len(self.buffer.shape):
            raise IndexError(
                f"buffer {self.buffer.name} has {len(self.buffer.shape)} dimension(s) "
                f"but is indexed with {len(idx)}")
        set_field(self, "indices", idx)
        if self.dtype is None:
            lanes = max((lanes_of(i.dtype) for i in idx), default=1)
            set_field(self, "dtype", with_lanes(self.buffer.dtype, lanes))


@node
class Call(PrimExpr):
    """An intrinsic call: ``exp(x)``, ``fma(a, b, c)``, ``call_extern("f", ...)``."""

    op: str
    args: tuple
    dtype: str

    def __post_init__(self):
        set_field(self, "args", tuple(a if isinstance(a, PrimExpr) else convert(a) for a in self.args))
        set_field(self, "dtype", normalize_dtype(self.dtype))


@node
class Let(PrimExpr):
    """``let var = value in body``, as an expression."""

    var: Var
    value: PrimExpr
    body: PrimExpr
    dtype: str = None  # type: ignore[assignment]

    def __post_init__(self):
        value = convert(self.value, self.var.dtype)
        if value.dtype != self.var.dtype:
            raise DTypeError(f"let {self.var.name}: value of dtype {value.dtype} bound to a {self.var.dtype} variable")
        set_field(self, "value", value)
        set_field(self, "body", convert(self.body))
        set_field(self, "dtype", self.body.dtype)


@node
class Ramp(PrimExpr):
    """The vector ``[base, base + stride, ..., base + (lanes-1) * stride]``."""

    base: PrimExpr
    stride: PrimExpr
    lanes: int
    dtype: str = None  # type: ignore[assignment]

    def __post_init__(self):
        base, stride = _match(self.base, self.stride, "Ramp")
        set_field(self, "base", base)
        set_field(self, "stride", stride)
        set_field(self, "lanes", int(self.lanes))
        set_field(self, "dtype", with_lanes(base.dtype, int(self.lanes)))


@node
class Broadcast(PrimExpr):
    """``value`` repeated in ``lanes`` lanes."""

    value: PrimExpr
    lanes: int
    dtype: str = None  # type: ignore[assignment]

    def __post_init__(self):
        v = convert(self.value)
        set_field(self, "value", v)
        set_field(self, "lanes", int(self.lanes))
        set_field(self, "dtype", with_lanes(v.dtype, int(self.lanes)))


@node
class Range(Node):
    """The half-open interval ``[min, min + extent)``; printed as ``min:min+extent``."""

    min: PrimExpr
    extent: PrimExpr

    def __post_init__(self):
        set_field(self, "min", convert(self.min))
        set_field(self, "extent", convert(self.extent))

    @staticmethod
    def from_min_extent(min_value, extent) -> "Range":
        return Range(min_value, extent)

    @staticmethod
    def from_begin_end(begin, end) -> "Range":
        begin = convert(begin)
        end = convert(end)
        return Range(begin, sub(end, begin))


# ---------------------------------------------------------------------------
# construction helpers


def const(value, dtype="int32") -> PrimExpr:
    """A constant of ``dtype``: ``const(1, "float16")`` is a float16 ``1.0``."""
    dtype = normalize_dtype(dtype)
    e = element_of(dtype)
    if is_float(e):
        imm: PrimExpr = FloatImm(float(value), e)
    elif e == "handle":
        raise DTypeError("cannot make a constant of dtype 'handle'")
    else:
        if isinstance(value, float) and not value.is_integer() and not math.isinf(value):
            raise DTypeError(f"the constant {value} is not an integer but {dtype} was asked for")
        if isinstance(value, float) and math.isinf(value):
            value = max_value(e) if value > 0 else min_value(e)
        imm = IntImm(int(value), e)
    return imm if lanes_of(dtype) == 1 else Broadcast(imm, lanes_of(dtype))


def convert(value, dtype: str | None = None) -> PrimExpr:
    """Turn a Python number (or an expression) into an expression.

    With ``dtype`` a Python number becomes a constant of that dtype; an expression
    is returned unchanged (no implicit casts between expressions).
    """
    if isinstance(value, PrimExpr):
        return value
    if isinstance(value, (bool, np.bool_)):
        return IntImm(int(value), "bool") if dtype is None or is_bool(dtype) else const(int(value), dtype)
    if isinstance(value, (numbers.Integral,)):
        if dtype is not None:
            return const(int(value), dtype)
        v = int(value)
        return IntImm(v, "int32" if -(2**31) <= v < 2**31 else "int64")
    if isinstance(value, (numbers.Real,)):
        if dtype is not None:
            if not is_float(dtype):
                if float(value).is_integer():
                    return const(int(value), dtype)
                raise DTypeError(f"cannot use the float literal {value} where {dtype} is expected; cast explicitly")
            return const(float(value), dtype)
        if isinstance(value, np.floating):
            return FloatImm(float(value), np.dtype(value.dtype).name)
        return FloatImm(float(value), "float32")
    if isinstance(value, str):
        return StringImm(value)
    raise TypeError(f"cannot convert {type(value).__name__} {value!r} to an IR expression")


def convert_index(value, buffer=None, position: int | None = None) -> PrimExpr:
    e = convert(value)
    if not is_integer(element_of(e.dtype)):
        where = f" of buffer {buffer.name}" if buffer is not None else ""
        pos = f" at position {position}" if position is not None else ""
        raise DTypeError(f"index `{e}`{pos}{where} must be an integer, got {e.dtype}")
    return e


def _is_number(x) -> bool:
    return isinstance(x, (numbers.Number, np.number, np.bool_)) and not isinstance(x, PrimExpr)


def _match(a, b, symbol: str) -> tuple[PrimExpr, PrimExpr]:
    """Convert Python numbers next to an expression to its dtype and check that dtypes agree."""
    a_num, b_num = _is_number(a), _is_number(b)
    if a_num and not b_num:
        b = convert(b)
        a = _literal_like(a, b.dtype, b, symbol)
    elif b_num and not a_num:
        a = convert(a)
        b = _literal_like(b, a.dtype, a, symbol)
    else:
        a, b = convert(a), convert(b)
    if a.dtype != b.dtype:
        raise DTypeError(
            f"cannot mix {a.dtype} and {b.dtype} in `{_short(a)} {symbol} {_short(b)}`; "
            f"convert one side with wb.cast(x, \"{a.dtype}\") or .astype(...)")
    return a, b


def _literal_like(value, dtype: str, other: PrimExpr, symbol: str) -> PrimExpr:
    e = element_of(dtype)
    if e == "bool" and not isinstance(value, (bool, np.bool_)):
        if value in (0, 1):
            return const(int(value), dtype)
        raise DTypeError(f"cannot combine the bool expression `{_short(other)}` with {value!r} in `{symbol}`")
    if not is_float(e) and isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise DTypeError(
            f"cannot mix the {dtype} expression `{_short(other)}` with the float literal {value} in `{symbol}`; "
            f"cast the expression first, e.g. wb.cast(x, \"float32\")")
    if is_uint(e) and value < 0:
        raise DTypeError(f"the negative literal {value} cannot be combined with {dtype} `{_short(other)}`")
    try:
        return const(value, dtype)
    except DTypeError as err:
        raise DTypeError(f"the literal {value!r} does not fit next to `{_short(other)}` ({dtype}): {err}") from None


def _short(e) -> str:
    try:
        s = str(e)
    except Exception:
        s = type(e).__name__
    return s if len(s) < 60 else s[:57] + "..."


def _same_value(a: PrimExpr, b: PrimExpr) -> bool:
    if a is b:
        return True
    if isinstance(a, (IntImm, FloatImm)) and type(a) is type(b):
        return a.value == b.value and a.dtype == b.dtype
    return False


def _compare(cls, a, b):
    a, b = _match(a, b, cls.symbol)
    if isinstance(a, (IntImm, FloatImm)) and isinstance(b, (IntImm, FloatImm)):
        import operator

        fn = {EQ: operator.eq, NE: operator.ne, LT: operator.lt, LE: operator.le, GT: operator.gt, GE: operator.ge}[cls]
        return IntImm(int(fn(a.value, b.value)), "bool")
    return cls(a, b)


def _logic_or_bits(cls, bit_op, a, b):
    a, b = _match(a, b, cls.symbol)
    if is_bool(a.dtype):
        return logical_and(a, b) if cls is And else logical_or(a, b)
    if not is_integer(a.dtype):
        raise DTypeError(f"`&`/`|` need bool or integer operands, got {a.dtype}")
    return call(bit_op, a, b)


# arithmetic with light constant folding --------------------------------------


def _fold_int(op: str, x: int, y: int, dtype: str):
    if op == "+":
        r = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    elif op == "//":
        if y == 0:
            return None
        r = x // y
    elif op == "%":
        if y == 0:
            return None
        r = x % y
    elif op == "/":
        if y == 0:
            return None
        r = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)
    elif op == "min":
        r = min(x, y)
    elif op == "max":
        r = max(x, y)
    else:
        return None
    if not (min_value(dtype) <= r <= max_value(dtype)):
        return None
    return IntImm(r, dtype)


def _fold_float(op: str, x: float, y: float, dtype: str):
    npdt = to_numpy(dtype)
    xa, ya = npdt.type(x), npdt.type(y)
    with np.errstate(all="ignore"):
        if op == "+":
            r = xa + ya
        elif op == "-":
            r = xa - ya
        elif op == "*":
            r = xa * ya
        elif op == "/":
            if y == 0:
                return None
            r = xa / ya
        elif op == "min":
            r = min(xa, ya)
        elif op == "max":
            r = max(xa, ya)
        else:
            return None
    return FloatImm(float(r), dtype)


def _arith(cls, a, b):
    a, b = _match(a, b, cls.symbol)
    op = cls.symbol
    if lanes_of(a.dtype) == 1:
        if isinstance(a, IntImm) and isinstance(b, IntImm) and not is_bool(a.dtype):
            r = _fold_int(op, a.value, b.value, a.dtype)
            if r is not None:
                return r
        if isinstance(a, FloatImm) and isinstance(b, FloatImm):
            r = _fold_float(op, a.value, b.value, a.dtype)
            if r is not None:
                return r
        if is_integer(a.dtype):
            # identities that hold for integers
            if op == "+" and _is_const(b, 0):
                return a
            if op == "+" and _is_const(a, 0):
                return b
            if op == "-" and _is_const(b, 0):
                return a
            if op == "*" and _is_const(b, 1):
                return a
            if op == "*" and _is_const(a, 1):
                return b
            if op == "*" and (_is_const(a, 0) or _is_const(b, 0)):
                return IntImm(0, a.dtype)
            if op in ("//", "/") and _is_const(b, 1):
                return a
            if op == "%" and _is_const(b, 1):
                return IntImm(0, a.dtype)
    return cls(a, b)


def _is_const(e, v) -> bool:
    return isinstance(e, (IntImm, FloatImm)) and e.value == v


def add(a, b) -> PrimExpr:
    return _arith(Add, a, b)


def sub(a, b) -> PrimExpr:
    return _arith(Sub, a, b)


def mul(a, b) -> PrimExpr:
    return _arith(Mul, a, b)


def div(a, b) -> PrimExpr:
    return _arith(Div, a, b)


def truncdiv(a, b) -> PrimExpr:
    """Integer division rounding towards zero (C's ``/``)."""
    a, b = _match(a, b, "truncdiv")
    if not is_integer(a.dtype):
        raise DTypeError(f"truncdiv needs integers, got {a.dtype}")
    return _arith(Div, a, b)


def truncmod(a, b) -> PrimExpr:
    """Remainder of truncating division (C's ``%``)."""
    a, b = _match(a, b, "truncmod")
    if isinstance(a, IntImm) and isinstance(b, IntImm) and b.value != 0:
        q = abs(a.value) // abs(b.value) * (1 if (a.value >= 0) == (b.value >= 0) else -1)
        return IntImm(a.value - q * b.value, a.dtype)
    return Mod(a, b)


def floordiv(a, b) -> PrimExpr:
    return _arith(FloorDiv, a, b)


def floormod(a, b) -> PrimExpr:
    return _arith(FloorMod, a, b)


def min_(a, b) -> PrimExpr:
    return _arith(Min, a, b)


def max_(a, b) -> PrimExpr:
    return _arith(Max, a, b)


def logical_and(*args) -> PrimExpr:
    """``a and b and ...`` on bool expressions (constants fold away)."""
    out = None
    for x in args:
        x = convert(x, "bool")
        if isinstance(x, IntImm):
            if x.value == 0:
                return IntImm(0, "bool")
            continue
        out = x if out is None else And(out, x)
    return IntImm(1, "bool") if out is None else out


def logical_or(*args) -> PrimExpr:
    out = None
    for x in args:
        x = convert(x, "bool")
        if isinstance(x, IntImm):
            if x.value != 0:
                return IntImm(1, "bool")
            continue
        out = x if out is None else Or(out, x)
    return IntImm(0, "bool") if out is None else out


def logical_not(a) -> PrimExpr:
    a = convert(a, "bool")
    if isinstance(a, IntImm):
        return IntImm(int(not a.value), "bool")
    return Not(a)


def select(condition, true_value, false_value) -> PrimExpr:
    return Select(condition, true_value, false_value)


def cast(value, dtype) -> PrimExpr:
    """Convert ``value`` to ``dtype``: ``wb.cast(x, "float32")``; same dtype gives ``value`` back."""
    dtype = normalize_dtype(dtype)
    if _is_number(value):
        return const(value, dtype)
    value = convert(value)
    if value.dtype == dtype:
        return value
    return Cast(dtype, value)


# intrinsics ------------------------------------------------------------------

#: op name -> (number of arguments, rule for the result dtype, argument kinds)
INTRINSICS: dict[str, tuple[int, str, str]] = {}


def _reg(names, arity, result, kind):
    for n in names.split():
        INTRINSICS[n] = (arity, result, kind)


_reg("exp exp2 exp10 log log2 log10 log1p sqrt rsqrt tanh sigmoid erf sin cos tan asin acos atan "
     "sinh cosh floor ceil round trunc nearbyint", 1, "same", "float")
_reg("pow atan2 fmod copysign hypot", 2, "same", "float")
_reg("fma", 3, "same", "float")
_reg("abs", 1, "same", "numeric")
_reg("isnan isinf isfinite", 1, "bool", "float")
_reg("bitwise_and bitwise_or bitwise_xor shift_left shift_right", 2, "same", "int")
_reg("bitwise_not popcount", 1, "same", "int")
_reg("if_then_else", 3, "branch", "any")
# "call_extern" and target intrinsics ("llvm.*") are free-form: Call(op, args, dtype).


def call(op: str, *args, dtype: str | None = None) -> PrimExpr:
    """Build an intrinsic call, checking arity and dtypes: ``call("exp", x)``."""
    if op not in INTRINSICS:
        if dtype is None:
            raise ValueError(f"unknown intrinsic {op!r}; known: {', '.join(sorted(INTRINSICS))} "
                             "(external functions go through wb.call_extern)")
        return Call(op, tuple(convert(a) for a in args), dtype)
    arity, result, kind = INTRINSICS[op]
    if len(args) != arity:
        raise TypeError(f"{op} takes {arity} argument(s), got {len(args)}")
    if result == "branch":
        cond = convert(args[0], "bool")
        if not is_bool(cond.dtype):
            raise DTypeError(f"if_then_else needs a bool condition, got `{cond}` ({cond.dtype})")
        t, f = _match(args[1], args[2], "if_then_else")
        if isinstance(cond, IntImm):
            return t if cond.value else f
        return Call(op, (cond, t, f), t.dtype)
    conv = [a for a in args if isinstance(a, PrimExpr)]
    ref = conv[0] if conv else convert(args[0], "float32" if kind == "float" else None)
    cargs = []
    for a in args:
        cargs.append(_literal_like(a, ref.dtype, ref, op) if _is_number(a) else convert(a))
    for a in cargs:
        if a.dtype != ref.dtype:
            raise DTypeError(f"{op}: arguments of different dtypes ({ref.dtype} and {a.dtype}); cast one of them")
        if kind == "float" and not is_float(a.dtype):
            raise DTypeError(f"{op} needs a float argument, got `{_short(a)}` of dtype {a.dtype}; "
                             f"cast it, e.g. wb.cast(x, \"float32\")")
        if kind == "int" and not is_integer(a.dtype):
            raise DTypeError(f"{op} needs integer arguments, got {a.dtype}")
        if kind == "numeric" and is_bool(a.dtype):
            raise DTypeError(f"{op} needs a number, got bool")
    out_dtype = with_lanes("bool", lanes_of(ref.dtype)) if result == "bool" else ref.dtype
    if dtype is not None and normalize_dtype(dtype) != out_dtype:
        raise DTypeError(f"{op} of {ref.dtype} gives {out_dtype}, not {dtype}")
    return Call(op, tuple(cargs), out_dtype)


def if_then_else(condition, true_value, false_value) -> PrimExpr:
    """Lazy conditional: only the chosen side is evaluated (guards out-of-bounds loads)."""
    return call("if_then_else", condition, true_value, false_value)


def call_extern(dtype: str, name: str, *args) -> PrimExpr:
    """A call to an external C function ``name`` returning ``dtype``."""
    return Call("call_extern", (StringImm(name),) + tuple(convert(a) for a in args), dtype)


def is_const_int(e, value: int | None = None) -> bool:
    """True when ``e`` is an integer constant (equal to ``value`` if given)."""
    if isinstance(e, numbers.Integral):
        return value is None or int(e) == value
    return isinstance(e, IntImm) and (value is None or e.value == value)


def as_int(e) -> int | None:
    """The Python int of a constant expression, else None."""
    if isinstance(e, numbers.Integral):
        return int(e)
    if isinstance(e, IntImm):
        return e.value
    return None


__all__ = [
    "PrimExpr", "Var", "IntImm", "FloatImm", "StringImm", "BinaryOp", "Add", "Sub", "Mul", "Div",
    "Mod", "FloorDiv", "FloorMod", "Min", "Max", "CmpOp", "EQ", "NE", "LT", "LE", "GT", "GE",
    "LogicOp", "And", "Or", "Not", "Select", "Cast", "BufferLoad", "Call", "Let", "Ramp",
    "Broadcast", "Range", "const", "convert", "add", "sub", "mul", "div", "truncdiv", "truncmod",
    "floordiv", "floormod", "min_", "max_", "logical_and", "logical_or", "logical_not", "select",
    "cast", "call", "if_then_else", "call_extern", "INTRINSICS", "is_const_int", "as_int",
    "bits_of", "is_int",
]
