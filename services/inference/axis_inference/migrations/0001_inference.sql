-- The inference service's schema (images and their per-image and fused scores). Applied by axis_stack.migrate as the service's own role,
-- whose search_path is its schema: unqualified names land there. No other service's table is named here.

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
