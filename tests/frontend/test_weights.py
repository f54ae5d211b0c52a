"""workbench.frontend.weights: safetensors files memory-mapped into numpy, and clear errors for broken files."""
import json
import struct

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from workbench.frontend import ModelFileError, load_safetensors, read_safetensors_header


def _valid_file(tmp_path, name="w.safetensors"):
    path = tmp_path / name
    save_file({"a": np.arange(12, dtype="float32").reshape(3, 4), "b": np.array([1, -2, 3], "int64")}, str(path))
    return path


def _raw_file(tmp_path, header: dict, data: bytes, name="raw.safetensors"):
    """A file written byte by byte: the 8-byte header length, the JSON header, the data section."""
    text = json.dumps(header).encode()
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _refused(path, *fragments):
    with pytest.raises(ModelFileError) as info:
        load_safetensors(path)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


DTYPES = ["float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "uint16", "bool"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_matches_the_safetensors_library(tmp_path, dtype, rng):
    values = {"x": (rng.standard_normal((3, 5)) * 50).astype(dtype), "scalar": np.array(7, dtype),
              "empty": np.zeros((0, 4), dtype)}
    path = tmp_path / "t.safetensors"
    save_file(values, str(path))
    ours, theirs = load_safetensors(path), load_file(str(path))
    assert ours.keys() == theirs.keys() == values.keys()
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype and ours[name].shape == array.shape
        np.testing.assert_array_equal(ours[name], array)


def test_arrays_are_read_only_views_of_the_mapped_file(tmp_path):
    weights = load_safetensors(_valid_file(tmp_path))
    a = weights["a"]
    assert not a.flags.writeable and not a.flags.owndata
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    np.testing.assert_array_equal(a, np.arange(12, dtype="float32").reshape(3, 4))


def test_bfloat16_tensor(tmp_path):
    # bfloat16 is the upper half of a float32: written here by hand, read back through ml_dtypes
    exact = np.array([1.0, -2.5, 3072.0], dtype="<f4")
    data = (exact.view("<u4") >> 16).astype("<u2").tobytes()
    path = _raw_file(tmp_path, {"h": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}, data)
    h = load_safetensors(path)["h"]
    assert h.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(h.astype("float32"), exact)


def test_header_metadata_and_shapes(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": np.zeros((2, 3), "float16")}, str(path), metadata={"format": "pt"})
    header = read_safetensors_header(path)
    assert header.metadata == {"format": "pt"}
    assert header.tensors["w"].shape == (2, 3) and header.tensors["w"].dtype == np.float16
    assert header.data_size == 12


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.safetensors", "does not exist")


def test_folder_instead_of_file(tmp_path):
    _refused(tmp_path, "is not a file")


def test_file_shorter_than_the_length_field(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x10\x00\x00")
    _refused(path, "truncated", "3 bytes")


def test_truncated_inside_the_header(tmp_path):
    path = _valid_file(tmp_path)
    path.write_bytes(path.read_bytes()[:40])
    _refused(path, "truncated", "header length field")


def test_truncated_data_section(tmp_path):
    path = _valid_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-5])
    _refused(path, "truncated", "tensor")


def test_corrupted_header_json(tmp_path):
    path = _valid_file(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[8:14] = b"#!@$%^"   # same length: the length field still matches
    path.write_bytes(bytes(raw))
    _refused(path, "corrupted header", "not valid UTF-8 JSON")


def test_header_that_is_not_an_object(tmp_path):
    _refused(_raw_file(tmp_path, [1, 2], b""), "corrupted header", "list")


def test_pickle_is_refused_not_loaded(tmp_path):
    import pickle

    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(pickle.dumps({"w": [1.0] * 100}))
    _refused(path, "not a safetensors file")


def test_offsets_beyond_the_data_section(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    _refused(_raw_file(tmp_path, header, bytes(16)), "'w'", "8..24", "16 bytes")


def test_offsets_that_disagree_with_the_shape(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}
    _refused(_raw_file(tmp_path, header, bytes(24)), "'w'", "span 16 bytes", "needs 24")


def test_reversed_or_malformed_offsets(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}
    _refused(_raw_file(tmp_path, header, bytes(8)), "'w'", "data_offsets")
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, "4"]}}
    _refused(_raw_file(tmp_path, header, bytes(8), name="b.safetensors"), "'w'", "data_offsets")


def test_overlapping_tensors(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    _refused(_raw_file(tmp_path, header, bytes(12)), "overlaps")


def test_holes_and_trailing_bytes_in_the_data_section(tmp_path):
    # the format forbids unindexed bytes (they would let a file be two formats at once)
    header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
              "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    _refused(_raw_file(tmp_path, header, bytes(12)), "data bytes 4..8 belong to no tensor")
    header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    _refused(_raw_file(tmp_path, header, bytes(10), name="t.safetensors"), "10 bytes", "use 4")


def test_bad_shape_and_missing_keys(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}
    _refused(_raw_file(tmp_path, header, bytes(4)), "'w'", "shape")
    header = {"w": {"dtype": "F32", "data_offsets": [0, 4]}}
    _refused(_raw_file(tmp_path, header, bytes(4), name="b.safetensors"), "'w'", "needs 'dtype', 'shape'")


@pytest.mark.parametrize("dtype", ["C64", "F4", "float32"])
def test_unsupported_dtype(tmp_path, dtype):
    header = {"w": {"dtype": dtype, "shape": [1], "data_offsets": [0, 8]}}
    _refused(_raw_file(tmp_path, header, bytes(8)), "'w'", f"unsupported dtype {dtype!r}", "F32")


def test_metadata_that_is_not_an_object(tmp_path):
    _refused(_raw_file(tmp_path, {"__metadata__": [1]}, b""), "__metadata__")


def test_real_model_file_matches_the_safetensors_library(minilm_dir):
    path = f"{minilm_dir}/model.safetensors"
    ours, theirs = load_safetensors(path), load_file(path)
    assert list(ours) == list(theirs) and len(ours) == 101 + 3   # encoder + pooler (2) + position_ids
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.weight",
                 "embeddings.position_ids"):
        assert ours[name].dtype == theirs[name].dtype
        np.testing.assert_array_equal(ours[name], theirs[name])
