"""Check the arguments of a call against a PrimFunc's signature and bind its size variables.

Everything is checked before anything runs, so a bad call leaves the arrays untouched:
the number of arguments, each array's type, dtype, number of dimensions, shape and
(for buffers that declare them) strides, and that a symbolic size such as ``n`` has
one value across all arrays.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import expr as E
from ..dtype import from_numpy, is_bool, is_float, is_integer, to_numpy
from ..expr import PrimExpr, Var
from . import bounds as B


_PREC = {E.Add: (1, "+"), E.Sub: (1, "-"), E.Mul: (2, "*"), E.FloorDiv: (2, "//"),
         E.FloorMod: (2, "%"), E.Div: (2, "/")}


def describe(e) -> str:
    """A short text of a shape expression (independent of the printer): ``n * 2 + 1``."""
    if isinstance(e, E.IntImm):
        return str(e.value)
    if isinstance(e, Var):
        return e.name
    if type(e) in _PREC:
        prec, op = _PREC[type(e)]
        a, b = describe(e.a), describe(e.b)
        if type(e.a) in _PREC and _PREC[type(e.a)][0] < prec:
            a = f"({a})"
        if type(e.b) in _PREC and (_PREC[type(e.b)][0] < prec or
                                   (_PREC[type(e.b)][0] == prec and op not in ("+", "*"))):
            b = f"({b})"
        return f"{a} {op} {b}"
    try:
        return str(e)
    except Exception:
        return type(e).__name__


def shape_text(dims) -> str:
    parts = [describe(d) if isinstance(d, PrimExpr) else str(d) for d in dims]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def eval_int(e, env: dict):
    """Value of an integer shape expression, or None when it names an unbound variable."""
    if isinstance(e, E.IntImm):
        return e.value
    if isinstance(e, Var):
        return env.get(e)
    if isinstance(e, E.Cast):
        return eval_int(e.value, env)
    binops = {
        E.Add: lambda a, b: a + b, E.Sub: lambda a, b: a - b, E.Mul: lambda a, b: a * b,
        E.FloorDiv: lambda a, b: a // b if b else None, E.FloorMod: lambda a, b: a % b if b else None,
        E.Div: lambda a, b: (abs(a) // abs(b)) * (1 if (a >= 0) == (b >= 0) else -1) if b else None,
        E.Mod: lambda a, b: (abs(a) % abs(b)) * (1 if a >= 0 else -1) if b else None,
        E.Min: min, E.Max: max,
    }
    fn = binops.get(type(e))
    if fn is None:
        return None
    a, b = eval_int(e.a, env), eval_int(e.b, env)
    if a is None or b is None:
        return None
    return fn(a, b)


def _free(e, env) -> list[Var]:
    from .codegen import _vars_in

    out = []
    for v in _vars_in(e):
        if v not in env and all(v is not w for w in out):
            out.append(v)
    return out


class _Binder:
    def __init__(self, fname: str):
        self.fname = fname
        self.env: dict = {}        # Var -> int
        self.source: dict = {}     # Var -> where its value came from ("A.shape[0]")
        self.deferred: list = []   # (expr, actual, where, label)

    def bind(self, e, actual: int, where: str, label: str) -> None:
        """``e`` (a dimension, stride or offset) must equal ``actual``, found at ``where``."""
        if isinstance(e, Var):
            if e in self.env:
                if self.env[e] != actual:
                    raise ValueError(
                        f"{label}: {e.name} is {self.env[e]} from {self.source[e]} but {actual} from {where}")
                return
            self.env[e] = actual
            self.source[e] = where
            return
        value = eval_int(e, self.env)
        if value is None:
            self.deferred.append((e, actual, where, label))
        elif value != actual:
            self.mismatch(e, value, actual, where, label)

    def mismatch(self, e, value, actual, where: str, label: str) -> None:
        from .codegen import _vars_in

        known = []
        for v in _vars_in(e):
            if v in self.env and all(v is not w for w, _ in known):
                known.append((v, f"{v.name} = {self.env[v]} from {self.source[v]}"))
        why = f" ({'; '.join(t for _, t in known)})" if known else ""
        raise ValueError(f"{label}: {where} should be {describe(e)} = {value}{why}, got {actual}")

    def settle(self) -> None:
        """Check deferred expressions, solving ``a*n + b == actual`` for one unknown ``n``."""
        progress = True
        while self.deferred and progress:
            progress = False
            for item in list(self.deferred):
                e, actual, where, label = item
                free = _free(e, self.env)
                if not free:
                    self.deferred.remove(item)
                    value = eval_int(e, self.env)
                    if value is None or value != actual:
                        self.mismatch(e, value, actual, where, label)
                    progress = True
                elif len(free) == 1:
                    v = free[0]
                    ys = [eval_int(e, {**self.env, v: x}) for x in (0, 1, 2)]
                    if None in ys or ys[2] - ys[1] != ys[1] - ys[0] or ys[1] == ys[0]:
                        continue
                    slope, icpt = ys[1] - ys[0], ys[0]
                    if (actual - icpt) % slope != 0:
                        raise ValueError(f"{label}: {where} is {actual}, which is not {describe(e)} for any "
                                         f"integer {v.name}")
                    self.env[v] = (actual - icpt) // slope
                    self.source[v] = f"{where} = {describe(e)}"
                    self.deferred.remove(item)
                    progress = True
        if self.deferred:
            e, actual, where, label = self.deferred[0]
            names = ", ".join(v.name for v in _free(e, self.env))
            raise ValueError(f"{label}: cannot work out {names} from {where} = {actual}; "
                             f"give {names} its own dimension in some parameter")


def bind_arguments(func, args: tuple, kwargs: dict, written: set, extra_vars: list) -> list:
    """Check ``args``/``kwargs`` against ``func``; return the values of ``func.params + extra_vars``.

    Raises TypeError (wrong count, type or dtype) or ValueError (ndim, shape, strides,
    inconsistent sizes, read-only output) naming the parameter, the expected and the actual.
    """
    params = func.params
    fname = func.name
    names = [func.buffer_map[p].name if p in func.buffer_map else p.name for p in params]
    listing = ", ".join(names)
    if len(args) > len(params):
        raise TypeError(f"{fname} takes {len(params)} argument(s) ({listing}) but {len(args)} were given")
    values: list = list(args) + [_MISSING] * (len(params) - len(args))
    for key, val in kwargs.items():
        pos = next((k for k, (p, n) in enumerate(zip(params, names)) if key in (n, p.name)), None)
        if pos is None:
            raise TypeError(f"{fname} got an unexpected keyword argument {key!r}; its parameters are {listing}")
        if values[pos] is not _MISSING:
            raise TypeError(f"{fname} got two values for argument {pos + 1} ({names[pos]})")
        values[pos] = val
    missing = [f"{k + 1} ({names[k]})" for k, v in enumerate(values) if v is _MISSING]
    if missing:
        raise TypeError(f"{fname} takes {len(params)} argument(s) ({listing}); missing argument "
                        f"{', '.join(missing)}")

    binder = _Binder(fname)
    out: list = [None] * len(params)
    # scalars first: their values also fix the sizes they name
    for k, (p, v) in enumerate(zip(params, values)):
        if p in func.buffer_map:
            continue
        label = f"argument {k + 1} ({p.name})"
        out[k] = _scalar(p, v, label)
        if is_integer(p.dtype):
            binder.env[p] = out[k]
            binder.source[p] = f"argument {p.name}"
    for k, (p, v) in enumerate(zip(params, values)):
        buf = func.buffer_map.get(p)
        if buf is None:
            continue
        label = f"argument {k + 1} ({buf.name})"
        out[k] = _array(buf, v, label, binder, buf in written)
    binder.settle()
    # the values of the remaining signature variables (sizes not given as parameters)
    extras = []
    for v in extra_vars:
        if v not in binder.env:
            raise ValueError(f"{fname}: cannot work out the size variable {v.name} from the arguments")
        val = binder.env[v]
        lo, hi = B.dtype_range(v.dtype)
        if not lo <= val <= hi:
            raise ValueError(f"{fname}: {v.name} = {val} does not fit in {v.dtype}")
        extras.append(val)
    return out + extras


class _Missing:
    pass


_MISSING = _Missing()


def _scalar(p: Var, v, label: str):
    dt = p.dtype
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if is_bool(dt):
        if isinstance(v, (bool, np.bool_)) or (isinstance(v, numbers.Integral) and v in (0, 1)):
            return bool(v)
        raise TypeError(f"{label}: expected a bool, got {type(v).__name__} {v!r}")
    if is_integer(dt):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{label}: expected an integer ({dt}), got {type(v).__name__} {v!r}")
        lo, hi = B.dtype_range(dt)
        if not lo <= int(v) <= hi:
            raise ValueError(f"{label}: {int(v)} does not fit in {dt} [{lo}, {hi}]")
        return int(v)
    if is_float(dt):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating)):
            raise TypeError(f"{label}: expected a number ({dt}), got {type(v).__name__} {v!r}")
        return to_numpy(dt).type(v)
    raise TypeError(f"{label}: the interpreter cannot pass a parameter of dtype {dt}")


def _array(buf, a, label: str, binder: _Binder, written: bool):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{label}: expected a numpy array of shape {shape_text(buf.shape)} and dtype "
                        f"{buf.dtype}, got {type(a).__name__}")
    want = to_numpy(buf.dtype)
    if a.dtype != want:
        try:
            got = from_numpy(a.dtype)
        except Exception:
            got = str(a.dtype)
        if a.dtype.byteorder not in ("=", "|") and a.dtype.newbyteorder("=") == want:
            got = f"{a.dtype.str} (non-native byte order)"
        raise TypeError(f"{label}: expected dtype {buf.dtype}, got {got}")
    if a.ndim != len(buf.shape):
        raise ValueError(f"{label}: expected {len(buf.shape)} dimension(s), shape {shape_text(buf.shape)}, "
                         f"got {a.ndim}, shape {tuple(a.shape)}")
    for k, (d, actual) in enumerate(zip(buf.shape, a.shape)):
        if isinstance(d, E.IntImm):
            if d.value != actual:
                raise ValueError(f"{label}: expected shape {shape_text(buf.shape)}, got {tuple(a.shape)}")
        else:
            binder.bind(d, int(actual), f"{buf.name}.shape[{k}]", label)
    if buf.strides:
        item = a.dtype.itemsize
        if any(s % item for s in a.strides):
            raise ValueError(f"{label}: the array's strides {a.strides} (bytes) are not whole elements")
        elems = tuple(s // item for s in a.strides)
        for k, (st, actual) in enumerate(zip(buf.strides, elems)):
            if isinstance(st, E.IntImm):
                if st.value != actual and a.shape[k] > 1:
                    raise ValueError(f"{label}: expected strides {shape_text(buf.strides)} (in elements), "
                                     f"got {elems}")
            else:
                binder.bind(st, actual, f"{buf.name}.strides[{k}] (in elements)", label)
    off = buf.elem_offset
    if isinstance(off, E.IntImm):
        if off.value != 0:
            raise ValueError(f"{label}: the buffer declares elem_offset={off.value}, but a numpy array "
                             f"starts at its first element (elem_offset 0)")
    else:
        binder.bind(off, 0, f"{buf.name}.elem_offset (a numpy array starts at its first element)", label)
    if written and not a.flags.writeable:
        raise ValueError(f"{label}: the array is read-only, but {buf.name} is written by the function")
    return a


__all__ = ["bind_arguments", "describe", "shape_text", "eval_int"]
