-- Tables every consumer keeps in its OWN schema (the shared consumer skeleton: processed events, dead-letter
-- claims). Applied into each service's schema before the service's own files.

CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE dead_letter_claims (
    consumer        text        NOT NULL,
    topic           text        NOT NULL,
    partition_no    integer     NOT NULL,
    offset_no       bigint      NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition_no, offset_no)
);
