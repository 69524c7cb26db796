-- AXIS Loop core schema. Applied once, in file-name order, by axis_stack.migrate (make up, tests).
-- Idempotency: every consumer writes under a unique natural key or event_id, so redelivery changes nothing.

-- Events a consumer has fully processed (effect durable), per consumer group.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- inference ---------------------------------------------------------------------------------------
-- One row per ImageCaptured (an image of one drop, one mode, one inspection).
CREATE TABLE images (
    image_event_id uuid        PRIMARY KEY,
    inspection_id  text        NOT NULL,
    plate_barcode  text        NOT NULL,
    plate_type     text        NOT NULL,
    well           text        NOT NULL,
    drop_no        integer     NOT NULL,
    imaging_mode   text        NOT NULL CHECK (imaging_mode IN ('visible', 'uv')),
    image_uri      text        NOT NULL,
    imager_id      text        NOT NULL,
    imaged_at      timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_inspection ON images (inspection_id);
CREATE INDEX images_plate ON images (plate_barcode, well, drop_no);

-- Exactly one score per image per model version.
CREATE TABLE image_scores (
    id             bigserial        PRIMARY KEY,
    image_event_id uuid             NOT NULL REFERENCES images (image_event_id),
    inspection_id  text             NOT NULL,
    imaging_mode   text             NOT NULL,
    probability    double precision NOT NULL CHECK (probability >= 0 AND probability <= 1),
    threshold      double precision NOT NULL,
    model_name     text             NOT NULL,
    model_version  text             NOT NULL,
    scored_at      timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (image_event_id, model_name, model_version)
);
CREATE INDEX image_scores_inspection ON image_scores (inspection_id);

-- The current fused score of an inspection (max over the modes scored so far): one row each.
CREATE TABLE inspection_scores (
    inspection_id     text             PRIMARY KEY,
    plate_barcode     text             NOT NULL,
    plate_type        text             NOT NULL,
    well              text             NOT NULL,
    drop_no           integer          NOT NULL,
    imaged_at         timestamptz      NOT NULL,
    mode_scores       jsonb            NOT NULL,
    fused_probability double precision NOT NULL CHECK (fused_probability >= 0 AND fused_probability <= 1),
    label             text             NOT NULL CHECK (label IN ('crystal', 'other')),
    threshold         double precision NOT NULL,
    model_name        text             NOT NULL,
    model_version     text             NOT NULL,
    scored_at         timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX inspection_scores_plate ON inspection_scores (plate_barcode);

-- discrepancy -------------------------------------------------------------------------------------
-- Latest fused ML score per inspection as seen by the discrepancy service (history in ml_score_history).
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

-- Every user score ever received (history); the latest per inspection wins.
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

-- Current comparison of ML vs human per inspection; agreements are training candidates.
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

-- curation queue: one item per (inspection, ML event, user event) disagreement.
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

-- curation ----------------------------------------------------------------------------------------
CREATE TABLE accounts (
    username      text        PRIMARY KEY,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('curator', 'admin', 'lims')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE curator_labels (
    id             bigserial   PRIMARY KEY,
    discrepancy_id bigint      NOT NULL REFERENCES discrepancies (id),
    curator        text        NOT NULL REFERENCES accounts (username),
    label          text        NOT NULL CHECK (label IN ('crystal', 'other', 'uncertain', 'unusable')),
    comment        text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX curator_labels_item ON curator_labels (discrepancy_id, curator, created_at DESC);

CREATE TABLE datasets (
    name            text        NOT NULL,
    version         text        NOT NULL,
    purpose         text        NOT NULL CHECK (purpose IN ('train', 'test')),
    manifest_uri    text        NOT NULL,
    manifest_sha256 text        NOT NULL,
    qc_report_uri   text        NOT NULL,
    card_uri        text,
    config          jsonb       NOT NULL,
    counts          jsonb       NOT NULL,
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- Plates of the frozen test set: never used for training.
CREATE TABLE test_set_plates (
    plate_barcode   text PRIMARY KEY,
    dataset_name    text NOT NULL,
    dataset_version text NOT NULL
);

-- registry audit ----------------------------------------------------------------------------------
CREATE TABLE model_promotions (
    id               bigserial   PRIMARY KEY,
    model_name       text        NOT NULL,
    version          text        NOT NULL,
    alias            text        NOT NULL,
    previous_version text,
    promoted_by      text        NOT NULL,
    reason           text        NOT NULL DEFAULT '',
    forced           boolean     NOT NULL DEFAULT false,
    metrics          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    promoted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_promotions_model ON model_promotions (model_name, version);
