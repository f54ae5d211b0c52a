"""A native thread pool for parallel loops: the launch and the workers are LLVM IR, JIT-compiled once.

The Python pool of :mod:`runtime` costs tens of microseconds per launch (a ctypes callback, a queue,
futures, the GIL handed back and forth), which a model that launches hundreds of small parallel
kernels per call (an LLM decode step) pays every time. Here ``wb_launch(fn, closure, extent)`` and
the workers never touch Python:

* the launcher publishes ``fn, closure, extent`` and the number of parts, bumps a generation
  counter, runs part 0 itself and spins until every worker has acknowledged the generation;
* each worker (a Python daemon thread parked in native code, one per extra core) spins on the
  generation counter for a while after its last part, then sleeps in ``futex`` until woken;
* a launch while the pool is busy (a nested parallel loop, or a second Python thread) runs inline;
* the parts are the contiguous, nearly equal chunks of :func:`runtime.chunks`.

``WB_NATIVE_POOL=0`` keeps the Python pool. x86-64 Linux only (``futex`` by ``syscall(202)``,
``pause``); elsewhere the Python pool is used.
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading
import time

#: spins (each a ``pause``) before a worker sleeps, and before a waiting launcher yields its core
SPINS_BEFORE_SLEEP = 500
SPINS_BEFORE_YIELD = 200

_IR = r"""
@wb_gen = global i32 0, align 64
@wb_fn = global ptr null, align 64
@wb_closure = global ptr null, align 8
@wb_extent = global i64 0, align 8
@wb_parts = global i32 0, align 8
@wb_pending = global i32 0, align 64
@wb_rc = global i32 0, align 64
@wb_busy = global i32 0, align 64
@wb_workers = global i32 0, align 64
@wb_ready = global i32 0, align 64
@wb_sleepers = global i32 0, align 64
@wb_quit = global i32 0, align 64

declare i64 @syscall(i64, ...)
declare i32 @sched_yield()
declare void @llvm.x86.sse2.pause()

define internal void @wb_run_part(i32 %k, i32 %parts, i64 %extent, ptr %fn, ptr %closure) {
entry:
  %p = sext i32 %parts to i64
  %kk = sext i32 %k to i64
  %q = udiv i64 %extent, %p
  %r = urem i64 %extent, %p
  %lt = icmp ult i64 %kk, %r
  %minkr = select i1 %lt, i64 %kk, i64 %r
  %kq = mul i64 %kk, %q
  %begin = add i64 %kq, %minkr
  %extra = zext i1 %lt to i64
  %len = add i64 %q, %extra
  %end = add i64 %begin, %len
  %rc = call i32 %fn(i64 %begin, i64 %end, ptr %closure)
  %bad = icmp ne i32 %rc, 0
  br i1 %bad, label %record, label %done
record:
  %x = cmpxchg ptr @wb_rc, i32 0, i32 %rc seq_cst seq_cst
  br label %done
done:
  ret void
}

define i32 @wb_launch(ptr %fn, ptr %closure, i64 %extent) {
entry:
  %empty = icmp sle i64 %extent, 0
  br i1 %empty, label %zero, label %check
zero:
  ret i32 0
check:
  %w = load atomic i32, ptr @wb_workers acquire, align 4
  %one = icmp eq i64 %extent, 1
  %none = icmp eq i32 %w, 0
  %small = or i1 %one, %none
  br i1 %small, label %inline, label %take
take:
  %cx = cmpxchg ptr @wb_busy, i32 0, i32 1 acquire monotonic
  %got = extractvalue { i32, i1 } %cx, 1
  br i1 %got, label %publish, label %inline
publish:
  %w1 = add i32 %w, 1
  %w64 = sext i32 %w1 to i64
  %fewer = icmp slt i64 %extent, %w64
  %parts64 = select i1 %fewer, i64 %extent, i64 %w64
  %parts = trunc i64 %parts64 to i32
  store ptr %fn, ptr @wb_fn, align 8
  store ptr %closure, ptr @wb_closure, align 8
  store i64 %extent, ptr @wb_extent, align 8
  store i32 %parts, ptr @wb_parts, align 4
  store i32 0, ptr @wb_rc, align 4
  store atomic i32 %w, ptr @wb_pending seq_cst, align 4
  %g = atomicrmw add ptr @wb_gen, i32 1 seq_cst
  %s = load atomic i32, ptr @wb_sleepers seq_cst, align 4
  %asleep = icmp sgt i32 %s, 0
  br i1 %asleep, label %wake, label %run
wake:
  %wk = call i64 (i64, ...) @syscall(i64 202, ptr @wb_gen, i32 129, i32 2147483647)
  br label %run
run:
  call void @wb_run_part(i32 0, i32 %parts, i64 %extent, ptr %fn, ptr %closure)
  br label %wait
wait:
  %n = phi i32 [ 0, %run ], [ %n1, %spin ], [ 0, %yield ]
  %left = load atomic i32, ptr @wb_pending acquire, align 4
  %finished = icmp eq i32 %left, 0
  br i1 %finished, label %out, label %spin0
spin0:
  %n1 = add i32 %n, 1
  %long = icmp sgt i32 %n1, SPINS_BEFORE_YIELD
  br i1 %long, label %yield, label %spin
spin:
  call void @llvm.x86.sse2.pause()
  br label %wait
yield:
  %y = call i32 @sched_yield()
  br label %wait
out:
  %rc = load atomic i32, ptr @wb_rc acquire, align 4
  store atomic i32 0, ptr @wb_busy release, align 4
  ret i32 %rc
inline:
  %r = call i32 %fn(i64 0, i64 %extent, ptr %closure)
  ret i32 %r
}

define i32 @wb_worker(i32 %k) {
entry:
  %start = load atomic i32, ptr @wb_gen acquire, align 4
  %rd = atomicrmw add ptr @wb_ready, i32 1 seq_cst
  br label %wait
wait:
  %my = phi i32 [ %start, %entry ], [ %my, %spin ], [ %my, %slept ], [ %g, %acked ]
  %n = phi i32 [ 0, %entry ], [ %n1, %spin ], [ 0, %slept ], [ 0, %acked ]
  %g = load atomic i32, ptr @wb_gen acquire, align 4
  %new = icmp ne i32 %g, %my
  br i1 %new, label %work, label %idle
idle:
  %q = load atomic i32, ptr @wb_quit acquire, align 4
  %quit = icmp ne i32 %q, 0
  br i1 %quit, label %exit, label %count
count:
  %n1 = add i32 %n, 1
  %long = icmp sgt i32 %n1, SPINS_BEFORE_SLEEP
  br i1 %long, label %sleep, label %spin
spin:
  call void @llvm.x86.sse2.pause()
  br label %wait
sleep:
  %a = atomicrmw add ptr @wb_sleepers, i32 1 seq_cst
  %g2 = load atomic i32, ptr @wb_gen seq_cst, align 4
  %same = icmp eq i32 %g2, %my
  %q2 = load atomic i32, ptr @wb_quit seq_cst, align 4
  %stay = icmp eq i32 %q2, 0
  %block = and i1 %same, %stay
  br i1 %block, label %futex, label %woke
futex:
  %fw = call i64 (i64, ...) @syscall(i64 202, ptr @wb_gen, i32 128, i32 %my, ptr null, ptr null, i32 0)
  br label %woke
woke:
  %b = atomicrmw sub ptr @wb_sleepers, i32 1 seq_cst
  br label %slept
slept:
  br label %wait
work:
  %q3 = load atomic i32, ptr @wb_quit acquire, align 4
  %quit3 = icmp ne i32 %q3, 0
  br i1 %quit3, label %exit, label %part
part:
  %parts = load i32, ptr @wb_parts, align 4
  %mine = icmp slt i32 %k, %parts
  br i1 %mine, label %runit, label %acked0
runit:
  %fn = load ptr, ptr @wb_fn, align 8
  %cl = load ptr, ptr @wb_closure, align 8
  %ext = load i64, ptr @wb_extent, align 8
  call void @wb_run_part(i32 %k, i32 %parts, i64 %ext, ptr %fn, ptr %cl)
  br label %acked0
acked0:
  %d = atomicrmw sub ptr @wb_pending, i32 1 release
  br label %acked
acked:
  br label %wait
exit:
  ret i32 0
}
"""

WORKER_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32)


class NativePool:
    """The JIT-compiled pool: ``launch_address`` for generated code, ``resize(threads)`` to (re)start workers."""

    def __init__(self):
        import llvmlite.binding as llvm

        from .module import init_llvm

        init_llvm()
        text = _IR.replace("SPINS_BEFORE_YIELD", str(SPINS_BEFORE_YIELD)).replace(
            "SPINS_BEFORE_SLEEP", str(SPINS_BEFORE_SLEEP))
        mod = llvm.parse_assembly(text)
        mod.triple = llvm.get_process_triple()
        mod.verify()
        tm = llvm.Target.from_default_triple().create_target_machine(opt=2)
        self._engine = llvm.create_mcjit_compiler(mod, tm)
        self._engine.finalize_object()
        addr = self._engine.get_function_address
        self.launch_address = addr("wb_launch")
        self._worker = WORKER_FN(addr("wb_worker"))
        self._globals = {name: ctypes.c_int32.from_address(self._engine.get_global_value_address(name))
                         for name in ("wb_gen", "wb_busy", "wb_workers", "wb_ready", "wb_quit", "wb_pending",
                                      "wb_sleepers")}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _store(self, name: str, value: int) -> None:
        self._globals[name].value = value

    def _load(self, name: str) -> int:
        return self._globals[name].value

    def _wake_all(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(ctypes.c_long(202), ctypes.c_void_p(ctypes.addressof(self._globals["wb_gen"])),
                     ctypes.c_int(129), ctypes.c_int(2147483647))

    def resize(self, threads: int) -> None:
        """Run parallel loops on ``threads`` threads: the caller plus ``threads - 1`` workers."""
        with self._lock:
            self._stop()
            workers = max(0, threads - 1)
            self._store("wb_ready", 0)
            self._threads = [threading.Thread(target=self._worker, args=(k,), name=f"wb-native-{k}", daemon=True)
                             for k in range(1, workers + 1)]
            for t in self._threads:
                t.start()
            deadline = time.monotonic() + 10.0
            while self._load("wb_ready") < workers:   # every worker has read the generation it starts from
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the native thread pool's {workers} worker(s) did not start within 10 s")
                os.sched_yield()
            self._store("wb_workers", workers)

    def _stop(self) -> None:
        if not self._threads:
            return
        while self._load("wb_busy"):   # a launch in progress finishes first
            os.sched_yield()
        self._store("wb_workers", 0)   # new launches run inline from here on
        self._store("wb_quit", 1)
        self._globals["wb_gen"].value += 1
        self._wake_all()
        for t in self._threads:
            t.join()
        self._threads = []
        self._store("wb_quit", 0)

    def after_fork_in_child(self) -> None:
        """The workers did not survive the fork: launches run inline until :meth:`resize` starts new ones."""
        self._lock = threading.Lock()
        self._threads = []
        for name in ("wb_workers", "wb_busy", "wb_quit", "wb_pending", "wb_sleepers", "wb_ready"):
            self._store(name, 0)

    @property
    def workers(self) -> int:
        return self._load("wb_workers")


def native_pool_supported() -> bool:
    """x86-64 Linux, and not turned off with ``WB_NATIVE_POOL=0``."""
    if os.environ.get("WB_NATIVE_POOL", "1") == "0":
        return False
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")
