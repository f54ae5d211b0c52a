"""Our numpy decoding of Q4_0/Q4_1/Q8_0 blocks (the layouts the fused kernels read) against the gguf package."""
import gguf
import numpy as np
import pytest

from workbench.frontend.gguf_quants import (
    BLOCK_LAYOUTS, dequantize_blocks, packed_row_bytes, unpack_q4, unpack_q8,
)

Q = gguf.GGMLQuantizationType


def random_matrix(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)).astype(np.float32) * rng.uniform(1e-3, 10.0, (rows, 1)).astype(np.float32)
    x[0, :32] = 0.0                      # an all-zero block (d = 0)
    x[1, 32:64] = 7.0                    # a constant block
    x[2] += 5.0                          # a row of positive weights only (Q4_1's minimum matters)
    return x


@pytest.mark.parametrize("name", ["Q4_0", "Q4_1", "Q8_0"])
def test_dequantize_matches_gguf_bit_for_bit(name):
    packed = gguf.quants.quantize(random_matrix(24, 96), Q[name])
    assert packed.shape == (24, packed_row_bytes(name, 96)) and packed.dtype == np.uint8
    ours = dequantize_blocks(packed, name, (24, 96))
    assert ours.dtype == np.float32
    assert np.array_equal(ours, gguf.quants.dequantize(packed, Q[name]))


@pytest.mark.parametrize("name", ["blk.3.ffn_down.weight", "blk.0.attn_k.weight", "token_embd.weight"])
def test_dequantize_smollm2_tensors_matches_gguf(smollm2, name):
    t = smollm2.tensors[name]
    rows = t.data[:300]                  # the embedding is 49152 rows; a slice of rows is a whole tensor too
    ours = dequantize_blocks(rows, t.quant_type, (rows.shape[0], t.shape[1]))
    assert np.array_equal(ours, gguf.quants.dequantize(rows, Q[t.quant_type]))


def test_q4_nibble_order_low_nibbles_are_the_first_half():
    block = np.zeros((1, 18), np.uint8)
    block[0, :2] = np.frombuffer(np.float16(2.0).tobytes(), np.uint8)
    block[0, 2] = 0xF1                   # byte 0 of qs: weight 0 <- 0x1, weight 16 <- 0xF
    block[0, 3] = 0x80                   # byte 1 of qs: weight 1 <- 0x0, weight 17 <- 0x8
    w = dequantize_blocks(block, "Q4_0", (1, 32))[0]
    assert (w[0], w[16], w[1], w[17], w[2]) == (2 * (1 - 8), 2 * (15 - 8), 2 * (0 - 8), 0.0, -16.0)
    assert np.array_equal(w, gguf.quants.dequantize(block, Q.Q4_0)[0])


def test_q8_block_is_scale_then_signed_bytes():
    block = np.zeros((1, 34), np.uint8)
    block[0, :2] = np.frombuffer(np.float16(0.25).tobytes(), np.uint8)
    block[0, 2:] = np.arange(-16, 16, dtype=np.int8).view(np.uint8)
    d, q = unpack_q8(block)
    assert d.item() == 0.25 and q[0, 0] == -16
    assert np.array_equal(dequantize_blocks(block, "Q8_0", (1, 32))[0], np.arange(-16, 16) * 0.25)


def test_unpacked_fields_rebuild_the_weights():
    packed = gguf.quants.quantize(random_matrix(4, 64, seed=1), Q.Q4_1)
    blocks = packed.reshape(4, 2, BLOCK_LAYOUTS["Q4_1"].block_bytes)
    d, m, q = unpack_q4(blocks, "Q4_1")
    assert d.shape == m.shape == (4, 2, 1) and q.shape == (4, 2, 32) and q.max() <= 15
    assert np.array_equal((d * q.astype(np.float32) + m).reshape(4, 64), dequantize_blocks(packed, "Q4_1", (4, 64)))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown block quantization type 'Q5_0'; known: Q4_0, Q4_1, Q8_0"):
        dequantize_blocks(np.zeros((1, 22), np.uint8), "Q5_0", (1, 32))
    with pytest.raises(ValueError, match="a Q4_1 row of 40 weights is not a whole number of 32-weight blocks"):
        packed_row_bytes("Q4_1", 40)
    with pytest.raises(ValueError, match=r"Q8_0 data of shape \(2, 32\) needs 68 uint8 bytes, got 34"):
        dequantize_blocks(np.zeros((1, 34), np.uint8), "Q8_0", (2, 32))
    with pytest.raises(ValueError, match="unpack_q4 reads Q4_0 or Q4_1 blocks, not Q8_0"):
        unpack_q4(np.zeros((1, 34), np.uint8), "Q8_0")
