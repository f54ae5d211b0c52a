"""Small GGUF files written with the ``gguf`` package's GGUFWriter, for the loader's tests: a tiny llama with
a byte-level BPE vocabulary, random weights in chosen tensor types, and ways to break it."""
from __future__ import annotations

import os

import gguf
import numpy as np
from tokenizers import pre_tokenizers

Q = gguf.GGMLQuantizationType

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġa n", "Ġan d"]
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are tiny.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

#: hyper-parameters of the tiny llama (numpy shapes follow from them)
TINY = dict(layers=2, hidden=64, ff=96, heads=4, kv_heads=2, context=128)


def tiny_vocab() -> tuple[list[str], list[int], list[str]]:
    """Tokens (specials, the 256 byte-level characters, merge results), their GGUF types, merges."""
    tokens = SPECIAL_TOKENS + sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens += [m.replace(" ", "") for m in MERGES]
    types = [3] * len(SPECIAL_TOKENS) + [1] * (len(tokens) - len(SPECIAL_TOKENS))
    return tokens, types, list(MERGES)


def tiny_tensors(seed: int = 0, matrix_type: Q = Q.Q4_1, embed_type: Q = Q.Q8_0,
                 tied: bool = True) -> dict[str, tuple[np.ndarray, Q]]:
    """Random float32 weights of the tiny llama by GGUF name, each with the type it is to be stored in."""
    rng = np.random.default_rng(seed)
    h, f, n_layers = TINY["hidden"], TINY["ff"], TINY["layers"]
    kv = TINY["kv_heads"] * h // TINY["heads"]
    vocab = len(tiny_vocab()[0])

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32)

    out = {"token_embd.weight": (mat(vocab, h), embed_type), "output_norm.weight": (norm(), Q.F32)}
    if not tied:
        out["output.weight"] = (mat(vocab, h), matrix_type)
    for i in range(n_layers):
        out.update({
            f"blk.{i}.attn_norm.weight": (norm(), Q.F32),
            f"blk.{i}.attn_q.weight": (mat(h, h), matrix_type),
            f"blk.{i}.attn_k.weight": (mat(kv, h), matrix_type),
            f"blk.{i}.attn_v.weight": (mat(kv, h), matrix_type),
            f"blk.{i}.attn_output.weight": (mat(h, h), matrix_type),
            f"blk.{i}.ffn_norm.weight": (norm(), Q.F32),
            f"blk.{i}.ffn_gate.weight": (mat(f, h), matrix_type),
            f"blk.{i}.ffn_up.weight": (mat(f, h), matrix_type),
            f"blk.{i}.ffn_down.weight": (mat(h, f), matrix_type),
        })
    return out


def write_gguf(path: str | os.PathLike, tensors: dict[str, tuple[np.ndarray, Q]], arch: str = "llama",
               metadata: bool = True, tokenizer: bool = True) -> str:
    """Write ``tensors`` (float32 values, quantized to their type here) with the tiny llama's metadata."""
    path = os.fspath(path)
    w = gguf.GGUFWriter(path, arch)
    if metadata:
        w.add_uint32(f"{arch}.block_count", TINY["layers"])
        w.add_uint32(f"{arch}.context_length", TINY["context"])
        w.add_uint32(f"{arch}.embedding_length", TINY["hidden"])
        w.add_uint32(f"{arch}.feed_forward_length", TINY["ff"])
        w.add_uint32(f"{arch}.attention.head_count", TINY["heads"])
        w.add_uint32(f"{arch}.attention.head_count_kv", TINY["kv_heads"])
        w.add_float32(f"{arch}.rope.freq_base", 10000.0)
        w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    if tokenizer:
        tokens, types, merges = tiny_vocab()
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_chat_template(CHATML_TEMPLATE)
    for name, (values, qtype) in tensors.items():
        data = gguf.quants.quantize(values, qtype)
        w.add_tensor(name, data, raw_dtype=qtype if data.dtype == np.uint8 else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def truncated_copy(path: str, size: int, out_path: str) -> str:
    """The first ``size`` bytes of ``path`` written to ``out_path``."""
    with open(path, "rb") as f:
        data = f.read(size)
    with open(out_path, "wb") as f:
        f.write(data)
    return out_path
