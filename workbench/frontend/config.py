"""config.json of a model folder, an architecture registry, and the weight shapes each config implies.

An architecture is registered with its ``model_type`` (config.json's key, e.g. ``"bert"``), the model
class names that config.json's ``"architectures"`` may list (``"BertModel"``), and a frozen config class
that reads config.json (``from_dict``), knows the weights the model needs (``weight_shapes``) and maps
the names found in checkpoint files to those names (``canonical_weight_name``). BERT is registered here;
a decoder (llama) registers the same way.

>>> cfg = config_from_dict({"model_type": "bert", "vocab_size": 100, "hidden_size": 8, "num_hidden_layers": 1,
...                         "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 32})
>>> cfg.head_dim, cfg.hidden_act, cfg.layer_norm_eps
(4, 'gelu', 1e-12)
>>> expected_weight_shapes(cfg)["encoder.layer.0.intermediate.dense.weight"]
(16, 8)
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import ml_dtypes
import numpy as np

from .errors import ModelFileError, UnsupportedArchitectureError

__all__ = [
    "ArchitectureConfig", "Architecture", "BertConfig", "register_architecture", "supported_architectures",
    "config_from_dict", "read_config", "expected_weight_shapes", "check_weights",
]


class ArchitectureConfig(Protocol):
    """What the frontend needs from an architecture's config class."""

    model_type: ClassVar[str]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config.json") -> ArchitectureConfig: ...

    def weight_shapes(self) -> dict[str, tuple[int, ...]]: ...

    def optional_weights(self) -> frozenset[str]: ...

    def canonical_weight_name(self, name: str) -> str | None: ...


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: config.json's ``model_type``, the model class names it accepts, its config class."""

    model_type: str
    class_names: tuple[str, ...]
    config_class: type


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(model_type: str, class_names: tuple[str, ...], config_class: type) -> None:
    """Make config.json files with this ``model_type`` (or naming one of ``class_names``) load with ``config_class``."""
    if model_type in _REGISTRY:
        raise ValueError(f"architecture {model_type!r} is already registered")
    _REGISTRY[model_type] = Architecture(model_type, tuple(class_names), config_class)


def supported_architectures() -> list[str]:
    """The registered architectures as ``"model_type (ClassName, ...)"``.

    >>> supported_architectures()
    ['bert (BertModel, BertForMaskedLM, BertForPreTraining)']
    """
    return [f"{a.model_type} ({', '.join(a.class_names)})" for a in _REGISTRY.values()]


def config_from_dict(values: dict[str, Any], source: str = "config.json") -> ArchitectureConfig:
    """The config object for a parsed config.json; ``source`` names the file in error messages.

    The architecture is chosen by ``model_type``, else by the first of ``architectures`` that is
    registered. An unknown one raises :class:`UnsupportedArchitectureError` listing the supported ones.

    >>> config_from_dict({"model_type": "gpt2"})
    Traceback (most recent call last):
      ...
    workbench.frontend.errors.UnsupportedArchitectureError: config.json: architecture model_type 'gpt2' is not supported; supported: bert (BertModel, BertForMaskedLM, BertForPreTraining)
    """
    if not isinstance(values, dict):
        raise ModelFileError(f"{source}: expected a JSON object, found {type(values).__name__}")
    return _architecture_of(values, source).config_class.from_dict(values, source)


def read_config(path: str | os.PathLike) -> ArchitectureConfig:
    """Read config.json at ``path`` (the file, or the model folder holding it) into its architecture's config."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        raise ModelFileError(f"config file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"config file {path!r} is not valid JSON ({e})") from None
    return config_from_dict(values, source=path)


def expected_weight_shapes(config: ArchitectureConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the model of ``config`` needs, by canonical name, with its shape (in model order)."""
    return config.weight_shapes()


def check_weights(config: ArchitectureConfig, weights: dict[str, np.ndarray],
                  source: str = "weights") -> dict[str, np.ndarray]:
    """Check ``weights`` (names as in the checkpoint) against ``config``; return them by canonical name.

    Checkpoint names are mapped to canonical ones (BERT: a ``bert.`` prefix dropped, ``LayerNorm.gamma``/
    ``beta`` read as ``weight``/``bias``; task heads such as ``cls.*`` ignored). The result holds exactly
    the weights of :func:`expected_weight_shapes`, in that order; optional extras (BERT's pooler, the
    ``position_ids`` buffer) are dropped. A missing or unexpected weight, a shape that disagrees with the
    config or a non-float weight raises :class:`ModelFileError` naming the weight and ``source``.

    >>> cfg = config_from_dict({"model_type": "bert", "vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 0,
    ...                         "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 6})
    >>> w = {n: np.zeros(s, "float32") for n, s in expected_weight_shapes(cfg).items()}
    >>> list(check_weights(cfg, {"bert." + n: a for n, a in w.items()}))
    ['embeddings.word_embeddings.weight', 'embeddings.position_embeddings.weight', 'embeddings.token_type_embeddings.weight', 'embeddings.LayerNorm.weight', 'embeddings.LayerNorm.bias']
    >>> check_weights(cfg, {**w, "embeddings.word_embeddings.weight": np.zeros((10, 5), "float32")})
    Traceback (most recent call last):
      ...
    workbench.frontend.errors.ModelFileError: weights: weight 'embeddings.word_embeddings.weight' has shape (10, 5) but the config expects (10, 4)
    """
    expected = config.weight_shapes()
    found = _canonical_weights(config, weights, source)
    missing = [name for name in expected if name not in found]
    if missing:
        raise ModelFileError(f"{source}: {len(missing)} weight(s) the {config.model_type} model needs are missing: "
                             f"{_name_list(missing)}")
    optional = config.optional_weights()
    unexpected = [original for name, (original, _) in found.items() if name not in expected and name not in optional]
    if unexpected:
        raise ModelFileError(f"{source}: {len(unexpected)} weight(s) unexpected for a {config.model_type} model: "
                             f"{_name_list(unexpected)}")
    for name, shape in expected.items():
        original, array = found[name]
        label = repr(name) if original == name else f"{name!r} (stored as {original!r})"
        if tuple(array.shape) != tuple(shape):
            raise ModelFileError(f"{source}: weight {label} has shape {tuple(array.shape)} but the config expects "
                                 f"{tuple(shape)}")
        if not _is_float(array.dtype):
            raise ModelFileError(f"{source}: weight {label} has dtype {array.dtype}, not a floating-point type")
    return {name: found[name][1] for name in expected}


@dataclass(frozen=True)
class BertConfig:
    """A BERT encoder's config.json (the keys and meaning of Hugging Face's ``BertConfig``).

    ``hidden_act`` is ``"gelu"`` (the erf form), ``"gelu_new"``/``"gelu_pytorch_tanh"`` (the tanh form)
    or ``"relu"``; only absolute position embeddings exist.
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0

    model_type: ClassVar[str] = "bert"
    HIDDEN_ACTS: ClassVar[tuple[str, ...]] = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
    _REQUIRED: ClassVar[tuple[str, ...]] = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                            "intermediate_size", "max_position_embeddings")
    _COUNTS: ClassVar[tuple[str, ...]] = _REQUIRED + ("type_vocab_size",)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config.json") -> BertConfig:
        """Read the BERT keys of a parsed config.json, checking each; other keys are ignored."""
        missing = [key for key in cls._REQUIRED if key not in values]
        if missing:
            raise ModelFileError(f"{source}: a bert config needs {', '.join(missing)}")
        fields = {f.name: values.get(f.name, f.default) for f in dataclasses.fields(cls)}
        for key in cls._COUNTS:
            _check_count(source, key, fields[key], minimum=0 if key == "num_hidden_layers" else 1)
        _check_count(source, "pad_token_id", fields["pad_token_id"], minimum=0)
        eps = fields["layer_norm_eps"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ModelFileError(f"{source}: layer_norm_eps must be a positive number, found {eps!r}")
        if fields["hidden_act"] not in cls.HIDDEN_ACTS:
            raise ModelFileError(f"{source}: hidden_act {fields['hidden_act']!r} is not supported for bert; "
                                 f"supported: {', '.join(cls.HIDDEN_ACTS)}")
        position_type = values.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ModelFileError(f"{source}: position_embedding_type {position_type!r} is not supported for bert; "
                                 f"only 'absolute' is")
        if fields["hidden_size"] % fields["num_attention_heads"]:
            raise ModelFileError(f"{source}: hidden_size {fields['hidden_size']} is not a multiple of "
                                 f"num_attention_heads {fields['num_attention_heads']}")
        return cls(**fields)

    @property
    def head_dim(self) -> int:
        """Size of one attention head: ``hidden_size // num_attention_heads``."""
        return self.hidden_size // self.num_attention_heads

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The encoder's weights by canonical name (no ``bert.`` prefix); linear weights are ``(out, in)``."""
        h, i = self.hidden_size, self.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "embeddings.word_embeddings.weight": (self.vocab_size, h),
            "embeddings.position_embeddings.weight": (self.max_position_embeddings, h),
            "embeddings.token_type_embeddings.weight": (self.type_vocab_size, h),
            "embeddings.LayerNorm.weight": (h,),
            "embeddings.LayerNorm.bias": (h,),
        }
        for layer in range(self.num_hidden_layers):
            p = f"encoder.layer.{layer}."
            for proj in ("query", "key", "value"):
                shapes[f"{p}attention.self.{proj}.weight"] = (h, h)
                shapes[f"{p}attention.self.{proj}.bias"] = (h,)
            shapes.update({
                f"{p}attention.output.dense.weight": (h, h),
                f"{p}attention.output.dense.bias": (h,),
                f"{p}attention.output.LayerNorm.weight": (h,),
                f"{p}attention.output.LayerNorm.bias": (h,),
                f"{p}intermediate.dense.weight": (i, h),
                f"{p}intermediate.dense.bias": (i,),
                f"{p}output.dense.weight": (h, i),
                f"{p}output.dense.bias": (h,),
                f"{p}output.LayerNorm.weight": (h,),
                f"{p}output.LayerNorm.bias": (h,),
            })
        return shapes

    def optional_weights(self) -> frozenset[str]:
        """Weights a BERT checkpoint may hold that the encoder does not use: the pooler and a position-id buffer."""
        return frozenset({"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids"})

    def canonical_weight_name(self, name: str) -> str | None:
        """``name`` as :meth:`weight_shapes` spells it, or None for a task head's weight (``cls.*``).

        >>> cfg = BertConfig(vocab_size=8, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
        ...                  intermediate_size=8, max_position_embeddings=4)
        >>> cfg.canonical_weight_name("bert.encoder.layer.0.output.LayerNorm.gamma")
        'encoder.layer.0.output.LayerNorm.weight'
        >>> cfg.canonical_weight_name("cls.predictions.bias") is None
        True
        """
        if name.startswith("cls."):
            return None
        name = name.removeprefix("bert.")
        if ".LayerNorm." in name:
            name = name.removesuffix(".gamma") + ".weight" if name.endswith(".gamma") else name
            name = name.removesuffix(".beta") + ".bias" if name.endswith(".beta") else name
        return name


register_architecture("bert", ("BertModel", "BertForMaskedLM", "BertForPreTraining"), BertConfig)


def _architecture_of(values: dict[str, Any], source: str) -> Architecture:
    model_type = values.get("model_type")
    class_names = values.get("architectures") or []
    if model_type is not None:
        if model_type in _REGISTRY:
            return _REGISTRY[model_type]
        named = f"model_type {model_type!r}"
    elif class_names:
        for arch in _REGISTRY.values():
            if any(name in arch.class_names for name in class_names):
                return arch
        named = f"architectures {class_names!r}"
    else:
        raise UnsupportedArchitectureError(f"{source}: names no architecture (no 'model_type' or 'architectures' "
                                           f"key); supported: {'; '.join(supported_architectures())}")
    raise UnsupportedArchitectureError(f"{source}: architecture {named} is not supported; supported: "
                                       f"{'; '.join(supported_architectures())}")


def _canonical_weights(config: ArchitectureConfig, weights: dict[str, np.ndarray],
                       source: str) -> dict[str, tuple[str, np.ndarray]]:
    found: dict[str, tuple[str, np.ndarray]] = {}
    for original, array in weights.items():
        name = config.canonical_weight_name(original)
        if name is None:
            continue
        if name in found:
            raise ModelFileError(f"{source}: weights {found[name][0]!r} and {original!r} both give {name!r}")
        found[name] = (original, array)
    return found


def _check_count(source: str, key: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelFileError(f"{source}: {key} must be an integer >= {minimum}, found {value!r}")


_FLOAT_DTYPES = (np.dtype(ml_dtypes.bfloat16), np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.float8_e5m2))


def _is_float(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating) or dtype in _FLOAT_DTYPES


def _name_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
