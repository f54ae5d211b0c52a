"""Data types of the loop-level IR.

A dtype is spelled as a string, as in numpy and TVM: ``"float32"``, ``"int8"``,
``"bool"``, ``"bfloat16"``; a vector of lanes appends ``x<lanes>``
(``"float32x16"``); ``"handle"`` is an opaque pointer (a buffer parameter).

>>> from workbench.ir.dtype import normalize_dtype, is_float
>>> normalize_dtype("float32"), is_float("bfloat16")
('float32', True)
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

SCALAR_DTYPES = (
    "bool",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64",
)
HANDLE = "handle"

_VEC = re.compile(r"^([a-z]+[0-9]*)x([0-9]+)$")


class DTypeError(TypeError, ValueError):
    """An unknown dtype, or two dtypes mixed without a cast."""


@lru_cache(maxsize=None)
def normalize_dtype(dtype) -> str:
    """Return the canonical string of ``dtype`` (a string, numpy dtype or Python type).

    >>> normalize_dtype(np.float32), normalize_dtype("float32x4")
    ('float32', 'float32x4')
    """
    if isinstance(dtype, str):
        s = dtype.strip()
    elif dtype is bool:
        s = "bool"
    elif dtype is int:
        s = "int32"
    elif dtype is float:
        s = "float32"
    else:
        try:
            s = np.dtype(dtype).name
        except TypeError:
            raise DTypeError(f"unknown dtype {dtype!r}; expected one of {', '.join(SCALAR_DTYPES)}") from None
    if s in SCALAR_DTYPES or s == HANDLE:
        return s
    m = _VEC.match(s)
    if m and m.group(1) in SCALAR_DTYPES and int(m.group(2)) >= 1:
        return s if int(m.group(2)) > 1 else m.group(1)
    raise DTypeError(f"unknown dtype {dtype!r}; expected one of {', '.join(SCALAR_DTYPES)} "
                     f"(or a vector such as 'float32x16', or 'handle')")


def element_of(dtype: str) -> str:
    """The scalar dtype of a (vector) dtype: ``element_of("float32x16") == "float32"``."""
    m = _VEC.match(dtype)
    return m.group(1) if m else dtype


def lanes_of(dtype: str) -> int:
    """Number of lanes: 1 for scalars, 16 for ``"float32x16"``."""
    m = _VEC.match(dtype)
    return int(m.group(2)) if m else 1


def with_lanes(dtype: str, lanes: int) -> str:
    """``with_lanes("float32", 8) == "float32x8"``; ``lanes == 1`` gives the scalar."""
    e = element_of(dtype)
    return e if lanes == 1 else f"{e}x{lanes}"


def is_float(dtype: str) -> bool:
    return element_of(dtype).startswith(("float", "bfloat"))


def is_int(dtype: str) -> bool:
    """Signed integer."""
    return element_of(dtype).startswith("int")


def is_uint(dtype: str) -> bool:
    return element_of(dtype).startswith("uint")


def is_integer(dtype: str) -> bool:
    """Signed or unsigned integer (not bool)."""
    return is_int(dtype) or is_uint(dtype)


def is_bool(dtype: str) -> bool:
    return element_of(dtype) == "bool"


def bits_of(dtype: str) -> int:
    e = element_of(dtype)
    if e == "bool":
        return 1
    if e == HANDLE:
        return 64
    return int(re.sub(r"^[a-z]+", "", e))


def to_numpy(dtype: str) -> np.dtype:
    """The numpy dtype of a scalar dtype; bfloat16 comes from ml_dtypes."""
    e = element_of(normalize_dtype(dtype))
    if e == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if e == HANDLE:
        raise DTypeError("a 'handle' has no numpy dtype")
    return np.dtype(e)


def from_numpy(dtype) -> str:
    """The IR dtype of a numpy dtype (``ml_dtypes.bfloat16`` gives ``"bfloat16"``)."""
    d = np.dtype(dtype)
    if d.name == "bfloat16":
        return "bfloat16"
    return normalize_dtype(d.name)


def min_value(dtype: str):
    """Smallest value of a dtype (``-inf`` for floats)."""
    e = element_of(dtype)
    if is_float(e):
        return float("-inf")
    if e == "bool":
        return False
    return int(np.iinfo(np.dtype(e)).min)


def max_value(dtype: str):
    """Largest value of a dtype (``inf`` for floats)."""
    e = element_of(dtype)
    if is_float(e):
        return float("inf")
    if e == "bool":
        return True
    return int(np.iinfo(np.dtype(e)).max)
