"""The widgets in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Starts JupyterLab on 127.0.0.1 (random free port, a token, no browser), opens the
fixture notebook in a temp dir, runs it, and checks that the widgets render, that
selecting a loop highlights its script lines (and clicking a line selects its
node), that choosing another schedule step changes the program shown, that the
error step marks the offending loop, that a click on a block in the block
graph selects it in the loop nest, and that the machine code panel links loops and
assembly lines both ways (with the cost heat map on the tree). Screenshots go to ``test-artifacts/``.
The server is stopped by its PID at the end, always.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from notebook_fixture import write_notebook  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install chromium)"
    for mod in ("playwright", "jupyterlab", "nbformat", "anywidget"):
        try:
            __import__(mod)
        except ImportError:
            return f"the Python package {mod} is not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 40.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started, by its PID (and its process group: the kernels)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture
def jupyterlab(tmp_path):
    reason = _missing()
    if reason:
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)
    work = tmp_path / "nb"
    work.mkdir()
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no "would you like news?" toast over the widgets
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    log = tmp_path / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--ServerApp.port_retries=0"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield {"base": base, "token": token, "dir": work, "log": log}
    finally:
        _stop(proc)


def _shot(page_or_locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page_or_locator.screenshot(path=str(ARTIFACTS / name))


def test_widgets_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright

    _add_graph_cell(write_notebook(jupyterlab["dir"] / "viz.ipynb"))
    url = f"{jupyterlab['base']}/lab/tree/viz.ipynb?token={jupyterlab['token']}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=45_000)
            # wait for the kernel, then run every cell from the menu
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                                   "#jp-main-statusbar :text('Idle')", timeout=45_000)
            # JupyterLab may still ask which kernel to use: take the one it proposes
            page.wait_for_timeout(500)
            dialog = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
            if dialog.count():
                dialog.first.click()
            for attempt in range(3):  # a click before the kernel is connected can be lost: retry
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                try:
                    page.wait_for_function(
                        "() => /\\[(\\*|\\d+)\\]/.test(document.querySelector('.jp-InputArea-prompt')"
                        "?.textContent || '')", timeout=15_000)
                    break
                except Exception:
                    if attempt == 2:
                        raise
            roots = page.locator(".wb-root[data-ready='1']")
            page.wait_for_function("document.querySelectorAll(\".wb-root[data-ready='1']\").length >= 7",
                                   timeout=45_000)
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            cells.nth(ERROR_CELL).locator(".wb-static-error-view").wait_for()  # the last cell fails on purpose
            errors = page.locator(".jp-CodeCell:not(:last-child) "
                                  ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert errors.count() == 0, errors.first.inner_text()
            assert roots.count() == 7
            prog, sched, graph, sched2, long_view, moved, model_graph = (roots.nth(k) for k in range(7))
            # the static views published beside the live widgets are hidden while the widgets show
            assert page.locator(".wb-fallback").count() == 7
            assert all(not f.is_visible() for f in page.locator(".wb-fallback").all())

            # --- the PrimFunc widget: select a loop, its lines light up -------------------
            # the run scrolled to the last cell, past which JupyterLab stops drawing cells: back to the first
            page.locator(".jp-Notebook .jp-Cell").first.scroll_into_view_if_needed()
            page.wait_for_function("() => document.querySelector('.wb-root .wb-title').innerText === 'PrimFunc main'")
            assert prog.locator(".wb-title").inner_text() == "PrimFunc main"
            assert prog.locator(".wb-legend-item").count() == 5
            loop_rows = prog.locator(".wb-node-loop > .wb-row")
            assert loop_rows.count() >= 5
            second_nest = loop_rows.nth(3)  # `for i, j in wb.grid(64, 64)` of block D
            second_nest.locator(".wb-label").click()
            prog.locator(".wb-row.wb-sel").wait_for()
            hl = prog.locator(".wb-line.wb-hl")
            assert hl.count() >= 3
            first = hl.first.locator(".wb-src").inner_text()
            assert first.strip().startswith("for i, j in wb.grid(64, 64)")
            assert 'with wb.block("D")' in hl.nth(1).inner_text()
            _shot(prog, "viz-primfunc-loop-selected.png")
            # the reverse: a click on a script line selects its block
            c_line = prog.locator(".wb-line", has_text='with wb.block("C")')
            c_line.click()
            page.wait_for_function(
                "() => { const r = document.querySelectorAll('.wb-root')[0].querySelector('.wb-row.wb-sel');"
                " return r && r.textContent.includes('block C'); }")
            assert prog.locator(".wb-line.wb-hl").first.inner_text().find('with wb.block("C")') >= 0

            # --- the schedule widget: another step, another program -----------------------
            steps = sched.locator(".wb-step")
            assert steps.count() == 6  # original, split, split, reorder, parallel, the error
            assert "split(loop i, factors=[None, 16])" in steps.nth(1).inner_text()
            err_step = sched.locator(".wb-step-error")
            assert err_step.count() == 1
            # it opens on the last step: the error, with the loop marked
            banner = sched.locator(".wb-error-banner")
            assert banner.is_visible() and "ReductionLoopError" in banner.inner_text()
            assert sched.locator(".wb-line.wb-err").count() == 1
            _shot(sched, "viz-schedule-error.png")
            code = sched.locator(".wb-code-lines")
            steps.nth(1).click()
            page.wait_for_function(
                "() => document.querySelectorAll('.wb-root')[1].querySelector('.wb-step-on')?.dataset.step === '1'"
                " && !document.querySelectorAll('.wb-root')[1].querySelector('.wb-line.wb-err')")
            after_split = code.inner_text()
            assert "wb.grid(4, 16, 64, 64)" in after_split
            assert sched.locator(".wb-line.wb-chg").count() >= 1
            steps.nth(0).click()
            page.wait_for_function(
                "() => !document.querySelectorAll('.wb-root')[1].querySelector('.wb-code-lines')"
                ".innerText.includes('wb.grid(4, 16')")
            original = code.inner_text()
            assert original != after_split and "wb.grid(64, 64, 64)" in original
            sched.locator(".wb-next").click()  # back to step 1 with the button
            page.wait_for_function(
                "() => document.querySelectorAll('.wb-root')[1].querySelector('.wb-code-lines')"
                ".innerText.includes('wb.grid(4, 16')")
            sched.locator(".wb-tab[data-tab='diff']").click()
            sched.locator(".wb-td-added", has_text="loop i_0 (extent 4) added").wait_for()  # the tree-level diff
            sched.locator(".wb-textdiff-toggle").click()                                # the text diff, a click away
            sched.locator(".wb-diff-row.wb-add").first.wait_for()
            assert sched.locator(".wb-diff-row.wb-del").count() >= 1
            _shot(sched, "viz-schedule-diff.png")
            sched.locator(".wb-tab[data-tab='loops']").click()
            _shot(sched, "viz-schedule-step1.png")

            # --- the block graph: click a block, land on it in the loop nest --------------
            svg_nodes = graph.locator("g.node.wb-clickable")
            svg_nodes.first.wait_for()
            assert svg_nodes.count() == 2  # blocks C and D
            _shot(graph, "viz-block-graph.png")
            graph.locator("g.node.wb-clickable", has_text="block D").click()
            page.wait_for_function(
                "() => { const r = document.querySelectorAll('.wb-root')[2].querySelector('.wb-row.wb-sel');"
                " return r && r.textContent.includes('block D') && r.offsetParent !== null; }")
            assert 'with wb.block("D")' in graph.locator(".wb-line.wb-hl").first.inner_text()
            _shot(graph, "viz-block-graph-clicked.png")
            # --- a 10,000-line program: a few hundred rows in the page, more on request ----
            assert long_view.locator(".wb-line").count() == 400
            more = long_view.locator(".wb-code .wb-more")
            assert "more lines" in more.inner_text()
            assert long_view.locator(".wb-row").count() <= 250  # 100 of 1700 nests (two levels open), the rest on request
            t0 = time.perf_counter()
            long_view.locator(".wb-more-row").first.click()   # 100 more loop nests in the tree
            more.click()                                      # 400 more script lines
            assert long_view.locator(".wb-line").count() == 800
            assert long_view.locator(".wb-node-loop > .wb-row").count() == 200
            long_view.locator(".wb-node-loop > .wb-row").nth(150).locator(".wb-label").click()
            long_view.locator(".wb-line.wb-hl").first.wait_for()
            elapsed = time.perf_counter() - t0
            assert elapsed < 30.0, f"the long program took {elapsed:.1f} s to respond"  # a freeze guard
            assert long_view.locator(".wb-line.wb-hl").first.inner_text().find("for i in wb.serial(64)") >= 0
            _shot(long_view, "viz-long-program.png")
            _shot(page, "viz-notebook.png")
            _check_machine_code(page, sched)
            _check_model_graph(page, model_graph)
            _check_issue15_views(page, jupyterlab, prog, moved, cells)
        except Exception:
            try:  # what the page looked like when it failed
                _shot(page, "viz-failure.png")
                (ARTIFACTS / "viz-failure.log").write_text(jupyterlab["log"].read_text())
            except Exception:
                pass
            raise
        finally:
            browser.close()


# a model graph (issue 17): three repeated layers, fused; inserted before the fixture's failing last cell
GRAPH_CELL = """from workbench.frontend import nn

class Block(nn.Module):
    def __init__(self):
        self.fc, self.norm = nn.Linear(16, 16), nn.LayerNorm(16)
    def forward(self, x):
        return self.norm(wb.op.add(x, nn.gelu(self.fc(x))))

class Stack(nn.Module):
    def __init__(self):
        self.layers = nn.ModuleList([Block() for _ in range(3)])
    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

gmod, _ = Stack().export({"forward": {"x": nn.spec(("n", 16), "float32")}})
wb.transform.Sequential([wb.transform.LegalizeOps(), wb.transform.FuseOps(), wb.transform.FuseTIR()])(gmod)"""
ERROR_CELL = 7


def _add_graph_cell(path: Path) -> None:
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    nb.cells.insert(ERROR_CELL - 1, nbformat.v4.new_code_cell(GRAPH_CELL))
    nbformat.write(nb, str(path))


def _check_model_graph(page, view) -> None:
    """The graph widget: layers 1 and 2 collapsed; a click on a kernel node shows that kernel's loops and
    script; a click on a collapsed layer draws it."""
    assert view.locator(".wb-gpane svg").count() == 1
    assert view.locator("g.node#wbg-layer-2").count() == 1 and view.locator("g.cluster#wbg-cl-layer-0").count() == 1
    assert not view.locator(".wb-gkernel").is_visible()
    node = view.locator("g.node.wb-clickable[id^='wbg-b-']", has_text="fused_linear_gelu").first
    node.click()
    view.locator(".wb-gkernel .wb-node-loop > .wb-row").first.wait_for()
    assert "kernel fused_linear_gelu" in view.locator(".wb-gdetail").inner_text()
    assert 'wb.block("linear_matmul")' in view.locator(".wb-gkernel .wb-code-lines").inner_text()
    assert view.locator("g.node.wb-gsel").count() == 1
    _shot(view, "viz-model-graph-kernel.png")
    view.locator("g.node#wbg-layer-2").click()
    view.locator("g.cluster#wbg-cl-layer-2").wait_for()
    _shot(view, "viz-model-graph-expanded.png")


def _check_machine_code(page, sched) -> None:
    """The cost heat map on the loop tree, and the assembly link: a click on a loop lights up its assembly
    lines; a click on an assembly line selects its loop (issue 15, beyond the anchors)."""
    sched.scroll_into_view_if_needed()
    sched.locator(".wb-cost-toggle").click()
    sched.locator(".wb-row .wb-cost").first.wait_for()
    assert "100%" in sched.locator(".wb-node-block > .wb-row", has_text="block C").locator(".wb-cost").inner_text() \
        or "%" in sched.locator(".wb-row .wb-cost").first.inner_text()
    assert "total" in sched.locator(".wb-cost-note").inner_text()
    _shot(sched, "viz-cost-heatmap.png")
    sched.locator(".wb-mc-toggle").click()
    sched.locator(".wb-mc-asm .wb-mc-line.wb-mc-located").first.wait_for(timeout=60_000)
    k_row = sched.locator(".wb-row:has(> .wb-label > .wb-var:text-is('k'))")
    k_row.locator(".wb-label").click()
    sched.locator(".wb-mc-asm .wb-mc-line.wb-hl").first.wait_for()
    assert sched.locator(".wb-mc-asm .wb-mc-line.wb-hl").count() >= 3
    assert "loop k:" in sched.locator(".wb-mc-head").inner_text()
    _shot(sched, "viz-machine-code-loop.png")
    # an assembly line of another loop (its counter and branch), or of a block: a click selects it
    lines = sched.locator(".wb-mc-asm .wb-mc-line.wb-mc-located:not(.wb-hl)")
    target = next((ln for ln in lines.all() if ln.get_attribute("data-node").startswith("loop-")), lines.first)
    node, k = target.get_attribute("data-node"), target.get_attribute("data-k")
    target.click()
    page.wait_for_function(
        f"() => document.querySelectorAll('.wb-root')[1].querySelector('.wb-row.wb-sel')?.dataset.id === '{node}'")
    clicked = sched.locator(f".wb-mc-asm .wb-mc-line[data-k='{k}']")
    assert "wb-hl" in clicked.get_attribute("class").split()   # the clicked line is one of the selection's
    _shot(sched, "viz-machine-code-asm-click.png")
    sched.locator(".wb-mc-toggle").click()
    sched.locator(".wb-cost-toggle").click()


def _wait_step(page, root_index: int, step: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('.wb-root')[{root_index}].querySelector('.wb-step-on')"
        f"?.dataset.step === '{step}'")


def _check_issue15_views(page, jupyterlab, prog, moved, cells) -> None:
    """Buffers, a selection that stays on its loop across steps, the tree-level diff, the error view of
    an uncaught error, the narrow layout, the dark theme, the saved notebook reopened without the
    widgets' models, and the nbconvert HTML export."""
    # the buffers panel: name, shape, dtype, scope of parameters and intermediates
    bufs = prog.locator(".wb-buf-row")
    assert bufs.count() == 4
    assert [c.strip() for c in bufs.nth(3).locator("td").all_text_contents()[:4]] == [
        "C", "[64, 64]", "float32", "global"]

    # a selected loop stays that loop at other steps (or nothing): ids name loops, not positions
    _wait_step(page, 5, 2)
    k_row = moved.locator(".wb-row:has(> .wb-label > .wb-var:text-is('k'))")
    k_row.locator(".wb-label").click()
    page.wait_for_function("() => document.querySelectorAll('.wb-root')[5].querySelector('.wb-row.wb-sel')")
    for step in (0, 1, 2):
        moved.locator(f".wb-step[data-step='{step}']").click()
        _wait_step(page, 5, step)
        page.wait_for_timeout(150)
        sel = moved.locator(".wb-row.wb-sel")
        assert sel.count() == 1 and sel.locator(".wb-var").inner_text() == "k", sel.all_inner_texts()
    _shot(moved, "viz-selection-stable.png")

    # the tree-level diff of reverse_compute_at: block D moved, its new loops added; the text diff a click away
    moved.locator(".wb-tab[data-tab='diff']").click()
    moved_row = moved.locator(".wb-td-moved", has_text='block "D" moved under loop ax1')
    moved_row.wait_for()
    assert moved.locator(".wb-td-added").count() == 2
    assert not moved.locator(".wb-diff-row").first.is_visible()
    _shot(moved, "viz-tree-diff.png")
    moved.locator(".wb-textdiff-toggle").click()
    moved.locator(".wb-diff-row.wb-add").first.wait_for()
    assert moved.locator(".wb-step[data-step='2']").inner_text().endswith('reverse_compute_at(block "D", loop i_0)')
    moved.locator(".wb-tab[data-tab='loops']").click()

    # an uncaught ScheduleError: the error view (place marked), a traceback without workbench's frames
    err_cell = cells.nth(ERROR_CELL)
    view = err_cell.locator(".wb-static-error-view")
    err_cell.scroll_into_view_if_needed()
    assert view.is_visible() and "ReductionLoopError" in _drawn_text(page, view)
    assert "# <-- here" in view.inner_text()
    trace = _drawn_text(page, err_cell.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"))
    assert "ReductionLoopError" in trace and "workbench/schedule" not in trace and "interactiveshell" not in trace
    _shot(err_cell, "viz-uncaught-error.png")

    # a narrow output area: one column, the script scrolls sideways instead of being cut
    page.set_viewport_size({"width": 900, "height": 1000})
    page.wait_for_timeout(300)
    cols = prog.locator(".wb-panes").evaluate("e => getComputedStyle(e).gridTemplateColumns.split(' ').length")
    assert cols == 1
    assert prog.locator(".wb-code").evaluate("e => getComputedStyle(e).overflowX") == "auto"
    _shot(prog, "viz-narrow.png")
    page.set_viewport_size({"width": 1500, "height": 1000})

    # the dark theme: JupyterLab's colours, readable buttons
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.wait_for_timeout(500)
    lum = "e => { const m = getComputedStyle(e)[PROP].match(/\\d+(\\.\\d+)?/g).map(Number);" \
          " return (0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]) / 255; }"
    assert moved.evaluate(lum.replace("PROP", "'backgroundColor'")) < 0.3
    assert moved.locator(".wb-prev").evaluate(lum.replace("PROP", "'color'")) > 0.6
    assert moved.locator(".wb-title").evaluate(lum.replace("PROP", "'color'")) > 0.6
    _shot(moved, "viz-dark-theme.png")
    _shot(prog, "viz-dark-theme-program.png")

    # save, stop the kernel, reopen: the widgets' models are gone; the static views show, no error text
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1000)
    _delete_sessions(jupyterlab)
    page.goto(f"{jupyterlab['base']}/lab/tree/viz.ipynb?token={jupyterlab['token']}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .wb-fallback').length >= 7")
    page.wait_for_timeout(3000)  # the widget manager gives up on the missing models
    assert page.locator(".wb-root").count() == 0
    fallbacks = page.locator(".jp-Notebook .wb-fallback")
    assert fallbacks.count() == 7 and all(f.is_visible() for f in fallbacks.all())
    assert all(not e.is_visible() for e in page.get_by_text("Error displaying widget").all())
    assert page.locator(".wb-fallback .wb-static-program").first.is_visible()
    _shot(page, "viz-reopened-without-models.png")

    # nbconvert's HTML of a notebook executed with default settings (widget state saved): every program shows
    html = _executed_html(jupyterlab["dir"])
    page.goto(html.as_uri())
    fallbacks = page.locator(".wb-fallback")
    assert fallbacks.count() == 7 and all(f.is_visible() for f in fallbacks.all())
    assert page.locator(".wb-fallback .wb-static-graph-view svg").first.is_visible()
    assert page.locator(".wb-static-error-view").is_visible()
    for name in ("wb-static-program", "wb-static-schedule"):
        assert page.locator(f".wb-fallback .{name}").first.is_visible()
    _shot(page, "viz-nbconvert-html.png")


def _drawn_text(page, locator, timeout_s: float = 5.0) -> str:
    """The locator's text once drawn (JupyterLab does not draw cells far off screen: innerText is empty)."""
    deadline = time.time() + timeout_s
    text = locator.inner_text()
    while not text and time.time() < deadline:
        page.wait_for_timeout(100)
        text = locator.inner_text()
    return text


def _delete_sessions(jupyterlab) -> None:
    base, token = jupyterlab["base"], jupyterlab["token"]
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as r:
        sessions = json.load(r)
    for sess in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{sess['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()


def _executed_html(work: Path) -> Path:
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(work / "viz.ipynb"), as_version=4)
    for cell in nb.cells:
        cell.outputs = []
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()
    body, _ = HTMLExporter().from_notebook_node(nb)
    out = work / "executed.html"
    out.write_text(body)
    return out
