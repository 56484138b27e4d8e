"""``report.html`` for a run: the eval tables (``RUN/eval*.json``), loss curves, the last logged
losses, the latest sample grid, input → output image tables for folders the model translated,
sections written by other commands (``--section FILE``: a scored table and image columns, e.g.
``translate showcase``), and the config.

A section file is JSON, its image paths relative to its own folder::

    {"title": "…", "note": "…",                      (note optional)
     "columns": ["PSNR (dB)", "SSIM"],                the metric columns
     "rows": [["bicubic", 25.1, 0.71], …],            a name, then a number (or null) per column
     "image_columns": ["LR", "bicubic", …],           (optional, with "images")
     "images": [["baby", "baby_lr.png", …], …]}       a name, then an image per image column

Images are referenced by relative links (nothing is copied), so the report opens from disk next
to the run and its output folders. The loss curves are PNG files next to the report:
``<report name>_<group>.png``, one per loss group (``D_A``/``D_B`` → ``D``, …). The page and its
PNGs are written all or nothing (``atomic_write_all``): a report that fails leaves no file.
File names that are not UTF-8 are shown with ``\\xNN`` escapes and linked by their raw bytes.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from translate.errors import TranslateError
from translate.io.atomic import atomic_write_all
from translate.io.images import scan_images
from translate.io.paths import display
from translate.io.regular import check_regular, read_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
img { max-width: 256px; image-rendering: auto; }
img.grid { max-width: 100%; }
img.plot { max-width: 600px; }
img.cell { width: 160px; max-width: none; image-rendering: pixelated; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; }
"""


def _link(target: Path, report_dir: Path) -> str:
    # Percent-encode the raw bytes: a name that is not UTF-8 still links to its file.
    relative = Path(os.path.relpath(target.resolve(), report_dir.resolve())).as_posix()
    return quote(os.fsencode(relative))


def _comparison(title: str, inputs: Path, outputs: Path, report_dir: Path, limit: int) -> str:
    rows = []
    for src in scan_images(inputs)[:limit]:
        rel = src.relative_to(inputs) if inputs.is_dir() else Path(src.name)
        matches = sorted(outputs.glob(quote_glob(rel.with_suffix("").as_posix()) + ".*"))
        out = next((m for m in matches if not m.name.startswith(".")), None)
        cell = (f'<img src="{_link(out, report_dir)}" alt="output">' if out
                else "<em>no output</em>")
        image = f'<img src="{_link(src, report_dir)}" alt="input">'
        rows.append(f"<tr><td>{html.escape(display(rel.as_posix()))}</td><td>{image}</td>"
                    f"<td>{cell}</td></tr>")
    if not rows:
        raise TranslateError(f"no images under {display(inputs)} to show in the report")
    return (f"<h2>{html.escape(title)}</h2><table><tr><th>file</th><th>input</th>"
            f"<th>output</th></tr>{''.join(rows)}</table>")


# Logged values that are not losses: the x axis, counters and speed.
NOT_PLOTTED = ("step", "epoch", "time", "it_per_s", "nonfinite_skipped")


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of ``metrics.jsonl`` and how many lines were skipped: a line that is not
    JSON (torn by a kill, bytes that are not UTF-8) or not an object (``[1, 2]``, ``3``,
    ``"x"``), and a ``step`` that is not a number, are never plotted."""
    records, skipped = [], 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            record = None
        step = record.get("step", 0) if isinstance(record, dict) else None
        if not isinstance(step, int | float) or isinstance(step, bool):
            skipped += 1
            continue
        records.append(record)
    return records, skipped


def loss_groups(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Loss names by group: the part before the first ``_`` (``cycle_A``, ``cycle_B`` → ``cycle``;
    ``D_A``, ``D_B`` → ``D``); the learning rate is a group of its own."""
    groups: dict[str, list[str]] = {}
    for record in records:
        for key, value in record.items():
            if key in NOT_PLOTTED or not isinstance(value, int | float):
                continue
            names = groups.setdefault(key.split("_")[0], [])
            if key not in names:
                names.append(key)
    return groups


def loss_plots(records: list[dict[str, Any]], prefix: Path) -> list[tuple[str, Path, bytes]]:
    """One PNG per loss group against the step, rendered (not written): ``(group, path, png)``
    with ``path`` = ``{prefix}_{group}.png``.

    Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plots = []
    for group, names in loss_groups(records).items():
        fig = Figure(figsize=(6, 3.2), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for name in names:
            points = [(r["step"], r[name]) for r in records
                      if "step" in r and isinstance(r.get(name), int | float)
                      and math.isfinite(r[name])]
            if points:
                ax.plot(*zip(*points, strict=True), label=name, linewidth=1.2)
        ax.set_xlabel("step")
        ax.set_title("learning rate" if group == "lr" else f"{group} losses")
        ax.grid(alpha=0.3)
        if len(names) > 1:
            ax.legend(fontsize=8)
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png")
        plots.append((group, prefix.parent / f"{prefix.name}_{group}.png", png.getvalue()))
    return plots


def _flatten(value: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in _flatten(v, f"{key}.{k}" if key else k)]
    if isinstance(value, list) and len(value) > 12:
        return [(key, f"[{len(value)} values]")]
    return [(key, value)]


def _cell(value: Any) -> str:
    return html.escape(f"{value:.4g}" if isinstance(value, float) else str(value))


def format_number(value: float) -> str:
    """A score as tables show it: two decimals from 10 up (PSNR 28.20 dB), else four
    significant digits (SSIM 0.7802)."""
    return f"{value:.2f}" if math.isfinite(value) and abs(value) >= 10 else f"{value:.4g}"


def eval_tables(run_dir: Path) -> list[str]:
    """An HTML table for every ``RUN/eval*.json``: the translation table (both directions) for
    ``translate eval`` of a cyclegan run, a key/value table for any other."""
    parts = []
    for path in sorted(run_dir.glob("eval*.json")):
        try:
            data = json.loads(read_text(path, "evaluation file", encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TranslateError(f"{path} is not valid JSON") from None
        title = f"<h2>Evaluation ({html.escape(path.name)})</h2>"
        if isinstance(data, dict) and "directions" in data and "metric" in data:
            from translate.eval.translation import translation_rows

            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                           for row in translation_rows(data))
            parts.append(f"{title}<table><tr><th>metric</th><th>A → B</th><th>B → A</th></tr>"
                         f"{rows}</table><p>features: {html.escape(str(data.get('features')))}"
                         f"; test images: {html.escape(str(data.get('dir_a')))}, "
                         f"{html.escape(str(data.get('dir_b')))}</p>")
        else:
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>"
                           for k, v in _flatten(data))
            parts.append(f"{title}<table>{rows}</table>")
    return parts


def _section_error(path: Path, what: str) -> TranslateError:
    return TranslateError(f"section {display(path)}: {what}")


def read_section(path: Path) -> dict[str, Any]:
    """A section file, checked against the format in the module docstring.

    Raises:
        TranslateError: a missing or invalid file, naming it and the offending key; an image it
            names that does not exist.
    """
    path = Path(path)
    check_regular(path, "section")  # a FIFO would block the read forever
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _section_error(path, "no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _section_error(path, f"not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise _section_error(path, "expected a JSON object")
    unknown = sorted(set(data) - {"title", "note", "columns", "rows", "image_columns", "images"})
    if unknown:
        raise _section_error(path, f"unknown key {unknown[0]!r}")
    if not isinstance(data.get("title"), str) or not data["title"]:
        raise _section_error(path, "'title' must be a non-empty string")
    if not isinstance(data.get("note", ""), str):
        raise _section_error(path, "'note' must be a string")

    def names(key: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _section_error(path, f"'{key}' must be a list of strings")
        return value

    def table(key: str, width: int, cell: Any, kind: str) -> None:
        rows = data.get(key, [])
        if not isinstance(rows, list):
            raise _section_error(path, f"'{key}' must be a list of rows")
        for i, row in enumerate(rows):
            if (not isinstance(row, list) or len(row) != width + 1
                    or not isinstance(row[0], str) or not all(map(cell, row[1:]))):
                raise _section_error(path, f"'{key}' row {i}: expected a name and {width} "
                                     f"{kind}, got {json.dumps(row)[:80]}")

    table("rows", len(names("columns")), lambda v: v is None or (
        isinstance(v, int | float) and not isinstance(v, bool)), "numbers (or null)")
    table("images", len(names("image_columns")), lambda v: isinstance(v, str), "image paths")
    for row in data.get("images", []):
        for rel in row[1:]:
            if not (path.parent / rel).is_file():
                raise _section_error(path, f"image {rel!r} not found beside it")
    return data


def render_section(path: Path, report_dir: Path) -> str:
    """The HTML of a section file (``read_section``): its title, note, metric table and image
    table, images linked relative to ``report_dir``."""
    path = Path(path)
    data = read_section(path)
    parts = [f"<h2>{html.escape(data['title'])}</h2>"]
    if data.get("note"):
        parts.append(f"<p>{html.escape(data['note'])}</p>")
    if data.get("rows"):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in data["columns"])
        rows = "".join(
            f"<tr><td>{html.escape(row[0])}</td>"
            + "".join(f'<td class="num">{"—" if v is None else format_number(v)}</td>'
                      for v in row[1:]) + "</tr>" for row in data["rows"])
        parts.append(f"<table><tr><th></th>{head}</tr>{rows}</table>")
    if data.get("images"):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in data["image_columns"])
        rows = "".join(
            f"<tr><td>{html.escape(row[0])}</td>" + "".join(
                f'<td><img class="cell" src="{_link(path.parent / rel, report_dir)}" '
                f'alt="{html.escape(column)}"></td>'
                for column, rel in zip(data["image_columns"], row[1:], strict=True)) + "</tr>"
            for row in data["images"])
        parts.append(f"<table><tr><th>file</th>{head}</tr>{rows}</table>")
    return "".join(parts)


def quote_glob(text: str) -> str:
    """Escape glob metacharacters in a file name."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 comparisons: list[tuple[str, Path, Path]] = (), limit: int = 50,
                 sections: list[Path] = ()) -> Path:
    """Write the report; returns its path (default ``RUN_DIR/report.html``).

    Args:
        comparisons: (title, input folder, output folder) triples, shown as image tables.
        limit: images per comparison.
        sections: section files (format in the module docstring), shown after the eval tables
            in the order given; all are read and checked before anything is written.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise TranslateError(f"{run_dir} is not a run directory (no config.yaml)")
    out = Path(out) if out else run_dir / "report.html"
    report_dir = out.parent
    files: dict[Path, bytes] = {}  # written together at the end, all or nothing
    parts = [f"<h1>translate — {html.escape(display(run_dir.name))}</h1>", *eval_tables(run_dir),
             *(render_section(Path(section), report_dir) for section in sections)]
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        lines, skipped = read_metrics(metrics)
        if skipped:
            parts.append(f"<p>{skipped} line(s) of metrics.jsonl skipped: not a JSON object "
                         "(damaged or edited).</p>")
        plots = loss_plots(lines, out.with_suffix("")) if lines else []
        files |= {path: png for _, path, png in plots}
        if plots:
            parts.append("<h2>Loss curves</h2>" + "".join(
                f'<img class="plot" src="{_link(path, report_dir)}" alt="{html.escape(group)}">'
                for group, path, _ in plots))
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
        parts.append(f"<h2>Latest training samples ({html.escape(display(samples[-1].name))})</h2>"
                     f'<img class="grid" src="{_link(samples[-1], report_dir)}" alt="samples">')
    config = (run_dir / "config.yaml").read_text(encoding="utf-8")
    parts.append(f"<h2>Config</h2><pre>{html.escape(config)}</pre>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>translate report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    files[out] = page.encode("utf-8")
    try:
        atomic_write_all(files)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise TranslateError(f"cannot write the report {display(out)}: {reason}") from None
    return out
