"""workbench.frontend.config: config.json, the architecture registry, and weight shapes checked against it."""
import json

import numpy as np
import pytest

from workbench.frontend import (
    BertConfig, ModelFileError, UnsupportedArchitectureError, check_weights, config_from_dict,
    expected_weight_shapes, load_safetensors, read_config, register_architecture,
)

SMALL = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 20, "hidden_size": 8,
         "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 10,
         "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}


def _small_weights(cfg, prefix=""):
    return {prefix + n: np.zeros(s, "float32") for n, s in expected_weight_shapes(cfg).items()}


def _refused(fn, *fragments, error=ModelFileError):
    with pytest.raises(error) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return str(info.value)


def test_real_config(minilm_dir):
    cfg = read_config(minilm_dir)
    assert cfg == BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                             intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
                             layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0)
    assert cfg.head_dim == 32


def test_real_weights_have_the_config_shapes(minilm_dir):
    cfg = read_config(minilm_dir)
    raw = load_safetensors(f"{minilm_dir}/model.safetensors")
    weights = check_weights(cfg, raw, source="model.safetensors")
    assert list(weights) == list(expected_weight_shapes(cfg)) and len(weights) == 5 + 16 * 6
    assert "pooler.dense.weight" not in weights and "embeddings.position_ids" not in weights
    assert weights["encoder.layer.3.intermediate.dense.weight"].shape == (1536, 384)
    assert weights["embeddings.word_embeddings.weight"] is raw["embeddings.word_embeddings.weight"]   # no copy


def test_weight_count_and_shapes_follow_the_config():
    cfg = config_from_dict(SMALL)
    shapes = expected_weight_shapes(cfg)
    assert len(shapes) == 5 + 16 * 2
    assert shapes["embeddings.position_embeddings.weight"] == (10, 8)
    assert shapes["encoder.layer.1.output.dense.weight"] == (8, 16)
    assert shapes["encoder.layer.1.attention.self.key.bias"] == (8,)


def test_shape_disagreeing_with_config_names_weight_and_both_shapes(minilm_dir):
    cfg = read_config(minilm_dir)
    raw = dict(load_safetensors(f"{minilm_dir}/model.safetensors"))
    raw["encoder.layer.2.attention.self.value.weight"] = np.zeros((384, 383), "float32")
    _refused(lambda: check_weights(cfg, raw, source="model.safetensors"), "model.safetensors",
             "'encoder.layer.2.attention.self.value.weight'", "(384, 383)", "expects (384, 384)")


def test_config_with_a_wrong_hidden_size_against_real_weights(minilm_dir):
    with open(f"{minilm_dir}/config.json") as f:
        values = json.load(f)
    cfg = config_from_dict({**values, "intermediate_size": 1024})
    raw = load_safetensors(f"{minilm_dir}/model.safetensors")
    _refused(lambda: check_weights(cfg, raw), "'encoder.layer.0.intermediate.dense.weight'", "(1536, 384)",
             "expects (1024, 384)")


def test_missing_and_unexpected_weights_are_named():
    cfg = config_from_dict(SMALL)
    weights = _small_weights(cfg)
    del weights["encoder.layer.1.output.LayerNorm.bias"]
    _refused(lambda: check_weights(cfg, weights), "1 weight(s)", "missing", "'encoder.layer.1.output.LayerNorm.bias'")
    extra = {**_small_weights(cfg), "encoder.layer.2.output.dense.weight": np.zeros((8, 16), "float32")}
    _refused(lambda: check_weights(cfg, extra), "unexpected", "'encoder.layer.2.output.dense.weight'")


def test_many_missing_weights_are_summarised():
    cfg = config_from_dict(SMALL)
    message = _refused(lambda: check_weights(cfg, {}), "37 weight(s)", "and 31 more")
    assert len(message) < 600


def test_checkpoint_name_variants_are_accepted():
    cfg = config_from_dict(SMALL)
    weights = _small_weights(cfg, prefix="bert.")
    weights = {n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): a
               for n, a in weights.items()}
    weights["cls.predictions.bias"] = np.zeros(20, "float32")          # a masked-LM head: not the encoder's
    weights["bert.pooler.dense.weight"] = np.zeros((8, 8), "float32")  # optional, dropped
    checked = check_weights(cfg, weights)
    assert list(checked) == list(expected_weight_shapes(cfg))


def test_two_names_for_one_weight_are_refused():
    cfg = config_from_dict(SMALL)
    weights = {**_small_weights(cfg), "bert.embeddings.LayerNorm.bias": np.zeros(8, "float32")}
    _refused(lambda: check_weights(cfg, weights), "'embeddings.LayerNorm.bias'", "'bert.embeddings.LayerNorm.bias'")


def test_integer_weight_is_refused():
    cfg = config_from_dict(SMALL)
    weights = {**_small_weights(cfg), "embeddings.word_embeddings.weight": np.zeros((20, 8), "int32")}
    _refused(lambda: check_weights(cfg, weights), "'embeddings.word_embeddings.weight'", "int32",
             "not a floating-point")


@pytest.mark.parametrize("values, named", [
    ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, "model_type 'gpt2'"),
    ({"architectures": ["LlamaForCausalLM"]}, "architectures ['LlamaForCausalLM']"),
    ({"hidden_size": 8}, "names no architecture"),
])
def test_unsupported_architecture_lists_the_supported_ones(values, named):
    message = _refused(lambda: config_from_dict(values, source="cfg.json"), "cfg.json", named,
                       "supported: bert (BertModel", error=UnsupportedArchitectureError)
    assert isinstance(UnsupportedArchitectureError(message), ValueError)


def test_architecture_found_from_class_name_alone():
    values = {k: v for k, v in SMALL.items() if k != "model_type"}
    assert isinstance(config_from_dict(values), BertConfig)


@pytest.mark.parametrize("change, fragments", [
    ({"hidden_size": None}, ("hidden_size", "integer >= 1", "None")),
    ({"num_attention_heads": 3}, ("hidden_size 8", "multiple of num_attention_heads 3")),
    ({"vocab_size": 0}, ("vocab_size", ">= 1")),
    ({"num_hidden_layers": True}, ("num_hidden_layers", "True")),
    ({"layer_norm_eps": -1.0}, ("layer_norm_eps", "positive")),
    ({"hidden_act": "swish"}, ("hidden_act 'swish'", "gelu")),
    ({"position_embedding_type": "relative_key"}, ("position_embedding_type 'relative_key'", "absolute")),
])
def test_bad_config_values(change, fragments):
    _refused(lambda: config_from_dict({**SMALL, **change}, source="cfg.json"), "cfg.json", *fragments)


def test_missing_required_key():
    values = {k: v for k, v in SMALL.items() if k != "intermediate_size"}
    _refused(lambda: config_from_dict(values, source="cfg.json"), "cfg.json", "needs intermediate_size")


def test_defaults_for_optional_keys():
    values = {k: v for k, v in SMALL.items() if k not in ("type_vocab_size", "layer_norm_eps", "hidden_act")}
    cfg = config_from_dict(values)
    assert (cfg.type_vocab_size, cfg.layer_norm_eps, cfg.hidden_act, cfg.pad_token_id) == (2, 1e-12, "gelu", 0)


def test_config_file_errors(tmp_path):
    _refused(lambda: read_config(tmp_path), "config.json", "does not exist")
    (tmp_path / "config.json").write_text("{not json")
    _refused(lambda: read_config(tmp_path / "config.json"), "config.json", "not valid JSON")
    (tmp_path / "config.json").write_text("[1, 2]")
    _refused(lambda: read_config(tmp_path), "config.json", "expected a JSON object")


def test_registering_an_architecture_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("bert", ("BertModel",), BertConfig)
