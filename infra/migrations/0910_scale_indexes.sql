-- Indexes that a facility's year of data needs (issue 18; measured by `make bench-scale`, docs/scale.md).
-- Each names the service whose tables it belongs to (the read models of the curation service have the same names).

-- inference (images): `axis_cli audit --image-uri` looks an image up by its URI; without this it reads every image.
CREATE INDEX IF NOT EXISTS images_uri ON images (image_uri);

-- curation read model (user_scores): a well's history takes the user scores sent by plate + well (inspection_id
-- NULL) besides those of its inspections; with `inspection_id = ANY(ARRAY(...))` both arms are index scans.
CREATE INDEX IF NOT EXISTS user_scores_well ON user_scores (plate_barcode, well);

-- curation read model (discrepancies): a well's history lists the well's queue items and their curator labels.
CREATE INDEX IF NOT EXISTS discrepancies_well ON discrepancies (plate_barcode, well);
