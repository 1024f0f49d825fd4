"""Snapshots of a real clip scored against a hand-made ground truth (``eval real``).

**Ground truth** (JSON, a list, one vehicle per entry; ``tests/data/real/abhishek_highway.gt.json``)::

    [{"id": "R0", "first_frame": 0, "last_frame": 32, "kind": "car", "note": "...",
      "boxes": {"0": [331, 276, 404, 327], "30": [...]}},  ...]

``first_frame``/``last_frame`` (0-based, inclusive) is when the vehicle is in view.  A ``note``
starting with ``hard`` marks a vehicle that is not counted (tiny, far, or only partly in view at
the clip's start or end): it may be snapshotted or not without penalty, and a snapshot matched to
it is neither a snapshot of no vehicle nor a duplicate.  ``boxes`` is optional: hand-drawn
``[x1, y1, x2, y2]`` boxes (pixels of the original frame) at some frames of the vehicle's range.

**Matching** a snapshot (frame ``f``, box) to a vehicle -- :func:`match_snapshots`:

1. A vehicle is a candidate when ``first_frame <= f <= last_frame`` and, if it has boxes, the
   centre of the snapshot's box lies inside the vehicle's box at ``f`` (:func:`box_at`: linear
   between the given frames around ``f``, the nearest given box outside them) grown by ``grow``
   (default 0.25) of its width and height on each side.
   Why a centre-inside test and not IoU: hand-drawn boxes and a detector's boxes differ in
   tightness, and the interpolated box lags a vehicle that speeds up in the image; an IoU
   threshold would call a right but loose snapshot a miss.  A box that spans two vehicles has its
   centre between them, outside both, so it still counts as a snapshot of no vehicle.
2. A snapshot with a candidate confirmed by a box goes to the confirmed one whose box it overlaps
   best (IoU, then the nearer centre, then ground-truth order); vehicles without boxes are not
   considered for it (a drawn box is better evidence than a time range).
3. Snapshots whose candidates all lack boxes (the frame-range-only format) are assigned the
   favourable way: a maximum matching to countable vehicles that no snapshot has yet, then a hard
   candidate, else a duplicate of the first candidate.  With frame ranges alone every snapshot
   taken while some vehicle is in view counts as a vehicle's: the figures are then an upper bound
   (no snapshot of no vehicle can be seen); draw boxes to make them honest.

**Scoring** -- :func:`score_snapshots`: per countable vehicle the number of snapshots matched to
it (exactly one / two or more / none), snapshots of no vehicle, and cut-off pictures: the
snapshot box within ``edge_px`` of the frame edge (``selection.BORDER_PX`` by default), or, for a
snapshot matched to a vehicle with drawn boxes, that vehicle's box at the snapshot's frame within
:data:`GT_EDGE_PX` of the edge (hand-drawn boxes end at the frame edge where the vehicle is partly
out of view; a detector's box often ends a few pixels short of it, which the box rule misses).

Everything here is pure (plain data in and out) except :func:`evaluate_real`, which runs the
yolo worker's pipeline (or reads a previous ``analyze`` run) and hands the snapshots over.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..yolo_worker.selection import BORDER_PX
from ..yolo_worker.selection import touches_border as touches_edge  # the worker's own test, any margin
from .metrics import iou_matrix

Box = tuple[float, float, float, float]
GROW = 0.25
DEMO_DETECTOR_NOTICE = ("the demo detector was trained on generated traffic scenes only: on real footage it snapshots "
                        "things that are not vehicles and misses vehicles; give a real detector with --weights (or "
                        "detector_path) to measure one")


class GroundTruthError(ValueError):
    """The ground-truth file is malformed; ``str()`` names the entry and the fix."""


@dataclass(frozen=True)
class Vehicle:
    """One ground-truth vehicle; ``boxes`` maps frame index -> (x1, y1, x2, y2) original-frame px."""

    id: str
    first_frame: int
    last_frame: int
    kind: str = ""
    note: str = ""
    boxes: Mapping[int, Box] = field(default_factory=dict)

    @property
    def countable(self) -> bool:
        return not self.note.strip().lower().startswith("hard")


@dataclass(frozen=True)
class Snapshot:
    """One snapshot: the frame it was taken from and the detection's box there (original px)."""

    frame: int
    box: Box
    track_id: Optional[int] = None


# ---------------------------------------------------------------------------------------------
# ground truth file


def _box(value: Any, where: str) -> Box:
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise GroundTruthError(f"{where}: a box is [x1, y1, x2, y2] in pixels, got {value!r}")
    x1, y1, x2, y2 = (float(v) for v in value)
    if not (x2 > x1 and y2 > y1):
        raise GroundTruthError(f"{where}: box {value!r} has x2 <= x1 or y2 <= y1; give [left, top, right, bottom]")
    return x1, y1, x2, y2


def parse_ground_truth(data: Any, source: str = "ground truth") -> list[Vehicle]:
    """The vehicles of a ground-truth document (the JSON list described in the module docstring).

    Raises :class:`GroundTruthError` naming the entry and what to fix."""
    if not isinstance(data, list):
        raise GroundTruthError(f"{source}: expected a JSON list of vehicles "
                               '[{"id", "first_frame", "last_frame", "kind", "note"}, ...], got '
                               f"{type(data).__name__}")
    vehicles: list[Vehicle] = []
    seen: set[str] = set()
    for n, entry in enumerate(data):
        where = f"{source}: vehicle #{n}"
        if not isinstance(entry, dict):
            raise GroundTruthError(f"{where}: expected an object, got {entry!r}")
        vid = entry.get("id")
        if not isinstance(vid, (str, int)) or isinstance(vid, bool) or str(vid) == "":
            raise GroundTruthError(f"{where}: 'id' must be a non-empty string")
        vid = str(vid)
        where = f"{source}: vehicle {vid}"
        if vid in seen:
            raise GroundTruthError(f"{where}: the id is used twice; give every vehicle its own id")
        seen.add(vid)
        first, last = entry.get("first_frame"), entry.get("last_frame")
        for name, v in (("first_frame", first), ("last_frame", last)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise GroundTruthError(f"{where}: '{name}' must be a frame index >= 0, got {v!r}")
        if last < first:
            raise GroundTruthError(f"{where}: last_frame {last} is before first_frame {first}")
        unknown = set(entry) - {"id", "first_frame", "last_frame", "kind", "note", "boxes"}
        if unknown:
            raise GroundTruthError(f"{where}: unknown key(s) {sorted(unknown)}; the keys are id, first_frame, "
                                   "last_frame, kind, note and the optional boxes")
        raw_boxes = entry.get("boxes") or {}
        if not isinstance(raw_boxes, dict):
            raise GroundTruthError(f"{where}: 'boxes' must map a frame (as a string) to [x1, y1, x2, y2]")
        boxes: dict[int, Box] = {}
        for key, value in raw_boxes.items():
            try:
                frame = int(key)
            except (TypeError, ValueError):
                raise GroundTruthError(f"{where}: boxes key {key!r} is not a frame index") from None
            if not first <= frame <= last:
                raise GroundTruthError(f"{where}: a box at frame {frame} is outside the vehicle's frames "
                                       f"{first}..{last}; widen the range or move the box")
            boxes[frame] = _box(value, f"{where}, box at frame {frame}")
        vehicles.append(Vehicle(vid, first, last, str(entry.get("kind") or ""), str(entry.get("note") or ""),
                                dict(sorted(boxes.items()))))
    return vehicles


def load_ground_truth(path: str | Path) -> list[Vehicle]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise GroundTruthError(f"{p}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise GroundTruthError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_ground_truth(data, str(p))


def dump_ground_truth(vehicles: Sequence[Vehicle]) -> str:
    """The JSON text of ``vehicles``, one vehicle per line (readable, diffable)."""
    lines = []
    for v in vehicles:
        d: dict[str, Any] = {"id": v.id, "first_frame": v.first_frame, "last_frame": v.last_frame, "kind": v.kind,
                             "note": v.note}
        if v.boxes:
            d["boxes"] = {str(f): [round(c, 1) if c % 1 else int(c) for c in b] for f, b in v.boxes.items()}
        lines.append(" " + json.dumps(d))
    return "[\n" + ",\n".join(lines) + "\n]\n"


# ---------------------------------------------------------------------------------------------
# geometry


def box_at(boxes: Mapping[int, Box], frame: int) -> Optional[Box]:
    """The vehicle's box at ``frame``: linear between the given frames around it, the nearest
    given box before the first or after the last; None without boxes."""
    if not boxes:
        return None
    frames = sorted(boxes)
    if frame <= frames[0]:
        return tuple(boxes[frames[0]])  # type: ignore[return-value]
    if frame >= frames[-1]:
        return tuple(boxes[frames[-1]])  # type: ignore[return-value]
    for a, b in zip(frames, frames[1:]):
        if a <= frame <= b:
            t = (frame - a) / (b - a)
            return tuple(p + t * (q - p) for p, q in zip(boxes[a], boxes[b]))  # type: ignore[return-value]
    raise AssertionError("unreachable: frame lies between the first and last given frames")


def centre_inside(box: Sequence[float], region: Sequence[float], grow: float = GROW) -> bool:
    """The centre of ``box`` inside ``region`` grown by ``grow`` x its width/height on each side."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    gw, gh = grow * (region[2] - region[0]), grow * (region[3] - region[1])
    return region[0] - gw <= cx <= region[2] + gw and region[1] - gh <= cy <= region[3] + gh


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``(x1, y1, x2, y2)`` boxes (eval/metrics.py's, for one pair)."""
    return float(iou_matrix(a, b)[0, 0])


GT_EDGE_PX = 1.0  # a drawn box this close to the frame edge: the vehicle runs out of the picture


def cut_off(snapshot: "Snapshot", vehicle: Optional["Vehicle"], width: int, height: int,
            edge_px: float = BORDER_PX) -> bool:
    """The snapshot's picture is cut off by the frame edge: its own box says so (``edge_px``), or
    the matched vehicle's drawn box at that frame does (:data:`GT_EDGE_PX`)."""
    if touches_edge(snapshot.box, width, height, edge_px):
        return True
    drawn = box_at(vehicle.boxes, snapshot.frame) if vehicle is not None else None
    return drawn is not None and touches_edge(drawn, width, height, GT_EDGE_PX)


# ---------------------------------------------------------------------------------------------
# matcher and scorer


@dataclass(frozen=True)
class Match:
    """What one snapshot matched: the vehicle's id (None: no vehicle) and how (``box``: confirmed
    by a drawn box; ``range``: by frame range alone; None)."""

    vehicle: Optional[str]
    by: Optional[str]


def match_snapshots(snapshots: Sequence[Snapshot], vehicles: Sequence[Vehicle], grow: float = GROW) -> list[Match]:
    """One :class:`Match` per snapshot, in order (rules: module docstring)."""
    out: list[Optional[Match]] = [None] * len(snapshots)
    ranged: dict[int, list[Vehicle]] = {}  # snapshot -> candidates without boxes (rule 3)
    for i, s in enumerate(snapshots):
        in_view = [v for v in vehicles if v.first_frame <= s.frame <= v.last_frame]
        confirmed = []
        for order, v in enumerate(in_view):
            if v.boxes:
                ref = box_at(v.boxes, s.frame)
                if ref is not None and centre_inside(s.box, ref, grow):
                    c = ((ref[0] + ref[2]) / 2 - (s.box[0] + s.box[2]) / 2,
                         (ref[1] + ref[3]) / 2 - (s.box[1] + s.box[3]) / 2)
                    confirmed.append((-iou(s.box, ref), math.hypot(*c), order, v))
        if confirmed:
            out[i] = Match(min(confirmed, key=lambda t: t[:3])[3].id, "box")
            continue
        unboxed = [v for v in in_view if not v.boxes]
        if unboxed:
            ranged[i] = unboxed
        else:
            out[i] = Match(None, None)
    # Rule 3: Kuhn's augmenting paths, snapshots -> countable vehicles without boxes (those with
    # boxes never get a snapshot by range, so no vehicle here has one from rule 2).
    owner: dict[str, int] = {}

    def augment(i: int, visited: set[str]) -> bool:
        for v in ranged[i]:
            if not v.countable or v.id in visited:
                continue
            visited.add(v.id)
            if v.id not in owner or augment(owner[v.id], visited):
                owner[v.id] = i
                return True
        return False

    for i in sorted(ranged):
        augment(i, set())
    got = {i: vid for vid, i in owner.items()}
    for i, cands in ranged.items():
        if i in got:
            out[i] = Match(got[i], "range")
        else:
            hard = next((v for v in cands if not v.countable), None)
            out[i] = Match((hard or cands[0]).id, "range")
    return [m for m in out if m is not None]


def score_snapshots(snapshots: Sequence[Snapshot], vehicles: Sequence[Vehicle], width: int, height: int,
                    grow: float = GROW, edge_px: float = BORDER_PX) -> dict:
    """Counts, per vehicle and per snapshot, for one clip (``width`` x ``height`` px frames).

    ``counts``: ``countable_vehicles`` = ``exactly_one`` + ``duplicated`` (2 or more snapshots)
    + ``missed``; ``snapshots`` = those matched to countable vehicles + ``on_hard_vehicles`` +
    ``no_vehicle``; ``cut_off``: snapshots whose picture the frame edge cuts (:func:`cut_off`);
    ``recall_exactly_one`` = exactly_one / countable_vehicles."""
    matches = match_snapshots(snapshots, vehicles, grow)
    by_id = {v.id: v for v in vehicles}
    per_vehicle: dict[str, list[int]] = {v.id: [] for v in vehicles}
    for i, m in enumerate(matches):
        if m.vehicle is not None:
            per_vehicle[m.vehicle].append(i)
    countable = [v for v in vehicles if v.countable]
    n = {v.id: len(per_vehicle[v.id]) for v in countable}
    cut = [cut_off(s, by_id.get(m.vehicle) if m.vehicle else None, width, height, edge_px)
           for s, m in zip(snapshots, matches)]
    exactly_one = sum(1 for k in n.values() if k == 1)
    counts = {
        "countable_vehicles": len(countable),
        "exactly_one": exactly_one,
        "duplicated": sum(1 for k in n.values() if k >= 2),
        "missed": sum(1 for k in n.values() if k == 0),
        "snapshots": len(snapshots),
        "on_countable_vehicles": sum(n.values()),
        "on_hard_vehicles": sum(1 for m in matches if m.vehicle is not None and not by_id[m.vehicle].countable),
        "no_vehicle": sum(1 for m in matches if m.vehicle is None),
        "cut_off": sum(cut),
        "recall_exactly_one": round(exactly_one / len(countable), 4) if countable else 1.0,
    }
    return {
        "counts": counts,
        "matched_by": {"box": sum(m.by == "box" for m in matches), "range": sum(m.by == "range" for m in matches)},
        "vehicles": [{"id": v.id, "kind": v.kind, "countable": v.countable, "frames": [v.first_frame, v.last_frame],
                      "boxes": len(v.boxes), "snapshots": per_vehicle[v.id]} for v in vehicles],
        "snapshot_list": [{"frame": s.frame, "box": [round(c, 1) for c in s.box], "track_id": s.track_id,
                           "vehicle": m.vehicle, "matched_by": m.by, "cut_off": c}
                          for s, m, c in zip(snapshots, matches, cut)],
    }


def shifted(vehicles: Sequence[Vehicle], frames: int) -> list[Vehicle]:
    """``vehicles`` moved ``frames`` later (boxes too): a wrong ground truth, for checking that
    a score notices."""
    return [Vehicle(v.id, v.first_frame + frames, v.last_frame + frames, v.kind, v.note,
                    {f + frames: b for f, b in v.boxes.items()}) for v in vehicles]


# ---------------------------------------------------------------------------------------------
# the run: the pipeline here, or a previous analyze run


def pipeline_snapshots(video: str | Path, settings, stride: int) -> tuple[list[Snapshot], dict]:
    """Run the yolo worker's pipeline (detector, tracker, best-frame selection; no S3/SQS/DB) on
    ``video`` and return its snapshots and a description of the run."""
    from ..yolo_worker.detector import Detector
    from ..yolo_worker.pipeline import run_pipeline
    from ..yolo_worker.tracking import Tracker
    from ..yolo_worker.video import probe

    info = probe(video)
    detector = Detector(settings)
    tracker = Tracker(settings, (info.height, info.width))
    finished: list = []
    stats = run_pipeline(video, info, stride, settings, detector, tracker, emit=finished.append)
    snaps = sorted((Snapshot(int(ft.best.frame_index), tuple(float(c) for c in ft.best.box), int(ft.track_id))
                    for ft in finished), key=lambda s: (s.frame, s.track_id))
    return snaps, {"source": "pipeline", "detector": str(settings.resolve_path(settings.detector_path)),
                   "frame_stride": stride, "frames_processed": stats.frames_processed,
                   "wall_s": round(stats.wall_s, 2)}


def evaluate_real(video: str | Path, gt_path: str | Path, settings, run_dir: Optional[str | Path] = None,
                  stride: Optional[int] = None, grow: float = GROW, edge_px: float = BORDER_PX,
                  choose_detector: bool = True) -> dict:
    """The ``eval real`` report: the clip, its ground truth, the run and :func:`score_snapshots`.
    ``choose_detector``: on a clip the generator did not make, the shipped COCO detector replaces
    the demo one (cli/weights_notice.detector_for_video), as ``analyze`` does; off with ``--weights``."""
    from ..cli.weights_notice import demo_stages, detector_for_video
    from ..yolo_worker.video import probe
    from .run_record import read_run

    video = Path(video)
    vehicles = load_ground_truth(gt_path)
    info = probe(video)
    last = max((v.last_frame for v in vehicles), default=0)
    if info.frame_count and last >= info.frame_count:
        raise GroundTruthError(f"{gt_path}: a vehicle's last_frame is {last} but {video.name} has "
                               f"{info.frame_count} frames; is it the ground truth of another clip?")
    if run_dir is not None:
        snaps, run = read_run(run_dir, video, info)
        notice = None
    else:
        if choose_detector:
            settings = detector_for_video(settings, video, info.frame_count)  # real footage: the COCO detector
        snaps, run = pipeline_snapshots(video, settings, stride or settings.default_frame_stride)
        notice = DEMO_DETECTOR_NOTICE if "detector" in demo_stages(settings) else None
    score = score_snapshots(snaps, vehicles, info.width, info.height, grow, edge_px)
    report = {"clip": {"video": video.name, "width": info.width, "height": info.height, "fps": round(info.fps, 3),
                       "frames": info.frame_count},
              "ground_truth": {"file": str(gt_path), "vehicles": len(vehicles),
                               "countable": sum(v.countable for v in vehicles),
                               "with_boxes": sum(bool(v.boxes) for v in vehicles)},
              "run": run, "counts": score["counts"], "matched_by": score["matched_by"],
              "match": {"rule": "frame range + snapshot centre inside the drawn box (interpolated), grown",
                        "grow": grow, "cut_off_edge_px": edge_px}}
    if notice:
        report["notice"] = notice
    report["vehicles"] = score["vehicles"]
    report["snapshots"] = score["snapshot_list"]
    return report


def summary_line(report: dict) -> str:
    """One human line of a report's counts."""
    c = report["counts"]
    return (f"{report['clip']['video']}: {c['countable_vehicles']} countable vehicles: {c['exactly_one']} with exactly "
            f"one snapshot, {c['duplicated']} with duplicates, {c['missed']} missed; {c['snapshots']} snapshots, "
            f"{c['no_vehicle']} of no vehicle, {c['cut_off']} cut off")
