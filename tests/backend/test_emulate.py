"""The CPU emulator (``wb.build(..., emulate=True)``): code for an AVX-512 Sapphire Rapids, checked
against numpy on any x86-64 machine; its runtime (serial parallel loops, heap arena, libm calls);
the faults it reports; and the refusal to run such code natively on a CPU without the features."""
import re

import numpy as np
import pytest

import workbench as wb
from workbench.backend import emulate
from workbench.backend.emulate.bochs import EmulationError

pytestmark = pytest.mark.skipif(not emulate.available(), reason="emulator packages (bochscpu-python, "
                                                                "pyelftools) not installed")
SPR = "llvm -mcpu=sapphirerapids"
HOST = wb.Target("llvm")

FUSED = '''
@wb.prim_func
def f(A: wb.Buffer((16, 700), "float32"), B: wb.Buffer((16, 700), "float32")):
    for i in wb.parallel(16):
        with wb.block("row"):
            vi = wb.axis.spatial(16, i)
            T = wb.alloc_buffer((700,), "float32")
            for j in range(700):
                with wb.block("t"):
                    vj = wb.axis.spatial(700, j)
                    T[vj] = wb.exp(A[vi, vj]) + wb.tanh(A[vi, vj]) * 0.5
            for j in range(700):
                with wb.block("b"):
                    vj = wb.axis.spatial(700, j)
                    B[vi, vj] = T[vj] * 3.0 + wb.sqrt(wb.abs(A[vi, vj]))
'''


def _matmul(n=32, dtype="float32"):
    return wb.parse(f'''
@wb.prim_func
def mm(A: wb.Buffer(({n}, {n}), "{dtype}"), B: wb.Buffer(({n}, {n}), "{dtype}"),
       C: wb.Buffer(({n}, {n}), "{dtype}")):
    for i, j, k in wb.grid({n}, {n}, {n}):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                C[vi, vj] = wb.{dtype}(0)
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]
''')


def test_the_emulated_cpu_is_a_sapphire_rapids_with_vnni_and_bf16():
    from workbench.backend.emulate import bochs

    feats = bochs.model_features()
    assert {"avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx512bf16", "avx512fp16", "avx2", "fma"} <= feats
    assert "Xeon" in bochs.model_name()


def test_avx512_matmul_matches_numpy_and_uses_zmm():
    sch = wb.Schedule(_matmul(64))
    i, j, k = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 16])
    sch.reorder(i, jo, k, ji)
    sch.decompose_reduction(sch.get_block("C"), k)
    sch.vectorize(ji)
    mod = wb.build(sch, target=SPR, emulate=True)
    assert "zmm" in mod.source("asm")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64), dtype="float32"), rng.standard_normal((64, 64), dtype="float32")
    c = np.full((64, 64), np.nan, "float32")
    mod(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


def test_runtime_parallel_loop_heap_buffer_and_libm_calls():
    """A parallel loop (run serially), a buffer per row, and expf/tanhf from this process's libm."""
    mod = wb.build(wb.parse(FUSED), target=SPR, emulate=True)
    a = np.random.default_rng(1).standard_normal((16, 700)).astype("float32")
    b = np.zeros_like(a)
    mod(a, b)
    want = (np.exp(a) + np.tanh(a) * 0.5) * 3.0 + np.sqrt(np.abs(a))
    np.testing.assert_allclose(b, want, rtol=1e-5, atol=1e-5)
    assert mod["f"].last_run.seconds > 0


def test_integer_and_host_target_programs_run_too():
    """Emulation is not only for AVX-512: the host's own target and integer code give numpy's results."""
    rng = np.random.default_rng(2)
    a, b = rng.integers(-50, 50, (32, 32)).astype("int32"), rng.integers(-50, 50, (32, 32)).astype("int32")
    for target in ("llvm", SPR):
        c = np.zeros((32, 32), "int32")
        wb.build(_matmul(32, "int32"), target=target, emulate=True)(a, b, c)
        np.testing.assert_array_equal(c, a @ b)


def test_instruction_count_shows_what_vnni_saves():
    """The same 32^3 u8 x s8 matmul retires fewer instructions with vpdpbusd than without."""
    def program(packed):
        b_shape, b_idx = ("(2, 8, 16, 4)", "vj // 16, vk // 4, vj % 16, vk % 4") if packed else ("(32, 32)", "vk, vj")
        return wb.parse(f'''
@wb.prim_func
def mm(A: wb.Buffer((32, 32), "uint8"), B: wb.Buffer({b_shape}, "int8"), C: wb.Buffer((32, 32), "int32")):
    for i, j, k in wb.grid(32, 32, 32):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + wb.cast(A[vi, vk], "int32") * wb.cast(B[{b_idx}], "int32")
''')
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 256, (32, 32)).astype("uint8"), rng.integers(-128, 128, (32, 32)).astype("int8")
    want = a.astype(np.int32) @ b.astype(np.int32)
    plain = wb.Schedule(program(False))
    i, j, k = plain.get_loops(plain.get_block("C"))
    plain.reorder(i, k, j)
    plain.vectorize(j)
    vnni = wb.Schedule(program(True))
    i, j, k = vnni.get_loops(vnni.get_block("C"))
    jo, ji = vnni.split(j, factors=[None, 16])
    ko, ki = vnni.split(k, factors=[None, 4])
    vnni.reorder(i, jo, ko, ji, ki)
    vnni.tensorize(ji, "dot_u8s8_vnni")
    bp = b.T.reshape(2, 16, 8, 4).transpose(0, 2, 1, 3).copy()
    counts = []
    for sch, bb in ((plain, b), (vnni, bp)):
        mod = wb.build(sch, target=SPR, emulate=True)
        mod.count_instructions = True
        c = np.zeros((32, 32), "int32")
        mod(a, bb, c)
        np.testing.assert_array_equal(c, want)
        counts.append(mod["mm"].last_run.instructions)
    assert all(n > 0 for n in counts)
    assert counts[1] < counts[0], counts


def test_out_of_bounds_access_is_a_clear_error_not_a_crash():
    f = wb.parse('''
@wb.prim_func
def f(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
    for i in range(16):
        with wb.block("b"):
            vi = wb.axis.spatial(16, i)
            B[vi] = A[vi * 100000]
''')
    mod = wb.build(f, target=SPR, emulate=True)
    with pytest.raises(EmulationError, match=r"#PF page fault .*a read of 0x[0-9a-f]+, (outside every argument "
                                             r"buffer|in the guard page (before|after) buffer [AB]).*out of bounds"):
        mod(np.ones(16, "float32"), np.zeros(16, "float32"))


def test_writing_an_input_the_program_only_reads_is_refused():
    """Buffers the program never stores to are mapped read-only: a stray write faults in the guest."""
    from workbench.backend.emulate import bochs

    bochs.load()
    code = bochs._aligned(bochs.PAGE)
    prog = bytes.fromhex("c70701000000c3")          # mov dword [rdi], 1; ret
    code[:len(prog)] = np.frombuffer(prog, np.uint8)
    data = bochs._aligned(bochs.PAGE)
    m = bochs.Machine()
    m.map(code.ctypes.data, bochs.PAGE, writable=False, name="code")
    m.map(data.ctypes.data, bochs.PAGE, writable=False, name="buffer A")
    with pytest.raises(EmulationError, match=r"a write to 0x[0-9a-f]+, which is read-only \(buffer A\)"):
        m.call(code.ctypes.data, [data.ctypes.data])
    assert data[0] == 0
    m = bochs.Machine()
    m.map(code.ctypes.data, bochs.PAGE, writable=False, name="code")
    m.map(data.ctypes.data, bochs.PAGE, name="buffer A")
    m.call(code.ctypes.data, [data.ctypes.data])
    assert data[0] == 1


def test_native_call_of_code_for_missing_features_is_refused():
    if not (wb.Target(SPR).features - HOST.features):
        pytest.skip("this CPU has every Sapphire Rapids feature")
    mod = wb.build(_matmul(16), target=SPR)
    a = np.ones((16, 16), "float32")
    with pytest.raises(RuntimeError, match=r"built for llvm -mcpu=sapphirerapids, which uses .*avx512f.*"
                                           r"emulate=True"):
        mod(a, a, np.zeros_like(a))


def test_vdpbf16ps_memory_operand_workaround_is_still_needed(monkeypatch):
    """bochscpu-python 0.4.0 decodes ``vdpbf16ps disp8(%reg)`` with the wrong displacement scale, so the
    emulation build keeps that operand in a register (``keep_in_register``). This test fails once the
    emulator is fixed: then the workaround can go."""
    import ml_dtypes

    from workbench.backend.emulate import module as emod

    src = wb.parse('''
@wb.prim_func
def mm(A: wb.Buffer((1, 4), "bfloat16"), Bp: wb.Buffer((1, 2, 16, 2), "bfloat16"), C: wb.Buffer((1, 16), "float32")):
    for i, j, k in wb.grid(1, 16, 4):
        with wb.block("C"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            C[vi, vj] = C[vi, vj] + wb.cast(A[vi, vk], "float32") * wb.cast(Bp[vj // 16, vk // 2, vj % 16, vk % 2], "float32")
''')
    sch = wb.Schedule(src)
    i, j, k = sch.get_loops(sch.get_block("C"))
    ko, ki = sch.split(k, factors=[None, 2])
    sch.reorder(i, ko, j, ki)
    sch.tensorize(j, "dot_bf16_avx512")
    a = np.array([[0, 0, 1, 0]], dtype=ml_dtypes.bfloat16)
    b = (np.arange(64).reshape(4, 16) + 1).astype(ml_dtypes.bfloat16)
    bp = b.T.reshape(1, 16, 2, 2).transpose(0, 2, 1, 3).copy()
    want = a.astype(np.float32) @ b.astype(np.float32)
    c = np.zeros((1, 16), "float32")
    wb.build(sch, target=SPR, emulate=True, cache=False)(a, bp, c)
    np.testing.assert_array_equal(c, want)
    monkeypatch.setattr(emod, "keep_in_register", lambda text: text)
    raw = wb.build(sch, target=SPR, emulate=True, cache=False)
    assert "vdpbf16ps\t64(" in raw.source("asm")
    c = np.zeros((1, 16), "float32")
    raw(a, bp, c)
    assert not np.array_equal(c, want), "the emulator now decodes vdpbf16ps disp8 right: drop keep_in_register"


def test_calls_from_several_threads_do_not_interfere():
    """The emulator has one global memory map; concurrent calls take turns and each gets its own result."""
    from concurrent.futures import ThreadPoolExecutor

    mod = wb.build(_matmul(16), target=SPR, emulate=True)
    rng = np.random.default_rng(5)
    pairs = [(rng.standard_normal((16, 16), dtype="float32"), rng.standard_normal((16, 16), dtype="float32"))
             for _ in range(8)]

    def run(pair):
        c = np.zeros((16, 16), "float32")
        mod(*pair, c)
        return c

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, pairs))
    for (a, b), c in zip(pairs, results):
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_a_run_that_does_not_end_is_stopped_with_an_error():
    """The emulator holds the GIL while it runs: without the time limit, `jmp $` would freeze the process."""
    import time

    from workbench.backend.emulate import bochs

    bochs.load()
    code = bochs._aligned(bochs.PAGE)
    code[:2] = [0xEB, 0xFE]                         # jmp $
    m = bochs.Machine()
    m.map(code.ctypes.data, bochs.PAGE, writable=False, name="code")
    t0 = time.perf_counter()
    with pytest.raises(EmulationError, match=r"ran longer than 0.3 s .* and was stopped"):
        m.call(code.ctypes.data, [], max_seconds=0.3)
    assert time.perf_counter() - t0 < 30


def test_a_fault_leaves_no_emulator_session_behind():
    """A session kept alive by a traceback and collected during a later run aborted the process (found
    by the corpus test); the session must be gone by the time the error is raised."""
    import gc

    import bochscpu

    from workbench.backend.emulate import bochs

    bochs.load()
    code = bochs._aligned(bochs.PAGE)
    prog = bytes.fromhex("c5f8290fc3")               # vmovaps [rdi], xmm1; ret
    code[:len(prog)] = np.frombuffer(prog, np.uint8)
    data = bochs._aligned(bochs.PAGE)
    m = bochs.Machine()
    m.map(code.ctypes.data, bochs.PAGE, writable=False, name="code")
    m.map(data.ctypes.data, bochs.PAGE, name="data")
    with pytest.raises(EmulationError, match=r"#GP general protection .*misaligned") as kept:
        m.call(code.ctypes.data, [data.ctypes.data + 4])
    assert kept.traceback                              # the traceback (and its frames) is still alive
    assert not [o for o in gc.get_objects() if isinstance(o, bochscpu.Session)]
    m = bochs.Machine()
    m.map(code.ctypes.data, bochs.PAGE, writable=False, name="code")
    m.map(data.ctypes.data, bochs.PAGE, name="data")
    m.call(code.ctypes.data, [data.ctypes.data])      # aligned: runs


# isolation: the guest never writes host memory --------------------------------------------------
_WRITES_PAST_END = '''
@wb.prim_func
def f(A: wb.Buffer((16,), "float32"), B: wb.Buffer((16,), "float32")):
    for i in range(16):
        with wb.block("b"):
            vi = wb.axis.spatial(16, i)
            B[vi + OFFSET] = A[vi]
'''


@pytest.mark.parametrize("offset, where", [(1, "guard page after buffer B"), (-1, "4 byte(s) before its start")])
def test_a_write_just_outside_an_output_changes_no_host_data(offset, where):
    # B and a read-only input A share one host page with other data; the write lands in the guest's copy
    mod = wb.build(wb.parse(_WRITES_PAST_END.replace("OFFSET", str(offset))), target=SPR, emulate=True)
    host = np.arange(64, dtype="float32")
    a, b = host[32:48], host[16:32]
    a.flags.writeable = False
    before = host.copy()
    with pytest.raises(EmulationError, match=re.escape(where)):
        mod(a, b)
    np.testing.assert_array_equal(host, before)   # neither B's neighbours nor B itself changed


def test_isolated_buffers_still_give_the_right_answer_for_strided_views():
    f = wb.parse('''
@wb.prim_func
def f(a: wb.handle, b: wb.handle):
    sa0 = wb.int32()
    sa1 = wb.int32()
    sb0 = wb.int32()
    sb1 = wb.int32()
    A = wb.match_buffer(a, (8, 4), "float32", strides=(sa0, sa1))
    B = wb.match_buffer(b, (8, 4), "float32", strides=(sb0, sb1))
    for i, j in wb.grid(8, 4):
        with wb.block("b"):
            vi, vj = wb.axis.remap("SS", [i, j])
            B[vi, vj] = A[vi, vj] * 2.0
''')
    mod = wb.build(f, target=SPR, emulate=True)
    big = np.arange(16 * 8, dtype="float32").reshape(16, 8)
    out = np.full((16, 8), -1.0, "float32")
    mod(big[::2, 1:5], out[1::2, ::2])
    want = np.full((16, 8), -1.0, "float32")
    want[1::2, ::2] = big[::2, 1:5] * 2
    np.testing.assert_array_equal(out, want)   # the gaps between the view's elements are untouched


def test_the_thread_control_block_is_a_private_copy():
    """Code that overwrites the stack canary at fs:0x28 changes only the guest's copy of it."""
    import ctypes

    from workbench.backend.emulate import bochs

    bochs.load()
    code = bochs._aligned(bochs.PAGE)
    prog = bytes.fromhex("6448893c2528000000c3")     # mov %rdi, %fs:0x28; ret
    code[:len(prog)] = np.frombuffer(prog, np.uint8)
    fs = bochs.fs_base()
    canary = ctypes.c_uint64.from_address(fs + 0x28).value
    m = bochs.Machine()
    m.map(code.ctypes.data, bochs.PAGE, writable=False, name="code")
    copy = m.map_copy(fs, 64, name="thread control block")
    m.call(code.ctypes.data, [0x1234], fs=fs)
    assert ctypes.c_uint64.from_address(fs + 0x28).value == canary
    assert int(copy[(fs & 0xFFF) + 0x28:(fs & 0xFFF) + 0x30].view(np.uint64)[0]) == 0x1234
