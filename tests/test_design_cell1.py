"""DESIGN.md's first cell runs exactly as written (te and script form), and its programs compute matmul."""
import numpy as np

import workbench as wb
from workbench import te


def test_te_form_as_written():
    A = te.placeholder((1024, 1024), "float32", name="A")
    B = te.placeholder((1024, 1024), "float32", name="B")
    k = te.reduce_axis(1024, name="k")
    C = te.compute((1024, 1024), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    matmul = wb.create_prim_func([A, B, C])
    text = matmul.script()
    assert text.startswith("@wb.prim_func")
    assert 'with wb.block("C"):' in text and "wb.init()" in text
    wb.ir.assert_structural_equal(wb.parse(text), matmul)


@wb.prim_func
def mm_relu(A: wb.Buffer((128, 128), "float32"), B: wb.Buffer((128, 128), "float32"),
            C: wb.Buffer((128, 128), "float32")):
    Y = wb.alloc_buffer((128, 128), "float32")
    for i, j, k in wb.grid(128, 128, 128):
        with wb.block("Y"):
            vi, vj, vk = wb.axis.remap("SSR", [i, j, k])
            with wb.init():
                Y[vi, vj] = 0.0
            Y[vi, vj] = Y[vi, vj] + A[vi, vk] * B[vk, vj]
    for i, j in wb.grid(128, 128):
        with wb.block("C"):
            vi, vj = wb.axis.remap("SS", [i, j])
            C[vi, vj] = wb.max(Y[vi, vj], 0.0)


def test_script_form_as_written_computes_mm_relu(rng):
    assert isinstance(mm_relu, wb.PrimFunc)
    a = rng.standard_normal((128, 128)).astype("float32")
    b = rng.standard_normal((128, 128)).astype("float32")
    c = np.zeros((128, 128), "float32")
    wb.ir.evaluate(mm_relu, a, b, c)
    np.testing.assert_allclose(c, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-4)
    wb.ir.assert_structural_equal(wb.parse(mm_relu.script()), mm_relu)


def test_te_and_script_forms_agree():
    A = te.placeholder((128, 128), "float32", name="A")
    B = te.placeholder((128, 128), "float32", name="B")
    k = te.reduce_axis(128, name="k")
    Y = te.compute((128, 128), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="Y")
    C = te.compute((128, 128), lambda i, j: te.max(Y[i, j], te.const(0.0, "float32")), name="C")
    f = wb.create_prim_func([A, B, C])
    blocks = [b.name for b in _blocks(f)]
    assert blocks == ["Y", "C"]
    assert [iv.iter_type.value for iv in _blocks(f)[0].iter_vars] == ["spatial", "spatial", "reduce"]


def _blocks(f):
    out = []

    class V(wb.ir.Visitor):
        def visit_Block(self, b):
            if b.name != "root":
                out.append(b)
            self.generic_visit(b)

    V().visit(f.body)
    return out
