"""Exported notebooks show the programs: `jupyter nbconvert --to html` keeps each view's static fallback."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from notebook_fixture import write_notebook  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_nbconvert_html_contains_the_static_fallback_of_each_view(tmp_path):
    for mod in ("nbconvert", "nbformat", "ipykernel", "anywidget"):
        pytest.importorskip(mod, reason=f"{mod} is needed to execute and export the notebook")
    import nbformat

    nb_path = write_notebook(tmp_path / "viz.ipynb")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))

    def nbconvert(*args):
        run = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", *args, "--output-dir", str(tmp_path)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]

    # run it as CI and jupyter-book do: default settings, so the widget state is saved in the notebook
    # (nbconvert then prefers the widget view, which needs a widget loader from the internet)
    nbconvert("--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=120", "--output", "executed",
              str(nb_path))
    nbconvert("--to", "html", "--output", "viz", str(tmp_path / "executed.ipynb"))
    html = (tmp_path / "viz.html").read_text()
    nb = nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4)
    assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]  # state was saved

    # every widget output is preceded by its static view, an output of its own that nbconvert renders
    assert html.count('class="wb-fallback"') == 6
    # cell 0: the PrimFunc: its loop tree, highlighted script and buffers
    assert html.count("wb-static-program") >= 2  # the function, the block graph's program view
    assert "wb-static-tree" in html and "wb-static-script" in html and "wb-static-buffers" in html
    assert "block</span> <b>C</b>" in html
    # cells 1, 3 and 5: the schedules, with their steps, diffs and the error
    assert html.count("wb-static-schedule") == 3
    assert "ReductionLoopError" in html and "wb-static-diff" in html and "split(loop i" in html
    # cell 5: the tree-level diff of reverse_compute_at
    assert "wb-static-tree-diff" in html and re.search(r'block (&quot;|")D(&quot;|") moved under loop ax1', html)
    # cell 2: the block graph, drawn, open
    assert re.search(r'<details class="wb-static-graph" open', html) and "<svg" in html
    # cell 6: the uncaught error as the error view, and a traceback without workbench's frames
    assert "wb-static-error-view" in html
    (err,) = [o for o in nb.cells[6].outputs if o.output_type == "error"]
    assert err.ename == "ReductionLoopError" and "workbench/schedule" not in "".join(err.traceback)

    for cell in nb.cells[:6]:
        static, live = cell.outputs[-2:]
        assert static.output_type == "display_data" and 'class="wb-fallback"' in static.data["text/html"]
        assert live.output_type == "execute_result"
        assert {"text/html", "text/plain", "application/vnd.jupyter.widget-view+json"} <= set(live.data)
        assert "wb-static" not in live.data["text/html"]  # the static view is not shown twice
