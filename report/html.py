"""The HTML results report: one self-contained directory (index.html, snapshots/, results.json).

Sections: summary, counts by type, per-track timeline (first seen, last seen, chosen frame),
gallery of snapshots with labels and confidences, baseline vs CMT (compare mode, with
disagreements highlighted), scores against ground truth (demo), run timings.  No external
assets: it opens from disk or any static web server.
"""
from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from ..worker_config import TAXONOMY

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}
.notice{background:#fff4e5;border-left:4px solid #f79009;padding:8px 12px;margin:0 0 12px}
.demo{color:#98a2b3;font-style:italic}
h1{margin:0 0 4px} h2{margin:28px 0 10px;font-size:1.2em} .muted{color:#667085;font-size:.9em}
table{border-collapse:collapse;background:#fff} td,th{padding:4px 10px;border-bottom:1px solid #e4e7ec;text-align:left}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:14px}
.item{background:#fff;border:1px solid #e4e7ec;border-radius:8px;margin:0;padding:8px}
.item img{width:100%;height:auto;display:block;border-radius:4px;background:#727272}
.item figcaption{font-size:.85em;line-height:1.45;margin-top:6px}
.tag{display:inline-block;padding:0 6px;border-radius:4px;background:#eef2ff;margin-right:4px}
.chip{display:inline-block;width:10px;height:10px;border-radius:2px;border:1px solid #999;margin-right:3px}
.bar{height:12px;background:#4f6bed;border-radius:3px}
.tl{position:relative;height:14px;background:#eef0f3;border-radius:3px;min-width:300px}
.tl .span{position:absolute;top:2px;height:10px;background:#9aa8f0;border-radius:3px}
.tl .pick{position:absolute;top:0;width:3px;height:14px;background:#d92d20}
.disagree{background:#fff1f0} .err{color:#b42318}
"""

COLOR_CSS = {"White": "#f0f0f0", "Black": "#191919", "Silver": "#c0c0c0", "Gray": "#6e6e6e", "Red": "#c81e1e",
             "Blue": "#1e50be", "Green": "#288c32", "Yellow": "#e6d21e", "Orange": "#f07814", "Brown": "#784614"}


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _pct(v: Optional[float]) -> str:
    return "" if v is None else f"{100 * float(v):.0f}%"


def _colors(colors: Optional[list]) -> str:
    if not colors:
        return ""
    parts = []
    for c in colors:
        label = " ".join(x for x in (c.get("finish"), c.get("lightness"), c.get("base")) if x)
        parts.append(f'<span class="chip" style="background:{COLOR_CSS.get(c.get("base"), "#fff")}"></span>'
                     f'{_e(label)} {_pct(c.get("conf"))}')
    return " ".join(parts)


def _name(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def _result(a: dict, variant: str) -> Optional[dict]:
    return next((r for r in a.get("results", []) if r["variant"] == variant), None)


DEMO_TITLE = "demo weights, trained on generated scenes only: not results"


def _caption(a: dict, r: Optional[dict], demo_classifier: bool = False) -> str:
    head = (f'<b>track {a["track_id"]}</b> @ {a["detected_in_ms"] / 1000:.2f} s '
            f'<span class="tag">{_e(a["yolo_type"])}</span>')
    if a["status"] == "error":
        return head + f'<br><span class="err">error: {_e(a.get("error"))}</span>'
    if r is None:
        return head + f'<br><span class="muted">{_e(a["status"])}</span>'
    plate = f'<br>plate <b>{_e(r["plate"])}</b> {_pct(r.get("plate_conf"))}' if r.get("plate") else ""
    answer = (f'<b>{_e(r["type"])}</b> {_pct(r.get("type_conf"))} · {_e(r["make"])} {_pct(r.get("make_conf"))}'
              f' · {_e(r["model"])} {_pct(r.get("model_conf"))}<br>{_colors(r.get("colors"))}')
    if demo_classifier:  # the detector's type (the tag above) is the result; these are not
        answer = f'<span class="demo" title="{_e(DEMO_TITLE)}">demo weights: {answer}</span>'
    return head + "<br>" + answer + plate


def write_report(out_dir: Path, *, title: str, video: dict, analyses: list[dict], timings: dict[str, float],
                 video_info: Optional[dict] = None, scores: Optional[dict] = None, compare: bool = False,
                 annotated_video: Optional[str] = None, weights: Optional[dict[str, str]] = None,
                 notice: Optional[str] = None, demo_classifier: bool = False) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/results.json``; snapshots must already be in
    ``out_dir/snapshots/`` named as in S3.  ``weights`` (stage -> file) are named under the
    title, and ``notice`` (the demo-weights warning) is shown above everything else.  With
    ``demo_classifier`` (the demo main model on real footage) the main model's answers are marked
    as demo weights in the counts and the gallery: the detector's type is the result.  Returns the
    index path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(
        {"video": video, "analyses": analyses, "timings": timings, "scores": scores, "video_info": video_info},
        default=str, indent=2))
    by_type = Counter(a["yolo_type"] for a in analyses)
    final_type = Counter((_result(a, "baseline") or {}).get("type") for a in analyses if _result(a, "baseline"))
    duration_ms = max([a.get("track_last_ms") or a["detected_in_ms"] for a in analyses] + [1])
    if video_info and video_info.get("duration_s"):
        duration_ms = max(duration_ms, int(video_info["duration_s"] * 1000))
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1><p class=muted>video {_e(video.get('id'))} · status <b>{_e(video.get('status'))}</b>"
             + (f" · segments {video['segments']['done']} of {video['segments']['total']} done"
                if isinstance(video.get("segments"), dict) else "")
             + f" · {len(analyses)} snapshots"
             + (f" · {video_info['width']}x{video_info['height']} @ {video_info['fps']:.3g} fps" if video_info else "")
             + "</p>"]
    if notice:
        parts.insert(1, f"<p class=notice id=weights-notice>{_e(notice)}</p>")
    if weights:
        parts.append("<p class=muted id=weights>weights: " + " · ".join(
            f"{_e(stage)} <code>{_e(path)}</code>" for stage, path in weights.items()) + "</p>")
    if annotated_video:
        parts.append(f'<p><a href="{_e(annotated_video)}">annotated video</a></p>')
    # counts
    main_head = (f"<th class=demo title='{_e(DEMO_TITLE)}'>main model (demo weights)</th>" if demo_classifier
                 else "<th>main model</th>")
    parts.append("<h2>Counts by type</h2><table id=counts><tr><th>type</th><th>detector (yolo_type)</th>"
                 f"{main_head}<th></th></tr>")
    top = max(list(by_type.values()) + [1])
    for t in TAXONOMY:
        if by_type.get(t) or final_type.get(t):
            parts.append(f"<tr><td>{t}</td><td>{by_type.get(t, 0)}</td><td>{final_type.get(t, 0)}</td>"
                         f"<td><div class=bar style='width:{160 * by_type.get(t, 0) / top:.0f}px'></div></td></tr>")
    parts.append("</table>")
    # scores
    if scores:
        parts.append("<h2>Scores against ground truth</h2><table id=scores>")
        for k, v in scores.items():
            parts.append(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>")
        parts.append("</table>")
    # timeline
    parts.append("<h2>Per-track timeline</h2><table id=timeline><tr><th>track</th><th>first seen</th>"
                 "<th>last seen</th><th>chosen frame</th><th></th></tr>")
    for a in sorted(analyses, key=lambda a: (a.get("track_first_ms") or a["detected_in_ms"], a["track_id"])):
        first, last = a.get("track_first_ms"), a.get("track_last_ms")
        f0 = first if first is not None else a["detected_in_ms"]
        l0 = last if last is not None else a["detected_in_ms"]
        span = (f"<div class=tl><div class=span style='left:{100 * f0 / duration_ms:.2f}%;"
                f"width:{max(0.5, 100 * (l0 - f0) / duration_ms):.2f}%'></div>"
                f"<div class=pick style='left:{100 * a['detected_in_ms'] / duration_ms:.2f}%'></div></div>")
        fmt = lambda ms: "" if ms is None else f"{ms / 1000:.2f} s"  # noqa: E731
        parts.append(f"<tr><td>{a['track_id']}</td><td>{fmt(first)}</td><td>{fmt(last)}</td>"
                     f"<td>{fmt(a['detected_in_ms'])}</td><td>{span}</td></tr>")
    parts.append("</table>")
    # gallery
    parts.append("<h2>Snapshots</h2><div class=gallery id=gallery>")
    for a in analyses:
        name = _name(a["snapshot_s3_key"])
        parts.append(f'<figure class=item data-track="{a["track_id"]}" data-status="{_e(a["status"])}">'
                     f'<img src="snapshots/{_e(name)}" alt="track {a["track_id"]}" width=640 height=640 loading=eager>'
                     f"<figcaption>{_caption(a, _result(a, 'baseline'), demo_classifier)}</figcaption></figure>")
    parts.append("</div>")
    # compare
    if compare:
        parts.append("<h2>Baseline vs CMT</h2><table id=compare><tr><th>track</th><th>baseline</th><th>cmt</th></tr>")
        disagreements = 0
        for a in analyses:
            b, c = _result(a, "baseline"), _result(a, "cmt")
            lab = lambda r: "" if r is None else f"{r['type']} / {r['make']} / {r['model']}"  # noqa: E731
            differ = lab(b) != lab(c)
            disagreements += differ
            parts.append(f"<tr class='{'disagree' if differ else ''}'><td>{a['track_id']}</td>"
                         f"<td>{_e(lab(b))} {_pct((b or {}).get('model_conf'))}</td>"
                         f"<td>{_e(lab(c))} {_pct((c or {}).get('model_conf'))}</td></tr>")
        parts.append(f"</table><p class=muted>{disagreements} disagreement(s) highlighted</p>")
    # timings
    parts.append("<h2>Run timings</h2><table id=timings>")
    for k, v in timings.items():
        parts.append(f"<tr><td>{_e(k)}</td><td>{v:.2f} s</td></tr>")
    parts.append("</table></body></html>")
    index = out_dir / "index.html"
    index.write_text("\n".join(parts))
    return index
