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

    # run it once (in a kernel, so the widgets are built), then export the executed notebook. Like a
    # notebook saved by JupyterLab (whose "save widget state" is off by default) it keeps no widget
    # state; with stored state nbconvert would embed the widgets instead of the fallback.
    nbconvert("--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=120",
              "--ExecutePreprocessor.store_widget_state=False", "--output", "executed", str(nb_path))
    nbconvert("--to", "html", "--output", "viz", str(tmp_path / "executed.ipynb"))
    html = (tmp_path / "viz.html").read_text()

    # cell 0: the PrimFunc: its loop tree and highlighted script
    assert html.count("wb-static-program") >= 2  # the function, the block graph's program view
    assert "wb-static-tree" in html and "wb-static-script" in html
    assert 'with wb.block(&quot;C&quot;)' in html or 'wb.block(</span>' in html or "block</span> <b>C</b>" in html
    # cell 1 and 3: the schedule, with its steps, diffs and the error
    assert html.count("wb-static-schedule") == 2
    assert "ReductionLoopError" in html and "wb-static-diff" in html and "sch.split" in html
    # cell 2: the block graph, drawn, open
    assert re.search(r'<details class="wb-static-graph" open', html) and "<svg" in html

    # the executed notebook itself carries the widget views next to the fallback
    nb = nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4)
    for cell in nb.cells:
        (out,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert {"text/html", "text/plain", "application/vnd.jupyter.widget-view+json"} <= set(out.data)
