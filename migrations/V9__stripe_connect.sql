-- Stripe Connect: every row of the mirror belongs to an account.
--
-- entities.account_id is the acct_... a Stripe row belongs to: the connected account's for a
-- connected account's objects, the app's own (Stripe's GET /v1/account) for the app's. It joins the
-- key: coupon, plan and product ids are chosen by people and repeat across accounts. Rows written
-- before this migration get '' here (a constant default: no row is rewritten); the daemon fills
-- each Stripe app's own account id into them once it has read it, in batches, before it writes any
-- of the app's rows, and records that in app_accounts. Intercom rows keep ''.
--
-- sync_state and sync_tasks gain the account a resource's cursor or run is of: '' for the app's
-- own account, an acct_... for a connected one.
--
-- Older binaries write with the old key, so this migration raises compatible_from to 9.

ALTER TABLE supasaasy.entities ADD COLUMN account_id text NOT NULL DEFAULT '';
ALTER TABLE supasaasy.entities
    DROP CONSTRAINT entities_pkey,
    ADD CONSTRAINT entities_pkey PRIMARY KEY (app_key, collection_key, account_id, external_id);

ALTER TABLE supasaasy.sync_state ADD COLUMN account_id text NOT NULL DEFAULT '';
ALTER TABLE supasaasy.sync_state
    DROP CONSTRAINT sync_state_pkey,
    ADD CONSTRAINT sync_state_pkey PRIMARY KEY (app_key, resource_type, account_id);

ALTER TABLE supasaasy.sync_tasks ADD COLUMN account_id text NOT NULL DEFAULT '';
ALTER TABLE supasaasy.sync_tasks
    DROP CONSTRAINT sync_tasks_job_id_resource_type_key,
    ADD CONSTRAINT sync_tasks_job_resource_account_key UNIQUE (job_id, resource_type, account_id);

-- The account each app's key belongs to, once the daemon has read it and given it to the app's
-- older rows.
CREATE TABLE supasaasy.app_accounts (
    app_key     text        PRIMARY KEY,
    account_id  text        NOT NULL,
    learned_at  timestamptz NOT NULL DEFAULT now()
);

-- Connected accounts that took the platform's access away (account.application.deauthorized):
-- their tasks stop and their rows stay. A later full run that lists the account again clears it.
CREATE TABLE supasaasy.connected_accounts (
    app_key          text        NOT NULL,
    account_id       text        NOT NULL,
    deauthorized_at  timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_key, account_id)
);

UPDATE supasaasy.schema_compat SET compatible_from = 9;

-- The connected accounts, as the platform lists them (account_id is the platform's, external_id
-- the connected account's: join a tenant's rows on external_id = their account_id).
CREATE VIEW supasaasy.stripe_accounts AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'type'                     AS type,
    e.raw_payload -> 'controller' ->> 'type'     AS controller_type,
    e.raw_payload -> 'business_profile' ->> 'name' AS business_name,
    e.raw_payload -> 'business_profile' ->> 'url' AS business_url,
    e.raw_payload ->> 'business_type'            AS business_type,
    e.raw_payload ->> 'email'                    AS email,
    e.raw_payload ->> 'country'                  AS country,
    e.raw_payload ->> 'default_currency'         AS default_currency,
    (e.raw_payload ->> 'charges_enabled')::boolean AS charges_enabled,
    (e.raw_payload ->> 'payouts_enabled')::boolean AS payouts_enabled,
    (e.raw_payload ->> 'details_submitted')::boolean AS details_submitted,
    e.raw_payload -> 'requirements' ->> 'disabled_reason' AS disabled_reason,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    c.deauthorized_at,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
LEFT JOIN supasaasy.connected_accounts c
       ON c.app_key = e.app_key AND c.account_id = e.external_id
WHERE e.collection_key = 'stripe_account' AND e.deleted_at IS NULL;

-- Every Stripe view shows the account its rows belong to (as the last column: a view's columns
-- are only ever added at the end).
CREATE OR REPLACE VIEW supasaasy.stripe_customers AS
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
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_customer' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_products AS
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
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_product' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_prices AS
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
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_price' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_plans AS
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
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_plan' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_subscriptions AS
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
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_subscription' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_subscription_items AS
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
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_subscription_item' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_invoices AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'number'                   AS number,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'billing_reason'           AS billing_reason,
    e.raw_payload ->> 'collection_method'        AS collection_method,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount_due')::bigint     AS amount_due,
    (e.raw_payload ->> 'amount_paid')::bigint    AS amount_paid,
    (e.raw_payload ->> 'amount_remaining')::bigint AS amount_remaining,
    (e.raw_payload ->> 'amount_shipping')::bigint AS amount_shipping,
    (e.raw_payload ->> 'subtotal')::bigint       AS subtotal,
    (e.raw_payload ->> 'subtotal_excluding_tax')::bigint AS subtotal_excluding_tax,
    (e.raw_payload ->> 'total')::bigint          AS total,
    (e.raw_payload ->> 'total_excluding_tax')::bigint AS total_excluding_tax,
    CASE WHEN jsonb_typeof(e.raw_payload -> 'total_taxes') = 'array'
         THEN (SELECT COALESCE(sum((t ->> 'amount')::bigint), 0)::bigint
               FROM jsonb_array_elements(e.raw_payload -> 'total_taxes') t)
         ELSE (e.raw_payload ->> 'tax')::bigint
    END                                          AS tax,
    (e.raw_payload ->> 'starting_balance')::bigint AS starting_balance,
    (e.raw_payload ->> 'ending_balance')::bigint AS ending_balance,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    e.raw_payload ->> 'customer_email'           AS customer_email,
    e.raw_payload ->> 'customer_name'            AS customer_name,
    COALESCE(
        e.raw_payload -> 'parent' -> 'subscription_details' -> 'subscription' ->> 'id',
        e.raw_payload -> 'parent' -> 'subscription_details' ->> 'subscription',
        e.raw_payload -> 'subscription' ->> 'id',
        e.raw_payload ->> 'subscription'
    )                                            AS subscription_id,
    -- the default payment, else the first paid, else the first: the one the older top-level field named
    COALESCE(
        (SELECT COALESCE(p -> 'payment' -> 'payment_intent' ->> 'id', p -> 'payment' ->> 'payment_intent')
         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.raw_payload -> 'payments' -> 'data') = 'array'
                                        THEN e.raw_payload -> 'payments' -> 'data' ELSE '[]' END)
              WITH ORDINALITY AS pay (p, n)
         WHERE p -> 'payment' ->> 'type' = 'payment_intent'
         ORDER BY (p ->> 'is_default')::boolean IS TRUE DESC, (p ->> 'status' = 'paid') IS TRUE DESC, n
         LIMIT 1),
        e.raw_payload -> 'payment_intent' ->> 'id',
        e.raw_payload ->> 'payment_intent'
    )                                            AS payment_intent_id,
    COALESCE(
        (SELECT COALESCE(p -> 'payment' -> 'charge' ->> 'id', p -> 'payment' ->> 'charge')
         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.raw_payload -> 'payments' -> 'data') = 'array'
                                        THEN e.raw_payload -> 'payments' -> 'data' ELSE '[]' END)
              WITH ORDINALITY AS pay (p, n)
         WHERE p -> 'payment' ->> 'type' = 'charge'
         ORDER BY (p ->> 'is_default')::boolean IS TRUE DESC, (p ->> 'status' = 'paid') IS TRUE DESC, n
         LIMIT 1),
        e.raw_payload -> 'charge' ->> 'id',
        e.raw_payload ->> 'charge'
    )                                            AS charge_id,
    COALESCE(e.raw_payload -> 'default_payment_method' ->> 'id', e.raw_payload ->> 'default_payment_method') AS default_payment_method_id,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload ->> 'hosted_invoice_url'       AS hosted_invoice_url,
    e.raw_payload ->> 'invoice_pdf'              AS invoice_pdf,
    (e.raw_payload ->> 'attempted')::boolean     AS attempted,
    (e.raw_payload ->> 'attempt_count')::integer AS attempt_count,
    supasaasy.unix_ts(e.raw_payload -> 'next_payment_attempt') AS next_payment_attempt,
    supasaasy.unix_ts(e.raw_payload -> 'period_start') AS period_start,
    supasaasy.unix_ts(e.raw_payload -> 'period_end')   AS period_end,
    supasaasy.unix_ts(e.raw_payload -> 'due_date')     AS due_date,
    supasaasy.unix_ts(e.raw_payload -> 'effective_at') AS effective_at,
    supasaasy.unix_ts(e.raw_payload -> 'status_transitions' -> 'finalized_at') AS finalized_at,
    supasaasy.unix_ts(e.raw_payload -> 'status_transitions' -> 'paid_at')      AS paid_at,
    supasaasy.unix_ts(e.raw_payload -> 'status_transitions' -> 'voided_at')    AS voided_at,
    supasaasy.unix_ts(e.raw_payload -> 'status_transitions' -> 'marked_uncollectible_at') AS marked_uncollectible_at,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_invoice' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_invoice_line_items AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'invoice'                  AS invoice_id,
    COALESCE(
        e.raw_payload -> 'parent' ->> 'type',
        CASE e.raw_payload ->> 'type'
            WHEN 'subscription' THEN 'subscription_item_details'
            WHEN 'invoiceitem' THEN 'invoice_item_details'
        END
    )                                            AS parent_type,
    COALESCE(
        e.raw_payload -> 'parent' -> 'subscription_item_details' ->> 'subscription',
        e.raw_payload -> 'parent' -> 'invoice_item_details' ->> 'subscription',
        e.raw_payload -> 'subscription' ->> 'id',
        e.raw_payload ->> 'subscription'
    )                                            AS subscription_id,
    COALESCE(
        e.raw_payload -> 'parent' -> 'subscription_item_details' ->> 'subscription_item',
        e.raw_payload -> 'subscription_item' ->> 'id',
        e.raw_payload ->> 'subscription_item'
    )                                            AS subscription_item_id,
    COALESCE(
        e.raw_payload -> 'parent' -> 'invoice_item_details' ->> 'invoice_item',
        e.raw_payload -> 'parent' -> 'subscription_item_details' ->> 'invoice_item',
        e.raw_payload -> 'invoice_item' ->> 'id',
        e.raw_payload ->> 'invoice_item'
    )                                            AS invoice_item_id,
    COALESCE(
        e.raw_payload -> 'pricing' -> 'price_details' -> 'price' ->> 'id',
        e.raw_payload -> 'pricing' -> 'price_details' ->> 'price',
        e.raw_payload -> 'price' ->> 'id',
        e.raw_payload ->> 'price'
    )                                            AS price_id,
    COALESCE(
        e.raw_payload -> 'pricing' -> 'price_details' -> 'product' ->> 'id',
        e.raw_payload -> 'pricing' -> 'price_details' ->> 'product',
        e.raw_payload -> 'price' -> 'product' ->> 'id',
        e.raw_payload -> 'price' ->> 'product'
    )                                            AS product_id,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'quantity')::bigint       AS quantity,
    COALESCE(
        e.raw_payload -> 'pricing' ->> 'unit_amount_decimal',
        e.raw_payload -> 'price' ->> 'unit_amount_decimal'
    )::numeric                                   AS unit_amount_decimal,
    COALESCE(
        e.raw_payload -> 'parent' -> 'subscription_item_details' ->> 'proration',
        e.raw_payload -> 'parent' -> 'invoice_item_details' ->> 'proration',
        e.raw_payload ->> 'proration'
    )::boolean                                   AS proration,
    (e.raw_payload ->> 'discountable')::boolean  AS discountable,
    supasaasy.unix_ts(e.raw_payload -> 'period' -> 'start') AS period_start,
    supasaasy.unix_ts(e.raw_payload -> 'period' -> 'end')   AS period_end,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_invoice_line_item' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_invoice_items AS
SELECT
    e.app_key,
    e.external_id,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'invoice' ->> 'id', e.raw_payload ->> 'invoice') AS invoice_id,
    COALESCE(
        e.raw_payload -> 'parent' -> 'subscription_details' -> 'subscription' ->> 'id',
        e.raw_payload -> 'parent' -> 'subscription_details' ->> 'subscription',
        e.raw_payload -> 'subscription' ->> 'id',
        e.raw_payload ->> 'subscription'
    )                                            AS subscription_id,
    COALESCE(
        e.raw_payload -> 'parent' -> 'subscription_details' ->> 'subscription_item',
        e.raw_payload -> 'subscription_item' ->> 'id',
        e.raw_payload ->> 'subscription_item'
    )                                            AS subscription_item_id,
    COALESCE(
        e.raw_payload -> 'pricing' -> 'price_details' -> 'price' ->> 'id',
        e.raw_payload -> 'pricing' -> 'price_details' ->> 'price',
        e.raw_payload -> 'price' ->> 'id',
        e.raw_payload ->> 'price'
    )                                            AS price_id,
    COALESCE(
        e.raw_payload -> 'pricing' -> 'price_details' -> 'product' ->> 'id',
        e.raw_payload -> 'pricing' -> 'price_details' ->> 'product',
        e.raw_payload -> 'price' -> 'product' ->> 'id',
        e.raw_payload -> 'price' ->> 'product'
    )                                            AS product_id,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'quantity')::bigint       AS quantity,
    COALESCE(
        e.raw_payload -> 'pricing' ->> 'unit_amount_decimal',
        e.raw_payload ->> 'unit_amount_decimal'
    )::numeric                                   AS unit_amount_decimal,
    (e.raw_payload ->> 'proration')::boolean     AS proration,
    (e.raw_payload ->> 'discountable')::boolean  AS discountable,
    supasaasy.unix_ts(e.raw_payload -> 'period' -> 'start') AS period_start,
    supasaasy.unix_ts(e.raw_payload -> 'period' -> 'end')   AS period_end,
    supasaasy.unix_ts(e.raw_payload -> 'date')   AS date,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_invoice_item' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_charges AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'amount_captured')::bigint AS amount_captured,
    (e.raw_payload ->> 'amount_refunded')::bigint AS amount_refunded,
    (e.raw_payload ->> 'paid')::boolean          AS paid,
    (e.raw_payload ->> 'captured')::boolean      AS captured,
    (e.raw_payload ->> 'refunded')::boolean      AS refunded,
    (e.raw_payload ->> 'disputed')::boolean      AS disputed,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'payment_intent' ->> 'id', e.raw_payload ->> 'payment_intent') AS payment_intent_id,
    COALESCE(e.raw_payload -> 'invoice' ->> 'id', e.raw_payload ->> 'invoice') AS invoice_id,
    COALESCE(e.raw_payload -> 'balance_transaction' ->> 'id', e.raw_payload ->> 'balance_transaction') AS balance_transaction_id,
    COALESCE(e.raw_payload -> 'payment_method' ->> 'id', e.raw_payload ->> 'payment_method') AS payment_method_id,
    e.raw_payload -> 'payment_method_details' ->> 'type' AS payment_method_type,
    e.raw_payload -> 'payment_method_details' -> 'card' ->> 'brand' AS card_brand,
    e.raw_payload -> 'payment_method_details' -> 'card' ->> 'last4' AS card_last4,
    e.raw_payload ->> 'failure_code'             AS failure_code,
    e.raw_payload ->> 'failure_message'          AS failure_message,
    e.raw_payload -> 'outcome' ->> 'type'        AS outcome_type,
    e.raw_payload -> 'outcome' ->> 'network_status' AS outcome_network_status,
    e.raw_payload -> 'outcome' ->> 'reason'      AS outcome_reason,
    e.raw_payload -> 'outcome' ->> 'risk_level'  AS outcome_risk_level,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload ->> 'receipt_email'            AS receipt_email,
    e.raw_payload -> 'billing_details' ->> 'email' AS billing_email,
    e.raw_payload ->> 'receipt_url'              AS receipt_url,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_charge' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_payment_intents AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'amount_received')::bigint AS amount_received,
    (e.raw_payload ->> 'amount_capturable')::bigint AS amount_capturable,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'invoice' ->> 'id', e.raw_payload ->> 'invoice') AS invoice_id,
    COALESCE(
        e.raw_payload -> 'latest_charge' ->> 'id',
        e.raw_payload ->> 'latest_charge',
        e.raw_payload -> 'charges' -> 'data' -> 0 ->> 'id'
    )                                            AS latest_charge_id,
    COALESCE(e.raw_payload -> 'payment_method' ->> 'id', e.raw_payload ->> 'payment_method') AS payment_method_id,
    e.raw_payload ->> 'capture_method'           AS capture_method,
    e.raw_payload ->> 'setup_future_usage'       AS setup_future_usage,
    e.raw_payload -> 'last_payment_error' ->> 'type'         AS last_payment_error_type,
    e.raw_payload -> 'last_payment_error' ->> 'code'         AS last_payment_error_code,
    e.raw_payload -> 'last_payment_error' ->> 'decline_code' AS last_payment_error_decline_code,
    e.raw_payload -> 'last_payment_error' ->> 'message'      AS last_payment_error_message,
    e.raw_payload ->> 'cancellation_reason'      AS cancellation_reason,
    supasaasy.unix_ts(e.raw_payload -> 'canceled_at') AS canceled_at,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload ->> 'receipt_email'            AS receipt_email,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_payment_intent' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_refunds AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'reason'                   AS reason,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    COALESCE(e.raw_payload -> 'charge' ->> 'id', e.raw_payload ->> 'charge') AS charge_id,
    COALESCE(e.raw_payload -> 'payment_intent' ->> 'id', e.raw_payload ->> 'payment_intent') AS payment_intent_id,
    COALESCE(e.raw_payload -> 'balance_transaction' ->> 'id', e.raw_payload ->> 'balance_transaction') AS balance_transaction_id,
    e.raw_payload ->> 'failure_reason'           AS failure_reason,
    e.raw_payload ->> 'receipt_number'           AS receipt_number,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_refund' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_disputes AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'reason'                   AS reason,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    COALESCE(e.raw_payload -> 'charge' ->> 'id', e.raw_payload ->> 'charge') AS charge_id,
    COALESCE(e.raw_payload -> 'payment_intent' ->> 'id', e.raw_payload ->> 'payment_intent') AS payment_intent_id,
    (e.raw_payload ->> 'is_charge_refundable')::boolean AS is_charge_refundable,
    supasaasy.unix_ts(e.raw_payload -> 'evidence_details' -> 'due_by') AS evidence_due_by,
    (e.raw_payload -> 'evidence_details' ->> 'has_evidence')::boolean AS has_evidence,
    (e.raw_payload -> 'evidence_details' ->> 'submission_count')::integer AS evidence_submission_count,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_dispute' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_credit_notes AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'number'                   AS number,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'type'                     AS type,
    e.raw_payload ->> 'reason'                   AS reason,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'subtotal')::bigint       AS subtotal,
    (e.raw_payload ->> 'total')::bigint          AS total,
    (e.raw_payload ->> 'discount_amount')::bigint AS discount_amount,
    (e.raw_payload ->> 'amount_shipping')::bigint AS amount_shipping,
    (e.raw_payload ->> 'pre_payment_amount')::bigint AS pre_payment_amount,
    (e.raw_payload ->> 'post_payment_amount')::bigint AS post_payment_amount,
    (e.raw_payload ->> 'out_of_band_amount')::bigint AS out_of_band_amount,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'invoice' ->> 'id', e.raw_payload ->> 'invoice') AS invoice_id,
    COALESCE(
        e.raw_payload -> 'refunds' -> 0 -> 'refund' ->> 'id',
        e.raw_payload -> 'refunds' -> 0 ->> 'refund',
        e.raw_payload -> 'refund' ->> 'id',
        e.raw_payload ->> 'refund'
    )                                            AS refund_id,
    e.raw_payload ->> 'memo'                     AS memo,
    e.raw_payload ->> 'pdf'                      AS pdf,
    supasaasy.unix_ts(e.raw_payload -> 'effective_at') AS effective_at,
    supasaasy.unix_ts(e.raw_payload -> 'voided_at')    AS voided_at,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_credit_note' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_credit_note_line_items AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'credit_note'              AS credit_note_id,
    COALESCE(e.raw_payload -> 'invoice_line_item' ->> 'id', e.raw_payload ->> 'invoice_line_item') AS invoice_line_item_id,
    e.raw_payload ->> 'type'                     AS type,
    e.raw_payload ->> 'description'              AS description,
    (SELECT c.raw_payload ->> 'currency'
     FROM supasaasy.entities c
     WHERE c.app_key = e.app_key AND c.collection_key = 'stripe_credit_note'
       AND c.external_id = e.raw_payload ->> 'credit_note') AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'discount_amount')::bigint AS discount_amount,
    (e.raw_payload ->> 'quantity')::bigint       AS quantity,
    (e.raw_payload ->> 'unit_amount')::bigint    AS unit_amount,
    (e.raw_payload ->> 'unit_amount_decimal')::numeric AS unit_amount_decimal,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_credit_note_line_item' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_coupons AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'name'                     AS name,
    e.raw_payload ->> 'duration'                 AS duration,
    (e.raw_payload ->> 'duration_in_months')::integer AS duration_in_months,
    (e.raw_payload ->> 'percent_off')::numeric   AS percent_off,
    (e.raw_payload ->> 'amount_off')::bigint     AS amount_off,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'max_redemptions')::bigint AS max_redemptions,
    (e.raw_payload ->> 'times_redeemed')::bigint AS times_redeemed,
    supasaasy.unix_ts(e.raw_payload -> 'redeem_by') AS redeem_by,
    (e.raw_payload ->> 'valid')::boolean         AS valid,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_coupon' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_promotion_codes AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'code'                     AS code,
    (e.raw_payload ->> 'active')::boolean        AS active,
    COALESCE(
        e.raw_payload -> 'promotion' -> 'coupon' ->> 'id',
        e.raw_payload -> 'promotion' ->> 'coupon',
        e.raw_payload -> 'coupon' ->> 'id',
        e.raw_payload ->> 'coupon'
    )                                            AS coupon_id,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    (e.raw_payload ->> 'max_redemptions')::bigint AS max_redemptions,
    (e.raw_payload ->> 'times_redeemed')::bigint AS times_redeemed,
    supasaasy.unix_ts(e.raw_payload -> 'expires_at') AS expires_at,
    (e.raw_payload -> 'restrictions' ->> 'first_time_transaction')::boolean AS first_time_transaction,
    (e.raw_payload -> 'restrictions' ->> 'minimum_amount')::bigint AS minimum_amount,
    e.raw_payload -> 'restrictions' ->> 'minimum_amount_currency' AS minimum_amount_currency,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.archived_at,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_promotion_code' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_discounts AS
SELECT
    e.app_key,
    e.external_id,
    COALESCE(
        e.raw_payload -> 'source' -> 'coupon' ->> 'id',
        e.raw_payload -> 'source' ->> 'coupon',
        e.raw_payload -> 'coupon' ->> 'id',
        e.raw_payload ->> 'coupon'
    )                                            AS coupon_id,
    COALESCE(e.raw_payload -> 'promotion_code' ->> 'id', e.raw_payload ->> 'promotion_code') AS promotion_code_id,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'subscription' ->> 'id', e.raw_payload ->> 'subscription') AS subscription_id,
    e.raw_payload ->> 'subscription_item'        AS subscription_item_id,
    e.raw_payload ->> 'invoice'                  AS invoice_id,
    e.raw_payload ->> 'invoice_item'             AS invoice_item_id,
    e.raw_payload ->> 'checkout_session'         AS checkout_session_id,
    supasaasy.unix_ts(e.raw_payload -> 'start')  AS starts_at,
    supasaasy.unix_ts(e.raw_payload -> 'end')    AS ends_at,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_discount' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_tax_rates AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'display_name'             AS display_name,
    e.raw_payload ->> 'description'              AS description,
    (e.raw_payload ->> 'active')::boolean        AS active,
    (e.raw_payload ->> 'inclusive')::boolean     AS inclusive,
    (e.raw_payload ->> 'percentage')::numeric    AS percentage,
    (e.raw_payload ->> 'effective_percentage')::numeric AS effective_percentage,
    e.raw_payload ->> 'rate_type'                AS rate_type,
    (e.raw_payload -> 'flat_amount' ->> 'amount')::bigint AS flat_amount,
    e.raw_payload -> 'flat_amount' ->> 'currency' AS currency,
    e.raw_payload ->> 'tax_type'                 AS tax_type,
    e.raw_payload ->> 'country'                  AS country,
    e.raw_payload ->> 'state'                    AS state,
    e.raw_payload ->> 'jurisdiction'             AS jurisdiction,
    e.raw_payload ->> 'jurisdiction_level'       AS jurisdiction_level,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.archived_at,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_tax_rate' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_tax_ids AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'type'                     AS type,
    e.raw_payload ->> 'value'                    AS value,
    e.raw_payload ->> 'country'                  AS country,
    COALESCE(
        e.raw_payload -> 'owner' -> 'customer' ->> 'id',
        e.raw_payload -> 'owner' ->> 'customer',
        e.raw_payload -> 'customer' ->> 'id',
        e.raw_payload ->> 'customer'
    )                                            AS customer_id,
    e.raw_payload -> 'owner' ->> 'type'          AS owner_type,
    e.raw_payload -> 'verification' ->> 'status' AS verification_status,
    e.raw_payload -> 'verification' ->> 'verified_name' AS verified_name,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_tax_id' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_payment_methods AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'type'                     AS type,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    e.raw_payload -> 'card' ->> 'brand'          AS card_brand,
    e.raw_payload -> 'card' ->> 'last4'          AS card_last4,
    (e.raw_payload -> 'card' ->> 'exp_month')::integer AS card_exp_month,
    (e.raw_payload -> 'card' ->> 'exp_year')::integer  AS card_exp_year,
    e.raw_payload -> 'card' ->> 'funding'        AS card_funding,
    e.raw_payload -> 'card' ->> 'country'        AS card_country,
    e.raw_payload -> 'card' ->> 'fingerprint'    AS card_fingerprint,
    e.raw_payload -> 'billing_details' ->> 'name'  AS billing_name,
    e.raw_payload -> 'billing_details' ->> 'email' AS billing_email,
    e.raw_payload -> 'billing_details' -> 'address' ->> 'country' AS billing_country,
    e.raw_payload ->> 'allow_redisplay'          AS allow_redisplay,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_payment_method' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_setup_intents AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'usage'                    AS usage,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'payment_method' ->> 'id', e.raw_payload ->> 'payment_method') AS payment_method_id,
    COALESCE(e.raw_payload -> 'latest_attempt' ->> 'id', e.raw_payload ->> 'latest_attempt') AS latest_attempt_id,
    COALESCE(e.raw_payload -> 'mandate' ->> 'id', e.raw_payload ->> 'mandate') AS mandate_id,
    e.raw_payload -> 'last_setup_error' ->> 'type'    AS last_setup_error_type,
    e.raw_payload -> 'last_setup_error' ->> 'code'    AS last_setup_error_code,
    e.raw_payload -> 'last_setup_error' ->> 'message' AS last_setup_error_message,
    e.raw_payload ->> 'cancellation_reason'      AS cancellation_reason,
    e.raw_payload ->> 'description'              AS description,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_setup_intent' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_subscription_schedules AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'end_behavior'             AS end_behavior,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'subscription' ->> 'id', e.raw_payload ->> 'subscription') AS subscription_id,
    e.raw_payload ->> 'released_subscription'    AS released_subscription_id,
    supasaasy.unix_ts(e.raw_payload -> 'current_phase' -> 'start_date') AS current_phase_start,
    supasaasy.unix_ts(e.raw_payload -> 'current_phase' -> 'end_date')   AS current_phase_end,
    CASE WHEN jsonb_typeof(e.raw_payload -> 'phases') = 'array'
         THEN jsonb_array_length(e.raw_payload -> 'phases') END AS phase_count,
    supasaasy.unix_ts(e.raw_payload -> 'canceled_at')  AS canceled_at,
    supasaasy.unix_ts(e.raw_payload -> 'completed_at') AS completed_at,
    supasaasy.unix_ts(e.raw_payload -> 'released_at')  AS released_at,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_subscription_schedule' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_checkout_sessions AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'mode'                     AS mode,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'payment_status'           AS payment_status,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount_subtotal')::bigint AS amount_subtotal,
    (e.raw_payload ->> 'amount_total')::bigint   AS amount_total,
    (e.raw_payload -> 'total_details' ->> 'amount_discount')::bigint AS amount_discount,
    (e.raw_payload -> 'total_details' ->> 'amount_tax')::bigint      AS amount_tax,
    COALESCE(e.raw_payload -> 'customer' ->> 'id', e.raw_payload ->> 'customer') AS customer_id,
    COALESCE(e.raw_payload -> 'customer_details' ->> 'email', e.raw_payload ->> 'customer_email') AS customer_email,
    COALESCE(e.raw_payload -> 'payment_intent' ->> 'id', e.raw_payload ->> 'payment_intent') AS payment_intent_id,
    COALESCE(e.raw_payload -> 'setup_intent' ->> 'id', e.raw_payload ->> 'setup_intent') AS setup_intent_id,
    COALESCE(e.raw_payload -> 'subscription' ->> 'id', e.raw_payload ->> 'subscription') AS subscription_id,
    COALESCE(e.raw_payload -> 'invoice' ->> 'id', e.raw_payload ->> 'invoice') AS invoice_id,
    COALESCE(e.raw_payload -> 'payment_link' ->> 'id', e.raw_payload ->> 'payment_link') AS payment_link_id,
    e.raw_payload ->> 'client_reference_id'      AS client_reference_id,
    e.raw_payload ->> 'url'                      AS url,
    supasaasy.unix_ts(e.raw_payload -> 'expires_at') AS expires_at,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_checkout_session' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_payouts AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'type'                     AS type,
    e.raw_payload ->> 'method'                   AS method,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'automatic')::boolean     AS automatic,
    supasaasy.unix_ts(e.raw_payload -> 'arrival_date') AS arrival_date,
    COALESCE(e.raw_payload -> 'balance_transaction' ->> 'id', e.raw_payload ->> 'balance_transaction') AS balance_transaction_id,
    COALESCE(e.raw_payload -> 'failure_balance_transaction' ->> 'id', e.raw_payload ->> 'failure_balance_transaction') AS failure_balance_transaction_id,
    COALESCE(e.raw_payload -> 'destination' ->> 'id', e.raw_payload ->> 'destination') AS destination_id,
    e.raw_payload ->> 'failure_code'             AS failure_code,
    e.raw_payload ->> 'failure_message'          AS failure_message,
    e.raw_payload ->> 'reconciliation_status'    AS reconciliation_status,
    e.raw_payload ->> 'source_type'              AS source_type,
    e.raw_payload ->> 'description'              AS description,
    e.raw_payload ->> 'statement_descriptor'     AS statement_descriptor,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    e.raw_payload -> 'metadata'                  AS metadata,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_payout' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_balance_transactions AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'type'                     AS type,
    e.raw_payload ->> 'reporting_category'       AS reporting_category,
    e.raw_payload ->> 'status'                   AS status,
    e.raw_payload ->> 'currency'                 AS currency,
    (e.raw_payload ->> 'amount')::bigint         AS amount,
    (e.raw_payload ->> 'fee')::bigint            AS fee,
    (e.raw_payload ->> 'net')::bigint            AS net,
    (e.raw_payload ->> 'exchange_rate')::numeric AS exchange_rate,
    COALESCE(e.raw_payload -> 'source' ->> 'id', e.raw_payload ->> 'source') AS source_id,
    e.raw_payload ->> 'description'              AS description,
    supasaasy.unix_ts(e.raw_payload -> 'available_on') AS available_on,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_balance_transaction' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_early_fraud_warnings AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'fraud_type'               AS fraud_type,
    (e.raw_payload ->> 'actionable')::boolean    AS actionable,
    COALESCE(e.raw_payload -> 'charge' ->> 'id', e.raw_payload ->> 'charge') AS charge_id,
    COALESCE(e.raw_payload -> 'payment_intent' ->> 'id', e.raw_payload ->> 'payment_intent') AS payment_intent_id,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_early_fraud_warning' AND e.deleted_at IS NULL;

CREATE OR REPLACE VIEW supasaasy.stripe_reviews AS
SELECT
    e.app_key,
    e.external_id,
    (e.raw_payload ->> 'open')::boolean          AS open,
    e.raw_payload ->> 'reason'                   AS reason,
    e.raw_payload ->> 'opened_reason'            AS opened_reason,
    e.raw_payload ->> 'closed_reason'            AS closed_reason,
    COALESCE(e.raw_payload -> 'charge' ->> 'id', e.raw_payload ->> 'charge') AS charge_id,
    COALESCE(e.raw_payload -> 'payment_intent' ->> 'id', e.raw_payload ->> 'payment_intent') AS payment_intent_id,
    e.raw_payload ->> 'ip_address'               AS ip_address,
    e.raw_payload ->> 'billing_zip'              AS billing_zip,
    (e.raw_payload ->> 'livemode')::boolean      AS livemode,
    supasaasy.unix_ts(e.raw_payload -> 'created') AS created,
    e.raw_payload,
    e.api_version,
    e.created_at,
    e.updated_at,
    e.account_id
FROM supasaasy.entities e
WHERE e.collection_key = 'stripe_review' AND e.deleted_at IS NULL;
