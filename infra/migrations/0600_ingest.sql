-- Ingest service (docs/imaging.md): every file version it has decided about, so that it publishes each file once,
-- across restarts, and lists what it could not map.

-- One row per file version (path below the watched folder + size + mtime) an ingest instance has decided about:
--   publishing  the image is in the object store and its ImageCaptured is written here, not yet acknowledged by
--               the broker (resent at start; the event_id is the same, so consumers dedupe it);
--   published   the broker acknowledged the ImageCaptured;
--   duplicate   the same bytes as a file already published (duplicate_of): not published again;
--   unmappable  the path (or the content) does not give a valid image description: reason says why.
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
