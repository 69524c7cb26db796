-- Hostile-input hardening (docs/reliability.md).

-- A record dead-lettered by a consumer, by its coordinates: a redelivered batch (or a restarted consumer)
-- finds its bad record here and does not dead-letter it a second time. Replays get new offsets, so a replayed
-- message is handled afresh.
CREATE TABLE dead_letter_claims (
    consumer        text        NOT NULL,
    topic           text        NOT NULL,
    partition_no    integer     NOT NULL,
    offset_no       bigint      NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition_no, offset_no)
);

-- LIMS gateway: every accepted POST /v1/user-scores by event_id with a digest of its content, so that a re-sent
-- request is answered as before and a re-used event_id with other content is refused (409).
CREATE TABLE lims_gateway_requests (
    event_id       uuid        PRIMARY KEY,
    content_sha256 text        NOT NULL,
    inspection_id  text        NOT NULL,
    score          text        NOT NULL,
    accepted_at    timestamptz NOT NULL DEFAULT now()
);
