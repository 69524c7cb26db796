-- The curation service's schema (accounts, sessions, curator labels, datasets). Applied by axis_stack.migrate as the service's own role,
-- whose search_path is its schema: unqualified names land there. No other service's table is named here.

CREATE TABLE accounts (
    username      text        PRIMARY KEY,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('curator', 'admin', 'lims')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth_sessions (
    token_sha256 text        PRIMARY KEY,
    username     text        NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('session', 'api')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX auth_sessions_user ON auth_sessions (username);


CREATE TABLE curator_labels (
    id             bigserial   PRIMARY KEY,
    discrepancy_id bigint      NOT NULL,
    curator        text        NOT NULL REFERENCES accounts (username),
    label          text        NOT NULL CHECK (label IN ('crystal', 'other', 'uncertain', 'unusable')),
    comment        text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX curator_labels_item ON curator_labels (discrepancy_id, curator, created_at DESC);

CREATE TABLE datasets (
    name            text        NOT NULL,
    version         text        NOT NULL,
    purpose         text        NOT NULL CHECK (purpose IN ('train', 'test')),
    manifest_uri    text        NOT NULL,
    manifest_sha256 text        NOT NULL,
    qc_report_uri   text        NOT NULL,
    card_uri        text,
    config          jsonb       NOT NULL,
    counts          jsonb       NOT NULL,
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE test_set_plates (
    plate_barcode   text PRIMARY KEY,
    dataset_name    text NOT NULL,
    dataset_version text NOT NULL
);

-- the curator queue asks "open items this curator has not labelled yet"
CREATE INDEX curator_labels_curator ON curator_labels (curator, discrepancy_id);
