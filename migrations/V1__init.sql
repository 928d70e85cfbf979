-- The mirror, the job queue and the sync state.
--
-- Every provider object is one row of supasaasy.entities, keyed by (app_key, collection_key,
-- external_id). Rows are never deleted: a provider deletion sets deleted_at (a tombstone), so a late,
-- stale update cannot bring the object back. source_updated_at is the moment of provider state the
-- row holds (the time a listing was fetched, or the time of the event that carried it); a write
-- older than the row's changes nothing.

CREATE SCHEMA IF NOT EXISTS supasaasy;

CREATE TABLE supasaasy.entities (
    app_key            text        NOT NULL,
    collection_key     text        NOT NULL,
    external_id        text        NOT NULL,
    raw_payload        jsonb       NOT NULL,
    api_version        text,
    -- the provider state's time; orders writes (newer wins, equal refreshes)
    source_updated_at  timestamptz NOT NULL,
    -- when the provider created the object; bounds the sweep of a run limited by sync_from
    source_created_at  timestamptz,
    -- the sync job whose listing last saw the object; a complete full run sweeps rows it did not see
    last_seen_job      uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    archived_at        timestamptz,
    deleted_at         timestamptz,
    PRIMARY KEY (app_key, collection_key, external_id)
);

CREATE TABLE supasaasy.sync_jobs (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    app_key            text        NOT NULL,
    mode               text        NOT NULL CHECK (mode IN ('full', 'incremental')),
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    resource_types     text[]      NOT NULL,
    trigger            text        NOT NULL DEFAULT 'api',
    total_tasks        integer     NOT NULL,
    completed_tasks    integer     NOT NULL DEFAULT 0,
    failed_tasks       integer     NOT NULL DEFAULT 0,
    processed_entities bigint      NOT NULL DEFAULT 0,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz
);

CREATE INDEX sync_jobs_created_at ON supasaasy.sync_jobs (created_at DESC);
CREATE INDEX sync_jobs_app_status ON supasaasy.sync_jobs (app_key, status);

CREATE TABLE supasaasy.sync_tasks (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id             uuid        NOT NULL REFERENCES supasaasy.sync_jobs (id) ON DELETE CASCADE,
    app_key            text        NOT NULL,
    resource_type      text        NOT NULL,
    mode               text        NOT NULL,
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    -- the connector's cursor of the next page; NULL before the first page
    cursor             text,
    -- when the first page of the run was fetched; rows unseen and older than this are swept
    run_started_at     timestamptz,
    pages              integer     NOT NULL DEFAULT 0,
    entity_count       bigint      NOT NULL DEFAULT 0,
    requests           bigint      NOT NULL DEFAULT 0,
    attempts           integer     NOT NULL DEFAULT 0,
    -- a pending task is not claimed before this (retry backoff)
    run_after          timestamptz NOT NULL DEFAULT now(),
    -- a new lease id per claim; every write of the worker is fenced by it
    lease_id           uuid,
    lease_owner        text,
    lease_expires_at   timestamptz,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, resource_type)
);

CREATE INDEX sync_tasks_pending ON supasaasy.sync_tasks (run_after) WHERE status = 'pending';
CREATE INDEX sync_tasks_leased ON supasaasy.sync_tasks (lease_expires_at) WHERE status = 'processing';

-- Per app and resource: what the last complete runs achieved, and the incremental cursor.
CREATE TABLE supasaasy.sync_state (
    app_key            text        NOT NULL,
    resource_type      text        NOT NULL,
    last_full_sync_at  timestamptz,
    last_full_sync_job uuid,
    last_sync_at       timestamptz,
    incremental_cursor text,
    api_version        text,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_key, resource_type)
);

-- Unix seconds in a JSON value to timestamptz; NULL for anything else.
CREATE FUNCTION supasaasy.unix_ts(v jsonb) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN to_timestamp((v #>> '{}')::double precision) END
$$;
