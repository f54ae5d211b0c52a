"""Random-schedule fuzzer: random primitive sequences on small programs, checked against numpy.

Run: .venv/bin/python benchmarks/fuzz_schedules.py --sequences 500 --seed 1 --workers 2 --out fuzz-failures.jsonl

Each sequence (seed ``S * 1_000_000 + k``) picks a program (the te operator corpus plus a few
programs of symbolic size and a few small ones aimed at particular primitives) and applies 1..8
random schedule primitives with random arguments (non-dividing and overshooting splits, caches,
compute_at at random loops, rfactor, layouts, tensorize with the teaching intrinsic, merge of
sibling nests, pad_einsum, decompose_padding of if_then_else blocks, sampled tiles used by a
split, ...). Every registered primitive except the look-ups is drawn (``PRIMITIVES`` comes from
the registry); one without its own generator gets arguments from its signature
(``SequenceGenerator.generic``). ``unsafe_set_dtype`` to a narrower dtype (float16, int32) changes
the values by design: such a sequence is checked for everything but the values. For each primitive:

* a ``ScheduleError`` is a refusal: the schedule must be exactly as before (``sch.func is before``,
  same history and trace length) and the sequence goes on;
* any other exception is a bug (``primitive-crash``).

The final program (when something applied) is checked: the printed trace replays to the same
program, the reference interpreter (bounds-checked) and LLVM builds (with and without
``checks=True``) match the numpy reference on random inputs, for several values of each
symbolic size. Everything runs in worker processes with a time limit, so a segfault or a hang
is a reported failure (``process-crash``, ``timeout``), not the end of the run.

Failures go to a JSON-lines file; ``--minimize`` shrinks the first failure of each kind to the
shortest trace that still fails the same way, and ``--replay-file F --index K`` re-runs one.
"""
from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import os
import random
import re
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait

import numpy as np

# every primitive's result is checked for well-formedness (read when workbench is first imported): an ill-formed
# intermediate program is a bug even when the final program computes the right values
os.environ.setdefault("WORKBENCH_VERIFY", "1")

import workbench as wb  # noqa: E402
from workbench import te
from workbench.ir import op_library

#: weights of the primitives drawn; a registered primitive not listed here gets DEFAULT_WEIGHT
PRIMITIVE_WEIGHTS = {
    "split": 3, "fuse": 2, "reorder": 2, "add_unit_loop": 1,
    "parallel": 1, "vectorize": 1, "unroll": 1, "bind": 0.5, "annotate": 0.5, "unannotate": 0.3,
    "compute_at": 2.5, "reverse_compute_at": 2.5, "compute_inline": 1.5, "reverse_compute_inline": 1.5,
    "cache_read": 2, "cache_write": 2, "cache_inplace": 1, "set_scope": 1, "storage_align": 1,
    "transform_layout": 1.5, "decompose_reduction": 1.5, "rfactor": 2, "blockize": 1, "tensorize": 1,
    "merge": 1.5, "loop_partition": 1.5, "reorder_block_iter_var": 1, "transform_block_layout": 1.5,
    "reindex": 1, "reindex_cache_read": 1, "reindex_cache_write": 1, "cache_index": 1, "unsafe_set_dtype": 1,
    "pad_einsum": 1.5, "decompose_padding": 1.5, "can_decompose_padding": 0.5, "read_at": 1, "write_at": 1,
    "rolling_buffer": 1, "annotate_buffer_access": 1, "sample_perfect_tile": 1.5, "sample_partitioned_tile": 1,
    "sample_categorical": 0.7, "sample_compute_location": 1,
}
DEFAULT_WEIGHT = 1.0
#: registered families that only look things up (used by the generators, never drawn)
LOOKUP_FAMILIES = ("lookup",)


def registered_primitives() -> tuple[str, ...]:
    """Every registered schedule primitive except look-ups, from the registry (new ones are drawn too)."""
    from workbench.schedule.primitive import load_all

    return tuple(sorted(n for n, spec in load_all().items() if spec.family not in LOOKUP_FAMILIES))


PRIMITIVES = registered_primitives()
SCOPES = ("global", "shared", "local")
SIZES = (1, 7, 16, 29)            # values of a symbolic size (non-multiples included)
WRONG_KINDS = ("interp-oob", "interp-wrong", "interp-error", "llvm-oob", "llvm-wrong", "input-clobbered")
VALUE_KINDS = ("interp-wrong", "llvm-wrong")     # not checked after an unsafe dtype change
INF_CAST_ERRORS = ("InterpreterError: cannot cast inf ", "InterpreterError: cannot cast -inf ")  # nor these
SAFE_DTYPES = ("float64", "float32")             # unsafe_set_dtype to these keeps float32 results in tolerance
CRASH_KINDS = ("primitive-crash", "refusal-changed-state", "trace-replay", "build-error", "llvm-error",
               "process-crash", "timeout")


# programs ------------------------------------------------------------------------------------

@dataclass
class Program:
    """A program to fuzz: ``make(rng, size)`` gives ``(inputs, outputs, expected)`` in numpy."""

    name: str
    func: object
    make: Callable
    sizes: tuple = (None,)
    rtol: float = 1e-4
    atol: float = 1e-4


def _sym_ewise2():
    n = te.var("n")
    A = te.placeholder((n, 6), name="A")
    B = te.compute((n, 6), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((n, 6), lambda i, j: B[i, j] + 1.0, name="C")
    return wb.create_prim_func([A, C]), lambda r, s: [_randn(r, s, 6)], lambda a: a * 2 + 1


def _sym_sum():
    n = te.var("n")
    x = te.placeholder((6, n), name="x")
    k = te.reduce_axis(n, name="k")
    y = te.compute((6,), lambda i: te.sum(x[i, k], axis=k), name="y")
    return wb.create_prim_func([x, y]), lambda r, s: [_randn(r, 6, s)], lambda a: a.sum(axis=1)


def _sym_matmul_relu():
    n = te.var("n")
    A, B = te.placeholder((n, n), name="A"), te.placeholder((n, 8), name="B")
    k = te.reduce_axis(n, name="k")
    Y = te.compute((n, 8), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="Y")
    C = te.compute((n, 8), lambda i, j: te.max(Y[i, j], 0.0), name="C")
    return (wb.create_prim_func([A, B, C]), lambda r, s: [_randn(r, s, s), _randn(r, s, 8)],
            lambda a, b: np.maximum(a @ b, 0))


def _matmul16_relu():
    A, B = te.placeholder((16, 16), name="A"), te.placeholder((16, 16), name="B")
    k = te.reduce_axis(16, name="k")
    Y = te.compute((16, 16), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="Y")
    C = te.compute((16, 16), lambda i, j: te.max(Y[i, j], 0.0), name="C")
    return (wb.create_prim_func([A, B, C]), lambda r, s: [_randn(r, 16, 16), _randn(r, 16, 16)],
            lambda a, b: np.maximum(a @ b, 0))


def _two_branches():
    """Two independent nests of equal extents feeding a third (for merge, unsafe_set_dtype)."""
    A = te.placeholder((6, 8), name="A")
    B = te.compute((6, 8), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((6, 8), lambda i, j: A[i, j] + 1.0, name="C")
    D = te.compute((6, 8), lambda i, j: B[i, j] * C[i, j], name="D")
    return wb.create_prim_func([A, D]), lambda r, s: [_randn(r, 6, 8)], lambda a: (a * 2) * (a + 1)


def _blur1d():
    """A producer read through a sliding window of 3 (for rolling_buffer, compute_at)."""
    A = te.placeholder((20,), name="A")
    B = te.compute((20,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((18,), lambda i: B[i] + B[i + 1] + B[i + 2], name="C")
    return (wb.create_prim_func([A, C]), lambda r, s: [_randn(r, 20)],
            lambda a: 2 * (a[:-2] + a[1:-1] + a[2:]))


def _gather_index():
    """Loads at integer index computations of the iteration variables (for cache_index)."""
    A = te.placeholder((8, 3), name="A")
    B = te.compute((8, 8), lambda i, j: A[i // 2 + j // 4, j % 3] + A[i // 2 + j // 4, (i + j) % 3], name="B")
    ii, jj = np.indices((8, 8))
    return (wb.create_prim_func([A, B]), lambda r, s: [_randn(r, 8, 3)],
            lambda a: a[ii // 2 + jj // 4, jj % 3] + a[ii // 2 + jj // 4, (ii + jj) % 3])


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


def _own_program(name, factory, symbolic) -> Program:
    func, inputs_fn, ref = factory()

    def make(rng, size):
        ins = [np.ascontiguousarray(a) for a in inputs_fn(rng, size)]
        exp = np.asarray(ref(*ins), dtype="float32")
        return ins, [np.full(exp.shape, np.nan, "float32")], [exp]

    return Program(name, func.with_attr("global_symbol", name), make, SIZES if symbolic else (None,))


def _corpus_program(case) -> Program:
    rtol, atol = max(case.rtol, 1e-4), max(case.atol, 1e-4)
    if case.symbolic:
        factory = op_library.OPS[case.name]
        return Program(case.name, case.func, lambda rng, size: factory(rows=size).make_arrays(rng), SIZES,
                       rtol, atol)
    return Program(case.name, case.func, lambda rng, size: case.make_arrays(rng), (None,), rtol, atol)


_PROGRAMS: dict[str, Program] = {}


def programs() -> dict[str, Program]:
    """Every program the fuzzer draws from, by name (built once per process)."""
    if not _PROGRAMS:
        for case in op_library.corpus():
            _PROGRAMS[case.name] = _corpus_program(case)
        for name, factory, symbolic in (("sym_ewise2", _sym_ewise2, True), ("sym_sum", _sym_sum, True),
                                        ("sym_matmul_relu", _sym_matmul_relu, True),
                                        ("matmul16_relu", _matmul16_relu, False),
                                        ("two_branches", _two_branches, False), ("blur1d", _blur1d, False),
                                        ("gather_index", _gather_index, False)):
            _PROGRAMS[name] = _own_program(name, factory, symbolic)
    return _PROGRAMS


def program(name: str) -> Program:
    return programs()[name]


# applying primitives: refusals, crashes, layouts of parameters --------------------------------

class Refused(Exception):
    """A primitive raised a ScheduleError (and left the schedule unchanged)."""


class Failure(Exception):
    """A bug found: ``kind`` (see WRONG_KINDS / CRASH_KINDS), a message, where."""

    def __init__(self, kind: str, message: str, primitive: str = "", where: str = "", tb: str = ""):
        super().__init__(message)
        self.kind, self.message, self.primitive, self.where, self.tb = kind, message, primitive, where, tb

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "primitive": self.primitive, "where": self.where,
                    "traceback": self.tb}


def _deepest_workbench_frame(err: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "/workbench/" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename.split('/workbench/', 1)[1]}:{f.lineno} ({f.name})"


def _short_tb(err: BaseException, limit: int = 8) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-limit))


class Recorder:
    """Wraps a Schedule: primitives raise ``Refused`` / ``Failure``; layout changes of parameters are kept."""

    def __init__(self, sch):
        self.sch = sch
        self.layouts: dict[int, list] = {}   # parameter position -> index maps applied, in order
        self.applied: Counter = Counter()
        self.refused: Counter = Counter()
        self.last_call = None                # (name, args, kwargs) of the latest primitive call
        self.unsafe = False                  # values may change (unsafe_set_dtype to a narrower dtype)

    def __getattr__(self, name):
        method = getattr(self.sch, name)
        if name not in PRIMITIVES:
            return method
        return lambda *args, **kwargs: self.call(name, method, args, kwargs)

    def call(self, name, method, args, kwargs):
        sch = self.sch
        self.last_call = (name, args, kwargs)
        before, n_hist, n_trace = sch.func, len(sch.history), len(sch.trace)
        param = self._layout_param(args, kwargs) if name == "transform_layout" else None
        try:
            out = method(*args, **kwargs)
        except wb.ScheduleError as err:
            if sch.func is not before or len(sch.history) != n_hist or len(sch.trace) != n_trace:
                raise Failure("refusal-changed-state", f"{name} raised {type(err).__name__} but changed the "
                              f"schedule: {err.message}", name, _deepest_workbench_frame(err)) from err
            self.refused[name] += 1
            raise Refused(f"{name}: {err.message}") from err
        except Exception as err:  # the fuzzer's purpose: any other exception is a reported bug
            raise Failure("primitive-crash", f"{type(err).__name__}: {err}", name,
                          _deepest_workbench_frame(err), _short_tb(err)) from err
        self.applied[name] += 1
        if name == "unsafe_set_dtype" and kwargs.get("dtype", args[2] if len(args) > 2 else None) not in SAFE_DTYPES:
            self.unsafe = True
        if param is not None:
            index_map = kwargs.get("index_map", args[2] if len(args) > 2 else None)
            self.layouts.setdefault(param, []).append(index_map)
        return out

    def _layout_param(self, args, kwargs):
        """The parameter position of the buffer a transform_layout call names (None: not a parameter)."""
        block = args[0] if args else kwargs["block"]
        spec = args[1] if len(args) > 1 else kwargs["buffer"]
        try:
            blk = self.sch.get(block)
            kind, idx = spec
            buf = (blk.reads if kind == "read" else blk.writes)[idx].buffer
        except (wb.ScheduleError, IndexError, TypeError, ValueError, KeyError):
            return None  # the primitive itself will refuse the request
        bufs = [self.sch.func.buffer_map.get(p) for p in self.sch.func.params]
        return next((k for k, b in enumerate(bufs) if b is buf), None)


# the random sequence generator ----------------------------------------------------------------

def _static(extent):
    return getattr(extent, "value", None)


def _divisor_chain(rng, extent: int, k: int) -> list:
    factors, rest = [], extent
    for _ in range(k - 1):
        divs = [d for d in range(1, rest + 1) if rest % d == 0]
        d = rng.choice(divs)
        factors.append(d)
        rest //= d
    factors.append(rest)
    rng.shuffle(factors)
    return factors


def split_factors(rng: random.Random, extent) -> list:
    """Factors for splitting a loop of ``extent`` (int, or None when symbolic): None-inferred,
    exact, non-dividing / overshooting, and (rarely) invalid ones."""
    k = rng.choice((2, 2, 2, 3))
    small = [1, 2, 3, 4, 5, 7, 8, 16]
    mode = rng.random()
    if mode < 0.45 or (extent is None and mode < 0.85):
        fs = [rng.choice(small) for _ in range(k)]
        fs[rng.randrange(k)] = None
        return fs
    if mode < 0.7 and extent is not None:
        return _divisor_chain(rng, extent, k)
    if mode < 0.96:
        extra = [] if extent is None else [extent, extent + 1, extent + 3]
        return [rng.choice(small + extra) for _ in range(k)]
    fs = [rng.choice(small) for _ in range(k)]
    fs[rng.randrange(k)] = rng.choice((0, -1, 2.5))
    return fs


def index_map_text(rng: random.Random, shape: tuple) -> str:
    """A random index map (as lambda source) for a buffer of ``shape`` (ints, or None where symbolic)."""
    d = len(shape)
    names = [f"i{k}" for k in range(d)]
    outs = list(names)
    kinds = ["split", "shift"] + (["permute", "fuse"] if d >= 2 else []) + ["reverse"]
    kind = rng.choice(kinds) if d else "none"
    a = rng.randrange(d) if d else 0
    if kind == "permute":
        rng.shuffle(outs)
    elif kind == "split":
        f = rng.choice((2, 3, 4, 5, 8))
        outs[a:a + 1] = [f"{names[a]} // {f}"]
        outs.insert(rng.randrange(a + 1, d + 1), f"{names[a]} % {f}")
    elif kind == "fuse" and a + 1 < d and shape[a + 1] is not None:
        outs[a:a + 2] = [f"{names[a]} * {shape[a + 1]} + {names[a + 1]}"]
    elif kind == "reverse" and shape[a] is not None:
        outs[a] = f"{shape[a] - 1} - {names[a]}"
    elif kind == "shift":
        outs[a] = f"{names[a]} + 1"
    body = ", ".join(outs) + ("," if len(outs) == 1 else "")
    return f"lambda {', '.join(names)}: ({body})"


def make_index_map(text: str):
    from workbench.schedule.trace import IndexMapText

    return IndexMapText(eval(text, {}), text)  # our own generated lambda text


class SequenceGenerator:
    """Draws random primitives with random arguments for the schedule behind ``rec``."""

    def __init__(self, rec: Recorder, rng: random.Random):
        self.rec, self.rng = rec, rng

    @property
    def sch(self):
        return self.rec.sch

    # picking things ----------------------------------------------------------------------------
    def block_names(self) -> list[str]:
        return [n for n in self.sch.index().order if n != "root"]

    def block(self):
        names = self.block_names()
        return self.sch.get_block(self.rng.choice(names)) if names else None

    def loops_of_random_block(self):
        b = self.block()
        return (b, self.sch.get_loops(b)) if b is not None else (None, [])

    def loop(self):
        for _ in range(3):
            _, loops = self.loops_of_random_block()
            if loops:
                return self.rng.choice(loops)
        return None

    def reduction_block(self):
        names = [n for n in self.block_names()
                 if any(iv.iter_type == "reduce" for iv in self.sch.index().block(n).iter_vars)]
        if names and self.rng.random() < 0.85:
            return self.sch.get_block(self.rng.choice(names))
        return self.block()

    def scope(self) -> str:
        return self.rng.choice(SCOPES) if self.rng.random() > 0.03 else "texture"

    def index(self, n: int) -> int:
        return self.rng.randrange(n) if n and self.rng.random() > 0.04 else n

    # one step ----------------------------------------------------------------------------------
    def step(self, name: str) -> None:
        """Draw arguments and call primitive ``name`` (Refused / Failure propagate); a primitive
        without its own generator gets arguments drawn from its signature."""
        specific = getattr(self, f"_{name}", None)
        if specific is not None:
            specific()
        else:
            self.generic(name)

    def _split(self):
        loop = self.loop()
        if loop is not None:
            self.rec.split(loop, factors=split_factors(self.rng, _static(self.sch.get(loop).extent)))

    def _fuse(self):
        _, loops = self.loops_of_random_block()
        if len(loops) < 2:
            return
        if self.rng.random() < 0.85:
            k = self.rng.choice([2, 2, 3]) if len(loops) >= 3 else 2
            a = self.rng.randrange(len(loops) - k + 1)
            self.rec.fuse(*loops[a:a + k])
        else:
            self.rec.fuse(*self.rng.sample(loops, 2))

    def _reorder(self):
        _, loops = self.loops_of_random_block()
        if len(loops) < 2:
            return
        chosen = self.rng.sample(loops, self.rng.randint(2, len(loops)))
        self.rec.reorder(*chosen)

    def _add_unit_loop(self):
        target = self.loop() if self.rng.random() < 0.3 else self.block()
        if target is not None:
            self.rec.add_unit_loop(target)

    def _annotation_target(self):
        return self.loop() if self.rng.random() < 0.7 else self.block()

    def _parallel(self):
        loop = self.loop()
        if loop is not None:
            self.rec.parallel(loop)

    def _vectorize(self):
        loop = self.loop()
        if loop is not None:
            self.rec.vectorize(loop)

    def _unroll(self):
        loop = self.loop()
        if loop is not None:
            self.rec.unroll(loop)

    def _bind(self):
        loop = self.loop()
        if loop is not None:
            self.rec.bind(loop, self.rng.choice(("blockIdx.x", "threadIdx.x", "threadIdx.y", "vthread.x")))

    _ANN_KEYS = ("pragma_unroll_explicit", "pragma_auto_unroll_max_step", "fuzz_note", "software_pipeline_stage")

    def _annotate(self):
        target = self._annotation_target()
        if target is not None:
            self.rec.annotate(target, self.rng.choice(self._ANN_KEYS), self.rng.choice((0, 1, 16, "x", True)))

    def _unannotate(self):
        """Mostly a key that the target has (annotating it first when nothing is annotated yet)."""
        target = self._annotation_target()
        if target is None:
            return
        keys = sorted(getattr(self.sch.get(target), "annotations", None) or {})
        if not keys and self.rng.random() < 0.7:
            self._annotate_with(target)
            keys = sorted(getattr(self.sch.get(target), "annotations", None) or {})
        if keys and self.rng.random() < 0.85:
            self.rec.unannotate(target, self.rng.choice(keys))
        else:
            self.rec.unannotate(target, self.rng.choice(self._ANN_KEYS))

    def _annotate_with(self, target):
        try:
            self.rec.annotate(target, self.rng.choice(self._ANN_KEYS), self.rng.choice((0, 1, 16, "x", True)))
        except Refused:
            pass

    def _compute_location(self, name):
        b = self.block()
        loop = self.loop()
        if b is not None and loop is not None:
            getattr(self.rec, name)(b, loop, preserve_unit_loops=self.rng.random() < 0.3)

    def _compute_at(self):
        self._compute_location("compute_at")

    def _reverse_compute_at(self):
        self._compute_location("reverse_compute_at")

    def _compute_inline(self):
        b = self.block()
        if b is not None:
            self.rec.compute_inline(b)

    def _reverse_compute_inline(self):
        b = self.block()
        if b is not None:
            self.rec.reverse_compute_inline(b)

    def _cache_read(self):
        b = self.block()
        if b is None:
            return
        n_reads = len(self.sch.get(b).reads)
        kwargs = {"consumer_blocks": [b]} if self.rng.random() < 0.2 else {}
        self.rec.cache_read(b, self.index(n_reads), self.scope(), **kwargs)

    def _cache_write(self):
        b = self.block()
        if b is not None:
            self.rec.cache_write(b, self.index(len(self.sch.get(b).writes)), self.scope())

    def _cache_inplace(self):
        """Mostly a read of a buffer that the block also writes (what cache_inplace needs)."""
        b = self.reduction_block() if self.rng.random() < 0.85 else self.block()
        if b is None:
            return
        both = self._read_and_written(b)
        if not both and self.rng.random() < 0.6:    # a reduction reads its output once decomposed
            loops = self.sch.get_loops(b)
            if loops and any(iv.iter_type == "reduce" for iv in self.sch.get(b).iter_vars):
                try:
                    self.rec.decompose_reduction(b, self.rng.choice(loops))
                except Refused:
                    pass
                both = self._read_and_written(b)
        blk = self.sch.get(b)
        if both and self.rng.random() < 0.85:
            self.rec.cache_inplace(b, self.rng.choice(both), self.scope())
        else:
            self.rec.cache_inplace(b, self.index(len(blk.reads)), self.scope())

    def _read_and_written(self, b) -> list[int]:
        blk = self.sch.get(b)
        written = {id(w.buffer) for w in blk.writes}
        return [k for k, r in enumerate(blk.reads) if id(r.buffer) in written]

    def _set_scope(self):
        b = self.block()
        if b is not None:
            self.rec.set_scope(b, self.index(len(self.sch.get(b).writes)), self.scope())

    def _storage_align(self):
        b = self.block()
        if b is None:
            return
        writes = self.sch.get(b).writes
        ndim = len(writes[0].buffer.shape) if writes else 1
        axis = self.rng.randrange(ndim) if self.rng.random() > 0.05 else ndim
        self.rec.storage_align(b, self.index(len(writes)), axis, self.rng.choice((1, 2, 4, 8, 16, 32, 0)),
                               self.rng.choice((0, 1, 3)))

    def _transform_layout(self):
        b = self.block()
        if b is None:
            return
        blk = self.sch.get(b)
        kind = "read" if (blk.reads and self.rng.random() < 0.5) or not blk.writes else "write"
        regions = blk.reads if kind == "read" else blk.writes
        if not regions:
            return
        idx = self.rng.randrange(len(regions))
        shape = tuple(_static(e) for e in regions[idx].buffer.shape)
        text = index_map_text(self.rng, shape)
        kwargs = {"pad_value": 0.0} if self.rng.random() < 0.3 else {}
        self.rec.transform_layout(b, (kind, idx), make_index_map(text), **kwargs)

    def _decompose_reduction(self):
        b = self.reduction_block()
        if b is None:
            return
        loops = self.sch.get_loops(b)
        if loops:
            self.rec.decompose_reduction(b, self.rng.choice(loops))

    def _rfactor(self):
        b = self.reduction_block()
        if b is None:
            return
        loops = self.sch.get_loops(b)
        if not loops:
            return
        writes = self.sch.get(b).writes
        ndim = len(writes[0].buffer.shape) if writes else 0
        axis = self.rng.randint(0, ndim) if self.rng.random() > 0.05 else ndim + 2
        self.rec.rfactor(self.rng.choice(loops), axis)

    def _blockize(self):
        names = self.block_names()
        if self.rng.random() < 0.8 or len(names) < 2:
            loop = self.loop()
            if loop is not None:
                self.rec.blockize(loop, preserve_unit_iters=self.rng.random() < 0.7)
            return
        a = self.rng.randrange(len(names) - 1)
        self.rec.blockize([self.sch.get_block(names[a]), self.sch.get_block(names[a + 1])])

    def _tensorize(self):
        r = self.rng.random()
        if r < 0.35:
            self._tensorize_recipe()
            return
        if r < 0.6:
            self._tensorize_fma_recipe()
            return
        target = self.loop() if self.rng.random() < 0.7 else self.block()
        if target is not None:
            self.rec.tensorize(target, self.rng.choice(("matmul_add_4x4", "matmul_add_4x4", "fma_f32x8_avx2")))

    def _maybe_pad(self, b, multiples: list) -> None:
        """Sometimes pad_einsum first (as TVM's flows do before tensorize), so odd sizes can tile."""
        if self.rng.random() < 0.5:
            try:
                self.rec.pad_einsum(b, multiples)
            except Refused:
                pass

    def _tensorize_recipe(self):
        """Tile the last three loops of a reduction block by 4 and tensorize with ``matmul_add_4x4``;
        each call may be refused (the next ones then usually are too)."""
        b = self.reduction_block()
        if b is None:
            return
        self._maybe_pad(b, [4] * len(self.sch.get(b).iter_vars))
        loops = self.sch.get_loops(b)
        if len(loops) < 3:
            return
        outer, inner = [], []
        for loop in loops[-3:]:
            try:
                o, i = self.rec.split(loop, factors=[None, 4])
            except Refused:
                return
            outer.append(o)
            inner.append(i)
        self._try_in_turn(lambda: self.rec.reorder(*outer, *inner),
                          lambda: self.rec.decompose_reduction(b, outer[-1]),
                          lambda: self.rec.tensorize(inner[0], "matmul_add_4x4"))

    def _tensorize_fma_recipe(self):
        """``C[i, j] += A[i, k] * B[k, j]`` with j innermost, split by 8, under k: tensorize the 8 lanes with
        ``fma_f32x8_avx2`` (after decomposing the reduction above k)."""
        b = self.reduction_block()
        if b is None:
            return
        self._maybe_pad(b, [1] * (len(self.sch.get(b).iter_vars) - 2) + [8, 1])
        loops = self.sch.get_loops(b)
        if len(loops) < 2:
            return
        j, k = loops[-2], loops[-1]
        try:
            jo, ji = self.rec.split(j, factors=[None, 8])
        except Refused:
            return
        self._try_in_turn(lambda: self.rec.reorder(jo, k, ji),
                          lambda: self.rec.decompose_reduction(b, self.rng.choice((jo, k))),
                          lambda: self.rec.tensorize(ji, "fma_f32x8_avx2"))

    def _try_in_turn(self, *calls) -> None:
        """Each call in order; after a refusal, stop half of the time."""
        for call in calls:
            try:
                call()
            except Refused:
                if self.rng.random() < 0.5:
                    return


    # primitives registered after the fuzzer was written ------------------------------------------
    def _merge(self):
        """Mostly sibling nests with equal extents (what merge can accept), sometimes any two loops."""
        pairs = self._mergeable_pairs()
        if pairs and self.rng.random() < 0.85:
            self.rec.merge(*self.rng.choice(pairs))
            return
        if self.rng.random() > 0.2:
            return
        a, b = self.loop(), self.loop()
        if a is not None and b is not None:
            self.rec.merge(a, b)

    def _mergeable_pairs(self) -> list:
        """``(loop_a, loop_b)`` at the same depth of two blocks' nests with equal extents down to it."""
        nests = []
        for name in self.block_names():
            b = self.sch.get_block(name)
            loops = self.sch.get_loops(b)
            nests.append((loops, [_static(self.sch.get(l).extent) for l in loops]))
        pairs = []
        for x, (la, ea) in enumerate(nests):
            for lb, eb in nests[x + 1:]:
                if not la or not lb or self.sch.get(la[0]) is self.sch.get(lb[0]):
                    continue  # the same nest
                depth = 0
                while depth < min(len(ea), len(eb)) and ea[depth] == eb[depth] and ea[depth] is not None:
                    pairs.append((la[depth], lb[depth]))
                    depth += 1
        return pairs

    def _loop_partition(self):
        loop = self.loop()
        if loop is None:
            return
        extent = _static(self.sch.get(loop).extent) or 8
        k = self.rng.choice((1, 2, 2, 3))
        factors = [self.rng.randint(1, max(1, extent)) if self.rng.random() < 0.7 else self.rng.choice((1, 2, 3, 5))
                   for _ in range(k)]
        if self.rng.random() < 0.4:
            factors[self.rng.randrange(k)] = None
        elif self.rng.random() < 0.05:
            factors[self.rng.randrange(k)] = self.rng.choice((0, -1))
        self.rec.loop_partition(loop, factors, preserve_unit_iters=self.rng.random() < 0.7)

    def _reorder_block_iter_var(self):
        b = self.block()
        if b is None:
            return
        order = list(range(len(self.sch.get(b).iter_vars)))
        self.rng.shuffle(order)
        if self.rng.random() < 0.05:
            order = order[:-1] or [1]
        self.rec.reorder_block_iter_var(b, order)

    def _iter_extents(self, b) -> list:
        return [_static(iv.dom.extent) for iv in self.sch.get(b).iter_vars]

    def _transform_block_layout(self):
        b = self.block()
        if b is None:
            return
        extents = self._iter_extents(b)
        if self.rng.random() < 0.6 and None not in extents:
            text = bijective_map_text(self.rng, extents)
        else:
            text = index_map_text(self.rng, tuple(extents))
        self.rec.transform_block_layout(b, make_index_map(text))

    def _buffer_spec(self, b):
        blk = self.sch.get(b)
        kind = "read" if (blk.reads and self.rng.random() < 0.5) or not blk.writes else "write"
        regions = blk.reads if kind == "read" else blk.writes
        return (kind, self.index(len(regions))), regions

    def _reindex(self):
        b = self.block()
        if b is not None:
            self.rec.reindex(b, self._buffer_spec(b)[0])

    def _reindex_cache(self, kind: str):
        b = self.block()
        if b is None:
            return
        blk = self.sch.get(b)
        regions = blk.reads if kind == "read" else blk.writes
        idx = self.index(len(regions))
        n_iters = len(blk.iter_vars)
        used = list(range(n_iters))
        if idx < len(regions) and self.rng.random() < 0.85:
            used = accessed_iter_positions(blk, regions[idx])
        text = permuted_map_text(self.rng, n_iters, used, self._iter_extents(b))
        getattr(self.rec, f"reindex_cache_{kind}")(b, idx, self.scope(), make_index_map(text))

    def _reindex_cache_read(self):
        self._reindex_cache("read")

    def _reindex_cache_write(self):
        self._reindex_cache("write")

    def _cache_index(self):
        b = self.block()
        if b is not None:
            self.rec.cache_index(b, self.rng.choice(("global", "global", "shared", "local")),
                                 cse_thresh=self.rng.choice((0, 0, 1, 2)))

    def intermediate_block(self):
        """Mostly a block that writes a buffer other than a parameter (else any block)."""
        params = {id(b) for b in self.sch.func.buffer_map.values()}
        names = [n for n in self.block_names()
                 if any(id(r.buffer) not in params for r in self.sch.index().block(n).writes)]
        if names and self.rng.random() < 0.85:
            return self.sch.get_block(self.rng.choice(names))
        return self.block()

    def _unsafe_set_dtype(self):
        """Mostly float32 -> float64 (results must stay within tolerance); sometimes a narrowing dtype,
        which makes the sequence's values unchecked (``Recorder.unsafe``)."""
        b = self.intermediate_block()
        if b is None:
            return
        writes = self.sch.get(b).writes
        idx = self.index(len(writes))
        dtype = "float64" if self.rng.random() < 0.8 else self.rng.choice(("float16", "int32", "float32"))
        self.rec.unsafe_set_dtype(b, idx, dtype)

    def _pad_einsum(self):
        b = self.reduction_block() if self.rng.random() < 0.7 else self.block()
        if b is None:
            return
        n = len(self.sch.get(b).iter_vars)
        padding = [self.rng.choice((1, 1, 2, 4, 8, 16)) for _ in range(n)]
        if self.rng.random() < 0.05:
            padding = padding[:-1] or [0]
        self.rec.pad_einsum(b, padding)

    def padding_block(self):
        names = [n for n in self.block_names()
                 if "if_then_else" in str(self.sch.index().block(n).body)]
        if names and self.rng.random() < 0.9:
            return self.sch.get_block(self.rng.choice(names))
        return self.block() if self.rng.random() < 0.2 else None

    def _padding_args(self):
        b = self.padding_block()
        if b is None:
            return None
        loops = self.sch.get_loops(b)
        loop = self.rng.choice(loops) if loops and self.rng.random() < 0.9 else self.loop()
        return (b, loop) if loop is not None else None

    def _decompose_padding(self):
        args = self._padding_args()
        if args is not None:
            self.rec.decompose_padding(*args)

    def _can_decompose_padding(self):
        """The query, then (when it says yes) decompose_padding must apply."""
        args = self._padding_args()
        if args is None:
            return
        if self.rec.can_decompose_padding(*args):
            self.rec.decompose_padding(*args)

    def _data_movement(self, name: str, kind: str):
        b, loops = self.loops_of_random_block()
        if b is None:
            return
        loop = self.rng.choice(loops) if loops and self.rng.random() < 0.9 else self.loop()
        if loop is None:
            return
        blk = self.sch.get(b)
        regions = blk.reads if kind == "read" else blk.writes
        getattr(self.rec, name)(loop, b, self.index(len(regions)), self.scope())

    def _read_at(self):
        self._data_movement("read_at", "read")

    def _write_at(self):
        self._data_movement("write_at", "write")

    def _rolling_buffer(self):
        """Mostly a recipe: tile a consumer's loop, compute_at the producer there, then rolling_buffer."""
        b = self.intermediate_block()
        if b is None:
            return
        if self.rng.random() < 0.7:
            self._tile_consumer_and_compute_at(b)
        self.rec.rolling_buffer(b, self.index(len(self.sch.get(b).writes)))

    def _tile_consumer_and_compute_at(self, b) -> None:
        consumers = self.sch.get_consumers(b)
        if not consumers:
            return
        loops = self.sch.get_loops(self.rng.choice(consumers))
        if not loops:
            return
        loop = self.rng.choice(loops)
        try:
            outer = self.rec.split(loop, factors=[None, self.rng.choice((2, 3, 4))])[0]
            self.rec.compute_at(b, outer)
        except Refused:
            return

    def _annotate_buffer_access(self):
        b = self.block()
        if b is None:
            return
        (kind, idx), regions = self._buffer_spec(b)
        if idx >= len(regions):
            return
        shape = [_static(d) for d in regions[idx].buffer.shape]
        n_iters = len(self.sch.get(b).iter_vars)
        text = region_map_text(self.rng, n_iters, shape)
        self.rec.annotate_buffer_access(b, idx, kind, make_index_map(text))

    def _sample_perfect_tile(self):
        loop = self.loop()
        if loop is None:
            return
        kwargs = {"max_innermost_factor": self.rng.choice((2, 4, 16))} if self.rng.random() < 0.4 else {}
        factors = self.rec.sample_perfect_tile(loop, n=self.rng.choice((2, 2, 3)), **kwargs)
        if self.rng.random() < 0.9:
            self.rec.split(loop, factors=list(factors))

    def _sample_partitioned_tile(self):
        loop = self.loop()
        if loop is None:
            return
        n = self.rng.choice((2, 3))
        factors = self.rec.sample_partitioned_tile(loop, n=n, partition_pos=self.rng.randrange(n),
                                                   innerpart_factor=self.rng.choice((1, 2, 4)))
        if self.rng.random() < 0.9:
            self.rec.split(loop, factors=list(factors))

    def _sample_categorical(self):
        factor = self.rec.sample_categorical([1, 2, 4, 8], probs=[0.1, 0.3, 0.3, 0.3])
        loop = self.loop()
        if loop is not None and self.rng.random() < 0.9:
            self.rec.split(loop, factors=[None, factor])

    def _sample_compute_location(self):
        b = self.block()
        if b is None:
            return
        where = self.rec.sample_compute_location(b)
        if self.rng.random() < 0.9:
            self.rec.compute_at(b, where, preserve_unit_loops=self.rng.random() < 0.3)

    # any other registered primitive: arguments from its signature ------------------------------
    def generic(self, name: str) -> None:
        """Arguments by parameter name and annotation: handles from the current program, small ints,
        scopes, split-like factors; a parameter with a default is left out half of the time."""
        from workbench.schedule.primitive import PRIMITIVES as SPECS

        params = list(inspect.signature(SPECS[name].fn).parameters.values())[1:]
        b = self.block()
        args, kwargs = [], {}
        for p in params:
            if p.name == "decision" or (p.default is not p.empty and self.rng.random() < 0.5):
                continue
            value = self.generic_arg(p, b)
            if p.kind is p.VAR_POSITIONAL:
                args.extend(value)
            elif p.default is not p.empty or p.kind is p.KEYWORD_ONLY:
                kwargs[p.name] = value
            else:
                args.append(value)
        getattr(self.rec, name)(*args, **kwargs)

    def generic_arg(self, p, b):
        name, note = p.name, str(p.annotation)
        loops = self.sch.get_loops(b) if b is not None else []
        if p.kind is p.VAR_POSITIONAL:
            return loops[:2]
        if "loop" in name and "block" in name:
            return self.rng.choice(loops) if loops and self.rng.random() < 0.6 else b
        if "block" in name or "BlockRV" in note:
            return b
        if "loop" in name or "LoopRV" in note:
            return self.rng.choice(loops) if loops else self.loop()
        if "scope" in name:
            return self.scope()
        if name == "factors" or name == "padding":
            return split_factors(self.rng, None)
        if "dtype" in name:
            return self.rng.choice(("float32", "float64"))
        if "bool" in note:
            return self.rng.random() < 0.5
        if "int" in note or "index" in name or name in ("n", "axis"):
            return self.rng.randrange(4)
        if "Sequence" in note:
            return [self.rng.randint(1, 4) for _ in range(2)]
        return self.rng.choice(("x", 1))


def bijective_map_text(rng: random.Random, extents: list) -> str:
    """A lambda over ``len(extents)`` variables that is a bijection of the box (permute, fuse, exact split)."""
    d = len(extents)
    names = [f"v{k}" for k in range(d)]
    outs = list(names)
    kind = rng.choice(("permute", "fuse", "split")) if d else "none"
    a = rng.randrange(d) if d else 0
    if kind == "permute":
        rng.shuffle(outs)
    elif kind == "fuse" and a + 1 < d:
        outs[a:a + 2] = [f"{names[a]} * {extents[a + 1]} + {names[a + 1]}"]
    elif kind == "split":
        divisors = [f for f in range(2, extents[a] + 1) if extents[a] % f == 0] or [1]
        f = rng.choice(divisors)
        outs[a:a + 1] = [f"{names[a]} // {f}", f"{names[a]} % {f}"]
    body = ", ".join(outs) + ("," if len(outs) == 1 else "")
    return f"lambda {', '.join(names)}: ({body})"


def accessed_iter_positions(block, region) -> list[int]:
    """Positions of the block's iteration variables that a buffer region's indices use."""
    from workbench.ir.functor import collect_vars

    used = {id(v) for r in region.region for v in collect_vars(r.min)}
    return [k for k, iv in enumerate(block.iter_vars) if id(iv.var) in used]


def permuted_map_text(rng: random.Random, n_iters: int, used: list[int], extents: list) -> str:
    """A lambda over ``n_iters`` variables whose outputs are the ``used`` ones, permuted, one maybe split."""
    names = [f"v{k}" for k in range(n_iters)]
    outs = [names[k] for k in used]
    rng.shuffle(outs)
    if outs and rng.random() < 0.3:
        a = rng.randrange(len(outs))
        f = rng.choice((2, 4))
        outs[a:a + 1] = [f"{outs[a]} // {f}", f"{outs[a]} % {f}"]
    body = ", ".join(outs) + ("," if len(outs) == 1 else "")
    return f"lambda {', '.join(names)}: ({body})"


def region_map_text(rng: random.Random, n_iters: int, shape: list) -> str:
    """``gen_new_ranges`` for annotate_buffer_access: mostly the whole buffer, sometimes too small."""
    names = [f"v{k}" for k in range(n_iters)]
    dims = []
    for k, n in enumerate(shape):
        if n is None:
            dims.append(f"{names[k % n_iters]}" if names else "0")
        elif rng.random() < 0.85:
            dims.append(f"(0, {n})")
        else:
            dims.append(rng.choice((f"(0, {max(1, n - 1)})", "0", f"(1, {n + 1})")))
    body = ", ".join(dims) + ("," if len(dims) == 1 else "")
    return f"lambda {', '.join(names)}: ({body})"


# checking a final program -----------------------------------------------------------------------

def _size_env(func, arrays, extra: dict | None = None) -> dict:
    """Symbolic size vars of ``func``'s buffers -> ints, read off the arrays' shapes."""
    from workbench.ir.expr import Var

    env = dict(extra or {})
    for p, arr in zip(func.params, arrays):
        buf = func.buffer_map.get(p)
        if buf is None:
            continue
        for dim, n in zip(buf.shape, np.shape(arr)):
            if isinstance(dim, Var):
                env[dim] = int(n)
    return env


def _eval_shape(shape, env) -> tuple:
    from workbench.ir.arith.simplify import simplify
    from workbench.ir.functor import substitute

    out = []
    for dim in shape:
        value = _static(dim)
        if value is None:
            value = _static(simplify(substitute(dim, env)))
        if value is None:
            raise Failure("build-error", f"cannot evaluate the buffer dimension {dim} for sizes {env}")
        out.append(int(value))
    return tuple(out)


def _layout_index(maps, shape):
    """Where element ``idx`` of an array of ``shape`` lands after the index maps (tuple of index arrays)."""
    idx = tuple(np.indices(shape))
    for m in maps:
        out = m(*idx)
        out = out if isinstance(out, (tuple, list)) else (out,)
        idx = tuple(np.broadcast_to(np.asarray(x), shape) for x in out)
    return idx


def _fill_value(dtype):
    return np.nan if np.issubdtype(dtype, np.floating) else -12345


def _to_layouts(final, arrays, layouts, env):
    out = []
    for k, arr in enumerate(arrays):
        maps = layouts.get(k)
        if not maps:
            out.append(arr.copy())
            continue
        shape = _eval_shape(final.buffer_map[final.params[k]].shape, env)
        new = np.full(shape, _fill_value(arr.dtype), arr.dtype)
        new[_layout_index(maps, arr.shape)] = arr
        out.append(new)
    return out


def _from_layout(arr, maps, shape):
    return arr[_layout_index(maps, shape)] if maps else arr


def _compare(kind, prog, outs, expected, size) -> None:
    for k, (o, e) in enumerate(zip(outs, expected)):
        o, e = np.asarray(o), np.asarray(e)
        if o.shape != e.shape or not np.allclose(o, e, rtol=prog.rtol, atol=prog.atol, equal_nan=False):
            bad = int(np.sum(~np.isclose(o, e, rtol=prog.rtol, atol=prog.atol))) if o.shape == e.shape else -1
            raise Failure(kind, f"output {k} differs from numpy at {bad} of {e.size} elements (size={size}); "
                          f"max |diff| {np.nanmax(np.abs(o - e)) if o.shape == e.shape else 'shape'}; "
                          f"NaNs {int(np.isnan(o).sum()) if o.dtype.kind == 'f' else 0}")


def _run_one(kind, prog, runner, final, original, layouts, size) -> None:
    """Run ``runner(*arrays)`` on inputs of ``size`` in the final layouts and compare with numpy."""
    rng = np.random.default_rng(1000 + (size or 0))
    ins, outs, expected = prog.make(rng, size)
    originals = list(ins) + list(outs)
    env = _size_env(original, originals)
    arrays = _to_layouts(final, originals, layouts, env)
    n_in = len(ins)
    runner(*arrays)
    for k in range(n_in):
        if not np.array_equal(_from_layout(arrays[k], layouts.get(k), ins[k].shape), ins[k], equal_nan=True):
            raise Failure("input-clobbered", f"input {k} was written (size={size})")
    got = [_from_layout(arrays[n_in + k], layouts.get(n_in + k), outs[k].shape) for k in range(len(outs))]
    _compare(kind, prog, got, expected, size)


def _attempt(failures: list, kind: str, oob_kind: str, fn, *args) -> object:
    """``fn(*args)``; an exception becomes a failure record (``IndexError``: ``oob_kind``). None when it failed."""
    try:
        return fn(*args)
    except Failure as f:
        failures.append(f.as_dict())
    except IndexError as err:
        failures.append(Failure(oob_kind, f"IndexError: {err}", "", _deepest_workbench_frame(err),
                                _short_tb(err)).as_dict())
    except Exception as err:  # noqa: BLE001 - reported with its traceback, never hidden
        failures.append(Failure(kind, f"{type(err).__name__}: {err}", "", _deepest_workbench_frame(err),
                                _short_tb(err)).as_dict())
    return None


def _check_replay(original, final, trace_text: str) -> bool:
    from workbench.ir.structural import structural_equal

    sch2 = wb.Schedule(original)
    exec(trace_text, {"sch": sch2, "wb": wb})  # noqa: S102 - the trace is our own generated Python
    if not structural_equal(sch2.func, final):
        raise Failure("trace-replay", "replaying print(sch.trace) gives a different program")
    return True


def _run_all_sizes(kind: str, prog: Program, runner, final, original, layouts: dict) -> bool:
    for size in prog.sizes:
        _run_one(kind, prog, runner, final, original, layouts, size)
    return True


def check_program(prog: Program, original, final, layouts: dict, trace_text: str,
                  values: bool = True) -> list[dict]:
    """Every check of a final program; returns the failures (dicts), the first is the primary one.

    The printed trace must replay to ``final``; the interpreter, an LLVM build with bound checks
    and one without must match numpy for every size of the program (with ``values=False``, after
    an unsafe dtype change, they must only run in bounds without errors)."""
    from workbench.ir.interpreter import evaluate

    failures: list[dict] = []
    _attempt(failures, "trace-replay", "trace-replay", _check_replay, original, final, trace_text)
    _attempt(failures, "interp-error", "interp-oob", _run_all_sizes, "interp-wrong", prog,
             lambda *arrays: evaluate(final, *arrays), final, original, layouts)
    for checks in (True, False):
        built = _attempt(failures, "build-error", "build-error", _build, final, checks)
        if built is None:
            break
        ok = _attempt(failures, "llvm-error", "llvm-oob", _run_all_sizes, "llvm-wrong", prog, built, final,
                      original, layouts)
        if ok is None and failures[-1]["kind"] in ("llvm-oob", "llvm-error"):
            break  # the unchecked build of an out-of-bounds program would only crash
    return failures if values else [f for f in failures if not _is_value_failure(f)]


def _is_value_failure(failure: dict) -> bool:
    """A failure that only says the values changed: a wrong value, or the interpreter refusing to cast an
    infinity to an integer (a narrowing ``unsafe_set_dtype`` of a buffer holding -inf, as max pooling's
    padding does). A NaN cast stays a failure: it is how the interpreter reports an uninitialised read."""
    if failure["kind"] in VALUE_KINDS:
        return True
    return failure["kind"] == "interp-error" and failure["message"].startswith(INF_CAST_ERRORS)


def _build(final, checks: bool):
    return wb.build(final, target="llvm", checks=checks)


# one sequence (in a worker) ----------------------------------------------------------------------

def _weighted_choice(rng: random.Random) -> str:
    return rng.choices(PRIMITIVES, weights=[PRIMITIVE_WEIGHTS.get(p, DEFAULT_WEIGHT) for p in PRIMITIVES])[0]


def _call_line(sch, call_args) -> str:
    """The failing call in the trace's Python (names of handles as the trace prints them)."""
    from workbench.schedule.trace import Instruction, Trace

    name, args, kwargs = call_args
    insts = list(sch.trace.insts) + [Instruction(name, tuple(args), dict(kwargs), None)]
    return Trace(insts).as_python().splitlines()[-1]


def run_sequence(seed: int, program_name: str, check: bool = True, progress=None) -> dict:
    """Generate and apply one random sequence, then check the final program. Returns a result dict."""
    prog = program(program_name)
    rng = random.Random(seed)
    sch = wb.Schedule(prog.func)
    rec = Recorder(sch)
    gen = SequenceGenerator(rec, rng)
    length = rng.randint(1, 8)
    result = {"seed": seed, "program": program_name, "length": length, "failures": [], "lines": [], "drawn": []}
    for _ in range(length):
        name = _weighted_choice(rng)
        result["drawn"].append(name)
        try:
            gen.step(name)
        except Refused:
            continue
        except Failure as f:
            lines = str(sch.trace).splitlines()
            if rec.last_call is not None and f.kind == "primitive-crash":
                lines.append(_call_line(sch, rec.last_call))
            result.update(lines=lines, failures=[f.as_dict()])
            break
    else:
        result["lines"] = str(sch.trace).splitlines()
    result.update(applied=dict(rec.applied), refused=dict(rec.refused), changed=sch.func is not prog.func)
    if check and not result["failures"] and result["changed"]:
        if progress is not None:
            progress(result)
        result["failures"] = check_program(prog, prog.func, sch.func, rec.layouts, str(sch.trace),
                                           values=not rec.unsafe)
    return result


def replay_lines(program_name: str, lines: list[str], check: bool = True) -> dict:
    """Run trace lines on a fresh schedule of the program (each line once), then check the result.

    A line that fails with NameError / unpacking errors makes the replay ``invalid`` (a shortened
    trace that no longer makes sense); a refused line is counted as refused."""
    prog = program(program_name)
    sch = wb.Schedule(prog.func)
    rec = Recorder(sch)
    env = {"sch": rec, "wb": wb}
    result = {"program": program_name, "lines": list(lines), "failures": [], "invalid": False}
    for line in lines:
        try:
            exec(line, env)  # noqa: S102 - trace lines we generated
        except (Refused, wb.ScheduleError):
            result["refused_lines"] = result.get("refused_lines", 0) + 1
        except Failure as f:
            result["failures"] = [f.as_dict()]
            return result
        except (NameError, ValueError, TypeError) as err:
            result["invalid"] = f"{type(err).__name__}: {err}"
            return result
    result.update(applied=dict(rec.applied), refused=dict(rec.refused), changed=sch.func is not prog.func)
    if check and result["changed"]:
        result["failures"] = check_program(prog, prog.func, sch.func, rec.layouts, str(sch.trace),
                                           values=not rec.unsafe)
    return result


def baseline(program_name: str) -> dict:
    """The unscheduled program must match numpy (else it is left out of the run)."""
    prog = program(program_name)
    return {"program": program_name, "failures": check_program(prog, prog.func, prog.func, {}, "")}


def execute(task: tuple):
    kind = task[0]
    if kind == "seq":
        return run_sequence(task[1], task[2], progress=task[3] if len(task) > 3 else None)
    if kind == "lines":
        return replay_lines(task[1], task[2])
    if kind == "baseline":
        return baseline(task[1])
    raise ValueError(f"unknown task {kind!r}")


# worker processes ------------------------------------------------------------------------------

def _worker_main(conn) -> None:
    warnings.simplefilter("ignore")  # performance warnings (e.g. a vectorized loop kept scalar) are not findings

    def progress(partial):
        conn.send(("progress", {"lines": partial["lines"]}))

    while True:
        task = conn.recv()
        if task is None:
            return
        if task[0] == "seq":
            task = task + (progress,)
        conn.send(("done", execute(task)))


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task, self.started, self.progress, self.count = None, 0.0, None, 0

    def send(self, task):
        self.task, self.started, self.progress = task, time.monotonic(), None
        self.count += 1
        self.conn.send(task)

    def stop(self, kill=False):
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _dead_result(task, kind, message, progress) -> dict:
    base = {"program": task[2] if task[0] == "seq" else task[1], "failures": [{
        "kind": kind, "message": message, "primitive": "", "where": "", "traceback": ""}], "changed": True}
    if task[0] == "seq":
        base.update(seed=task[1], lines=(progress or {}).get("lines", []), applied={}, refused={},
                    scheduling_phase=progress is None)
    elif task[0] == "lines":
        base.update(lines=task[2], invalid=False)
    return base


class WorkerPool:
    """``workers`` processes that run tasks; one that dies, hangs past ``timeout`` or has done
    ``max_tasks`` is replaced. A dead worker's task gets a ``process-crash`` / ``timeout`` result."""

    def __init__(self, workers: int = 1, timeout: float = 60.0, max_tasks: int = 150):
        self.ctx = multiprocessing.get_context("fork")
        self.timeout, self.max_tasks = timeout, max_tasks
        self.workers = [_Worker(self.ctx) for _ in range(max(1, workers))]

    def close(self) -> None:
        for w in self.workers:
            w.stop(kill=w.task is not None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _replace(self, k: int) -> None:
        self.workers[k].stop(kill=True)
        self.workers[k] = _Worker(self.ctx)

    def run(self, tasks: Iterable[tuple]):
        """Yields ``(task, result)`` as tasks finish (not necessarily in order)."""
        pending = list(tasks)[::-1]
        pool = self.workers
        while pending or any(w.task is not None for w in pool):
            for k, w in enumerate(pool):
                if w.task is None and pending:
                    if w.count >= self.max_tasks:
                        self._replace(k)
                        w = pool[k]
                    w.send(pending.pop())
            busy = [w for w in pool if w.task is not None]
            left = min(w.started + self.timeout - time.monotonic() for w in busy)
            ready = wait([w.conn for w in busy], timeout=max(0.0, left))
            for k, w in enumerate(pool):
                if w.task is None:
                    continue
                if w.conn in ready:
                    try:
                        tag, payload = w.conn.recv()
                    except (EOFError, OSError):
                        w.proc.join(5)
                        task, message = w.task, f"worker died (exit code {w.proc.exitcode})"
                        self._replace(k)
                        yield task, _dead_result(task, "process-crash", message, w.progress)
                        continue
                    if tag == "progress":
                        w.progress = payload
                        continue
                    task, w.task = w.task, None
                    yield task, payload
                elif time.monotonic() - w.started > self.timeout:
                    task, progress = w.task, w.progress
                    self._replace(k)
                    yield task, _dead_result(task, "timeout", f"no result after {self.timeout:.0f} s", progress)


# the run: counts, failures, minimisation -----------------------------------------------------------

@dataclass
class Summary:
    tried: int = 0
    with_refusal: int = 0
    accepted: int = 0
    all_refused: int = 0
    wrong: int = 0
    crashed: int = 0
    kinds: Counter = field(default_factory=Counter)
    applied: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    skipped_programs: dict = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, result: dict) -> None:
        self.tried += 1
        self.applied.update(result.get("applied", {}))
        self.refused.update(result.get("refused", {}))
        if result.get("refused"):
            self.with_refusal += 1
        if result.get("changed"):
            self.accepted += 1
        elif not result["failures"]:
            self.all_refused += 1
        if result["failures"]:
            kind = result["failures"][0]["kind"]
            self.kinds[kind] += 1
            if kind in WRONG_KINDS:
                self.wrong += 1
            else:
                self.crashed += 1
            self.failures.append(result)

    def table(self) -> str:
        rows = [("sequences tried", self.tried), ("with a refusal", self.with_refusal),
                ("accepted (program changed)", self.accepted), ("nothing applied", self.all_refused),
                ("wrong results", self.wrong), ("crashed / errors", self.crashed),
                ("seconds", f"{self.seconds:.1f}")]
        out = [f"{k:<28} {v}" for k, v in rows]
        if self.kinds:
            out.append("failures by kind:")
            for kind, n in self.kinds.most_common():
                seeds = [str(r.get("seed")) for r in self.failures if r["failures"][0]["kind"] == kind][:6]
                out.append(f"  {kind:<24} {n:>5}   seeds {' '.join(seeds)}")
        out.append("per primitive (applied / refused):")
        for p in PRIMITIVES:
            out.append(f"  {p:<24} {self.applied.get(p, 0):>5} / {self.refused.get(p, 0)}")
        if self.skipped_programs:
            out.append("programs left out (their unscheduled form fails): " + ", ".join(self.skipped_programs))
        return "\n".join(out)


def sequence_tasks(count: int, seed: int, names: list[str]) -> list[tuple]:
    tasks = []
    for k in range(count):
        s = seed * 1_000_000 + k
        tasks.append(("seq", s, random.Random(s ^ 0x5EED).choice(names)))
    return tasks


def run_fuzz(sequences: int, seed: int, workers: int = 1, timeout: float = 60.0,
             names: list[str] | None = None, on_result: Callable | None = None) -> Summary:
    """Fuzz ``sequences`` random sequences; the summary counts them and keeps the failures."""
    programs()  # build in the parent so forked workers start warm
    names = sorted(names or programs())
    summary = Summary()
    start = time.monotonic()
    with WorkerPool(workers, timeout) as pool:
        for _, result in pool.run([("baseline", n) for n in names]):
            if result["failures"]:
                summary.skipped_programs[result["program"]] = result["failures"][0]
        names = [n for n in names if n not in summary.skipped_programs]
        for _, result in pool.run(sequence_tasks(sequences, seed, names)):
            summary.add(result)
            if on_result is not None:
                on_result(result)
    summary.seconds = time.monotonic() - start
    return summary


_MESSAGE_WORDS = re.compile(r"(?<![\w.])[a-z]{4,}(?![\w.(])")


def signature(result: dict) -> tuple:
    """What makes two failures look like the same bug (before minimisation)."""
    f = result["failures"][0]
    words = " ".join(_MESSAGE_WORDS.findall(f["message"].split("\n")[0])[:8])
    if f["kind"] in ("primitive-crash", "refusal-changed-state"):
        return (f["kind"], f["primitive"], f["where"], f["message"].split(":")[0])
    if f["kind"] in ("build-error", "interp-error", "llvm-error", "trace-replay", "interp-oob", "llvm-oob"):
        return (f["kind"], f["where"], words)
    return (f["kind"],)


def primitives_used(lines: list[str]) -> tuple:
    """The primitives a trace applies, in order (look-ups left out)."""
    calls = [m.group(1) for m in map(re.compile(r"sch\.(\w+)\(").search, lines) if m]
    return tuple(c for c in calls if c in PRIMITIVES)


def _reproduces(pool: WorkerPool, program_name: str, lines: list[str], target: tuple) -> bool:
    res = next(pool.run([("lines", program_name, lines)]))[1]
    return bool(res.get("failures")) and not res.get("invalid") and not res.get("refused_lines") \
        and signature(res) == target


def minimize(result: dict, pool: WorkerPool) -> list[str]:
    """A short trace (deleting chunks of lines, then single lines) that fails with the same signature."""
    target = signature(result)
    lines = list(result["lines"])
    chunk = max(1, len(lines) // 2)
    while lines:
        removed = False
        end = len(lines)
        while end > 0:
            start = max(0, end - chunk)
            cand = lines[:start] + lines[end:]
            if _reproduces(pool, result["program"], cand, target):
                lines, removed = cand, True
            end = start
        if chunk == 1 and not removed:
            break
        if not removed:
            chunk = max(1, chunk // 2)
    return lines


def reproducer(program_name: str, lines: list[str]) -> str:
    """Python that replays a failing trace and prints the failures (run from the repository root)."""
    body = "\n".join(lines)
    return (f"import sys; sys.path.insert(0, 'benchmarks')\n"
            f"import workbench as wb, fuzz_schedules as fz\n"
            f"sch = wb.Schedule(fz.program({program_name!r}).func)\n{body}\n"
            f"print(fz.replay_lines({program_name!r}, {lines!r})['failures'])\n")


def _pick_for_minimizing(failures: list[dict], limit: int) -> list[dict]:
    """Up to ``limit`` failures, round-robin over signatures, shortest traces first."""
    groups: dict[tuple, list] = {}
    for r in sorted(failures, key=lambda r: len(r["lines"])):
        groups.setdefault(signature(r), []).append(r)
    picked, queues = [], list(groups.values())
    while len(picked) < limit and any(queues):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return picked


def distinct_failures(summary: Summary, workers: int, timeout: float, limit: int) -> dict[tuple, list]:
    """Minimise up to ``limit`` failures; group them by (kind, signature, primitives of the short trace)."""
    distinct: dict[tuple, list] = {}
    with WorkerPool(workers, timeout) as pool:
        for r in _pick_for_minimizing(summary.failures, limit):
            small = minimize(r, pool) if r["lines"] else []
            r["minimized"] = small
            key = signature(r) + (primitives_used(small),)
            distinct.setdefault(key, []).append(r)
    return distinct


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per sequence")
    ap.add_argument("--out", default="fuzz-failures.jsonl")
    ap.add_argument("--programs", nargs="*", help="only these programs (default: all)")
    ap.add_argument("--minimize", type=int, default=0, metavar="K",
                    help="shrink up to K failures (round-robin over signatures) and group them")
    ap.add_argument("--replay", help="SEED:PROGRAM: run one sequence here and print its trace and failures")
    ap.add_argument("--replay-file", help="a failures file; with --index K replays record K")
    ap.add_argument("--index", type=int, default=0)
    args = ap.parse_args(argv)
    if args.replay:
        s, name = args.replay.split(":")
        res = run_sequence(int(s), name)
        print("\n".join(res["lines"]))
        print(json.dumps(res["failures"], indent=1))
        return 1 if res["failures"] else 0
    if args.replay_file:
        with open(args.replay_file) as fh:
            record = json.loads(fh.readlines()[args.index])
        lines = record.get("minimized") or record["lines"]
        print(reproducer(record["program"], lines))
        print(json.dumps(replay_lines(record["program"], lines)["failures"], indent=1))
        return 0
    done = Counter()

    def report_progress(result):
        done["n"] += 1
        done["failed"] += bool(result["failures"])
        if result["failures"]:   # say it now: a long run may be stopped before its summary
            f = result["failures"][0]
            print(f"FAILED --replay {result.get('seed')}:{result.get('program')} {f['kind']}: "
                  f"{f['message'].splitlines()[0][:200]}", file=sys.stderr, flush=True)
        if done["n"] % 100 == 0:
            print(f"... {done['n']} sequences, {done['failed']} failing", file=sys.stderr, flush=True)

    summary = run_fuzz(args.sequences, args.seed, args.workers, args.timeout, args.programs, report_progress)
    distinct = distinct_failures(summary, args.workers, args.timeout, args.minimize) if args.minimize else {}
    with open(args.out, "w") as fh:
        for r in summary.failures:
            record = dict(r, reproducer=reproducer(r["program"], r.get("minimized") or r["lines"]))
            fh.write(json.dumps(record, default=str) + "\n")
    print(summary.table())
    if summary.failures:
        print(f"\nfailure records: {args.out}")
    for key, results in distinct.items():
        r = results[0]
        print(f"\n=== {len(results)} x {' | '.join(map(str, key))}   (seed {r.get('seed')}, {r['program']})")
        print(r["failures"][0]["message"].split("\n")[0][:300])
        print("\n".join(r["minimized"]))
    return 1 if summary.wrong or summary.crashed else 0


if __name__ == "__main__":
    sys.exit(main())
