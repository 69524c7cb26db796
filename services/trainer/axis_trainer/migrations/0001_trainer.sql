-- The trainer service's schema (its processed events come from 0000_common.sql).
-- Frozen test sets, learnt from DatasetExported(purpose=test): the newest is the default evaluation set of a
-- train dataset whose DatasetExported names none (the trainer reads no other service's tables).
CREATE TABLE test_sets (
    dataset_name    text        NOT NULL,
    dataset_version text        NOT NULL,
    manifest_uri    text        NOT NULL,
    manifest_sha256 text,
    exported_at     timestamptz NOT NULL,
    PRIMARY KEY (dataset_name, dataset_version)
);
