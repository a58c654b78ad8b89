"""One static HTML page for a report: tables, figures and notes, with no external assets.

The page is self-contained apart from its images, which are referenced by paths relative to
the page, so the report folder can be copied, zipped or served from anywhere. A few lines of
inline script record on `<body data-images>` whether every image loaded ("ok") or how many did
not ("broken:N"); the headless-browser test reads that attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote

INDEX_FILE = "index.html"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: left; }
th { background: #e8e8e8; }
tr:nth-child(even) td { background: #f5f5f5; }
td.num { font-family: ui-monospace, monospace; text-align: right; white-space: nowrap; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
p.note { font-size: 14px; color: #444; }
"""

# Runs on `load`, after every image has either loaded or failed.
SCRIPT = """
window.addEventListener("load", function () {
  var broken = 0;
  var images = document.getElementsByTagName("img");
  for (var i = 0; i < images.length; i++) {
    if (!(images[i].complete && images[i].naturalWidth > 0)) { broken++; }
  }
  document.body.dataset.images = broken === 0 ? "ok" : "broken:" + broken;
});
"""


@dataclass
class Section:
    """One titled block of the page: a table, then its figures, then free-text notes."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    images: list[tuple[str, str]] = field(default_factory=list)  # (caption, path rel. to page)
    notes: list[str] = field(default_factory=list)


def _is_number(text: str) -> bool:
    """Cells such as "97.31", "97.3 ± 0.2" or "-1.5e-3" are right-aligned in monospace."""
    head = text.strip().split(" ", 1)[0].rstrip("%")
    try:
        float(head)
    except ValueError:
        return False
    return True


def _cell(text: str) -> str:
    css = ' class="num"' if _is_number(str(text)) else ""
    return f"<td{css}>{escape(str(text))}</td>"


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    if not columns and not rows:
        return []
    header = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    lines = ["<table>", f"<thead><tr>{header}</tr></thead>", "<tbody>"]
    lines += [f"<tr>{''.join(_cell(value) for value in row)}</tr>" for row in rows]
    return lines + ["</tbody>", "</table>"]


def _image_src(path: str) -> str:
    """`path` as a URL relative to the page; absolute paths and URLs would break a copied
    report folder, so they are refused."""
    posix = Path(path).as_posix()
    if Path(path).is_absolute() or "://" in posix or posix.startswith("../"):
        raise ValueError(f"image {path!r}: must be a path inside the report folder")
    return quote(posix)


def _figure(caption: str, path: str) -> str:
    src = escape(_image_src(path), quote=True)
    return (
        f'<figure><img src="{src}" alt="{escape(caption, quote=True)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _section(section: Section) -> list[str]:
    lines = ["<section>", f"<h2>{escape(section.title)}</h2>"]
    lines += _table(section.columns, section.rows)
    lines += [_figure(caption, path) for caption, path in section.images]
    lines += [f'<p class="note">{escape(note)}</p>' for note in section.notes]
    return lines + ["</section>"]


def render(title: str, sections: list[Section]) -> str:
    """The whole page as text (a pure function of its arguments)."""
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f"<script>{SCRIPT}</script>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
    ]
    for section in sections:
        lines += _section(section)
    return "\n".join(lines + ["</body>", "</html>", ""])


def write_index(out_dir: Path, title: str, sections: list[Section]) -> Path:
    """Write `out_dir/index.html` (image paths in `sections` are relative to `out_dir`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / INDEX_FILE
    path.write_text(render(title, sections), encoding="utf-8")
    return path
