"""The disk cache of LLVM builds (workbench.backend.cache): a new process loads the machine code of a
program built before instead of lowering, generating, optimising and JIT-compiling it again; corrupt
entries are rebuilt; targets and options get their own entries; opt-outs; emulated builds bypass it."""
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.backend import cache
from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var


@pytest.fixture
def disk(tmp_path, monkeypatch):
    """A fresh, empty disk cache and an empty memory cache (so builds reach the disk)."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_NO_DISK_CACHE", raising=False)
    cache.clear()
    yield tmp_path / "builds"
    cache.clear()


def _entries(folder) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def _scaled(n: int, factor: float, name: str):
    """``B[i] = A[i] * factor + exp(A[i])`` over ``n`` elements, vectorized by 8."""
    A = te.placeholder((n,), "float32", name="A")
    B = te.compute((n,), lambda i: A[i] * factor + te.exp(A[i]), name="B")
    sch = wb.Schedule(wb.create_prim_func([A, B]))
    _, inner = sch.split(sch.get_loops(sch.get_block("B"))[0], factors=[None, 8])
    sch.vectorize(inner)
    return sch.func.with_attr("global_symbol", name)


def _rebuild(func, **options):
    """Build ``func`` as a new process would: nothing in memory."""
    cache.clear()
    return wb.build(func, **options)


def _delta(before: dict) -> dict:
    now = cache.stats()
    return {k: now[k] - before[k] for k in ("compiles", "disk_hits", "disk_writes", "disk_rejected")}


# 1. a new process ------------------------------------------------------------------------------------

_CHILD = textwrap.dedent('''
    import json, time
    import numpy as np
    import workbench as wb
    from workbench import te
    from workbench.backend import cache
    from workbench.backend.llvm.module import init_llvm

    init_llvm()                                     # imports and LLVM set-up are not the build's time
    wb.Target("llvm -mcpu=znver3")                  # (nor the first check of a CPU name: it runs llc)
    n = 96
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    D = te.compute((n, n), lambda i, j: te.exp(C[i, j] * 0.01) + te.tanh(C[i, j]), name="D")
    sch = wb.Schedule(wb.create_prim_func([A, B, D]))
    i, j, kk = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 16])
    ko, ki = sch.split(kk, factors=[None, 32])
    sch.reorder(i, jo, ko, ki, ji)
    sch.parallel(i)
    sch.unroll(ki)
    sch.vectorize(ji)
    t = time.perf_counter()
    f = wb.build(sch.mod, target="llvm -mcpu=znver3")
    seconds = time.perf_counter() - t
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    d = np.zeros((n, n), np.float32)
    f(a, b, d)
    c = a.astype(np.float64) @ b
    expected = np.exp(c * 0.01) + np.tanh(c)
    print(json.dumps({"seconds": seconds, "stats": cache.stats(), "times": sorted(f.times),
                      "error": float(np.abs(d - expected).max() / np.abs(expected).max()),
                      "lowered": f["main"].source("lowered"), "version": cache.compiler_version()}))
''')


def _child(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_build_from_disk(tmp_path):
    env = dict(os.environ, WORKBENCH_CACHE_DIR=str(tmp_path))
    env.pop("WORKBENCH_NO_DISK_CACHE", None)
    for _ in range(3):
        first, second = _child(env), _child(env)
        if first["version"] == second["version"]:
            break       # else the compiler's sources were edited between the two runs: a new entry, again
    assert first["stats"]["compiles"] == 1 and first["stats"]["disk_writes"] == 1
    assert second["stats"]["compiles"] == 0 and second["stats"]["disk_hits"] == 1
    assert first["times"] == ["codegen", "jit", "lower", "optimize"] and second["times"] == ["load"]
    assert first["error"] < 1e-5 and second["error"] < 1e-5               # both against numpy
    assert second["lowered"] == first["lowered"]                          # lowered again on demand
    assert second["seconds"] < first["seconds"] / 3, (first["seconds"], second["seconds"])
    assert len(_entries(tmp_path / "builds")) == 1


# 2. what a loaded build keeps -------------------------------------------------------------------------

def test_loaded_build_runs_symbolic_sizes_checks_and_sources(disk):
    n = te.var("n")
    A = te.placeholder((n,), "float32", name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    func = wb.create_prim_func([A, B])
    cold = wb.build(func, checks=True)
    before = cache.stats()
    warm = _rebuild(func, checks=True)
    assert _delta(before) == {"compiles": 0, "disk_hits": 1, "disk_writes": 0, "disk_rejected": 0}
    for size in (1, 17, 100):                                            # size variables bound from shapes
        x = np.arange(size, dtype=np.float32)
        y = np.zeros(size, np.float32)
        warm(x, y)
        np.testing.assert_array_equal(y, x * 2 + 1)
    with pytest.raises(ValueError, match="inconsistent size n"):         # the parameters' descriptions
        warm(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="read-only"):                   # which parameters are written
        warm(np.zeros(3, np.float32), _read_only(3))
    for kind in ("ll", "ll-raw", "lowered"):
        assert warm.source(kind) == cold.source(kind)
    assert "ret" in warm.source("asm")


def _read_only(n: int) -> np.ndarray:
    a = np.zeros(n, np.float32)
    a.setflags(write=False)
    return a


def test_loaded_build_keeps_the_messages_of_runtime_checks(disk):
    a, b, i = Var("a", "handle"), Var("b", "handle"), Var("i")
    A, B = Buffer("A", (8,), "float32"), Buffer("B", (8,), "float32")
    func = PrimFunc([a, b], {a: A, b: B}, For(i, 0, 8, "serial", BufferStore(B, A[i + 1], [i])))
    wb.build(func, checks=True)
    warm = _rebuild(func, checks=True)
    assert cache.stats()["disk_hits"] >= 1
    with pytest.raises(IndexError, match="buffer A: index 8 is outside dimension 0 of extent 8"):
        warm(np.zeros(8, np.float32), np.zeros(8, np.float32))


# 3. corrupt entries --------------------------------------------------------------------------------------

def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],                                  # truncated (a killed writer)
    _flip_last_byte,                                                      # a changed byte of the code
    lambda data: data[:20] + b"{not json" + data[29:],                    # a damaged header
    lambda data: b"",                                                     # empty
    lambda data: b"garbage" * 100,                                        # not an entry
], ids=["truncated", "flipped-byte", "bad-header", "empty", "garbage"])
def test_a_corrupt_entry_is_ignored_and_rebuilt(disk, damage):
    func = _scaled(64, 3.0, "corrupt_me")
    wb.build(func)
    (entry,) = _entries(disk)
    path = disk / entry
    path.write_bytes(damage(path.read_bytes()))
    before = cache.stats()
    f = _rebuild(func)
    assert _delta(before) == {"compiles": 1, "disk_hits": 0, "disk_writes": 1, "disk_rejected": 1}
    x = np.linspace(-2, 2, 64, dtype=np.float32)
    y = np.zeros(64, np.float32)
    f(x, y)
    np.testing.assert_allclose(y, x * 3 + np.exp(x), rtol=1e-6)
    before = cache.stats()
    _rebuild(func)                                                        # the rewritten entry is good
    assert _delta(before)["disk_hits"] == 1 and _entries(disk) == [entry]


def test_an_entry_not_describing_the_functions_is_rebuilt(disk):
    func = _scaled(32, 2.0, "described")
    key = cache.make_key({"described": func}, wb.Target("llvm"), False)
    wb.build(func)
    header, blobs = cache.disk_get(key)
    header["functions"]["described"]["written"] = [True]                 # one flag for two parameters
    assert cache.disk_put(key, header, blobs)
    before = cache.stats()
    _rebuild(func)
    assert _delta(before) == {"compiles": 1, "disk_hits": 0, "disk_writes": 1, "disk_rejected": 1}


# 4. keys: targets, options, compiler ------------------------------------------------------------------

def test_targets_and_options_get_their_own_entries(disk):
    func = _scaled(64, 5.0, "per_target")
    wb.build(func, target="llvm -mcpu=znver3")
    wb.build(func, target="llvm -mcpu=znver3 -opt-level=2")
    wb.build(func, target="llvm -mcpu=znver3", checks=True)
    assert len(_entries(disk)) == 3
    before = cache.stats()
    for options in ({}, {"checks": True}):
        m = _rebuild(func, target="llvm -mcpu=znver3", **options)
        assert str(m.target) == "llvm -mcpu=znver3"
    _rebuild(func, target="llvm -mcpu=znver3 -opt-level=2")
    assert _delta(before) == {"compiles": 0, "disk_hits": 3, "disk_writes": 0, "disk_rejected": 0}


def test_the_entry_name_depends_on_the_compiler_version(disk, monkeypatch):
    func = _scaled(16, 1.5, "versioned")
    key = cache.make_key({"versioned": func}, wb.Target("llvm"), False)
    path = cache.disk_path(key)
    monkeypatch.setattr(cache, "_version", ["another compiler"])
    assert cache.disk_path(key) != path


# 5. opt-outs, unwritable folders, emulation ------------------------------------------------------------

def test_cache_false_and_the_environment_variable_turn_the_disk_cache_off(disk, monkeypatch):
    func = _scaled(48, 7.0, "opt_out")
    wb.build(func, cache=False)
    assert _entries(disk) == []
    monkeypatch.setenv("WORKBENCH_NO_DISK_CACHE", "1")
    wb.build(func)
    assert _entries(disk) == []
    before = cache.stats()
    wb.build(func)                                                        # memory still caches
    assert _delta(before)["compiles"] == 0 and cache.stats()["hits"] > before["hits"]
    monkeypatch.setenv("WORKBENCH_NO_DISK_CACHE", "0")
    _rebuild(func)
    assert len(_entries(disk)) == 1


def test_an_unwritable_cache_folder_still_builds(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(blocker))
    monkeypatch.delenv("WORKBENCH_NO_DISK_CACHE", raising=False)
    func = _scaled(24, 4.0, "nowhere")
    before = cache.stats()
    f = _rebuild(func)
    x = np.ones(24, np.float32)
    y = np.zeros(24, np.float32)
    f(x, y)
    np.testing.assert_allclose(y, 4.0 + np.e, rtol=1e-6)
    assert _delta(before) == {"compiles": 1, "disk_hits": 0, "disk_writes": 0, "disk_rejected": 0}
    cache.clear()


def test_emulated_builds_bypass_the_disk_cache(disk):
    from workbench.backend import emulate

    if not emulate.available():
        pytest.skip("emulator packages not installed")
    func = _scaled(16, 2.5, "emulated")
    before = cache.stats()
    f = wb.build(func, target="llvm -mcpu=sapphirerapids", emulate=True)
    x = np.arange(16, dtype=np.float32) / 8
    y = np.zeros(16, np.float32)
    f(x, y)
    np.testing.assert_allclose(y, x * 2.5 + np.exp(x), rtol=1e-6)
    assert _entries(disk) == []
    assert _delta(before) == {"compiles": 1, "disk_hits": 0, "disk_writes": 0, "disk_rejected": 0}


# 6. concurrent writers -------------------------------------------------------------------------------

def test_concurrent_writers_never_expose_half_an_entry(disk):
    key = ("concurrent", 1)
    blobs = {"object": os.urandom(1 << 20)}
    seen = []

    def write(k):
        for _ in range(5):
            cache.disk_put(key, {"writer": k}, blobs)

    def read():
        for _ in range(40):
            entry = cache.disk_get(key)
            seen.append(None if entry is None else entry[1]["object"] == blobs["object"])

    before = cache.stats()
    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert False not in seen and _delta(before)["disk_rejected"] == 0
    assert [n for n in _entries(disk) if n.endswith(".tmp")] == []
    assert cache.disk_get(key)[0]["writer"] in (0, 1, 2)


# 7. the scheduled-model cache of wb.frontend (compile_module) --------------------------------------------

def _tiny_bert_module():
    from workbench.frontend.bert import BertModel, bert_specs
    from workbench.frontend.config import BertConfig

    cfg = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=10)
    return BertModel(cfg).export(bert_specs())[0]


def _counting_passes(monkeypatch) -> list:
    from workbench.frontend import model as model_module

    runs = []
    monkeypatch.setattr(model_module, "_passes", lambda target: lambda m: runs.append(target) or
                        wb.transform.LegalizeOps()(m))
    return runs


def test_model_cache_honours_the_opt_out(disk, monkeypatch):
    from workbench.frontend.model import compile_module

    runs = _counting_passes(monkeypatch)
    monkeypatch.setenv("WORKBENCH_NO_DISK_CACHE", "1")
    mod = _tiny_bert_module()
    compile_module(mod, "llvm")
    compile_module(mod, "llvm")
    assert runs == ["llvm", "llvm"] and not (disk.parent / "models").exists()


def test_model_cache_ignores_an_entry_that_is_not_text(disk, monkeypatch):
    from workbench.frontend import model as model_module

    runs = _counting_passes(monkeypatch)
    mod = _tiny_bert_module()
    model_module.compile_module(mod, "llvm")
    (entry,) = (disk.parent / "models").iterdir()
    entry.write_bytes(b"\xff\xfe\x00binary")                              # not UTF-8
    again = model_module.compile_module(mod, "llvm")
    assert runs == ["llvm", "llvm"] and again.graph_functions
    assert entry.read_text(encoding="utf-8").startswith("@wb.ir_module")     # rewritten


def test_the_disk_cache_is_trimmed_least_recently_used_first(disk, monkeypatch):
    blob = {"object": b"x" * 1000}
    for k in range(3):
        assert cache.disk_put(("trim", k), {}, blob)
        os.utime(cache.disk_path(("trim", k)), (k, k))           # distinct ages: 0 oldest
    size = os.path.getsize(cache.disk_path(("trim", 0)))
    monkeypatch.setattr(cache, "MAX_DISK_BYTES", 3 * size + size // 2)
    assert cache.disk_get(("trim", 0)) is not None               # used now: the newest
    assert cache.disk_put(("trim", 3), {}, blob)                 # 4 entries: the least recently used goes
    kept = [k for k in range(4) if os.path.exists(cache.disk_path(("trim", k)))]
    assert kept == [0, 2, 3]
