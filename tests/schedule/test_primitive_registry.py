"""Primitives are registered once (``@primitive``) and run both in a ``Schedule`` and as pure functions."""
import numpy as np
import pytest

import workbench as wb
from workbench.ir.structural import assert_structural_equal, structural_equal
from workbench.schedule.primitive import PRIMITIVES, apply, load_all, loops_of

from .programs import matmul
from .util import run


def test_every_registered_primitive_is_a_schedule_method_with_its_docstring():
    load_all()
    for name, spec in PRIMITIVES.items():
        method = getattr(wb.Schedule, name)
        assert method.__doc__ == spec.fn.__doc__ or name.startswith("get_"), name
        assert spec.fn.__doc__, f"primitive {name} has no docstring"
    for name in ("split", "fuse", "reorder", "compute_at", "cache_read", "rfactor", "tensorize", "blockize"):
        assert name in PRIMITIVES


def test_apply_is_pure_and_equals_the_schedule():
    f = matmul
    c = loops_of(f, "C")
    g, (io, ii) = apply(f, "split", c[0], factors=[None, 8])
    g2, _ = apply(g, "reorder", io, c[1].loop_var, ii)
    blk = wb.schedule.tree.Index(g2).block("C")
    g3, init = apply(g2, "decompose_reduction", blk, c[2].loop_var)
    assert init.name == "C_init"
    # the schedule gives the same program
    sch = wb.Schedule(f)
    i, j, k = sch.get_loops(sch.get_block("C"))
    a, b = sch.split(i, factors=[None, 8])
    sch.reorder(a, j, b)
    sch.decompose_reduction(sch.get_block("C"), k)
    assert_structural_equal(g3, sch.func)
    assert not structural_equal(f, g3) and loops_of(f, "C")[0].extent.value == 16   # f unchanged
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((16, 16)).astype("float32") for _ in range(2))
    C = np.zeros((16, 16), "float32")
    run(g3, A, B, C)
    np.testing.assert_allclose(C, A @ B, rtol=1e-4, atol=1e-4)


def test_apply_refuses_like_the_schedule():
    c = loops_of(matmul, "C")
    with pytest.raises(wb.ScheduleError, match="factor"):
        apply(matmul, "split", c[0], factors=[0, None])
    with pytest.raises(wb.ScheduleError, match="no schedule primitive called 'splitt'"):
        apply(matmul, "splitt", c[0])
    with pytest.raises(wb.ScheduleError, match="must be a loop"):
        apply(matmul, "split", "C", factors=[None, 4])
