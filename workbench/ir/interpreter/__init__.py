"""The reference interpreter: run any PrimFunc on numpy arrays.

``evaluate(f, a, b, c)`` runs ``f`` exactly as a built function would be called,
writing its outputs into the arrays in place. It is the meaning of the IR: every
schedule primitive and every backend is checked against it (and it against numpy).

The function is compiled once into Python source (nested loops over numpy scalars
of each value's dtype) and cached; ``python_source(f)`` shows that source.

Semantics, where a choice had to be made:

* every loop kind (parallel, vectorized, unrolled, thread-bound) runs serially, in order;
* a block runs where its predicate holds; its ``init`` runs when every reduce
  iteration variable is at the minimum of its domain; a binding outside the
  iteration variable's domain raises ``IndexError``;
* integers wrap like C (two's complement); ``/`` and ``truncmod`` on integers
  truncate toward zero, ``//`` and ``%`` round toward minus infinity;
* float arithmetic rounds in the value's dtype (float16, bfloat16, float32, float64);
  math intrinsics are computed in double precision and rounded once to the dtype;
  ``round`` rounds half to even (like ``nearbyint`` and ``np.rint``); float ``min``
  and ``max`` propagate NaN (like ``np.minimum``);
* a float -> integer cast truncates toward zero; casting NaN or infinity raises;
* ``Select`` evaluates both sides, the intrinsic ``if_then_else`` only the chosen one;
* every buffer access is bounds-checked (``IndexError`` names the buffer and index);
* fresh buffers (``alloc_buffer``, ``Allocate``) start filled with NaN (floats),
  the smallest value (signed integers), the largest (unsigned) or True (bool), so a
  read of uninitialised memory shows up in the result.

>>> import numpy as np
>>> from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var
>>> a, b = Var("a", "handle"), Var("b", "handle")
>>> A, Bf = Buffer("A", (4,), "float32"), Buffer("B", (4,), "float32")
>>> i = Var("i")
>>> f = PrimFunc([a, b], {a: A, b: Bf}, For(i, 0, 4, "serial", BufferStore(Bf, A[i] * 2.0, [i])))
>>> x, y = np.arange(4, dtype="float32"), np.zeros(4, "float32")
>>> evaluate(f, x, y)
>>> y
array([0., 2., 4., 6.], dtype=float32)
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from .codegen import CompileError, CompiledFunc, compile_func
from .runtime import InterpreterError

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _entry(func) -> CompiledFunc:
    with _LOCK:
        entry = _CACHE.get(func)
    if entry is None:
        entry = compile_func(func)
        with _LOCK:
            _CACHE[func] = entry
    return entry


def _resolve(func, name):
    from ..function import IRModule, PrimFunc

    if isinstance(func, IRModule):
        prims = {k: v for k, v in func.functions.items() if isinstance(v, PrimFunc)}
        if name is not None:
            if name not in func.functions:
                raise KeyError(f"the module has no function {name!r}; it has {', '.join(func.functions) or 'none'}")
            func = func.functions[name]
        elif len(prims) == 1:
            func = next(iter(prims.values()))
        else:
            raise ValueError(f"the module has {len(prims)} tensor programs ({', '.join(prims) or 'none'}); "
                             f"say which with name=...")
    elif name is not None and not isinstance(func, PrimFunc):
        raise TypeError("name= only selects a function of an IRModule")
    if not isinstance(func, PrimFunc):
        raise TypeError(f"evaluate runs a PrimFunc (or an IRModule holding one), got {type(func).__name__}")
    return func


def evaluate(func, *arrays, name: str | None = None, **scalars) -> None:
    """Run ``func`` on numpy arrays, writing its outputs in place (like a built function).

    Parameters
    ----------
    func:
        A ``PrimFunc``, or an ``IRModule`` (with ``name=`` unless it holds one tensor program).
    *arrays:
        One value per parameter, in order: a numpy array for each buffer parameter
        (dtype, shape and symbolic sizes are checked before anything runs) and a Python
        number for each scalar parameter.
    **scalars:
        Parameters given by name instead (``n=128``).

    Raises ``TypeError``/``ValueError`` for a bad call (nothing is written then),
    ``IndexError`` for an out-of-bounds access, ``AssertionError`` for a failed
    ``AssertStmt``.

    >>> import numpy as np
    >>> from workbench.ir import Buffer, BufferStore, For, PrimFunc, Var
    >>> a, c = Var("a", "handle"), Var("c", "handle")
    >>> n = Var("n")
    >>> A, C = Buffer("A", (n,), "int8"), Buffer("C", (n,), "int8")
    >>> i = Var("i")
    >>> f = PrimFunc([a, c], {a: A, c: C}, For(i, 0, n, "serial", BufferStore(C, A[i] + A[i], [i])))
    >>> out = np.zeros(3, "int8")
    >>> evaluate(f, np.array([1, 64, -100], "int8"), out)   # int8 wraps like C
    >>> out
    array([   2, -128,   56], dtype=int8)
    """
    from .binding import bind_arguments

    func = _resolve(func, name)
    entry = _entry(func)
    extra = entry.entry_params[len(func.params):]
    values = bind_arguments(func, arrays, scalars, entry.written, extra)
    with np.errstate(all="ignore"):
        entry.fn(*values)
    return None


def python_source(func, name: str | None = None) -> str:
    """The Python source the interpreter runs for ``func`` (to read, or to debug a program).

    >>> from workbench.ir import Buffer, BufferStore, PrimFunc, Var
    >>> c = Var("c", "handle"); C = Buffer("C", (), "float32")
    >>> print(python_source(PrimFunc([c], {c: C}, BufferStore(C, 1.0, []))))
    def _run(C_1):
        C_1[()] = _c2
    <BLANKLINE>
    """
    return _entry(_resolve(func, name)).source


__all__ = ["evaluate", "python_source", "CompileError", "InterpreterError"]
