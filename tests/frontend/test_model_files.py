"""workbench.frontend.model_files: locating a model folder's files and loading them checked."""
import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

from workbench.frontend import BertConfig, ModelFileError, load_checkpoint, load_weights, locate_model_files

from .test_config import SMALL, _small_weights


def _folder(tmp_path, minilm_dir, files=("config.json", "model.safetensors", "tokenizer.json")):
    """A model folder in tmp_path with some of the real model's files (the weights linked, not copied)."""
    for name in files:
        if name == "model.safetensors":
            os.symlink(os.path.join(minilm_dir, name), tmp_path / name)
        else:
            shutil.copy(os.path.join(minilm_dir, name), tmp_path / name)
    return tmp_path


def test_load_checkpoint_of_the_real_model(minilm_dir):
    ckpt = load_checkpoint(minilm_dir)
    assert isinstance(ckpt.config, BertConfig) and ckpt.config.num_hidden_layers == 6
    assert len(ckpt.weights) == 101 and ckpt.tokenizer.pad_id == 0
    assert ckpt.files.weights.endswith("model.safetensors") and ckpt.files.tokenizer.endswith("tokenizer.json")


def test_missing_tokenizer_lists_the_folder(tmp_path, minilm_dir):
    folder = _folder(tmp_path, minilm_dir, files=("config.json", "model.safetensors"))
    with pytest.raises(ModelFileError, match=r"no tokenizer.json \(it holds: config.json, model.safetensors\)"):
        load_checkpoint(folder)
    assert load_checkpoint(folder, require_tokenizer=False).tokenizer is None


def test_missing_config_and_weights(tmp_path, minilm_dir):
    folder = _folder(tmp_path, minilm_dir, files=("tokenizer.json",))
    with pytest.raises(ModelFileError, match="no config.json"):
        locate_model_files(folder)
    shutil.copy(os.path.join(minilm_dir, "config.json"), folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelFileError, match="no model.safetensors.*pytorch_model.bin is not read.*never pickles"):
        locate_model_files(folder)


def test_not_a_folder(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist or is not a folder"):
        locate_model_files(tmp_path / "absent")


def test_truncated_weights_are_reported_by_load_checkpoint(tmp_path, minilm_dir):
    folder = _folder(tmp_path, minilm_dir, files=("config.json", "tokenizer.json"))
    with open(os.path.join(minilm_dir, "model.safetensors"), "rb") as f:
        (folder / "model.safetensors").write_bytes(f.read(1_000_000))
    with pytest.raises(ModelFileError, match=r"model.safetensors' is truncated or corrupted: tensor"):
        load_checkpoint(folder)


def test_config_disagreeing_with_the_weights(tmp_path, minilm_dir):
    folder = _folder(tmp_path, minilm_dir, files=("model.safetensors", "tokenizer.json"))
    with open(os.path.join(minilm_dir, "config.json")) as f:
        values = json.load(f)
    (folder / "config.json").write_text(json.dumps({**values, "max_position_embeddings": 256}))
    with pytest.raises(ModelFileError, match=r"'embeddings.position_embeddings.weight' has shape \(512, 384\) "
                                             r"but the config expects \(256, 384\)"):
        load_checkpoint(folder)


def test_unsupported_architecture_in_folder(tmp_path, minilm_dir):
    folder = _folder(tmp_path, minilm_dir, files=("model.safetensors", "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps({"model_type": "t5", "architectures": ["T5Model"]}))
    with pytest.raises(ModelFileError, match="model_type 't5' is not supported; supported: bert"):
        load_checkpoint(folder)


def _sharded_folder(tmp_path, weight_map_edit=None):
    from workbench.frontend import config_from_dict

    cfg = config_from_dict(SMALL)
    weights = {n: np.full(a.shape, i, "float32") for i, (n, a) in enumerate(_small_weights(cfg).items())}
    names = list(weights)
    shards = {"model-00001-of-00002.safetensors": names[:10], "model-00002-of-00002.safetensors": names[10:]}
    for shard, shard_names in shards.items():
        save_file({n: weights[n] for n in shard_names}, str(tmp_path / shard))
    weight_map = {n: shard for shard, shard_names in shards.items() for n in shard_names}
    weight_map.update(weight_map_edit or {})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    return tmp_path, weights


def test_sharded_weights(tmp_path):
    folder, weights = _sharded_folder(tmp_path)
    ckpt = load_checkpoint(folder, require_tokenizer=False)
    assert list(ckpt.weights) == list(weights)
    for name, array in weights.items():
        np.testing.assert_array_equal(ckpt.weights[name], array)


def test_shard_index_errors(tmp_path):
    folder, _ = _sharded_folder(tmp_path, {"embeddings.LayerNorm.bias": "model-00002-of-00002.safetensors"})
    index = folder / "model.safetensors.index.json"
    with pytest.raises(ModelFileError, match="places 'embeddings.LayerNorm.bias' in 'model-00002-of-00002"):
        load_weights(index)
    index.write_text(json.dumps({"weight_map": {"w": "../elsewhere.safetensors"}}))
    with pytest.raises(ModelFileError, match="outside its folder"):
        load_weights(index)
    index.write_text("[]")
    with pytest.raises(ModelFileError, match="not a JSON object"):
        load_weights(index)
    index.write_text("{}")
    with pytest.raises(ModelFileError, match="no 'weight_map'"):
        load_weights(index)
