"""LLVM IR generation (through ``llvmlite.ir``) from lowered, flat PrimFuncs.

Each PrimFunc becomes ``i32 @name(ptr %buffers, ptr %scalars, ptr %err)``:
``buffers`` is an array of data pointers (the buffer parameters in order),
``scalars`` an array of 64-bit slots with the values of the size variables and
scalar parameters, ``err`` a small record the code fills when a run-time check
fails (it then returns a nonzero code). Parallel loops become functions of
their own, ``i32 @name_par<k>(i64 begin, i64 end, ptr %closure)``, launched
through the function pointer ``@__wb_launch`` that the runtime provides.

Value representation: ``bool`` is ``i1`` in registers and one byte in memory;
``bfloat16`` is kept in ``float`` registers (rounded to bfloat16 precision,
round-to-nearest-even, after each operation) and stored as ``i16``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import llvmlite.ir as ir

from ...ir import expr as E
from ...ir.dtype import bits_of, element_of, is_bool, is_float, is_uint, lanes_of
from ...ir.function import PrimFunc
from ...ir.functor import Visitor, collect_vars, post_order_visit
from ...ir.stmt import (Allocate, AssertStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt,
                        SeqStmt, Stmt)
from ..lower.allocate import ALIGN, storage_of
from ..lower.bound_check import PREFIX as BOUNDS_PREFIX
from .vector_math import VECTOR_MATH_OPS, VectorMath, is_float32_vector

I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
ENTRY_TYPE = ir.FunctionType(I32, [PTR, PTR, PTR])
PAR_TYPE = ir.FunctionType(I32, [I64, I64, PTR])
LAUNCH_TYPE = ir.FunctionType(I32, [PTR, PTR, I64])
FAST = ("contract",)

# err record (int64 slots): [0] code, [1] message id, [2] offending value, [3] extent
ERR_SLOTS = 4


class CodegenError(NotImplementedError):
    """A construct the LLVM backend cannot compile."""


def value_type(dtype: str) -> ir.Type:
    """LLVM type of a value in registers."""
    e, n = element_of(dtype), lanes_of(dtype)
    if e == "bool":
        t = I1
    elif e == "bfloat16" or e == "float32":
        t = F32
    elif e == "float16":
        t = F16
    elif e == "float64":
        t = F64
    elif e == "handle":
        t = PTR
    else:
        t = ir.IntType(bits_of(e))
    return t if n == 1 else ir.VectorType(t, n)


def mem_type(dtype: str) -> ir.Type:
    """LLVM type of an element in memory (bool: i8, bfloat16: i16)."""
    e = element_of(dtype)
    if e == "bool":
        return I8
    if e == "bfloat16":
        return I16
    return value_type(e)


def _elem_bytes(dtype: str) -> int:
    e = element_of(dtype)
    return 1 if e == "bool" else bits_of(e) // 8


def _bf16_round_const(x: float) -> float:
    import numpy as np

    from ...ir.dtype import to_numpy

    return float(np.array(x, dtype=np.float32).astype(to_numpy("bfloat16")).astype(np.float32))


LIBM_UNARY = {"erf", "tanh", "log1p", "tan", "asin", "acos", "atan", "sinh", "cosh"}
LIBM_BINARY = {"atan2", "hypot"}
LLVM_UNARY = {"exp": "llvm.exp", "exp2": "llvm.exp2", "exp10": "llvm.exp10", "log": "llvm.log",
              "log2": "llvm.log2", "log10": "llvm.log10", "sqrt": "llvm.sqrt", "sin": "llvm.sin",
              "cos": "llvm.cos", "floor": "llvm.floor", "ceil": "llvm.ceil", "round": "llvm.roundeven",
              "trunc": "llvm.trunc", "nearbyint": "llvm.nearbyint"}
LLVM_BINARY = {"pow": "llvm.pow", "copysign": "llvm.copysign"}
#: every INTRINSICS op that code generation handles (tests check that this covers them all)
SUPPORTED_INTRINSICS = (set(LIBM_UNARY) | LIBM_BINARY | set(LLVM_UNARY) | set(LLVM_BINARY) |
                        {"rsqrt", "sigmoid", "fma", "fmod", "abs", "isnan", "isinf", "isfinite",
                         "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "shift_left",
                         "shift_right", "popcount", "if_then_else"})


#: C math functions a program may call through ``wb.call_extern`` without an opt-in: libm functions of
#: numbers only (no pointer arguments, no side effects besides errno), in float and double forms
_MATH_NAMES = ("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "sqrt", "cbrt", "sin", "cos",
               "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
               "erf", "erfc", "tgamma", "lgamma", "hypot", "fabs", "floor", "ceil", "round", "trunc",
               "nearbyint", "rint", "fmod", "remainder", "copysign", "fmin", "fmax", "fdim", "fma", "ldexp",
               "scalbn")
MATH_EXTERNS = frozenset(_MATH_NAMES) | frozenset(n + "f" for n in _MATH_NAMES)


class ExternCallError(ValueError):
    """A ``wb.call_extern`` of a C function the build was not allowed to call."""


def extern_allowlist(names) -> frozenset:
    """The opt-in set of C function names (``wb.build(..., allow_extern={"memset"})``), checked.

    >>> sorted(extern_allowlist(["memset", "puts"]))
    ['memset', 'puts']
    """
    if isinstance(names, str):
        raise TypeError(f"allow_extern takes a set of C function names, e.g. allow_extern={{{names!r}}}, "
                        f"not the string {names!r}")
    out = frozenset(names)
    bad = sorted(repr(n) for n in out if not isinstance(n, str) or not n.isidentifier())
    if bad:
        raise ValueError(f"allow_extern: {', '.join(bad)} is not the name of a C function")
    return out


def ascii_symbol(name: str) -> str:
    """``name`` as a plain ASCII symbol: characters other than ``[A-Za-z0-9_.]`` become ``_uXXXX``.

    >>> ascii_symbol("matmul_é"), ascii_symbol("add_one")
    ('matmul__u00e9', 'add_one')
    """
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else f"_u{ord(c):04x}" for c in name)


def _suffix(t: ir.Type) -> str:
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_suffix(t.element)}"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    return {"half": "f16", "float": "f32", "double": "f64"}[str(t)]


@dataclass
class FuncInfo:
    """What the runtime needs to call a generated function."""

    name: str
    symbol: str
    messages: list = field(default_factory=list)
    parallel_fns: list = field(default_factory=list)


class _Buffers(Visitor):
    def __init__(self):
        self.found: dict[int, object] = {}

    def visit_BufferLoad(self, e):
        self.found[id(e.buffer)] = e.buffer
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self.found[id(s.buffer)] = s.buffer
        self.generic_visit(s)

    def visit_Allocate(self, a):
        self.found[id(a.buffer)] = a.buffer
        self.generic_visit(a)

    def visit_Buffer(self, b):  # shapes of buffers are not accesses
        pass


class _FnState:
    def __init__(self, fn: ir.Function, err):
        self.fn = fn
        self.entry = fn.append_basic_block("entry")
        self.body_start = fn.append_basic_block("start")
        self.builder = ir.IRBuilder(self.body_start)
        self.env: dict[int, ir.Value] = {}
        self.bufs: dict[int, ir.Value] = {}
        self.heap: list[ir.Value] = []
        self.err = err
        #: id of each address computed into a buffer -> (the address, the buffer)
        self.addresses: dict[int, tuple[ir.Value, object]] = {}
        #: ids of the buffers whose data pointer is ``ALIGN``-aligned (the allocations)
        self.aligned: set[int] = set()


class ModuleCodegen:
    """Builds one LLVM module holding several functions.

    >>> cg = ModuleCodegen("m")            # doctest: +SKIP
    >>> info = cg.add_function(lowered_func, "main", vars_order)   # doctest: +SKIP
    """

    def __init__(self, name: str = "workbench", triple: str = "", allow_extern=frozenset()):
        #: C functions besides MATH_EXTERNS that ``wb.call_extern`` may call (an explicit opt-in)
        self.allow_extern = extern_allowlist(allow_extern)
        self.module = ir.Module(name)
        if triple:
            self.module.triple = triple
        self.launch = ir.GlobalVariable(self.module, PTR, "__wb_launch")
        self.launch.initializer = ir.Constant(PTR, None)
        self.launch.linkage = "internal" if False else ""
        self._decls: dict[str, ir.Function] = {}
        self._strings = 0
        self._loop_ids = 0
        self._alias_domain: ir.MDValue | None = None
        self._alias_scopes: dict[int, ir.MDValue] = {}
        #: a ``debug_locations.DebugLocations`` that attaches ``!dbg`` locations to each statement's code (off: None)
        self.debug_locations = None

    # declarations ---------------------------------------------------------
    def declare(self, name: str, ret: ir.Type, args: list) -> ir.Function:
        fn = self._decls.get(name)
        if fn is None:
            existing = self.module.globals.get(name)
            fn = existing if existing is not None else ir.Function(self.module, ir.FunctionType(ret, args), name)
            self._decls[name] = fn
        return fn

    def intrinsic(self, base: str, t: ir.Type, nargs: int = 1) -> ir.Function:
        return self.declare(f"{base}.{_suffix(t)}", t, [t] * nargs)

    def extern(self, name: str, caller: str, ret: ir.Type, args: list) -> ir.Function:
        """Declare the C function ``name`` called by ``wb.call_extern`` in ``caller``, if it is allowed."""
        if name not in MATH_EXTERNS and name not in self.allow_extern:
            raise ExternCallError(
                f"{caller}: wb.call_extern calls the C function {name!r}, which is not an allowed math "
                f"function (such as expf, tanhf, erff, powf); calling other functions of the process "
                f"needs an explicit opt-in when building: allow_extern={{{name!r}}}")
        return self.declare(name, ret, args)

    def no_vectorize_loop_id(self) -> ir.MDValue:
        """A new loop ID (``!llvm.loop``) that turns LLVM's loop vectorizer off for one loop."""
        m = self.module
        off = m.add_metadata([ir.MetaDataString(m, "llvm.loop.vectorize.enable"), ir.Constant(ir.IntType(1), 0)])
        self._loop_ids += 1
        node = m.add_metadata([ir.MetaDataString(m, f"wb.loop.{self._loop_ids}"), off])
        node.operands = (node, off)  # a loop ID refers to itself, which also keeps it distinct
        return node

    def alias_scope(self, buf) -> ir.MDValue:
        """The alias scope (``!alias.scope``) of the memory of ``buf``, one per buffer of the module.

        Distinct buffers never overlap: parameters because the call boundary refuses overlapping
        arguments when either is written (``BuiltFunction._check_overlap``), allocations because
        each is its own ``alloca`` or ``aligned_alloc``.
        """
        m = self.module
        if self._alias_domain is None:
            self._alias_domain = m.add_metadata([ir.MetaDataString(m, "wb.buffers")])
        scope = self._alias_scopes.get(id(buf))
        if scope is None:  # named by a string unique in the module (a domain or scope is its name)
            name = f"wb.buffer.{len(self._alias_scopes)}.{ascii_symbol(buf.name)}"
            scope = m.add_metadata([ir.MetaDataString(m, name), self._alias_domain])
            self._alias_scopes[id(buf)] = scope
        return scope

    def symbol(self, name: str) -> str:
        """A new ASCII symbol for ``name`` that no function of the module and no C function it may call
        uses (so ``wb.call_extern("float32", "erff", x)`` never lands in a tensor program named ``erff``)."""
        base = ascii_symbol(name)
        sym, k = base, 0
        while sym in self.module.globals or sym in MATH_EXTERNS or sym in self.allow_extern:
            k += 1
            sym = f"{base}_{k}"
        return sym

    # functions -------------------------------------------------------------
    def add_function(self, func: PrimFunc, symbol: str, var_order: list, buf_params: list) -> FuncInfo:
        """Generate ``symbol`` for a lowered function.

        ``var_order``: the Vars whose values arrive in the scalars array (in order);
        ``buf_params``: the flat buffers whose data pointers arrive in the buffers array.
        """
        symbol = self.symbol(symbol)
        info = FuncInfo(func.name, symbol)
        fn = ir.Function(self.module, ENTRY_TYPE, symbol)
        bufs_arg, scal_arg, err_arg = fn.args
        for a in fn.args:
            a.add_attribute("noalias")
        st = _FnState(fn, err_arg)
        b = st.builder
        for k, buf in enumerate(buf_params):
            p = b.load(b.gep(bufs_arg, [ir.Constant(I64, k)], source_etype=PTR), typ=PTR)
            st.bufs[id(buf)] = p
        for k, v in enumerate(var_order):
            slot = b.gep(scal_arg, [ir.Constant(I64, k)], source_etype=I64)
            raw = b.load(slot, typ=I64)
            st.env[id(v)] = self._from_slot(b, raw, v.dtype)
        gen = _FuncGen(self, st, info, symbol)
        gen.stmt(func.body)
        gen.finish(ir.Constant(I32, 0))
        return info

    @staticmethod
    def _from_slot(b, raw, dtype):
        t = value_type(dtype)
        if isinstance(t, ir.IntType):
            return raw if t.width == 64 else b.trunc(raw, t)
        if t == F64:
            return b.bitcast(raw, F64)
        if t in (F32, F16):
            return b.fptrunc(b.bitcast(raw, F64), t)
        raise CodegenError(f"a scalar parameter of dtype {dtype} is not supported")

    def text(self) -> str:
        return str(self.module)


_DIV_MOD = (E.FloorDiv, E.FloorMod, E.Div, E.Mod)


def stores_through_div_or_mod(var, body) -> bool:
    """True when ``body`` stores at an index that divides (``//``, ``%``, ``/``) an expression of ``var``.

    LLVM 22's loop vectorizer miscompiles such loops: for ``out[(f % 4) * 4] = max(out[(f % 4) * 4], ...)``
    over ``f`` it widens the access to a stride-4 interleaved group, as if ``f % 4`` were ``f``, and
    loses the dependence between iterations ``f`` and ``f + 4`` (reproducer:
    ``tests/backend/data/max_pool2d_loop_vectorizer.ll``). Code generation turns the vectorizer off
    for these loops; the schedule's own ``vectorize`` is unaffected.
    """
    found = False

    def divides_var(e) -> bool:
        hit = False

        def visit(n):
            nonlocal hit
            if isinstance(n, _DIV_MOD) and any(v is var for v in collect_vars(n)):
                hit = True

        post_order_visit(e, visit)
        return hit

    def visit_store(n):
        nonlocal found
        if isinstance(n, BufferStore) and not found:
            found = any(divides_var(i) for i in n.indices)

    post_order_visit(body, visit_store)
    return found


class _FuncGen:
    """Statement and expression generation inside one LLVM function."""

    def __init__(self, cg: ModuleCodegen, st: _FnState, info: FuncInfo, symbol: str):
        self.cg, self.st, self.info, self.symbol = cg, st, info, symbol

    @property
    def b(self) -> ir.IRBuilder:
        return self.st.builder

    def finish(self, ret):
        st = self.st
        if not self.b.block.is_terminated:
            self.b.ret(ret)
        eb = ir.IRBuilder(st.entry)
        eb.branch(st.body_start)
        self._mark_buffer_accesses()

    def _mark_buffer_accesses(self) -> None:
        """Tell LLVM that the function's buffers do not overlap: each load and store of a buffer gets
        the buffer's scope (``!alias.scope``) and the scopes of the function's other buffers
        (``!noalias``). Without it, a store into one buffer (an accumulator) forces every load of
        another (a packed operand) to be redone after it, and the accumulator to stay in memory."""
        addresses = self.st.addresses
        bufs = {id(buf): buf for _, buf in addresses.values()}
        if len(bufs) < 2:
            return
        cg = self.cg
        scopes = {bid: cg.alias_scope(buf) for bid, buf in bufs.items()}
        own = {bid: cg.module.add_metadata([scopes[bid]]) for bid in scopes}
        others = {bid: cg.module.add_metadata([s for o, s in scopes.items() if o != bid]) for bid in scopes}
        for block in self.st.fn.blocks:
            for ins in block.instructions:
                if isinstance(ins, ir.LoadInstr):
                    ptr = ins.operands[0]
                elif isinstance(ins, ir.StoreInstr):
                    ptr = ins.operands[1]
                else:
                    continue
                hit = addresses.get(id(ptr))
                if hit is not None and hit[0] is ptr:
                    ins.set_metadata("alias.scope", own[id(hit[1])])
                    ins.set_metadata("noalias", others[id(hit[1])])

    # helpers ----------------------------------------------------------------
    def alloca(self, t: ir.Type, count=None, align=None):
        """An alloca in the entry block (so loops do not grow the stack)."""
        eb = ir.IRBuilder(self.st.entry)
        if self.st.entry.instructions:
            eb.position_before(self.st.entry.instructions[0])
        a = eb.alloca(t, size=count)
        if align:
            a.align = align
        a.type = PTR  # an opaque pointer (llvmlite would otherwise track a typed one)
        return a

    def new_block(self, name: str):
        return self.st.fn.append_basic_block(name)

    def fail(self, code: int, msg_id: int, value=None, extent=None):
        """Record an error and return from the function (freeing heap buffers in scope)."""
        b = self.b
        err = self.st.err
        vals = [ir.Constant(I64, code), ir.Constant(I64, msg_id), value or ir.Constant(I64, 0),
                extent or ir.Constant(I64, 0)]
        for k, v in enumerate(vals):
            b.store(v, b.gep(err, [ir.Constant(I64, k)], source_etype=I64))
        for p in reversed(self.st.heap):
            b.call(self.cg.declare("free", ir.VoidType(), [PTR]), [p])
        b.ret(ir.Constant(I32, code))

    # statements ---------------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        m = getattr(self, "s_" + type(s).__name__, None)
        if m is None:
            raise CodegenError(f"the LLVM backend cannot compile a {type(s).__name__} statement; "
                               "was the function lowered (blocks removed)?")
        if self.cg.debug_locations is None:
            m(s)
            return
        with self.cg.debug_locations.at(s, self.st.fn, self.b):
            m(s)

    def s_SeqStmt(self, s: SeqStmt):
        for x in s.seq:
            self.stmt(x)

    def s_BufferStore(self, s: BufferStore):
        val = self.expr(s.value)
        self.store(s.buffer, s.indices[0], val)

    def s_LetStmt(self, s: LetStmt):
        self.st.env[id(s.var)] = self.expr(s.value)
        self.stmt(s.body)

    def s_Evaluate(self, s: Evaluate):
        self.expr(s.value)

    def s_IfThenElse(self, s: IfThenElse):
        c = self.expr(s.condition)
        if isinstance(c.type, ir.VectorType):
            raise CodegenError("an `if` statement needs a scalar condition")
        then_bb = self.new_block("if.then")
        end_bb = self.new_block("if.end")
        else_bb = self.new_block("if.else") if s.else_case is not None else end_bb
        self.b.cbranch(c, then_bb, else_bb)
        self.b.position_at_end(then_bb)
        self.stmt(s.then_case)
        if not self.b.block.is_terminated:
            self.b.branch(end_bb)
        if s.else_case is not None:
            self.b.position_at_end(else_bb)
            self.stmt(s.else_case)
            if not self.b.block.is_terminated:
                self.b.branch(end_bb)
        self.b.position_at_end(end_bb)

    def s_AssertStmt(self, s: AssertStmt):
        c = s.condition
        value = extent = None
        cv = self.expr(c)
        if isinstance(cv.type, ir.VectorType):
            ok = self.b.call(self.cg.declare(f"llvm.vector.reduce.and.{_suffix(cv.type)}", I1, [cv.type]), [cv])
        else:
            ok = cv
        fail_bb, cont_bb = self.new_block("assert.fail"), self.new_block("assert.ok")
        self.b.cbranch(ok, cont_bb, fail_bb)
        self.b.position_at_end(fail_bb)
        if s.message.startswith(BOUNDS_PREFIX) and isinstance(c, E.And) and isinstance(c.b, E.LT):
            x, ext = c.b.a, c.b.b
            xv, ev = self.expr(x), self.expr(ext)
            if isinstance(xv.type, ir.VectorType):
                lane = self._first_false_lane(cv)
                xv, ev = self.b.extract_element(xv, lane), self.b.extract_element(ev, lane)
            value, extent = self._to_i64(xv, x.dtype), self._to_i64(ev, ext.dtype)
        self.info.messages.append(s.message)
        self.fail(1, len(self.info.messages) - 1, value, extent)
        self.b.position_at_end(cont_bb)
        self.stmt(s.body)

    def _first_false_lane(self, cond):
        """The index (i32) of the first lane of an ``<n x i1>`` that is false (n when none is)."""
        b, n = self.b, cond.type.count
        bits = b.bitcast(b.not_(cond), ir.IntType(n))
        cttz = self.cg.declare(f"llvm.cttz.i{n}", ir.IntType(n), [ir.IntType(n), I1])
        lane = b.call(cttz, [bits, ir.Constant(I1, 0)])
        return lane if n == 32 else (b.zext(lane, I32) if n < 32 else b.trunc(lane, I32))

    def _to_i64(self, v, dtype):
        if v.type == I64:
            return v
        return self.b.zext(v, I64) if is_uint(dtype) or is_bool(dtype) else self.b.sext(v, I64)

    def s_Allocate(self, s: Allocate):
        buf = s.buffer
        mt = mem_type(buf.dtype)
        if storage_of(buf) == "stack":
            n = E.as_int(buf.shape[0])
            p = self.alloca(ir.ArrayType(mt, max(1, n)), align=max(ALIGN, buf.align))
            self.st.bufs[id(buf)] = p
            self.st.aligned.add(id(buf))
            self.stmt(s.body)
            return
        b = self.b
        count = self.expr(buf.shape[0])
        count = self._to_i64(count, buf.shape[0].dtype)
        nbytes = b.mul(count, ir.Constant(I64, _elem_bytes(buf.dtype)))
        nbytes = b.and_(b.add(nbytes, ir.Constant(I64, ALIGN - 1 + ALIGN)), ir.Constant(I64, ~(ALIGN - 1)))
        p = b.call(self.cg.declare("aligned_alloc", PTR, [I64, I64]), [ir.Constant(I64, ALIGN), nbytes])
        isnull = b.icmp_unsigned("==", p, ir.Constant(PTR, None))
        fail_bb, ok_bb = self.new_block("alloc.fail"), self.new_block("alloc.ok")
        b.cbranch(isnull, fail_bb, ok_bb)
        b.position_at_end(fail_bb)
        self.info.messages.append(f"alloc:{buf.name}")
        self.fail(2, len(self.info.messages) - 1, nbytes)
        b.position_at_end(ok_bb)
        self.st.bufs[id(buf)] = p
        self.st.aligned.add(id(buf))
        self.st.heap.append(p)
        self.stmt(s.body)
        self.st.heap.pop()
        if not self.b.block.is_terminated:
            self.b.call(self.cg.declare("free", ir.VoidType(), [PTR]), [p])

    def s_For(self, s: For):
        if s.kind == ForKind.PARALLEL:
            return self.parallel_for(s)
        lo = self.expr(s.min)
        ext = self.expr(s.extent)
        hi = self.b.add(lo, ext) if not (isinstance(s.min, E.IntImm) and s.min.value == 0) else ext
        self.loop(s.loop_var, lo, hi, lambda: self.stmt(s.body),
                  auto_vectorize=not stores_through_div_or_mod(s.loop_var, s.body))

    def loop(self, var, lo, hi, body_fn, signed=True, auto_vectorize=True):
        b = self.b
        pre = b.block
        head, body_bb, end = self.new_block("for.head"), self.new_block("for.body"), self.new_block("for.end")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(lo.type, name=var.name)
        i.add_incoming(lo, pre)
        cond = b.icmp_signed("<", i, hi) if signed and not is_uint(var.dtype) else b.icmp_unsigned("<", i, hi)
        b.cbranch(cond, body_bb, end)
        b.position_at_end(body_bb)
        self.st.env[id(var)] = i
        body_fn()
        if not b.block.is_terminated:
            nxt = b.add(i, ir.Constant(lo.type, 1), flags=("nsw",) if not is_uint(var.dtype) else ())
            i.add_incoming(nxt, b.block)
            latch = b.branch(head)
            if not auto_vectorize:
                latch.set_metadata("llvm.loop", self.cg.no_vectorize_loop_id())
        b.position_at_end(end)

    def parallel_for(self, s: For):
        """Outline the loop body into its own function and launch it through the runtime."""
        cg = self.cg
        k = len(self.info.parallel_fns)
        pname = cg.symbol(f"{self.symbol}_par{k}")
        self.info.parallel_fns.append(pname)
        # what the body uses from the enclosing scope
        used_vars = {id(v) for v in collect_vars(s.body)} | {id(v) for v in collect_vars(s.min)}
        cap_vars = [(vid, val) for vid, val in self.st.env.items() if vid in used_vars and vid != id(s.loop_var)]
        bv = _Buffers()
        bv.visit(s.body)
        cap_bufs = [(bid, self.st.bufs[bid]) for bid in bv.found if bid in self.st.bufs]
        fields = [val for _, val in cap_vars] + [p for _, p in cap_bufs] + [self.st.err]
        stype = ir.LiteralStructType([f.type for f in fields])
        clo = self.alloca(stype)
        b = self.b
        for j, f in enumerate(fields):
            b.store(f, b.gep(clo, [ir.Constant(I32, 0), ir.Constant(I32, j)], source_etype=stype))
        ext = self.expr(s.extent)
        ext64 = self._to_i64(ext, s.extent.dtype)
        # the outlined function
        pfn = ir.Function(cg.module, PAR_TYPE, pname)
        pfn.args[2].add_attribute("noalias")
        inner = _FnState(pfn, None)
        ib = inner.builder
        loaded = [ib.load(ib.gep(pfn.args[2], [ir.Constant(I32, 0), ir.Constant(I32, j)], source_etype=stype),
                          typ=f.type) for j, f in enumerate(fields)]
        for (vid, _), v in zip(cap_vars, loaded):
            inner.env[vid] = v
        for (bid, _), v in zip(cap_bufs, loaded[len(cap_vars):]):
            inner.bufs[bid] = v
            if bid in self.st.aligned:  # an allocation: tell LLVM its alignment, known outside only
                v.set_metadata("align", cg.module.add_metadata([ir.Constant(I64, ALIGN)]))
                inner.aligned.add(bid)
        inner.err = loaded[-1]
        g = _FuncGen(cg, inner, self.info, pname)
        vt = value_type(s.loop_var.dtype)
        begin, end = pfn.args[0], pfn.args[1]
        if vt.width != 64:
            begin, end = ib.trunc(begin, vt), ib.trunc(end, vt)
        lo = g.expr(s.min)
        if not (isinstance(s.min, E.IntImm) and s.min.value == 0):
            begin, end = ib.add(begin, lo), ib.add(end, lo)
        g.loop(s.loop_var, begin, end, lambda: g.stmt(s.body))
        g.finish(ir.Constant(I32, 0))
        # launch
        launch = b.load(cg.launch, typ=PTR)
        rc = b.call(launch, [pfn, clo, ext64], cconv=None) if False else b.call(
            _as_callee(launch, LAUNCH_TYPE), [pfn, clo, ext64])
        bad = b.icmp_signed("!=", rc, ir.Constant(I32, 0))
        fail_bb, ok_bb = self.new_block("par.fail"), self.new_block("par.ok")
        b.cbranch(bad, fail_bb, ok_bb)
        b.position_at_end(fail_bb)
        for p in reversed(self.st.heap):
            b.call(cg.declare("free", ir.VoidType(), [PTR]), [p])
        b.ret(rc)
        b.position_at_end(ok_bb)

    # memory -----------------------------------------------------------------
    def _addr(self, buf, idx_val):
        p = self.st.bufs.get(id(buf))
        if p is None:
            raise CodegenError(f"buffer {buf.name} is used but neither a parameter nor allocated")
        if idx_val.type != I64:
            idx_val = self.b.sext(idx_val, I64)
        addr = self.b.gep(p, [idx_val], inbounds=True, source_etype=mem_type(buf.dtype))
        self.st.addresses[id(addr)] = (addr, buf)
        return addr

    def _from_mem(self, v, dtype):
        e = element_of(dtype)
        b = self.b
        if e == "bool":
            z = ir.Constant(v.type, None)
            return b.icmp_unsigned("!=", v, z)
        if e == "bfloat16":
            n = v.type.count if isinstance(v.type, ir.VectorType) else 1
            i32 = I32 if n == 1 else ir.VectorType(I32, n)
            x = b.shl(b.zext(v, i32), self._splat(ir.Constant(I32, 16), n))
            return b.bitcast(x, F32 if n == 1 else ir.VectorType(F32, n))
        return v

    def _to_mem(self, v, dtype):
        e = element_of(dtype)
        b = self.b
        n = v.type.count if isinstance(v.type, ir.VectorType) else 1
        if e == "bool":
            return b.zext(v, I8 if n == 1 else ir.VectorType(I8, n))
        if e == "bfloat16":
            bits = self._bf16_bits(v, n)
            return b.trunc(bits, I16 if n == 1 else ir.VectorType(I16, n))
        return v

    def _splat(self, c, n):
        if n == 1:
            return c
        return ir.Constant(ir.VectorType(c.type, n), [c.constant] * n)

    def _bf16_bits(self, v, n):
        """float -> bfloat16 bits (in the high half of an i32 shifted down), round to nearest even."""
        b = self.b
        i32 = I32 if n == 1 else ir.VectorType(I32, n)
        x = b.bitcast(v, i32)
        lsb = b.and_(b.lshr(x, self._splat(ir.Constant(I32, 16), n)), self._splat(ir.Constant(I32, 1), n))
        r = b.add(b.add(x, self._splat(ir.Constant(I32, 0x7FFF), n)), lsb)
        r = b.lshr(r, self._splat(ir.Constant(I32, 16), n))
        isnan = b.fcmp_unordered("uno", v, v)
        nan = self._splat(ir.Constant(I32, 0x7FC0), n)
        return b.select(isnan, nan, r)

    def _bf16_round(self, v):
        """Round a float (vector) to bfloat16 precision, staying a float."""
        n = v.type.count if isinstance(v.type, ir.VectorType) else 1
        b = self.b
        bits = self._bf16_bits(v, n)
        return b.bitcast(b.shl(bits, self._splat(ir.Constant(I32, 16), n)), v.type)

    def load(self, buf, index: E.PrimExpr, dtype: str):
        b = self.b
        mt = mem_type(buf.dtype)
        n = lanes_of(index.dtype)
        align = _elem_bytes(buf.dtype)
        if n == 1:
            v = b.load(self._addr(buf, self.expr(index)), typ=mt, align=align)
            return self._from_mem(v, buf.dtype)
        if isinstance(index, E.Ramp) and isinstance(index.stride, E.IntImm) and index.stride.value == 1:
            v = b.load(self._addr(buf, self.expr(index.base)), typ=ir.VectorType(mt, n), align=align)
            return self._from_mem(v, dtype)
        if isinstance(index, E.Broadcast):
            s = self._from_mem(b.load(self._addr(buf, self.expr(index.value)), typ=mt, align=align), buf.dtype)
            return self.splat_value(s, n)
        iv = self.expr(index)  # gather, one lane at a time
        out = ir.Constant(ir.VectorType(mt, n), None)
        for k in range(n):
            ik = b.extract_element(iv, ir.Constant(I32, k))
            out = b.insert_element(out, b.load(self._addr(buf, ik), typ=mt, align=align), ir.Constant(I32, k))
        return self._from_mem(out, dtype)

    def store(self, buf, index: E.PrimExpr, val):
        b = self.b
        mv = self._to_mem(val, buf.dtype)
        n = lanes_of(index.dtype)
        align = _elem_bytes(buf.dtype)
        if n == 1:
            b.store(mv, self._addr(buf, self.expr(index)), align=align)
            return
        if isinstance(index, E.Ramp) and isinstance(index.stride, E.IntImm) and index.stride.value == 1:
            b.store(mv, self._addr(buf, self.expr(index.base)), align=align)
            return
        iv = self.expr(index)  # scatter, lanes in order (the last lane wins on collisions)
        for k in range(n):
            ck = ir.Constant(I32, k)
            b.store(b.extract_element(mv, ck), self._addr(buf, b.extract_element(iv, ck)), align=align)

    def splat_value(self, s, n):
        b = self.b
        vt = ir.VectorType(s.type, n)
        v = b.insert_element(ir.Constant(vt, None), s, ir.Constant(I32, 0))
        return b.shuffle_vector(v, ir.Constant(vt, None), ir.Constant(ir.VectorType(I32, n), [0] * n))

    # expressions ----------------------------------------------------------------
    def expr(self, e: E.PrimExpr) -> ir.Value:
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            raise CodegenError(f"the LLVM backend cannot compile the expression `{e}` ({type(e).__name__})")
        return m(e)

    def e_Var(self, e: E.Var):
        v = self.st.env.get(id(e))
        if v is None:
            raise CodegenError(f"the variable {e.name} is used but never bound (not a loop variable, a let, "
                               "a size of a buffer parameter or a scalar parameter)")
        return v

    def e_IntImm(self, e: E.IntImm):
        return ir.Constant(value_type(e.dtype), e.value)

    def e_FloatImm(self, e: E.FloatImm):
        v = e.value
        if e.dtype == "bfloat16":
            v = _bf16_round_const(v)
        return ir.Constant(value_type(e.dtype), v)

    def e_Broadcast(self, e: E.Broadcast):
        return self.splat_value(self.expr(e.value), e.lanes)

    def e_Ramp(self, e: E.Ramp):
        t = value_type(e.base.dtype)
        base = self.splat_value(self.expr(e.base), e.lanes)
        stride = self.splat_value(self.expr(e.stride), e.lanes)
        steps = ir.Constant(ir.VectorType(t, e.lanes), list(range(e.lanes)))
        return self.b.add(base, self.b.mul(stride, steps))

    def e_BufferLoad(self, e: E.BufferLoad):
        return self.load(e.buffer, e.indices[0], e.dtype)

    def e_Let(self, e: E.Let):
        self.st.env[id(e.var)] = self.expr(e.value)
        return self.expr(e.body)

    def _bf(self, dtype, v):
        return self._bf16_round(v) if element_of(dtype) == "bfloat16" else v

    def _arith(self, e, iop, fop, uop=None):
        a, c = self.expr(e.a), self.expr(e.b)
        if is_float(e.dtype):
            return self._bf(e.dtype, getattr(self.b, fop)(a, c, flags=FAST))
        op = uop if (uop and is_uint(e.dtype)) else iop
        if op in ("sdiv", "srem", "udiv", "urem"):
            return self._safe_div(op, a, c, e.b)
        return getattr(self.b, op)(a, c)

    def _safe_div(self, op, a, c, c_expr):
        """Integer division without traps: ``x / 0`` gives 0 and ``INT_MIN / -1`` wraps, as in numpy."""
        b = self.b
        k = c_expr.value if isinstance(c_expr, E.IntImm) else (
            c_expr.value.value if isinstance(c_expr, E.Broadcast) and isinstance(c_expr.value, E.IntImm) else None)
        signed = op[0] == "s"
        if k is not None and k != 0 and not (signed and k == -1):
            return getattr(b, op)(a, c)
        zero, one = ir.Constant(a.type, None), self._iconst(a.type, 1)
        is0 = b.icmp_unsigned("==", c, zero)
        bad = is0
        if signed:
            ism1 = b.icmp_signed("==", c, self._iconst(a.type, -1))
            bad = b.or_(is0, ism1)
        q = getattr(b, op)(a, b.select(bad, one, c))
        if signed:
            q = b.select(ism1, b.neg(a) if op == "sdiv" else zero, q)
        return b.select(is0, zero, q)

    def _iconst(self, t, v):
        if isinstance(t, ir.VectorType):
            return ir.Constant(t, [v] * t.count)
        return ir.Constant(t, v)

    def e_Add(self, e):
        return self._arith(e, "add", "fadd")

    def e_Sub(self, e):
        return self._arith(e, "sub", "fsub")

    def e_Mul(self, e):
        return self._arith(e, "mul", "fmul")

    def e_Div(self, e):
        return self._arith(e, "sdiv", "fdiv", "udiv")

    def e_Mod(self, e):
        return self._arith(e, "srem", "frem", "urem")

    def e_FloorDiv(self, e):
        b = self.b
        a, c = self.expr(e.a), self.expr(e.b)
        if is_float(e.dtype):
            q = b.fdiv(a, c)
            return self._bf(e.dtype, b.call(self.cg.intrinsic("llvm.floor", q.type), [q]))
        if is_uint(e.dtype):
            return self._safe_div("udiv", a, c, e.b)
        q, r = self._safe_div("sdiv", a, c, e.b), self._safe_div("srem", a, c, e.b)
        zero = ir.Constant(a.type, None)
        adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, c), zero))
        return b.sub(q, b.zext(adjust, a.type))

    def e_FloorMod(self, e):
        b = self.b
        a, c = self.expr(e.a), self.expr(e.b)
        if is_float(e.dtype):
            q = b.call(self.cg.intrinsic("llvm.floor", a.type), [b.fdiv(a, c)])
            return self._bf(e.dtype, b.fsub(a, b.fmul(q, c)))
        if is_uint(e.dtype):
            return self._safe_div("urem", a, c, e.b)
        r = self._safe_div("srem", a, c, e.b)
        zero = ir.Constant(a.type, None)
        adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, c), zero))
        return b.add(r, b.select(adjust, c, zero))

    def _minmax(self, e, op):
        a, c = self.expr(e.a), self.expr(e.b)
        b = self.b
        if is_float(e.dtype):
            cond = b.fcmp_ordered(op, a, c)
        elif is_uint(e.dtype) or is_bool(e.dtype):
            cond = b.icmp_unsigned(op, a, c)
        else:
            cond = b.icmp_signed(op, a, c)
        return b.select(cond, a, c)

    def e_Min(self, e):
        return self._minmax(e, "<")

    def e_Max(self, e):
        return self._minmax(e, ">")

    def _cmp(self, e, op):
        a, c = self.expr(e.a), self.expr(e.b)
        dt = e.a.dtype
        if is_float(dt):
            if op == "!=":
                return self.b.fcmp_unordered("!=", a, c)
            return self.b.fcmp_ordered(op, a, c)
        if is_uint(dt) or is_bool(dt):
            return self.b.icmp_unsigned(op, a, c)
        return self.b.icmp_signed(op, a, c)

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
        return self.b.and_(self.expr(e.a), self.expr(e.b))

    def e_Or(self, e):
        return self.b.or_(self.expr(e.a), self.expr(e.b))

    def e_Not(self, e):
        return self.b.not_(self.expr(e.a))

    def e_Select(self, e):
        return self.b.select(self.expr(e.condition), self.expr(e.true_value), self.expr(e.false_value))

    def e_Cast(self, e: E.Cast):
        return self.cast(self.expr(e.value), e.value.dtype, e.dtype)

    def cast(self, v, src: str, dst: str):
        b = self.b
        se, de = element_of(src), element_of(dst)
        n = lanes_of(dst)
        dt = value_type(dst)
        if se == de:
            return v
        if de == "bool":
            zero = ir.Constant(v.type, None)
            return b.fcmp_unordered("!=", v, zero) if is_float(se) else b.icmp_unsigned("!=", v, zero)
        if is_float(de):
            if is_float(se):
                st = value_type(src)
                sw, dw = _fw(st), _fw(dt)
                if sw == 64 and dw == 16:  # no direct instruction (a libcall): go through float
                    v, sw = b.fptrunc(v, _retype(dt, F32)), 32
                if sw == 16 and dw == 64:
                    v, sw = b.fpext(v, _retype(dt, F32)), 32
                out = v if sw == dw else (b.fpext(v, dt) if sw < dw else b.fptrunc(v, dt))
            elif se == "bool" or is_uint(se):
                out = b.uitofp(v, dt)
            else:
                out = b.sitofp(v, dt)
            return self._bf16_round(out) if de == "bfloat16" else out
        # integer destination
        if is_float(se):
            return b.fptoui(v, dt) if is_uint(de) else b.fptosi(v, dt)
        sw, dw = v.type.element.width if n > 1 else v.type.width, dt.element.width if n > 1 else dt.width
        if sw == dw:
            return v
        if sw > dw:
            return b.trunc(v, dt)
        return b.zext(v, dt) if (is_uint(se) or se == "bool") else b.sext(v, dt)

    def e_Call(self, e: E.Call):
        from .target_intrinsics import emit_call  # reinterpret, llvm.x86.* with bfloat16 arguments

        special = emit_call(self, e)
        if special is not None:
            return special
        op = e.op
        b = self.b
        if op == "if_then_else":
            return self.if_then_else(e)
        if op == "call_extern":
            name = e.args[0].value
            args = [self.expr(a) for a in e.args[1:]]
            rt = ir.VoidType() if e.dtype == "handle" else value_type(e.dtype)
            return b.call(self.cg.extern(name, f"{self.info.name}()", rt, [a.type for a in args]), args)
        if op.startswith("llvm."):
            args = [self.expr(a) for a in e.args]
            return b.call(self.cg.declare(op, value_type(e.dtype), [a.type for a in args]), args)
        args = [self.expr(a) for a in e.args]
        dt = e.args[0].dtype if e.args else e.dtype
        if op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
            return getattr(b, {"bitwise_and": "and_", "bitwise_or": "or_", "bitwise_xor": "xor"}[op])(*args)
        if op == "bitwise_not":
            return b.not_(args[0])
        if op == "shift_left":
            return b.shl(*args)
        if op == "shift_right":
            return b.lshr(*args) if is_uint(dt) else b.ashr(*args)
        if op == "popcount":
            return b.call(self.cg.intrinsic("llvm.ctpop", args[0].type), args)
        if op == "abs":
            if is_float(dt):
                return b.call(self.cg.intrinsic("llvm.fabs", args[0].type), args)
            if is_uint(dt):
                return args[0]
            x = args[0]
            neg = b.icmp_signed("<", x, ir.Constant(x.type, None))
            return b.select(neg, b.neg(x), x)
        if op in ("isnan", "isinf", "isfinite"):
            x = args[0]
            if op == "isnan":
                return b.fcmp_unordered("uno", x, x)
            ax = b.call(self.cg.intrinsic("llvm.fabs", x.type), [x])
            inf = self._fconst(x.type, float("inf"))
            return b.fcmp_ordered("==" if op == "isinf" else "<", ax, inf)
        # floating-point math: float16 is computed in float32
        if not is_float(dt):
            raise CodegenError(f"{op} needs float arguments, got {dt}")
        half = element_of(dt) == "float16"
        if half:
            args = [b.fpext(a, _retype(a.type, F32)) for a in args]
        t = args[0].type
        out = self.math(op, args, t)
        if half:
            out = b.fptrunc(out, _retype(t, F16))
        return self._bf(dt, out)

    def _fconst(self, t, x):
        if isinstance(t, ir.VectorType):
            return ir.Constant(t, [x] * t.count)
        return ir.Constant(t, x)

    def math(self, op, args, t):
        b, cg = self.b, self.cg
        if op in VECTOR_MATH_OPS and is_float32_vector(t):
            return VectorMath(b, cg.intrinsic)(op, args[0])
        if op in LLVM_UNARY:
            return b.call(cg.intrinsic(LLVM_UNARY[op], t), args)
        if op in LLVM_BINARY:
            return b.call(cg.intrinsic(LLVM_BINARY[op], t, 2), args)
        if op == "fma":
            return b.call(cg.intrinsic("llvm.fma", t, 3), args)
        if op == "fmod":
            return b.frem(*args)
        if op == "rsqrt":
            s = b.call(cg.intrinsic("llvm.sqrt", t), args)
            return b.fdiv(self._fconst(t, 1.0), s)
        if op == "sigmoid":
            x = args[0]
            ex = self.math("exp", [b.fneg(x)], t)
            return b.fdiv(self._fconst(t, 1.0), b.fadd(self._fconst(t, 1.0), ex))
        if op in LIBM_UNARY or op in LIBM_BINARY:
            st = t.element if isinstance(t, ir.VectorType) else t
            name = op + ("f" if st == F32 else "")
            fn = cg.declare(name, st, [st] * len(args))
            if not isinstance(t, ir.VectorType):
                return b.call(fn, args)
            out = ir.Constant(t, None)
            for k in range(t.count):
                ck = ir.Constant(I32, k)
                out = b.insert_element(out, b.call(fn, [b.extract_element(a, ck) for a in args]), ck)
            return out
        raise CodegenError(f"the intrinsic {op!r} is not supported by the LLVM backend")

    def if_then_else(self, e: E.Call):
        c = self.expr(e.args[0])
        if isinstance(c.type, ir.VectorType):  # lanes: both sides evaluated
            return self.b.select(c, self.expr(e.args[1]), self.expr(e.args[2]))
        b = self.b
        tb, fb, end = self.new_block("ite.then"), self.new_block("ite.else"), self.new_block("ite.end")
        b.cbranch(c, tb, fb)
        b.position_at_end(tb)
        tv = self.expr(e.args[1])
        t_end = b.block
        b.branch(end)
        b.position_at_end(fb)
        fv = self.expr(e.args[2])
        f_end = b.block
        b.branch(end)
        b.position_at_end(end)
        phi = b.phi(tv.type)
        phi.add_incoming(tv, t_end)
        phi.add_incoming(fv, f_end)
        return phi


def _fw(t):
    t = t.element if isinstance(t, ir.VectorType) else t
    return {"half": 16, "float": 32, "double": 64}[str(t)]


def _retype(t, scalar):
    return ir.VectorType(scalar, t.count) if isinstance(t, ir.VectorType) else scalar


def _as_callee(ptr_value, ftype):
    """Call through a function pointer of type ``ftype`` (opaque pointers need the type)."""
    return _Callee(ptr_value, ftype)


class _Callee:
    """Adapter so ``IRBuilder.call`` accepts a loaded function pointer."""

    def __init__(self, ptr, ftype):
        self.ptr, self.function_type = ptr, ftype
        self.type = PTR

    def get_reference(self):
        return self.ptr.get_reference()


__all__ = ["ModuleCodegen", "FuncInfo", "CodegenError", "ExternCallError", "MATH_EXTERNS", "extern_allowlist",
           "ascii_symbol", "value_type", "mem_type", "SUPPORTED_INTRINSICS", "ERR_SLOTS"]
