-- Curator effort where it pays (docs/curation-routing.md).

-- Why an item is in the queue: a disagreement, or an agreement routed because it is likely wrong
-- (near_threshold, modes_disagree, unreliable_user). Routed agreements have kind 'agreement' and publish no
-- DiscrepancyFound (the curation service reads the queue from this table).
ALTER TABLE discrepancies ADD COLUMN reason text NOT NULL DEFAULT 'disagreement'
    CHECK (reason IN ('disagreement', 'near_threshold', 'modes_disagree', 'unreliable_user'));
-- Expected value of a curator label: the chance that the curator overturns the model's label (axis_core.routing).
-- Rows written before this migration get 0.5, so that they are neither buried nor ahead of everything.
ALTER TABLE discrepancies ADD COLUMN priority double precision NOT NULL DEFAULT 0.5;
CREATE INDEX discrepancies_queue ON discrepancies (status, priority DESC, created_at);
-- the day's intake (the agreement budget) and each user's curated outcomes (reliability), read per batch
CREATE INDEX discrepancies_created ON discrepancies (created_at);
CREATE INDEX discrepancies_user_resolved ON discrepancies (user_id) WHERE status = 'resolved';

-- Per-mode probabilities and thresholds of the latest CrystalScored ([{"mode", "probability", "threshold"}]),
-- so that a later user score can tell whether the modes disagreed.
ALTER TABLE ml_scores ADD COLUMN mode_scores jsonb NOT NULL DEFAULT '[]'::jsonb;
