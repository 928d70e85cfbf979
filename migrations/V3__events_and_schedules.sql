-- Provider events seen (webhook deliveries and events-API entries), by event id: a second delivery of
-- the same id changes nothing. Pruned after the provider's own retention.
CREATE TABLE supasaasy.provider_events (
    app_key        text        NOT NULL,
    event_id       text        NOT NULL,
    event_type     text        NOT NULL,
    event_created  timestamptz NOT NULL,
    -- webhook | events_api
    source         text        NOT NULL,
    -- applied | stale | ignored
    action         text        NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_key, event_id)
);
CREATE INDEX provider_events_received_at ON supasaasy.provider_events (received_at);

-- One row per webhook request when [webhook_logging] is enabled; secrets in headers are redacted.
CREATE TABLE supasaasy.webhook_logs (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_key      text,
    method       text        NOT NULL,
    path         text        NOT NULL,
    headers      jsonb       NOT NULL,
    body         text,
    status       integer     NOT NULL,
    error        text,
    duration_ms  double precision NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_logs_created_at ON supasaasy.webhook_logs (created_at);

-- One row per schedule tick, claimed by the first daemon to insert it: with several daemons on one
-- database each tick enqueues at most one job.
CREATE TABLE supasaasy.schedule_ticks (
    schedule_key   text        NOT NULL,
    fire_at        timestamptz NOT NULL,
    job_id         uuid,
    skipped_reason text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_key, fire_at)
);

-- An incremental task reads events up to a fixed window end, kept across resumes; a note says when
-- it ran a full sync instead.
ALTER TABLE supasaasy.sync_tasks ADD COLUMN window_end timestamptz;
ALTER TABLE supasaasy.sync_tasks ADD COLUMN note text;
