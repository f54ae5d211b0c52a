"""A decoder LLM from a GGUF file: the compiled llama graph, its KV cache, text generation and chat.

``llm = wb.frontend.load("SmolLM2-135M-Instruct.Q4_1.gguf")`` (or :func:`load_llm`) reads the file
(weights stay memory-mapped and packed), builds :func:`~workbench.frontend.llama.build_llama`'s module and
compiles it on first use (LegalizeOps, FuseOps, FuseTIR, the fused dequantize-matmul schedule,
DefaultSchedule, memory planning; the scheduled module and the kernels are kept on disk).

* ``llm.generate(prompt, max_new_tokens=128, temperature=0.0, top_p=1.0, stop=None, seed=None)``: a str prompt
  gives the continuation as str, a list of token ids gives new token ids; greedy when ``temperature == 0``.
  Generation ends at ``max_new_tokens``, at one of the model's stop tokens (end of text, ``<|im_end|>``...)
  or at a ``stop`` string (str prompts) / id (id prompts); the stop token or string is not part of the result.
* ``llm.chat(messages, stream=False, **generate_options)``: the messages rendered by the file's chat
  template; the answer as str, or (``stream=True``) an iterator of text pieces as they are generated.
* ``llm.stats``: prompt tokens, generated tokens, prefill and decode tokens/s of the last call.

**KV cache**: one float32 buffer ``[2 * layers, capacity, kv_heads, head_dim]`` (keys and values of each
layer), allocated for ``min(context_limit, 256)`` positions and doubled when a sequence needs more, up to
``context_limit`` (the file's context length unless given). The compiled functions read the first ``m`` rows
of each layer's keys and values (contiguous views, no copy) and return the new rows, which
:meth:`LLM._append` copies into place (the graph IR has no in-place update; see :mod:`~workbench.frontend.llama`).
A prompt longer than the context limit, ``max_new_tokens < 0`` and other bad arguments raise ``ValueError``.
"""
from __future__ import annotations

import os
import time
from typing import Iterator, Sequence

import numpy as np

from . import llama
from .gguf_file import GGUFFile, load_gguf

__all__ = ["LLM", "load_llm"]

#: positions the KV cache holds at first (it doubles on demand)
INITIAL_CACHE = 256


def load_llm(path: str | os.PathLike, target: str = "llvm", context_limit: int | None = None,
             activations: str = "float32") -> "LLM":
    """The LLM in the GGUF file ``path`` (errors: :class:`~workbench.frontend.errors.ModelFileError`).
    ``activations="int8"`` runs decode steps with llama.cpp's 8-bit activations
    (:mod:`workbench.frontend.int8_decode`); the default computes in float32."""
    return LLM(load_gguf(path), target=target, context_limit=context_limit, activations=activations)


class LLM:
    """A llama-architecture model from a GGUF file, ready to generate (see the module docstring)."""

    def __init__(self, model: GGUFFile, target: str = "llvm", context_limit: int | None = None,
                 activations: str = "float32"):
        from .int8_decode import check_activations

        self.activations = check_activations(activations)
        self.model = model
        self.config = model.config
        self.tokenizer = model.tokenizer
        self.vocab = model.vocab
        self.target = target
        limit = self.config.context_length if context_limit is None else context_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= self.config.context_length:
            raise ValueError(f"context_limit must be an int from 1 to the model's context length "
                             f"{self.config.context_length}, got {context_limit!r}")
        self.context_limit = limit
        self.mod = llama.build_llama(self.config, model.tensors)
        self.param_names = llama.param_names(self.config)
        self.params = [np.asarray(model.tensors[n].data) for n in self.param_names]
        self.stop_token_ids = tuple(model.vocab.stop_token_ids)
        self.stats: dict = {}
        self._vm = None
        self._cache = np.zeros((0,), np.float32)

    # compiled functions -----------------------------------------------------------------------------
    @property
    def vm(self):
        """The compiled module (built on first use)."""
        if self._vm is None:
            from ..backend import build
            from ..backend.vm import VirtualMachine

            from ..backend.heap import return_free_memory

            from ..backend.driver import built_on_disk

            path = llama.compiled_path(self.mod, self.target, self.activations)
            child = path is not None and os.environ.get(COMPILE_IN_PROCESS) != "1"
            if child and not os.path.exists(path):
                _compile_in_child(self.model.path, self.target, self.activations)
                child = False   # tried once: what the child did not leave on disk is compiled here
            compiled = llama.compile_llama(self.mod, self.target, self.activations)
            if child and not built_on_disk(compiled, self.target):
                _compile_in_child(self.model.path, self.target, self.activations)
            self._vm = VirtualMachine(build(compiled, target=self.target))
            return_free_memory()     # what compiling freed (IR, LLVM modules) leaves the process
        return self._vm

    def forward(self, tokens: Sequence[int], past: int) -> np.ndarray:
        """Logits ``[vocab]`` of the last of ``tokens`` placed after ``past`` cached positions (whose keys and
        values must be in the cache); the tokens' keys and values are appended to the cache."""
        ids = np.asarray(tokens, np.int32).reshape(-1)
        self._reserve(past + ids.size)
        caches = [self._cache[k, :past] for k in range(self._cache.shape[0])]
        fn = "decode" if ids.size == 1 else "prefill"
        logits, new_kv = self.vm[fn](ids, *caches, *self.params)
        self._append(past, new_kv)
        if fn == "prefill":
            from ..backend.heap import return_free_memory

            del new_kv
            return_free_memory(collect=False)   # the prompt's intermediates, freed, leave the process
        return logits[0]

    def _reserve(self, length: int) -> None:
        c = self.config
        have = self._cache.shape[1] if self._cache.ndim == 4 else 0
        if length <= have:
            return
        capacity = min(self.context_limit, max(INITIAL_CACHE, 2 * have, length))
        grown = np.zeros((2 * c.num_layers, capacity, c.num_kv_heads, c.head_dim), np.float32)
        if have:
            grown[:, :have] = self._cache
        self._cache = grown

    def _append(self, past: int, new_kv: np.ndarray) -> None:
        """Copy the new rows ``[n, layers, 2, kv_heads, d]`` into the cache at positions ``past ..``."""
        n = new_kv.shape[0]
        rows = new_kv.reshape(n, -1, *new_kv.shape[3:]).transpose(1, 0, 2, 3)   # [2 * layers, n, kvh, d]
        self._cache[:, past:past + n] = rows

    # generation -----------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens written in it are recognised; BOS when the file asks for it)."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        if self.vocab.add_bos and self.vocab.bos_id is not None and (not ids or ids[0] != self.vocab.bos_id):
            ids = [self.vocab.bos_id] + ids
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def generate(self, prompt: str | Sequence[int], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, stop: str | Sequence[str] | Sequence[int] | None = None,
                 seed: int | None = None) -> str | list[int]:
        """The continuation of ``prompt``: str for a str prompt, token ids for token ids (see the module docstring)."""
        ids = self.encode(prompt) if isinstance(prompt, str) else _prompt_ids(prompt)
        self._check_request(ids, max_new_tokens, temperature, top_p)
        if isinstance(prompt, str):
            return "".join(self._stream_text(ids, max_new_tokens, temperature, top_p,
                                             _stop_strings(stop), seed))
        stop_ids = _stop_ids(stop)
        return list(self._stream_ids(ids, max_new_tokens, temperature, top_p, stop_ids, seed))

    def chat(self, messages: Sequence[dict], stream: bool = False, max_new_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, stop: str | Sequence[str] | None = None,
             seed: int | None = None) -> str | Iterator[str]:
        """The assistant's answer to ``messages`` (``[{"role": "user", "content": ...}, ...]``), rendered with
        the file's chat template; ``stream=True``: an iterator of text pieces."""
        if isinstance(messages, (str, bytes)) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("chat() takes a list of messages such as [{'role': 'user', 'content': 'Hi'}], "
                             f"got {messages!r:.80}")
        ids = self.encode(self.model.apply_chat_template(list(messages), add_generation_prompt=True))
        self._check_request(ids, max_new_tokens, temperature, top_p)
        pieces = self._stream_text(ids, max_new_tokens, temperature, top_p, _stop_strings(stop), seed)
        return pieces if stream else "".join(pieces)

    def _stream_text(self, ids: list[int], max_new_tokens, temperature, top_p, stops: list[str],
                     seed) -> Iterator[str]:
        """Text pieces of the continuation (complete UTF-8 characters only; a stop string cuts the text)."""
        tokens = self._stream_ids(ids, max_new_tokens, temperature, top_p, (), seed)
        out: list[int] = []
        sent = 0
        hold = max((len(s) for s in stops), default=1) - 1   # characters kept back while a stop string may start
        for token in tokens:
            out.append(token)
            text = self.decode(out)
            if text.endswith("\ufffd"):
                continue
            cut = _find_stop(text, stops, sent)
            if cut is not None:
                if cut > sent:
                    yield text[sent:cut]
                tokens.close()
                return
            ready = len(text) - hold
            if ready > sent:
                yield text[sent:ready]
                sent = ready
        text = self.decode(out)
        if len(text) > sent:
            yield text[sent:]

    def _check_request(self, ids: list[int], max_new_tokens, temperature, top_p) -> None:
        _check_options(max_new_tokens, temperature, top_p)
        if not ids:
            raise ValueError("the prompt is empty: give at least one token")
        if len(ids) > self.context_limit:
            raise ValueError(f"the prompt has {len(ids)} tokens but the context limit is {self.context_limit}; "
                             f"shorten it")
        bad = [t for t in ids if not 0 <= t < self.config.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} of the prompt is outside the vocabulary [0, {self.config.vocab_size})")

    def _stream_ids(self, ids: list[int], max_new_tokens, temperature, top_p, stop_ids, seed) -> Iterator[int]:
        if max_new_tokens == 0:
            return
        stops = set(self.stop_token_ids) | set(stop_ids)
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        logits = self.forward(ids, 0)
        prefilled = time.perf_counter()
        self.stats = {"prompt_tokens": len(ids), "generated_tokens": 0,
                      "prefill_tokens_per_s": len(ids) / max(prefilled - start, 1e-9)}
        position = len(ids)
        for k in range(max_new_tokens):
            token = _sample(logits, temperature, top_p, rng)
            if token in stops:
                return
            self.stats["generated_tokens"] = k + 1
            yield token
            if k + 1 == max_new_tokens or position >= self.context_limit:
                return
            logits = self.forward([token], position)
            position += 1
            self.stats["decode_tokens_per_s"] = (k + 1) / max(time.perf_counter() - prefilled, 1e-9)

    def __repr__(self) -> str:
        c = self.config
        return (f"LLM({self.model.architecture}, {c.num_layers} layers, hidden {c.hidden_size}, vocab "
                f"{c.vocab_size}, context limit {self.context_limit}, "
                + (f"{self.activations} activations, " if self.activations != "float32" else "")
                + f"from {self.model.path!r})")


#: set to "1" to compile a model in this process even when its compiled form is not on disk yet
COMPILE_IN_PROCESS = "WORKBENCH_COMPILE_IN_PROCESS"


def _compile_in_child(path: str, target: str, activations: str = "float32") -> None:
    """Compile the model in ``path`` in a child process, which leaves it in the disk caches: this process
    then only reads the machine code, and the memory that compiling touches (LLVM's passes, the IR of
    sixty kernels, about 25 MB) is never part of it. If the child fails, the caller compiles here, where
    the error (if it comes again) is raised."""
    import subprocess
    import sys
    from pathlib import Path

    import workbench

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(workbench.__file__).parents[1]),
                                                    env.get("PYTHONPATH")) if p)
    env[COMPILE_IN_PROCESS] = "1"
    code = ("import sys; from workbench.frontend.llm import load_llm; "
            "load_llm(sys.argv[1], target=sys.argv[2], activations=sys.argv[3]).vm")
    subprocess.run([sys.executable, "-c", code, path, str(target), activations], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _check_options(max_new_tokens, temperature, top_p) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature!r}")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def _prompt_ids(prompt) -> list[int]:
    ids = list(np.asarray(prompt).reshape(-1)) if not isinstance(prompt, (list, tuple)) else list(prompt)
    if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in ids):
        raise ValueError(f"the prompt must be a str or a sequence of token ids (ints), got {prompt!r:.80}")
    return [int(t) for t in ids]


def _stop_strings(stop) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) and s for s in stops):
        raise ValueError(f"stop must be a non-empty str or a list of them for a text prompt, got {stop!r}")
    return stops


def _stop_ids(stop) -> list[int]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, (int, np.integer)) else list(stop)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in stops):
        raise ValueError(f"stop must be token ids (ints) for a prompt of token ids, got {stop!r}")
    return [int(s) for s in stops]


def _find_stop(text: str, stops: list[str], sent: int) -> int | None:
    hits = [text.find(s, max(0, sent - len(s))) for s in stops]
    hits = [h for h in hits if h >= 0]
    return min(hits) if hits else None


def _sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """Greedy (``temperature == 0``) or nucleus sampling from the softmax of ``logits / temperature``."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1:
        order = np.argsort(-p)
        keep = order[:int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(rng.choice(p.size, p=p))
