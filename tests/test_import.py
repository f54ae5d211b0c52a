"""`import workbench` stays light: heavy libraries load only on first use."""
import subprocess
import sys

HEAVY = ["llvmlite", "matplotlib", "pandas", "pyopencl", "graphviz", "ipywidgets", "anywidget", "tqdm"]


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_does_not_load_heavy_libraries():
    loaded = _run(
        "import sys, workbench\n"
        "from workbench import te\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert loaded == "", f"import workbench loaded {loaded}"


def test_import_time_is_reported_and_reasonable():
    # Measured in a fresh interpreter; generous bound (the machine is shared), the figure goes in notes.
    t = float(_run("import time; t = time.perf_counter(); import workbench; print(time.perf_counter() - t)"))
    assert t < 2.0, f"import workbench took {t:.2f} s"


def test_every_public_name_resolves():
    # No scaffolding: each name that dir(workbench) lists can be used (none raises on access).
    out = _run(
        "import workbench as wb\n"
        "bad = []\n"
        "for n in dir(wb):\n"
        "    try:\n"
        "        getattr(wb, n)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{n}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))"
    )
    assert out == "", f"names listed by dir(workbench) that fail:\n{out}"


def test_every_schedule_error_is_public():
    import workbench as wb
    from workbench.schedule import errors

    for name in errors.__all__:
        assert getattr(wb, name) is getattr(errors, name)
        assert issubclass(getattr(wb, name), wb.ScheduleError)
