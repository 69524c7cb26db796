-- Undone labels (CuratorLabelled with `withdraws`), kept so that a label's own event, consumed after its undo
-- was applied, does not bring the label back (the curation service reads its own label events: a label made
-- and undone live came back from the log until the undo's event was consumed too). Part of the read model:
-- a rebuild empties it and the replay fills it again.
CREATE TABLE IF NOT EXISTS withdrawn_labels (
    label_event_id uuid        PRIMARY KEY,   -- the event id of the label that was taken back
    withdrawn_at   timestamptz NOT NULL
);
-- labels undone before this migration: their undo events are in the outbox
INSERT INTO withdrawn_labels (label_event_id, withdrawn_at)
SELECT (payload->>'withdraws')::uuid, (payload->>'labelled_at')::timestamptz FROM label_events
WHERE payload->>'withdraws' IS NOT NULL
ON CONFLICT DO NOTHING;
