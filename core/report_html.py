"""The HTML pieces of an audit report: the page with plotly.js embedded once, tables, charts and thumbnails.
Everything the page needs is inside it: it opens without a network."""

from __future__ import annotations

import base64
import functools
import html
import io
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

CARTESIAN_BUNDLE = Path(__file__).resolve().parent / "assets" / "plotly-cartesian.min.js"
CARTESIAN_TRACES = {"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image",
                    "pie", "scatter", "scatterternary", "violin"}  # what the cartesian bundle draws
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:24px;
color:#1f2937;line-height:1.45}
h1{font-size:1.7em;margin-bottom:4px} h2{border-bottom:1px solid #e5e7eb;padding-bottom:4px;margin-top:34px}
h3{margin-bottom:6px} .muted{color:#6b7280;font-size:.92em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.92em} td,th{border:1px solid #e5e7eb;padding:3px 9px;
text-align:left} th{background:#f9fafb} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.diff td{background:#fff7ed} .grid table{width:100%} td{overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:10px 0} .card{border:1px solid #e5e7eb;border-radius:8px;
padding:8px 14px;min-width:130px} .card b{display:block;font-size:1.45em}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px} .grid>div{min-width:0}
.thumbs{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0} figure.thumb{margin:0;text-align:center;width:112px}
figure.thumb img{width:84px;height:84px;image-rendering:pixelated;border:1px solid #d1d5db}
figure.thumb figcaption{font-size:.78em;color:#374151}
.note{background:#f3f4f6;border-left:4px solid #9ca3af;padding:6px 12px;margin:10px 0}
@media print{.modebar-container{display:none!important} .plotly-graph-div,figure.thumb,tr,.card{break-inside:avoid}
h2,h3{break-after:avoid}}
"""


def esc(value) -> str:
    return html.escape(str(value))


def _version(bundle: str) -> str | None:
    found = re.search(r"plotly\.js (?:\([\w -]+\) )?v(\d+\.\d+\.\d+)", bundle[:300])
    return found.group(1) if found else None


@functools.lru_cache(maxsize=1)
def plotly_js() -> tuple[str, str]:
    """(the plotly.js the report embeds, its name). plotly.js's official "cartesian" bundle (npm
    plotly.js-cartesian-dist-min: scatter, bar, heatmap and the other 2-D traces; 1.5 MB) when it is the same
    plotly.js version as the plotly package's full bundle (4.8 MB), which is the fallback: a third of the file
    and half the time to open it."""
    from plotly.offline import get_plotlyjs

    full = get_plotlyjs()
    try:
        cartesian = CARTESIAN_BUNDLE.read_text(encoding="utf-8")
    except OSError:
        return full, "plotly.js (full bundle)"
    if _version(cartesian) is None or _version(cartesian) != _version(full):
        return full, "plotly.js (full bundle)"
    return cartesian, "plotly.js (cartesian bundle)"


def page(title: str, body: Iterable[str]) -> str:
    """The whole document: plotly.js once in the head, then the sections."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style><script type=\"text/javascript\">{plotly_js()[0]}</script></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def chart(figure, height: int | None = None) -> str:
    """A Plotly figure as a div that uses the page's plotly.js (include_plotlyjs=False)."""
    if height:
        figure.update_layout(height=height)
    return figure.to_html(full_html=False, include_plotlyjs=False,
                          config={"displaylogo": False, "responsive": True})


def table(frame: pd.DataFrame, formats: dict[str, str] | None = None, index: bool = False,
          highlight: Sequence[bool] | None = None) -> str:
    """A plain HTML table; numbers right-aligned, `formats` as {column: format spec}."""
    formats = formats or {}
    frame = frame.reset_index() if index else frame
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for position, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for column, value in zip(frame.columns, row):
            number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            shown = "" if value is None or (number and pd.isna(value)) else (
                format(value, formats[column]) if column in formats and number else value)
            cells.append(f"<td class=\"num\">{esc(shown)}</td>" if number else f"<td>{esc(shown)}</td>")
        marked = " class=\"diff\"" if highlight is not None and highlight[position] else ""
        rows.append(f"<tr{marked}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def cards(items: Sequence[tuple[str, str]]) -> str:
    return "<div class=\"cards\">" + "".join(
        f"<div class=\"card\"><span class=\"muted\">{esc(k)}</span><b>{esc(v)}</b></div>" for k, v in items) + "</div>"


def png_data_uri(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(images: np.ndarray | None, indices: Sequence[int], captions: Sequence[str]) -> str:
    """28x28 PNGs drawn at 84x84 with square pixels; the test indices alone when the images are missing."""
    if images is None:
        return f"<p class=\"muted\">Test indices: {esc(', '.join(str(i) for i in indices))}</p>"
    tiles = [f"<figure class=\"thumb\"><img alt=\"test image {i}\" src=\"{png_data_uri(images[i])}\">"
             f"<figcaption>{esc(c)}</figcaption></figure>" for i, c in zip(indices, captions)]
    return "<div class=\"thumbs\">" + "".join(tiles) + "</div>"


def section(title: str, *parts: str, level: int = 2) -> str:
    return f"<section><h{level}>{esc(title)}</h{level}>" + "".join(parts) + "</section>"


def note(text: str) -> str:
    return f"<p class=\"note\">{esc(text)}</p>"


def paragraph(text: str, muted: bool = False) -> str:
    opening = '<p class="muted">' if muted else "<p>"
    return f"{opening}{esc(text)}</p>"
