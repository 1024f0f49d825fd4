-- CVITX video analysis: base schema.
-- In production the API owns `videos`; it is created here only where it is missing
-- (local stack, tests). The one addition to an existing videos table is the nullable
-- `error` column (the reason a video failed), added only if absent.

CREATE TABLE IF NOT EXISTS videos (
    id              uuid PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    workspace_code  text        NOT NULL CHECK (workspace_code ~ '^CTX[0-9]{4,}$'),
    camera_code     text        NOT NULL CHECK (camera_code ~ '^CAM[0-9]+$'),
    s3_key_raw      text        NOT NULL,
    frame_stride    integer     NOT NULL DEFAULT 3 CHECK (frame_stride >= 1),
    recorded_at     timestamptz NULL,
    status          text        NOT NULL DEFAULT 'uploaded'
                    CHECK (status IN ('uploaded', 'queued', 'processing', 'done', 'error')),
    error           text        NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE videos ADD COLUMN IF NOT EXISTS error text NULL;

CREATE TABLE IF NOT EXISTS image_analyses (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    video_id         uuid        NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    workspace_id     uuid        NOT NULL,
    track_id         integer     NOT NULL CHECK (track_id >= 0),
    snapshot_s3_key  text        NOT NULL UNIQUE
                     CHECK (snapshot_s3_key LIKE 's3://%' AND snapshot_s3_key NOT LIKE '%?%'),
    detected_in_ms   bigint      NOT NULL CHECK (detected_in_ms >= 0),
    detected_at      timestamptz NULL,
    yolo_type        text        NOT NULL CHECK (yolo_type IN
                     ('Car', 'SUV', 'Van', 'LightTruck', 'Utility', 'Motorcycle', 'CarouselBus', 'E-Jeepney')),
    status           text        NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'processing', 'done', 'error')),
    error            text        NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS image_analyses_video_idx ON image_analyses (video_id);

CREATE TABLE IF NOT EXISTS image_analysis_results (
    id            bigserial PRIMARY KEY,
    analysis_id   uuid        NOT NULL REFERENCES image_analyses (id) ON DELETE CASCADE,
    variant       text        NOT NULL CHECK (variant IN ('baseline', 'cmt')),
    type          text        NULL,
    type_conf     real        NULL CHECK (type_conf BETWEEN 0 AND 1),
    make          text        NULL,
    make_conf     real        NULL CHECK (make_conf BETWEEN 0 AND 1),
    model         text        NULL,
    model_conf    real        NULL CHECK (model_conf BETWEEN 0 AND 1),
    colors        jsonb       NULL CHECK (colors IS NULL OR jsonb_typeof(colors) = 'array'),
    plate         text        NULL,
    plate_conf    real        NULL CHECK (plate_conf BETWEEN 0 AND 1),
    payload       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    model_name    text        NULL,
    model_version text        NULL,
    latency_ms    real        NULL CHECK (latency_ms >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (analysis_id, variant)
);
