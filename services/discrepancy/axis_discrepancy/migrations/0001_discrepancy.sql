-- The discrepancy service's schema (ML and user score history, comparisons, disagreement items, LIMS gateway requests). Applied by axis_stack.migrate as the service's own role,
-- whose search_path is its schema: unqualified names land there. No other service's table is named here.

CREATE TABLE ml_scores (
    inspection_id     text             PRIMARY KEY,
    plate_barcode     text             NOT NULL,
    well              text             NOT NULL,
    drop_no           integer          NOT NULL,
    imaged_at         timestamptz      NOT NULL,
    fused_probability double precision NOT NULL,
    label             text             NOT NULL,
    threshold         double precision NOT NULL,
    model_name        text             NOT NULL,
    model_version     text             NOT NULL,
    event_id          uuid             NOT NULL,
    scored_at         timestamptz      NOT NULL
);

CREATE TABLE user_scores (
    event_id      uuid        PRIMARY KEY,
    inspection_id text,
    plate_barcode text,
    well          text,
    drop_no       integer,
    user_id       text        NOT NULL,
    raw_class     text        NOT NULL,
    human_label   text        NOT NULL CHECK (human_label IN ('crystal', 'other')),
    scored_at     timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_scores_inspection ON user_scores (inspection_id, scored_at DESC);

CREATE TABLE comparisons (
    inspection_id   text             PRIMARY KEY,
    plate_barcode   text             NOT NULL,
    well            text             NOT NULL,
    drop_no         integer          NOT NULL,
    imaged_at       timestamptz      NOT NULL,
    ml_probability  double precision NOT NULL,
    ml_label        text             NOT NULL,
    threshold       double precision NOT NULL,
    model_name      text             NOT NULL,
    model_version   text             NOT NULL,
    human_label     text             NOT NULL,
    human_class     text             NOT NULL,
    user_id         text             NOT NULL,
    user_event_id   uuid             NOT NULL,
    ml_event_id     uuid             NOT NULL,
    agrees          boolean          NOT NULL,
    kind            text             CHECK (kind IN ('ml_crystal_human_other', 'ml_other_human_crystal')),
    revision        integer          NOT NULL DEFAULT 1,
    updated_at      timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE comparison_history (
    id             bigserial        PRIMARY KEY,
    inspection_id  text             NOT NULL,
    revision       integer          NOT NULL,
    ml_probability double precision NOT NULL,
    ml_label       text             NOT NULL,
    model_version  text             NOT NULL,
    human_label    text             NOT NULL,
    human_class    text             NOT NULL,
    user_id        text             NOT NULL,
    agrees         boolean          NOT NULL,
    kind           text,
    recorded_at    timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (inspection_id, revision)
);

CREATE TABLE discrepancies (
    id             bigserial        PRIMARY KEY,
    inspection_id  text             NOT NULL,
    plate_barcode  text             NOT NULL,
    well           text             NOT NULL,
    drop_no        integer          NOT NULL,
    kind           text             NOT NULL,
    ml_probability double precision NOT NULL,
    ml_label       text             NOT NULL,
    model_name     text             NOT NULL,
    model_version  text             NOT NULL,
    human_label    text             NOT NULL,
    human_class    text             NOT NULL,
    user_id        text             NOT NULL,
    ml_event_id    uuid             NOT NULL,
    user_event_id  uuid             NOT NULL,
    status         text             NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'unresolved', 'superseded')),
    resolved_label text,
    created_at     timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (inspection_id, ml_event_id, user_event_id)
);
CREATE INDEX discrepancies_status ON discrepancies (status, created_at);

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

CREATE TABLE lims_gateway_requests (
    event_id       uuid        PRIMARY KEY,
    content_sha256 text        NOT NULL,
    inspection_id  text        NOT NULL,
    score          text        NOT NULL,
    accepted_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX discrepancies_inspection ON discrepancies (inspection_id);
CREATE INDEX comparisons_agrees ON comparisons (agrees, plate_barcode);

-- Curator effort where it pays (docs/curation-routing.md).

-- Why an item is in the queue: a disagreement, or an agreement routed because it is likely wrong
-- (near_threshold, modes_disagree, unreliable_user). Routed agreements have kind 'agreement' and publish no
-- DiscrepancyFound (the curation service reads the queue from this table).
ALTER TABLE discrepancies ADD COLUMN reason text NOT NULL DEFAULT 'disagreement'
    CHECK (reason IN ('disagreement', 'near_threshold', 'modes_disagree', 'unreliable_user'));
-- Expected value of a curator label: the chance that the curator overturns the model's label (axis_core.routing).
-- Rows written before this migration get 0.5, so that they are neither buried nor ahead of everything.
ALTER TABLE discrepancies ADD COLUMN priority double precision NOT NULL DEFAULT 0.5;
CREATE INDEX discrepancies_queue ON discrepancies (status, priority DESC, created_at);
-- the day's intake (the agreement budget) and each user's curated outcomes (reliability), read per batch
CREATE INDEX discrepancies_created ON discrepancies (created_at);
CREATE INDEX discrepancies_user_resolved ON discrepancies (user_id) WHERE status = 'resolved';

-- Per-mode probabilities and thresholds of the latest CrystalScored ([{"mode", "probability", "threshold"}]),
-- so that a later user score can tell whether the modes disagreed.
ALTER TABLE ml_scores ADD COLUMN mode_scores jsonb NOT NULL DEFAULT '[]'::jsonb;
