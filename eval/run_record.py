"""The snapshot record ``analyze`` leaves beside its report, and reading a run back for ``eval real``.

``analyze --out DIR`` writes ``DIR/report/snapshots.json``: which frame each snapshot was taken
from and the detection's box there, the two things a ground truth is matched on::

    {"format": "cvitx-snapshots/1", "video": "clip.mp4", "width": 640, "height": 360, "fps": 29.97,
     "frame_count": 341, "frame_stride": 3, "detector": ".../detector.pt",
     "frame_index_from": "yolo_worker log",
     "snapshots": [
      {"track_id": 4, "frame_index": 18, "detected_in_ms": 601, "box": [347, 314, 459, 360], "yolo_type": "Car",
       "file": "CTX1005_CAM1_000004_000601.jpg"},
      ...]}

The frame index is the yolo worker's own (its ``snapshot ready`` log line carries it); where that
line is missing (a log level above INFO) it is ``detected_in_ms`` x fps, rounded, and
``frame_index_from`` says so.  A run from before this record (only ``results.json``) is read the
same way from its rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

FORMAT = "cvitx-snapshots/1"
FROM_LOG = "yolo_worker log"
FROM_MS = "detected_in_ms x fps"


def frame_of(ms: float, fps: float) -> int:
    return int(round(ms * fps / 1000.0))


def logged_frames(log_lines: Iterable[str], video_id: Optional[str] = None) -> dict[int, tuple[int, int]]:
    """``{track_id: (frame_index, detected_in_ms)}`` from the yolo worker's JSON log lines
    (``snapshot ready`` records; of ``video_id`` when given).  Lines that are not JSON are skipped."""
    out: dict[int, tuple[int, int]] = {}
    for line in log_lines:
        if '"snapshot ready"' not in line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("msg") != "snapshot ready" or (video_id and rec.get("video_id") not in (None, video_id)):
            continue
        if isinstance(rec.get("track_id"), int) and isinstance(rec.get("frame_index"), int):
            out[rec["track_id"]] = (rec["frame_index"], int(rec.get("detected_in_ms", -1)))
    return out


def snapshot_record(analyses: Sequence[Mapping[str, Any]], logged: Mapping[int, tuple[int, int]], *, video: str,
                    width: int, height: int, fps: float, frame_count: int, frame_stride: Optional[int],
                    detector: Optional[str]) -> dict:
    """The ``snapshots.json`` document (module docstring) of a job's analysis rows
    (``repository.list_analyses``) and :func:`logged_frames` of its yolo worker log."""
    snaps, from_log = [], True
    for a in analyses:
        ms = int(a["detected_in_ms"])
        hit = logged.get(int(a["track_id"]))
        if hit is not None and hit[1] in (ms, -1):
            frame = hit[0]
        else:
            frame, from_log = frame_of(ms, fps), False
        snaps.append({"track_id": int(a["track_id"]), "frame_index": frame, "detected_in_ms": ms,
                      "box": list(a["bbox"]) if a.get("bbox") else None, "yolo_type": a.get("yolo_type"),
                      "file": str(a.get("snapshot_s3_key") or "").rsplit("/", 1)[-1] or None})
    return {"format": FORMAT, "video": video, "width": width, "height": height, "fps": fps,
            "frame_count": frame_count, "frame_stride": frame_stride, "detector": detector,
            "frame_index_from": FROM_LOG if from_log else FROM_MS, "snapshots": snaps}


def dumps_record(record: Mapping[str, Any]) -> str:
    """JSON text with one snapshot per line."""
    head = {k: v for k, v in record.items() if k != "snapshots"}
    body = ",\n".join("  " + json.dumps(s) for s in record.get("snapshots", []))
    text = json.dumps(head, indent=1)[:-2]  # drop the closing "\n}"
    return text + ',\n "snapshots": [\n' + body + ("\n" if body else "") + " ]\n}\n"


def write_job_record(result, video: Path, video_info: Mapping[str, Any]) -> Path:
    """Write ``snapshots.json`` beside the report of a finished ``analyze`` job (``cli.job.JobResult``)
    of ``video`` (``video_info``: width, height, fps, frame_count)."""
    from ..cli.weights_notice import stage_weights

    try:
        lines = result.yolo_log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    record = snapshot_record(result.analyses, logged_frames(lines, result.video_id),
                             video=video.name,
                             width=video_info.get("width"), height=video_info.get("height"), fps=video_info.get("fps"),
                             frame_count=video_info.get("frame_count"), frame_stride=result.video.get("frame_stride"),
                             detector=stage_weights(result.settings).get("detector"))
    path = result.report_dir / "snapshots.json"
    result.report_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_record(record))
    return path


def read_run(run_dir: str | Path, video: Path, info) -> tuple[list, dict]:
    """The snapshots an ``analyze --out RUN_DIR`` run left (``snapshots.json``, else ``results.json``)
    for ``video`` (``info``: its ``video.probe``), and a description of the run."""
    from .real import Snapshot

    root = Path(run_dir)
    report = next((d for d in (root / "report", root) if (d / "snapshots.json").exists() or
                   (d / "results.json").exists()), None)
    if report is None:
        raise ValueError(f"{root}: no report/snapshots.json or report/results.json; give the --out directory "
                         "of an `analyze` run")
    if (report / "snapshots.json").exists():
        doc = json.loads((report / "snapshots.json").read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{report / 'snapshots.json'}: format {doc.get('format')!r}, expected {FORMAT!r}")
        name, size = doc.get("video"), (doc.get("width"), doc.get("height"))
        rows = [(s["frame_index"], s["box"], s["track_id"]) for s in doc["snapshots"]]
        run = {"source": str(report / "snapshots.json"), "detector": doc.get("detector"),
               "frame_stride": doc.get("frame_stride"), "frame_index_from": doc.get("frame_index_from")}
    else:
        doc = json.loads((report / "results.json").read_text())
        name = Path(str((doc.get("video") or {}).get("s3_key_raw") or "")).name or None
        vi = doc.get("video_info") or {}
        size = (vi.get("width"), vi.get("height"))
        rows = [(frame_of(a["detected_in_ms"], info.fps), a.get("bbox"), a.get("track_id"))
                for a in doc.get("analyses", [])]
        run = {"source": str(report / "results.json"), "frame_stride": (doc.get("video") or {}).get("frame_stride"),
               "frame_index_from": FROM_MS}
    # results.json knows the name of the uploaded object only (submit_video may change the suffix)
    if name and Path(name).stem != video.stem:
        raise ValueError(f"{root}: that run analysed {name}, not {video.name}; give the video the run analysed")
    if all(size) and tuple(size) != (info.width, info.height):
        raise ValueError(f"{root}: that run's frames are {size[0]}x{size[1]} but {video.name} is "
                         f"{info.width}x{info.height}; give the video the run analysed")
    missing = sum(1 for _f, box, _t in rows if not box)
    snaps = sorted((Snapshot(int(f), tuple(float(c) for c in box), t) for f, box, t in rows if box),
                   key=lambda s: (s.frame, s.track_id if s.track_id is not None else -1))
    if missing:
        run["snapshots_without_box"] = missing  # rows from before bbox was recorded: not scored
    return snaps, run
