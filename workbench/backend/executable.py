"""``Executable``: what ``wb.build`` returns for a module with graph functions.

It holds the compiled kernels (every tensor program of the module, built together into
one module of the target's backend) and the graph functions that call them;
:class:`workbench.backend.vm.VirtualMachine` runs the graph functions.

>>> import numpy as np
>>> import workbench as wb
>>> from workbench import te
>>> x = wb.graph.Var("x", wb.Tensor(("n", 4), "float32"))
>>> bb = wb.BlockBuilder()
>>> with bb.function("main", [x]):
...     with bb.dataflow():
...         gv = bb.emit_output(bb.emit_te(lambda a: te.compute(a.shape, lambda i, j: a[i, j] * 2.0), x,
...                                        primfunc_name_hint="double"))
...     bb.emit_func_output(gv)
>>> ex = wb.build(bb.get(), target="llvm")
>>> ex                                      # doctest: +ELLIPSIS
<Executable graph functions [main], kernels [double] for llvm ...>
>>> a = np.ones((2, 4), "float32"); out = np.empty_like(a)
>>> ex["double"](a, out); out[0, 0]      # a kernel, called directly
np.float32(2.0)
"""
from __future__ import annotations

from ..ir.function import IRModule


class Executable:
    """Compiled kernels plus graph functions: ``ex.kernels`` (the backend's module, or None when
    the module has no tensor program), ``ex.functions`` (graph functions by name), ``ex.mod``
    (the module built) and ``ex.target``. ``ex["kernel"]`` is a compiled kernel."""

    def __init__(self, mod: IRModule, kernels, target):
        self.mod = mod
        self.kernels = kernels
        self.target = target
        self.functions: dict = dict(mod.graph_functions)

    @property
    def kernel_names(self) -> list[str]:
        """The names of the compiled tensor programs."""
        return [] if self.kernels is None else list(self.kernels.functions)

    def kernel(self, name: str):
        """The compiled kernel ``name``; a ``KeyError`` naming the kernels there are otherwise."""
        if self.kernels is None or name not in self.kernels.functions:
            raise KeyError(f"the executable has no kernel {name!r}; it has "
                           f"{', '.join(self.kernel_names) or 'none'}")
        return self.kernels[name]

    def __getitem__(self, name: str):
        if name in self.functions:
            raise KeyError(f"{name!r} is a graph function: run it with vm = wb.VirtualMachine(ex); vm[{name!r}](...)")
        return self.kernel(name)

    def __contains__(self, name) -> bool:
        return name in self.functions or name in self.kernel_names

    def source(self, kind: str = "ll") -> str:
        """The kernels' code (see ``LLVMModule.source``)."""
        if self.kernels is None:
            raise ValueError("the executable has no kernels (the module has no tensor program)")
        return self.kernels.source(kind)

    def __repr__(self) -> str:
        return (f"<Executable graph functions [{', '.join(self.functions)}], kernels "
                f"[{', '.join(self.kernel_names)}] for {self.target}>")


__all__ = ["Executable"]
