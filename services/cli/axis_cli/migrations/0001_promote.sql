-- The promote service's schema (the promotion audit of `axis_cli promote` and promote-watch). Applied by axis_stack.migrate as the service's own role,
-- whose search_path is its schema: unqualified names land there. No other service's table is named here.

CREATE TABLE model_promotions (
    id               bigserial   PRIMARY KEY,
    model_name       text        NOT NULL,
    version          text        NOT NULL,
    alias            text        NOT NULL,
    previous_version text,
    promoted_by      text        NOT NULL,
    reason           text        NOT NULL DEFAULT '',
    forced           boolean     NOT NULL DEFAULT false,
    metrics          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    promoted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_promotions_model ON model_promotions (model_name, version);

-- Promotions made in MLflow (UI / API alias moves) are recorded like `axis promote` ones (docs/promotion.md):
--   via          cli (python -m axis_cli promote, the demo) | mlflow (seen by the promote-watch service);
--   kind         promotion, or rollback when the alias went back to a lower version number;
--   gate         the promotion gate's report at that moment (paired bootstrap per mode and fused);
--   change_key   one row per alias change (model, from, to, after which audit row): a restarted watcher
--                cannot record the same change twice;
--   event_id     the ModelPromoted event's id (resent with the same id until published_at is set).
ALTER TABLE model_promotions
    ADD COLUMN via          text NOT NULL DEFAULT 'cli' CHECK (via IN ('cli', 'mlflow')),
    ADD COLUMN kind         text NOT NULL DEFAULT 'promotion' CHECK (kind IN ('promotion', 'rollback')),
    ADD COLUMN gate         jsonb,
    ADD COLUMN change_key   text UNIQUE,
    ADD COLUMN event_id     uuid,
    ADD COLUMN published_at timestamptz;
CREATE INDEX model_promotions_latest ON model_promotions (model_name, alias, id DESC);
