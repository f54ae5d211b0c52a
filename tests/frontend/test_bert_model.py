"""wb.frontend.load on all-MiniLM-L6-v2: the BERT graph, embed against the numpy reference, bad model folders."""
import json
import os

import numpy as np
import pytest

import workbench as wb
from workbench.frontend import ModelFileError, UnsupportedArchitectureError
from workbench.frontend import model as model_module
from workbench.frontend.bert import BertModel, bert_specs
from workbench.frontend.config import BertConfig
from workbench.ir.graph.script import size_var
from workbench.ir.graph.types import TensorType

from .graph_walk import run_graph
from .reference_bert import bert_hidden_states, reference_embed, reference_tokenize


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return wb.frontend.load(minilm_dir)


def test_graph_has_symbolic_batch_and_seq_and_the_checkpoint_weights(minilm):
    f = minilm.mod["forward"]
    batch, seq = size_var("batch"), size_var("seq")
    for p in f.params[:2]:
        assert p.type.shape[0] is batch and p.type.shape[1] is seq and p.type.dtype == "int64"
    assert f.ret_type.shape[0] is batch and f.ret_type.shape[1] is seq and f.ret_type.shape[2].value == 384
    assert f.attrs["num_input"] == 2
    weights = f.params[2:]
    assert list(minilm.params) == list(minilm.config.weight_shapes())
    assert len(minilm.param_list) == len(weights) == 101
    for var, array in zip(weights, minilm.param_list):
        assert isinstance(var.type, TensorType) and var.type.dtype == str(array.dtype)
        assert tuple(d.value for d in var.type.shape) == array.shape, var.name
    ops = {b.value.op.name for blk in f.body.blocks for b in blk.bindings if hasattr(b.value, "op")}
    assert {"embedding", "layer_norm", "linear", "scaled_dot_product_attention", "gelu"} <= ops
    wb.verify_graph(minilm.mod)
    assert wb.structural_equal(wb.parse(minilm.mod.script()), minilm.mod)


def test_graph_through_op_references_matches_the_numpy_bert(minilm, minilm_dir, minilm_reference_weights):
    ids, mask = reference_tokenize(minilm_dir, ["A man is playing a guitar.", "Hi"])    # one row padded
    hidden = run_graph(minilm.mod, "forward", ids, mask, *minilm.param_list)
    expected = bert_hidden_states(minilm_reference_weights, ids, mask, num_heads=12)
    assert hidden.shape == expected.shape == (2, ids.shape[1], 384)
    assert np.abs(hidden - expected).max() <= 1e-4


@pytest.fixture(scope="module")
def compiled_minilm(minilm, tmp_path_factory):
    """MiniLM compiled once for the module's tests (the scheduled module cached in a temporary folder)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("wbcache")))
    minilm.virtual_machine("llvm")
    yield minilm
    patch.undo()


def test_embed_matches_the_numpy_reference(compiled_minilm, minilm_dir, minilm_reference_weights, sentences):
    assert len(sentences) >= 8
    emb = compiled_minilm.embed(sentences)
    expected = reference_embed(minilm_dir, sentences, weights=minilm_reference_weights)
    assert emb.shape == (len(sentences), 384) and emb.dtype == np.float32
    assert np.abs(emb - expected).max() <= 1e-4
    alone = compiled_minilm.embed([sentences[7]])                    # another batch and sequence length
    assert np.abs(alone[0] - expected[7]).max() <= 1e-4


def test_forward_refuses_bad_inputs(compiled_minilm):
    ids = np.array([[101, 7592, 102]], "int64")
    with pytest.raises(TypeError, match="input_ids .* has dtype float32 but .*int64"):
        compiled_minilm.forward(ids.astype("float32"), np.ones_like(ids))
    with pytest.raises(ValueError, match="position embeddings for only 512"):
        compiled_minilm.forward(np.zeros((1, 600), "int64"), np.ones((1, 600), "int64"))


def test_scheduled_module_is_read_back_from_the_disk_cache(tmp_path, monkeypatch):
    cfg = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=10)
    mod, _ = BertModel(cfg).export(bert_specs())
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    runs = []
    monkeypatch.setattr(model_module, "_passes", lambda target: lambda m: runs.append(target) or
                        wb.transform.LegalizeOps()(m))
    first = model_module.compile_module(mod, "llvm")
    second = model_module.compile_module(mod, "llvm")
    assert runs == ["llvm"] and wb.structural_equal(first, second)
    assert len(os.listdir(tmp_path / "models")) == 1
    model_module.compile_module(mod, "llvm -mcpu=znver3")              # another target: another entry
    assert runs == ["llvm", "llvm -mcpu=znver3"]


def test_the_cache_key_changes_with_any_source_file_of_the_compiler(tmp_path):
    """The key's source hash covers every .py file in any folder (a frontend's own schedules included, which it
    once missed), and nothing else."""
    import shutil

    root = tmp_path / "workbench"
    shutil.copytree(os.path.dirname(model_module.__file__), root / "frontend",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "schedule").mkdir()
    (root / "schedule" / "split.py").write_text("x = 1\n")
    base = model_module.source_fingerprint(str(root))
    assert model_module.source_fingerprint(str(root)) == base
    (root / "frontend" / "README.txt").write_text("not a source file")
    assert model_module.source_fingerprint(str(root)) == base
    llama = root / "frontend" / "llama.py"
    llama.write_text(llama.read_text() + "\n# a changed schedule\n")
    changed = model_module.source_fingerprint(str(root))
    assert changed != base
    (root / "schedule" / "split.py").write_text("x = 2\n")
    nested = model_module.source_fingerprint(str(root))
    assert nested not in (base, changed)
    (root / "schedule" / "split.py").rename(root / "schedule" / "fuse.py")   # same content, another name
    assert model_module.source_fingerprint(str(root)) not in (base, changed, nested)


# -- bad model folders -----------------------------------------------------------------------------

def _copy_folder(src: str, dst, config_changes=None, files=("config.json", "model.safetensors", "tokenizer.json")):
    for name in files:
        if name == "config.json" and config_changes is not None:
            with open(os.path.join(src, name), encoding="utf-8") as f:
                config = json.load(f)
            config.update(config_changes)
            (dst / name).write_text(json.dumps(config), encoding="utf-8")
        else:
            os.symlink(os.path.join(src, name), dst / name)
    return str(dst)


def test_weight_shape_disagreeing_with_config_is_named(minilm_dir, tmp_path):
    folder = _copy_folder(minilm_dir, tmp_path, {"intermediate_size": 1000})
    with pytest.raises(ModelFileError, match=r"weight 'encoder.layer.0.intermediate.dense.weight' has shape "
                                             r"\(1536, 384\) but the config expects \(1000, 384\)"):
        wb.frontend.load(folder)


def test_missing_tokenizer_is_named(minilm_dir, tmp_path):
    folder = _copy_folder(minilm_dir, tmp_path, files=("config.json", "model.safetensors"))
    with pytest.raises(ModelFileError, match="has no tokenizer.json"):
        wb.frontend.load(folder)


def test_unsupported_architecture_lists_the_supported_ones(minilm_dir, tmp_path):
    folder = _copy_folder(minilm_dir, tmp_path, {"model_type": "gpt2", "architectures": ["GPT2Model"]})
    with pytest.raises(UnsupportedArchitectureError, match=r"'gpt2' is not supported; supported: bert \(BertModel"):
        wb.frontend.load(folder)


def test_architecture_without_a_graph_definition_lists_the_supported_ones(minilm_dir, monkeypatch):
    monkeypatch.setattr(model_module, "_GRAPH_BUILDERS", {"llama": None})
    with pytest.raises(UnsupportedArchitectureError, match="no graph definition for architecture 'bert'; "
                                                           "supported: llama"):
        wb.frontend.load(minilm_dir)


def test_model_shows_its_graph(minilm):
    bundle = minilm._repr_mimebundle_()
    assert "def forward(input_ids" in bundle["text/plain"]
    assert repr(minilm).startswith("Model(bert, 101 weights, 22,565,376 parameters")
