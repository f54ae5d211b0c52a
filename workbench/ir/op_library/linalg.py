"""Linear algebra in te: ``matmul``, ``batch_matmul``, ``dense``.

    >>> from workbench import te
    >>> from workbench.ir.op_library import linalg
    >>> A = te.placeholder((4, 8), name="A")
    >>> B = te.placeholder((8, 3), name="B")
    >>> C = linalg.matmul(A, B)
    >>> C.shape
    (4, 3)
"""
from __future__ import annotations

from .. import te
from ..te import Tensor
from ._util import check_dims_equal, check_ndim


def matmul(A: Tensor, B: Tensor, name: str = "matmul", out_dtype: str | None = None) -> Tensor:
    """``C[i, j] = sum_k A[i, k] * B[k, j]`` (A: ``(m, k)``, B: ``(k, n)``).

    With ``out_dtype`` the elements are cast before multiplying (e.g. int8 inputs, int32 sums).

    >>> from workbench import te
    >>> A, B = te.placeholder((2, 3), name="A"), te.placeholder((3, 5), name="B")
    >>> matmul(A, B).shape
    (2, 5)
    """
    check_ndim("matmul", A, 2)
    check_ndim("matmul", B, 2)
    check_dims_equal("matmul", A, 1, B, 0)
    k = te.reduce_axis(A.shape[1], name="k")
    dt = out_dtype or A.dtype
    return te.compute((A.shape[0], B.shape[1]),
                      lambda i, j: te.sum(te.cast(A[i, k], dt) * te.cast(B[k, j], dt), axis=k), name=name)


def batch_matmul(A: Tensor, B: Tensor, name: str = "batch_matmul") -> Tensor:
    """``C[b, i, j] = sum_k A[b, i, k] * B[b, k, j]`` (A: ``(b, m, k)``, B: ``(b, k, n)``).

    >>> from workbench import te
    >>> A, B = te.placeholder((2, 3, 4), name="A"), te.placeholder((2, 4, 5), name="B")
    >>> batch_matmul(A, B).shape
    (2, 3, 5)
    """
    check_ndim("batch_matmul", A, 3)
    check_ndim("batch_matmul", B, 3)
    check_dims_equal("batch_matmul", A, 0, B, 0)
    check_dims_equal("batch_matmul", A, 2, B, 1)
    k = te.reduce_axis(A.shape[2], name="k")
    return te.compute((A.shape[0], A.shape[1], B.shape[2]),
                      lambda b, i, j: te.sum(A[b, i, k] * B[b, k, j], axis=k), name=name)


def dense(X: Tensor, W: Tensor, bias: Tensor | None = None, name: str = "dense") -> Tensor:
    """``Y = X @ W^T (+ bias)``: X ``(m, k)``, W ``(n, k)`` (a linear layer's weight), bias ``(n,)``.

    Two stages with a bias (``{name}_matmul`` then ``{name}``), as TVM's topi does.

    >>> from workbench import te
    >>> X, W, b = te.placeholder((2, 8), name="X"), te.placeholder((4, 8), name="W"), te.placeholder((4,), name="b")
    >>> dense(X, W, b).shape
    (2, 4)
    """
    check_ndim("dense", X, 2)
    check_ndim("dense", W, 2)
    check_dims_equal("dense", X, 1, W, 1)
    k = te.reduce_axis(X.shape[1], name="k")
    mm_name = name if bias is None else f"{name}_matmul"
    Y = te.compute((X.shape[0], W.shape[0]), lambda i, j: te.sum(X[i, k] * W[j, k], axis=k), name=mm_name)
    if bias is None:
        return Y
    check_ndim("dense", bias, 1)
    check_dims_equal("dense", W, 0, bias, 0)
    return te.compute(Y.shape, lambda i, j: Y[i, j] + bias[j], name=name)


__all__ = ["matmul", "batch_matmul", "dense"]
