"""Time segments of a long video: the plan, and which tracks a segment owns (pure, no I/O).

A video longer than ``segment_s`` is processed as independent segments that any workers take in
any order.  Each vehicle must still get exactly one snapshot, as if the video were processed in
one piece, without the segments talking to each other.  The rule:

* **Owned range.**  Segment ``k`` owns frames ``[start_frame, end_frame)``; the ranges tile the
  video.  A segment emits exactly the tracks that *begin* inside its owned range (the frame of
  the track's first confirmed box).
* **Warm-up.**  It starts reading ``warmup_s`` before ``start_frame`` (``warm_frame``; at least the
  tracker's memory of a lost vehicle), so that its tracker already follows every vehicle in view
  when its range begins: a vehicle that came into view before the boundary, stands parked across
  it or was hidden there, began in the warm-up and belongs to an earlier segment.  The previous segment saw that vehicle begin inside its own range, since the
  warm-up lies inside that range (``warmup_s`` < ``segment_s``).
* **Tail.**  After ``end_frame`` it keeps reading while a track it owns is still live, so a
  vehicle that crosses the boundary is followed to its end, and stops at ``tail_frame``
  (``tail_s`` past the end) at the latest: a vehicle parked for the rest of the video gets its
  snapshot from the first ``segment_s + tail_s`` of its stay.
* **Ids.**  Track ids are unique within the video and fit the spec's 6-digit snapshot names: segment
  ``k`` of ``n`` numbers its tracks from ``k x block + 1``, ``block = 10 ** (6 - digits(n))`` (24
  segments: 10,000 ids each).  One segment (a short video) numbers from 1, as before.

Frames are the decoded stream's 0-based indices; boundaries are multiples of the frame stride, so
every segment processes the same frames the whole video would (``index % stride == 0``).  Both
segments near a boundary see the same detections there, and their trackers, warmed on the same
frames, agree on when a track begins, up to what the trackers' older state changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

MAX_TRACK_ID = 999_999  # the spec's snapshot name: {track:06d}
MERGE_FRACTION = 0.1  # a last segment shorter than this x segment_s joins the one before it


@dataclass(frozen=True)
class Segment:
    """One segment of a video, in frame indices (``None`` end or tail: to the end of the video)."""

    index: int  # 0-based
    count: int  # segments in the video
    start_frame: int  # owned range: [start_frame, end_frame)
    end_frame: Optional[int]
    warm_frame: int  # reading starts here (<= start_frame; a multiple of the stride)
    tail_frame: Optional[int]  # reading stops here at the latest (>= end_frame)
    first_track_id: int  # this segment's tracks are numbered from here

    def owns(self, frame_index: int) -> bool:
        """A track that began at ``frame_index`` is this segment's to emit."""
        return self.start_frame <= frame_index and (self.end_frame is None or frame_index < self.end_frame)

    def past_end(self, frame_index: int) -> bool:
        return self.end_frame is not None and frame_index >= self.end_frame

    def past_tail(self, frame_index: int) -> bool:
        return self.tail_frame is not None and frame_index >= self.tail_frame

    @property
    def last_track_id(self) -> int:
        """The largest id this segment may give (the next segment's first, less one)."""
        if self.count == 1:
            return MAX_TRACK_ID
        return self.first_track_id - 1 + id_block(self.count)


WHOLE = Segment(0, 1, 0, None, 0, None, 1)  # an unsegmented video


def id_block(count: int) -> int:
    """Ids per segment for a video of ``count`` segments: ``10 ** (6 - digits(count))``."""
    if count < 1 or count > 99_999:
        raise ValueError(f"a video cannot have {count} segments (1 to 99,999)")
    return 10 ** (6 - len(str(count)))


def plan_segments(frame_count: int, fps: float, stride: int, segment_s: float, warmup_s: float,
                  tail_s: float, memory_steps: int = 0) -> list[Segment]:
    """The segments of a video of ``frame_count`` frames at ``fps`` (pure).

    ``memory_steps``: how many processed frames the tracker remembers a lost vehicle
    (``track_max_age`` + 1).  The warm-up is at least that long: a vehicle hidden at a boundary
    and found again after it was seen within that memory before the boundary, so inside the
    warm-up, and the segment's tracker knows it as the whole run's does (one that was lost for
    longer than the warm-up came back as "new" and was emitted twice: a vehicle stopped behind
    another for 6 s against a 5 s warm-up, on a generated clip at 12.5 fps).

    One segment (:data:`WHOLE`) when ``segment_s`` is 0, the frame count or rate is unknown, or the
    video is no longer than ``segment_s``.  Otherwise boundaries every ``segment_s`` (rounded to a
    multiple of ``stride`` frames); a remainder under ``MERGE_FRACTION`` of a segment joins the last
    one (it would cost a warm-up for little work), so a segment owns at most 1.1 x ``segment_s``.
    The last segment runs to the end of the video whatever the container's declared frame count.
    """
    if stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {stride}")
    if not (0 <= warmup_s < segment_s or segment_s == 0):
        raise ValueError(f"segment warm-up {warmup_s} s must be shorter than the segment ({segment_s} s)")
    if segment_s <= 0 or frame_count <= 0 or fps <= 0:
        return [WHOLE]
    seg = max(stride, int(round(segment_s * fps / stride)) * stride)
    count = -(-frame_count // seg)
    if count > 1 and frame_count - (count - 1) * seg < MERGE_FRACTION * seg:
        count -= 1
    if count == 1:
        return [WHOLE]
    warm = max(int(math.ceil(warmup_s * fps / stride)), memory_steps) * stride
    if warm >= seg:
        raise ValueError(f"segments of {segment_s} s are shorter than their warm-up ({warm / fps:.1f} s: "
                         f"segment_warmup_s or the tracker's memory, track_max_age {memory_steps - 1} processed "
                         "frames); raise segment_s")
    tail = int(math.ceil(tail_s * fps / stride)) * stride
    block = id_block(count)
    out = []
    for k in range(count):
        start = k * seg
        end = None if k == count - 1 else start + seg
        out.append(Segment(k, count, start, end, max(0, start - warm), None if end is None else end + tail,
                           k * block + 1))
    return out


def describe(seg: Segment, fps: float) -> str:
    """``segment 3 of 24 (00:30:00-00:40:00)`` for log lines and errors."""
    def hms(frame: Optional[int]) -> str:
        if frame is None:
            return "end"
        s = int(frame / fps) if fps > 0 else 0
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    return f"segment {seg.index + 1} of {seg.count} ({hms(seg.start_frame)}-{hms(seg.end_frame)})"
