-- Curators' labels on the log (CuratorLabelled, curation.curator-labelled.v1): every label and every undo is
-- an event, written to this outbox in the transaction that changes curator_labels and published by the
-- curation service; its read model replays them, so a rebuilt schema ends with the same labels.
CREATE TABLE label_events (
    event_id     uuid        PRIMARY KEY,
    payload      jsonb       NOT NULL,        -- the CuratorLabelled event as sent
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX label_events_unpublished ON label_events (created_at) WHERE published_at IS NULL;

-- the label's own event id (the replay's idempotency key); labels from before this migration get one
ALTER TABLE curator_labels ADD COLUMN label_event_id uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX curator_labels_event ON curator_labels (label_event_id);
-- a rebuilt schema replays labels before any account is made again: the label keeps the curator's name
ALTER TABLE curator_labels DROP CONSTRAINT IF EXISTS curator_labels_curator_fkey;

-- An item's state after its latest label event (consensus rule applied at the time), whichever arrives first
-- in a replay: the item (DiscrepancyFound) or its labels (CuratorLabelled).
CREATE TABLE item_verdicts (
    item_id        bigint      PRIMARY KEY,
    status         text        NOT NULL,
    resolved_label text,
    labelled_at    timestamptz NOT NULL
);
