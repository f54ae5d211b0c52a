"""Write the tutorial notebooks (``notebooks/*.ipynb``) from the cell texts in ``notebooks/_cells/``.

Run ``.venv/bin/python notebooks/_build.py`` after editing a cell file; the notebooks are
written without outputs (execute them in Jupyter, or let ``tests/test_notebooks.py`` do it).

A cell file is plain text: cells are separated by a line ``# %% [markdown]`` (a markdown
cell follows) or ``# %%`` (a code cell follows), the "percent" format of Jupytext/VS Code.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def parse_cells(text: str) -> list:
    """Cells of a percent-format text, as nbformat cells (leading/trailing blank lines dropped)."""
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind is not None and body.strip():
            if kind == "markdown":
                body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.splitlines())
                cells.append(nbformat.v4.new_markdown_cell(body))
            else:
                cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(name: str) -> Path:
    """Write ``notebooks/<name>.ipynb`` from ``notebooks/_cells/<name>.py``; returns its path."""
    src = HERE / "_cells" / f"{name}.py"
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_cells(src.read_text())
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    out = HERE / f"{name}.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, str(out))
    return out


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in (HERE / "_cells").glob("[0-9]*.py"))
    for name in names:
        print("wrote", build(name).relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
