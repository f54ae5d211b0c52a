"""Compilation targets: which machine the generated code is for.

``Target("llvm")`` is the host CPU, with its name and features detected through
LLVM; ``Target("llvm -mcpu=skylake-avx512 -mattr=+avx2,+fma")`` overrides them.

>>> from workbench.backend import Target
>>> t = Target("llvm -mcpu=haswell -mattr=+avx2,+fma")
>>> str(t), t.has("avx2"), t.vector_bits
('llvm -mcpu=haswell -mattr=+avx2,+fma', True, 256)
"""
from __future__ import annotations

import shlex

KINDS = ("llvm",)


class TargetError(ValueError):
    """A target string that cannot be understood."""


class Target:
    """A compilation target.

    ``kind`` is ``"llvm"`` (the host CPU through LLVM). ``cpu`` is the LLVM CPU
    name and ``features`` the set of enabled features (``"avx2"``, ``"avx512f"``,
    ...). Unless the string gives ``-mcpu=`` / ``-mattr=``, both come from the
    host (``llvmlite.binding.get_host_cpu_name()`` / ``get_host_cpu_features()``).

    >>> t = Target("llvm -mcpu=znver3 -mattr=+avx2,+fma,-avx512f")
    >>> t.cpu, sorted(t.features)
    ('znver3', ['avx2', 'fma'])
    """

    def __init__(self, spec: "str | Target" = "llvm"):
        if isinstance(spec, Target):
            self.__dict__.update(spec.__dict__)
            return
        if not isinstance(spec, str) or not spec.strip():
            raise TargetError(f"a target is a string such as 'llvm' or 'llvm -mcpu=haswell', got {spec!r}")
        words = shlex.split(spec)
        kind = words[0]
        if kind not in KINDS:
            raise TargetError(f"unknown target kind {kind!r} in {spec!r}; this backend builds for: "
                              f"{', '.join(KINDS)} (opencl and cuda live in their own backends)")
        self.kind = kind
        cpu = None
        mattr: list[str] | None = None
        self.opt_level = 3
        for w in words[1:]:
            if w.startswith("-mcpu="):
                cpu = w[len("-mcpu="):]
            elif w.startswith("-mattr="):
                mattr = [a for a in w[len("-mattr="):].split(",") if a]
                for a in mattr:
                    if a[0] not in "+-":
                        raise TargetError(f"target {spec!r}: feature {a!r} must start with '+' or '-' "
                                          "(e.g. -mattr=+avx2,-avx512f)")
            elif w.startswith("-opt-level="):
                self.opt_level = int(w[len("-opt-level="):])
            else:
                raise TargetError(f"target {spec!r}: unknown option {w!r}; known: -mcpu=, -mattr=, -opt-level=")
        self._given_cpu = cpu
        self._given_mattr = mattr
        host_cpu, host_feats = (None, None)
        if cpu is None or mattr is None:
            host_cpu, host_feats = host_cpu_info()
        self.cpu = cpu if cpu is not None else host_cpu
        if mattr is None and cpu is not None and cpu != host_cpu:
            # a named CPU other than the host: its own features, not the host's
            from .llvm.target_intrinsics import cpu_features

            self._mattr = cpu_features(cpu) or []
        elif mattr is None:
            self._mattr = host_feats
        else:
            # explicit -mattr: the listed features on top of nothing but what is asked
            self._mattr = mattr
        self.features = frozenset(a[1:] for a in self._mattr if a.startswith("+"))

    # ------------------------------------------------------------------
    def has(self, feature: str) -> bool:
        """True when the feature (``"avx512f"``, ``"avx2"``, ``"fma"``) is enabled."""
        return feature.lstrip("+") in self.features

    @property
    def mattr(self) -> str:
        """The LLVM feature string (``"+avx2,+fma,..."``)."""
        return ",".join(self._mattr)

    @property
    def vector_bits(self) -> int:
        """Width of the widest vector registers: 512 with AVX-512, 256 with AVX(2), else 128."""
        if self.has("avx512f"):
            return 512
        if self.has("avx2") or self.has("avx"):
            return 256
        return 128

    def vector_lanes(self, dtype: str = "float32") -> int:
        """How many elements of ``dtype`` fill one vector register: 16 float32 with AVX-512."""
        from ..ir.dtype import bits_of

        return max(1, self.vector_bits // max(8, bits_of(dtype)))

    def __str__(self) -> str:
        parts = [self.kind]
        if self.cpu:
            parts.append(f"-mcpu={self.cpu}")
        if self._given_mattr is not None:
            parts.append("-mattr=" + ",".join(self._given_mattr))
        if self.opt_level != 3:
            parts.append(f"-opt-level={self.opt_level}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"Target({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Target) and str(self) == str(other) and self.mattr == other.mattr

    def __hash__(self) -> int:
        return hash((str(self), self.mattr))

    @property
    def cache_key(self) -> str:
        """What identifies the code this target produces: the string and the full feature list."""
        return f"{self}|{self.mattr}"


_HOST: tuple[str, list[str]] | None = None


def host_cpu_info() -> tuple[str, list[str]]:
    """The host CPU name and its LLVM feature list (``["+avx2", "-avx512f", ...]``)."""
    global _HOST
    if _HOST is None:
        import llvmlite.binding as llvm

        name = llvm.get_host_cpu_name()
        try:
            feats = llvm.get_host_cpu_features().flatten().split(",")
        except RuntimeError:
            feats = []
        _HOST = (name, [f for f in feats if f])
    return _HOST


__all__ = ["Target", "TargetError", "host_cpu_info"]
