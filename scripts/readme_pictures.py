"""Regenerate the README's pictures: the browser test's screenshots, shrunk, plus a benchmark plot and roofline.

Run the browser test first (it writes ``test-artifacts/``), then::

    .venv/bin/python -m pytest -q -p no:warnings tests/viz/test_browser.py -x
    .venv/bin/python scripts/readme_pictures.py

Screenshots are cropped to at most ``MAX_HEIGHT`` pixels, scaled to ``WIDTH`` and saved as
palette PNGs in ``docs/images/`` (tens of kB each). The benchmark plot and roofline come
from a small benchmark timed on this machine (naive vs tiled matmul).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
IMAGES = REPO / "docs" / "images"
WIDTH, MAX_HEIGHT = 760, 560

#: README picture <- browser-test screenshot
SCREENSHOTS = {
    "schedule-widget.png": "viz-schedule-step1.png",
    "block-graph.png": "viz-block-graph.png",
    "machine-code.png": "viz-machine-code-loop.png",
    "cost-heatmap.png": "viz-cost-heatmap.png",
}


def shrink(src: Path, dst: Path) -> None:
    from PIL import Image

    img = Image.open(src).convert("RGB")
    img = img.crop((0, 0, img.width, min(img.height, int(MAX_HEIGHT * img.width / WIDTH))))
    img = img.resize((WIDTH, round(img.height * WIDTH / img.width)), Image.LANCZOS)
    img.quantize(colors=128).save(dst, optimize=True)


def benchmark_pictures() -> None:
    import matplotlib

    matplotlib.use("Agg")
    sys.path.insert(0, str(REPO))
    import workbench as wb
    from workbench import te

    n = 128
    A = te.placeholder((n, n), "float32", name="A")
    B = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis(n, name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    naive = wb.create_prim_func([A, B, C])
    sch = wb.Schedule(naive)
    i, j, kk = sch.get_loops(sch.get_block("C"))
    jo, ji = sch.split(j, factors=[None, 16])
    sch.reorder(i, jo, kk, ji)
    sch.vectorize(ji)
    res = wb.benchmark({"naive loops": naive, "vectorized j": sch}, min_time=0.05, progress=False)
    for name, fig in (("benchmark-plot.png", res.plot()), ("roofline.png", res.roofline())):
        fig.set_size_inches(6.4, 3.6)
        fig.savefig(IMAGES / name, dpi=90, bbox_inches="tight")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    missing = [s for s in SCREENSHOTS.values() if not (ARTIFACTS / s).exists()]
    if missing:
        sys.exit(f"run the browser test first: {', '.join(missing)} not in {ARTIFACTS}")
    for dst, src in SCREENSHOTS.items():
        shrink(ARTIFACTS / src, IMAGES / dst)
    benchmark_pictures()
    for p in sorted(IMAGES.glob("*.png")):
        print(f"{p.relative_to(REPO)}: {p.stat().st_size // 1024} kB")


if __name__ == "__main__":
    main()
