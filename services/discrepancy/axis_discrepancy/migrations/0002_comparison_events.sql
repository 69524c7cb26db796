-- ComparisonRecorded (discrepancy.comparison-recorded.v1): every comparison revision is published through this
-- outbox, so that curation keeps its own view of the comparisons instead of reading these tables.
-- published_at NULL = not yet on the broker; rows from before this migration count as published.
ALTER TABLE comparison_history
    ADD COLUMN plate_barcode  text,
    ADD COLUMN plate_type     text,
    ADD COLUMN well           text,
    ADD COLUMN drop_no        integer,
    ADD COLUMN imaged_at      timestamptz,
    ADD COLUMN threshold      double precision,
    ADD COLUMN model_name     text,
    ADD COLUMN ml_event_id    uuid,
    ADD COLUMN user_event_id  uuid,
    ADD COLUMN user_scored_at timestamptz,
    ADD COLUMN published_at   timestamptz DEFAULT now();
ALTER TABLE comparison_history ALTER COLUMN published_at SET DEFAULT NULL;
CREATE INDEX comparison_history_unpublished ON comparison_history (id) WHERE published_at IS NULL;
-- Routed agreements are announced too (ComparisonRecorded.queue_item_id), no longer only disagreements.

-- Inspections the imaging robots announced (ImageCaptured), so that a user score that arrives before its ML
-- score still finds its inspection — learnt from the event, not from the inference service's tables.
CREATE TABLE captured_inspections (
    inspection_id text        PRIMARY KEY,
    plate_barcode text        NOT NULL,
    well          text        NOT NULL,
    drop_no       integer     NOT NULL,
    imaged_at     timestamptz NOT NULL
);
CREATE INDEX captured_inspections_drop ON captured_inspections (plate_barcode, well, drop_no, imaged_at);
