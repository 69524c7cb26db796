-- curation: login sessions and API tokens. Only the SHA-256 of a token is stored, never the token itself.
CREATE TABLE auth_sessions (
    token_sha256 text        PRIMARY KEY,
    username     text        NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('session', 'api')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX auth_sessions_user ON auth_sessions (username);

-- the curator queue asks "open items this curator has not labelled yet"
CREATE INDEX curator_labels_curator ON curator_labels (curator, discrepancy_id);
CREATE INDEX discrepancies_inspection ON discrepancies (inspection_id);
CREATE INDEX comparisons_agrees ON comparisons (agrees, plate_barcode);
