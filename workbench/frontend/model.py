"""``wb.frontend.load(folder)``: a model folder as a graph-level module, its weights and its tokenizer.

The folder holds config.json, model.safetensors (or shards) and tokenizer.json
(:func:`~workbench.frontend.model_files.load_checkpoint` reads and checks them). The architecture named by
config.json is built as an :class:`~workbench.frontend.nn.Module` and exported: ``model.mod`` has the graph
function ``forward(input_ids, attention_mask, *params)`` over symbolic ``batch`` and ``seq``, and
``model.param_list`` holds the weights in the order of ``params``.

``model.embed(sentences)`` compiles the module once per target (LegalizeOps, FuseOps, FuseTIR,
DefaultSchedule, StaticPlanBlockMemory, ``wb.build``, ``wb.VirtualMachine``), runs it, mean-pools over the real tokens and
L2-normalises. The scheduled module is kept on disk (``~/.cache/workbench/models``, or
``$WORKBENCH_CACHE_DIR/models``) under the structural hash of the model's module, the target and the
compiler's sources, so a new process skips the graph passes; ``wb.build`` keeps the compiled kernels
(``.../builds``), so it skips compiling them too. ``WORKBENCH_NO_DISK_CACHE=1`` turns both off.
"""
from __future__ import annotations

import hashlib
import os
import threading
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from ..ir.function import IRModule
from . import nn
from .bert import BertModel, bert_specs
from .config import ArchitectureConfig
from .errors import ModelFileError, UnsupportedArchitectureError
from .model_files import Checkpoint, load_checkpoint
from .tokenizer import Tokenizer

__all__ = ["Model", "load", "graph_architectures", "compile_module", "cache_dir"]

#: model_type -> (config -> (module, export specs)): the architectures that have a graph definition
_GRAPH_BUILDERS: dict[str, Callable[[Any], tuple[nn.Module, dict]]] = {
    "bert": lambda config: (BertModel(config), bert_specs()),
}


def graph_architectures() -> list[str]:
    """The ``model_type`` s :func:`load` can build a graph for."""
    return sorted(_GRAPH_BUILDERS)


def load(path: str | os.PathLike, **options) -> "Model":
    """The model in the folder ``path`` (config.json, model.safetensors, tokenizer.json), or, for a ``*.gguf``
    file, the decoder LLM in it (:func:`~workbench.frontend.llm.load_llm`; ``options``: ``target``,
    ``context_limit``).

    A missing or corrupted file, a weight whose shape disagrees with config.json or an unsupported
    architecture raises :class:`~workbench.frontend.errors.ModelFileError` naming the file and the fault.
    """
    if str(path).lower().endswith(".gguf"):
        from .llm import load_llm

        return load_llm(path, **options)
    if options:
        raise TypeError(f"load() of a model folder takes no options, got {', '.join(options)}")
    return Model(load_checkpoint(path))


class Model:
    """A loaded model: ``.mod`` (the graph module), ``.params`` (name -> array), ``.param_list`` (the arrays in
    the order of the graph function's weight parameters), ``.tokenizer``, ``.config``."""

    def __init__(self, checkpoint: Checkpoint):
        config = checkpoint.config
        build = _GRAPH_BUILDERS.get(config.model_type)
        if build is None:
            raise UnsupportedArchitectureError(
                f"{checkpoint.files.config}: there is no graph definition for architecture "
                f"{config.model_type!r}; supported: {', '.join(graph_architectures())}")
        module, specs = build(config)
        self.mod, exported = module.export(specs)
        self.config: ArchitectureConfig = config
        self.tokenizer: Tokenizer | None = checkpoint.tokenizer
        self.files = checkpoint.files
        self.params: dict[str, np.ndarray] = {name: _as_param(checkpoint, name, p) for name, p in exported}
        self.param_list: list[np.ndarray] = [self.params[name] for name, _ in exported]
        self._vms: dict[tuple, Any] = {}   # (target, database fingerprint) -> VM

    # running -------------------------------------------------------------------------------------
    def virtual_machine(self, target: str = "llvm", database=None):
        """The compiled model for ``target`` (built on first use, then kept by this object).

        ``database`` (a tuning database or its path, as ``wb.tune(model, ...)`` writes): kernels
        with a record for ``target`` get the best record's schedule instead of the default one."""
        database = _as_database(database)
        key = (target, _database_key(database))
        vm = self._vms.get(key)
        if vm is None:
            from ..backend import build
            from ..backend.vm import VirtualMachine

            vm = self._vms[key] = VirtualMachine(build(compile_module(self.mod, target, database=database),
                                                       target=target))
        return vm

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, target: str = "llvm") -> np.ndarray:
        """The last hidden state ``[batch, seq, hidden]`` for token ids and mask ``[batch, seq]``."""
        seq = np.shape(input_ids)[-1]
        limit = getattr(self.config, "max_position_embeddings", None)
        if limit is not None and seq > limit:
            raise ValueError(f"the sequences have {seq} tokens but the model has position embeddings for only "
                             f"{limit}; truncate them")
        out = self.virtual_machine(target)["forward"](input_ids, attention_mask, *self.param_list)
        return out.numpy() if hasattr(out, "numpy") else np.asarray(out)

    def embed(self, sentences: Sequence[str], target: str = "llvm") -> np.ndarray:
        """Sentence embeddings ``[len(sentences), hidden]``: tokenize (padded to the longest), run, mean-pool
        over the real tokens, L2-normalise."""
        if self.tokenizer is None:
            raise ModelFileError(f"model folder {self.files.folder!r} has no tokenizer.json, so it cannot embed "
                                 f"sentences; call model.forward(input_ids, attention_mask) with token ids")
        batch = self.tokenizer(sentences)
        hidden = self.forward(batch.input_ids, batch.attention_mask, target)
        return l2_normalize(mean_pool(hidden, batch.attention_mask))

    # display -------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"Model({self.config.model_type}, {len(self.param_list)} weights, "
                f"{sum(a.size for a in self.param_list):,} parameters, from {self.files.folder!r})")

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The model's graph (``wb.viz.graph``), titled with this model."""
        try:
            from ..viz import mimebundle
        except ImportError:  # viz not available: the summary, as text
            return {"text/plain": repr(self)}
        return mimebundle(self)


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of ``hidden`` ``[B, S, H]`` over the positions where ``attention_mask`` is 1 -> ``[B, H]``."""
    m = attention_mask.astype(hidden.dtype)[:, :, None]
    return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# compiling, with the scheduled module kept on disk --------------------------------------------------

def cache_dir() -> str:
    """Where scheduled model modules are kept: ``$WORKBENCH_CACHE_DIR/models`` or ``~/.cache/workbench/models``."""
    from ..backend.cache import cache_root

    return os.path.join(cache_root(), "models")


def compile_module(mod: IRModule, target: str = "llvm", database=None) -> IRModule:
    """``mod`` legalized, fused and scheduled for ``target``; read from the disk cache when it is there
    (never with ``WORKBENCH_NO_DISK_CACHE=1``). ``database`` (a tuning database or its path) is
    passed to ``DefaultSchedule``: kernels with a record get the best record's schedule."""
    from ..backend.cache import disk_enabled

    database = _as_database(database)
    if not disk_enabled():
        return _run_passes(mod, target, database)
    path = os.path.join(cache_dir(), f"{_cache_key(mod, target, database)}.py")
    cached = _read_cached(path)
    if cached is not None:
        return cached
    compiled = _run_passes(mod, target, database)
    _write_cached(path, compiled.script())
    return compiled


def _run_passes(mod: IRModule, target: str, database) -> IRModule:
    # ``_passes(target)`` alone when there is no database: tests replace ``_passes`` with a one-argument stand-in
    return (_passes(target) if database is None else _passes(target, database))(mod)


def _passes(target: str, database=None):
    from .. import transform

    return transform.Sequential([transform.LegalizeOps(), transform.FuseOps(), transform.FuseTIR(),
                                 transform.DefaultSchedule(target, database=database),
                                 transform.StaticPlanBlockMemory()])


def _as_database(database):
    """A tuning database given as a path, read once (None stays None)."""
    if database is None:
        return None
    from ..tuning.database import Database

    if isinstance(database, Database):
        return database
    if isinstance(database, (str, os.PathLike)):
        return Database(database)
    raise TypeError(f"database must be a tuning Database or the path of one (as wb.tune writes), "
                    f"got {type(database).__name__}")


def _database_key(database) -> str:
    """What of the tuning database the compiled module depends on: its records' content ("" for none)."""
    return "" if database is None else database.fingerprint()


def _cache_key(mod: IRModule, target: str, database=None) -> str:
    from ..ir.structural import structural_hash

    h = hashlib.sha256()
    h.update(str(structural_hash(mod)).encode())
    h.update(str(target).encode())
    h.update(_compiler_fingerprint().encode())
    h.update(_database_key(database).encode())
    return h.hexdigest()[:32]


_FINGERPRINT: list[str] = []


def _compiler_fingerprint() -> str:
    """A hash of every source file of the package: a scheduled module depends on the graph passes, the op
    library, the schedules, the analyzer and the target's vector widths, and a frontend's own schedules
    (``llama.py``, ``int8_decode.py``), so any change to the compiler means a module an older one wrote is
    never read (hashing the whole package, about 2 MB, takes a few milliseconds once per process)."""
    if not _FINGERPRINT:
        _FINGERPRINT.append(source_fingerprint(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return _FINGERPRINT[0]


def source_fingerprint(root: str) -> str:
    """A hash of the names and contents of the ``.py`` files under ``root``, in a fixed order."""
    h = hashlib.sha256()
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                h.update(os.path.relpath(path, root).encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def _read_cached(path: str) -> IRModule | None:
    from ..ir.parser import ScriptError, parse

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):  # none, unreadable, or not text: compile
        return None
    try:
        mod = parse(text)
    except ScriptError as e:
        warnings.warn(f"the cached model module {path!r} does not parse ({e}); compiling again", stacklevel=3)
        return None
    return mod if isinstance(mod, IRModule) else None


def _write_cached(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed); a folder that cannot be written
    leaves the module uncached."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.remove(tmp)


def _as_param(checkpoint: Checkpoint, name: str, p: nn.Parameter) -> np.ndarray:
    """The checkpoint's weight ``name`` in the parameter's dtype (float16/bfloat16 weights are converted)."""
    array = checkpoint.weights.get(name)
    if array is None:
        raise ModelFileError(f"{checkpoint.files.weights}: the {checkpoint.config.model_type} graph needs weight "
                             f"{name!r}, which the checkpoint does not have")
    return array if array.dtype == np.dtype(p.dtype) else array.astype(p.dtype)
