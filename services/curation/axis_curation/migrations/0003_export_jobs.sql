-- Dataset exports as background jobs (issue 18; axis_curation.export_jobs, axis_adapters.export_jobs_repo).
-- POST /v1/datasets inserts a row and answers 202; the curation service's job runner claims it with an advisory
-- lock on its id (held by one connection for the whole run: a killed service releases it with its connection),
-- streams the candidates, writes the objects, then registers the dataset row and marks the job succeeded in one
-- transaction. Unfinished jobs are claimed again when a service starts.
CREATE TABLE IF NOT EXISTS export_jobs (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL,
    version      text        NOT NULL,
    purpose      text        NOT NULL CHECK (purpose IN ('train', 'test')),
    request      jsonb       NOT NULL,                     -- the ExportRequest (config overrides, plates)
    created_by   text        NOT NULL,
    state        text        NOT NULL DEFAULT 'queued'
                             CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    stage        text        NOT NULL DEFAULT 'queued',    -- reading, measuring, building, writing, registering, done
    items_done   bigint      NOT NULL DEFAULT 0,           -- of the current stage
    items_total  bigint      NOT NULL DEFAULT 0,
    message      text        NOT NULL DEFAULT '',          -- why it failed, or that it was restarted
    attempts     integer     NOT NULL DEFAULT 0,           -- claims so far (more than 1: restarted after a crash)
    stages       jsonb       NOT NULL DEFAULT '[]'::jsonb, -- the stages of the current attempt that have finished
    result       jsonb,                                    -- the recorded version and what each QC stage removed
    publish      boolean     NOT NULL DEFAULT true,        -- announce the version with DatasetExported
    published_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
-- One live (queued, running or succeeded) job per name and version, whichever process receives the requests;
-- a failed job frees its version for a new request. A frozen test set is exported once per name.
CREATE UNIQUE INDEX IF NOT EXISTS export_jobs_one_per_version ON export_jobs (name, version) WHERE state <> 'failed';
CREATE UNIQUE INDEX IF NOT EXISTS export_jobs_one_test_set ON export_jobs (name)
    WHERE purpose = 'test' AND state <> 'failed';
CREATE INDEX IF NOT EXISTS export_jobs_unfinished ON export_jobs (id) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS export_jobs_recent ON export_jobs (created_at DESC, id DESC);
