"""Compilation targets: which machine the generated code is for.

A target string names a *kind* and its options. ``"llvm"`` is the host CPU
through LLVM (``-mcpu=``, ``-mattr=``, ``-opt-level=`` override what is
detected); ``"opencl"`` and ``"cuda"`` are GPU kinds whose code runs on a
device and whose host side runs on the CPU. Every kind parses, checks and
describes itself here, whether or not a backend that builds for it is
installed (see ``workbench.backend.register_backend``).

This module is pure data and string parsing: the schedule layer asks it "does
this CPU have VNNI" without loading LLVM. Checking an explicit ``-mcpu`` or
``-mattr`` asks LLVM for its lists once, in a child process, so a misspelt name
is a clear ``TargetError`` and never an LLVM abort of the Python process.

>>> from workbench.backend import Target
>>> t = Target("llvm -mcpu=haswell -mattr=+avx2,+fma")
>>> str(t), t.has("avx2"), t.vector_bits
('llvm -mcpu=haswell -mattr=+avx2,+fma', True, 256)
>>> Target("cuda -arch=sm_80").describe()
'cuda GPU, arch sm_80, up to 1024 threads per block, warps of 32 threads, 48 KiB shared memory per block'
"""
from __future__ import annotations

import difflib
import functools
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable


class TargetError(ValueError):
    """A target string that cannot be understood."""


class TargetFeatureError(ValueError):
    """A program (or a tensor intrinsic) needs a CPU feature the target does not have."""


class BackendUnavailableError(NotImplementedError):
    """The target is understood, but no backend that builds for its kind is installed yet."""


# option parsers ------------------------------------------------------------------------------


def _int_in(lo: int, hi: int, what: str) -> Callable[[str, str], int]:
    def parse(text: str, spec: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise TargetError(f"target {spec!r}: {what} must be an integer from {lo} to {hi}, got {text!r}")
        return value

    return parse


def _cuda_arch(text: str, spec: str) -> str:
    if not re.fullmatch(r"sm_\d{2,3}[a-z]?", text):
        raise TargetError(f"target {spec!r}: -arch must name a CUDA compute capability such as sm_80 or "
                          f"sm_90a, got {text!r}")
    return text


def _word(text: str, spec: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", text):
        raise TargetError(f"target {spec!r}: expected a name (letters, digits, '_', '-', '.'), got {text!r}")
    return text


def _mattr(text: str, spec: str) -> list[str]:
    attrs = [a for a in text.split(",") if a]
    for a in attrs:
        if a[0] not in "+-":
            raise TargetError(f"target {spec!r}: feature {a!r} must start with '+' or '-' "
                              "(e.g. -mattr=+avx2,-avx512f)")
    return attrs


@dataclass(frozen=True)
class Option:
    """One ``-name=value`` option of a target kind: its parser, default and meaning."""

    parse: Callable[[str, str], object]
    default: object
    help: str


@dataclass(frozen=True)
class TargetKind:
    """A kind of target (``"llvm"``, ``"cuda"``, ...): whether its code runs on a CPU or a GPU, and its options."""

    name: str
    device_type: str
    summary: str
    options: dict[str, Option] = field(default_factory=dict)


_GPU_OPTIONS = {
    "max_num_threads": Option(_int_in(1, 1 << 16, "-max_num_threads"), None, "threads per block at most"),
    "thread_warp_size": Option(_int_in(1, 1024, "-thread_warp_size"), None, "threads that run in lock step"),
    "max_shared_memory_per_block": Option(_int_in(0, 1 << 30, "-max_shared_memory_per_block"), None,
                                          "bytes of shared memory per block"),
}

KINDS: dict[str, TargetKind] = {
    "llvm": TargetKind("llvm", "cpu", "the host CPU through LLVM", {
        "mcpu": Option(_word, None, "LLVM CPU name (default: the host's)"),
        "mattr": Option(_mattr, None, "CPU features, e.g. +avx2,-avx512f (default: the CPU's)"),
        "opt-level": Option(_int_in(0, 3, "-opt-level"), 3, "LLVM optimisation level"),
    }),
    "cuda": TargetKind("cuda", "gpu", "NVIDIA GPUs through NVRTC and the CUDA driver", {
        "arch": Option(_cuda_arch, None, "compute capability (default: the device's)"),
        **_GPU_OPTIONS,
    }),
    "opencl": TargetKind("opencl", "gpu", "OpenCL devices through pyopencl (PoCL runs them on a CPU)", {
        "device": Option(_word, None, "device family, e.g. mali, intel_graphics (default: the first device)"),
        **_GPU_OPTIONS,
    }),
}

#: per GPU kind: the defaults of options that describe the device (as TVM's target tags do)
_GPU_DEFAULTS = {
    "cuda": {"max_num_threads": 1024, "thread_warp_size": 32, "max_shared_memory_per_block": 49152},
    "opencl": {"max_num_threads": 256, "thread_warp_size": 1, "max_shared_memory_per_block": 16384},
}


class Target:
    """A compilation target.

    ``kind`` is ``"llvm"`` (the host CPU), ``"cuda"`` or ``"opencl"``;
    ``device_type`` is ``"cpu"`` or ``"gpu"``. For ``llvm``, ``cpu`` is the LLVM
    CPU name and ``features`` the set of enabled features (``"avx2"``,
    ``"avx512f"``, ...); unless the string gives ``-mcpu=`` / ``-mattr=``, both
    come from the host. GPU kinds have ``arch``, ``max_num_threads``,
    ``thread_warp_size`` and ``max_shared_memory_per_block``, and ``host`` (the
    CPU target of their host code, ``"llvm"`` unless ``host=`` says otherwise).

    >>> t = Target("llvm -mcpu=znver3 -mattr=+avx2,+fma,-avx512f")
    >>> t.cpu, sorted(t.features)
    ('znver3', ['avx2', 'fma'])
    >>> Target("opencl -device=mali").device_type
    'gpu'
    """

    def __init__(self, spec: "str | Target" = "llvm", host: "str | Target | None" = None):
        if isinstance(spec, Target):
            self.__dict__.update(spec.__dict__)
            return
        if not isinstance(spec, str) or not spec.strip():
            raise TargetError(f"a target is a string such as 'llvm', 'llvm -mcpu=haswell' or 'cuda -arch=sm_80', "
                              f"got {spec!r}")
        try:
            words = shlex.split(spec)
        except ValueError as e:
            raise TargetError(f"target {spec!r} cannot be split into words: {e}") from None
        kind = KINDS.get(words[0])
        if kind is None:
            raise TargetError(f"unknown target kind {words[0]!r} in {spec!r}; known kinds: {', '.join(KINDS)}")
        self.kind, self.device_type = kind.name, kind.device_type
        self.options = _parse_options(kind, words[1:], spec)
        if kind.device_type == "cpu":
            if host is not None:
                raise TargetError(f"target {spec!r}: host= is for GPU targets; a CPU target is its own host")
            self._host_spec = None
            self._init_cpu(spec)
        else:
            self._host_spec = host if host is not None else "llvm"
            self._init_gpu()

    def _init_cpu(self, spec: str) -> None:
        cpu, mattr = self.options.get("mcpu"), self.options.get("mattr")
        if cpu is not None:
            check_cpu_name(cpu, spec)
        if mattr is not None:
            check_features(mattr, spec)
        self.opt_level = self.options.get("opt-level", 3)
        self._given_cpu, self._given_mattr = cpu, mattr
        host_cpu, host_feats = host_cpu_info() if cpu is None or mattr is None else (None, None)
        self.cpu = cpu if cpu is not None else host_cpu
        if mattr is None and cpu is not None and cpu != host_cpu:
            self._mattr = cpu_features(cpu) or []   # a named CPU other than the host: its own features
        elif mattr is None:
            self._mattr = host_feats
        else:
            self._mattr = mattr                     # explicit -mattr: exactly what is asked
        self.features = frozenset(a[1:] for a in self._mattr if a.startswith("+"))

    def _init_gpu(self) -> None:
        self.cpu, self._given_cpu, self._given_mattr, self._mattr = None, None, None, []
        self.features = frozenset()
        self.opt_level = 3
        defaults = _GPU_DEFAULTS[self.kind]
        for name in ("max_num_threads", "thread_warp_size", "max_shared_memory_per_block"):
            setattr(self, name, self.options.get(name, defaults[name]))
        self.arch = self.options.get("arch")
        self.device = self.options.get("device")

    # ------------------------------------------------------------------
    @property
    def is_gpu(self) -> bool:
        return self.device_type == "gpu"

    @property
    def host(self) -> "Target":
        """The CPU target that runs the host side: the target itself for CPU kinds."""
        return self if self._host_spec is None else Target(self._host_spec)

    def has(self, feature: str) -> bool:
        """True when the CPU feature (``"avx512f"``, ``"avx2"``, ``"fma"``) is enabled (never on a GPU kind)."""
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

    def describe(self) -> str:
        """One line for a person: what the code runs on and with which limits.

        >>> Target("llvm -mcpu=znver3 -opt-level=2").describe()
        'CPU znver3 through LLVM, 256-bit vectors (8 float32 lanes), opt-level 2'
        """
        if not self.is_gpu:
            return (f"CPU {self.cpu} through LLVM, {self.vector_bits}-bit vectors "
                    f"({self.vector_lanes('float32')} float32 lanes), opt-level {self.opt_level}")
        what = [f"{self.kind} GPU"]
        if self.arch:
            what.append(f"arch {self.arch}")
        if self.device:
            what.append(f"device {self.device}")
        what += [f"up to {self.max_num_threads} threads per block", f"warps of {self.thread_warp_size} thread{'s' if self.thread_warp_size > 1 else ''}",
                 f"{self.max_shared_memory_per_block // 1024} KiB shared memory per block"]
        return ", ".join(what)

    def __str__(self) -> str:
        parts = [self.kind]
        if not self.is_gpu:
            if self.cpu:
                parts.append(f"-mcpu={self.cpu}")
            if self._given_mattr is not None:
                parts.append("-mattr=" + ",".join(self._given_mattr))
            if self.opt_level != 3:
                parts.append(f"-opt-level={self.opt_level}")
            return " ".join(parts)
        for name in KINDS[self.kind].options:
            if name in self.options:
                parts.append(f"-{name}={self.options[name]}")
        return " ".join(parts)

    def __repr__(self) -> str:
        host = f", host={str(self._host_spec)!r}" if self._host_spec not in (None, "llvm") else ""
        return f"Target({str(self)!r}{host})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Target) and self.cache_key == other.cache_key

    def __hash__(self) -> int:
        return hash(self.cache_key)

    @property
    def cache_key(self) -> str:
        """What identifies the code this target produces: the string, the full feature list and the host."""
        return f"{self}|{self.mattr}|{self._host_spec}"


def _parse_options(kind: TargetKind, words: list[str], spec: str) -> dict:
    out: dict = {}
    for w in words:
        name, eq, text = w[1:].partition("=")
        opt = kind.options.get(name) if w.startswith("-") and eq else None
        if opt is None:
            known = ", ".join(f"-{n}=" for n in kind.options)
            raise TargetError(f"target {spec!r}: unknown option {w!r} for kind {kind.name}; known: {known}")
        out[name] = opt.parse(text, spec)
    return out


# CPU names and features, checked against LLVM -----------------------------------------------

#: x86 CPUs LLVM knows that cannot run 64-bit code; the JIT would abort on them
#: ("64-bit code requested on a subtarget that doesn't support it")
CPUS_32BIT = frozenset({
    "athlon", "athlon-4", "athlon-mp", "athlon-tbird", "athlon-xp", "c3", "c3-2", "geode", "i386", "i486", "i586",
    "i686", "k6", "k6-2", "k6-3", "lakemont", "pentium", "pentium-m", "pentium-mmx", "pentium2", "pentium3",
    "pentium3m", "pentium4", "pentium4m", "pentium_4", "pentium_4_sse3", "pentium_ii", "pentium_iii",
    "pentium_iii_no_xmm_regs", "pentium_m", "pentium_mmx", "pentium_pro", "pentiumpro", "prescott",
    "winchip-c6", "winchip2", "yonah",
})

#: features that switch the instruction mode; the JIT runs 64-bit code, so they cannot be toggled
MODE_FEATURES = frozenset({"16bit-mode", "32bit-mode", "64bit-mode", "64bit"})

_HELP_CODE = """
import llvmlite.binding as llvm
llvm.initialize_native_target()
llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu="help")
"""


@functools.lru_cache(maxsize=1)
def _llvm_help() -> tuple[frozenset, frozenset]:
    """LLVM's CPU and feature names for the host triple, read from what ``-mcpu=help`` prints.

    llvmlite has no call that lists them, and LLVM prints the help once per
    process, to the C stderr: a child process asks, once per Python process.
    """
    run = subprocess.run([sys.executable, "-c", _HELP_CODE], capture_output=True, text=True, timeout=120)
    sections: dict[str, set] = {"cpus": set(), "features": set()}
    current = None
    for line in run.stderr.splitlines():
        if line.startswith("Available CPUs"):
            current = "cpus"
        elif line.startswith("Available features"):
            current = "features"
        elif current and line.startswith("  ") and " - " in line:
            sections[current].add(line.split()[0])
    if run.returncode != 0 or not sections["cpus"] or not sections["features"]:
        raise RuntimeError(f"could not read LLVM's list of CPUs and features (exit code {run.returncode}): "
                           f"{run.stderr[-500:]}")
    return frozenset(sections["cpus"]), frozenset(sections["features"])


def known_cpus() -> list[str]:
    """The CPU names ``-mcpu=`` accepts: LLVM's for this host's architecture, less the 32-bit-only ones."""
    return sorted(_llvm_help()[0] - CPUS_32BIT)


def known_features() -> list[str]:
    """The feature names ``-mattr=`` accepts (without their ``+`` / ``-``)."""
    return sorted(_llvm_help()[1] - MODE_FEATURES)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_cpu_name(cpu: str, spec: str = "") -> None:
    """Raise :class:`TargetError` unless LLVM can generate 64-bit code for CPU ``cpu``."""
    where = f"target {spec!r}: " if spec else ""
    if cpu in CPUS_32BIT:
        raise TargetError(f"{where}CPU {cpu!r} runs 32-bit code only, and the JIT produces 64-bit code; "
                          "name a 64-bit CPU such as x86-64, haswell or znver3")
    cpus = known_cpus()
    if cpu not in cpus:
        raise TargetError(f"{where}LLVM knows no CPU {cpu!r}{_did_you_mean(cpu, cpus)} "
                          "(workbench.backend.target.known_cpus() lists them)")


def check_features(mattr: Iterable[str], spec: str = "") -> None:
    """Raise :class:`TargetError` unless each ``+name`` / ``-name`` is a feature LLVM knows and may toggle."""
    where = f"target {spec!r}: " if spec else ""
    feats = known_features()
    for a in mattr:
        name = a[1:]
        if name in MODE_FEATURES:
            raise TargetError(f"{where}feature {name!r} sets the instruction mode, which the JIT fixes at 64-bit "
                              "code; leave it out of -mattr")
        if name not in feats:
            raise TargetError(f"{where}LLVM knows no CPU feature {name!r} (in -mattr={a}){_did_you_mean(name, feats)} "
                              "(workbench.backend.target.known_features() lists them)")


_HOST: tuple[str, list[str]] | None = None


def host_cpu_info() -> tuple[str, list[str]]:
    """The host CPU name and its LLVM feature list (``["+avx2", "-avx512f", ...]``).

    The environment variable ``WORKBENCH_HOST_CPU`` (an LLVM CPU name, such as ``znver3``)
    makes workbench treat the host as that CPU: ``Target("llvm")`` then picks its vector
    widths, tiles and intrinsics, which is how the suite runs as on an AVX2 host from an
    AVX-512 one. The named CPU's features must be a subset of the real host's (the code
    still runs natively).
    """
    global _HOST
    if _HOST is None:
        import llvmlite.binding as llvm

        name = llvm.get_host_cpu_name()
        try:
            feats = [f for f in llvm.get_host_cpu_features().flatten().split(",") if f]
        except RuntimeError:
            feats = []
        forced = os.environ.get("WORKBENCH_HOST_CPU", "").strip()
        if forced:
            name, feats = _pretend_host(forced, feats)
        _HOST = (name, feats)
    return _HOST


def _pretend_host(cpu: str, real_feats: list[str]) -> tuple[str, list[str]]:
    check_cpu_name(cpu, f"WORKBENCH_HOST_CPU={cpu}")
    wanted = cpu_features(cpu)
    if wanted is None:
        raise TargetError(f"WORKBENCH_HOST_CPU={cpu}: workbench has no feature list for this CPU; known: "
                          f"{', '.join(sorted(CPU_FEATURES))}")
    have = {f[1:] for f in real_feats if f.startswith("+")}
    lacking = [f[1:] for f in wanted if f[1:] not in have]
    if lacking:
        raise TargetError(f"WORKBENCH_HOST_CPU={cpu}: this machine lacks {', '.join(lacking)}, so code for {cpu} "
                          "could not run natively; name a CPU whose features this one has")
    keep = {f[1:] for f in wanted}
    # every SIMD feature the real host has but the named CPU lacks is switched off explicitly
    off = [f"-{f[1:]}" for f in real_feats if f.startswith("+") and f[1:] not in keep
           and f[1:] in _table_features()]
    return cpu, list(wanted) + off


# CPU features of named CPUs and of intrinsics -------------------------------------------------

#: LLVM intrinsic -> CPU features it needs (LLVM feature names, as in ``Target.features``)
INTRINSIC_FEATURES: dict[str, tuple[str, ...]] = {
    "llvm.x86.avx512.vpdpbusd.512": ("avx512f", "avx512vnni"),
    "llvm.x86.avx512.vpdpbusd.256": ("avx512vl", "avx512vnni"),
    "llvm.x86.avx512.vpdpbusd.128": ("avx512vl", "avx512vnni"),
    "llvm.x86.ssse3.pmadd.ub.sw.128": ("ssse3",),
    "llvm.x86.sse2.pmadd.wd": ("sse2",),
    "llvm.x86.avxvnni.vpdpbusd.256": ("avxvnni",),
    "llvm.x86.avx512bf16.dpbf16ps.512": ("avx512f", "avx512bf16"),
    "llvm.x86.avx2.pmadd.ub.sw": ("avx2",),
    "llvm.x86.avx2.pmadd.wd": ("avx2",),
    "llvm.x86.avx512.pmaddubs.w.512": ("avx512bw",),
    "llvm.x86.avx512.pmaddw.d.512": ("avx512bw",),
}

_AVX2 = ("sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "avx", "avx2", "fma", "f16c", "popcnt", "bmi",
         "bmi2", "lzcnt", "movbe")
_AVX512 = _AVX2 + ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
_SPR = _AVX512 + ("avx512vnni", "avx512bf16", "avx512fp16", "avxvnni", "amx-int8", "amx-bf16")
#: features LLVM enables for a CPU named with ``-mcpu=`` (the ones intrinsics here care about)
CPU_FEATURES: dict[str, tuple[str, ...]] = {
    "x86-64-v3": _AVX2, "x86-64-v4": _AVX512,
    "haswell": _AVX2, "broadwell": _AVX2, "skylake": _AVX2, "alderlake": _AVX2 + ("avxvnni",),
    "znver1": _AVX2, "znver2": _AVX2, "znver3": _AVX2,
    "skylake-avx512": _AVX512, "cascadelake": _AVX512 + ("avx512vnni",),
    "cooperlake": _AVX512 + ("avx512vnni", "avx512bf16"),
    "icelake-server": _AVX512 + ("avx512vnni", "avx512vbmi", "avx512bitalg"),
    "sapphirerapids": _SPR, "emeraldrapids": _SPR, "graniterapids": _SPR,
    "znver4": _AVX512 + ("avx512vnni", "avx512bf16"),
    "znver5": _AVX512 + ("avx512vnni", "avx512bf16", "avxvnni"),
}


def _table_features() -> frozenset:
    return frozenset(f for feats in CPU_FEATURES.values() for f in feats)


def cpu_features(cpu: str) -> list[str] | None:
    """The ``-mattr`` list (``["+avx512f", ...]``) LLVM implies for a named CPU; None when unknown."""
    feats = CPU_FEATURES.get(cpu)
    return None if feats is None else ["+" + f for f in feats]


def missing_features(op_or_features: "str | Iterable[str]", target) -> list[str]:
    """Features an intrinsic (or a list of features) needs that ``target`` lacks.

    >>> missing_features("llvm.x86.avx512.vpdpbusd.512", Target("llvm -mcpu=znver3"))
    ['avx512f', 'avx512vnni']
    >>> missing_features(["avx2"], Target("llvm -mcpu=haswell"))
    []
    """
    tgt = Target(target)
    need = INTRINSIC_FEATURES.get(op_or_features, ()) if isinstance(op_or_features, str) else op_or_features
    return [f for f in need if not tgt.has(f)]


__all__ = ["Target", "TargetKind", "Option", "KINDS", "TargetError", "TargetFeatureError", "BackendUnavailableError",
           "host_cpu_info", "known_cpus", "known_features", "check_cpu_name", "check_features", "CPUS_32BIT",
           "MODE_FEATURES", "INTRINSIC_FEATURES", "CPU_FEATURES", "cpu_features", "missing_features"]
