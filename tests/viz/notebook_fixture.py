"""The fixture notebook of the viz tests: a PrimFunc, a Schedule with steps and an error, a block graph.

``write_notebook(path)`` writes it (nbformat v4); the browser test runs it in
JupyterLab and the export test converts it with nbconvert.
"""
from __future__ import annotations

from pathlib import Path

CELLS = [
    # 0: a tensor program: matmul followed by relu
    """import workbench as wb
from workbench import te

A = te.placeholder((64, 64), "float32", name="A")
B = te.placeholder((64, 64), "float32", name="B")
k = te.reduce_axis(64, name="k")
C = te.compute((64, 64), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
D = te.compute((64, 64), lambda i, j: te.max(C[i, j], 0.0), name="D")
func = wb.create_prim_func([A, B, D])
func""",
    # 1: a schedule with several steps and a failing primitive
    """sch = wb.Schedule(func)
c = sch.get_block("C")
i, j, kk = sch.get_loops(c)
io, ii = sch.split(i, factors=[None, 16])
jo, ji = sch.split(j, factors=[None, 16])
sch.reorder(io, jo, kk, ii, ji)
sch.parallel(io)
try:
    sch.vectorize(kk)          # a reduction loop: refused
except wb.ScheduleError as e:
    err = e
wb.viz.schedule_view(sch, error=err)""",
    # 2: the block graph, clickable through to the loop nest
    """wb.viz.block_graph(func)""",
    # 3: the schedule itself as the last expression
    """sch""",
    # 4: a 10,000-line program (the sizing rule): the hand-built chain of 1700 blocks of programs.py
    """import sys
sys.path.insert(0, {tests_viz!r})
import programs
long_func = programs.many_blocks(1700)
long_func""",
    # 5: reverse_compute_at: the tree-level diff, a selection that stays on its loop across steps
    """s2 = wb.Schedule(func)
i2, j2, k2 = s2.get_loops(s2.get_block("C"))
i2o, i2i = s2.split(i2, factors=[None, 16])
s2.reverse_compute_at(s2.get_block("D"), i2o)
s2""",
    # 6: an uncaught schedule error: the error view, no internal frames (last: it stops "run all")
    """s3 = wb.Schedule(func)
s3.vectorize(s3.get_loops(s3.get_block("C"))[2])   # a reduction loop: refused""",
]
RAISES = {6}  # cells that end in an error on purpose (tagged for nbclient)


def write_notebook(path: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    tests_viz = str(Path(__file__).resolve().parent)
    nb.cells = [nbformat.v4.new_code_cell(src.replace("{tests_viz!r}", repr(tests_viz))) for src in CELLS]
    for k in RAISES:
        nb.cells[k].metadata["tags"] = ["raises-exception"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    path = Path(path)
    nbformat.write(nb, str(path))
    return path
