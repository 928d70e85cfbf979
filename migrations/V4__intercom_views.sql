-- Typed views over the Intercom rows of supasaasy.entities; tombstones are hidden. Intercom's own
-- `external_id` (the id a workspace gives its users) is `contact_external_id`, since `external_id`
-- is the row's Intercom id here as everywhere.

CREATE VIEW supasaasy.intercom_companies AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'company_id'                      AS company_id,
    e.raw_payload ->> 'name'                            AS name,
    e.raw_payload ->> 'website'                         AS website,
    e.raw_payload ->> 'industry'                        AS industry,
    (e.raw_payload ->> 'size')::bigint                  AS size,
    (e.raw_payload ->> 'user_count')::bigint            AS user_count,
    (e.raw_payload ->> 'session_count')::bigint         AS session_count,
    (e.raw_payload ->> 'monthly_spend')::numeric        AS monthly_spend,
    e.raw_payload -> 'plan' ->> 'name'                  AS plan_name,
    e.raw_payload -> 'custom_attributes'                AS custom_attributes,
    supasaasy.unix_ts(e.raw_payload -> 'remote_created_at') AS remote_created_at,
    supasaasy.unix_ts(e.raw_payload -> 'last_request_at')   AS last_request_at,
    supasaasy.unix_ts(e.raw_payload -> 'created_at')    AS created_at,
    supasaasy.unix_ts(e.raw_payload -> 'updated_at')    AS updated_at,
    e.raw_payload,
    e.updated_at                                        AS synced_at
FROM supasaasy.entities e
WHERE e.collection_key = 'intercom_company' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.intercom_contacts AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'external_id'                     AS contact_external_id,
    e.raw_payload ->> 'role'                            AS role,
    e.raw_payload ->> 'email'                           AS email,
    e.raw_payload ->> 'name'                            AS name,
    e.raw_payload ->> 'phone'                           AS phone,
    e.raw_payload ->> 'owner_id'                        AS owner_id,
    (e.raw_payload ->> 'unsubscribed_from_emails')::boolean AS unsubscribed_from_emails,
    e.raw_payload -> 'location' ->> 'country'           AS country,
    e.raw_payload -> 'location' ->> 'city'              AS city,
    e.raw_payload -> 'custom_attributes'                AS custom_attributes,
    supasaasy.unix_ts(e.raw_payload -> 'signed_up_at')  AS signed_up_at,
    supasaasy.unix_ts(e.raw_payload -> 'last_seen_at')  AS last_seen_at,
    supasaasy.unix_ts(e.raw_payload -> 'last_replied_at') AS last_replied_at,
    supasaasy.unix_ts(e.raw_payload -> 'created_at')    AS created_at,
    supasaasy.unix_ts(e.raw_payload -> 'updated_at')    AS updated_at,
    e.archived_at,
    e.raw_payload,
    e.updated_at                                        AS synced_at
FROM supasaasy.entities e
WHERE e.collection_key = 'intercom_contact' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.intercom_admins AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'name'                            AS name,
    e.raw_payload ->> 'email'                           AS email,
    e.raw_payload ->> 'job_title'                       AS job_title,
    (e.raw_payload ->> 'away_mode_enabled')::boolean    AS away_mode_enabled,
    (e.raw_payload ->> 'has_inbox_seat')::boolean       AS has_inbox_seat,
    e.raw_payload -> 'team_ids'                         AS team_ids,
    e.raw_payload,
    e.updated_at                                        AS synced_at
FROM supasaasy.entities e
WHERE e.collection_key = 'intercom_admin' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.intercom_conversations AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'title'                           AS title,
    e.raw_payload ->> 'state'                           AS state,
    (e.raw_payload ->> 'open')::boolean                 AS open,
    (e.raw_payload ->> 'read')::boolean                 AS read,
    e.raw_payload ->> 'priority'                        AS priority,
    e.raw_payload ->> 'admin_assignee_id'               AS admin_assignee_id,
    e.raw_payload ->> 'team_assignee_id'                AS team_assignee_id,
    e.raw_payload -> 'source' ->> 'type'                AS source_type,
    e.raw_payload -> 'source' -> 'author' ->> 'id'      AS source_author_id,
    e.raw_payload -> 'contacts' -> 'contacts' -> 0 ->> 'id' AS contact_id,
    e.raw_payload -> 'conversation_rating'              AS conversation_rating,
    supasaasy.unix_ts(e.raw_payload -> 'waiting_since') AS waiting_since,
    supasaasy.unix_ts(e.raw_payload -> 'snoozed_until') AS snoozed_until,
    supasaasy.unix_ts(e.raw_payload -> 'created_at')    AS created_at,
    supasaasy.unix_ts(e.raw_payload -> 'updated_at')    AS updated_at,
    e.raw_payload,
    e.updated_at                                        AS synced_at
FROM supasaasy.entities e
WHERE e.collection_key = 'intercom_conversation' AND e.deleted_at IS NULL;

CREATE VIEW supasaasy.intercom_conversation_parts AS
SELECT
    e.app_key,
    e.external_id,
    e.raw_payload ->> 'conversation_id'                 AS conversation_id,
    e.raw_payload ->> 'part_type'                       AS part_type,
    e.raw_payload ->> 'body'                            AS body,
    e.raw_payload -> 'author' ->> 'type'                AS author_type,
    e.raw_payload -> 'author' ->> 'id'                  AS author_id,
    e.raw_payload -> 'assigned_to' ->> 'id'             AS assigned_to_id,
    supasaasy.unix_ts(e.raw_payload -> 'created_at')    AS created_at,
    supasaasy.unix_ts(e.raw_payload -> 'updated_at')    AS updated_at,
    e.raw_payload,
    e.updated_at                                        AS synced_at
FROM supasaasy.entities e
WHERE e.collection_key = 'intercom_conversation_part' AND e.deleted_at IS NULL;
