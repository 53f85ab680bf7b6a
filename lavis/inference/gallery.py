"""A static HTML gallery of captioned videos: one folder that opens from disk in any browser.

Each row shows the video's name, a strip of the frames the model saw (small JPEGs, decoded
again at the recorded frame indices), its caption(s) or its error. Rows are rendered in HTML
(the page reads without JavaScript); a few lines of script sort them by name or status.
"""

from __future__ import annotations

import html
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from lavis.common.io import atomic_open
from lavis.common.log import progress
from lavis.datasets.video import VideoDecodeError, open_video
from lavis.inference.records import Record, is_failure

logger = logging.getLogger(__name__)

FRAMES_DIR = "frames"
STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: 6px; text-align: left; vertical-align: top; }
td.frames img { height: 64px; margin-right: 2px; }
td.error { color: #b00020; }
button { margin-right: 6px; }
"""
SCRIPT = """
function sortRows(key, descending) {
  const body = document.querySelector('#videos tbody');
  const rows = Array.from(body.rows);
  rows.sort((a, b) => a.dataset[key].localeCompare(b.dataset[key]) * (descending ? -1 : 1)
                      || a.dataset.name.localeCompare(b.dataset.name));
  rows.forEach(row => body.appendChild(row));
}
"""


def write_gallery(records: list[Record], video_root: str | Path, out_dir: str | Path, thumb_height: int = 96) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/frames/``; returns the page's path."""
    out = Path(out_dir)
    frames_dir = out / FRAMES_DIR
    shutil.rmtree(frames_dir, ignore_errors=True)  # thumbnails of an earlier gallery
    frames_dir.mkdir(parents=True)
    rows = []
    for number, record in enumerate(progress(records, desc="gallery", unit="video")):
        thumbs, note = _thumbnails(record, Path(video_root), frames_dir, f"{number:06d}", thumb_height)
        rows.append(_row(record, thumbs, note))
    page = out / "index.html"
    failed = sum(map(is_failure, records))
    with atomic_open(page) as f:
        f.write(_page(rows, len(records), failed))
    logger.info("gallery of %d videos (%d failed) written to %s", len(records), failed, page)
    return page


def _thumbnails(record: Record, root: Path, frames_dir: Path, stem: str, height: int) -> tuple[list[str], str]:
    indices = record.get("frame_indices")
    if is_failure(record) or not indices:
        return [], ""
    try:
        with open_video(str(root / record["video"])) as reader:
            frames = reader.get_frames(sorted(set(indices))).frames
    except (VideoDecodeError, OSError) as err:
        return [], f"frames unavailable: {err}"
    names = []
    for k, frame in enumerate(frames):
        image = Image.fromarray(np.ascontiguousarray(frame))
        image.thumbnail((height * 4, height))
        name = f"{FRAMES_DIR}/{stem}_{k:02d}.jpg"
        image.save(frames_dir.parent / name, quality=85)
        names.append(name)
    return names, ""


def _row(record: Record, thumbs: list[str], note: str) -> str:
    name = html.escape(record["video"])
    status = "error" if is_failure(record) else "ok"
    images = "".join(f'<img src="{html.escape(t)}" alt="frame {k}">' for k, t in enumerate(thumbs))
    if is_failure(record):
        text = f'<td class="error">{html.escape(record["error"])}</td>'
    else:
        captions = record.get("captions") or [record["caption"]]
        text = '<td class="caption">' + "<br>".join(html.escape(c) for c in captions) + "</td>"
    if note:
        images += f'<span class="note">{html.escape(note)}</span>'
    return (f'<tr class="video" data-name="{name}" data-status="{status}">'
            f'<td class="name">{name}</td><td class="frames">{images}</td>{text}</tr>')


def _page(rows: list[str], total: int, failed: int) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Video captions</title>
<style>{STYLE}</style><script>{SCRIPT}</script></head>
<body>
<h1>Video captions</h1>
<p id="summary">{total} videos, {total - failed} captioned, {failed} failed</p>
<p>Sort: <button id="sort-name" onclick="sortRows('name', false)">name A-Z</button>
<button id="sort-name-desc" onclick="sortRows('name', true)">name Z-A</button>
<button id="sort-status" onclick="sortRows('status', false)">failures first</button></p>
<table id="videos"><thead><tr><th>video</th><th>frames</th><th>caption</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
