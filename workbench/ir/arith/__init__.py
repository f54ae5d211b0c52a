"""Arithmetic analysis: the simplifier, bounds, regions and affine iterator maps.

The one arithmetic engine of the package: the interval rules (``interval``), constant
and symbolic bounds (``bound``), linear forms (``linear``) and the ``Analyzer`` that
region inference, the schedule's legality checks and the interpreter all use.

>>> from workbench.ir.expr import Var, Range
>>> from workbench.ir.arith import simplify, Analyzer
>>> i, j = Var("i"), Var("j")
>>> print(simplify(i * 4 + j * 1 + 0 - i * 4))
j
"""
from __future__ import annotations

from .analyzer import Analyzer
from .bound import ConstIntBound, IntervalSet, const_int_bound
from .region import infer_block_access_regions, region_of_access
from .simplify import simplify
from .iter_map import (AffineInverse, DividedBinding, IterMapError, IterMapResult, IterMark, IterSplit, IterSum,
                       detect_iter_map, inverse_affine_map, is_affine_binding, iter_map_to_expr, subspace_divide)

__all__ = ["Analyzer", "ConstIntBound", "IntervalSet", "const_int_bound", "simplify",
           "infer_block_access_regions", "region_of_access", "detect_iter_map", "is_affine_binding",
           "subspace_divide", "iter_map_to_expr", "IterMapResult", "IterMapError", "IterMark", "IterSplit",
           "IterSum", "DividedBinding", "inverse_affine_map", "AffineInverse"]
