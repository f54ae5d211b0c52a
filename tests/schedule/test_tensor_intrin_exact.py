"""tensorize never changes results: the int8 dot intrinsics are exact for every u8/s8 input (including
the worst cases that saturate vpmaddubsw's int16 pair sums), and the bf16/fp32 ones keep the precision
contract they state in ``wb.list_tensor_intrins()``."""
import ml_dtypes
import numpy as np
import pytest

import workbench as wb
from workbench.backend import emulate
from workbench.backend.llvm.target_intrinsics import missing_features
from workbench.schedule.tensor_intrin import get_tensor_intrin

AVX2 = "llvm -mcpu=znver3"                  # AVX2, no AVX-512: what an AVX2-only host runs
SPR = "llvm -mcpu=sapphirerapids"           # AVX-512 VNNI and BF16


def _dot_program(m, n, k, lanes, group, in_a, in_b, acc):
    """C[i, j] += A[i, k] * B[k, j] with B packed as Bp[j // lanes, k // group, j % lanes, k % group]."""
    return wb.parse(f'''
@wb.prim_func
def mm(A: wb.Buffer(({m}, {k}), "{in_a}"), Bp: wb.Buffer(({n // lanes}, {k // group}, {lanes}, {group}), "{in_b}"),
       C: wb.Buffer(({m}, {n}), "{acc}")):
    for i, j, k in wb.grid({m}, {n}, {k}):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + wb.cast(A[vi, vk], "{acc}") * wb.cast(Bp[vj // {lanes}, vk // {group}, vj % {lanes}, vk % {group}], "{acc}")
''')


def _pack(b, lanes, group):
    k, n = b.shape
    return b.T.reshape(n // lanes, lanes, k // group, group).transpose(0, 2, 1, 3).copy()


def _tensorized(m, n, k, lanes, group, dtypes, intrin):
    sch = wb.Schedule(_dot_program(m, n, k, lanes, group, *dtypes))
    i, j, kk = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, lanes])
    ko, ki = sch.split(kk, factors=[None, group])
    sch.reorder(i, jo, ko, ji, ki)
    sch.tensorize(ji, intrin)
    return sch


def _build(sch, target, intrin):
    """For ``target``; where that is Sapphire Rapids, natively if this CPU has ``intrin``'s features,
    else in the CPU emulator (skipped without it)."""
    if target != SPR:
        return wb.build(sch.func, target=target)
    if not missing_features(get_tensor_intrin(intrin).target_features, wb.Target("llvm")):
        return wb.build(sch.func, target="llvm")
    if not emulate.available():
        pytest.skip(f"this CPU lacks {intrin}'s features and the emulator is not installed")
    return wb.build(sch.func, target=SPR, emulate=True)


def _int8_cases(m, k, n):
    """(label, A, B): full-range random inputs and the worst cases for an int16 pair sum."""
    rng = np.random.default_rng(7)
    return [
        ("random full range", rng.integers(0, 256, (m, k)).astype("uint8"),
         rng.integers(-128, 128, (k, n)).astype("int8")),
        ("all 255 x 127", np.full((m, k), 255, "uint8"), np.full((k, n), 127, "int8")),
        ("all 255 x -128", np.full((m, k), 255, "uint8"), np.full((k, n), -128, "int8")),
        ("255 and 0 x alternating 127/-128", np.tile(np.array([255, 0], "uint8"), (m, k // 2)),
         np.where(np.arange(k * n).reshape(k, n) % 3 == 0, -128, 127).astype("int8")),
    ]


def _check_int8(mod, lanes, m, n, k):
    for label, a, b in _int8_cases(m, k, n):
        c = np.arange(m * n, dtype="int32").reshape(m, n) - 500
        want = c + a.astype(np.int32) @ b.astype(np.int32)
        mod(a, _pack(b, lanes, 4), c)
        np.testing.assert_array_equal(c, want, err_msg=label)


def test_avx2_int8_dot_is_exact_for_full_range_inputs():
    """Regression: vpmaddubsw saturated 255 * 127 + 255 * 127 = 64770 to 32767, so the tensorized
    program differed from numpy (and from its own description) for A >= 128."""
    m, n, k = 4, 16, 64
    sch = _tensorized(m, n, k, 8, 4, ("uint8", "int8", "int32"), "dot_u8s8_avx2")
    _check_int8(_build(sch, AVX2, "dot_u8s8_avx2"), 8, m, n, k)


def test_avx2_int8_dot_matches_its_description_in_the_interpreter():
    m, n, k = 2, 8, 8
    func = _dot_program(m, n, k, 8, 4, "uint8", "int8", "int32")
    sch = _tensorized(m, n, k, 8, 4, ("uint8", "int8", "int32"), "dot_u8s8_avx2")
    mod = wb.build(sch.func, target=AVX2)
    for label, a, b in _int8_cases(m, k, n):
        ref, out = np.zeros((m, n), "int32"), np.zeros((m, n), "int32")
        wb.ir.evaluate(func, a, _pack(b, 8, 4), ref)
        mod(a, _pack(b, 8, 4), out)
        np.testing.assert_array_equal(out, ref, err_msg=label)


def test_avx2_int8_dot_uses_no_saturating_instruction():
    sch = _tensorized(4, 16, 16, 8, 4, ("uint8", "int8", "int32"), "dot_u8s8_avx2")
    asm = wb.build(sch.func, target=AVX2).source("asm")
    assert "vpmaddwd" in asm
    assert "vpmaddubsw" not in asm


def test_vnni_int8_dot_is_exact_for_full_range_inputs_emulated():
    if not emulate.available():
        pytest.skip("the emulator (bochscpu-python, pyelftools) is not installed")
    m, n, k = 4, 32, 64
    sch = _tensorized(m, n, k, 16, 4, ("uint8", "int8", "int32"), "dot_u8s8_vnni")
    _check_int8(wb.build(sch.func, target=SPR, emulate=True), 16, m, n, k)


def _bf16_run(intrin, lanes, target, a_pair, c0):
    sch = _tensorized(1, lanes, 2, lanes, 2, ("bfloat16", "bfloat16", "float32"), intrin)
    mod = _build(sch, target, intrin)
    a = np.array([a_pair], ml_dtypes.bfloat16)
    c = np.full((1, lanes), c0, "float32")
    mod(a, _pack(np.ones((2, lanes), ml_dtypes.bfloat16), lanes, 2), c)
    return c[0]


# 1 + (-1) + 2**-30 is 2**-30 summed in k order, 0 when the k = 1 product comes first
ORDER_SENSITIVE = ((-1.0, 2.0 ** -30), 1.0)


def test_bf16_avx2_emulated_is_bit_exact_in_the_description_order():
    out = _bf16_run("dot_bf16_avx2_emulated", 8, AVX2, *ORDER_SENSITIVE)
    np.testing.assert_array_equal(out, np.float32(2.0 ** -30))


def test_bf16_avx512_adds_k1_first_as_its_precision_contract_says():
    out = _bf16_run("dot_bf16_avx512", 16, SPR, *ORDER_SENSITIVE)
    np.testing.assert_array_equal(out, np.float32(0.0))
    assert "k=1 before k=0" in get_tensor_intrin("dot_bf16_avx512").precision


def test_precision_contract_is_listed():
    table = wb.list_tensor_intrins()
    rows = {r[0]: r for r in table.rows()}
    assert rows["dot_u8s8_avx2"][3] == "exact" and rows["dot_u8s8_vnni"][3] == "exact"
    assert "not bit-exact" in rows["dot_bf16_avx512"][3]
    assert "precision" in str(table).splitlines()[0]
    assert "precision: exact" in repr(get_tensor_intrin("dot_u8s8_avx2"))
