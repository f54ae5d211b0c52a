"""``wb.frontend.quantize(model, "q4f32_1")``: weight-only group quantization of a float model.

``q4f32_1`` is MLC-LLM's mode of that name (``GroupQuantize``: ``int4`` codes, ``uint32`` storage,
``float32`` model dtype, ``NK`` weight layout, groups of 32). Each run of 32 weights along a row of a
``linear`` weight ``(out_features, in_features)`` (the reduction dimension) shares one float32 scale::

    scale = max|w| / 7                          (over the group; MLC's max_int = 2**(4-1) - 1)
    q     = clip(rint(w / scale + 7), 0, 14)    (an all-zero group gets q = 7, MLC would divide by zero)
    w    ~= (q - 7) * scale

and eight 4-bit codes are packed into a little-endian ``uint32`` word (code ``j`` of the word in bits
``4j .. 4j+3``): a ``(N, K)`` float32 weight becomes ``q_weight`` ``(N, K // 8)`` uint32 and ``q_scale``
``(N, K // 32)`` float32, 5 bits a weight instead of 32.

:func:`quantize` returns a :class:`QuantizedModel` (a :class:`~workbench.frontend.model.Model` with the same
``embed``/``forward``/``virtual_machine``) whose graph reads every quantized weight through
``wb.op.decode_q4f32(q_weight, q_scale)`` (``workbench/ir/graph/ops/quant.py``) right in front of its
``linear``; it compiles through the same :func:`~workbench.frontend.model.compile_module`, where FuseOps's
weight-prologue rule puts the decode into the matmul's kernel and the schedule inlines it, so the kernel
reads the packed words and no float copy of the weight exists, on disk or in memory.

Quantized: every 2-D float weight of ``forward`` whose only uses are as the weight ``w`` of
``linear(x, w, b)`` and whose ``in_features`` is a multiple of 32. Everything else stays as it was
(embedding tables, LayerNorm weights, biases): ``report.kept_float`` names the matrices kept and why.
``quantized.report`` (:class:`QuantizationReport`) counts weights and bytes;
:func:`accuracy_change` runs both models on sentences and compares the embeddings.

>>> import numpy as np
>>> w = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(2, 32)
>>> q_weight, q_scale = quantize_weight_q4f32(w)
>>> q_weight.dtype, q_weight.shape, q_scale.dtype, q_scale.shape
(dtype('uint32'), (2, 4), dtype('float32'), (2, 1))
>>> float(np.abs(dequantize_weight_q4f32(q_weight, q_scale) - w).max()) <= float(q_scale.max()) / 2
True

On a model folder (all-MiniLM-L6-v2, about 20 s to compile each model the first time)::

    model = wb.frontend.load(folder)
    q = wb.frontend.quantize(model, "q4f32_1")
    print(q.report)               # 36 weights quantized, 90.26 MB -> 54.43 MB; the matrices kept float, and why
    accuracy_change(model, q, sentences)    # 8 sentences: mean cosine 0.953, min 0.931, max |diff| 0.077
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..ir.function import IRModule
from ..ir.functor import Mutator, Visitor
from ..ir.graph.expr import Call, Function, GlobalVar, Op, Var
from ..ir.graph.ops.quant import Q4F32_CODES_PER_WORD, Q4F32_GROUP_SIZE, Q4F32_ZERO_CODE
from ..ir.graph.types import TensorType
from .model import Model

__all__ = ["SUPPORTED_MODES", "QuantizedModel", "QuantizationReport", "AccuracyChange", "quantize",
           "accuracy_change", "quantize_weight_q4f32", "dequantize_weight_q4f32"]

#: the quantization modes :func:`quantize` knows
SUPPORTED_MODES = ("q4f32_1",)

#: the largest code (MLC clips ``rint(w / scale + 7)`` to ``max_int * 2``)
_MAX_CODE = 2 * Q4F32_ZERO_CODE


# -- the numbers: one weight matrix ----------------------------------------------------------------

def quantize_weight_q4f32(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q_weight, q_scale)`` of a float weight ``(..., K)`` (``K`` a multiple of 32), grouped along the last
    dimension: ``q_weight`` ``(..., K // 8)`` uint32 (eight 4-bit codes a word, code ``j`` in bits ``4j..4j+3``),
    ``q_scale`` ``(..., K // 32)`` float32 (``max|w| / 7`` of each group of 32). Float32 arithmetic in MLC's
    order; ties round to even."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim < 1 or w.shape[-1] % Q4F32_GROUP_SIZE:
        raise ValueError(f"quantize_weight_q4f32: the last dimension of the weight {w.shape} must be a multiple of "
                         f"{Q4F32_GROUP_SIZE}")
    groups = w.reshape(w.shape[:-1] + (-1, Q4F32_GROUP_SIZE))
    scale = np.abs(groups).max(axis=-1) / np.float32(Q4F32_ZERO_CODE)
    safe = np.where(scale > 0, scale, np.float32(1))[..., None]       # an all-zero group: every code 7
    codes = np.clip(np.rint(groups / safe + np.float32(Q4F32_ZERO_CODE)), 0, _MAX_CODE).astype(np.uint32)
    codes = codes.reshape(w.shape[:-1] + (-1, Q4F32_CODES_PER_WORD))
    shifts = np.arange(Q4F32_CODES_PER_WORD, dtype=np.uint32) * np.uint32(4)
    words = np.bitwise_or.reduce(codes << shifts, axis=-1).astype(np.uint32)
    return words, scale.astype(np.float32)


def dequantize_weight_q4f32(q_weight: np.ndarray, q_scale: np.ndarray) -> np.ndarray:
    """The float32 weights ``(..., K)`` of :func:`quantize_weight_q4f32`'s ``(q_weight, q_scale)``:
    ``(code - 7) * scale`` (what ``wb.op.decode_q4f32`` computes in the graph)."""
    from ..ir.graph.op import get_op

    return get_op("decode_q4f32").reference([q_weight, q_scale], {})


# -- reports ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuantizationReport:
    """What :func:`quantize` did: ``quantized`` (checkpoint names of the weights now packed), ``kept_float``
    (matrix name -> why it stays float), ``other_params`` (biases, norms... left as they were), and bytes of
    the quantized weights and of all weights, before and after. ``print(report)`` shows it."""

    mode: str
    quantized: tuple[str, ...]
    kept_float: dict[str, str]
    other_params: int
    quantized_bytes_before: int
    quantized_bytes_after: int
    bytes_before: int
    bytes_after: int

    @property
    def num_quantized(self) -> int:
        return len(self.quantized)

    def __repr__(self) -> str:
        lines = [f"QuantizationReport({self.mode}): {self.num_quantized} weights quantized, "
                 f"{len(self.kept_float)} matrices and {self.other_params} other parameters kept float",
                 f"  quantized weights: {_mb(self.quantized_bytes_before)} -> {_mb(self.quantized_bytes_after)} "
                 f"({_ratio(self.quantized_bytes_before, self.quantized_bytes_after)})",
                 f"  all weights:       {_mb(self.bytes_before)} -> {_mb(self.bytes_after)} "
                 f"({_ratio(self.bytes_before, self.bytes_after)})"]
        lines += [f"  kept float: {name}: {why}" for name, why in self.kept_float.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class AccuracyChange:
    """Embeddings of the quantized model against the original's on ``sentences`` sentences:
    ``max_abs_diff`` (largest element difference), ``mean_cosine`` and ``min_cosine`` (cosine similarity of
    each sentence's two embeddings)."""

    sentences: int
    max_abs_diff: float
    mean_cosine: float
    min_cosine: float

    def __repr__(self) -> str:
        return (f"AccuracyChange({self.sentences} sentences: mean cosine similarity {self.mean_cosine:.6f}, "
                f"min {self.min_cosine:.6f}, max |embedding difference| {self.max_abs_diff:.3g})")


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.2f} MB"


def _ratio(before: int, after: int) -> str:
    return f"{before / after:.2f}x smaller" if after else "nothing left"


# -- the quantized model -----------------------------------------------------------------------------

class QuantizedModel(Model):
    """A :class:`~workbench.frontend.model.Model` whose linear weights are packed (see the module docstring).

    ``.mod``, ``.params`` and ``.param_list`` are the quantized module and weights (``<layer>.q_weight`` and
    ``<layer>.q_scale`` in place of ``<layer>.weight``); ``.config``, ``.tokenizer`` and ``.files`` are the
    original model's; ``.mode`` is the quantization mode, ``.report`` a :class:`QuantizationReport`."""

    def __init__(self, original: Model, mod: IRModule, params: dict[str, np.ndarray], report: QuantizationReport):
        self.__dict__.update(vars(original))      # config, tokenizer, files, and whatever else a Model holds
        self.mod = mod
        self.params = params
        self.param_list = list(params.values())
        self.mode = report.mode
        self.report = report
        self._vms = {}

    def __repr__(self) -> str:
        r = self.report
        return (f"QuantizedModel({self.config.model_type}, {r.mode}, {r.num_quantized} weights quantized, "
                f"{_mb(r.bytes_before)} -> {_mb(r.bytes_after)}, from {self.files.folder!r})")


def quantize(model: Model, mode: str = "q4f32_1") -> QuantizedModel:
    """``model`` with its linear weights group-quantized (``mode``: one of :data:`SUPPORTED_MODES`); ``model``
    is left unchanged. The result's ``.report`` says what was quantized (see the module docstring).

    Errors: an unknown ``mode`` -> ``ValueError`` listing the supported modes; a GGUF LLM (already quantized)
    or a quantized model -> ``ValueError``; anything but a model -> ``TypeError``.

    Example (a model folder, such as all-MiniLM-L6-v2's)::

        q = wb.frontend.quantize(wb.frontend.load(folder), "q4f32_1")
        q.embed(["A man is playing a guitar."])        # compiled and run like the float model

    >>> quantize(object(), "q4f32_1")
    Traceback (most recent call last):
    ...
    TypeError: quantize(): model must be a float model loaded from a model folder (wb.frontend.load(folder)), got object
    """
    _check_model(model)
    if mode not in SUPPORTED_MODES:
        raise ValueError(f"quantize(): unknown mode {mode!r}; supported modes: {', '.join(SUPPORTED_MODES)}")
    func = model.mod["forward"]
    weights = _weight_params(model, func)
    chosen, kept = _choose(func, weights)
    new_params: dict[str, np.ndarray] = {}
    new_vars: list[Var] = list(func.params[: len(func.params) - len(weights)])
    packed: dict[int, tuple[Var, Var]] = {}
    for var, (name, array) in weights.items():
        if var not in chosen:
            new_params[name] = array
            new_vars.append(var)
            continue
        q_weight, q_scale = quantize_weight_q4f32(array)
        base = name[: -len(".weight")] if name.endswith(".weight") else name
        pair = tuple(Var(f"{base}.{part}".replace(".", "_"), TensorType(a.shape, str(a.dtype)))
                     for part, a in (("q_weight", q_weight), ("q_scale", q_scale)))
        new_params[f"{base}.q_weight"], new_params[f"{base}.q_scale"] = q_weight, q_scale
        new_vars += pair
        packed[id(var)] = pair
    new_func = func.replace(params=tuple(new_vars), body=_DecodeWeights(packed).visit(func.body))
    mod = _with_function(model.mod, "forward", new_func)
    report = _report(mode, model.params, new_params, [weights[v][0] for v in weights if v in chosen], kept)
    return QuantizedModel(model, mod, new_params, report)


def accuracy_change(original: Model, quantized: Model, sentences: Sequence[str], target: str = "llvm") -> AccuracyChange:
    """How far ``quantized``'s sentence embeddings are from ``original``'s on ``sentences`` (both models
    compiled for ``target`` on first use)."""
    if isinstance(sentences, str) or not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError(f"accuracy_change(): sentences must be a non-empty list of strings, got {sentences!r}")
    a = np.asarray(original.embed(list(sentences), target), np.float64)
    b = np.asarray(quantized.embed(list(sentences), target), np.float64)
    norms = np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)
    cosine = (a * b).sum(axis=-1) / norms
    return AccuracyChange(len(sentences), float(np.abs(a - b).max()), float(cosine.mean()), float(cosine.min()))


# -- choosing and rewriting ------------------------------------------------------------------------

def _check_model(model) -> None:
    from .llm import LLM

    if isinstance(model, QuantizedModel):
        raise ValueError(f"quantize(): the model is already quantized ({model.mode}); quantize the float model")
    if isinstance(model, LLM):
        raise ValueError("quantize(): the model is a GGUF LLM, whose weights are already quantized (GGUF blocks "
                         "decoded in the graph); quantize takes a float model loaded from a model folder "
                         "(wb.frontend.load(folder))")
    if not isinstance(model, Model):
        raise TypeError(f"quantize(): model must be a float model loaded from a model folder "
                        f"(wb.frontend.load(folder)), got {type(model).__name__}")


def _weight_params(model: Model, func: Function) -> dict[Var, tuple[str, np.ndarray]]:
    """``forward``'s weight parameters (after its inputs) -> (checkpoint name, array), in order."""
    names = list(model.params)
    inputs = len(func.params) - len(names)
    if inputs < 0 or inputs != func.attrs.get("num_input", inputs):
        raise ValueError(f"quantize(): forward has {len(func.params)} parameters, which do not end with the model's "
                         f"{len(names)} weights")
    return {var: (name, model.params[name]) for var, name in zip(func.params[inputs:], names)}


def _choose(func: Function, weights: dict[Var, tuple[str, np.ndarray]]) -> tuple[set[Var], dict[str, str]]:
    """The weights to quantize, and the matrices kept float -> why."""
    matrices = {v: nw for v, nw in weights.items() if nw[1].ndim == 2 and np.issubdtype(nw[1].dtype, np.floating)}
    uses = _Uses(matrices)
    uses.visit(func.body)
    chosen: set[Var] = set()
    kept: dict[str, str] = {}
    for var, (name, array) in matrices.items():
        found = uses.found[id(var)]
        others = sorted({u for u in found if u != "linear"})
        if not found:
            kept[name] = "not used by forward"
        elif others:
            kept[name] = f"read by {', '.join(others)}; only linear weights are quantized"
        elif array.shape[1] % Q4F32_GROUP_SIZE:
            kept[name] = f"in_features {array.shape[1]} is not a multiple of {Q4F32_GROUP_SIZE}"
        else:
            chosen.add(var)
    return chosen, kept


class _Uses(Visitor):
    """Where each weight Var is read: ``"linear"`` as ``linear``'s weight, else a description."""

    def __init__(self, weights: dict):
        self.found: dict[int, list[str]] = {id(v): [] for v in weights}

    def visit_Call(self, call: Call) -> None:
        label = _call_label(call)
        for k, arg in enumerate(call.args):
            if isinstance(arg, Var) and id(arg) in self.found:
                self.found[id(arg)].append("linear" if label == "wb.op.linear" and k == 1 else
                                           f"argument {k} of {label}")
            else:
                self.visit(arg)

    def visit_Var(self, v) -> None:
        if id(v) in self.found:
            self.found[id(v)].append("a binding, tuple or result (not a call argument)")


def _call_label(call: Call) -> str:
    op = call.op
    if isinstance(op, Op):
        return f"wb.op.{op.name}"
    if isinstance(op, GlobalVar):
        return f"call_tir({op.name})"
    return f"call_dps_library({op.name!r})"


class _DecodeWeights(Mutator):
    """``linear(x, w, b)`` -> ``linear(x, decode_q4f32(w_q_weight, w_q_scale), b)`` for the packed weights."""

    def __init__(self, packed: dict[int, tuple[Var, Var]]):
        self.packed = packed

    def visit_Call(self, call: Call):
        call = self.generic_visit(call)
        if isinstance(call.op, Op) and call.op.name == "linear" and id(call.args[1]) in self.packed:
            decoded = Call(Op("decode_q4f32"), self.packed[id(call.args[1])])
            return call.replace(args=(call.args[0], decoded) + tuple(call.args[2:]))
        return call


def _with_function(mod: IRModule, name: str, func: Function) -> IRModule:
    from ..ir.graph.verify import verify_graph

    new = IRModule({n: (func if n == name else f) for n, f in mod.functions.items()})
    verify_graph(new)
    return new


def _report(mode: str, before: dict[str, np.ndarray], after: dict[str, np.ndarray], quantized: list[str],
            kept: dict[str, str]) -> QuantizationReport:
    packed_bytes = sum(a.nbytes for n, a in after.items() if n not in before)
    return QuantizationReport(
        mode=mode, quantized=tuple(quantized), kept_float=kept,
        other_params=len(before) - len(quantized) - len(kept),
        quantized_bytes_before=sum(before[n].nbytes for n in quantized), quantized_bytes_after=packed_bytes,
        bytes_before=sum(a.nbytes for a in before.values()), bytes_after=sum(a.nbytes for a in after.values()))
