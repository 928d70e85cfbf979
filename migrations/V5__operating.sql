-- The integration events log: one row per webhook received, job started or ended, alert sent or
-- failed, circuit opened or closed. `detail` says enough to act on and never holds a secret.
CREATE TABLE supasaasy.integration_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_key     text,
    -- stripe | intercom | slack | teams | supasaasy
    service     text        NOT NULL,
    event_type  text        NOT NULL,
    -- applied | ignored | duplicate | stale | rejected | started | completed | failed | cancelled
    -- | sent | opened | closed | ...
    outcome     text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integration_events_created_at ON supasaasy.integration_events (created_at DESC, id DESC);
CREATE INDEX integration_events_app_created ON supasaasy.integration_events (app_key, created_at DESC);
CREATE INDEX integration_events_type_created ON supasaasy.integration_events (event_type, created_at DESC);

-- The circuit of each app as the daemons sharing this database last saw it: a daemon that opens or
-- closes a circuit writes it here, and every daemon reads it every few seconds, so they agree.
CREATE TABLE supasaasy.circuits (
    app_key     text        PRIMARY KEY,
    -- closed | open
    state       text        NOT NULL,
    open_until  timestamptz,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- When each alert was last sent per app: the same alert for the same app at most once per window,
-- across every daemon sharing the database.
CREATE TABLE supasaasy.alert_windows (
    alert_key     text        NOT NULL,
    app_key       text        NOT NULL,
    last_sent_at  timestamptz NOT NULL,
    PRIMARY KEY (alert_key, app_key)
);

-- The latest job of each app, for /health.
CREATE INDEX sync_jobs_app_created ON supasaasy.sync_jobs (app_key, created_at DESC);
