-- The children of one parent, by the field of the child that names it: applying a parent's event
-- tombstones the children that left it, and without these a subscription's event would read every
-- subscription item of the app (a conversation's, every part). One partial index per child
-- collection; the daemon queries each with the field and collection written out, as here.
CREATE INDEX entities_stripe_subscription_item_parent
    ON supasaasy.entities (app_key, (raw_payload ->> 'subscription'))
    WHERE collection_key = 'stripe_subscription_item';

CREATE INDEX entities_intercom_conversation_part_parent
    ON supasaasy.entities (app_key, (raw_payload ->> 'conversation_id'))
    WHERE collection_key = 'intercom_conversation_part';
