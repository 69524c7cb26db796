-- The ingest service's schema (files seen in the imagers' folders, mapping errors). Applied by axis_stack.migrate as the service's own role,
-- whose search_path is its schema: unqualified names land there. No other service's table is named here.

CREATE TABLE ingest_files (
    imager_id     text        NOT NULL,
    path          text        NOT NULL,
    size_bytes    bigint      NOT NULL,
    mtime_ns      bigint      NOT NULL,
    status        text        NOT NULL CHECK (status IN ('publishing', 'published', 'duplicate', 'unmappable')),
    sha256        text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    reason        text,
    duplicate_of  text,
    event_id      uuid,
    image_uri     text,
    event_json    text,
    config_digest text,
    moved_to      text,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    PRIMARY KEY (imager_id, path, size_bytes, mtime_ns),
    CHECK (status <> 'unmappable' OR reason IS NOT NULL),
    CHECK (status NOT IN ('publishing', 'published') OR (sha256 IS NOT NULL AND event_json IS NOT NULL))
);

-- One published image per content: a byte-identical copy under another name is a duplicate.
CREATE UNIQUE INDEX ingest_files_content ON ingest_files (sha256) WHERE status IN ('publishing', 'published');
CREATE INDEX ingest_files_status ON ingest_files (imager_id, status, decided_at);
