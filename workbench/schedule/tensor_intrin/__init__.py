"""Tensor intrinsics for ``sch.tensorize``: the registry and the built-in intrinsics.

>>> import workbench as wb
>>> print(wb.list_tensor_intrins())          # doctest: +SKIP
>>> from workbench.schedule.tensor_intrin import get_tensor_intrin
>>> print(get_tensor_intrin("dot_u8s8_vnni").desc.script())   # doctest: +SKIP
"""
from __future__ import annotations

from .registry import (IntrinTable, TensorIntrin, TensorIntrinNotFoundError, get_tensor_intrin,
                       list_tensor_intrins, register_tensor_intrin)

__all__ = ["IntrinTable", "TensorIntrin", "TensorIntrinNotFoundError", "get_tensor_intrin", "list_tensor_intrins",
           "register_tensor_intrin"]
