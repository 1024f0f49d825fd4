-- Where the snapshot's vehicle was: the chosen detection's box (x1, y1, x2, y2) in pixels of the
-- full-resolution frame at detected_in_ms. For overlays in the UI, the annotated video and the
-- demo's scoring against ground truth. Nullable: rows written by older workers have no box.
ALTER TABLE image_analyses ADD COLUMN IF NOT EXISTS bbox integer[] NULL
    CHECK (bbox IS NULL OR (cardinality(bbox) = 4 AND bbox[1] < bbox[3] AND bbox[2] < bbox[4]));
