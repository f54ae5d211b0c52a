"""Graph-level IR nodes: values, calls, bindings, dataflow blocks and graph functions.

A graph function is a sequence of binding blocks and a result, as in TVM Relax:

* values: :class:`Var` (a function parameter or a binding's name), :class:`DataflowVar` (a
  name local to a dataflow block), :class:`Constant` (a numpy array), :class:`Tuple`,
  :class:`TupleGetItem` and :class:`Call`;
* a :class:`Call`'s ``op`` is an :class:`Op` (a registered graph operator, ``wb.op.<name>``),
  a :class:`GlobalVar` (``call_tir``: a tensor program of the module called in
  destination-passing style) or an :class:`ExternFunc` (``call_dps_library``: a named
  external routine such as ``"numpy.matmul"``, also destination-passing);
* bindings: :class:`VarBinding` (``var = value``) and :class:`MatchCast` (``var =
  wb.match_cast(value, type)``: a checked cast that may introduce new size variables);
* :class:`BindingBlock`, :class:`DataflowBlock` (``with wb.dataflow():``, a pure region),
  :class:`SeqExpr` (blocks then a result) and :class:`Function`.

Every value carries its type (``.type``): an op call's type comes from the op's ``infer``,
a ``call_tir``/``call_dps_library``'s from the output type it is given.

>>> import workbench as wb
>>> n = wb.var("n")
>>> x = Var("x", wb.Tensor((n, 4), "float32"))
>>> y = Call(Op("demo.negative"), (x,))
>>> y.type
Tensor((n, 4), "float32")
"""
from __future__ import annotations

import hashlib
import numbers
from typing import Any

import numpy as np

from ..node import FrozenDict, Node, freeze_dict, node, set_field
from .types import GraphType, GraphTypeError, TensorType, TupleType


class Expr(Node):
    """Base of graph-level values; ``.type`` is the value's :class:`GraphType`."""

    __slots__ = ()


def _check_type(t, what: str) -> GraphType:
    if not isinstance(t, GraphType):
        raise GraphTypeError(f"{what} must be a graph type (wb.Tensor(shape, dtype) or wb.Tuple(...)), "
                             f"got {type(t).__name__}")
    return t


def _check_name(name, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise GraphTypeError(f"{what} needs a non-empty string name, got {name!r}")
    return name


@node
class Var(Expr):
    """A graph variable: a function parameter or the name a binding gives a value.

    ``Var("x", wb.Tensor(("n", 784), "float32"))``; names do not matter to structural
    equality, the object does (one ``Var`` per value).
    """

    name: str
    type: GraphType

    def __post_init__(self):
        _check_name(self.name, "a graph Var")
        _check_type(self.type, f"the type of Var {self.name}")

    __hash__ = object.__hash__


@node
class DataflowVar(Var):
    """A variable bound inside a dataflow block and visible only there."""

    __hash__ = object.__hash__


def _constant_array(data) -> np.ndarray:
    arr = np.asarray(data)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise GraphTypeError(f"a constant must hold numbers (bool, int, uint or float), got dtype {arr.dtype}")
    view = arr.view()
    view.flags.writeable = False
    return view


@node
class Constant(Expr):
    """A constant tensor (a read-only view of a numpy array): ``Constant(np.ones((2, 2), "float32"))``."""

    data: np.ndarray
    type: GraphType = None  # type: ignore[assignment]

    def __post_init__(self):
        arr = _constant_array(self.data)
        set_field(self, "data", arr)
        set_field(self, "type", TensorType(tuple(int(d) for d in arr.shape), arr.dtype.name))

    __hash__ = object.__hash__

    @property
    def key(self) -> str:
        """A content hash (16 hex digits) that names a large constant in the script form (``wb.meta``)."""
        cached = self.__dict__.get("_key")
        if cached is None:
            h = hashlib.blake2b(digest_size=8)
            h.update(f"{self.data.dtype.name}{self.data.shape}".encode())
            h.update(np.ascontiguousarray(self.data).tobytes())
            cached = h.hexdigest()
            object.__setattr__(self, "_key", cached)
        return cached


@node
class Op(Node):
    """A registered graph operator, by name (``Op("add")``; the script spelling is ``wb.op.add``)."""

    name: str

    def __post_init__(self):
        from .op import get_op

        get_op(self.name)  # a clear error listing close names when the op does not exist

    @property
    def op_def(self):
        """The registry entry (``infer``, ``legalize``, ``reference``, ``pattern``)."""
        from .op import get_op

        return get_op(self.name)


@node
class GlobalVar(Node):
    """A function of the module, by name: the target of ``call_tir``."""

    name: str

    def __post_init__(self):
        _check_name(self.name, "a GlobalVar")


@node
class ExternFunc(Node):
    """A named external function called in destination-passing style (``call_dps_library``)."""

    name: str

    def __post_init__(self):
        _check_name(self.name, "an ExternFunc")


def _freeze_attr(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze_attr(x) for x in v)
    if isinstance(v, dict):
        return FrozenDict({k: _freeze_attr(x) for k, x in v.items()})
    if isinstance(v, np.generic):
        return v.item()
    from ..expr import FloatImm, IntImm

    if isinstance(v, IntImm):
        return bool(v.value) if v.dtype == "bool" else int(v.value)
    if isinstance(v, FloatImm):
        return float(v.value)
    return v


def as_expr(v, what: str = "an argument") -> Expr:
    """``v`` as a graph value: Exprs as they are, Python tuples/lists as :class:`Tuple`, arrays as :class:`Constant`."""
    if isinstance(v, Expr):
        return v
    if isinstance(v, (tuple, list)):
        return Tuple(tuple(as_expr(x, what) for x in v))
    if isinstance(v, np.ndarray):
        return Constant(v)
    if isinstance(v, (numbers.Number, np.generic)):
        raise GraphTypeError(f"{what} is the Python number {v!r}; wrap it as a constant with its dtype: "
                             f"wb.const({v!r}, \"float32\")")
    raise GraphTypeError(f"{what} must be a graph value (Var, Constant, Call, Tuple, ...), got {type(v).__name__}")


@node
class Call(Expr):
    """A call: ``Call(Op("add"), (x, y))``, ``Call(GlobalVar("fused"), (x, w), type=out_type)`` (call_tir),
    ``Call(ExternFunc("numpy.matmul"), (a, b), type=out_type)`` (call_dps_library).

    ``attrs`` are the op's static attributes (lists are stored as tuples). An op call's
    type is always inferred by the op's ``infer`` (a ``type`` given is ignored); a
    ``call_tir``/``call_dps_library`` needs its output ``type``.
    """

    op: Any
    args: tuple
    attrs: FrozenDict = None  # type: ignore[assignment]
    type: GraphType = None  # type: ignore[assignment]

    def __post_init__(self):
        op = Op(self.op) if isinstance(self.op, str) else self.op
        if not isinstance(op, (Op, GlobalVar, ExternFunc)):
            raise GraphTypeError(f"a Call's op must be an Op, a GlobalVar or an ExternFunc, got {type(op).__name__}")
        set_field(self, "op", op)
        name = _call_name(op)
        args = self.args if isinstance(self.args, (tuple, list)) else (self.args,)
        set_field(self, "args", tuple(as_expr(a, f"argument {k} of {name}") for k, a in enumerate(args)))
        set_field(self, "attrs", freeze_dict({k: _freeze_attr(v) for k, v in (self.attrs or {}).items()}))
        if isinstance(op, Op):
            set_field(self, "type", _infer(op, self.args, self.attrs))
        elif self.type is None:
            raise GraphTypeError(f"{name} needs the type of its output (out=wb.Tensor(shape, dtype))")
        else:
            _check_type(self.type, f"the output type of {name}")

    __hash__ = object.__hash__

    @property
    def is_call_tir(self) -> bool:
        return isinstance(self.op, GlobalVar)

    @property
    def is_call_dps_library(self) -> bool:
        return isinstance(self.op, ExternFunc)


def _call_name(op) -> str:
    if isinstance(op, Op):
        return f"wb.op.{op.name}"
    if isinstance(op, GlobalVar):
        return f"call_tir({op.name})"
    return f"call_dps_library({op.name!r})"


def _infer(op: Op, args: tuple, attrs: FrozenDict) -> GraphType:
    d = op.op_def
    try:
        t = d.infer([a.type for a in args], dict(attrs))
    except GraphTypeError:
        raise
    except (TypeError, IndexError, KeyError, AttributeError) as err:
        raise GraphTypeError(f"op {op.name}: cannot infer the type of its result from arguments "
                             f"{', '.join(repr(a.type) for a in args)} and attributes {dict(attrs)}: {err}") from err
    if not isinstance(t, GraphType):
        raise GraphTypeError(f"op {op.name}: its infer returned {type(t).__name__}, not a graph type")
    return t


@node
class Tuple(Expr):
    """A tuple of values: ``Tuple((a, b))``."""

    fields: tuple
    type: GraphType = None  # type: ignore[assignment]

    def __post_init__(self):
        fields = tuple(as_expr(f, "a tuple field") for f in self.fields)
        set_field(self, "fields", fields)
        set_field(self, "type", TupleType(tuple(f.type for f in fields)))

    __hash__ = object.__hash__


@node
class TupleGetItem(Expr):
    """Field ``index`` of a tuple value: ``TupleGetItem(t, 0)`` (script: ``t[0]``)."""

    tuple_value: Expr
    index: int
    type: GraphType = None  # type: ignore[assignment]

    def __post_init__(self):
        tv = as_expr(self.tuple_value, "a TupleGetItem's tuple")
        set_field(self, "tuple_value", tv)
        t = tv.type
        if not isinstance(t, TupleType):
            raise GraphTypeError(f"cannot take item {self.index} of a value of type {t!r}: it is not a tuple")
        if isinstance(self.index, bool) or not isinstance(self.index, numbers.Integral) or \
                not 0 <= self.index < len(t.fields):
            raise GraphTypeError(f"tuple index {self.index!r} is out of range for {t!r}")
        set_field(self, "index", int(self.index))
        set_field(self, "type", t.fields[self.index])

    __hash__ = object.__hash__


class Binding(Node):
    """Base of bindings: ``var`` gets ``value``."""

    __slots__ = ()


@node
class VarBinding(Binding):
    """``var = value``; ``var.type`` is ``value.type``."""

    var: Var
    value: Expr

    def __post_init__(self):
        if not isinstance(self.var, Var):
            raise GraphTypeError(f"a binding binds a graph Var, got {type(self.var).__name__}")
        set_field(self, "value", as_expr(self.value, f"the value bound to {self.var.name}"))

    __hash__ = object.__hash__


@node
class MatchCast(Binding):
    """``var = wb.match_cast(value, type)``: ``value`` checked against ``type`` at run time.

    Size variables of ``type`` not defined before are defined here (bound from the
    value's actual shape). The static parts must agree: same dtype, same rank, equal
    constant dimensions.
    """

    var: Var
    value: Expr
    type: GraphType

    def __post_init__(self):
        if not isinstance(self.var, Var):
            raise GraphTypeError(f"match_cast binds a graph Var, got {type(self.var).__name__}")
        set_field(self, "value", as_expr(self.value, f"the value cast to {self.var.name}"))
        _check_type(self.type, "the type of match_cast")
        check_castable(self.value.type, self.type)

    __hash__ = object.__hash__


def check_castable(have: GraphType, want: GraphType) -> None:
    """Raise :class:`GraphTypeError` when a value of type ``have`` can never match ``want``."""
    from ..expr import IntImm

    if isinstance(have, TupleType) or isinstance(want, TupleType):
        if not (isinstance(have, TupleType) and isinstance(want, TupleType)) or len(have.fields) != len(want.fields):
            raise GraphTypeError(f"match_cast: a value of type {have!r} can never match {want!r}")
        for a, b in zip(have.fields, want.fields):
            check_castable(a, b)
        return
    if have.dtype != want.dtype:
        raise GraphTypeError(f"match_cast: dtype {have.dtype} of the value does not match {want.dtype} in {want!r}")
    if have.shape is None or want.shape is None:
        return
    if len(have.shape) != len(want.shape):
        raise GraphTypeError(f"match_cast: the value has rank {len(have.shape)} ({have!r}), "
                             f"the type {want!r} rank {len(want.shape)}")
    for k, (a, b) in enumerate(zip(have.shape, want.shape)):
        if isinstance(a, IntImm) and isinstance(b, IntImm) and a.value != b.value:
            raise GraphTypeError(f"match_cast: dimension {k} is {a.value} in the value ({have!r}) but "
                                 f"{b.value} in {want!r}")


@node
class BindingBlock(Node):
    """A sequence of bindings (may have effects; nothing is fused across it)."""

    bindings: tuple

    def __post_init__(self):
        bindings = tuple(self.bindings)
        for b in bindings:
            if not isinstance(b, Binding):
                raise GraphTypeError(f"a block holds bindings (VarBinding, MatchCast), got {type(b).__name__}")
        set_field(self, "bindings", bindings)

    __hash__ = object.__hash__


@node
class DataflowBlock(BindingBlock):
    """A pure region (``with wb.dataflow():``): its DataflowVars are invisible after it."""

    __hash__ = object.__hash__


@node
class SeqExpr(Expr):
    """Blocks, then the ``body`` value: a function's body.

    Adjacent plain :class:`BindingBlock` s are merged and empty ones dropped (the script
    form cannot tell them apart).
    """

    blocks: tuple
    body: Expr

    def __post_init__(self):
        blocks: list = []
        for b in self.blocks:
            if not isinstance(b, BindingBlock):
                raise GraphTypeError(f"a SeqExpr holds binding blocks, got {type(b).__name__}")
            if type(b) is BindingBlock:
                if not b.bindings:
                    continue
                if blocks and type(blocks[-1]) is BindingBlock:
                    blocks[-1] = BindingBlock(blocks[-1].bindings + b.bindings)
                    continue
            blocks.append(b)
        set_field(self, "blocks", tuple(blocks))
        set_field(self, "body", as_expr(self.body, "the result of a SeqExpr"))

    __hash__ = object.__hash__

    @property
    def type(self) -> GraphType:
        return self.body.type


@node
class Function(Node):
    """A graph function: ``Function(params, body, ret_type=None, attrs=None)``.

    ``params`` are :class:`Var` s (their types may use size variables such as ``n``),
    ``body`` a :class:`SeqExpr` (another value is wrapped in one), ``ret_type`` defaults
    to the body's type. ``attrs["global_symbol"]`` is the function's name, as for
    ``PrimFunc`` (absent: a private function).
    """

    params: tuple
    body: SeqExpr
    ret_type: GraphType = None  # type: ignore[assignment]
    attrs: FrozenDict = None  # type: ignore[assignment]

    def __post_init__(self):
        params = tuple(self.params)
        for p in params:
            if not isinstance(p, Var) or isinstance(p, DataflowVar):
                raise GraphTypeError(f"graph function parameters must be (non-dataflow) Vars, got "
                                     f"{type(p).__name__} {getattr(p, 'name', p)!r}")
        set_field(self, "params", params)
        body = self.body if isinstance(self.body, SeqExpr) else SeqExpr((), self.body)
        set_field(self, "body", body)
        set_field(self, "ret_type", body.type if self.ret_type is None else _check_type(self.ret_type, "ret_type"))
        set_field(self, "attrs", freeze_dict(self.attrs))

    __hash__ = object.__hash__

    @property
    def name(self) -> str:
        return str(self.attrs.get("global_symbol", "main"))

    def with_attr(self, key: str, value) -> "Function":
        attrs = dict(self.attrs)
        attrs[key] = value
        return self.replace(attrs=FrozenDict(attrs))

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter display: the graph view of ``IRModule({name: self})`` (as a module with this function
        shows), its text the function's script; the script alone when the viewer is not installed."""
        from ..function import IRModule

        try:
            from ...viz import mimebundle
        except ImportError:
            return {"text/plain": self.script()}
        bundle = dict(mimebundle(IRModule({self.name: self})))
        bundle["text/plain"] = self.script()
        return bundle


__all__ = ["Expr", "Var", "DataflowVar", "Constant", "Op", "GlobalVar", "ExternFunc", "Call", "Tuple",
           "TupleGetItem", "Binding", "VarBinding", "MatchCast", "BindingBlock", "DataflowBlock", "SeqExpr",
           "Function", "as_expr", "check_castable"]
