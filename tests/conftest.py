"""Shared test configuration."""
import atexit
import os
import shutil
import tempfile

# numpy's BLAS on one thread: the suite runs on 2 workers of a 2-core machine, and BLAS threads
# fighting the workers made small matmuls ~10x slower (the thread count of workbench's own code is
# separate: workbench.backend.set_num_threads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")
# the disk caches (compiled builds, scheduled models: workbench.backend.cache) of a test run live in a
# temporary folder removed at exit, never in the user's ~/.cache/workbench
_CACHE_DIR = tempfile.mkdtemp(prefix="workbench-test-cache-")
atexit.register(shutil.rmtree, _CACHE_DIR, True)
os.environ.setdefault("WORKBENCH_CACHE_DIR", _CACHE_DIR)
# Debug mode for the whole suite: every schedule primitive verifies that the program it produces is
# well formed (workbench.ir.verify). It is read when workbench.ir.verify is first imported, which is
# after this conftest (tests/ir/test_verify.py checks that it is on); WORKBENCH_VERIFY=0 turns it off.
os.environ.setdefault("WORKBENCH_VERIFY", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(0)

# Hypothesis: CI runs a fixed (derandomized) set of examples so a run is reproducible; set
# HYPOTHESIS_PROFILE=explore to search with fresh random examples (and many more of them).
try:
    from hypothesis import settings as _hsettings

    _hsettings.register_profile("ci", derandomize=True, print_blob=True)
    _hsettings.register_profile("explore", derandomize=False, max_examples=2000, print_blob=True)
    _hsettings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
