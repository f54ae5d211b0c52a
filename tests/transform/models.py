"""Small graph modules for the pass tests (built with wb.BlockBuilder and wb.op)."""
from __future__ import annotations


import workbench as wb
from workbench.ir.graph import Var


def mlp():
    """x (n, 16) -> linear 32 (matmul + add) -> relu -> linear 8 -> softmax; params (w1, b1, w2, b2)."""
    x = Var("x", wb.Tensor(("n", 16), "float32"))
    w1, b1 = Var("w1", wb.Tensor((16, 32), "float32")), Var("b1", wb.Tensor((32,), "float32"))
    w2, b2 = Var("w2", wb.Tensor((32, 8), "float32")), Var("b2", wb.Tensor((8,), "float32"))
    bb = wb.BlockBuilder()
    with bb.function("main", [x, w1, b1, w2, b2]):
        with bb.dataflow():
            lv = bb.emit(wb.op.matmul(x, w1))
            lv1 = bb.emit(wb.op.add(lv, b1))
            lv2 = bb.emit(wb.op.relu(lv1))
            lv3 = bb.emit(wb.op.matmul(lv2, w2))
            lv4 = bb.emit(wb.op.add(lv3, b2))
            gv = bb.emit_output(wb.op.softmax(lv4, axis=-1))
        bb.emit_func_output(gv)
    return bb.get()


def mlp_inputs(rng, n=5):
    return [rng.standard_normal(s).astype("float32") for s in ((n, 16), (16, 32), (32,), (32, 8), (8,))]


HIDDEN, HEADS, FFN = 16, 2, 32


def bert_layer():
    """One BERT encoder layer on (1, s, 16): attention (2 heads), residual + layer_norm, FFN with gelu."""
    s = wb.var("s")
    x = Var("x", wb.Tensor((1, s, HIDDEN), "float32"))
    names = ["wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo", "g1", "be1", "w1", "b1", "w2", "b2", "g2", "be2"]
    shapes = [(HIDDEN, HIDDEN), (HIDDEN,)] * 4 + [(HIDDEN,), (HIDDEN,), (HIDDEN, FFN), (FFN,), (FFN, HIDDEN),
                                                  (HIDDEN,), (HIDDEN,), (HIDDEN,)]
    p = {n: Var(n, wb.Tensor(sh, "float32")) for n, sh in zip(names, shapes)}
    d = HIDDEN // HEADS
    bb = wb.BlockBuilder()
    with bb.function("main", [x, *p.values()]):
        with bb.dataflow():
            def heads(w, b):
                h = bb.emit(wb.op.add(bb.emit(wb.op.matmul(x, p[w])), p[b]))
                h = bb.emit(wb.op.reshape(h, shape=(1, s, HEADS, d)))
                return bb.emit(wb.op.permute_dims(h, axes=[0, 2, 1, 3]))
            q, k, v = heads("wq", "bq"), heads("wk", "bk"), heads("wv", "bv")
            a = bb.emit(wb.op.scaled_dot_product_attention(q, k, v))
            a = bb.emit(wb.op.permute_dims(a, axes=[0, 2, 1, 3]))
            a = bb.emit(wb.op.reshape(a, shape=(1, s, HIDDEN)))
            o = bb.emit(wb.op.add(bb.emit(wb.op.matmul(a, p["wo"])), p["bo"]))
            h1 = bb.emit(wb.op.layer_norm(bb.emit(wb.op.add(o, x)), p["g1"], p["be1"], eps=1e-12))
            f = bb.emit(wb.op.gelu(bb.emit(wb.op.add(bb.emit(wb.op.matmul(h1, p["w1"])), p["b1"]))))
            f = bb.emit(wb.op.add(bb.emit(wb.op.matmul(f, p["w2"])), p["b2"]))
            gv = bb.emit_output(wb.op.layer_norm(bb.emit(wb.op.add(f, h1)), p["g2"], p["be2"], eps=1e-12))
        bb.emit_func_output(gv)
    return bb.get()


def bert_inputs(rng, s=6):
    mod = bert_layer()
    out = []
    for prm in mod["main"].params:
        shape = tuple(s if not isinstance(dim, wb.ir.expr.IntImm) else dim.value for dim in prm.type.shape)
        out.append((rng.standard_normal(shape) * 0.5).astype("float32"))
    return out
