"""The model-building module API: write a model as Python classes, export it as a graph function.

As in the MLC course (and TVM's ``relax.frontend.nn``): a :class:`Module` holds :class:`Parameter` s and
other modules as attributes; its ``forward`` computes on graph values with the ops of ``wb.op`` (or the
helpers here: :func:`relu`, :func:`gelu`, ...). :meth:`Module.export` turns each exported method into a
graph function whose parameters are the method's inputs followed by every parameter of the module, so the
weights stay arguments (bind them later, or pass them to the virtual machine).

>>> import workbench as wb
>>> from workbench.frontend import nn
>>> class MLP(nn.Module):
...     def __init__(self):
...         self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)
...     def forward(self, x):
...         return self.fc2(nn.relu(self.fc1(x)))
>>> mod, params = MLP().export({"forward": {"x": nn.spec(("n", 784), "float32")}})
>>> print(mod["forward"].script())
@wb.function
def forward(x: wb.Tensor(("n", 784), "float32"), fc1_weight: wb.Tensor((128, 784), "float32"),
            fc1_bias: wb.Tensor((128,), "float32"), fc2_weight: wb.Tensor((10, 128), "float32"),
            fc2_bias: wb.Tensor((10,), "float32")) -> wb.Tensor(("n", 10), "float32"):
    wb.func_attr({"num_input": 1})
    with wb.dataflow():
        lv = wb.op.linear(x, fc1_weight, fc1_bias)
        lv1 = wb.op.relu(lv)
        lv2 = wb.op.linear(lv1, fc2_weight, fc2_bias)
        gv = wb.output(lv2)
    return gv
>>> [(name, p.shape) for name, p in params]
[('fc1.weight', (128, 784)), ('fc1.bias', (128,)), ('fc2.weight', (10, 128)), ('fc2.bias', (10,))]

During :meth:`~Module.export` every parameter attribute reads as the graph function's parameter
(a graph ``Var``), so ``forward`` may pass ``self.weight`` to any ``wb.op``; outside ``export`` it is
the :class:`Parameter` (its shape and dtype). Nested op calls in ``forward``'s result are bound one op
per variable, in evaluation order, inside one dataflow block.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

from ..ir.function import IRModule
from ..ir.graph.block_builder import BlockBuilder
from ..ir.graph.expr import Call, Expr, Tuple, TupleGetItem, Var
from ..ir.graph.script import Tensor, op
from ..ir.graph.types import GraphType, TensorType

__all__ = [
    "Module", "ModuleList", "Parameter", "Linear", "LayerNorm", "RMSNorm", "Embedding", "spec", "ExportError",
    "te_op", "relu", "gelu", "silu", "tanh", "exp", "softmax", "log_softmax",
]


class ExportError(ValueError):
    """A module cannot be exported: a bad input spec, a forward that does not return graph values, ..."""


def spec(shape: Sequence, dtype: str = "float32") -> TensorType:
    """The type of an exported function's input: ``nn.spec(("n", 784), "float32")`` (string dims are size
    variables, one per name)."""
    return Tensor(tuple(shape), dtype)


class Parameter:
    """A weight of a module: its ``shape`` (ints, or names of size variables) and ``dtype``.

    >>> Parameter((10, "dim"), "float16")
    Parameter((10, 'dim'), 'float16')
    """

    def __init__(self, shape: Sequence, dtype: str = "float32"):
        self.type = spec(shape, dtype)
        self.shape = tuple(shape)
        self.dtype = self.type.dtype

    def __repr__(self) -> str:
        return f"Parameter({self.shape!r}, {self.dtype!r})"


class Module:
    """Base class of model definitions: parameters and sub-modules are found from the attributes.

    Subclasses need not call ``super().__init__()``. Attributes that are :class:`Parameter` s, modules
    or lists/tuples of modules (:class:`ModuleList`) take part, in the order they were assigned.
    """

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward method")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """The direct sub-modules by attribute name (list items as ``name.0``, ``name.1``, ...)."""
        for name, value in vars(self).items():
            yield from _modules_of(name, value)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter of this module and its sub-modules as ``("fc1.weight", Parameter)``, in
        attribute order, each once."""
        seen: set[int] = set()
        for name, p in self._walk_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _walk_parameters(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            for child_name, child in _modules_of(name, value):
                yield from child._walk_parameters(f"{prefix}{child_name}.")

    def parameters(self) -> list[Parameter]:
        """The parameters of :meth:`named_parameters`, without names."""
        return [p for _, p in self.named_parameters()]

    def export(self, specs: dict[str, dict[str, GraphType]]) -> tuple[IRModule, list[tuple[str, Parameter]]]:
        """One graph function per method of ``specs`` (``{"forward": {"x": nn.spec(("n", 784))}}``), whose
        parameters are the inputs (in the order given) then the module's parameters; returns the module and
        the ``(name, Parameter)`` list in that parameter order."""
        if not isinstance(specs, dict) or not specs:
            raise ExportError("export needs {method name: {input name: nn.spec(shape, dtype)}}, e.g. "
                              "{'forward': {'x': nn.spec(('n', 784), 'float32')}}")
        params = list(self.named_parameters())
        bb = BlockBuilder()
        for method, inputs in specs.items():
            self._export_method(bb, method, inputs, params)
        return bb.get(), params

    def _export_method(self, bb: BlockBuilder, method: str, inputs: dict, params: list) -> None:
        fn = getattr(self, method, None)
        if not callable(fn):
            raise ExportError(f"export: {type(self).__name__} has no method {method!r}")
        if not isinstance(inputs, dict):
            raise ExportError(f"export: the inputs of {method!r} must be a dict of name -> nn.spec(...), "
                              f"got {type(inputs).__name__}")
        input_vars = [Var(name, _input_type(method, name, t)) for name, t in inputs.items()]
        param_vars = _param_vars(params, {v.name for v in input_vars})
        with bb.function(method, input_vars + list(param_vars.values()), attrs={"num_input": len(input_vars)}):
            with bb.dataflow(), self._parameters_as(param_vars), _building(bb):
                result = fn(*input_vars)
                outputs = [_bind_tree(bb, r, f"{method}'s result") for r in _as_list(result)]
                outputs = [bb.emit_output(o) for o in outputs]
            bb.emit_func_output(outputs if isinstance(result, (list, tuple)) else outputs[0])

    @contextlib.contextmanager
    def _parameters_as(self, param_vars: dict[int, Var]) -> Iterator[None]:
        """Within the block, every Parameter attribute (of every sub-module) reads as its graph Var."""
        swapped: list[tuple[Module, str, Parameter]] = []
        for m in self._modules():
            for name, value in list(vars(m).items()):
                if isinstance(value, Parameter):
                    swapped.append((m, name, value))
                    object.__setattr__(m, name, param_vars[id(value)])
        try:
            yield
        finally:
            for m, name, value in swapped:
                object.__setattr__(m, name, value)

    def _modules(self) -> list["Module"]:
        out: list[Module] = [self]
        for _, child in self.named_children():
            out.extend(m for m in child._modules() if all(m is not o for o in out))
        return out


class ModuleList(Module):
    """A list of modules whose parameters are named ``<attr>.<index>.<name>`` (``encoder.layer.0.…``)."""

    def __init__(self, modules: Sequence[Module]):
        for k, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"ModuleList item {k} is a {type(m).__name__}, not a Module")
            setattr(self, str(k), m)

    def __getitem__(self, k: int) -> Module:
        return getattr(self, str(k))

    def __len__(self) -> int:
        return len(vars(self))

    def __iter__(self) -> Iterator[Module]:
        return iter(list(vars(self).values()))


# -- layers ------------------------------------------------------------------------------------------

class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` ``(out_features, in_features)`` (PyTorch's layout)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: str = "float32"):
        self.weight = Parameter((out_features, in_features), dtype)
        self.bias = Parameter((out_features,), dtype) if bias else None

    def forward(self, x: Expr) -> Call:
        return op.linear(x, self.weight) if self.bias is None else op.linear(x, self.weight, self.bias)


class LayerNorm(Module):
    """Layer normalisation over the last dimension: ``(x - mean) / sqrt(var + eps) * weight + bias``."""

    def __init__(self, dim: int, eps: float = 1e-5, dtype: str = "float32"):
        self.weight, self.bias = Parameter((dim,), dtype), Parameter((dim,), dtype)
        self.eps = float(eps)

    def forward(self, x: Expr) -> Call:
        return op.layer_norm(x, self.weight, self.bias, axes=[-1], eps=self.eps)


class RMSNorm(Module):
    """Root-mean-square normalisation over the last dimension: ``x / sqrt(mean(x^2) + eps) * weight``."""

    def __init__(self, dim: int, eps: float = 1e-5, dtype: str = "float32"):
        self.weight = Parameter((dim,), dtype)
        self.eps = float(eps)

    def forward(self, x: Expr) -> Call:
        return op.rms_norm(x, self.weight, axes=[-1], eps=self.eps)


class Embedding(Module):
    """Rows of a ``(num, dim)`` table selected by integer ids: ``weight[ids]`` (``num`` may be a size name)."""

    def __init__(self, num: int | str, dim: int, dtype: str = "float32"):
        self.weight = Parameter((num, dim), dtype)

    def forward(self, ids: Expr) -> Call:
        return op.embedding(self.weight, ids)


# -- activations ---------------------------------------------------------------------------------------

def relu(x: Expr) -> Call:
    """``max(x, 0)``."""
    return op.relu(x)


def gelu(x: Expr, approximate: str = "none") -> Call:
    """GELU: the erf form (``approximate="none"``) or the tanh approximation (``"tanh"``)."""
    return op.gelu(x, approximate=approximate)


def silu(x: Expr) -> Call:
    """``x * sigmoid(x)``."""
    return op.silu(x)


def tanh(x: Expr) -> Call:
    return op.tanh(x)


def exp(x: Expr) -> Call:
    return op.exp(x)


def softmax(x: Expr, axis: int = -1) -> Call:
    """Softmax over ``axis`` (numerically stable)."""
    return op.softmax(x, axis=axis)


def log_softmax(x: Expr, axis: int = -1) -> Call:
    return op.log_softmax(x, axis=axis)


# -- tensor programs inside a model ------------------------------------------------------------------

_BUILDERS: list[BlockBuilder] = []


@contextlib.contextmanager
def _building(bb: BlockBuilder) -> Iterator[None]:
    _BUILDERS.append(bb)
    try:
        yield
    finally:
        _BUILDERS.pop()


def te_op(te_func: Callable, *args, name_hint: str | None = None, **kwargs) -> Call:
    """A computation no graph op expresses, written in ``te``: the ``call_tir`` of the tensor program
    ``te_func`` makes from placeholders of the graph arguments (other arguments are passed as they are),
    as :meth:`BlockBuilder.call_te <workbench.ir.graph.block_builder.BlockBuilder.call_te>`. Only inside
    :meth:`Module.export`.

    >>> from workbench import te
    >>> class Twice(Module):
    ...     def forward(self, x):
    ...         return te_op(lambda a: te.compute(a.shape, lambda i: a[i] * 2.0, name="twice"), x,
    ...                      name_hint="twice")
    >>> mod, _ = Twice().export({"forward": {"x": spec(("n",))}})
    >>> sorted(mod.functions), mod["forward"].body.blocks[0].bindings[0].value.op.name
    (['forward', 'twice'], 'twice')
    """
    if not _BUILDERS:
        raise ExportError("nn.te_op adds a tensor program to the exported module, so it works only inside "
                          "Module.export (in forward)")
    return _BUILDERS[-1].call_te(te_func, *args, primfunc_name_hint=name_hint, **kwargs)


# -- helpers ------------------------------------------------------------------------------------------

def _input_type(method: str, name: str, t: Any) -> GraphType:
    if not isinstance(name, str) or not name.isidentifier():
        raise ExportError(f"export: input names of {method!r} must be identifiers, got {name!r}")
    if not isinstance(t, GraphType):
        raise ExportError(f"export: the input {name!r} of {method!r} needs a type such as nn.spec(('n', 784), "
                          f"'float32'), got {t!r}")
    return t


def _param_vars(params: list[tuple[str, Parameter]], taken: set[str]) -> dict[int, Var]:
    """One graph Var per parameter, named after it (``fc1.weight`` -> ``fc1_weight``), unique."""
    out: dict[int, Var] = {}
    for name, p in params:
        base = name.replace(".", "_")
        var_name, k = base, 1
        while var_name in taken:
            var_name, k = f"{base}_{k}", k + 1
        taken.add(var_name)
        out[id(p)] = Var(var_name, p.type)
    return out


def _modules_of(name: str, value) -> Iterator[tuple[str, Module]]:
    if isinstance(value, Module):
        yield name, value
    elif isinstance(value, (list, tuple)) and value and all(isinstance(m, Module) for m in value):
        for k, m in enumerate(value):
            yield f"{name}.{k}", m


def _as_list(result) -> list:
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _bind_tree(bb: BlockBuilder, value, what: str) -> Expr:
    """Bind every op call inside ``value`` (innermost first, each shared call once) and return the value
    with its calls replaced by their variables."""
    if not isinstance(value, Expr):
        raise ExportError(f"export: {what} must be a graph value (what wb.op.* returns), got "
                          f"{type(value).__name__}")
    bound: dict[int, Expr] = {}

    def visit(e: Expr) -> Expr:
        if id(e) in bound:
            return bound[id(e)]
        if isinstance(e, Call):
            new = bb.emit(e.replace(args=tuple(visit(a) for a in e.args)))
        elif isinstance(e, Tuple):
            new = Tuple(tuple(visit(f) for f in e.fields))
        elif isinstance(e, TupleGetItem):
            new = TupleGetItem(visit(e.tuple_value), e.index)
        else:
            new = e
        bound[id(e)] = new
        return new

    return visit(value)
