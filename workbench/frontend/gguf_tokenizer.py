"""The tokenizer stored in a GGUF file, as a ``tokenizers.Tokenizer``, and its chat template.

A GGUF file of a GPT-2 style byte-level BPE model (``tokenizer.ggml.model = "gpt2"``) stores the vocabulary
(``tokenizer.ggml.tokens``, the byte-level strings, ids by position), the merges (``tokenizer.ggml.merges``,
``"left right"`` strings by priority), a type per token (``tokenizer.ggml.token_type``: 1 normal, 3 control,
i.e. special, such as ``<|im_start|>``, 4 user-defined) and the pre-tokenizer's name (``tokenizer.ggml.pre``,
the regex llama.cpp splits text with before BPE). :func:`build_tokenizer` rebuilds the equivalent Hugging Face
tokenizer: control tokens become special added tokens (each one id, never split; skipped by
``decode(..., skip_special_tokens=True)``), user-defined tokens plain added tokens. Like the Hugging Face
tokenizer of these models, it adds no BOS token; the file's ``tokenizer.ggml.add_bos_token`` is kept in
:attr:`GGUFVocab.add_bos` for a caller that wants llama.cpp's behaviour.

:func:`apply_chat_template` renders ``tokenizer.chat_template`` (a Jinja template over ``messages``) with
jinja2 in a sandbox when jinja2 is installed, and otherwise with a small renderer of the ChatML family
(``<|im_start|>role\\ncontent<|im_end|>\\n``, with the template's default system prompt).

>>> vocab = GGUFVocab.from_metadata({
...     "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
...     "tokenizer.ggml.tokens": ["<|im_end|>", "h", "i", "Ġ", "hi", "Ġhi"],
...     "tokenizer.ggml.token_type": [3, 1, 1, 1, 1, 1],
...     "tokenizer.ggml.merges": ["h i", "Ġ hi"], "tokenizer.ggml.eos_token_id": 0})
>>> tok = build_tokenizer(vocab)
>>> tok.encode("hi hi<|im_end|>").ids
[4, 5, 0]
>>> tok.decode([4, 5, 0], skip_special_tokens=False)
'hi hi<|im_end|>'
"""
from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import tokenizers
from tokenizers import AddedToken, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from .errors import ModelFileError

__all__ = ["GGUFVocab", "build_tokenizer", "apply_chat_template", "TOKEN_NORMAL", "TOKEN_CONTROL",
           "TOKEN_USER_DEFINED", "SUPPORTED_PRE_TOKENIZERS"]

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

#: llama.cpp's pre-tokenizer names this module rebuilds: digits split one by one (smollm), then the GPT-2 regex
SUPPORTED_PRE_TOKENIZERS = ("gpt-2", "smollm")

#: control tokens that end a turn, as llama.cpp recognises them by their text
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


@dataclass(frozen=True)
class GGUFVocab:
    """The tokenizer entries of a GGUF file."""

    model: str
    pre: str
    tokens: list[str]
    token_types: np.ndarray
    merges: list[str]
    bos_id: int | None = None
    eos_id: int | None = None
    add_bos: bool = False
    chat_template: str | None = None
    source: str = field(default="GGUF file", compare=False)

    def repack_strings(self) -> None:
        """Make the token and merge strings again, one after the other, once the parse that made them (and
        left them scattered between its freed objects) is gone: Python's small-object heap can then give
        the freed space back. About 14 MB less resident memory for SmolLM2's 49152 tokens and 48900 merges."""
        for strings in (self.tokens, self.merges):
            if any("\x00" in s for s in strings):   # the separator below would split a string
                continue
            blob = "\x00".join(strings)
            count = len(strings)
            strings.clear()
            gc.collect()
            strings.extend(blob.split("\x00") if count else [])

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], source: str = "GGUF file") -> GGUFVocab:
        """The vocabulary of ``metadata`` (GGUF key -> value); a missing or inconsistent entry raises a
        :class:`ModelFileError` naming it."""
        def require(key: str) -> Any:
            if key not in metadata:
                raise ModelFileError(f"{source} has no {key!r} entry: it holds no tokenizer")
            return metadata[key]

        tokens = list(require("tokenizer.ggml.tokens"))
        types = np.asarray(metadata.get("tokenizer.ggml.token_type", [TOKEN_NORMAL] * len(tokens)), dtype=np.int32)
        if types.shape != (len(tokens),):
            raise ModelFileError(f"{source}: tokenizer.ggml.token_type has {types.size} entries for "
                                 f"{len(tokens)} tokens")
        vocab = cls(
            model=str(require("tokenizer.ggml.model")), pre=str(metadata.get("tokenizer.ggml.pre", "gpt-2")),
            tokens=tokens, token_types=types, merges=list(metadata.get("tokenizer.ggml.merges", [])),
            bos_id=_token_id(metadata, "tokenizer.ggml.bos_token_id", len(tokens), source),
            eos_id=_token_id(metadata, "tokenizer.ggml.eos_token_id", len(tokens), source),
            add_bos=bool(metadata.get("tokenizer.ggml.add_bos_token", False)),
            chat_template=metadata.get("tokenizer.chat_template"), source=source,
        )
        return vocab

    @property
    def special_tokens(self) -> dict[str, int]:
        """Control tokens (type 3) by text."""
        return {self.tokens[i]: int(i) for i in np.nonzero(self.token_types == TOKEN_CONTROL)[0]}

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """Ids that end generation: the EOS id and the control tokens that end a turn (``<|im_end|>``, ...)."""
        specials = self.special_tokens
        ids = {specials[t] for t in _END_OF_TURN_TOKENS if t in specials}
        if self.eos_id is not None:
            ids.add(self.eos_id)
        return tuple(sorted(ids))


def build_tokenizer(vocab: GGUFVocab) -> tokenizers.Tokenizer:
    """The ``tokenizers.Tokenizer`` equivalent to the file's byte-level BPE tokenizer."""
    if vocab.model != "gpt2":
        raise ModelFileError(f"{vocab.source}: tokenizer model {vocab.model!r} is not supported yet "
                             f"(supported: 'gpt2', byte-level BPE)")
    if vocab.pre not in SUPPORTED_PRE_TOKENIZERS:
        raise ModelFileError(f"{vocab.source}: pre-tokenizer {vocab.pre!r} is not supported yet "
                             f"(supported: {', '.join(SUPPORTED_PRE_TOKENIZERS)})")
    ids = {token: i for i, token in enumerate(vocab.tokens)}
    if len(ids) != len(vocab.tokens):
        duplicate = next(t for i, t in enumerate(vocab.tokens) if ids[t] != i)
        raise ModelFileError(f"{vocab.source}: token {duplicate!r} appears twice in tokenizer.ggml.tokens")
    backend = tokenizers.Tokenizer(BPE(vocab=ids, merges=_merge_pairs(vocab, ids), fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if vocab.pre == "smollm":
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        backend.pre_tokenizer = byte_level
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in vocab.special_tokens])
    user_defined = [vocab.tokens[i] for i in np.nonzero(vocab.token_types == TOKEN_USER_DEFINED)[0]]
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in user_defined])
    return backend


def apply_chat_template(template: str, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True,
                        renderer: str = "auto", **variables: Any) -> str:
    """The prompt text of ``messages`` (dicts with ``role`` and ``content``) under ``template``.

    ``renderer``: ``"jinja2"``, ``"chatml"`` (the built-in renderer of ``<|im_start|>`` templates) or
    ``"auto"`` (jinja2 when installed). ``variables`` (``bos_token``, ...) are passed to the template.

    >>> t = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    ...      " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    ...      "{% endif %}")
    >>> apply_chat_template(t, [{"role": "user", "content": "Hi"}], renderer="chatml")
    '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    _check_messages(messages)
    if renderer == "auto":
        renderer = "jinja2" if _has_jinja2() else "chatml"
    if renderer == "jinja2":
        return _render_jinja2(template, messages, add_generation_prompt, variables)
    if renderer == "chatml":
        return _render_chatml(template, messages, add_generation_prompt)
    raise ValueError(f"unknown chat template renderer {renderer!r}; use 'auto', 'jinja2' or 'chatml'")


def _merge_pairs(vocab: GGUFVocab, ids: dict[str, int]) -> list[tuple[str, str]]:
    pairs = []
    for rank, merge in enumerate(vocab.merges):
        parts = merge.split(" ")
        if len(parts) != 2 or not all(p in ids for p in parts) or parts[0] + parts[1] not in ids:
            raise ModelFileError(f"{vocab.source}: merge {rank} {merge!r} is not two tokens of the vocabulary "
                                 f"whose concatenation is a token")
        pairs.append((parts[0], parts[1]))
    return pairs


def _token_id(metadata: Mapping[str, Any], key: str, n_tokens: int, source: str) -> int | None:
    if key not in metadata:
        return None
    value = int(metadata[key])
    if not 0 <= value < n_tokens:
        raise ModelFileError(f"{source}: {key} is {value}, outside the vocabulary of {n_tokens} tokens")
    return value


def _check_messages(messages: Sequence[Mapping[str, str]]) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise TypeError(f"message {i} must be a dict with string 'role' and 'content', got {message!r}")


def _has_jinja2() -> bool:
    import importlib.util

    return importlib.util.find_spec("jinja2") is not None


def _render_jinja2(template: str, messages, add_generation_prompt: bool, variables: dict[str, Any]) -> str:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(f"chat template refused the messages: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        compiled = env.from_string(template)
        return compiled.render(messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt,
                               **variables)
    except TemplateError as e:
        raise ValueError(f"the chat template failed to render: {e}") from None


_CHATML_DEFAULT_SYSTEM = re.compile(r"'<\|im_start\|>system\n(.*?)<\|im_end\|>\n'", re.S)


def _render_chatml(template: str, messages, add_generation_prompt: bool) -> str:
    if "<|im_start|>" not in template or "message['content']" not in template:
        raise ValueError("the built-in chat renderer only knows ChatML templates (<|im_start|>role ... <|im_end|>); "
                         "install jinja2 to render this template")
    parts = []
    default_system = _CHATML_DEFAULT_SYSTEM.search(template)
    if default_system and messages and messages[0]["role"] != "system":
        parts.append(f"<|im_start|>system\n{default_system.group(1)}<|im_end|>\n")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)
