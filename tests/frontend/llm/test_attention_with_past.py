"""The llama graph's attention kernel over "cached rows then new rows": one kernel, the cache read in place."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.frontend import llama
from workbench.ir.graph.op import get_op
from workbench.schedule.state import Schedule
from workbench.transform.default_schedule import schedule_kernel

HEADS, KV_HEADS, D = 4, 2, 16


def attention_kernel(n):
    """``_attention_with_past`` as a tensor program: q, k, v (n rows), k_cache, v_cache (m rows) -> out."""
    m = wb.var("m")
    q = te.placeholder((n, HEADS, D), "float32", name="q")
    k = te.placeholder((n, KV_HEADS, D), "float32", name="k")
    v = te.placeholder((n, KV_HEADS, D), "float32", name="v")
    kc = te.placeholder((m, KV_HEADS, D), "float32", name="kc")
    vc = te.placeholder((m, KV_HEADS, D), "float32", name="vc")
    out = llama._attention_with_past(q, k, v, kc, vc)
    return te.create_prim_func([q, k, v, kc, vc, out]).with_attr("global_symbol", "attention_with_past")


def expected(q, k, v, kc, vc):
    """numpy: causal attention (bottom-right aligned) of q over the cache rows then the new rows."""
    keys = np.concatenate([kc, k])[None].transpose(0, 2, 1, 3)          # [1, kv_heads, m + n, d]
    values = np.concatenate([vc, v])[None].transpose(0, 2, 1, 3)
    query = q[None].transpose(0, 2, 1, 3)
    return get_op("scaled_dot_product_attention").reference([query, keys, values], {"causal": True})


@pytest.mark.parametrize("n, m", [(1, 7), (3, 5), (1, 0)])
def test_attention_with_past_matches_numpy(n, m):
    fn = wb.build(schedule_kernel(attention_kernel(n), "llvm"), target="llvm")
    rng = np.random.default_rng(n + m)
    q, k, v = (rng.standard_normal((n, h, D)).astype(np.float32) for h in (HEADS, KV_HEADS, KV_HEADS))
    kc, vc = (rng.standard_normal((m, KV_HEADS, D)).astype(np.float32) for _ in range(2))
    out = np.empty((1, HEADS, n, D), np.float32)
    fn(q, k, v, kc, vc, out)
    np.testing.assert_allclose(out, expected(q, k, v, kc, vc), rtol=1e-5, atol=1e-6)


def test_attention_with_past_reads_the_cache_in_place():
    func = schedule_kernel(attention_kernel(1), "llvm")
    text = func.script()
    # the concatenations are inlined: no block of their own, no [1, kv_heads, m + n, d] buffer for them
    assert 'wb.block("keys_with_past")' not in text and 'wb.block("values_with_past")' not in text
    assert 'wb.block("keys_with_past_global")' in text          # the transposed key copy reads the cache
    assert "keys_with_past = wb.alloc_buffer" not in text and "values_with_past = wb.alloc_buffer" not in text
    # one query row: no tile of 4 rows with a predicate; one parallel task per key head
    assert "wb.where(" not in text
    assert f"wb.parallel({KV_HEADS})" in text


def test_schedule_attention_inlines_both_producers_and_names_them():
    from workbench.transform.schedule_attention import schedule_attention

    sch = Schedule(attention_kernel(2))
    sch.compute_inline(sch.get_block("query"))
    done = schedule_attention(sch, lambda s, loop: s.vectorize(loop))
    assert {"keys_with_past", "values_with_past", "keys_with_past_global"} <= set(done)
    blocks = set(sch.index().blocks)
    assert "keys_with_past" not in blocks and "values_with_past" not in blocks


def test_tiny_graph_has_one_attention_kernel_per_shape_and_no_kv_copy(tiny_llama_path):
    from workbench.frontend.gguf_file import load_gguf

    model = load_gguf(tiny_llama_path)
    mod = llama.build_llama(model.config, model.tensors)
    kernels = sorted(mod.prim_funcs)
    assert not any(name.startswith("kv_with_past") for name in kernels), kernels
    attention = [name for name in kernels if name.startswith("attention_with_past")]
    assert len(attention) == 2, kernels                    # prefill (n rows) and decode (1 row), every layer
