-- Typed views over the Stripe rows of supasaasy.entities; tombstones are hidden.

CREATE VIEW supasaasy.stripe_customers AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'email'                    AS email,
    e.raw_payload ->> 'name'                     AS name,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload ->> 'phone'                    AS phone,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'balance')::bigint        AS balance,
    (e.raw_payload ->> 'delinquent')::boolean    AS delinquent,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_customer' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.stripe_products AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'name'                     AS name,
    e.raw_payload ->> 'description'              AS description,
    (e.raw_payload ->> 'active')::boolean        AS active,
    e.raw_payload ->> 'type'                     AS type,
    COALESCE(e.raw_payload -> 'default_price' ->> 'id', e.raw_payload ->> 'default_price') AS default_price_id,
    e.raw_payload ->> 'unit_label'               AS unit_label,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    supasaasy.unix_ts(e.raw_payload -> 'updated') AS updated,
    e.raw_payload,
    e.api_version,
    e.archived_at,
    e.created_at,
    e.updated_at
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_product' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.stripe_prices AS
SELECT
    e.app_key,
    e.external_id,
    COALESCE(e.raw_payload -> 'product' ->> 'id', e.raw_payload ->> 'product') AS product_id,
    (e.raw_payload ->> 'active')::boolean        AS active,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'unit_amount')::bigint    AS unit_amount,
    e.raw_payload ->> 'type'                     AS type,
    e.raw_payload ->> 'billing_scheme'           AS billing_scheme,
    e.raw_payload -> 'recurring' ->> 'interval'  AS recurring_interval,
    (e.raw_payload -> 'recurring' ->> 'interval_count')::integer AS recurring_interval_count,
    e.raw_payload ->> 'lookup_key'               AS lookup_key,
    e.raw_payload ->> 'nickname'                 AS nickname,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.archived_at,
    e.created_at,
    e.updated_at
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_price' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.stripe_plans AS
SELECT
    e.app_key,
    e.external_id,
    COALESCE(e.raw_payload -> 'product' ->> 'id', e.raw_payload ->> 'product') AS product_id,
    (e.raw_payload ->> 'active')::boolean        AS active,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    e.raw_payload ->> 'currency'                 AS currency,
    e.raw_payload ->> 'interval'                 AS interval,
    (e.raw_payload ->> 'interval_count')::integer AS interval_count,
    e.raw_payload ->> 'usage_type'               AS usage_type,
    e.raw_payload ->> 'nickname'                 AS nickname,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.archived_at,
    e.created_at,
    e.updated_at
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_plan' AND e.deleted_at IS NULL;

-- current_period_start/end sit at the top level in API versions before 2025-03-31 and on the items
-- since; the view reads either.
CREATE VIEW supasaasy.stripe_subscriptions AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(
        supasaasy.unix_ts(e.raw_payload -> 'current_period_start'),
        (SELECT min(supasaasy.unix_ts(i -> 'current_period_start'))
         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.raw_payload -> 'items' -> 'data') = 'array'
                                        THEN e.raw_payload -> 'items' -> 'data' ELSE '[]' END) i)
    )                                            AS current_period_start,
    COALESCE(
        supasaasy.unix_ts(e.raw_payload -> 'current_period_end'),
        (SELECT max(supasaasy.unix_ts(i -> 'current_period_end'))
         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.raw_payload -> 'items' -> 'data') = 'array'
                                        THEN e.raw_payload -> 'items' -> 'data' ELSE '[]' END) i)
    )                                            AS current_period_end,
    (e.raw_payload ->> 'cancel_at_period_end')::boolean AS cancel_at_period_end,
    supasaasy.unix_ts(e.raw_payload -> 'cancel_at')   AS cancel_at,
    supasaasy.unix_ts(e.raw_payload -> 'canceled_at') AS canceled_at,
    supasaasy.unix_ts(e.raw_payload -> 'ended_at')    AS ended_at,
    supasaasy.unix_ts(e.raw_payload -> 'trial_start') AS trial_start,
    supasaasy.unix_ts(e.raw_payload -> 'trial_end')   AS trial_end,
    supasaasy.unix_ts(e.raw_payload -> 'start_date')  AS start_date,
    e.raw_payload ->> 'collection_method'        AS collection_method,
    e.raw_payload ->> 'currency'                 AS currency,
    e.raw_payload -> 'items' -> 'data' -> 0 -> 'price' ->> 'id' AS price_id,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_subscription' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.stripe_subscription_items AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'subscription'             AS subscription_id,
    e.raw_payload -> 'price' ->> 'id'            AS price_id,
    COALESCE(e.raw_payload -> 'price' -> 'product' ->> 'id', e.raw_payload -> 'price' ->> 'product') AS product_id,
    (e.raw_payload ->> 'quantity')::bigint       AS quantity,
    supasaasy.unix_ts(e.raw_payload -> 'current_period_start') AS current_period_start,
    supasaasy.unix_ts(e.raw_payload -> 'current_period_end')   AS current_period_end,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_subscription_item' AND e.deleted_at IS NULL;
