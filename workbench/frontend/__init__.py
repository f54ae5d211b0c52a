"""Model import: model folders (config.json, safetensors weights, tokenizer.json) read into numpy and config objects,
the architectures built as graph functions with the module API :mod:`workbench.frontend.nn`, and
:func:`load` (a folder -> :class:`Model`, whose ``embed`` runs the compiled graph).

>>> from workbench import frontend
>>> frontend.supported_architectures()
['bert (BertModel, BertForMaskedLM, BertForPreTraining)']
"""
from .config import (
    Architecture, BertConfig, check_weights, config_from_dict, expected_weight_shapes, read_config,
    register_architecture, supported_architectures,
)
from . import nn
from .errors import ModelFileError, UnsupportedArchitectureError
from .llm import LLM, load_llm
from .model import Model, compile_module, graph_architectures, load
from .group_quantize import QuantizationReport, QuantizedModel, accuracy_change, quantize
from .model_files import Checkpoint, ModelFiles, load_checkpoint, load_weights, locate_model_files
from .tokenizer import BatchEncoding, Tokenizer, load_tokenizer
from .weights import load_safetensors, read_safetensors_header

__all__ = [
    "Architecture", "BertConfig", "check_weights", "config_from_dict", "expected_weight_shapes", "read_config",
    "register_architecture", "supported_architectures", "ModelFileError", "UnsupportedArchitectureError",
    "Checkpoint", "ModelFiles", "load_checkpoint", "load_weights", "locate_model_files", "BatchEncoding",
    "Tokenizer", "load_tokenizer", "load_safetensors", "read_safetensors_header", "nn", "load", "Model",
    "compile_module", "graph_architectures", "LLM", "load_llm",
]
__all__ += ["quantize", "accuracy_change", "QuantizedModel", "QuantizationReport"]
