"""Compile a PrimFunc into Python source that runs it on numpy arrays.

The generated code is a plain Python function with nested ``for`` loops: loop and
index arithmetic on Python ints, value arithmetic on numpy scalars of the value's
dtype (so float32 math rounds like float32), buffer accesses as numpy indexing.
Integer results are wrapped to their dtype unless interval analysis proves they
cannot overflow; buffer indices are bounds-checked unless it proves them in range.

>>> from workbench.ir.interpreter.codegen import compile_func   # doctest: +SKIP
>>> print(compile_func(f).source)                                # doctest: +SKIP
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .. import expr as E
from .. import stmt as S
from ..buffer import Buffer
from ..dtype import (bits_of, element_of, is_bool, is_float, is_integer, is_uint, lanes_of, to_numpy)
from ..expr import PrimExpr, Var
from . import bounds as B
from . import runtime as rt

#: loops nested deeper than this go into a separate generated function
#: (CPython refuses more than 20 statically nested blocks)
_MAX_LOOP_DEPTH = 14
_MAX_INDENT = 60
#: expressions nested deeper than this are compiled into a separate function
#: (CPython refuses more than 200 nested parentheses)
_MAX_EXPR_DEPTH = 24


class CompileError(ValueError):
    """The program cannot be run: a variable or buffer is used but never defined, ..."""


@dataclass
class BufInfo:
    """How generated code reaches a buffer: the local holding its array, its extents."""

    buffer: Buffer
    arr: str                       # Python name of the numpy array
    dims: list                     # per dimension: (code, interval or None, IR expr)
    offset: str = "0"              # code of the runtime elem_offset
    npdt: np.dtype = None          # type: ignore[assignment]


@dataclass
class VarInfo:
    name: str
    iv: tuple | None = None        # interval (integers)
    ub: object = None              # an IR expression E with value < E (strict), when known


@dataclass
class CompiledFunc:
    """The result of compiling one PrimFunc."""

    source: str
    fn: object                     # the Python function
    entry_params: list = field(default_factory=list)   # Vars, in the order fn takes them
    written: set = field(default_factory=set)          # buffers the function stores to


def _ident(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return s if s and not s[0].isdigit() else "_" + s


class _Func:
    def __init__(self, name: str, params: list[str]):
        self.name = name
        self.params = params
        self.lines: list[str] = []


class Compiler:
    def __init__(self, func):
        self.func = func
        self.ns: dict = {"np": np, "_rt": rt, "__builtins__": __builtins__}
        self.counter = 0
        self.vars: dict = {}        # Var -> VarInfo
        self.bufs: dict = {}        # Buffer -> BufInfo
        self.live: list[str] = []   # locals of the current function in scope (for outlining)
        self.funcs: list[_Func] = []
        self.cur: _Func | None = None
        self.indent = 0
        self.loop_depth = 0
        self._const_cache: dict = {}
        self.depth = 0
        self.stores: set = set()         # buffers stored to
        self.matches: list = []          # (match buffer, source buffer)

    # -- naming -------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{_ident(hint)}_{self.counter}"

    def const(self, value, hint: str = "k") -> str:
        """A module-level name holding ``value`` (numpy scalars, IR nodes for messages)."""
        self.counter += 1
        name = f"_{hint}{self.counter}"
        self.ns[name] = value
        return name

    def float_const(self, value: float, dtype: str) -> str:
        key = (dtype, float(value).hex())
        if key not in self._const_cache:
            self._const_cache[key] = self.const(to_numpy(dtype).type(value), "c")
        return self._const_cache[key]

    def helper(self, key: str, factory) -> str:
        """A module-level helper function, made once per key."""
        name = "_h_" + _ident(key)
        if name not in self.ns:
            self.ns[name] = factory()
        return name

    def temp(self) -> str:
        self.counter += 1
        return f"_t{self.counter}"

    # -- emission -----------------------------------------------------------
    def emit(self, line: str) -> None:
        self.cur.lines.append("    " * self.indent + line)

    def define(self, name: str) -> str:
        self.live.append(name)
        return name

    def snapshot(self):
        return dict(self.vars), dict(self.bufs), len(self.live)

    def restore(self, snap) -> None:
        self.vars, self.bufs = snap[0], snap[1]
        del self.live[snap[2]:]

    # -- entry ----------------------------------------------------------------
    def compile(self) -> CompiledFunc:
        func = self.func
        params: list[str] = []
        entry: list[Var] = []
        for p in func.params:
            if p in func.buffer_map:
                buf = func.buffer_map[p]
                name = self.define(self.fresh(buf.name))
                self.bufs[buf] = BufInfo(buf, name, [], "0", to_numpy(buf.dtype))
            else:
                name = self.define(self.fresh(p.name))
                self.vars[p] = VarInfo(name, B.dtype_range(p.dtype) if is_integer(p.dtype) else None)
            params.append(name)
            entry.append(p)
        # free size variables of the parameter buffers (n in shape (n, 16), strides, offsets)
        for v in signature_vars(func):
            if v in self.vars:
                continue
            name = self.define(self.fresh(v.name))
            lo, hi = B.dtype_range(v.dtype)
            self.vars[v] = VarInfo(name, (0, hi))     # sizes, strides, offsets are never negative
            params.append(name)
            entry.append(v)
        main = _Func("_run", params)
        self.funcs.append(main)
        self.cur = main
        self.indent = 1
        for p in func.params:
            if p in func.buffer_map:
                buf = func.buffer_map[p]
                info = self.bufs[buf]
                info.dims = self.dims_of(buf)
                if isinstance(buf.elem_offset, Var):
                    info.offset = self.vars[buf.elem_offset].name if buf.elem_offset in self.vars else "0"
        self.stmt(func.body)
        return self.finish(entry)

    def finish(self, entry) -> CompiledFunc:
        out: list[str] = []
        for f in self.funcs:
            out.append(f"def {f.name}({', '.join(f.params)}):")
            out.extend(f.lines or ["    pass"])
            out.append("")
        source = "\n".join(out)
        code = compile(source, f"<interpreter of {self.func.name}>", "exec")
        exec(code, self.ns)
        written = set(self.stores)
        changed = True
        while changed:   # a store through a match_buffer view writes its source
            changed = False
            for view, src in self.matches:
                if view in written and src not in written:
                    written.add(src)
                    changed = True
        return CompiledFunc(source, self.ns["_run"], entry, written)

    def dims_of(self, buf: Buffer) -> list:
        dims = []
        for d in buf.shape:
            code, iv = self.expr(d)
            if not isinstance(d, E.IntImm) and not re.fullmatch(r"\w+", code):
                name = self.define(self.fresh(f"{buf.name}_dim"))
                self.emit(f"{name} = {code}")
                code = name
            dims.append((code, iv, d))
        return dims

    # ===================================================================
    # statements
    def stmt(self, s) -> None:
        method = getattr(self, "s_" + type(s).__name__, None)
        if method is None:
            raise CompileError(f"the interpreter does not know the statement {type(s).__name__}")
        method(s)

    def body(self, s) -> None:
        """Compile ``s`` one level deeper (a suite); never leaves the suite empty."""
        self.indent += 1
        n = len(self.cur.lines)
        snap = self.snapshot()
        self.stmt(s)
        self.restore(snap)
        if len(self.cur.lines) == n:
            self.emit("pass")
        self.indent -= 1

    def s_SeqStmt(self, s: S.SeqStmt) -> None:
        for x in s.seq:
            self.stmt(x)

    def s_Evaluate(self, s: S.Evaluate) -> None:
        if isinstance(s.value, (E.IntImm, E.FloatImm, E.StringImm)):
            return
        self.emit(self.expr(s.value)[0])

    def s_AssertStmt(self, s: S.AssertStmt) -> None:
        c = self.expr(s.condition)[0]
        self.emit(f"if not {c}: _rt.assert_fail({self.const(s, 'n')})")
        self.stmt(s.body)

    def s_IfThenElse(self, s: S.IfThenElse) -> None:
        c = self.expr(s.condition)[0]
        self.emit(f"if {c}:")
        self.body(s.then_case)
        if s.else_case is not None:
            self.emit("else:")
            self.body(s.else_case)

    def s_LetStmt(self, s: S.LetStmt) -> None:
        code, iv = self.expr(s.value)
        name = self.define(self.fresh(s.var.name))
        self.emit(f"{name} = {code}")
        self.vars[s.var] = VarInfo(name, iv)
        self.stmt(s.body)

    def s_Allocate(self, s: S.Allocate) -> None:
        self.allocate(s.buffer)
        self.stmt(s.body)

    def s_BufferStore(self, s: S.BufferStore) -> None:
        info = self.buf(s.buffer)
        self.stores.add(s.buffer)
        value = self.expr(s.value)[0]
        idx = self.indices(s, info)
        self.emit(f"{info.arr}[{idx}] = {value}")

    def s_For(self, s: S.For) -> None:
        if self.loop_depth >= _MAX_LOOP_DEPTH or self.indent >= _MAX_INDENT:
            return self.outline(s)
        mcode, miv = self.expr(s.min)
        ecode, eiv = self.expr(s.extent)
        if isinstance(s.min, E.IntImm) and isinstance(s.extent, E.IntImm):
            rng = f"range({s.min.value}, {s.min.value + s.extent.value})"
        elif isinstance(s.min, E.IntImm) and s.min.value == 0:
            rng = f"range({ecode})"
        else:
            if not re.fullmatch(r"\w+", mcode):
                t = self.define(self.fresh("start"))
                self.emit(f"{t} = {mcode}")
                mcode = t
            rng = f"range({mcode}, {mcode} + {ecode})"
        name = self.fresh(s.loop_var.name)
        full = B.dtype_range(s.loop_var.dtype)
        iv = B.intersect((miv[0], miv[1] + max(eiv[1], 1) - 1), full) if miv and eiv else full
        ub = s.extent if isinstance(s.min, E.IntImm) and s.min.value == 0 else None
        snap = self.snapshot()
        self.define(name)
        self.vars[s.loop_var] = VarInfo(name, iv, ub)
        self.emit(f"for {name} in {rng}:")
        self.loop_depth += 1
        self.body(s.body)
        self.loop_depth -= 1
        self.restore(snap)

    def outline(self, s) -> None:
        """Move ``s`` into a new generated function taking every local in scope."""
        params = list(dict.fromkeys(self.live))
        f = _Func(self.fresh("_nest"), params)
        self.emit(f"{f.name}({', '.join(params)})")
        saved = (self.cur, self.indent, self.loop_depth)
        self.funcs.append(f)
        self.cur, self.indent, self.loop_depth = f, 1, 0
        snap = self.snapshot()
        self.stmt(s)
        self.restore(snap)
        if not f.lines:
            self.emit("pass")
        self.cur, self.indent, self.loop_depth = saved

    def s_BlockRealize(self, s: S.BlockRealize) -> None:
        block = s.block
        pred = s.predicate
        guarded = not (isinstance(pred, E.IntImm) and pred.value)
        if guarded:
            if isinstance(pred, E.IntImm):  # constant false: the block never runs
                return
            self.emit(f"if {self.expr(pred)[0]}:")
            self.indent += 1
        snap = self.snapshot()
        n = len(self.cur.lines)
        self.block(block, s.iter_values)
        if len(self.cur.lines) == n:
            self.emit("pass")
        self.restore(snap)
        if guarded:
            self.indent -= 1

    def s_Block(self, s: S.Block) -> None:   # a bare block (no realize): no iteration variables bound
        snap = self.snapshot()
        self.block(s, ())
        self.restore(snap)

    def block(self, block: S.Block, values) -> None:
        kblock = None
        if len(values) != len(block.iter_vars):
            raise CompileError(f"block {block.name} has {len(block.iter_vars)} iteration variables "
                               f"but {len(values)} bindings")
        # evaluate every binding before any iteration variable is visible
        bound = []
        for k, (iv, value) in enumerate(zip(block.iter_vars, values)):
            code, viv = self.expr(value)
            lo_code, lo_iv = self.expr(iv.dom.min)
            ext_code, ext_iv = self.expr(iv.dom.extent)
            dom_iv = (lo_iv[0], lo_iv[1] + ext_iv[1] - 1) if lo_iv and ext_iv else None
            static_ok = (viv is not None and lo_iv is not None and ext_iv is not None
                         and viv[0] >= lo_iv[1] and viv[1] <= lo_iv[0] + ext_iv[0] - 1)
            if not static_ok and isinstance(iv.dom.min, E.IntImm) and iv.dom.min.value == 0:
                # a loop over range(n) bound to an iteration variable of domain [0, n)
                static_ok = viv is not None and viv[0] >= 0 and self._below(value, iv.dom.extent)
            if isinstance(value, Var) and re.fullmatch(r"\w+", code) and static_ok:
                name = code
            else:
                name = self.fresh(iv.var.name)
                self.emit(f"{name} = {code}")
                if not static_ok:
                    if kblock is None:
                        kblock = self.const(block, "blk")
                    if isinstance(iv.dom.min, E.IntImm) and isinstance(iv.dom.extent, E.IntImm):
                        hi_code = str(iv.dom.min.value + iv.dom.extent.value)
                    elif isinstance(iv.dom.min, E.IntImm) and iv.dom.min.value == 0:
                        hi_code = ext_code
                    else:
                        hi_code = f"{lo_code} + {ext_code}"
                    self.emit(f"if not ({lo_code} <= {name} < {hi_code}): "
                              f"_rt.iter_out_of_domain({kblock}, {k}, {name}, {lo_code}, {hi_code})")
            niv = viv
            if viv is not None and dom_iv is not None:
                niv = B.intersect(viv, dom_iv)
            ub = iv.dom.extent if isinstance(iv.dom.min, E.IntImm) and iv.dom.min.value == 0 else None
            if ub is None and isinstance(value, Var) and value in self.vars:
                ub = self.vars[value].ub
            bound.append((iv.var, VarInfo(name, niv, ub)))
        for var, info in bound:
            self.define(info.name)
            self.vars[var] = info
        for m in block.match_buffers:
            self.match_buffer(m)
        for buf in block.alloc_buffers:
            self.allocate(buf)
        if block.init is not None:
            conds = []
            for iv in block.iter_vars:
                if iv.iter_type == S.IterType.REDUCE:
                    conds.append(f"{self.vars[iv.var].name} == {self.expr(iv.dom.min)[0]}")
            if conds:
                self.emit(f"if {' and '.join(conds)}:")
                self.body(block.init)
            else:
                snap = self.snapshot()
                self.stmt(block.init)
                self.restore(snap)
        self.stmt(block.body)

    # -- buffers --------------------------------------------------------------
    def buf(self, buffer: Buffer) -> BufInfo:
        info = self.bufs.get(buffer)
        if info is None:
            raise CompileError(
                f"buffer {buffer.name} is used but never allocated: it is not a parameter, "
                f"an alloc_buffer of an enclosing block, a match_buffer or an Allocate")
        return info

    def allocate(self, buf: Buffer) -> None:
        npdt = to_numpy(buf.dtype)
        if lanes_of(buf.dtype) != 1:
            raise CompileError(f"buffer {buf.name}: vector element dtype {buf.dtype} is not supported")
        dims = self.dims_of(buf)
        kdt = self.const(npdt, "dt")
        kb = self.const(buf, "buf")
        name = self.define(self.fresh(buf.name))
        shape = "(" + "".join(f"{d[0]}, " for d in dims) + ")"
        if buf.strides:
            strides = "(" + "".join(f"{self.expr(x)[0]}, " for x in buf.strides) + ")"
            off = self.expr(buf.elem_offset)[0]
            self.emit(f"{name} = _rt.alloc_strided({shape}, {strides}, {off}, {kdt}, {kb})")
        else:
            self.emit(f"{name} = _rt.alloc({shape}, {kdt}, {kb})")
        offset = self.expr(buf.elem_offset)[0] if isinstance(buf.elem_offset, E.IntImm) or \
            buf.elem_offset in self.vars else "0"
        self.bufs[buf] = BufInfo(buf, name, dims, offset, npdt)

    def match_buffer(self, m: S.MatchBufferRegion) -> None:
        buf = m.buffer
        src = self.buf(m.source.buffer)
        self.matches.append((buf, m.source.buffer))
        mins = [self.expr(r.min)[0] for r in m.source.region]
        exts = [self.expr(r.extent)[0] for r in m.source.region]
        km = self.const(m, "m")
        view, off, strides = self.fresh(buf.name), self.fresh(buf.name + "_off"), self.fresh(buf.name + "_st")
        tup = lambda xs: "(" + "".join(f"{x}, " for x in xs) + ")"  # noqa: E731
        self.emit(f"{view}, {off}, {strides} = _rt.match_view({src.arr}, {src.offset}, {tup(mins)}, "
                  f"{tup(exts)}, {len(buf.shape)}, {km})")
        for n in (view, off, strides):
            self.define(n)

        def bind(e, actual: str, what: str):
            if isinstance(e, Var) and e not in self.vars:
                self.define(self.fresh(e.name))
                name = self.live[-1]
                self.emit(f"{name} = {actual}")
                self.vars[e] = VarInfo(name, (0, B.dtype_range(e.dtype)[1]) if what != "elem_offset"
                                       else B.dtype_range(e.dtype))
            else:
                code = self.expr(e)[0]
                self.emit(f"if {code} != {actual}: _rt.match_mismatch({km}, {what!r}, {code}, {actual})")

        for k, d in enumerate(buf.shape):
            bind(d, f"{view}.shape[{k}]", f"dimension {k}")
        for k, st in enumerate(buf.strides):
            bind(st, f"{strides}[{k}]", f"stride {k}")
        if isinstance(buf.elem_offset, Var):
            bind(buf.elem_offset, off, "elem_offset")
        dims = [(self.vars[d].name if isinstance(d, Var) else self.expr(d)[0],
                 self.vars[d].iv if isinstance(d, Var) else self.expr(d)[1], d) for d in buf.shape]
        self.bufs[buf] = BufInfo(buf, view, dims, off, to_numpy(buf.dtype))

    def indices(self, node, info: BufInfo) -> str:
        """The subscript of an access, each index bounds-checked unless provably in range."""
        if not node.indices:
            return "()"
        knode = None
        parts = []
        for k, (ix, dim) in enumerate(zip(node.indices, info.dims)):
            dcode, div, dexpr = dim
            if lanes_of(ix.dtype) > 1:
                code = self.vexpr(ix)
                if knode is None:
                    knode = self.const(node, "n")
                parts.append(f"_rt.vcheck({code}, {dcode}, {knode}, {k})")
                continue
            code, iv = self.expr(ix)
            low_ok = iv is not None and iv[0] >= 0
            high_ok = (iv is not None and div is not None and iv[1] < div[0]) or self._below(ix, dexpr)
            if low_ok and high_ok:
                parts.append(code)
                continue
            if knode is None:
                knode = self.const(node, "n")
            t = self.temp()
            if low_ok:
                test = f"({t} := {code}) < {dcode}"
            elif high_ok:
                test = f"({t} := {code}) >= 0"
            else:
                test = f"0 <= ({t} := {code}) < {dcode}"
            parts.append(f"({t} if {test} else _rt.oob({knode}, {k}, {t}, {dcode}))")
        return ", ".join(parts) + ("," if len(parts) == 1 else "")

    def _below(self, ix, dim) -> bool:
        """``ix < dim`` is known symbolically (``ix`` a loop over ``range(dim)``)."""
        if not isinstance(ix, Var) or ix not in self.vars:
            return False
        ub = self.vars[ix].ub
        if ub is None:
            return False
        if ub is dim:
            return True
        return isinstance(ub, E.IntImm) and isinstance(dim, E.IntImm) and ub.value <= dim.value

    # ===================================================================
    # expressions: (code, interval); interval only for scalar integers
    def expr(self, e) -> tuple:
        if not isinstance(e, PrimExpr):
            e = E.convert(e)
        if self.depth >= _MAX_EXPR_DEPTH:
            return self.outline_expr(e)
        self.depth += 1
        try:
            if lanes_of(e.dtype) > 1:
                return self.vexpr(e), None
            method = getattr(self, "e_" + type(e).__name__, None)
            if method is None:
                raise CompileError(f"the interpreter does not know the expression {type(e).__name__}")
            return method(e)
        finally:
            self.depth -= 1

    def outline_expr(self, e) -> tuple:
        """Compile a deep sub-expression as a function of every name in scope.

        CPython refuses more than 200 nested parentheses in one expression; a call
        starts the count afresh. The call is evaluated where the expression was, so
        laziness (``if_then_else``, ``and``/``or``) is unchanged.
        """
        names = list(self.live) + [v.name for v in self.vars.values()]
        for b in self.bufs.values():
            names += [b.arr, b.offset] + [d[0] for d in b.dims]
        params = [n for n in dict.fromkeys(names) if n.isidentifier()]
        f = _Func(self.fresh("_expr"), params)
        saved = self.depth
        self.depth = 0
        code, iv = self.expr(e)
        self.depth = saved
        f.lines.append(f"    return {code}")
        self.funcs.append(f)
        return f"{f.name}({', '.join(params)})", iv

    def wrap(self, code: str, raw, dtype: str) -> tuple:
        """``code`` wrapped to ``dtype`` unless ``raw`` (its interval) already fits."""
        if B.fits(raw, dtype):
            return code, raw
        lo, hi = B.dtype_range(dtype)
        w = self.helper("wrap_" + dtype, lambda: rt.make_wrap(dtype))
        t = self.temp()
        return f"({t} if {lo} <= ({t} := {code}) <= {hi} else {w}({t}))", (lo, hi)

    def e_IntImm(self, e):
        if is_bool(e.dtype):
            return ("True" if e.value else "False"), (e.value, e.value)
        return (str(e.value) if e.value >= 0 else f"({e.value})"), (e.value, e.value)

    def e_FloatImm(self, e):
        return self.float_const(e.value, e.dtype), None

    def e_StringImm(self, e):
        return repr(e.value), None

    def e_Var(self, e):
        info = self.vars.get(e)
        if info is None:
            raise CompileError(
                f"variable {e.name} is used but never defined: it is not a parameter, a size in a "
                f"parameter's shape, a loop variable, a block iteration variable or a let")
        iv = info.iv
        if iv is None and is_integer(e.dtype):
            iv = B.dtype_range(e.dtype)
        return info.name, iv

    def _int_binop(self, e, op: str, ivfn):
        a, aiv = self.expr(e.a)
        b, biv = self.expr(e.b)
        raw = ivfn(aiv, biv) if aiv is not None and biv is not None else None
        return self.wrap(f"({a} {op} {b})", raw, e.dtype)

    def _float_binop(self, e, op: str):
        return f"({self.expr(e.a)[0]} {op} {self.expr(e.b)[0]})", None

    def _check_numeric(self, e):
        if is_bool(e.dtype):
            raise CompileError(f"arithmetic `{type(e).__name__}` on bool values is not defined")

    def e_Add(self, e):
        self._check_numeric(e)
        return self._int_binop(e, "+", B.add) if is_integer(e.dtype) else self._float_binop(e, "+")

    def e_Sub(self, e):
        self._check_numeric(e)
        return self._int_binop(e, "-", B.sub) if is_integer(e.dtype) else self._float_binop(e, "-")

    def e_Mul(self, e):
        self._check_numeric(e)
        return self._int_binop(e, "*", B.mul) if is_integer(e.dtype) else self._float_binop(e, "*")

    def e_Div(self, e):
        self._check_numeric(e)
        if not is_integer(e.dtype):
            return self._float_binop(e, "/")
        a, aiv = self.expr(e.a)
        b, biv = self.expr(e.b)
        if B.nonneg(aiv) and B.nonneg(biv):
            return f"({a} // {b})", B.floordiv(aiv, biv) or aiv
        return self.wrap(f"_rt.tdiv({a}, {b})", None, e.dtype)

    def e_Mod(self, e):
        self._check_numeric(e)
        a, aiv = self.expr(e.a)
        b, biv = self.expr(e.b)
        if not is_integer(e.dtype):
            return f"np.fmod({a}, {b})", None
        if B.nonneg(aiv) and B.nonneg(biv):
            return f"({a} % {b})", B.floormod(aiv, biv) or aiv
        return f"_rt.tmod({a}, {b})", B.dtype_range(e.dtype)

    def e_FloorDiv(self, e):
        self._check_numeric(e)
        a, aiv = self.expr(e.a)
        b, biv = self.expr(e.b)
        if not is_integer(e.dtype):
            return f"_rt.ffloordiv({a}, {b})", None
        raw = B.floordiv(aiv, biv) if aiv and biv else None
        return self.wrap(f"({a} // {b})", raw, e.dtype)

    def e_FloorMod(self, e):
        self._check_numeric(e)
        a, aiv = self.expr(e.a)
        b, biv = self.expr(e.b)
        if not is_integer(e.dtype):
            return f"_rt.ffloormod({a}, {b})", None
        iv = B.floormod(aiv, biv) if aiv and biv else None
        return f"({a} % {b})", iv or B.dtype_range(e.dtype)

    def e_Min(self, e):
        a, aiv = self.expr(e.a)
        b, biv = self.expr(e.b)
        if is_float(e.dtype):
            return f"_rt.fmin({a}, {b})", None
        iv = B.minimum(aiv, biv) if aiv and biv else None
        return f"min({a}, {b})", iv

    def e_Max(self, e):
        a, aiv = self.expr(e.a)
        b, biv = self.expr(e.b)
        if is_float(e.dtype):
            return f"_rt.fmax({a}, {b})", None
        iv = B.maximum(aiv, biv) if aiv and biv else None
        return f"max({a}, {b})", iv

    def _cmp(self, e, op):
        return f"({self.expr(e.a)[0]} {op} {self.expr(e.b)[0]})", (0, 1)

    def e_EQ(self, e):
        return self._cmp(e, "==")

    def e_NE(self, e):
        return self._cmp(e, "!=")

    def e_LT(self, e):
        return self._cmp(e, "<")

    def e_LE(self, e):
        return self._cmp(e, "<=")

    def e_GT(self, e):
        return self._cmp(e, ">")

    def e_GE(self, e):
        return self._cmp(e, ">=")

    def e_And(self, e):
        return f"({self.expr(e.a)[0]} and {self.expr(e.b)[0]})", (0, 1)

    def e_Or(self, e):
        return f"({self.expr(e.a)[0]} or {self.expr(e.b)[0]})", (0, 1)

    def e_Not(self, e):
        return f"(not {self.expr(e.a)[0]})", (0, 1)

    def e_Select(self, e):
        c = self.expr(e.condition)[0]
        t, tiv = self.expr(e.true_value)
        f, fiv = self.expr(e.false_value)
        return f"_rt.select({c}, {t}, {f})", (B.union(tiv, fiv) if tiv and fiv else None)

    def e_Let(self, e):
        v, viv = self.expr(e.value)
        name = self.fresh(e.var.name)
        snap = self.snapshot()
        self.vars[e.var] = VarInfo(name, viv)
        body, biv = self.expr(e.body)
        self.restore(snap)
        return f"(({name} := {v}), {body})[1]", biv

    def e_Ramp(self, e):   # lanes == 1
        return self.expr(e.base)

    def e_Broadcast(self, e):   # lanes == 1
        return self.expr(e.value)

    def e_Cast(self, e):
        src, dst = e.value.dtype, e.dtype
        a, aiv = self.expr(e.value)
        if is_bool(dst):
            return f"({a} != 0)", (0, 1)
        if is_integer(dst):
            if is_integer(src):
                return self.wrap(a, aiv, dst)
            if is_bool(src):
                return f"int({a})", (0, 1)
            if is_float(src):
                f = self.helper("f2i_" + dst, lambda: rt.make_f2i(dst))
                return f"{f}({a})", B.dtype_range(dst)
        if is_float(dst):
            t = self.helper("type_" + dst, lambda: to_numpy(dst).type)
            if is_integer(src) and bits_of(src) > 32:
                f = self.helper("i2f_" + dst, lambda: rt.make_i2f(dst))
                return f"{f}({a})", None
            if is_integer(src) or is_bool(src) or is_float(src):
                return f"{t}({a})", None
        return f"_rt.unsupported_cast({src!r}, {dst!r})", None

    def e_BufferLoad(self, e):
        info = self.buf(e.buffer)
        idx = self.indices(e, info)
        if is_float(e.buffer.dtype):
            return f"{info.arr}[{idx}]", None
        if not e.indices:
            return f"{info.arr}.item()", (B.dtype_range(e.dtype) if is_integer(e.dtype) else (0, 1))
        return f"{info.arr}.item({idx})", (B.dtype_range(e.dtype) if is_integer(e.dtype) else (0, 1))

    def e_Call(self, e):
        op, dt = e.op, e.dtype
        if op == "if_then_else":
            c = self.expr(e.args[0])[0]
            t, tiv = self.expr(e.args[1])
            f, fiv = self.expr(e.args[2])
            return f"({t} if {c} else {f})", (B.union(tiv, fiv) if tiv and fiv else None)
        args = [self.expr(a) for a in e.args]
        codes = [a[0] for a in args]
        a0 = codes[0] if codes else None
        aiv = args[0][1] if args else None
        if op in rt.MATH and is_float(dt):
            f = self.helper(f"m_{op}_{dt}", lambda: rt.make_math(op, dt))
            return f"{f}({', '.join(codes)})", None
        if op in rt.EXACT and is_float(dt):
            return f"np.{rt.EXACT[op].__name__}({', '.join(codes)})", None
        if op == "fma" and is_float(dt):
            f = self.helper(f"fma_{dt}", lambda: rt.make_fma(dt))
            return f"{f}({', '.join(codes)})", None
        if op == "abs":
            if is_float(dt):
                return f"abs({a0})", None
            if is_uint(dt):
                return a0, aiv
            raw = (0, max(abs(aiv[0]), abs(aiv[1]))) if aiv else None
            if aiv and aiv[0] >= 0:
                raw = aiv
            return self.wrap(f"abs({a0})", raw, dt)
        if op == "isnan" and not lanes_of(dt) > 1:
            return f"({a0} != {a0})", (0, 1)
        if op in ("isinf", "isfinite"):
            return f"_rt.{op}({a0})", (0, 1)
        if is_integer(dt) or (op in ("bitwise_and", "bitwise_or", "bitwise_xor") and is_bool(dt)):
            full = B.dtype_range(dt)
            if op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
                sym = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^"}[op]
                iv = full
                if op == "bitwise_and" and (B.nonneg(aiv) or B.nonneg(args[1][1])):
                    his = [x[1] for x in (aiv, args[1][1]) if B.nonneg(x)]
                    iv = (0, min(his))
                return f"({codes[0]} {sym} {codes[1]})", iv
            if op == "bitwise_not":
                if is_uint(dt):
                    return f"({a0} ^ {full[1]})", full
                return f"(~{a0})", full
            if op == "shift_left":
                return self.wrap(f"({codes[0]} << {codes[1]})", None, dt)
            if op == "shift_right":
                return f"({codes[0]} >> {codes[1]})", (aiv if B.nonneg(aiv) else full)
            if op == "popcount":
                return f"_rt.popcount({a0}, {bits_of(dt)})", (0, bits_of(dt))
        return f"_rt.unsupported_call({self.const(e, 'n')})", None

    # ===================================================================
    # vector expressions: code evaluating to a 1-d numpy array of the lanes
    def vexpr(self, e) -> str:
        method = getattr(self, "v_" + type(e).__name__, None)
        if method is None:
            raise CompileError(f"the interpreter does not support the vector expression {type(e).__name__}")
        return method(e)

    def _vops(self, e):
        return self.expr(e.a)[0], self.expr(e.b)[0]

    def npdt(self, dtype: str) -> str:
        return self.helper("npdt_" + element_of(dtype), lambda: to_numpy(element_of(dtype)))

    def v_Var(self, e):
        return self.e_Var(e)[0]

    def v_Ramp(self, e):
        return f"_rt.ramp({self.expr(e.base)[0]}, {self.expr(e.stride)[0]}, {e.lanes}, {self.npdt(e.dtype)})"

    def v_Broadcast(self, e):
        return f"_rt.broadcast({self.expr(e.value)[0]}, {e.lanes}, {self.npdt(e.dtype)})"

    def v_Add(self, e):
        a, b = self._vops(e)
        return f"({a} + {b})"

    def v_Sub(self, e):
        a, b = self._vops(e)
        return f"({a} - {b})"

    def v_Mul(self, e):
        a, b = self._vops(e)
        return f"({a} * {b})"

    def v_Div(self, e):
        a, b = self._vops(e)
        return f"_rt.vtdiv({a}, {b})" if is_integer(e.dtype) else f"({a} / {b})"

    def v_Mod(self, e):
        a, b = self._vops(e)
        return f"np.fmod({a}, {b})"

    def v_FloorDiv(self, e):
        a, b = self._vops(e)
        return f"({a} // {b})" if is_integer(e.dtype) else f"np.floor({a} / {b})"

    def v_FloorMod(self, e):
        a, b = self._vops(e)
        return f"({a} % {b})" if is_integer(e.dtype) else f"_rt.ffloormod({a}, {b})"

    def v_Min(self, e):
        a, b = self._vops(e)
        return f"np.minimum({a}, {b})"

    def v_Max(self, e):
        a, b = self._vops(e)
        return f"np.maximum({a}, {b})"

    def _vcmp(self, e, op):
        a, b = self._vops(e)
        return f"np.asarray({a} {op} {b})"

    def v_EQ(self, e):
        return self._vcmp(e, "==")

    def v_NE(self, e):
        return self._vcmp(e, "!=")

    def v_LT(self, e):
        return self._vcmp(e, "<")

    def v_LE(self, e):
        return self._vcmp(e, "<=")

    def v_GT(self, e):
        return self._vcmp(e, ">")

    def v_GE(self, e):
        return self._vcmp(e, ">=")

    def v_And(self, e):
        a, b = self._vops(e)
        return f"({a} & {b})"

    def v_Or(self, e):
        a, b = self._vops(e)
        return f"({a} | {b})"

    def v_Not(self, e):
        return f"(~{self.expr(e.a)[0]})"

    def v_Select(self, e):
        c = self.expr(e.condition)[0]
        return f"np.where({c}, {self.expr(e.true_value)[0]}, {self.expr(e.false_value)[0]})"

    def v_Cast(self, e):
        return f"_rt.vcast({self.expr(e.value)[0]}, {self.npdt(e.dtype)})"

    def v_Let(self, e):
        return self.e_Let(e)[0]

    def v_BufferLoad(self, e):
        info = self.buf(e.buffer)
        return f"{info.arr}[{self.indices(e, info)}]"

    def v_Call(self, e):
        op, dt = e.op, e.dtype
        if op == "if_then_else":
            c = self.expr(e.args[0])[0]
            t = self.expr(e.args[1])[0]
            f = self.expr(e.args[2])[0]
            if lanes_of(e.args[0].dtype) == 1:
                return f"({t} if {c} else {f})"
            return f"_rt.vif_then_else({c}, lambda: {t}, lambda: {f})"
        codes = [self.expr(a)[0] for a in e.args]
        el = element_of(dt)
        if op in rt.MATH and is_float(el):
            f = self.helper(f"vm_{op}_{el}", lambda: rt.make_vmath(op, el))
            return f"{f}({', '.join(codes)})"
        if op in rt.EXACT:
            return f"np.{rt.EXACT[op].__name__}({', '.join(codes)})"
        if op == "fma":
            return f"_rt.vfma({', '.join(codes)})"
        simple = {"abs": "np.abs", "isnan": "np.isnan", "isinf": "np.isinf", "isfinite": "np.isfinite",
                  "bitwise_and": "np.bitwise_and", "bitwise_or": "np.bitwise_or",
                  "bitwise_xor": "np.bitwise_xor", "bitwise_not": "np.invert",
                  "shift_left": "np.left_shift", "shift_right": "np.right_shift"}
        if op in simple:
            return f"{simple[op]}({', '.join(codes)})"
        if op == "popcount":
            return f"np.bitwise_count({codes[0]}).astype({self.npdt(dt)})"
        return f"_rt.unsupported_call({self.const(e, 'n')})"


def signature_vars(func) -> list[Var]:
    """Free variables of the parameter buffers (shapes, strides, elem_offset), in order of appearance."""
    out: list[Var] = []
    seen: set = {id(p) for p in func.params}
    for p in func.params:
        buf = func.buffer_map.get(p)
        if buf is None:
            continue
        for e in list(buf.shape) + list(buf.strides) + [buf.elem_offset]:
            for v in _vars_in(e):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
    return out


def _vars_in(e) -> list[Var]:
    out: list[Var] = []

    def walk(x):
        if isinstance(x, Var):
            out.append(x)
        elif isinstance(x, PrimExpr):
            for _, v in x.children():
                if isinstance(v, PrimExpr):
                    walk(v)
                elif isinstance(v, tuple):
                    for y in v:
                        if isinstance(y, PrimExpr):
                            walk(y)
    if isinstance(e, PrimExpr):
        walk(e)
    return out


def compile_func(func) -> CompiledFunc:
    """Compile ``func`` to a Python function (see the module docstring)."""
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))  # deep expressions (long unrolled sums) recurse deeply
    try:
        return Compiler(func).compile()
    finally:
        sys.setrecursionlimit(limit)


__all__ = ["compile_func", "CompiledFunc", "CompileError", "signature_vars"]
