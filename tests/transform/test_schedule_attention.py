"""The default schedule of attention kernels: one parallel loop over heads, keys transposed once, the
chain computed per tile of query rows; results against the op's numpy reference."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench import te
from workbench.ir.graph.op import get_op
from workbench.ir.stmt import For, ForKind
from workbench.ir.functor import post_order_visit
from workbench.transform.default_schedule import schedule_kernel

TARGET = "llvm -mcpu=znver3"
OP = get_op("scaled_dot_product_attention")


def _loops(func):
    out = []
    post_order_visit(func.body, lambda n: out.append(n) if isinstance(n, For) else None)
    return out


def _kernel(heads, kv_heads, q_seq, kv_seq, dim, mask=None, attrs=None, b=None):
    b = wb.var("batch") if b is None else b
    q = te.placeholder((b, heads, q_seq, dim), "float32", name="Q")
    k = te.placeholder((b, kv_heads, kv_seq, dim), "float32", name="K")
    v = te.placeholder((b, kv_heads, kv_seq, dim), "float32", name="V")
    args = [q, k, v] + ([te.placeholder(mask, "float32" if attrs is None or not attrs.get("bool") else "bool",
                                        name="M")] if mask else [])
    attrs = {k_: v_ for k_, v_ in (attrs or {}).items() if k_ != "bool"}
    out = OP.legalize(args, attrs)
    return schedule_kernel(wb.create_prim_func([*args, out]), TARGET), attrs


def _check(func, attrs, shapes, mask_shape=None, mask_bool=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s, "float32") for s in shapes]
    if mask_shape is not None:
        m = rng.random(mask_shape) < 0.7
        m[..., 0] = True
        arrays.append(m if mask_bool else np.where(m, 0, -1e9).astype("float32"))
    b, h, sq, d = shapes[0]
    out = np.full((b, h, sq, d), np.nan, "float32")
    wb.build(func, target=TARGET)(*arrays, out)
    np.testing.assert_allclose(out, OP.reference(arrays, attrs), rtol=1e-4, atol=1e-5)


def test_attention_schedule_shape_is_per_head_with_transposed_keys():
    s = wb.var("seq")
    f, _ = _kernel(4, 4, s, s, 16)
    text = f.script()
    parallel = [lp for lp in _loops(f) if lp.kind == ForKind.PARALLEL]
    assert len(parallel) == 1, text                      # one parallel loop over batch x heads
    assert "K_global" in text                            # keys copied once per head, transposed
    assert [lp for lp in _loops(f) if lp.kind == ForKind.VECTORIZED]
    assert "attention_qk_update" in text and "attention_pv_update" in text


@pytest.mark.parametrize("q_seq,kv_seq", [(11, 11), (1, 9), (5, 13)])
def test_attention_symbolic_causal_grouped_query_matches_reference(q_seq, kv_seq):
    n, m = wb.var("n"), wb.var("m")
    f, attrs = _kernel(6, 2, n, m, 16, attrs={"causal": True})
    _check(f, attrs, [(1, 6, q_seq, 16), (1, 2, kv_seq, 16), (1, 2, kv_seq, 16)])


@pytest.mark.parametrize("mask_bool", [False, True])
def test_attention_with_mask_and_batch_matches_reference(mask_bool):
    s = wb.var("seq")
    b = wb.var("batch")
    f, attrs = _kernel(3, 3, s, s, 8, mask=(b, 1, 1, s), attrs={"bool": mask_bool}, b=b)
    _check(f, attrs, [(3, 3, 7, 8)] * 3, mask_shape=(3, 1, 1, 7), mask_bool=mask_bool)


def test_attention_fully_masked_row_is_not_nan_when_reference_is_defined():
    s = wb.var("seq")
    f, attrs = _kernel(2, 2, s, s, 8, attrs={"causal": True})
    _check(f, attrs, [(2, 2, 1, 8)] * 3)
