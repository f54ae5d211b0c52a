"""``wb.VirtualMachine``: run the graph functions of a built module with numpy arrays; ``wb.profile``.

Each graph function is compiled once, when the VM is made, into a flat instruction list
(:mod:`workbench.backend.vm_compile`). A call checks its arguments once (dtype, rank,
and every dimension against the parameter types; the first occurrence of a size
variable such as ``n`` binds it), then runs the instructions: allocate each output
(64-byte aligned), call the compiled kernel (``call_tir``: inputs then outputs) or the
library routine (``call_dps_library``), check ``match_cast`` s. Symbolic sizes bind anew
on every call, so one build serves every batch size and sequence length.

>>> import numpy as np
>>> import workbench as wb
>>> from workbench import te
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> def double(a):
...     return te.compute(a.shape, lambda i, j: a[i, j] * 2.0, name="double")
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         gv = bb.emit_output(bb.emit_te(double, x))
...     bb.emit_func_output(gv)
>>> vm = wb.VirtualMachine(wb.build(bb.get(), target="llvm"))
>>> vm["main"](np.ones((3, 4), "float32")).sum()
np.float32(24.0)
>>> vm["main"](np.ones((3, 5), "float32"))
Traceback (most recent call last):
...
ValueError: main(): parameter x (argument 0) has shape (3, 5): dimension 1 is 5 but wb.Tensor((n, 4), "float32") requires 4
"""
from __future__ import annotations

import time

from .executable import Executable
from .vm_compile import Program, VMError, compile_function


class VMFunction:
    """A graph function ready to run: ``vm["forward"](*arrays)`` returns an array (a tuple for a tuple result)."""

    def __init__(self, program: Program):
        self._program = program

    @property
    def name(self) -> str:
        return self._program.name

    @property
    def func(self):
        """The graph function (``workbench.ir.graph.Function``)."""
        return self._program.func

    @property
    def kernel_calls(self) -> list[str]:
        """The kernels and library routines called, in order (one entry per call)."""
        return list(self._program.labels)

    @property
    def memory_plan(self) -> dict:
        """``{"storages": n, "planned_tensors": m}``: the StaticPlanBlockMemory plan the VM follows (zeros: none)."""
        return {"storages": len(self._program.storage_sizes), "planned_tensors": self._program.planned}

    def __call__(self, *args):
        return self._program.run(args)

    def __repr__(self) -> str:
        params = ", ".join(f"{p.name}: {p.type!r}" for p in self._program.params)
        return f"<VMFunction {self.name}({params}) -> {self._program.func.ret_type!r}>"


class VirtualMachine:
    """Runs the graph functions of an :class:`~workbench.backend.executable.Executable`.

    ``vm = wb.VirtualMachine(wb.build(mod, target="llvm"))``; ``vm["forward"](*arrays)``.
    Every graph function is compiled when the VM is made, so a function the VM cannot run
    (graph operators not legalized, an unknown ``call_dps_library`` name, a ``call_tir``
    whose arguments do not fit the tensor program) is refused here, with the reason.
    """

    def __init__(self, executable: Executable):
        if not isinstance(executable, Executable):
            raise TypeError(f"VirtualMachine takes what wb.build returns for a module with graph functions, got "
                            f"{type(executable).__name__}; a module with only tensor programs has no graph "
                            f"function to run: call its kernels directly")
        self.executable = executable
        self._functions = {name: VMFunction(compile_function(name, f, executable))
                           for name, f in executable.functions.items()}

    @property
    def function_names(self) -> list[str]:
        return list(self._functions)

    def __getitem__(self, name: str) -> VMFunction:
        fn = self._functions.get(name)
        if fn is None:
            raise KeyError(f"the VM has no graph function {name!r}; it has {', '.join(self._functions) or 'none'}")
        return fn

    def __contains__(self, name) -> bool:
        return name in self._functions

    def __repr__(self) -> str:
        return f"<VirtualMachine [{', '.join(self._functions)}] for {self.executable.target}>"


def profile(vm: VirtualMachine, name: str, *args, number: int = 1):
    """Time every kernel call of ``vm[name](*args)``: a pandas DataFrame, one row per kernel.

    Columns: ``kernel`` (tensor program or library routine), ``calls`` (per run),
    ``total_ms`` (its calls together, per run), ``share`` (of the kernels' total; the
    shares sum to 1), slowest first. One warm-up run, then ``number`` timed runs, each
    kernel call timed with ``time.perf_counter``. ``df.attrs["wall_ms"]`` is the time of a
    whole run (VM overhead included).

    >>> df = profile(vm, "main", np.ones((3, 4), "float32"))      # doctest: +SKIP
    >>> list(df.columns)                                           # doctest: +SKIP
    ['kernel', 'calls', 'total_ms', 'share']
    """
    import pandas as pd

    if not isinstance(vm, VirtualMachine):
        raise TypeError(f"profile(vm, name, *args) takes a wb.VirtualMachine, got {type(vm).__name__}")
    if not isinstance(number, int) or number < 1:
        raise ValueError(f"profile: number must be a positive int, got {number!r}")
    program = vm[name]._program
    program.run(args)  # warm-up
    record: dict = {}
    code = program.instructions(record)
    t0 = time.perf_counter()
    for _ in range(number):
        program.run(args, code)
    wall = (time.perf_counter() - t0) / number
    total = sum(sec for _, sec in record.values())
    rows = [{"kernel": label, "calls": calls // number, "total_ms": sec / number * 1e3,
             "share": sec / total if total > 0 else 1.0 / len(record)}
            for label, (calls, sec) in record.items()]
    df = pd.DataFrame(rows, columns=["kernel", "calls", "total_ms", "share"])
    df = df.sort_values("total_ms", ascending=False, ignore_index=True)
    df.attrs["wall_ms"] = wall * 1e3
    return df


__all__ = ["VirtualMachine", "VMFunction", "VMError", "profile"]
