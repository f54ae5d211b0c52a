"""Look-ups: get_block, get_loops, child blocks, producers, consumers, output blocks."""
import workbench as wb
from workbench.schedule import BlockNotFoundError

from .programs import mm_relu16, two_stage
from .util import refused


def names(sch, rvs):
    return [sch.get(r).name for r in rvs]


def test_get_block_and_loops():
    sch = wb.Schedule(mm_relu16)
    y = sch.get_block("Y")
    loops = sch.get_loops(y)
    assert [sch.get(l).loop_var.name for l in loops] == ["i", "j", "k"]
    f = sch.get(loops[2])
    assert f.extent.value == 16 and f.kind.value == "serial" and dict(f.annotations) == {}
    blk = sch.get(y)
    assert blk.name == "Y" and len(blk.iter_vars) == 3
    assert [r.buffer.name for r in blk.reads] == ["Y", "A", "B"] and blk.writes[0].buffer.name == "Y"


def test_get_block_missing_lists_names():
    sch = wb.Schedule(mm_relu16)
    err = refused(sch, sch.get_block, "y", exc=BlockNotFoundError)
    assert "there is no block named 'y'" in err.message and "Y, C" in err.message
    assert "Did you mean 'Y'" in err.message


def test_producers_consumers_children_outputs():
    sch = wb.Schedule(two_stage)
    b, c = sch.get_block("B"), sch.get_block("C")
    assert names(sch, sch.get_producers(c)) == ["B"]
    assert names(sch, sch.get_consumers(b)) == ["C"]
    assert sch.get_producers(b) == [] and sch.get_consumers(c) == []
    assert names(sch, sch.get_output_blocks()) == ["C"]
    assert names(sch, sch.get_child_blocks(sch.get_block("root"))) == ["B", "C"]
    (i, j) = sch.get_loops(c)
    assert names(sch, sch.get_child_blocks(i)) == ["C"]
    # look-ups change nothing
    assert len(sch.history) == 1 and sch.func is two_stage
