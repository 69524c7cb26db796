-- Curation's read model: what it knows of the other services, learnt only from their events (consumed by
-- axis_curation.projector; rebuilt by `python -m axis_curation rebuild`). Same names and columns as the
-- queries of the pages and the dataset builder use; no foreign keys to them (a rebuild empties these tables
-- and replays the topics while labels and datasets, curation's own data, stay).
--   images, image_scores, inspection_scores  <- CrystalScored (scoring.crystal-scored.v1)
--   user_scores, comparisons                 <- ComparisonRecorded (discrepancy.comparison-recorded.v1)
--   discrepancies (the queue)                <- DiscrepancyFound (curation.discrepancy-found.v1), and the
--                                               routed agreements of ComparisonRecorded (queue_item_id)
CREATE TABLE images (
    image_event_id uuid        PRIMARY KEY,
    inspection_id  text        NOT NULL,
    plate_barcode  text        NOT NULL,
    plate_type     text        NOT NULL,
    well           text        NOT NULL,
    drop_no        integer     NOT NULL,
    imaging_mode   text        NOT NULL,
    image_uri      text        NOT NULL,
    imaged_at      timestamptz NOT NULL
);
CREATE INDEX images_inspection ON images (inspection_id);
CREATE INDEX images_plate ON images (plate_barcode, well, drop_no);

CREATE TABLE image_scores (
    image_event_id uuid             NOT NULL,
    inspection_id  text             NOT NULL,
    imaging_mode   text             NOT NULL,
    probability    double precision NOT NULL,
    threshold      double precision NOT NULL,
    model_name     text             NOT NULL,
    model_version  text             NOT NULL,
    scored_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (image_event_id, model_name, model_version)
);
CREATE INDEX image_scores_inspection ON image_scores (inspection_id);

CREATE TABLE inspection_scores (
    inspection_id     text             PRIMARY KEY,
    plate_barcode     text             NOT NULL,
    plate_type        text             NOT NULL,
    well              text             NOT NULL,
    drop_no           integer          NOT NULL,
    imaged_at         timestamptz      NOT NULL,
    mode_scores       jsonb            NOT NULL,
    fused_probability double precision NOT NULL,
    label             text             NOT NULL,
    threshold         double precision NOT NULL,
    model_name        text             NOT NULL,
    model_version     text             NOT NULL,
    scored_at         timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX inspection_scores_plate ON inspection_scores (plate_barcode);

CREATE TABLE user_scores (
    event_id      uuid        PRIMARY KEY,
    inspection_id text,
    plate_barcode text,
    well          text,
    drop_no       integer,
    user_id       text        NOT NULL,
    raw_class     text        NOT NULL,
    human_label   text        NOT NULL,
    scored_at     timestamptz NOT NULL
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
    kind            text,
    revision        integer          NOT NULL DEFAULT 1
);
CREATE INDEX comparisons_plate ON comparisons (plate_barcode);
CREATE INDEX comparisons_agrees ON comparisons (agrees, plate_barcode);

-- ids are the discrepancy service's; items written by `seed-demo` (dev data) take theirs from far above them
CREATE SEQUENCE dev_item_ids START 1000000000000;
CREATE TABLE discrepancies (
    id             bigint           PRIMARY KEY DEFAULT nextval('dev_item_ids'),
    inspection_id  text             NOT NULL,
    plate_barcode  text             NOT NULL,
    plate_type     text             NOT NULL DEFAULT '96',
    well           text             NOT NULL,
    drop_no        integer          NOT NULL,
    kind           text             NOT NULL,
    ml_probability double precision NOT NULL,
    ml_label       text             NOT NULL,
    threshold      double precision,
    model_name     text             NOT NULL,
    model_version  text             NOT NULL,
    human_label    text             NOT NULL,
    human_class    text             NOT NULL,
    user_id        text             NOT NULL,
    ml_event_id    uuid,
    user_event_id  uuid,
    status         text             NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'resolved', 'unresolved', 'superseded')),
    resolved_label text,
    reason         text             NOT NULL DEFAULT 'disagreement',
    priority       double precision NOT NULL DEFAULT 0.5,
    created_at     timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX discrepancies_status ON discrepancies (status, created_at);
CREATE INDEX discrepancies_queue ON discrepancies (status, priority DESC, created_at);
CREATE INDEX discrepancies_inspection ON discrepancies (inspection_id);
CREATE INDEX discrepancies_created ON discrepancies (created_at);

-- The consumer group of the read model: a new schema (or `python -m axis_curation rebuild`) gets a new
-- generation, hence a new group that reads every topic from the earliest offset.
CREATE TABLE read_model_state (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    generation uuid        NOT NULL DEFAULT gen_random_uuid(),
    rebuilt_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO read_model_state DEFAULT VALUES;
