-- Long videos are processed as time segments (yolo_worker/segments.py): one row per segment of a
-- segmented video, written by the worker that planned it. videos.status stays the video's own:
-- 'done' once every segment is done, 'error' when one is dead-lettered (with that segment's reason).
-- A video processed in one piece has no rows here.
CREATE TABLE IF NOT EXISTS video_segments (
    video_id       uuid        NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    segment_index  integer     NOT NULL CHECK (segment_index >= 0),
    segment_count  integer     NOT NULL CHECK (segment_count > segment_index),
    start_frame    integer     NOT NULL CHECK (start_frame >= 0),
    end_frame      integer     NULL,
    status         text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'processing', 'done', 'error')),
    error          text        NULL,
    snapshots      integer     NULL,
    plan           jsonb       NOT NULL,  -- the segment as PROCESS_SEGMENT carries it: a redelivered PROCESS_VIDEO re-announces this plan
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (video_id, segment_index)
);
