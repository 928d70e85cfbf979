-- When each app last accepted a webhook, as /health and /metrics ask it: read through an index of
-- the accepted outcomes only, so rejected requests, however many, are never walked past. Additive:
-- binaries without it run against it (compatible_from is left as it is).
CREATE INDEX integration_events_app_accepted ON supasaasy.integration_events (app_key, created_at DESC)
    WHERE outcome IN ('applied', 'ignored', 'duplicate', 'stale');
