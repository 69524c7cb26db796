-- A facility's year of data (issue 18; `make bench-scale`, docs/scale.md).
-- A well's history takes the user scores sent by plate + well (inspection_id NULL) besides those of its
-- inspections; with `inspection_id = ANY(ARRAY(...))` both arms are index scans.
CREATE INDEX IF NOT EXISTS user_scores_well ON user_scores (plate_barcode, well);
-- A well's history lists the well's queue items and their curator labels.
CREATE INDEX IF NOT EXISTS discrepancies_well ON discrepancies (plate_barcode, well);
