"""``report.html`` for a run: the config, the last logged losses, the latest sample grid, and
input → output image tables for folders the model translated.

Images are referenced by relative links (nothing is copied), so the report opens from disk next
to the run and its output folders.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from urllib.parse import quote

from translate.errors import TranslateError
from translate.io.atomic import atomic_write_text
from translate.io.images import scan_images

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
img { max-width: 256px; image-rendering: auto; }
img.grid { max-width: 100%; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; }
"""


def _link(target: Path, report_dir: Path) -> str:
    return quote(Path(os.path.relpath(target.resolve(), report_dir.resolve())).as_posix())


def _comparison(title: str, inputs: Path, outputs: Path, report_dir: Path, limit: int) -> str:
    rows = []
    for src in scan_images(inputs)[:limit]:
        rel = src.relative_to(inputs) if inputs.is_dir() else Path(src.name)
        matches = sorted(outputs.glob(quote_glob(rel.with_suffix("").as_posix()) + ".*"))
        out = next((m for m in matches if not m.name.startswith(".")), None)
        cell = (f'<img src="{_link(out, report_dir)}" alt="output">' if out
                else "<em>no output</em>")
        image = f'<img src="{_link(src, report_dir)}" alt="input">'
        rows.append(f"<tr><td>{html.escape(rel.as_posix())}</td><td>{image}</td><td>{cell}</td></tr>")
    if not rows:
        raise TranslateError(f"no images under {inputs} to show in the report")
    return (f"<h2>{html.escape(title)}</h2><table><tr><th>file</th><th>input</th>"
            f"<th>output</th></tr>{''.join(rows)}</table>")


def quote_glob(text: str) -> str:
    """Escape glob metacharacters in a file name."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 comparisons: list[tuple[str, Path, Path]] = (), limit: int = 50) -> Path:
    """Write the report; returns its path (default ``RUN_DIR/report.html``).

    Args:
        comparisons: (title, input folder, output folder) triples, shown as image tables.
        limit: images per comparison.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise TranslateError(f"{run_dir} is not a run directory (no config.yaml)")
    out = Path(out) if out else run_dir / "report.html"
    report_dir = out.parent
    report_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>translate — {html.escape(run_dir.name)}</h1>"]
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        if lines:
            last = lines[-1]
            cells = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" if isinstance(v, float)
                else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                for k, v in last.items())
            parts.append(f"<h2>Last logged step</h2><table>{cells}</table>")
    for title, inputs, outputs in comparisons:
        parts.append(_comparison(title, Path(inputs), Path(outputs), report_dir, limit))
    samples = sorted((run_dir / "samples").glob("*.png"))
    if samples:
        parts.append(f"<h2>Latest training samples ({html.escape(samples[-1].name)})</h2>"
                     f'<img class="grid" src="{_link(samples[-1], report_dir)}" alt="samples">')
    config = (run_dir / "config.yaml").read_text(encoding="utf-8")
    parts.append(f"<h2>Config</h2><pre>{html.escape(config)}</pre>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>translate report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    atomic_write_text(out, page)
    return out
