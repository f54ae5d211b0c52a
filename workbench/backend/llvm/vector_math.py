"""Vector ``exp``, ``erf`` and ``tanh`` of float32 lanes as inline LLVM IR polynomials.

LLVM has no vector math library here: ``llvm.exp.v16f32`` becomes sixteen scalar ``expf`` calls, and
``erff``/``tanhf`` are libm calls lane by lane. That made softmax, GELU and SiLU cost more than the
matmuls around them. These emit the computation on whole vectors instead:

* ``exp``: ``x = n ln2 + r`` with ``|r| <= ln2 / 2`` (Cody-Waite split of ln2), Cephes' degree-6
  polynomial for ``e**r``, then ``2**n`` built from exponent bits in two halves (so results down to the
  denormals are exact scalings); within 1 ulp of float32 ``exp`` over its range; ``+inf`` above 88.72,
  0 far below, NaN stays NaN.
* ``erf``: the rational approximation of Eigen/XLA on ``[-4, 4]`` (odd degree-13 over even degree-8
  polynomial), ``+-1`` outside; absolute error below 5e-7.
* ``tanh``: Cephes' odd polynomial below ``|x| = 0.625``, ``1 - 2 / (exp(2|x|) + 1)`` above (with the
  sign), within 1 ulp.

Scalar float32 and other types keep the libm/LLVM calls; only vectors of float32 come here (the
accuracy checks against numpy are in ``tests/backend/test_vector_math.py``).
"""
from __future__ import annotations

from typing import Callable

import llvmlite.ir as ir

F32 = ir.FloatType()
I32 = ir.IntType(32)

#: ops this module computes for vectors of float32
VECTOR_MATH_OPS = frozenset({"exp", "erf", "tanh"})

_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)
_ERF_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
              -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
             -1.42647390514189e-02)
_TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)

Intrinsic = Callable[[str, ir.Type, int], ir.Function]


def is_float32_vector(t: ir.Type) -> bool:
    return isinstance(t, ir.VectorType) and t.element == F32


class VectorMath:
    """Emits the polynomials with ``builder``; ``intrinsic(name, type, nargs)`` declares LLVM intrinsics."""

    def __init__(self, builder: ir.IRBuilder, intrinsic: Intrinsic):
        self.b = builder
        self.intrinsic = intrinsic

    def __call__(self, op: str, x: ir.Value) -> ir.Value:
        return getattr(self, op)(x)

    # helpers ------------------------------------------------------------------------------------
    def const(self, t: ir.VectorType, value: float) -> ir.Constant:
        return ir.Constant(t, [value] * t.count)

    def call(self, name: str, *args: ir.Value) -> ir.Value:
        return self.b.call(self.intrinsic(name, args[0].type, len(args)), list(args))

    def horner(self, x: ir.Value, coefficients: tuple[float, ...]) -> ir.Value:
        t = x.type
        acc = self.const(t, coefficients[0])
        for c in coefficients[1:]:
            acc = self.b.fadd(self.b.fmul(acc, x), self.const(t, c))
        return acc

    def power_of_two(self, n: ir.Value) -> ir.Value:
        """``2.0 ** n`` for integer lanes ``n`` in ``[-254, 254]``, as float32 lanes (exponent bits)."""
        b, t = self.b, n.type
        shifted = b.add(n, ir.Constant(t, [127] * t.count))
        bits = b.shl(shifted, ir.Constant(t, [23] * t.count))
        return b.bitcast(bits, ir.VectorType(F32, t.count))

    # the functions ------------------------------------------------------------------------------
    def exp(self, x: ir.Value) -> ir.Value:
        b, t = self.b, x.type
        it = ir.VectorType(I32, t.count)
        xc = self.call("llvm.maxnum", self.call("llvm.minnum", x, self.const(t, 88.72), ), self.const(t, -104.0))
        n = self.call("llvm.floor", b.fadd(b.fmul(xc, self.const(t, 1.44269504088896341)), self.const(t, 0.5)))
        r = b.fsub(xc, b.fmul(n, self.const(t, 0.693359375)))
        r = b.fsub(r, b.fmul(n, self.const(t, -2.12194440e-4)))
        p = self.horner(r, _EXP_POLY)
        y = b.fadd(b.fadd(b.fmul(b.fmul(p, r), r), r), self.const(t, 1.0))
        ni = b.fptosi(n, it)
        half = b.ashr(ni, ir.Constant(it, [1] * t.count))
        y = b.fmul(b.fmul(y, self.power_of_two(half)), self.power_of_two(b.sub(ni, half)))
        y = b.select(b.fcmp_ordered(">", x, self.const(t, 88.72)), self.const(t, float("inf")), y)
        return b.select(b.fcmp_unordered("uno", x, x), x, y)

    def erf(self, x: ir.Value) -> ir.Value:
        b, t = self.b, x.type
        xc = self.call("llvm.maxnum", self.call("llvm.minnum", x, self.const(t, 4.0)), self.const(t, -4.0))
        x2 = b.fmul(xc, xc)
        p = b.fmul(self.horner(x2, _ERF_ALPHA), xc)
        q = self.horner(x2, _ERF_BETA)
        y = b.fdiv(p, q)
        return b.select(b.fcmp_unordered("uno", x, x), x, y)

    def tanh(self, x: ir.Value) -> ir.Value:
        b, t = self.b, x.type
        ax = self.call("llvm.fabs", x)
        x2 = b.fmul(x, x)
        small = b.fadd(b.fmul(b.fmul(self.horner(x2, _TANH_POLY), x2), x), x)
        e = self.exp(b.fmul(self.call("llvm.minnum", ax, self.const(t, 10.0)), self.const(t, 2.0)))
        big = b.fsub(self.const(t, 1.0), b.fdiv(self.const(t, 2.0), b.fadd(e, self.const(t, 1.0))))
        big = self.call("llvm.copysign", big, x)
        y = b.select(b.fcmp_ordered("<", ax, self.const(t, 0.625)), small, big)
        return b.select(b.fcmp_unordered("uno", x, x), x, y)
