-- discrepancy service, additions to 0001_core.sql.

-- Every CrystalScored the discrepancy service received (ml_scores keeps only the latest per inspection).
CREATE TABLE ml_score_history (
    event_id          uuid             PRIMARY KEY,
    inspection_id     text             NOT NULL,
    fused_probability double precision NOT NULL,
    label             text             NOT NULL,
    threshold         double precision NOT NULL,
    model_name        text             NOT NULL,
    model_version     text             NOT NULL,
    scored_at         timestamptz      NOT NULL,
    received_at       timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX ml_score_history_inspection ON ml_score_history (inspection_id, scored_at DESC);

-- Outbox: the discrepancy service inserts queue items with published_at NULL and sets it once DiscrepancyFound
-- is on the broker, so that a crash between commit and publish is repaired on the next batch.
-- Rows written by anyone else (or before this migration) count as published.
ALTER TABLE discrepancies ADD COLUMN published_at timestamptz DEFAULT now();
-- What DiscrepancyFound carries and 0001 does not keep (NULL / '96' for rows written by others).
ALTER TABLE discrepancies ADD COLUMN plate_type text NOT NULL DEFAULT '96';
ALTER TABLE discrepancies ADD COLUMN threshold double precision;
ALTER TABLE ml_scores ADD COLUMN plate_type text NOT NULL DEFAULT '96';
CREATE INDEX discrepancies_unpublished ON discrepancies (id) WHERE published_at IS NULL;
-- (an index on discrepancies (inspection_id), used by the supersede update, is created by 0400.)

-- "Known inspection" look-ups of user scores by experiment + time.
CREATE INDEX ml_scores_drop ON ml_scores (plate_barcode, well, drop_no, imaged_at);
CREATE INDEX comparisons_plate ON comparisons (plate_barcode);
