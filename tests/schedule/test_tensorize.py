"""tensorize: every built-in intrinsic against numpy (natively where this CPU has its features, in the
Bochs CPU emulator otherwise), the instruction in the assembly, the registry, and the mismatch errors."""
import ml_dtypes
import numpy as np
import pytest

import workbench as wb
from workbench.backend import emulate
from workbench.backend.llvm.target_intrinsics import TargetFeatureError, missing_features
from workbench.schedule.tensor_intrin import get_tensor_intrin
from workbench.schedule.tensorize import TensorizeLayoutError, TensorizeMismatchError

HOST = wb.Target("llvm")
SPR = wb.Target("llvm -mcpu=sapphirerapids")   # run in the CPU emulator where this CPU lacks AVX-512


def _host_lacks(name):
    return missing_features(get_tensor_intrin(name).target_features, HOST)


def _dot_program(m, n, k, lanes, group, in_a, in_b, acc):
    """C[i, j] += A[i, k] * B[j, k] with B packed as [n // lanes, k // group, lanes, group]."""
    return wb.parse(f'''
@wb.prim_func
def mm(A: wb.Buffer(({m}, {k}), "{in_a}"), Bp: wb.Buffer(({n // lanes}, {k // group}, {lanes}, {group}), "{in_b}"),
       C: wb.Buffer(({m}, {n}), "{acc}")):
    for i, j, k in wb.grid({m}, {n}, {k}):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + wb.cast(A[vi, vk], "{acc}") * wb.cast(Bp[vj // {lanes}, vk // {group}, vj % {lanes}, vk % {group}], "{acc}")
''')


def _f32_matmul(m=32, n=None, k=None):
    """C[i, j] += A[i, k] * B[k, j] in float32, with no init (what the fp32 intrinsics describe)."""
    n = m if n is None else n
    k = m if k is None else k
    return wb.parse(f'''
@wb.prim_func
def mm(A: wb.Buffer(({m}, {k}), "float32"), B: wb.Buffer(({k}, {n}), "float32"), C: wb.Buffer(({m}, {n}), "float32")):
    for i, j, k in wb.grid({m}, {n}, {k}):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]
''')


def _pack(b, lanes, group):
    k, n = b.shape
    return b.T.reshape(n // lanes, lanes, k // group, group).transpose(0, 2, 1, 3).copy()


def _dot_schedule(func, lanes, group, intrin):
    sch = wb.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, lanes])
    ko, ki = sch.split(k, factors=[None, group])
    sch.reorder(i, jo, ko, ji, ki)
    sch.tensorize(ji, intrin)
    return sch


def _build(sch, name):
    """Build for this CPU when it has the intrinsic's features; otherwise for Sapphire Rapids, run in
    the CPU emulator (the numeric check then tests the real AVX-512 instructions, emulated)."""
    if not _host_lacks(name):
        return wb.build(sch.func, target=HOST)
    if not emulate.available():
        pytest.skip(f"this CPU ({HOST.cpu}) lacks {', '.join(_host_lacks(name))} and the emulator "
                    "(bochscpu-python, pyelftools) is not installed")
    return wb.build(sch.func, target=SPR, emulate=True)


def _asm_lines(mod, needle):
    needles = (needle,) if isinstance(needle, str) else needle
    return [ln for ln in mod.source("asm").splitlines() if any(n in ln for n in needles)]


# the exact AVX2 form uses vpmaddwd (LLVM fuses it with the add into vpdpwssd where the host has AVX512-VNNI)
INT8 = [("dot_u8s8_vnni", 16, "vpdpbusd"), ("dot_u8s8_avx2", 8, ("vpmaddwd", "vpdpwssd"))]


@pytest.mark.parametrize("name,lanes,insn", INT8)
def test_int8_dot(name, lanes, insn):
    m, n, k = 8, 32, 32
    sch = _dot_schedule(_dot_program(m, n, k, lanes, 4, "uint8", "int8", "int32"), lanes, 4, name)
    blk = sch.get(sch.get_block("C_o"))
    assert blk.annotations["tensorized"] == name and len(blk.match_buffers) == 3
    mod = _build(sch, name)
    assert _asm_lines(mod, insn), f"{insn} not in the assembly"
    _check_int8_dot(mod, name, m, n, k, lanes, seed=1)


def _check_int8_dot(mod, name, m, n, k, lanes, seed):
    """C (non-zero) += A @ B with random u8 A and s8 B (packed), exactly as numpy's int32 matmul."""
    rng = np.random.default_rng(seed)
    # pmaddubsw saturates pair sums at int16: A < 128 keeps the AVX2 dot exact (see x86.py)
    a = rng.integers(0, 256, (m, k)).astype("uint8")
    b = rng.integers(-128, 128, (k, n)).astype("int8")
    c = rng.integers(-1000, 1000, (m, n)).astype("int32")
    want = c + a.astype(np.int32) @ b.astype(np.int32)
    mod(a, _pack(b, lanes, 4), c)
    np.testing.assert_array_equal(c, want)


@pytest.mark.parametrize("name,lanes,insn", INT8)
def test_int8_dot_on_a_register_tile(name, lanes, insn):
    """The benchmark's schedule: cache_inplace keeps a 4 x 2*lanes tile of C in a local buffer
    (loaded once, written back once per tile); the dot product is tensorized inside it."""
    m, n, k = 8, 4 * lanes, 32
    sch = wb.Schedule(_dot_program(m, n, k, lanes, 4, "uint8", "int8", "int32"))
    c_blk = sch.get_block("C")
    copy_in, copy_out = sch.cache_inplace(c_blk, 0, "local")
    i, j, kk = sch.get_loops(c_blk)
    io, ii = sch.split(i, factors=[None, 4])
    jo, jm, ji = sch.split(j, factors=[None, 2, lanes])
    ko, ki = sch.split(kk, factors=[None, 4])
    sch.reorder(io, jo, ko, ii, jm, ji, ki)
    sch.reverse_compute_at(copy_out, jo)
    sch.compute_at(copy_in, jo)
    sch.unroll(ii)
    sch.unroll(jm)
    sch.tensorize(ji, name)
    mod = _build(sch, name)
    assert len(_asm_lines(mod, insn)) >= 8, f"{insn} not unrolled over the tile"
    _check_int8_dot(mod, name, m, n, k, lanes, seed=4)


BF16 = [("dot_bf16_avx512", 16, "vdpbf16ps"), ("dot_bf16_avx2_emulated", 8, "vfmadd")]


@pytest.mark.parametrize("name,lanes,insn", BF16)
def test_bf16_dot(name, lanes, insn):
    m, n, k = 4, 32, 16
    sch = _dot_schedule(_dot_program(m, n, k, lanes, 2, "bfloat16", "bfloat16", "float32"), lanes, 2, name)
    mod = _build(sch, name)
    assert _asm_lines(mod, insn), f"{insn} not in the assembly"
    rng = np.random.default_rng(2)
    a = rng.standard_normal((m, k)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((k, n)).astype(ml_dtypes.bfloat16)
    c = rng.standard_normal((m, n)).astype("float32")
    want = c + a.astype(np.float32) @ b.astype(np.float32)
    mod(a, _pack(b, lanes, 2), c)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,lanes,insn", [("fma_f32x16_avx512", 16, "zmm"), ("fma_f32x8_avx2", 8, "ymm")])
def test_fp32_fma_micro_kernel(name, lanes, insn):
    f = _f32_matmul(8, 32, 16)
    sch = wb.Schedule(f)
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, lanes])
    sch.reorder(i, jo, k, ji)
    sch.tensorize(ji, name)
    mod = _build(sch, name)
    assert [ln for ln in _asm_lines(mod, "vfmadd") if insn in ln]
    rng = np.random.default_rng(3)
    a, b = rng.random((8, 16), dtype="float32"), rng.random((16, 32), dtype="float32")
    c = rng.random((8, 32), dtype="float32")
    want = c + a @ b
    mod(a, b, c)
    np.testing.assert_allclose(c, want, rtol=1e-5)


def test_teaching_intrinsic_in_interpreter_and_build():
    f = _f32_matmul(16)
    sch = wb.Schedule(f)
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, 4])
    jo, ji = sch.split(j, factors=[None, 4])
    ko, ki = sch.split(k, factors=[None, 4])
    sch.reorder(io, jo, ko, ii, ji, ki)
    outer = sch.blockize(ii)
    sch.tensorize(outer, "matmul_add_4x4")
    assert "tensorize" in str(sch.trace)
    text = sch.func.script()
    assert "wb.match_buffer(A[vi_o * 4:vi_o * 4 + 4, vk_o * 4:vk_o * 4 + 4], (4, 4)" in text
    rng = np.random.default_rng(4)
    a, b, c0 = (rng.random((16, 16), dtype="float32") for _ in range(3))
    c = c0.copy()
    wb.ir.evaluate(sch.func, a, b, c)
    np.testing.assert_allclose(c, c0 + a @ b, rtol=1e-5)
    c = c0.copy()
    wb.build(sch.func)(a, b, c)
    np.testing.assert_allclose(c, c0 + a @ b, rtol=1e-5)


# registry ---------------------------------------------------------------------------------------


def test_registry_lists_and_prints():
    table = wb.list_tensor_intrins()
    assert set(table.names()) >= {"dot_u8s8_vnni", "dot_u8s8_avx2", "dot_bf16_avx512", "dot_bf16_avx2_emulated",
                                  "fma_f32x16_avx512", "fma_f32x8_avx2", "matmul_add_4x4"}
    text = str(table)
    assert "dot_u8s8_vnni" in text and "avx512vnni" in text
    assert "int32 accumulation of uint8 * int8" in text
    vnni = get_tensor_intrin("dot_u8s8_vnni")
    for f in (vnni.desc, vnni.impl):
        wb.assert_structural_equal(wb.parse(f.script()), f)
    assert "llvm.x86.avx512.vpdpbusd.512" in vnni.impl.script()
    with pytest.raises(wb.ScheduleError, match="no tensor intrinsic is named 'nope'"):
        get_tensor_intrin("nope")


def test_register_a_user_intrinsic_and_use_it():
    @wb.prim_func
    def add4_desc(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
        for i in range(4):
            with wb.block("add"):
                vi = wb.axis.spatial(4, i)
                B[vi] = B[vi] + A[vi]

    @wb.prim_func
    def add4_impl(A: wb.Buffer((4,), "float32"), B: wb.Buffer((4,), "float32")):
        B[wb.ramp(0, 1, 4)] = B[wb.ramp(0, 1, 4)] + A[wb.ramp(0, 1, 4)]

    wb.register_tensor_intrin("test_add4", add4_desc, add4_impl, override=True)
    f = wb.parse('''
@wb.prim_func
def f(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
    for i in range(16):
        with wb.block("B"):
            vi = wb.axis.spatial(16, i)
            B[vi] = B[vi] + A[vi]
''')
    sch = wb.Schedule(f)
    (i,) = sch.get_loops(sch.get_block("B"))
    io, ii = sch.split(i, factors=[None, 4])
    sch.tensorize(ii, "test_add4")
    a, b = np.arange(16, dtype="float32"), np.ones(16, "float32")
    wb.build(sch.func)(a, b)
    np.testing.assert_allclose(b, np.arange(16) + 1.0)
    with pytest.raises(wb.ScheduleError, match="already registered"):
        wb.register_tensor_intrin("test_add4", add4_desc, add4_impl)


# target features --------------------------------------------------------------------------------


def test_missing_target_feature_is_a_clear_error():
    sch = _dot_schedule(_dot_program(8, 16, 8, 16, 4, "uint8", "int8", "int32"), 16, 4, "dot_u8s8_vnni")
    znver3 = wb.Target("llvm -mcpu=znver3")
    with pytest.raises(TargetFeatureError, match=r"calls llvm\.x86\.avx512\.vpdpbusd\.512, which needs "
                                                 r"avx512f, avx512vnni, but target llvm -mcpu=znver3 lacks them"):
        wb.build(sch.func, target=znver3)
    sch2 = wb.Schedule(_dot_program(8, 16, 8, 16, 4, "uint8", "int8", "int32"))
    i, j, k = sch2.get_loops(sch2.get_block("C"))
    jo, ji = sch2.split(j, factors=[None, 16])
    ko, ki = sch2.split(k, factors=[None, 4])
    sch2.reorder(i, jo, ko, ji, ki)
    with pytest.raises(TargetFeatureError, match="tensor intrinsic dot_u8s8_vnni needs avx512f, avx512vnni, "
                                                 "which target llvm -mcpu=znver3 lacks"):
        sch2.tensorize(ji, "dot_u8s8_vnni", target=znver3)


# mismatches ---------------------------------------------------------------------------------------


def _tiled(func, fi, fj, fk):
    sch = wb.Schedule(func)
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, fi])
    jo, ji = sch.split(j, factors=[None, fj])
    ko, ki = sch.split(k, factors=[None, fk])
    sch.reorder(io, jo, ko, ii, ji, ki)
    return sch, ii


def test_mismatch_wrong_dtype():
    sch, ii = _tiled(_f32_matmul(), 1, 16, 4)
    before = sch.func
    with pytest.raises(TensorizeMismatchError) as info:
        sch.tensorize(ii, "dot_u8s8_vnni")
    msg = str(info.value)
    assert msg.startswith("cannot tensorize block C_o with dot_u8s8_vnni: the block computes "
                          "C[vi_o, vj_o * 16 + vj_i] += A[")
    assert "in float32" in msg and "but dot_u8s8_vnni expects int32 accumulation of uint8 * int8" in msg
    assert "(description)" in msg and "|" in msg     # the two side by side
    assert sch.func is before


def test_mismatch_wrong_extent():
    sch, ii = _tiled(_f32_matmul(), 8, 8, 8)
    with pytest.raises(TensorizeMismatchError, match=r"the tile's loops have extents \(8, 8, 8\) but "
                                                     r"matmul_add_4x4 expects \(4, 4, 4\)"):
        sch.tensorize(ii, "matmul_add_4x4")


def test_mismatch_wrong_computation():
    f = wb.parse('''
@wb.prim_func
def mm(A: wb.Buffer((16, 16), "float32"), B: wb.Buffer((16, 16), "float32"), C: wb.Buffer((16, 16), "float32")):
    for i, j, k in wb.grid(16, 16, 16):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vj, vk]
''')
    sch, ii = _tiled(f, 4, 4, 4)
    with pytest.raises(TensorizeMismatchError) as info:
        sch.tensorize(ii, "matmul_add_4x4")
    msg = str(info.value)
    assert "B is indexed by `vj_o * 4 + vj_i` where the description indexes B by `vk`" in msg


def test_mismatch_loop_order():
    sch = wb.Schedule(_f32_matmul(16))
    i, j, k = sch.get_loops(sch.get_block("C"))
    io, ii = sch.split(i, factors=[None, 4])
    jo, ji = sch.split(j, factors=[None, 4])
    ko, ki = sch.split(k, factors=[None, 4])
    sch.reorder(io, jo, ko, ji, ii, ki)
    with pytest.raises(TensorizeMismatchError, match="the loops are in another order"):
        sch.tensorize(ji, "matmul_add_4x4")


def test_layout_not_packed():
    f = wb.parse('''
@wb.prim_func
def mm(A: wb.Buffer((4, 16), "uint8"), B: wb.Buffer((32, 16), "int8"), C: wb.Buffer((4, 32), "int32")):
    for i, j, k in wb.grid(4, 32, 16):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + wb.cast(A[vi, vk], "int32") * wb.cast(B[vj, vk], "int32")
''')
    sch = wb.Schedule(f)
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 8])
    ko, ki = sch.split(k, factors=[None, 4])
    sch.reorder(i, jo, ko, ji, ki)
    with pytest.raises(TensorizeLayoutError, match="reads B as one contiguous vector, but the region"):
        sch.tensorize(ji, "dot_u8s8_avx2")


def test_init_needs_decompose_reduction():
    A = wb.te.placeholder((16, 16), "float32", name="A")
    B = wb.te.placeholder((16, 16), "float32", name="B")
    k = wb.te.reduce_axis(16, name="k")
    C = wb.te.compute((16, 16), lambda i, j: wb.te.sum(A[i, k] * B[k, j], axis=k), name="C")
    sch, ii = _tiled(wb.create_prim_func([A, B, C]), 4, 4, 4)
    with pytest.raises(TensorizeMismatchError, match="decompose_reduction"):
        sch.tensorize(ii, "matmul_add_4x4")
