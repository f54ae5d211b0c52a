"""The widgets in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Starts JupyterLab on 127.0.0.1 (random free port, a token, no browser), opens the
fixture notebook in a temp dir, runs it, and checks that the widgets render, that
selecting a loop highlights its script lines (and clicking a line selects its
node), that choosing another schedule step changes the program shown, that the
error step marks the offending loop, and that a click on a block in the block
graph selects it in the loop nest. Screenshots go to ``test-artifacts/``.
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

    write_notebook(jupyterlab["dir"] / "viz.ipynb")
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
            page.wait_for_function("document.querySelectorAll(\".wb-root[data-ready='1']\").length >= 5",
                                   timeout=45_000)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert errors.count() == 0, errors.first.inner_text()
            assert roots.count() == 5
            prog, sched, graph, sched2, long_view = (roots.nth(k) for k in range(5))

            # --- the PrimFunc widget: select a loop, its lines light up -------------------
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
            assert "sch.split" in steps.nth(1).inner_text()
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
        except Exception:
            try:  # what the page looked like when it failed
                _shot(page, "viz-failure.png")
                (ARTIFACTS / "viz-failure.log").write_text(jupyterlab["log"].read_text())
            except Exception:
                pass
            raise
        finally:
            browser.close()
