"""Pictures of distances: heat maps with a colour bar, and the self-contained HTML report of ``dirs``.

:func:`render_heatmap` draws an H x W map (e.g. ``model(x, y, spatial=True)[0, 0]``, whose mean
is the distance) in an inferno-like colour map, black (0) to pale yellow (the top of the
scale: the map's maximum, or a fixed ``vmax`` so that maps of different pairs compare), with a
labelled colour bar below it; optionally blended over image A. :func:`write_report` writes one
HTML file that needs nothing else (images inlined, no network, no external script or style).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .files import write_atomic

# An inferno-like colour map: 9 anchors at equal steps from 0 (black) to 1 (pale yellow),
# ordered by lightness so that brighter always means a larger value.
_HEAT_ANCHORS = torch.tensor(
    [
        (0, 0, 4),
        (31, 12, 72),
        (85, 15, 109),
        (136, 34, 106),
        (186, 54, 85),
        (227, 89, 51),
        (249, 140, 10),
        (249, 201, 50),
        (252, 255, 164),
    ],
    dtype=torch.float32,
) / 255

BAR_HEIGHT = 36
"""Pixels below the map holding the colour bar and its labels."""
BAR_MIN_WIDTH = 200
"""The picture is at least this wide, so that the colour bar's labels fit."""
OVERLAY_ALPHA = 0.5
"""Weight of the heat map's colours when blended over image A."""


def colourise(values: Tensor, vmax: float) -> Tensor:
    """H x W values as H x W x 3 colours in [0, 1]: 0 black, ``vmax`` and above pale yellow."""
    pos = (values / vmax if vmax > 0 else torch.zeros_like(values)).clamp(0, 1) * (len(_HEAT_ANCHORS) - 1)
    low = pos.floor().long().clamp(max=len(_HEAT_ANCHORS) - 2)
    frac = (pos - low).unsqueeze(-1)
    return _HEAT_ANCHORS[low] * (1 - frac) + _HEAT_ANCHORS[low + 1] * frac


def render_heatmap(
    map: Tensor, *, vmax: float | None = None, under: Tensor | None = None
) -> tuple[Image.Image, float]:
    """The map as an RGB picture with a colour bar below it, and the top of its scale.

    Args:
        map: H x W tensor. Negative values are shown as 0.
        vmax: the value shown as the top colour; larger values are shown in it too (the bar's
            label then ends in "+"). Default: the map's maximum.
        under: 3 x H x W image in [0, 1] (image A) to blend the colours over, half and half.

    Returns:
        The picture (width ``max(W, BAR_MIN_WIDTH)``, height ``H + BAR_HEIGHT``) and ``vmax``.
    """
    if not isinstance(map, Tensor) or map.dim() != 2:
        shape = tuple(map.shape) if isinstance(map, Tensor) else type(map).__name__
        raise ValueError(f"map must be an H x W tensor, got {shape}; for a model's N x 1 x H x W output pass out[i, 0]")
    if 0 in map.shape:
        raise ValueError(f"map is empty (shape {tuple(map.shape)})")
    values = map.detach().to("cpu", torch.float32).clamp_min(0)
    if not torch.isfinite(values).all():
        raise ValueError("map contains NaN or Inf values")
    top = float(values.max())
    if vmax is None:
        vmax = top
    elif not (math.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a finite number > 0, got {vmax!r}")
    rgb = colourise(values, vmax)
    if under is not None:
        if not isinstance(under, Tensor) or under.shape != (3, *map.shape):
            shape = tuple(under.shape) if isinstance(under, Tensor) else type(under).__name__
            raise ValueError(f"under must be a 3 x {map.shape[0]} x {map.shape[1]} image (the map's size), got {shape}")
        rgb = (1 - OVERLAY_ALPHA) * under.detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0) \
            + OVERLAY_ALPHA * rgb
    h, w = map.shape
    canvas = Image.new("RGB", (max(w, BAR_MIN_WIDTH), h + BAR_HEIGHT), "white")
    canvas.paste(Image.fromarray((rgb * 255).round().to(torch.uint8).numpy()), (0, 0))
    _draw_bar(canvas, h, vmax, clipped=top > vmax)
    return canvas, vmax


def _draw_bar(canvas: Image.Image, top_y: int, vmax: float, *, clipped: bool) -> None:
    """A gradient from 0 to ``vmax`` across the canvas below ``top_y``, with 0, vmax/2 and vmax labelled."""
    left, right = 6, canvas.width - 6
    ramp = colourise(torch.linspace(0, vmax, right - left).unsqueeze(0), vmax)
    bar = Image.fromarray((ramp * 255).round().to(torch.uint8).numpy()).resize((right - left, 10), Image.NEAREST)
    canvas.paste(bar, (left, top_y + 5))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=11)
    y = top_y + 19
    labels = [("0", left, "la"), (f"{vmax / 2:.3g}", (left + right) // 2, "ma"),
              (f"{vmax:.3g}{'+' if clipped else ''}", right, "ra")]
    for text, x, anchor in labels:
        draw.text((x, y), text, fill="black", font=font, anchor=anchor)


def save_heatmap(
    map: Tensor, path: str | os.PathLike[str], *, vmax: float | None = None, under: Tensor | None = None,
    overwrite: bool = False,
) -> float:
    """Write :func:`render_heatmap`'s picture as a PNG; returns the top of its scale.

    An existing file raises ``FileExistsError`` unless ``overwrite``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: a heat map is written as PNG; give a file name ending in .png")
    picture, vmax = render_heatmap(map, vmax=vmax, under=under)
    data = _png(picture)
    try:
        write_atomic(path, data, overwrite=overwrite)  # never a half-written file
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force on the command line) to replace it") from None
    return vmax


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- the HTML report
THUMBNAIL = 256
"""Pictures in the report are at most this many pixels on a side."""
SHOWN = 5
"""Pairs shown with their pictures at each end (largest and smallest distances)."""
HISTOGRAM_BINS = 20


@dataclass(frozen=True)
class Shown:
    """A pair shown with its pictures: images A and B (3 x H x W in [0, 1]) and its spatial map."""

    a: str
    b: str
    distance: float
    image_a: Tensor
    image_b: Tensor
    map: Tensor


def write_report(
    path: str | os.PathLike[str],
    *,
    rows: Sequence[tuple[str, float | None, str | None]],
    largest: Sequence[Shown],
    smallest: Sequence[Shown],
    info: dict[str, Any],
    title: str,
    overwrite: bool = False,
    unscored: Sequence[tuple[str, Sequence[str]]] = (),
) -> None:
    """Write the ``dirs`` report: one offline HTML file.

    Args:
        rows: every pair as (its name, e.g. the relative path; distance or None; error or None).
        largest, smallest: the pairs shown with their pictures: each with its heat map on one scale
            common to all of them (to compare pairs) and on its own scale (to see where a small
            difference lies).
        info: the model, mode, sha256, feature blur and version.
        title: the page title, e.g. ``DIR_A vs DIR_B``.
        unscored: other files that were not scored, as (what they are, their names), e.g.
            ``("files in A only", [...])``; listed with the pairs that failed.
    """
    shown = [*largest, *smallest]
    vmax = max((float(s.map.max()) for s in shown), default=0.0) or 1.0
    scores = [d for _, d, _ in rows if d is not None]
    failed = [f"{name}: {error}" for name, _, error in rows if error is not None]
    page = _PAGE.format(
        title=html.escape(title),
        info="".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>"
                     for k, v in info.items()),
        summary=_summary_table(scores, len(rows) - len(scores)),
        histogram=_histogram(scores),
        unscored=_unscored([("pairs that could not be scored", failed), *unscored]),
        largest=_gallery(largest, vmax, info),
        smallest=_gallery(smallest, vmax, info),
        maps_note=("" if info.get("mode") == "spatial" else
                   f"<p>The heat maps show the spatial distance; the scores are the {html.escape(info['mode'])} "
                   "distance.</p>"),
        vmax=f"{vmax:.4g}",
        rows="\n".join(_row(i, *row) for i, row in enumerate(rows, 1)),
        script=_SCRIPT,
    )
    try:
        write_atomic(Path(path), page.encode("utf-8"), overwrite=overwrite)  # never a half-written page
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force on the command line) to replace it") from None


def _summary_table(scores: list[float], failed: int) -> str:
    cells = [("pairs scored", f"{len(scores)}"), ("pairs failed", f"{failed}")]
    if scores:
        q = np.quantile(scores, [0.1, 0.9])
        cells += [("mean", f"{statistics.fmean(scores):.6g}"), ("median", f"{statistics.median(scores):.6g}"),
                  ("standard deviation", f"{statistics.pstdev(scores):.6g}"), ("min", f"{min(scores):.6g}"),
                  ("10th percentile", f"{q[0]:.6g}"), ("90th percentile", f"{q[1]:.6g}"), ("max", f"{max(scores):.6g}")]
    return "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in cells)


def _histogram(scores: list[float]) -> str:
    """An inline SVG histogram of the distances."""
    if not scores:
        return "<p>No pair was scored.</p>"
    lo, hi = min(scores), max(scores)
    counts, edges = np.histogram(scores, bins=HISTOGRAM_BINS, range=(lo, hi if hi > lo else lo + 1e-12))
    width, height, pad = 640, 200, 36
    bar_w = (width - 2 * pad) / HISTOGRAM_BINS
    top = max(int(counts.max()), 1)
    bars = []
    for i, c in enumerate(counts):
        h = (height - 2 * pad) * c / top
        x, y = pad + i * bar_w, height - pad - h
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" fill="#b5367a">'
                    f"<title>{edges[i]:.4g} to {edges[i + 1]:.4g}: {c} pairs</title></rect>")
    axis = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>'
            f'<text x="{pad}" y="{height - pad + 16}" font-size="12">{lo:.4g}</text>'
            f'<text x="{width - pad}" y="{height - pad + 16}" font-size="12" text-anchor="end">{hi:.4g}</text>'
            f'<text x="{width / 2}" y="{height - 4}" font-size="12" text-anchor="middle">distance</text>'
            f'<text x="{pad - 4}" y="{pad}" font-size="12" text-anchor="end">{top}</text>')
    return (f'<svg id="histogram" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="histogram of {len(scores)} distances">{"".join(bars)}{axis}</svg>')


def _data_uri(picture: Image.Image) -> str:
    picture = picture.copy()
    picture.thumbnail((THUMBNAIL, THUMBNAIL + BAR_HEIGHT), Image.LANCZOS)
    return "data:image/png;base64," + base64.b64encode(_png(picture)).decode("ascii")


def _image(pixels: Tensor) -> Image.Image:
    return Image.fromarray((pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())


def _gallery(pairs: Sequence[Shown], vmax: float, info: dict[str, Any]) -> str:
    if not pairs:
        return "<p>None.</p>"
    items = []
    for s in pairs:
        own = float(s.map.max()) or 1.0
        images = "".join(_figure(_image(im), f"{side}: {name}") for side, im, name in
                         (("A", s.image_a, s.a), ("B", s.image_b, s.b)))
        maps = (_figure(_map_picture(s.map, vmax), "shared scale", bar=vmax)
                + _figure(_map_picture(s.map, own), "this pair's scale", bar=own))
        items.append(f'<div class="pair"><h3>distance {s.distance:.6g}</h3><div class="row">{images}{maps}</div></div>')
    return "\n".join(items)


def _map_picture(map: Tensor, vmax: float) -> Image.Image:
    """The heat map's colours alone (no bar: the page draws a readable one below it)."""
    values = map.detach().to("cpu", torch.float32).clamp_min(0)
    return Image.fromarray((colourise(values, vmax) * 255).round().to(torch.uint8).numpy())


def _figure(picture: Image.Image, caption: str, *, bar: float | None = None) -> str:
    """A captioned thumbnail; with ``bar``, a colour bar from 0 to ``bar`` in page text below it."""
    scale = ""
    if bar is not None:
        ticks = "".join(f"<span>{v:.3g}</span>" for v in (0.0, bar / 2, bar))
        scale = f'<div class="bar" role="img" aria-label="colour scale 0 to {bar:.3g}"></div><div class="ticks">{ticks}</div>'
    cls = ' class="map"' if bar is not None else ""
    return (f'<figure{cls}><img src="{_data_uri(picture)}" alt="{html.escape(caption)}">{scale}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _unscored(groups: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The files that were not scored, by why; or a line saying there were none."""
    groups = [(what, names) for what, names in groups if names]
    if not groups:
        return "<p>Every file was paired and scored.</p>"
    return "".join(f'<h3>{html.escape(what)} ({len(names)})</h3><ul class="unscored">'
                   + "".join(f"<li><code>{html.escape(n)}</code></li>" for n in names) + "</ul>"
                   for what, names in groups)


def _row(i: int, name: str, distance: float | None, error: str | None) -> str:
    shown = "" if distance is None else f"{distance:.6g}"
    value = "" if distance is None else repr(distance)
    return (f'<tr><td data-value="{i}">{i}</td><td>{html.escape(name)}</td>'
            f'<td data-value="{value}">{shown}</td><td>{html.escape(error or "")}</td></tr>')


_SCRIPT = """
document.querySelectorAll("#pairs th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = document.querySelector("#pairs tbody");
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    document.querySelectorAll("#pairs th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.dataset.type === "number";
    function key(row) {
      var cell = row.children[column];
      return numeric ? cell.dataset.value : cell.textContent;
    }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) {
      var a = key(r), b = key(s);
      if (numeric) {
        if (a === "" || b === "") { return (a === "") - (b === ""); }  // unscored pairs last either way
        return ascending ? Number(a) - Number(b) : Number(b) - Number(a);
      }
      return ascending ? a.localeCompare(b) : b.localeCompare(a);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>perceptual-sim: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }}
#pairs {{ width: 100%; }}
#pairs th {{ cursor: pointer; background: #f3f3f3; position: sticky; top: 0; }}
#pairs th[aria-sort=ascending]::after {{ content: " \\25B2"; }}
#pairs th[aria-sort=descending]::after {{ content: " \\25BC"; }}
.top {{ display: flex; flex-wrap: wrap; gap: 1em 3em; align-items: flex-start; }}
.top h2 {{ margin-top: 0; }}
#histogram {{ width: 100%; max-width: 720px; height: auto; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 1080px), 1fr)); gap: 8px 24px; }}
.row {{ display: flex; gap: 14px; flex-wrap: wrap; }}
figure {{ margin: 0; width: 250px; }}
figure img {{ width: 250px; height: auto; image-rendering: pixelated; display: block; }}
figcaption {{ font-size: 13px; overflow-wrap: anywhere; margin-top: 2px; }}
.bar {{ height: 12px; margin-top: 4px; background: linear-gradient(to right, rgb(0,0,4), rgb(31,12,72), rgb(85,15,109), rgb(136,34,106), rgb(186,54,85), rgb(227,89,51), rgb(249,140,10), rgb(249,201,50), rgb(252,255,164)); }}
.ticks {{ display: flex; justify-content: space-between; font-size: 13px; }}
.map figcaption {{ font-weight: bold; }}
.unscored {{ columns: 3 260px; font-size: 13px; }}
code {{ font-size: 12px; }}
</style>
</head>
<body>
<h1>{title}</h1>
"""
"""The page's head, styles and title (:data:`_PAGE`, and the pages of :func:`write_page`)."""

_PAGE = _HEAD + """<div class="top">
<div><h2>Summary</h2><table id="summary">{summary}</table></div>
<div style="flex: 1 1 480px"><h2>Distribution of distances</h2>{histogram}</div>
</div>
<h2>Files not scored</h2>
<div id="unscored">{unscored}</div>
<h2>Largest distances</h2>
{maps_note}<p>Each pair: images A and B, then where they differ, twice: on the <b>shared scale</b> (0 to
{vmax}, the same for every pair shown, so maps compare across pairs) and on <b>this pair's scale</b>
(0 to its own maximum, so that a small difference still shows where it lies).</p>
<div id="largest" class="gallery">{largest}</div>
<h2>Smallest distances</h2>
<div id="smallest" class="gallery">{smallest}</div>
<h2>Computed with</h2>
<table id="info">{info}</table>
<h2>Every pair</h2>
<p>Click a column's title to sort by it.</p>
<table id="pairs">
<thead><tr><th data-type="number">#</th><th>image</th><th data-type="number">distance</th><th>error</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<script>{script}</script>
</body>
</html>
"""



# ----------------------------------------------------------------------------- pages of the generative commands
Cell = tuple[str, "float | int | str | None"]
"""A table cell: its text, and the value it sorts by (a number, or None for the text)."""


def figure(pixels: Tensor | Image.Image, caption: str) -> str:
    """One captioned thumbnail (at most :data:`THUMBNAIL` px a side), inlined."""
    im = pixels if isinstance(pixels, Image.Image) else _image(pixels)
    return (f'<figure><img src="{_data_uri(im)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_page(
    path: str | os.PathLike[str], *, title: str, info: dict[str, Any], sections: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, bool]], rows: Sequence[Sequence[Cell]], overwrite: bool = False,
) -> None:
    """Write one offline HTML page in the style of the ``dirs`` report: the info table, ``sections``
    (heading, HTML) and a table sortable by clicking a column's title.

    Args:
        headers: each column's title and whether it sorts as a number.
        rows: the table's cells (text, sort value), escaped here.
    """
    head = "".join(f'<th{" data-type=number" if numeric else ""}>{html.escape(h)}</th>' for h, numeric in headers)
    body = "\n".join("<tr>" + "".join(
        f'<td data-value="{"" if v is None else html.escape(repr(v) if isinstance(v, float) else str(v))}">'
        f"{html.escape(text)}</td>" for text, v in row) + "</tr>" for row in rows)
    page = _HEAD.format(title=html.escape(title)) + '<table id="info">' + "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>" for k, v in info.items()) \
        + "</table>\n"
    page += "".join(f"<h2>{html.escape(h)}</h2>\n{content}\n" for h, content in sections)
    page += (f'<h2>Every image</h2>\n<p>Click a column\'s title to sort by it.</p>\n<table id="pairs">\n'
             f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n<script>{_SCRIPT}</script>\n"
             "</body>\n</html>\n")
    try:
        write_atomic(Path(path), page.encode("utf-8"), overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force on the command line) to replace it") from None


_SERIES_COLOURS = [(181, 54, 122), (40, 110, 180), (230, 140, 20), (60, 150, 60)]


def render_plot(series: dict[str, Sequence[float]], *, title: str, xlabel: str, ylabel: str,
                marks: Sequence[int] = (), size: tuple[int, int] = (900, 380)) -> Image.Image:
    """Line plot of one or more series against their index (e.g. distance per frame), with axes, a
    legend, and ``marks`` (indices of the first series) circled."""
    if not series or not all(len(v) for v in series.values()):
        raise ValueError("a plot needs at least one non-empty series")
    width, height = size
    left, right, top, bottom = 70, 20, 70, 50
    values = np.concatenate([np.asarray(v, dtype=np.float64) for v in series.values()])
    if not np.isfinite(values).all():
        raise ValueError("plot values must be finite")
    hi = float(values.max()) or 1.0
    n = max(len(v) for v in series.values())
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)

    def xy(i: float, v: float) -> tuple[float, float]:
        return (left + (width - left - right) * (i / max(1, n - 1)),
                height - bottom - (height - top - bottom) * v / hi)

    for k in range(5):  # horizontal grid lines and value labels
        v = hi * k / 4
        y = xy(0, v)[1]
        draw.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        draw.text((left - 6, y), f"{v:.3g}", fill="black", font=font, anchor="rm")
    for k in range(min(n, 6)):  # index labels
        i = round((n - 1) * k / max(1, min(n, 6) - 1))
        draw.text((xy(i, 0)[0], height - bottom + 6), str(i), fill="black", font=font, anchor="ma")
    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill="black")
    for (label, v), colour in zip(series.items(), _SERIES_COLOURS):
        points = [xy(i, float(x)) for i, x in enumerate(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        else:
            draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour)
    first = np.asarray(next(iter(series.values())), dtype=np.float64)
    for i in marks:
        x, y = xy(i, float(first[i]))
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], outline="black", width=2)
    draw.text((left, 14), title, fill="black", font=ImageFont.load_default(size=14), anchor="lm")
    legend_x = left
    for label, colour in zip(series, _SERIES_COLOURS):
        draw.rectangle([legend_x, 31, legend_x + 14, 41], fill=colour)
        draw.text((legend_x + 20, 36), label, fill="black", font=font, anchor="lm")
        legend_x += 30 + int(draw.textlength(label, font=font))
    draw.text(((left + width - right) / 2, height - 14), xlabel, fill="black", font=font, anchor="mm")
    draw.text((8, top - 12), ylabel, fill="black", font=font, anchor="lm")
    return canvas


def save_plot(path: str | os.PathLike[str], series: dict[str, Sequence[float]], *, overwrite: bool = False,
              **options: Any) -> None:
    """Write :func:`render_plot`'s picture as a PNG (atomically; an existing file only with ``overwrite``)."""
    try:
        write_atomic(Path(path), _png(render_plot(series, **options)), overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force on the command line) to replace it") from None
