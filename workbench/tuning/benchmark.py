"""``wb.benchmark``: time several variants of one computation, check them against each
other, and show the result as a table, a bar chart and a roofline.

>>> import numpy as np
>>> import workbench as wb
>>> from workbench import te
>>> A = te.placeholder((64, 64), name="A"); B = te.placeholder((64, 64), name="B")
>>> k = te.reduce_axis(64, name="k")
>>> C = te.compute((64, 64), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
>>> mm = wb.create_prim_func([A, B, C])
>>> res = wb.benchmark({"naive": mm, "numpy": lambda a, b, c: np.matmul(a, b, out=c)},
...                    min_time=0.01, peak=None, progress=False)
>>> list(res.table["status"])
['ok', 'ok']
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..ir.function import IRModule, PrimFunc
from ._program import accessed_params, prim_func_of
from .flops import count_bytes, count_flops
from .inputs import fill_poison, random_inputs
from .timing import Timing, measure

#: the columns of ``BenchmarkResult.table``, in order (the speedup column is named after the baseline)
COLUMNS = ("variant", "status", "median_ms", "p10_ms", "p90_ms", "spread_pct", "repeats", "gflops", "gbps",
           "pct_of_peak", "speedup_vs_<baseline>", "note")

#: the columns added after ``repeats`` when a variant was timed on a GPU device
DEVICE_COLUMNS = ("clock", "wall_ms")

#: a variant whose p10-p90 spread is wider than this (percent of its median) is flagged as noisy
NOISY_SPREAD_PCT = 50.0

#: relative tolerance of the equality check, by dtype; the absolute tolerance is
#: ``rtol * max(1, max |reference|)`` (a different summation order moves small results
#: by an amount proportional to the large ones)
RTOL = {"float16": 1e-2, "bfloat16": 2e-2, "float32": 1e-4, "float64": 1e-9}


@dataclass
class VariantResult:
    """One row of a benchmark: ``status`` is ``"ok"``, ``"wrong"`` (results differ from the
    reference; not timed) or ``"error"`` (it raised; ``note`` holds the error)."""

    name: str
    kind: str  # "program", "built", "callable"
    status: str = "ok"
    timing: Timing | None = None
    flops: float = float("nan")
    bytes: float = float("nan")
    note: str = ""

    @property
    def median_ms(self) -> float:
        return self.timing.median * 1e3 if self.timing else float("nan")

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9 if self.timing else float("nan")

    @property
    def gbps(self) -> float:
        return self.bytes / self.timing.median / 1e9 if self.timing else float("nan")

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: FLOPs per byte of compulsory traffic."""
        return self.flops / self.bytes if self.bytes and self.bytes > 0 else float("nan")


class BenchmarkResult:
    """The outcome of ``wb.benchmark``: ``.table``, ``.plot()``, ``.roofline()``.

    ``table`` columns (a pandas DataFrame, one row per variant, in the order given):

    - ``variant``: the name; ``status``: ``ok`` / ``wrong`` / ``error``
    - ``median_ms``, ``p10_ms``, ``p90_ms``: per-call time (median and 10th/90th percentiles)
    - ``spread_pct``: ``(p90 - p10) / median`` in percent
    - ``repeats``: number of samples taken (each of ``number`` calls, see ``Timing``)
    - ``gflops``, ``gbps``: FLOPs and compulsory bytes (counted from the IR) per second
    - ``pct_of_peak``: ``gflops`` as a percentage of the machine's fp32 FMA peak (all cores)
    - ``speedup_vs_<baseline>``: the baseline's median time divided by this one's
    - ``note``: the error, or how the results differ, or remarks

    When a variant was timed on a GPU device (a program built for an ``opencl`` or ``cuda``
    target, or such a built function), two more columns follow ``repeats``: ``clock`` says
    what its times are, ``device`` (the kernels' own time, from the backend's events; copies
    of the numpy arguments to and from the device are not counted) or ``wall`` (the host's
    clock around the call, as for CPU variants and plain callables); ``wall_ms`` is the median
    wall-clock time of the same calls (copies included). Speedups and rates use ``median_ms``.

    ``variants`` maps names to ``VariantResult``; ``reference`` is the variant the
    others were checked against, ``baseline`` the one speedups are relative to,
    ``peak`` the ``MachinePeak`` used (or None), ``flops``/``bytes`` the reference counts.
    """

    def __init__(self, rows: list[VariantResult], reference: str | None, baseline: str | None, peak, target: str,
                 flops: float, nbytes: float):
        self.variants: dict[str, VariantResult] = {r.name: r for r in rows}
        self.reference, self.baseline, self.peak, self.target = reference, baseline, peak, target
        self.flops, self.bytes = flops, nbytes

    def __getitem__(self, name: str) -> VariantResult:
        try:
            return self.variants[name]
        except KeyError:
            raise KeyError(f"no variant named {name!r}; the variants are {', '.join(self.variants)}") from None

    @property
    def speedup_column(self) -> str:
        return f"speedup_vs_{self.baseline}" if self.baseline else "speedup"

    @property
    def table(self):
        """A pandas DataFrame with the documented columns (see the class docstring)."""
        import pandas as pd

        base = self.variants.get(self.baseline) if self.baseline else None
        base_t = base.timing.median if base is not None and base.timing else float("nan")
        peak = getattr(self.peak, "gflops", float("nan")) if self.peak is not None else float("nan")
        rows = []
        device_timed = any(r.timing is not None and r.timing.clock == "device" for r in self.variants.values())
        for r in self.variants.values():
            t = r.timing
            nan = float("nan")
            clock_cols = {"clock": t.clock if t else "",
                          "wall_ms": (t.wall.median if t.wall is not None else t.median) * 1e3 if t else nan}
            rows.append({
                "variant": r.name,
                "status": r.status,
                "median_ms": t.median * 1e3 if t else nan,
                "p10_ms": t.p10 * 1e3 if t else nan,
                "p90_ms": t.p90 * 1e3 if t else nan,
                "spread_pct": t.spread_pct if t else nan,
                "repeats": t.repeats if t else 0,
                **(clock_cols if device_timed else {}),
                "gflops": r.gflops,
                "gbps": r.gbps,
                "pct_of_peak": 100.0 * r.gflops / peak if peak and peak == peak else nan,
                self.speedup_column: base_t / t.median if t and t.median > 0 else nan,
                "note": "; ".join(x for x in (r.note, _noise_note(t)) if x),
            })
        columns = [c if not c.startswith("speedup_vs_") else self.speedup_column for c in COLUMNS]
        if device_timed:
            at = columns.index("repeats") + 1
            columns[at:at] = list(DEVICE_COLUMNS)
        return pd.DataFrame(rows, columns=columns)

    def __repr__(self) -> str:
        try:
            import pandas as pd

            with pd.option_context("display.max_colwidth", 60, "display.width", 200):
                return self.formatted_table().to_string(index=False)
        except Exception as err:  # never hide the object
            return f"<BenchmarkResult {list(self.variants)} (table unavailable: {err})>"

    def formatted_table(self):
        """``table`` as text for reading: times in ms to 3 significant digits, rates to one decimal,
        percentages and speedups rounded, empty where there is no value."""
        t = self.table.copy()
        for col in t.columns:
            fmt = _COLUMN_FORMATS.get("speedup" if col.startswith("speedup") else col)
            if fmt is not None:
                t[col] = [("" if v != v else fmt(v)) for v in t[col]]
        return t

    def _repr_html_(self) -> str:
        noisy = [r.name for r in self.variants.values() if _noise_note(r.timing)]
        warn = ""
        if noisy:
            warn = (f'<div style="color:#b45309">&#9888; noisy timings: {", ".join(noisy)} (p10-p90 spread over '
                    f"{NOISY_SPREAD_PCT:.0f}% of the median); rerun them on a quieter machine or with more "
                    "repeats before comparing</div>")
        return warn + self.formatted_table().to_html(index=False, na_rep="")

    # plots ----------------------------------------------------------------------
    def _timed(self) -> list[VariantResult]:
        return [r for r in self.variants.values() if r.timing is not None]

    def plot(self, ax=None, metric: str = "median_ms", log: bool | None = None):
        """Bar chart of the timed variants with p10-p90 error bars; returns the matplotlib Figure.

        ``metric`` is ``"median_ms"`` (time per call, default) or ``"gflops"``. ``log``
        makes the value axis logarithmic (default: when the values span more than 30x).
        Variants that were wrong or failed are listed in the title, not drawn.

        >>> fig = res.plot()          # doctest: +SKIP
        >>> fig.savefig("bench.png")  # doctest: +SKIP
        """
        if metric not in ("median_ms", "gflops"):
            raise ValueError(f"plot(metric=...) takes 'median_ms' or 'gflops', got {metric!r}")
        fig, ax, close = _figure(ax)
        timed = self._timed()
        names = [r.name for r in timed]
        if metric == "median_ms":
            vals = np.array([r.timing.median * 1e3 for r in timed])
            lo = vals - np.array([r.timing.p10 * 1e3 for r in timed])
            hi = np.array([r.timing.p90 * 1e3 for r in timed]) - vals
            ax.set_ylabel("time per call (ms), median; bars p10-p90")
        else:
            vals = np.array([r.gflops for r in timed])
            # a shorter time is a higher rate: p10 time gives the upper end
            lo = vals - np.array([r.flops / r.timing.p90 / 1e9 for r in timed])
            hi = np.array([r.flops / r.timing.p10 / 1e9 for r in timed]) - vals
            ax.set_ylabel("GFLOP/s (median; bars p10-p90)")
        x = np.arange(len(timed))
        colors = [f"C{k % 10}" for k in range(len(timed))]
        bars = ax.bar(x, vals, color=colors, yerr=np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)]) if len(timed) else None,
               capsize=4, error_kw={"ecolor": "black", "elinewidth": 1})
        base = self.variants.get(self.baseline) if self.baseline else None
        if base is not None and base.timing is not None:
            for xi, r, v in zip(x, timed, vals):  # the speedup over the baseline on each bar
                ax.annotate(f"{base.timing.median / r.timing.median:.3g}x", (xi, v), xytext=(0, 3),
                            textcoords="offset points", ha="center", va="bottom", fontsize=8)
        pos = vals[vals > 0] if len(vals) else vals
        if log is None:
            log = bool(len(pos) > 1 and pos.max() / pos.min() > 30)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(x)
        tilt = _tilt_labels(names, fig.get_figwidth())
        ax.set_xticklabels(names, rotation=30 if tilt else 0, ha="right" if tilt else "center",
                           rotation_mode="anchor")
        noisy = [r.name for r in timed if _noise_note(r.timing)]
        for patch, r in zip(bars.patches, timed):
            if _noise_note(r.timing):
                patch.set_hatch("///")
        left_out = [f"{r.name} ({r.status})" for r in self.variants.values() if r.timing is None]
        title = f"benchmark on {self.target}"
        if left_out:
            title += "\nnot timed: " + ", ".join(left_out)
        if noisy:
            title += f"\nnoisy (hatched; p10-p90 over {NOISY_SPREAD_PCT:.0f}% of the median): " + ", ".join(noisy)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        return _done(fig, close)

    def roofline(self, ax=None, peak=None):
        """Place each timed variant under this machine's roofline; returns the matplotlib Figure.

        Log-log axes: arithmetic intensity (FLOPs per byte of compulsory traffic, from the
        IR) against GFLOP/s. The roof is the measured memory bandwidth (the slope, GB/s
        times FLOP/byte) up to the measured fp32 FMA peak (the flat line). ``peak`` is a
        ``MachinePeak``; by default the one used by the benchmark, else ``wb.machine_peak``.

        >>> fig = res.roofline()      # doctest: +SKIP
        """
        peak = peak if peak is not None else self.peak
        if peak is None:
            from .peak import machine_peak

            peak = machine_peak(self.target)
        fig, ax, close = _figure(ax)
        pts = [r for r in self._timed() if r.intensity == r.intensity and r.gflops == r.gflops and r.gflops > 0]
        xs = [r.intensity for r in pts] + [peak.ridge]
        x_lo = min(xs) / 8
        x_hi = max(xs) * 8
        ridge = peak.ridge
        ax.plot([x_lo, ridge], [peak.gbps * x_lo, peak.gflops], color="black", lw=2,
                label=f"memory bandwidth {peak.gbps:.1f} GB/s")
        ax.plot([ridge, max(x_hi, ridge * 2)], [peak.gflops, peak.gflops], color="black", lw=2, ls="-",
                label=f"fp32 FMA peak {peak.gflops:.1f} GFLOP/s ({peak.cores} cores)")
        per_core = getattr(peak, "gflops_per_core", float("nan"))
        if per_core == per_core and peak.cores > 1:
            ax.axhline(per_core, color="gray", lw=1, ls="--", label=f"one core {per_core:.1f} GFLOP/s")
        for k, (r, dy) in enumerate(zip(pts, _label_offsets([(r.intensity, r.gflops) for r in pts]))):
            ax.plot([r.intensity], [r.gflops], marker="o", ms=8, ls="none", color=f"C{k % 10}",
                    label=f"{r.name}: {r.gflops:.1f} GFLOP/s ({r.intensity:.3g} FLOP/B)")
            ax.annotate(r.name, (r.intensity, r.gflops), xytext=(8, dy), textcoords="offset points",
                        fontsize=8, va="center", color=f"C{k % 10}",
                        arrowprops={"arrowstyle": "-", "color": f"C{k % 10}", "lw": 0.6} if dy else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP / byte)")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"roofline: {peak.cpu}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.tight_layout()
        return _done(fig, close)


def _noise_note(t: Timing | None) -> str:
    """A warning for a timing too noisy to compare, or ""."""
    if t is None or not t.spread_pct > NOISY_SPREAD_PCT:
        return ""
    return f"noisy: p10-p90 spread {t.spread_pct:,.0f}% of the median"


def _sig(x: float, digits: int = 3) -> str:
    return f"{x:,.{digits}g}" if abs(x) < 10 ** digits else f"{x:,.0f}"


_COLUMN_FORMATS = {
    "median_ms": _sig, "p10_ms": _sig, "p90_ms": _sig, "wall_ms": _sig,
    "spread_pct": lambda v: f"{v:,.0f}%",
    "gflops": lambda v: f"{v:,.1f}", "gbps": lambda v: f"{v:,.1f}",
    "pct_of_peak": lambda v: f"{v:.0f}%",
    "speedup": lambda v: f"{v:.2f}x",
}


def _tilt_labels(names: list[str], width_in: float) -> bool:
    """True when the bar labels written level would run into each other (about 0.085 in per character)."""
    return bool(names) and max(len(n) for n in names) * 0.085 > 0.8 * width_in / len(names)


def _label_offsets(points: list[tuple[float, float]], close: float = 0.06, step: float = 11.0) -> list[float]:
    """Vertical offsets (points) for the labels of roofline points: labels of points that fall within
    ``close`` decades of each other are stacked ``step`` points apart instead of printed on each other."""
    import math

    offsets: list[float] = []
    placed: list[tuple[float, float]] = []
    for x, y in points:
        lx, ly = math.log10(x), math.log10(y)
        n = sum(1 for px, py in placed if abs(px - lx) < close and abs(py - ly) < close)
        placed.append((lx, ly))
        offsets.append(-(n * step) if n else 0.0)
    return offsets


def _figure(ax):
    if ax is not None:
        return ax.figure, ax, False
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    return fig, ax, True


def _done(fig, close: bool):
    if close:
        # closed figures are not shown again by Jupyter's inline backend: the returned
        # Figure displays once, as the cell's value
        import matplotlib.pyplot as plt

        plt.close(fig)
    return fig


# ---------------------------------------------------------------------------
# preparing variants


@dataclass
class _Variant:
    name: str
    kind: str
    fn: Callable | None = None
    func: PrimFunc | None = None
    error: str = ""


def _prepare(name: str, obj: Any, target, build: Callable) -> _Variant:
    try:
        func = prim_func_of(obj)
    except ValueError as err:
        return _Variant(name, "program", error=str(err))
    is_ir = isinstance(obj, (PrimFunc, IRModule)) or (func is not None and not callable(obj))
    if is_ir:
        try:
            fn = build(obj if isinstance(obj, IRModule) else func, target=target)   # a Schedule: its function
        except Exception as err:
            return _Variant(name, "program", func=func, error=f"build failed: {type(err).__name__}: {err}")
        return _Variant(name, "program", fn=fn, func=func)
    if callable(obj):
        return _Variant(name, "built" if func is not None else "callable", fn=obj, func=func)
    return _Variant(name, "unknown", error=f"{type(obj).__name__} is not a tensor program, a schedule, "
                                           "a built function or a callable")


def _short(err: BaseException, limit: int = 300) -> str:
    s = f"{type(err).__name__}: {err}"
    s = s.strip().splitlines()[0] if "\n" in s.strip() else s.strip()
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _tolerance(dtype: np.dtype, rtol, atol, ref: np.ndarray) -> tuple[float, float] | None:
    name = "bfloat16" if dtype.name == "bfloat16" else dtype.name
    if dtype.kind not in "fc" and name != "bfloat16":
        return None  # exact
    r = rtol if rtol is not None else RTOL.get(name, 1e-4)
    if atol is not None:
        return r, atol
    finite = np.abs(ref[np.isfinite(ref)].astype(np.float64)) if ref.size else np.zeros(0)
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    return r, r * scale


def _compare(out: np.ndarray, ref: np.ndarray, what: str, ref_name: str, rtol, atol) -> str | None:
    """None when equal within tolerance, else one sentence saying how they differ."""
    if out.shape != ref.shape or out.dtype != ref.dtype:
        return f"{what} is {out.dtype}{list(out.shape)} but the reference '{ref_name}' gives {ref.dtype}{list(ref.shape)}"
    tol = _tolerance(out.dtype, rtol, atol, ref)
    o = out.astype(np.float64) if out.dtype.name == "bfloat16" else out
    rf = ref.astype(np.float64) if ref.dtype.name == "bfloat16" else ref
    if tol is None:
        bad = o != rf
    else:
        r, a = tol
        with np.errstate(invalid="ignore", over="ignore"):
            bad = ~np.isclose(o, rf, rtol=r, atol=a, equal_nan=True)
    nbad = int(np.count_nonzero(bad))
    if nbad == 0:
        return None
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape)) if bad.ndim else ()
    unwritten = int(np.count_nonzero(np.isnan(o) & ~np.isnan(rf))) if o.dtype.kind == "f" else 0
    msg = (f"{what} differs from the reference '{ref_name}' in {nbad} of {bad.size} elements "
           f"(first at {list(where)}: {_num(o[where])} vs {_num(rf[where])})")
    if unwritten:
        msg += f"; {unwritten} element(s) were never written (still NaN)"
    return msg


def _num(x) -> str:
    try:
        return f"{float(x):.6g}"
    except (TypeError, ValueError):
        return repr(x)


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython

            ip = get_ipython()
            if ip is not None and getattr(ip, "kernel", None) is not None:
                return True
        except Exception:
            pass
    try:
        return sys.stderr.isatty()
    except Exception:
        return False


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def _bar(total: int, progress) -> Any:
    show = _interactive() if progress is None else bool(progress)
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="benchmark", unit="variant", leave=False)


# ---------------------------------------------------------------------------


def benchmark(variants: Mapping[str, Any] | Sequence[Any], target="llvm", args: Sequence | None = None, *,
              sizes: Mapping | None = None, min_time: float = 0.2, warmup: float = 0.05, min_repeats: int = 5,
              max_repeats: int = 200, max_time: float | None = 10.0, baseline: str | None = None,
              peak: Any = "auto", rtol: float | None = None,
              atol: float | None = None, outputs: Sequence | None = None, seed: int = 0, progress: bool | None = None,
              build: Callable | None = None) -> BenchmarkResult:
    """Time variants of one computation on the same inputs, after checking they agree.

    ``variants`` maps a name to a PrimFunc, a Schedule (anything with ``.mod``/``.func``),
    a built function (what ``wb.build`` returns) or a plain Python callable such as a
    numpy baseline ``lambda a, b, c: np.matmul(a, b, out=c)``. Tensor programs are built
    for ``target`` (a target that does not parse raises ``TargetError``). Every variant is
    called with the same arrays, one per parameter of the first tensor program:

    - ``args=None``: random inputs from that program's buffer shapes and dtypes
      (symbolic sizes need ``sizes={"n": ...}`` or explicit ``args``);
    - outputs are the parameters the program writes (``outputs=`` gives their positions
      when no variant is a tensor program; default: the last argument). Your arrays are
      copied, never written.

    Each variant runs once with its outputs filled with NaN, and its outputs are compared
    with the FIRST variant's (tolerance by dtype, see ``RTOL``; ``rtol``/``atol`` override).
    A variant whose results differ is reported ``wrong`` and not timed; one that raises is
    reported ``error`` with its message, and the others still run. Correct variants are
    timed by ``measure`` (warm-up, repeats calibrated to ``min_time`` seconds, median and
    spread; a variant built for a GPU target is timed by its device's events, kernels only,
    and the table's ``clock``/``wall_ms`` columns say so, see ``BenchmarkResult``); a
    variant whose samples reach ``max_time`` seconds stops there, with fewer than
    ``min_repeats`` runs, and ``note`` says so (a naive 1024 matmul is timed once, not five times). FLOPs and bytes are counted from each variant's IR (plain callables use the
    first program's counts); ``peak`` (``"auto"``: ``wb.machine_peak(target)``, measured
    once and cached; ``None``: no peak; or a ``MachinePeak``) gives ``pct_of_peak``.
    Speedups are relative to ``baseline`` (default: the first variant). A progress bar
    shows in terminals and notebooks (``progress=False`` hides it). ``seed`` seeds the
    random inputs; ``build(obj, target=...)`` replaces ``wb.build`` (for instance the
    reference interpreter, ``workbench.ir.evaluate``, wrapped as a callable).

    >>> import numpy as np
    >>> import workbench as wb
    >>> from workbench import te
    >>> x = te.placeholder((1000,), name="x")
    >>> y = te.compute((1000,), lambda i: x[i] * 2.0, name="y")
    >>> f = wb.create_prim_func([x, y])
    >>> res = wb.benchmark({"ir": f, "numpy": lambda a, b: np.multiply(a, 2.0, out=b),
    ...                     "wrong": lambda a, b: np.multiply(a, 3.0, out=b)},
    ...                    min_time=0.01, peak=None, progress=False)
    >>> list(res.table["status"])
    ['ok', 'ok', 'wrong']
    """
    if isinstance(variants, Mapping):
        items = list(variants.items())
    elif isinstance(variants, (list, tuple)):
        items = []
        for k, v in enumerate(variants):
            f = None
            try:
                f = prim_func_of(v)
            except ValueError:
                pass
            items.append((f.name if f is not None else getattr(v, "__name__", f"variant{k}"), v))
        names = [n for n, _ in items]
        items = [(n if names.count(n) == 1 else f"{n}_{k}", v) for k, (n, v) in enumerate(items)]
    else:
        raise TypeError(f"benchmark() takes a dict of name -> variant, got {type(variants).__name__}")
    if not items:
        raise ValueError("benchmark() needs at least one variant")
    for n, _ in items:
        if not isinstance(n, str) or not n:
            raise TypeError(f"variant names must be non-empty strings, got {n!r}")
    if baseline is not None and baseline not in dict(items):
        raise KeyError(f"baseline={baseline!r} is not one of the variants: {', '.join(n for n, _ in items)}")
    if build is None:
        from ..backend import Target
        from ..backend import build as build  # noqa: PLW0127 - the LLVM backend, loaded on first use

        Target(target)  # a target that does not parse is the caller's error, not each variant's

    prepared = [_prepare(n, v, target, build) for n, v in items]
    ref_func = next((p.func for p in prepared if p.func is not None), None)

    # the arrays every variant is called with
    if args is None:
        if ref_func is None:
            raise ValueError("benchmark() needs args=[...] when no variant is a tensor program "
                             "(there are no buffer shapes to make random inputs from)")
        arrays = random_inputs(ref_func, sizes=sizes, seed=seed)
    else:
        arrays = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
        if ref_func is not None and len(arrays) != len(ref_func.params):
            names = ", ".join((ref_func.buffer_map[p].name if p in ref_func.buffer_map else p.name)
                              for p in ref_func.params)
            raise ValueError(f"benchmark(): args has {len(arrays)} value(s) but {ref_func.name} takes "
                             f"{len(ref_func.params)} ({names})")
    if outputs is not None:
        out_idx = [int(k) % len(arrays) for k in outputs]
    elif ref_func is not None:
        out_idx = accessed_params(ref_func)[1]
    else:
        out_idx = [len(arrays) - 1]
    for k in out_idx:
        if not isinstance(arrays[k], np.ndarray):
            raise TypeError(f"benchmark(): output {k} must be a numpy array, got {type(arrays[k]).__name__}")
    in_idx = [k for k, a in enumerate(arrays) if isinstance(a, np.ndarray) and k not in out_idx]
    pristine = {k: arrays[k].copy() for k in in_idx}

    # FLOPs and bytes from the IR
    def counts(func):
        try:
            return float(count_flops(func, args=arrays, sizes=sizes)), float(count_bytes(func, args=arrays, sizes=sizes)), ""
        except Exception as err:
            return float("nan"), float("nan"), f"no FLOP count: {_short(err)}"

    ref_counts = counts(ref_func) if ref_func is not None else (float("nan"), float("nan"), "")

    rows: list[VariantResult] = []
    reference: str | None = None
    ref_outs: list[np.ndarray] | None = None
    bar = _bar(len(prepared), progress)
    try:
        for p in prepared:
            bar.set_postfix_str(p.name)
            row = VariantResult(p.name, p.kind)
            rows.append(row)
            if p.func is None or p.func is ref_func:
                fl, by, note = ref_counts
            else:
                fl, by, note = counts(p.func)
                if fl != fl and ref_counts[0] == ref_counts[0]:  # a changed signature: use the reference's
                    fl, by, note = ref_counts
            row.flops, row.bytes = fl, by
            if note:
                row.note = note
            if p.error:
                row.status, row.note = "error", p.error
                bar.update()
                continue
            # 1. run once on poisoned outputs and check
            try:
                for k in out_idx:
                    fill_poison(arrays[k])
                t0 = time.perf_counter()
                p.fn(*arrays)
                first_call = time.perf_counter() - t0
            except Exception as err:
                row.status, row.note = "error", _short(err)
                _restore(arrays, pristine)
                bar.update()
                continue
            changed = [k for k in in_idx if not np.array_equal(arrays[k], pristine[k], equal_nan=True)]
            if changed:
                names = ", ".join(_arg_name(ref_func, k) for k in changed)
                row.status, row.note = "wrong", f"it changed its input(s) {names}"
                _restore(arrays, pristine)
                bar.update()
                continue
            outs = [arrays[k].copy() for k in out_idx]
            if ref_outs is None:
                ref_outs, reference = outs, p.name
                if rows[0] is not row:
                    row.note = (row.note + "; " if row.note else "") + "reference for the check (the first " \
                                                                          "variant did not run)"
            else:
                for k, o, r in zip(out_idx, outs, ref_outs):
                    diff = _compare(o, r, _arg_name(ref_func, k), reference, rtol, atol)
                    if diff:
                        row.status, row.note = "wrong", diff
                        break
                if row.status == "wrong":
                    bar.update()
                    continue
            # 2. time it (a built GPU function by its device's events)
            try:
                clock = _device_clock(p.fn)
                row.timing = measure(p.fn, *arrays, min_time=min_time, warmup=warmup, min_repeats=min_repeats,
                                     max_repeats=max_repeats, estimate=first_call, max_time=max_time,
                                     device_seconds=clock)
                if clock is not None:
                    row.note = (row.note + "; " if row.note else "") + _device_note(row.timing)
                if row.timing.repeats < min_repeats:
                    row.note = (row.note + "; " if row.note else "") + \
                        f"slow: {row.timing.repeats} timed run(s) only (max_time={max_time:g} s)"
            except Exception as err:
                row.status, row.note = "error", f"while timing: {_short(err)}"
                _restore(arrays, pristine)
            bar.update()
    finally:
        bar.close()

    if baseline is None:
        baseline = rows[0].name
    peak_obj = None
    if isinstance(peak, str):
        if peak != "auto":
            raise ValueError(f"peak= takes 'auto', None or a MachinePeak, got {peak!r}")
        try:
            from .peak import machine_peak

            peak_obj = machine_peak(target)
        except Exception:
            peak_obj = None
    elif peak is not None and peak is not False:
        if not hasattr(peak, "gflops") or not hasattr(peak, "gbps"):
            raise TypeError(f"peak= must be a MachinePeak (with .gflops and .gbps), got {type(peak).__name__}")
        peak_obj = peak
    return BenchmarkResult(rows, reference, baseline, peak_obj, str(target), ref_counts[0], ref_counts[1])


def _device_clock(fn: Any) -> Callable[[], float] | None:
    """For a built GPU function (it reports ``last_device_seconds``), a reader of its last call's device
    time; None for anything else (timed by the wall clock)."""
    if not hasattr(fn, "last_device_seconds"):
        return None
    return lambda: fn.last_device_seconds


def _device_note(t: Timing) -> str:
    return f"device time (kernel events, copies not counted); wall {_sig(t.wall.median * 1e3)} ms"


def _restore(arrays: list, pristine: dict) -> None:
    for k, a in pristine.items():
        arrays[k][...] = a


def _arg_name(func: PrimFunc | None, k: int) -> str:
    if func is not None and k < len(func.params):
        p = func.params[k]
        b = func.buffer_map.get(p)
        return b.name if b is not None else p.name
    return f"argument {k}"


__all__ = ["benchmark", "BenchmarkResult", "VariantResult", "COLUMNS", "DEVICE_COLUMNS", "RTOL"]
