"""Run code built for a CPU this machine lacks (AVX-512 VNNI, BF16, ...) in the Bochs CPU emulator.

``wb.build(func, target="llvm -mcpu=sapphirerapids", emulate=True)`` returns a
module whose functions take numpy arrays as usual and run, slowly but exactly,
on an emulated Intel Sapphire Rapids. It checks code for instructions the host
cannot execute; its timings measure the emulator, not the target CPU
(``count_instructions`` gives a machine-independent measure instead).

Needs the optional packages ``bochscpu-python`` and ``pyelftools``
(``pip install 'workbench[emulate]'``); :func:`available` says whether they load.
"""
from __future__ import annotations

from .bochs import EmulationError


def available() -> bool:
    """True when the emulator's packages are installed and load on this machine."""
    try:
        from . import bochs

        bochs.load()
        import elftools  # noqa: F401
    except (EmulationError, ImportError, OSError):
        return False
    return True


__all__ = ["EmulationError", "available"]
