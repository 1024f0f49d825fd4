-- When the track of each snapshot was first and last seen (ms from the start of the video),
-- for the per-track timeline. Nullable: rows written by older workers have no span.
ALTER TABLE image_analyses ADD COLUMN IF NOT EXISTS track_first_ms bigint NULL CHECK (track_first_ms >= 0);
ALTER TABLE image_analyses ADD COLUMN IF NOT EXISTS track_last_ms bigint NULL CHECK (track_last_ms >= 0);
