"""Decode steps with 8-bit activations (``activations="int8"``, llama.cpp's arithmetic), against the numpy
definition in reference_llama.py (q8_1_dot).

Each replaced kernel is checked exactly (to float32 rounding) on real SmolLM2 weights and activations, with
both ways of multiplying the codes (VNNI's vpdpbusd, and SSSE3's pmaddubsw + pmaddwd on an AVX2 CPU). The
whole model is checked more loosely, because rounding activations to 8 bits is not continuous: a change of
1e-6 in the embedding moves the int8 reference's own logits by about 1 % (measured), so the compiled model
and the reference can only agree to that, and pick the same greedy tokens except at near ties."""
import numpy as np
import pytest

import workbench as wb
from workbench import transform
from workbench.backend import emulate as emulator
from workbench.frontend import int8_decode
from workbench.frontend.llm import LLM

from .reference_llama import ReferenceLlama, q4_1_blocks, q8_1_dot
from .test_generate import PROMPTS

#: relative logit difference that 8-bit activations' rounding alone makes (about 1.3e-2 measured), with room
CHAOS = 5e-2


@pytest.fixture(scope="module")
def fused(smollm2_path):
    llm = wb.frontend.load_llm(smollm2_path)
    mod = transform.Sequential([transform.LegalizeOps(), transform.FuseOps(), transform.FuseTIR()])(llm.mod)
    return llm, mod


def _host_has_vnni() -> bool:
    return int8_decode.dot_kind("llvm") == "vnni"


KINDS = [("vnni", "llvm -mcpu=cascadelake"), ("ssse3", "llvm -mcpu=znver3")]


@pytest.mark.parametrize("kind,target", KINDS, ids=[k for k, _ in KINDS])
@pytest.mark.parametrize("kernel,weight,extra", [
    ("fused_decode_q4_linear90", "blk.3.attn_q.weight", None),
    ("fused_decode_q4_linear91", "blk.3.attn_k.weight", None),
    ("fused_decode_q4_linear_add60", "blk.3.attn_output.weight", "add"),
    ("fused_decode_q4_linear_silu30", "blk.3.ffn_gate.weight", "silu"),
    ("fused_decode_q4_linear_multiply30", "blk.3.ffn_up.weight", "multiply"),
    ("fused_decode_q4_linear_add61", "blk.3.ffn_down.weight", "add"),
    ("fused_decode_q4_linear_add_last_row", "blk.29.ffn_down.weight", "add"),
])
def test_each_int8_kernel_computes_llama_cpps_q4_1_q8_1_product(fused, kind, target, kernel, weight, extra):
    llm, mod = fused
    emulate = kind == "vnni" and not _host_has_vnni()
    if emulate and not emulator.available():
        pytest.skip("VNNI code on a host without it needs the CPU emulator (bochscpu-python, pyelftools)")
    new = int8_decode.int8_decode_kernel(mod.prim_funcs[kernel], kind)
    assert new is not None and new.attrs.get("int8_activations")
    tensor = llm.model.tensors[weight]
    w = np.asarray(tensor.data)
    rows, cols = tensor.shape
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((1, cols)) * rng.uniform(0.1, 3.0, (1, cols))).astype(np.float32)
    x[0, 5] = 0.0
    x[0, 64:96] = 0.0                                   # an all-zero block: scale 0
    e = rng.standard_normal((1, rows)).astype(np.float32)
    out = np.full((1, rows), np.nan, np.float32)
    f = wb.build(new, target=target, emulate=emulate)
    f(w, x, *([e] if extra in ("add", "multiply") else []), out)
    y = q8_1_dot(x[0], *q4_1_blocks(tensor.data, tensor.shape))
    expected = {None: y, "add": y + e[0], "multiply": y * e[0], "silu": y / (1 + np.exp(-y))}[extra]
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    exact = x[0] @ llm_weight(tensor).T
    assert np.abs(y - exact).max() > 1e-4 * np.abs(exact).max(), "the int8 product should differ from float"


def llm_weight(tensor) -> np.ndarray:
    import gguf

    return gguf.quants.dequantize(tensor.data, gguf.GGMLQuantizationType.Q4_1).reshape(tensor.shape)


def test_kernels_that_are_not_q4_1_decode_matvecs_are_left_alone(fused):
    _, mod = fused
    for name in ("fused_decode_q4_linear", "fused_decode_q8_linear", "fused_take_decode_q81"):
        assert int8_decode.int8_decode_kernel(mod.prim_funcs[name], "vnni") is None, name
    assert int8_decode.dot_kind("opencl") is None


def test_bad_activations_is_a_clear_error(smollm2):
    with pytest.raises(ValueError, match=r"activations must be one of 'float32', 'int8', got 'fp8'"):
        LLM(smollm2, activations="fp8")


@pytest.fixture(scope="module")
def int8_llm(smollm2):
    return LLM(smollm2, activations="int8")


@pytest.fixture(scope="module")
def int8_reference(smollm2, smollm2_reference):
    blocks = {name: q4_1_blocks(t.data, t.shape) for name, t in smollm2.tensors.items() if t.quant_type == "Q4_1"}
    return ReferenceLlama(smollm2_reference.config, smollm2_reference.weights, blocks)


def test_prompt_logits_stay_float32_and_decode_logits_follow_the_int8_reference(int8_llm, int8_reference,
                                                                                 smollm2_reference):
    ids = int8_llm.encode(PROMPTS[0])
    cache = int8_reference.new_cache(64)
    expected_prompt = int8_reference.forward(ids, cache)[-1]
    got_prompt = int8_llm.forward(ids, 0)
    scale = np.abs(expected_prompt).max()
    assert np.abs(got_prompt - expected_prompt).max() < 1e-3 * scale          # the prompt: float32, exact
    token = int(np.argmax(expected_prompt))
    expected = int8_reference.forward([token], cache)[-1]
    got = int8_llm.forward([token], len(ids))
    float_cache = smollm2_reference.new_cache(64)
    smollm2_reference.forward(ids, float_cache)
    exact = smollm2_reference.forward([token], float_cache)[-1]
    assert np.abs(got - expected).max() < CHAOS * np.abs(expected).max()
    assert np.abs(got - exact).max() < CHAOS * np.abs(exact).max()
    assert np.abs(got - exact).max() > 1e-3 * np.abs(exact).max(), "decode did not use int8 activations"


def test_greedy_tokens_follow_the_int8_reference_except_near_ties(int8_llm, int8_reference):
    agreed = total = 0
    for prompt in PROMPTS:
        ids = int8_llm.encode(prompt)
        cache = int8_reference.new_cache(len(ids) + 16)
        theirs = int8_reference.forward(ids, cache)[-1]
        ours = int8_llm.forward(ids, 0)
        for step in range(16):
            token, mine = int(np.argmax(theirs)), int(np.argmax(ours))
            total += 1
            agreed += mine == token
            assert mine == token or ours[mine] - ours[token] < 1.0, (prompt, step)
            if token in int8_llm.stop_token_ids:
                break
            theirs = int8_reference.forward([token], cache)[-1]
            ours = int8_llm.forward([token], len(ids) + step)
    assert agreed >= 0.9 * total, f"{agreed} of {total}"
