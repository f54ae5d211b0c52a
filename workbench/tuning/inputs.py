"""Random arrays for a tensor program's parameters, from its buffers' shapes and dtypes.

Inputs (parameters the program only reads) are random: floats uniform in
``[-1, 1)``, integers in ``[0, 8)``, bools at random. Outputs (parameters the program
writes) are filled with a *poison* value (NaN for floats, the smallest value for
integers) so an element the program forgets to write shows up in a comparison.

>>> from workbench import te
>>> import workbench as wb
>>> A = te.placeholder((4, 3), name="A")
>>> B = te.compute((4, 3), lambda i, j: A[i, j] * 2.0, name="B")
>>> a, b = random_inputs(wb.create_prim_func([A, B]))
>>> a.shape, bool(np.isnan(b).all())
((4, 3), True)
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..ir.dtype import element_of, is_bool, is_float, lanes_of, to_numpy
from ._program import accessed_params, bind_sizes, buffer_shape, prim_func_of


def poison(dtype) -> Any:
    """The fill value of an output before a run: NaN for floats, the minimum for integers."""
    dt = np.dtype(dtype)
    if dt.kind == "f" or dt.name == "bfloat16" or dt.kind == "V":
        return np.nan
    if dt.kind in "iu":
        return np.iinfo(dt).min
    if dt.kind == "b":
        return False
    return 0


def fill_poison(a: np.ndarray) -> None:
    """Overwrite ``a`` with its dtype's poison value, in place."""
    a[...] = poison(a.dtype)


def random_array(shape, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """One random array of an IR dtype (``"float32"``, ``"int8"``, ``"bfloat16"``, ``"bool"``)."""
    np_dt = to_numpy(element_of(dtype))
    shape = tuple(shape) + ((lanes_of(dtype),) if lanes_of(dtype) > 1 else ())
    if is_bool(dtype):
        return rng.random(shape) < 0.5
    if is_float(dtype):
        return rng.uniform(-1.0, 1.0, shape).astype(np_dt)
    return rng.integers(0, 8, shape).astype(np_dt)


def random_inputs(func: Any, sizes: Mapping | None = None, seed: int | np.random.Generator = 0) -> list:
    """One array per parameter of ``func``: random inputs, poison-filled outputs.

    ``func`` is a PrimFunc (or a Schedule / IRModule / built function holding one).
    Symbolic sizes need ``sizes={"n": 128}``; scalar parameters cannot be invented
    (pass the arguments yourself).

    >>> import workbench as wb
    >>> from workbench import te
    >>> n = wb.var("n")
    >>> x = te.placeholder((n, 4), name="x")
    >>> y = te.compute((n, 4), lambda i, j: x[i, j] + 1.0, name="y")
    >>> [a.shape for a in random_inputs(wb.create_prim_func([x, y]), sizes={"n": 6})]
    [(6, 4), (6, 4)]
    """
    f = prim_func_of(func)
    if f is None:
        raise TypeError(f"random_inputs needs a tensor program, got {type(func).__name__}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    env = bind_sizes(f, None, sizes)
    _, writes = accessed_params(f)
    out = []
    for k, p in enumerate(f.params):
        buf = f.buffer_map.get(p)
        if buf is None:
            raise ValueError(f"{f.name} has the scalar parameter {p.name}; random inputs cannot guess its "
                             f"value, so pass all arguments with args=[...]")
        shape = buffer_shape(buf, env)
        if k in writes:
            a = np.empty(shape + ((lanes_of(buf.dtype),) if lanes_of(buf.dtype) > 1 else ()),
                         to_numpy(element_of(buf.dtype)))
            fill_poison(a)
        else:
            a = random_array(shape, buf.dtype, rng)
        out.append(a)
    return out


__all__ = ["random_inputs", "random_array", "poison", "fill_poison"]
