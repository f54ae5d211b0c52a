"""Errors raised by schedule primitives.

Every illegal request raises a :class:`ScheduleError` (also a ``ValueError``). Its
message starts with one sentence naming the block or loop and the reason; ``str()``
then shows the program with the offending place marked ``# <-- here``. The
schedule is left exactly as it was before the request.

>>> import workbench as wb
>>> issubclass(wb.ScheduleError, ValueError)
True
"""
from __future__ import annotations

import html
import re
import sys
from typing import Any


class ScheduleError(ValueError):
    """A schedule primitive refused a request.

    ``message`` is the one-sentence reason, ``detail`` more explanation, ``func`` the
    program the request was made on and ``node`` the loop or block it concerns.
    """

    def __init__(self, message: str, *, detail: str = "", func: Any = None, node: Any = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.func = func
        self.node = node

    # the rendered program with the place marked -----------------------------------
    def _program_lines(self) -> tuple[list[str], int | None]:
        if self.func is None:
            return [], None
        try:
            from ..ir.printer import script

            text = script(self.func)
        except Exception:
            return [], None
        lines = text.splitlines()
        return lines, _find_line(lines, self.node)

    def __str__(self) -> str:
        parts = [self.message]
        if self.detail:
            parts.append(self.detail)
        lines, at = self._program_lines()
        if lines:
            if at is not None:
                lines = list(lines)
                lines[at] = lines[at] + "  # <-- here"
            parts.append("in the program:\n" + "\n".join(lines))
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        lines, at = self._program_lines()
        out = [f"<div><b>{type(self).__name__}</b>: {html.escape(self.message)}</div>"]
        if self.detail:
            out.append(f"<div>{html.escape(self.detail)}</div>")
        if lines:
            rows = []
            for k, line in enumerate(lines):
                esc = html.escape(line)
                if k == at:
                    esc = f'<span style="background:#fdd">{esc}  # &lt;-- here</span>'
                rows.append(esc)
            out.append("<pre>" + "\n".join(rows) + "</pre>")
        return "\n".join(out)


def _find_line(lines: list[str], node: Any) -> int | None:
    if node is None:
        return None
    from ..ir.stmt import Block, BlockRealize, For

    if isinstance(node, BlockRealize):
        node = node.block
    if isinstance(node, Block):
        pat = re.compile(r'wb\.block\(\s*["\']' + re.escape(node.name) + r'["\']')
    elif isinstance(node, For):
        name = re.escape(node.loop_var.name)
        pat = re.compile(r"^\s*for\s+(.*\b" + name + r"\b.*)\s+in\s")
    else:
        return None
    for k, line in enumerate(lines):
        if pat.search(line):
            return k
    return None


class ScheduleArgumentError(ScheduleError):
    """A bad argument: a zero or negative factor, an unknown scope, an index out of range."""


class BlockNotFoundError(ScheduleError):
    """No block of that name."""


class InvalidHandleError(ScheduleError):
    """A handle that no longer names a loop or block (a previous step removed it)."""


class NotAChainError(ScheduleError):
    """Loops that are not nested in one single-branch chain (reorder, fuse)."""


class ReductionLoopError(ScheduleError):
    """A reduction loop used where only spatial loops are allowed (parallel, vectorize, bind)."""


class NonAffineBindingError(ScheduleError):
    """A block whose iteration variables are not affine in its loops."""


class DependenceError(ScheduleError):
    """Moving or merging a computation would break a producer-consumer dependence."""


class ComputeLocationError(DependenceError):
    """compute_at / reverse_compute_at to a loop that cannot hold the block."""


class InlineError(ScheduleError):
    """A block that cannot be inlined (reduction, several writes, non-trivial indices, an output)."""


class RegionCoverError(DependenceError):
    """Producers no longer cover the region their consumers read."""


class AccessRegionError(ScheduleError):
    """An explicit access region that does not cover what the block accesses, or reaches outside the buffer."""


class DataMovementError(DependenceError):
    """read_at / write_at cannot show that the copy keeps the program's results."""


class NotEinsumError(ScheduleError):
    """pad_einsum on a block that is not einsum-like (a buffer indexed by more than plain iteration variables,
    an in-place update, several stores), or whose padded iterations would change its result."""


class NotPaddingError(ScheduleError):
    """decompose_padding on a block that does not write ``if_then_else(in_bounds, value, constant)``
    over a box of its iteration domain."""


class LoopPositionError(ScheduleArgumentError):
    """decompose_padding at a loop that is not above the block."""


class RollingBufferError(ScheduleError):
    """The buffer, its producer or its consumers do not have the sliding-window pattern rolling_buffer needs."""


class TensorizeMismatchError(ScheduleError):
    """The block does not compute what the tensor intrinsic's description computes."""


class TensorizeLayoutError(TensorizeMismatchError):
    """The block computes the right thing, but a region is not laid out as the implementation needs."""


__all__ = [
    "ScheduleError", "ScheduleArgumentError", "BlockNotFoundError", "InvalidHandleError", "NotAChainError",
    "ReductionLoopError", "NonAffineBindingError", "DependenceError", "ComputeLocationError", "InlineError",
    "RegionCoverError", "AccessRegionError", "DataMovementError", "NotEinsumError", "NotPaddingError",
    "LoopPositionError", "RollingBufferError", "TensorizeMismatchError", "TensorizeLayoutError",
]


# IPython: an uncaught ScheduleError in a notebook cell --------------------------------------
def show_in_ipython(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """IPython's handler for an uncaught ``ScheduleError`` (``shell.set_custom_exc``): display the
    error view (the message, the program with the place marked), then the traceback of the user's
    own frames only, ending in the one-sentence message; workbench's and IPython's frames are hidden."""
    import os
    import traceback

    from IPython.display import publish_display_data

    from ..viz.static import error_html

    publish_display_data({"text/html": error_html(value), "text/plain": str(value)})
    import IPython

    hidden = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(IPython.__file__)]
    frames = [f for f in traceback.extract_tb(tb)
              if not any(os.path.abspath(f.filename).startswith(d + os.sep) for d in hidden)]
    message = getattr(value, "message", str(value))
    stb = ["".join(traceback.format_list(frames)) + f"{etype.__name__}: {message}"]
    shell._showtraceback(etype, value, stb)
    return stb


def install_ipython_handler(shell: Any = None) -> bool:
    """Show uncaught ``ScheduleError``s as the error view in the running IPython kernel (called when
    workbench is imported). A custom handler the user has set already is kept. True if installed."""
    if shell is None:
        if "IPython" not in sys.modules:   # not in IPython (a kernel imports it first): do not import it here
            return False
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    if shell.custom_exceptions not in ((), (ScheduleError,)):
        return False
    shell.set_custom_exc((ScheduleError,), show_in_ipython)
    return True


install_ipython_handler()
