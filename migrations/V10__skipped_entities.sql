-- Objects the mirror could not store: a value Postgres refuses (a number past numeric's range,
-- say), or an answer that was not the object asked for. The rest of their page, run or
-- webhook batch is written; the object is recorded here, counted on its task and job, and tried
-- again by the next run that meets it. A row is removed when a complete full run of its resource
-- no longer refuses the object. Its existing mirror row, if any, is left as it was (and never
-- swept as deleted by the run that refused it).
CREATE TABLE supasaasy.skipped_entities (
    app_key          text NOT NULL,
    account_id       text NOT NULL DEFAULT '',
    collection_key   text NOT NULL,
    external_id      text NOT NULL,
    -- What was refused, in the database's or the connector's words.
    reason           text NOT NULL,
    -- 'sync', 'webhook' or 'events_api'.
    source           text NOT NULL,
    -- The run that last refused it (NULL for a webhook).
    job_id           uuid,
    -- The event that carried it (webhooks and the events API).
    event_id         text,
    first_skipped_at timestamptz NOT NULL DEFAULT now(),
    last_skipped_at  timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 1,
    PRIMARY KEY (app_key, collection_key, account_id, external_id)
);

ALTER TABLE supasaasy.sync_tasks ADD COLUMN skipped_entities bigint NOT NULL DEFAULT 0;
ALTER TABLE supasaasy.sync_jobs ADD COLUMN skipped_entities bigint NOT NULL DEFAULT 0;
