"""Model import: model folders (config.json, safetensors weights, tokenizer.json) read into numpy and config objects.

>>> from workbench import frontend
>>> frontend.supported_architectures()
['bert (BertModel, BertForMaskedLM, BertForPreTraining)']
"""
from .config import (
    Architecture, BertConfig, check_weights, config_from_dict, expected_weight_shapes, read_config,
    register_architecture, supported_architectures,
)
from .errors import ModelFileError, UnsupportedArchitectureError
from .model_files import Checkpoint, ModelFiles, load_checkpoint, load_weights, locate_model_files
from .tokenizer import BatchEncoding, Tokenizer, load_tokenizer
from .weights import load_safetensors, read_safetensors_header

__all__ = [
    "Architecture", "BertConfig", "check_weights", "config_from_dict", "expected_weight_shapes", "read_config",
    "register_architecture", "supported_architectures", "ModelFileError", "UnsupportedArchitectureError",
    "Checkpoint", "ModelFiles", "load_checkpoint", "load_weights", "locate_model_files", "BatchEncoding",
    "Tokenizer", "load_tokenizer", "load_safetensors", "read_safetensors_header",
]
