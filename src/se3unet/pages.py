"""Web pages a user can turn around: a scan (its surface, or its points) with landmarks that name
themselves on hover, an index of several scans, and the evaluation report.

Pages work offline from the file system: plotly's JavaScript is written once as
``plotly.min.js`` beside the pages (not copied into each: it is 4.6 MB) and nothing is fetched
from the network. plotly is imported here only, so the rest of the tool does not need it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .atomic import write_text_atomically
from .geometry.face import face_frame

PLOTLY_JS = "plotly.min.js"
# Large meshes are drawn with at most this many triangles (a random subset): a page stays a few MB.
MAX_TRIANGLES = 150_000
MAX_POINTS = 60_000


def scan_figure(vertices: np.ndarray, triangles: Optional[np.ndarray], landmarks: np.ndarray, names: Sequence[str],
                truth: Optional[np.ndarray] = None, unit: str = "mm", seed: int = 0,
                confidence: Optional[np.ndarray] = None):
    """A plotly figure: the surface (a mesh) or the points (a cloud) in grey, the landmarks as
    dots that show their name and coordinates on hover. With ``truth``, the true landmarks too,
    each predicted dot coloured by its error and joined to its true position; without it, with
    ``confidence`` (each landmark's likely error, in ``unit``), each dot coloured by that."""
    import plotly.graph_objects as go

    rng = np.random.default_rng(seed)
    camera = facing_camera(landmarks, names)
    # the light from the viewer's side, so the face the camera looks at is lit
    light = {k: 5e4 * v for k, v in camera["eye"].items()} if camera else dict(x=1e5, y=1e5, z=1e5)
    traces = []
    if triangles is not None and len(triangles):
        if len(triangles) > MAX_TRIANGLES:
            triangles = triangles[np.sort(rng.choice(len(triangles), MAX_TRIANGLES, replace=False))]
        traces.append(go.Mesh3d(x=vertices[:, 0], y=vertices[:, 1], z=vertices[:, 2], i=triangles[:, 0],
                                j=triangles[:, 1], k=triangles[:, 2], color="#c9c3bd", flatshading=False,
                                lighting=dict(ambient=0.45, diffuse=0.8, specular=0.15, roughness=0.6),
                                lightposition=light,
                                hoverinfo="skip", name="surface"))
    else:
        shown = vertices if len(vertices) <= MAX_POINTS else vertices[rng.choice(len(vertices), MAX_POINTS, replace=False)]
        traces.append(go.Scatter3d(x=shown[:, 0], y=shown[:, 1], z=shown[:, 2], mode="markers", hoverinfo="skip",
                                   marker=dict(size=1.6, color="#8f8a85"), name="points"))
    defined = np.isfinite(landmarks).all(axis=1)
    label = [str(n) for n in names]
    hover = f"%{{text}}<br>x %{{x:.1f}} {unit}<br>y %{{y:.1f}} {unit}<br>z %{{z:.1f}} {unit}"
    marker = dict(size=5, color="#d62728", line=dict(width=1, color="white"))
    if confidence is not None and truth is None:
        label = [f"{n}: likely {c:.1f} {unit} off" for n, c in zip(names, confidence)]
        marker = dict(size=5, color=confidence, colorscale="RdYlGn_r", cmin=0,
                      cmax=max(5.0, float(np.nanmax(confidence))),
                      colorbar=dict(title=f"likely error ({unit})", len=0.6), line=dict(width=1, color="white"))
    if truth is not None:
        errors = np.linalg.norm(landmarks - truth, axis=1)
        label = [f"{n}: {e:.1f} {unit} off" for n, e in zip(names, errors)]
        marker = dict(size=5, color=errors, colorscale="RdYlGn_r", cmin=0, cmax=max(5.0, float(np.nanmax(errors))),
                      colorbar=dict(title=f"error ({unit})", len=0.6), line=dict(width=1, color="white"))
        keep = np.isfinite(truth).all(axis=1) & defined
        traces.append(go.Scatter3d(x=truth[keep, 0], y=truth[keep, 1], z=truth[keep, 2], mode="markers",
                                   text=[label[i] for i in np.flatnonzero(keep)], hovertemplate=hover + "<extra>true</extra>",
                                   marker=dict(size=3.5, color="#1f77b4", symbol="diamond"), name="true"))
        segments = np.full((3 * int(keep.sum()), 3), np.nan)
        segments[0::3], segments[1::3] = landmarks[keep], truth[keep]
        traces.append(go.Scatter3d(x=segments[:, 0], y=segments[:, 1], z=segments[:, 2], mode="lines",
                                   hoverinfo="skip", line=dict(color="#444", width=2), name="error", showlegend=False))
    traces.append(go.Scatter3d(x=landmarks[defined, 0], y=landmarks[defined, 1], z=landmarks[defined, 2],
                               mode="markers", text=[label[i] for i in np.flatnonzero(defined)],
                               hovertemplate=hover + "<extra>predicted</extra>", marker=marker, name="predicted"))
    figure = go.Figure(traces)
    figure.update_layout(scene=dict(aspectmode="data", xaxis_title=f"x ({unit})", yaxis_title=f"y ({unit})",
                                    zaxis_title=f"z ({unit})"),
                         margin=dict(l=0, r=0, t=30, b=0), legend=dict(x=0, y=1), height=640)
    if camera is not None:
        figure.update_layout(scene_camera=camera)
    return figure


def facing_camera(landmarks: np.ndarray, names: Sequence[str]) -> Optional[dict]:
    """A plotly camera that looks at the face from the front, upright, whatever the scan's pose
    (``face_frame``: eyes and mouth); None when those landmarks are not predicted."""
    frame = face_frame(landmarks, [str(n) for n in names])
    if frame is None:
        return None
    eye, up = 1.6 * frame[2], frame[1]
    return dict(eye=dict(zip("xyz", eye.tolist())), up=dict(zip("xyz", up.tolist())))


def ensure_plotly_js(folder: Path) -> None:
    """plotly's JavaScript beside the pages, written once (and again when plotly changed)."""
    from plotly.offline import get_plotlyjs

    source = get_plotlyjs()
    target = folder / PLOTLY_JS
    if not target.is_file() or target.stat().st_size != len(source.encode()):
        write_text_atomically(target, source)


def figure_html(figure) -> str:
    """A figure as a <div> for a page that loads plotly.min.js itself."""
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def write_page(path: Path, title: str, body: str) -> Path:
    """A complete page: ``body`` (HTML) under a title, plotly.min.js from the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_plotly_js(path.parent)
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            f"<script src=\"{PLOTLY_JS}\"></script>\n<style>{STYLE}</style></head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
    write_text_atomically(path, page)
    return path


STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
         "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
         "p.note{color:#555}")


def landmark_table(names: Sequence[str], landmarks: np.ndarray, unit: str = "mm",
                   confidence: Optional[np.ndarray] = None) -> str:
    extra = [] if confidence is None else [f"likely error ({unit})"]
    values = landmarks if confidence is None else np.column_stack([landmarks, confidence])
    rows = "".join(f"<tr><td>{html.escape(str(n))}</td>" + "".join(f"<td>{v:.2f}</td>" for v in p) + "</tr>"
                   for n, p in zip(names, values))
    head = "".join(f"<th>{h}</th>" for h in ["landmark", f"x ({unit})", f"y ({unit})", f"z ({unit})", *extra])
    return f"<table><tr>{head}</tr>{rows}</table>"


def write_scan_page(path: Path, scan_name: str, vertices: np.ndarray, triangles: Optional[np.ndarray],
                    landmarks: np.ndarray, names: Sequence[str], unit: str = "mm", note: str = "",
                    confidence: Optional[np.ndarray] = None) -> Path:
    """One scan's page: the 3D view, then the landmark coordinates (and, when given, each
    landmark's likely error) as a table."""
    figure = scan_figure(vertices, triangles, landmarks, names, unit=unit, confidence=confidence)
    kind = f"mesh of {len(triangles)} triangles" if triangles is not None else f"cloud of {len(vertices)} points"
    body = (f"<p class=\"note\">{html.escape(scan_name)}: {kind}; drag to turn, scroll to zoom, hover a landmark "
            f"for its name. {html.escape(note)}</p>\n{figure_html(figure)}\n{landmark_table(names, landmarks, unit, confidence)}")
    return write_page(path, f"Landmarks of {scan_name}", body)


def write_index(path: Path, pages: List[Dict[str, str]]) -> Path:
    """A list of scan pages (``{"scan", "page"}`` or ``{"scan", "error"}``), each linking to its page."""
    items = []
    for entry in pages:
        if "page" in entry:
            link = html.escape(Path(entry["page"]).name)
            items.append(f"<li><a href=\"{link}\">{html.escape(entry['scan'])}</a></li>")
        else:
            items.append(f"<li>{html.escape(entry['scan'])}: {html.escape(entry['error'])}</li>")
    return write_page(path, "se3unet predictions", f"<ul>\n{''.join(items)}\n</ul>")


def markdown_table_html(table: str) -> str:
    """A Markdown pipe table (as summary.md writes it) as an HTML table."""
    rows = [line.strip().strip("|").split("|") for line in table.strip().splitlines()]
    head, body = rows[0], [r for r in rows[2:]]
    cells = lambda row, tag: "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in row)
    return "<table><tr>" + cells(head, "th") + "</tr>" + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in body) + "</table>"
