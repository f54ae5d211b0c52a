"""``wb.tune(model, ...)``: tune every distinct kernel of a whole model, sharing the budget by time.

A model is a :class:`~workbench.frontend.model.Model` (``wb.frontend.load(folder)``) or an
IRModule with graph functions. Its *kernels* are the tensor programs that ``LegalizeOps``,
``FuseOps`` and ``FuseTIR`` make of it (as the model's compiler makes them, before
``DefaultSchedule``); kernels with the same workload (``workload_key``) are tuned once.

How the budget is shared (``trials=`` and/or ``time_budget=`` are totals for the model):

1. the default-compiled model runs once on the example ``inputs`` under ``wb.profile``; a
   kernel's *share* is its part of the kernels' time (all its calls; identical kernels
   together);
2. kernels below ``min_share`` of the time (default 1%) get nothing: they keep the default
   schedule;
3. trials: each remaining kernel first gets ``min_trials`` (default 4); the rest is split in
   proportion to the shares (largest remainders first). When the total cannot give
   ``min_trials`` to each, the kernels with the smallest shares are left out;
4. seconds: each remaining kernel gets ``time_budget`` times its share of the remaining
   kernels' time (a search always measures at least one batch).

Each kernel's search measures the default schedule first (so ``default ms`` and ``tuned ms``
come from the same runner and the best record is never slower than the default), then
candidates of the search space. Kernels with symbolic sizes (``batch``, ``seq``) are measured
at the sizes of the example run while their traces stay symbolic, so the records replay onto
the model's kernels: ``model.virtual_machine(target, database=...)`` (or
``compile_module(mod, target, database=...)``) builds the model with the tuned kernels
(``DefaultSchedule`` marks them ``"tuned"``).

>>> result = wb.tune(model, "llvm", inputs=(ids, mask), trials=200, database="minilm.jsonl")  # doctest: +SKIP
>>> result               # the per-kernel table and the model's time before and after  # doctest: +SKIP
>>> vm = model.virtual_machine("llvm", database="minilm.jsonl")                             # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..ir.expr import Var
from ..ir.function import IRModule, PrimFunc
from .database import Database
from .space import Candidate, program_key

#: kernels below this share of the model's time are not tuned
MIN_SHARE = 0.01
#: trials each tuned kernel gets at least
MIN_TRIALS = 4


class ModelTuneError(ValueError):
    """``wb.tune`` of a model got something it cannot use (no example inputs, wrong arrays)."""


@dataclass
class KernelTask:
    """One distinct kernel of the model: its name (the first kernel with this workload), every kernel
    name sharing it, the untuned program, its share of the model's kernel time, its calls per run and
    its part of the budget."""

    name: str
    names: tuple
    func: PrimFunc
    share: float
    calls: int
    trials: int = 0
    time_budget: float | None = None

    @property
    def tuned(self) -> bool:
        return self.trials > 0 or bool(self.time_budget)


@dataclass
class _Graph:
    """What tuning needs of a model: its module, the graph function to run, the arguments after the
    user's inputs (a Model's weights), and how to build it."""

    mod: IRModule
    entry: str
    extra_args: tuple
    model: Any = None   # the Model, whose virtual_machine() builds (and keeps) it

    def virtual_machine(self, target: str, database: Database | None):
        if self.model is not None:
            return self.model.virtual_machine(target, database=database)
        from ..backend import build
        from ..backend.vm import VirtualMachine
        from ..frontend.model import compile_module

        return VirtualMachine(build(compile_module(self.mod, target, database=database), target=target))


# -- the result ---------------------------------------------------------------------------------

class ModelTuneResult:
    """What :func:`tune_model` did: ``table`` (one row per distinct kernel: share of the model's time,
    trials given, default and tuned ms at the example sizes, speedup), ``best`` (kernel name ->
    :class:`~workbench.tuning.tune.Best` or None), ``results`` (kernel name -> ``TuneResult``),
    ``before_ms`` / ``after_ms`` (the model's wall time under ``wb.profile``), ``vm`` (the model built
    with the tuned kernels) and ``database``."""

    def __init__(self, target: str, tasks: list[KernelTask], results: dict, default_seconds: dict,
                 sizes: dict, before_ms: float, after_ms: float, vm, database: Database, tuned_kernels: set):
        self.target, self.tasks, self.results = target, tasks, results
        self.default_seconds, self.sizes = default_seconds, sizes
        self.before_ms, self.after_ms, self.vm, self.database = before_ms, after_ms, vm, database
        self.tuned_kernels = tuned_kernels   # kernel names the tuned build marked "tuned"

    @property
    def best(self) -> dict:
        """Kernel name -> the fastest candidate (``Best``), None where no candidate ran correctly."""
        return {name: r.best for name, r in self.results.items()}

    @property
    def table(self):
        """pandas DataFrame, one row per distinct kernel, largest share first."""
        import pandas as pd

        rows = []
        for t in self.tasks:
            best = self.results[t.name].best if t.name in self.results else None
            default = self.default_seconds.get(t.name)
            tuned = best.seconds if best is not None else None
            rows.append({"kernel": t.name if len(t.names) == 1 else f"{t.name} (+{len(t.names) - 1} same)",
                         "share": t.share, "trials": t.trials,
                         "default_ms": None if default is None else default * 1e3,
                         "tuned_ms": None if tuned is None else tuned * 1e3,
                         "speedup": default / tuned if default and tuned else None})
        return pd.DataFrame(rows, columns=["kernel", "share", "trials", "default_ms", "tuned_ms", "speedup"])

    @property
    def speedup(self) -> float:
        """The model's end-to-end speedup (wall time before / after)."""
        return self.before_ms / self.after_ms if self.after_ms else float("nan")

    def _summary(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items()) or "static sizes"
        return (f"model on {self.target} ({sizes}): {self.before_ms:.2f} ms -> {self.after_ms:.2f} ms "
                f"({self.speedup:.2f}x); {len(self.tuned_kernels)} kernel(s) built with tuned schedules")

    def __repr__(self) -> str:
        t = self.table
        text = t.to_string(index=False, na_rep="-", formatters={
            "share": "{:.1%}".format, "default_ms": "{:.3f}".format, "tuned_ms": "{:.3f}".format,
            "speedup": "{:.2f}x".format})
        return f"{text}\n{self._summary()}"

    def _repr_html_(self) -> str:
        styled = self.table.style.format({"share": "{:.1%}", "default_ms": "{:.3f}", "tuned_ms": "{:.3f}",
                                          "speedup": "{:.2f}x"}, na_rep="-").hide(axis="index")
        return f"{styled.to_html()}<p>{self._summary()}</p>"


# -- tuning -------------------------------------------------------------------------------------

def tune_model(model, target="llvm", *, inputs: Sequence | None = None, trials: int | None = None,
               time_budget: float | None = None, database: str | os.PathLike | Database | None = None,
               runner=None, space=None, strategy="evolutionary", seed: int = 0, batch_size: int = 8,
               progress: bool | None = None, min_share: float = MIN_SHARE,
               min_trials: int = MIN_TRIALS) -> ModelTuneResult:
    """Tune every distinct kernel of ``model`` (a ``Model`` or an IRModule with graph functions) for
    ``target``, sharing ``trials`` / ``time_budget`` by each kernel's share of the model's time (see
    the module docstring for the rule), and return a :class:`ModelTuneResult`.

    ``inputs``: example arguments of the model's graph function (for a ``Model``: ``(input_ids,
    attention_mask)``, the weights are added; for an IRModule: every argument of ``main``, or of its
    only graph function). They fix the symbolic sizes kernels are measured at and the time shares.
    Other options as :func:`~workbench.tuning.tune.tune`'s; ``database`` (default: in memory) receives
    every measurement, so the tuned model can be built again with it later.
    """
    from ..backend.target import Target
    from ..backend.vm import profile

    graph = as_graph(model)
    target = str(Target(target))
    if trials is None and time_budget is None:
        trials = 64
    _check_model_limits(trials, time_budget, min_share, min_trials)
    db = database if isinstance(database, Database) else Database(database)
    args = _model_args(graph, inputs)
    sizes = example_sizes(graph.mod.graph_functions[graph.entry], args)
    kernels = model_kernels(graph.mod)
    default_vm = graph.virtual_machine(target, None)
    before = profile(default_vm, graph.entry, *args, number=3)
    tasks = kernel_tasks(kernels, before)
    share_budget(tasks, trials, time_budget, min_share, min_trials)
    results, defaults = _tune_tasks(tasks, target, sizes, runner=runner, space=space, strategy=strategy,
                                    database=db, seed=seed, batch_size=batch_size, progress=progress)
    vm = graph.virtual_machine(target, db)
    tuned = {name for name, f in vm.executable.mod.prim_funcs.items() if f.attrs.get("tuned")}
    before_ms, after_ms = _wall_ms(default_vm, graph.entry, args), _wall_ms(vm, graph.entry, args)
    return ModelTuneResult(target, tasks, results, defaults, sizes, before_ms, after_ms, vm, db, tuned)


def _wall_ms(vm, entry: str, args: tuple, repeat: int = 3) -> float:
    """The model's wall time under ``wb.profile``: the fastest of ``repeat`` runs (the least disturbed)."""
    from ..backend.vm import profile

    return min(profile(vm, entry, *args).attrs["wall_ms"] for _ in range(repeat))


def _tune_tasks(tasks: list[KernelTask], target: str, sizes: dict, *, runner, space, strategy, database,
                seed, batch_size, progress) -> tuple[dict, dict]:
    """Search each kernel with a budget; returns (name -> TuneResult, name -> default seconds)."""
    from .measure import LocalRunner
    from .progress import Progress
    from .search import run_search
    from .tune import TuneResult

    results, defaults = {}, {}
    sizes_of = kernel_sizes(tasks, sizes)
    for task in tasks:
        missing = sorted(_size_names(task.func) - set(sizes_of[task.name]))
        if task.tuned and missing:
            raise ModelTuneError(f"wb.tune: kernel {task.name} has the symbolic size(s) {', '.join(missing)}, which "
                                 f"no parameter of the model fixes (defined by a match_cast?), so it cannot be "
                                 f"measured at the example sizes")
    own_runner = runner is None
    runner = LocalRunner() if own_runner else runner
    try:
        for task in (t for t in tasks if t.tuned):
            default = default_candidate(task.func, target)
            bar = Progress(total=task.trials or None, time_budget=task.time_budget, desc=task.name,
                           enable=progress, plot=False)
            try:
                measured = run_search(task.func, target, runner=runner, space=space, strategy=strategy,
                                      trials=task.trials or None, time_budget=task.time_budget, database=database,
                                      seed=seed, batch_size=batch_size, progress=bar, sizes=sizes_of[task.name],
                                      initial=[default] if default is not None else [])
            finally:
                bar.close()
            results[task.name] = TuneResult(task.func, target, measured)
            defaults[task.name] = next((m.seconds for m in measured
                                        if default is not None and m.key == default.key and m.ok), None)
    finally:
        if own_runner:
            runner.close()
    return results, defaults


def as_graph(model) -> _Graph:
    """The graph module, entry function and extra arguments of a Model or an IRModule with graph functions."""
    if isinstance(model, IRModule):
        fns = model.graph_functions
        if not fns:
            raise TypeError("wb.tune of a whole model needs an IRModule with graph functions; this one has only "
                            "tensor programs (pass one of them, mod['name'])")
        entry = "main" if "main" in fns else next(iter(fns)) if len(fns) == 1 else None
        if entry is None:
            raise ModelTuneError(f"wb.tune: the module has graph functions {', '.join(fns)} and none is named "
                                 f"'main'; say which to run by keeping only it")
        return _Graph(model, entry, ())
    from ..frontend.model import Model

    if isinstance(model, Model):
        return _Graph(model.mod, "forward", tuple(model.param_list), model)
    raise TypeError(f"wb.tune needs a PrimFunc, an IRModule, a Schedule or a model (wb.frontend.load), "
                    f"got {type(model).__name__}")


def _model_args(graph: _Graph, inputs) -> tuple:
    fn = graph.mod.graph_functions[graph.entry]
    n_user = len(fn.params) - len(graph.extra_args)
    user_params = fn.params[:n_user]
    if inputs is None:
        symbolic = sorted({d.name for p in user_params for d in _dims(p) if isinstance(d, Var)})
        if symbolic:
            raise ModelTuneError(
                f"wb.tune of a model needs example inputs: its sizes {', '.join(symbolic)} are symbolic and the "
                f"kernels are measured at the sizes of an example run; pass inputs=(...) with one array per "
                f"parameter {', '.join(p.name for p in user_params)} of {graph.entry}()")
        inputs = tuple(_random_arg(p) for p in user_params)
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, (tuple, list)):
        raise ModelTuneError(f"wb.tune: inputs must be a tuple of arrays, one per parameter "
                             f"({', '.join(p.name for p in user_params)}) of {graph.entry}(), "
                             f"got {type(inputs).__name__}")
    if len(inputs) != n_user:
        raise ModelTuneError(f"wb.tune: {graph.entry}() takes {n_user} input(s) "
                             f"({', '.join(p.name for p in user_params)}) but inputs has {len(inputs)}")
    for p, a in zip(user_params, inputs):
        if not isinstance(a, np.ndarray):
            raise ModelTuneError(f"wb.tune: input {p.name} must be a numpy array, got {type(a).__name__}")
    return tuple(inputs) + graph.extra_args


def _dims(param) -> tuple:
    shape = getattr(param.type, "shape", None)
    return tuple(shape) if shape is not None else ()


def _random_arg(param) -> np.ndarray:
    from ..ir.expr import as_int
    from .inputs import random_array

    return random_array(tuple(as_int(d) for d in _dims(param)), param.type.dtype, np.random.default_rng(0))


def example_sizes(fn, args: Sequence) -> dict[str, int]:
    """``{size name: value}`` of the graph function's symbolic sizes, from the arrays of a call."""
    sizes: dict[str, int] = {}
    for p, a in zip(fn.params, args):
        dims = _dims(p)
        shape = np.shape(a)
        if len(dims) != len(shape):
            continue   # the VM's argument check names this mismatch when the model runs
        for d, n in zip(dims, shape):
            if isinstance(d, Var):
                sizes.setdefault(d.name, int(n))
    return sizes


def model_kernels(mod: IRModule) -> IRModule:
    """``mod`` legalized and fused as the model's compiler makes it, before ``DefaultSchedule``."""
    from .. import transform

    return transform.Sequential([transform.LegalizeOps(), transform.FuseOps(), transform.FuseTIR()])(mod)


def kernel_tasks(kernels: IRModule, profile_df) -> list[KernelTask]:
    """One task per distinct workload among the kernels the model calls (kernels already marked
    ``tuned``/``scheduled`` are left alone), with their share of the profiled time, largest first."""
    from ..transform.default_schedule import DONE_ATTRS

    share = dict(zip(profile_df["kernel"], profile_df["share"]))
    calls = dict(zip(profile_df["kernel"], profile_df["calls"]))
    tasks: dict[str, KernelTask] = {}
    for name, func in kernels.prim_funcs.items():
        if name not in share or any(func.attrs.get(a) for a in DONE_ATTRS):
            continue
        key = program_key(func)
        t = tasks.get(key)
        if t is None:
            tasks[key] = KernelTask(name, (name,), func, float(share[name]), int(calls[name]))
        else:
            t.names += (name,)
            t.share += float(share[name])
            t.calls += int(calls[name])
    return sorted(tasks.values(), key=lambda t: -t.share)


def share_budget(tasks: list[KernelTask], trials: int | None, time_budget: float | None,
                 min_share: float = MIN_SHARE, min_trials: int = MIN_TRIALS) -> None:
    """Set each task's ``trials`` and ``time_budget`` (see the module docstring for the rule)."""
    chosen = [t for t in tasks if t.share >= min_share]
    chosen.sort(key=lambda t: -t.share)
    if trials is not None:
        while chosen and min_trials * len(chosen) > trials:
            chosen.pop()   # the smallest share
    for t in tasks:
        t.trials, t.time_budget = 0, None
    if not chosen:
        return
    total_share = sum(t.share for t in chosen)
    if trials is not None:
        rest = trials - min_trials * len(chosen)
        exact = [rest * t.share / total_share for t in chosen]
        given = [int(x) for x in exact]
        order = sorted(range(len(chosen)), key=lambda k: -(exact[k] - given[k]))
        for k in order[:rest - sum(given)]:
            given[k] += 1
        for t, g in zip(chosen, given):
            t.trials = min_trials + g
    if time_budget is not None:
        for t in chosen:
            t.time_budget = time_budget * t.share / total_share


def default_candidate(func: PrimFunc, target: str) -> Candidate | None:
    """The default schedule (``DefaultSchedule``'s) of ``func`` as a candidate whose trace replays to it;
    None when it cannot be had as a trace."""
    from ..backend.target import Target
    from ..schedule.errors import ScheduleError
    from ..schedule.state import Schedule
    from ..transform import default_schedule as ds

    plan = ds._Plan(Target(target))
    for _ in range(4):
        sch = Schedule(func)
        ds._schedule(sch, plan)
        scalar = ds._loops_kept_scalar(sch.func) - plan.no_vectorize
        if not scalar:
            break
        plan.no_vectorize |= scalar
        plan.done.clear()
    else:
        return None   # the default falls back to unvectorizing, which is no trace
    try:
        replayed = sch.trace.apply(func)
    except (ScheduleError, ValueError):
        return None
    if program_key(replayed.func) != program_key(sch.func):
        return None
    return Candidate(sch.trace, sch.func, {"choices": {}, "applied": ["default_schedule"]})


def _size_names(func: PrimFunc) -> set[str]:
    from ._program import _size_vars

    return {v.name for v in _size_vars(func)}


def _check_model_limits(trials, time_budget, min_share, min_trials) -> None:
    from .tune import _check_limits

    _check_limits(trials, time_budget)
    if isinstance(min_share, bool) or not isinstance(min_share, (int, float)) or not 0 <= min_share < 1:
        raise ValueError(f"wb.tune: min_share must be a fraction of the model's time in [0, 1), got {min_share!r}")
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 1:
        raise ValueError(f"wb.tune: min_trials must be a positive number of trials, got {min_trials!r}")


def kernel_sizes(tasks: list[KernelTask], sizes: Mapping[str, int]) -> dict[str, dict]:
    """Kernel name -> the example sizes of its own symbolic sizes (what its candidates are measured at)."""
    return {t.name: {k: v for k, v in sizes.items() if k in _size_names(t.func)} for t in tasks}


__all__ = ["tune_model", "ModelTuneResult", "ModelTuneError", "KernelTask", "share_budget", "kernel_tasks",
           "model_kernels", "example_sizes", "default_candidate"]
