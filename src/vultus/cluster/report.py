"""The one-file HTML contact sheet of a clustering: works offline, thumbnails embedded.

Largest cluster first, each with its size, cohesion (mean similarity over its pairs) and every face
as a small JPEG thumbnail in a data: URI; then the unsorted faces, the faces the quality gate kept
out (with why), and the files that could not be read. Every name, path and reason comes from the
user's files, so every one is escaped (html.escape, after safe_text makes control characters
visible); nothing is loaded from anywhere else.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from vultus.cluster.api import ClusterResult
from vultus.cluster.faces import PhotoFace
from vultus.textsafe import safe_text

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin:1.2em 0 .3em}
.meta{color:#555;font-size:.9em}
.sheet{display:flex;flex-wrap:wrap;gap:4px}
figure{margin:0;width:96px;font-size:.7em;color:#555;overflow:hidden}
figure img{width:96px;height:96px;display:block;border-radius:3px}
figure.rep img{outline:3px solid #2a7}
figcaption{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
table{border-collapse:collapse;font-size:.9em} td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
"""


def _esc(value) -> str:
    return html.escape(safe_text(value), quote=True)


def _figure(f: PhotoFace, rep: bool = False, note: str = "") -> str:
    name = Path(f.image).name
    title = f"{f.image} face {f.index}, quality {f.quality:.2f}" + (f" - {note}" if note else "")
    img = (f'<img alt="{_esc(name)}" src="data:image/jpeg;base64,{base64.b64encode(f.thumbnail).decode()}">'
           if f.thumbnail else "")
    cls = ' class="rep"' if rep else ""
    return f'<figure{cls} title="{_esc(title)}">{img}<figcaption>{_esc(name)}</figcaption></figure>'


def render_html(result: ClusterResult, title: str = "vultus cluster") -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>"]
    n_faces = sum(c.size for c in result.clusters)
    parts.append(
        f"<p class='meta'>{len(result.clusters)} clusters ({n_faces} faces), {len(result.unsorted)} unsorted, "
        f"{len(result.low_quality)} below the quality gate, {len(result.errors)} files skipped; "
        f"{result.images} images. {_esc(result.algorithm)} with {_esc(result.embedder)}, average similarity "
        f"&ge; {result.threshold:.3f} (false-match rate {result.fmr:g} per comparison, "
        f"{_esc(result.source)}).</p>")
    for c in result.clusters:
        label = f"cluster {c.id}" + (f": {c.name}" if c.name else "")
        parts.append(f"<h2>{_esc(label)} <span class='meta'>{c.size} faces, cohesion {c.cohesion:.3f}</span></h2>")
        faces = [c.representative] + [f for f in c.faces if f is not c.representative]
        parts.append("<div class='sheet'>" + "".join(_figure(f, rep=i == 0) for i, f in enumerate(faces))
                     + "</div>")
    if result.unsorted:
        parts.append(f"<h2>unsorted <span class='meta'>{len(result.unsorted)} faces like no other "
                     "(not yet)</span></h2>")
        parts.append("<div class='sheet'>" + "".join(_figure(f) for f in result.unsorted) + "</div>")
    if result.low_quality:
        parts.append(f"<h2>below the quality gate <span class='meta'>{len(result.low_quality)} faces, "
                     "in no cluster</span></h2>")
        parts.append("<div class='sheet'>" + "".join(_figure(f, note="; ".join(f.gate)) for f in result.low_quality)
                     + "</div>")
    if result.errors:
        parts.append("<h2>files skipped</h2><table><tr><th>file</th><th>why</th></tr>")
        parts.extend(f"<tr><td>{_esc(p)}</td><td>{_esc(why)}</td></tr>" for p, why in result.errors.items())
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(result: ClusterResult, path: Path, title: str = "vultus cluster") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(result, title), encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a report
    return path
