-- curation: a read-only `scientist` role (plates, wells, their scores and history, datasets; no curation).
-- Drop-and-add so that it can run again; the constraint keeps the name PostgreSQL gave the inline CHECK.
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_role_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_role_check
    CHECK (role IN ('curator', 'admin', 'lims', 'scientist'));
