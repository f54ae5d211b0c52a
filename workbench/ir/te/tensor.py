"""Tensors of a compute description: ``placeholder`` (an input) and ``compute`` (a stage).

A te program describes *what* each output element is, not *how* the loops run::

    >>> from workbench import te
    >>> A = te.placeholder((4, 8), "float32", name="A")
    >>> B = te.compute((8, 4), lambda i, j: A[j, i] * 2.0, name="B")
    >>> B.shape, B.dtype, B.op.input_tensors[0] is A
    ((8, 4), 'float32', True)

``A[j, i]`` builds an ordinary IR ``BufferLoad`` of the tensor's buffer, so the
expressions inside a compute print and combine like any other IR expression.
``te.create_prim_func([A, B])`` turns the description into a loop program.
"""
from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Mapping

from ..buffer import Buffer
from ..dtype import DTypeError, is_integer, normalize_dtype
from ..expr import BufferLoad, IntImm, PrimExpr, Range, Var, convert, convert_index
from ..functor import Visitor
from ..node import freeze_dict, node


class TEError(ValueError):
    """A compute description that cannot be built (wrong arity, misused reduce axis, ...)."""


# ---------------------------------------------------------------------------
# index variables


@node
class AxisVar(Var):
    """An index variable of a compute: a spatial axis (one per output dimension) or a
    reduce axis (from ``te.reduce_axis``). It is an ``int32`` ``Var`` with a domain.

    As in TVM's ``te.IterVar``: ``.var`` is the variable itself, ``.dom`` its range.
    """

    name: str
    dtype: str = "int32"
    dom: Range = None  # type: ignore[assignment]
    kind: str = "spatial"

    def __post_init__(self):
        super().__post_init__()
        if self.kind not in ("spatial", "reduce"):
            raise ValueError(f"axis kind must be 'spatial' or 'reduce', got {self.kind!r}")
        if not isinstance(self.dom, Range):
            raise TypeError(f"axis {self.name}: dom must be a Range")

    @property
    def var(self) -> "AxisVar":
        return self

    @property
    def iter_type(self) -> str:
        return self.kind

    def script(self) -> str:  # printed as its name, like any variable
        return self.name


# ---------------------------------------------------------------------------
# operations and tensors


class Operation:
    """What produces a tensor: a ``PlaceholderOp`` or a ``ComputeOp``."""

    name: str
    input_tensors: tuple = ()
    num_outputs: int = 1

    def output(self, index: int = 0) -> "Tensor":
        return self._outputs[index]

    @property
    def outputs(self) -> tuple:
        return tuple(self._outputs)


class PlaceholderOp(Operation):
    """An input of the program."""

    def __init__(self, name: str, shape: tuple, dtype: str):
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.input_tensors = ()
        self._outputs: list[Tensor] = []

    def __repr__(self) -> str:
        return f"PlaceholderOp({self.name!r})"


class ComputeOp(Operation):
    """A stage: ``body[k]`` is the value of output ``k`` at index ``axis``.

    ``body`` elements are expressions of the ``axis`` variables; a reduction is a
    ``Reduce`` at the top of the body, whose axes are listed in ``reduce_axis``.
    """

    def __init__(self, name: str, axis: tuple, body: tuple, attrs: Mapping, input_tensors: tuple,
                 reduce_axis: tuple):
        self.name = name
        self.axis = axis
        self.body = body
        self.attrs = freeze_dict(attrs)
        self.input_tensors = input_tensors
        self.reduce_axis = reduce_axis
        self.num_outputs = len(body)
        self._outputs: list[Tensor] = []

    @property
    def shape(self) -> tuple:
        return tuple(ax.dom.extent for ax in self.axis)

    def __repr__(self) -> str:
        return f"ComputeOp({self.name!r})"


# buffer identity -> the tensor that owns it (so compute() can find its inputs)
_OWNER: "weakref.WeakValueDictionary[int, Tensor]" = weakref.WeakValueDictionary()


def tensor_of_buffer(buffer: Buffer) -> "Tensor | None":
    """The te tensor whose loads use ``buffer``, or None."""
    t = _OWNER.get(id(buffer))
    return t if t is not None and t.buffer is buffer else None


class Tensor:
    """A te tensor: the output of a placeholder or a compute.

    Index it to read an element inside a compute: ``A[i, k]`` (one index per dimension).
    """

    __slots__ = ("op", "value_index", "buffer", "__weakref__")

    def __init__(self, op: Operation, value_index: int, buffer: Buffer):
        self.op = op
        self.value_index = value_index
        self.buffer = buffer
        _OWNER[id(buffer)] = self

    @property
    def name(self) -> str:
        return self.buffer.name

    @property
    def shape(self) -> tuple:
        return self.buffer.shape

    @property
    def dtype(self) -> str:
        return self.buffer.dtype

    @property
    def ndim(self) -> int:
        return len(self.buffer.shape)

    def __getitem__(self, indices) -> BufferLoad:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) == 1 and isinstance(indices[0], (list, tuple)):
            indices = tuple(indices[0])  # A[idx_tuple] as in A[tuple(indices)]
        for k, i in enumerate(indices):
            if isinstance(i, slice):
                raise TypeError(f'tensor "{self.name}" cannot be sliced inside a compute; '
                                f"index it with one expression per dimension (position {k} is a slice)")
            if isinstance(i, Tensor):
                raise TypeError(f'tensor "{self.name}" is indexed with the tensor "{i.name}" at position {k}; '
                                f"load an element of it instead, e.g. {i.name}[...]")
        if len(indices) != self.ndim:
            shown = ", ".join(_short(i) for i in indices)
            raise IndexError(f'tensor "{self.name}" has {self.ndim} dimension(s) but is indexed with '
                             f"{len(indices)}: {self.name}[{shown}] (shape {_shape_str(self.shape)})")
        idx = tuple(convert_index(i, self.buffer, k) for k, i in enumerate(indices))
        for k, (i, d) in enumerate(zip(idx, self.shape)):
            if isinstance(i, IntImm) and isinstance(d, IntImm) and not (0 <= i.value < d.value):
                raise IndexError(f'tensor "{self.name}": constant index {i.value} at position {k} is out of '
                                 f"bounds for a dimension of size {d.value}")
        return BufferLoad(self.buffer, idx)

    def __iter__(self):
        raise TypeError(f'te tensor "{self.name}" is not iterable; index it with A[i, j] inside te.compute')

    def __len__(self) -> int:
        raise TypeError(f'te tensor "{self.name}" has no len(); use .shape')

    def __bool__(self) -> bool:
        return True

    def _no_arith(self, *args):
        raise TypeError(
            f'te tensors do not support arithmetic directly ("{self.name}" + ...); describe each element '
            f"instead, e.g. te.compute(A.shape, lambda *i: A[i] + B[i]), or use workbench.ir.op_library "
            f"(add, multiply, ... with numpy broadcasting)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _no_arith
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __neg__ = _no_arith

    def astype(self, dtype) -> "Tensor":
        """A new compute stage casting every element: ``A.astype("float16")``."""
        from ..expr import cast

        dtype = normalize_dtype(dtype)
        return compute(self.shape, lambda *i: cast(self[i], dtype), name=f"{self.name}_{dtype}")

    def __repr__(self) -> str:
        kind = "placeholder" if isinstance(self.op, PlaceholderOp) else "compute"
        return f'Tensor(name="{self.name}", shape={_shape_str(self.shape)}, dtype="{self.dtype}", op={kind})'


# ---------------------------------------------------------------------------
# helpers


def _short(e) -> str:
    try:
        s = str(e)
    except Exception:
        s = type(e).__name__
    return s if len(s) < 40 else s[:37] + "..."


def _shape_str(shape) -> str:
    parts = [str(d.value) if isinstance(d, IntImm) else _short(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def normalize_shape(shape, what: str) -> tuple:
    """Shape as a tuple of integer expressions; ints, Vars and integer expressions accepted."""
    if isinstance(shape, (int, PrimExpr)):
        shape = (shape,)
    if isinstance(shape, Tensor):
        raise TypeError(f"{what}: the shape is a tensor; pass its shape, e.g. {shape.name}.shape")
    try:
        dims = list(shape)
    except TypeError:
        raise TypeError(f"{what}: the shape must be a tuple of sizes, got {shape!r}") from None
    out = []
    for k, d in enumerate(dims):
        if isinstance(d, str):
            raise TypeError(f"{what}: dimension {k} is the string {d!r}; make a symbolic size with "
                            f"te.var({d!r}) and use it in the shape")
        if isinstance(d, bool) or not isinstance(d, (int, PrimExpr)) and not hasattr(d, "__index__"):
            raise TypeError(f"{what}: dimension {k} must be an int or an integer expression, got {d!r}")
        e = convert(int(d) if not isinstance(d, PrimExpr) else d)
        if not is_integer(e.dtype):
            raise DTypeError(f"{what}: dimension {k} must be an integer, got `{e}` of dtype {e.dtype}")
        if isinstance(e, IntImm) and e.value < 0:
            raise ValueError(f"{what}: dimension {k} is negative ({e.value})")
        if isinstance(e, AxisVar):
            raise TEError(f"{what}: dimension {k} is the index variable {e.name}; shapes take sizes, not indices")
        out.append(e)
    return tuple(out)


# ---------------------------------------------------------------------------
# public constructors


def var(name: str = "n", dtype: str = "int32") -> Var:
    """A symbolic scalar, typically a size: ``n = te.var("n")``; use it in shapes.

    >>> from workbench import te
    >>> n = te.var("n")
    >>> A = te.placeholder((n, 4), name="A")
    >>> A.shape[0] is n
    True
    """
    return Var(name, normalize_dtype(dtype))


def size_var(name: str = "n", dtype: str = "int32") -> Var:
    """A symbolic size (a ``Var`` meant to be non-negative); same as ``te.var`` here.

    >>> from workbench import te
    >>> m = te.size_var("m")
    >>> m.name
    'm'
    """
    return Var(name, normalize_dtype(dtype))


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of the program.

    >>> from workbench import te
    >>> A = te.placeholder((1024, 1024), "float32", name="A")
    >>> A.ndim, A.dtype
    (2, 'float32')
    """
    _check_name(name, "placeholder")
    try:
        dtype = normalize_dtype(dtype)
    except DTypeError as err:
        raise DTypeError(f'placeholder "{name}": {err}') from None
    if dtype == "handle":
        raise DTypeError(f'placeholder "{name}": a tensor cannot hold elements of dtype "handle"')
    shape = normalize_shape(shape, f'placeholder "{name}"')
    op = PlaceholderOp(name, shape, dtype)
    t = Tensor(op, 0, Buffer(name, shape, dtype))
    op._outputs.append(t)
    return t


def _check_name(name, what: str) -> None:
    if not isinstance(name, str) or not name or not name.isidentifier():
        raise ValueError(f"{what}: the name must be a Python identifier such as \"A\", got {name!r}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _index_names(fcompute: Callable, shape: tuple, name: str) -> list[str]:
    ndim = len(shape)
    try:
        sig = inspect.signature(fcompute)
    except (TypeError, ValueError):
        return [f"i{k}" for k in range(ndim)]
    params = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        fixed = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(fixed) > ndim:
            raise TEError(f'compute "{name}": fcompute takes at least {_plural(len(fixed), "index variable")} but '
                          f"the shape has {_plural(ndim, 'dimension')} {_shape_str(shape)}")
        return fixed + [f"i{k}" for k in range(len(fixed), ndim)]
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
           and p.default is p.empty]
    if len(pos) != ndim:
        raise TEError(f'compute "{name}": fcompute takes {_plural(len(pos), "index variable")} but the shape has '
                      f"{_plural(ndim, 'dimension')} {_shape_str(shape)}")
    return [p.name for p in pos]


def compute(shape, fcompute: Callable[..., Any], name: str = "compute",
            attrs: Mapping | None = None) -> Tensor | list[Tensor]:
    """A stage: the tensor whose element at index ``(i, j, ...)`` is ``fcompute(i, j, ...)``.

    The index variables are named after the lambda's parameters (``*args`` gives
    ``i0, i1, ...``). A reduction (``te.sum`` / ``te.max`` / ``te.min``) must be the
    whole body. Returning a tuple of (non-reduction) values gives one tensor per value.
    ``attrs`` become the block's annotations.

    >>> from workbench import te
    >>> A = te.placeholder((4, 8), name="A")
    >>> k = te.reduce_axis(8, name="k")
    >>> S = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="S")
    >>> S.op.reduce_axis[0] is k
    True
    """
    _check_name(name, "compute")
    if not callable(fcompute):
        raise TypeError(f'compute "{name}": fcompute must be a function of the indices (a lambda), '
                        f"got {type(fcompute).__name__}")
    shape = normalize_shape(shape, f'compute "{name}"')
    names = _index_names(fcompute, shape, name)
    axis = tuple(AxisVar(n, d.dtype, Range(IntImm(0, d.dtype), d), "spatial") for n, d in zip(names, shape))
    try:
        value = fcompute(*axis)
    except (DTypeError, IndexError, TypeError, TEError) as err:
        msg = str(err)
        if not msg.startswith(f'compute "{name}"'):
            try:
                new = type(err)(f'compute "{name}": {msg}')
            except Exception:
                raise
            raise new from err
        raise
    values = list(value) if isinstance(value, (tuple, list)) else [value]
    if not values:
        raise TEError(f'compute "{name}": fcompute returned an empty tuple')
    body = []
    for k, v in enumerate(values):
        if isinstance(v, Tensor):
            raise TypeError(f'compute "{name}": fcompute returned the tensor "{v.name}"; return an element '
                            f"such as {v.name}[i, j]")
        try:
            e = convert(v)
        except TypeError:
            raise TypeError(f'compute "{name}": fcompute must return an expression, got {type(v).__name__} '
                            f"{v!r}") from None
        if e.dtype == "handle":
            raise DTypeError(f'compute "{name}": the value has dtype "handle"')
        body.append(e)
    body_t = tuple(body)
    reduce_axis, inputs = _check_body(name, axis, body_t)
    op = ComputeOp(name, axis, body_t, attrs or {}, inputs, reduce_axis)
    outs = []
    for k, e in enumerate(body_t):
        bname = name if len(body_t) == 1 else f"{name}_v{k}"
        t = Tensor(op, k, Buffer(bname, shape, e.dtype))
        op._outputs.append(t)
        outs.append(t)
    return outs[0] if len(outs) == 1 else outs


def _check_body(name: str, axis: tuple, body: tuple) -> tuple[tuple, tuple]:
    """Validate a compute body; return (reduce axes, input tensors)."""
    from .reduction import Reduce

    reduces = [e for e in body if isinstance(e, Reduce)]
    if reduces and len(body) > 1:
        raise TEError(f'compute "{name}": a compute with several outputs cannot hold a reduction; '
                      f"use one compute per reduction")
    reduce_axis: tuple = reduces[0].axis if reduces else ()
    inputs: dict[int, Tensor] = {}
    own = {id(a) for a in axis}
    reduce_ids = {id(a) for a in reduce_axis}

    class Check(Visitor):
        def __init__(self):
            self.inside = None  # the Reduce being visited

        def visit_Reduce(self, r):
            if not reduces or r is not reduces[0]:
                raise TEError(f'compute "{name}": a reduction (te.{r.combiner.name}) must be the whole body of '
                              f"the compute, not part of a larger expression; compute it in its own stage "
                              f"and use that tensor")
            self.inside = r
            self.visit(r.source)
            self.visit(r.condition)
            self.inside = None
            if r.init is not None:
                self.visit(r.init)

        def visit_AxisVar(self, a):
            if a.kind == "spatial" and id(a) not in own:
                raise TEError(f'compute "{name}": the index variable {a.name} belongs to another compute; '
                              f"use this compute's own lambda parameters")
            if a.kind == "reduce":
                if self.inside is None or id(a) not in reduce_ids:
                    raise TEError(f'compute "{name}": the reduce axis {a.name} is used outside a reduction '
                                  f"over it; pass it as axis= of te.sum / te.max / te.min")
            self.generic_visit(a)

        def visit_BufferLoad(self, ld):
            t = tensor_of_buffer(ld.buffer)
            if t is None:
                raise TEError(f'compute "{name}": it reads buffer {ld.buffer.name}, which is not a te tensor; '
                              f"use te.placeholder for inputs")
            inputs.setdefault(id(t), t)
            self.generic_visit(ld)

    for e in body:
        Check().visit(e)
    return reduce_axis, tuple(inputs.values())


__all__ = ["Tensor", "Operation", "PlaceholderOp", "ComputeOp", "AxisVar", "TEError", "placeholder",
           "compute", "var", "size_var", "tensor_of_buffer", "normalize_shape"]
