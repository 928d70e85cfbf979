//! The Stripe resources this connector mirrors, one row each: where a resource is listed and
//! fetched, how, which events carry it, what a deletion or an archive looks like, what rides along
//! with it and whether a complete full run may sweep it.
//!
//! Everything that varies from one resource to the next is here, as data. The listing, the events
//! API, the webhook mapping and the fake Stripe of the test kit read this table; adding a resource
//! is its row, its view (a migration) and its fixtures.

use supasaasy_connector::{Incremental, Resource};

/// Where a resource's objects are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// `GET /v1/{path}`.
    None,
    /// `GET /v1/customers/{id}/{path}`, once for each customer the mirror holds.
    Customer,
    /// No list at all: events and objects embedded in others only.
    Unlisted,
}

/// How the complete list of a child collection is read when the parent embeds only part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildList {
    /// `GET /v1/{path}?{param}={parent id}` (`/v1/subscription_items?subscription=sub_...`).
    Query {
        /// The path under `/v1/`.
        path: &'static str,
        /// The query parameter naming the parent.
        param: &'static str,
    },
    /// `GET /v1/{parent path}/{parent id}/{segment}` (`/v1/invoices/in_.../lines`).
    Nested {
        /// The segment after the parent's id.
        segment: &'static str,
    },
}

/// Objects that ride along with their parent (a subscription's items, an invoice's lines): the
/// parent embeds a list of them, complete or truncated, and they leave when the parent drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    /// The children's collection in the mirror.
    pub collection_key: &'static str,
    /// Stripe's `object` of a child (`line_item`).
    pub object: &'static str,
    /// The parent's field holding the embedded list (`items`, `lines`).
    pub field: &'static str,
    /// Where the whole list is when the embedded one is truncated.
    pub list: ChildList,
    /// The child's field naming its parent (`subscription`, `invoice`). Stripe leaves it out of
    /// some children (credit note lines), so the connector sets it on every child it reads.
    pub parent_field: &'static str,
}

/// An object of another resource a parent carries whole (a customer's `discount`): written as
/// that resource's row whenever the parent is read, never taken away by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    /// The parent's field holding the object (or `null`).
    pub field: &'static str,
    /// The resource the object belongs to (a row of [`TABLE`]).
    pub resource: &'static str,
}

/// One Stripe resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeResource {
    /// The name operators use (`invoice`), in `sync_resources` and `resource_types`.
    pub name: &'static str,
    /// Its rows' collection key (`stripe_invoice`).
    pub collection_key: &'static str,
    /// Stripe's `object` value (`invoice`, `checkout.session`, `invoiceitem`).
    pub object: &'static str,
    /// The list's path under `/v1/` (`invoices`, `checkout/sessions`); for a resource listed per
    /// customer, the segment after `customers/{id}/`.
    pub path: &'static str,
    /// Where the objects are listed.
    pub parent: Parent,
    /// Where one object is fetched, `GET /v1/{retrieve}/{id}`; `None` when Stripe has no way.
    pub retrieve: Option<&'static str>,
    /// The list takes `created[gte]` and `created[lt]` (and lists newest first), so a full pass
    /// may walk several `created` ranges at once.
    pub created_filter: bool,
    /// Query parameters every page of the list carries (`status=all`).
    pub params: &'static [(&'static str, &'static str)],
    /// Fields expanded on every list and fetch (`payments`: not in an invoice unless asked).
    pub expand: &'static [&'static str],
    /// The event types whose `data.object` is one of these objects; at most 20, so an events
    /// page asks for all of them at once.
    pub events: &'static [&'static str],
    /// Of those, the types that mean the object is gone (its row becomes a tombstone).
    pub deleted_by: &'static [&'static str],
    /// `"active": false` means archived (still there, no longer offered).
    pub archivable: bool,
    /// What rides along with each object.
    pub child: Option<Child>,
    /// Objects of other resources carried whole.
    pub embedded: &'static [Embedded],
    /// A complete full run may tombstone what it did not see.
    pub sweep: bool,
    /// What an incremental run does.
    pub incremental: Incremental,
    /// The objects are the platform's connected accounts (see [`Resource::connected_accounts`]).
    pub connected_accounts: bool,
}

impl StripeResource {
    /// What the daemon knows of the resource.
    pub const fn resource(&'static self) -> Resource {
        Resource {
            name: self.name,
            collection_key: self.collection_key,
            child_collection_keys: match &self.child {
                Some(child) => std::slice::from_ref(&child.collection_key),
                None => &[],
            },
            exclusive: false,
            incremental: self.incremental,
            splittable: self.created_filter && matches!(self.parent, Parent::None),
            listed: !matches!(self.parent, Parent::Unlisted),
            sweep: self.sweep,
            per_parent: match self.parent {
                Parent::Customer => Some("stripe_customer"),
                _ => None,
            },
            fetchable: self.retrieve.is_some(),
            connected_accounts: self.connected_accounts,
            children_swept_with_parent: None,
        }
    }

    /// The row of `name`.
    pub fn named(name: &str) -> Option<&'static StripeResource> {
        TABLE.iter().find(|r| r.name == name)
    }

    /// The row of the collection `collection_key`.
    pub fn of_collection(collection_key: &str) -> Option<&'static StripeResource> {
        TABLE.iter().find(|r| r.collection_key == collection_key)
    }

    /// The row whose events include `event_type`.
    pub fn of_event(event_type: &str) -> Option<&'static StripeResource> {
        TABLE.iter().find(|r| r.events.contains(&event_type))
    }

    /// The list's path under `/v1/`, for `parent` when listed per customer.
    pub fn list_path(&self, parent: Option<&str>) -> String {
        match (self.parent, parent) {
            (Parent::Customer, Some(customer)) => format!("customers/{customer}/{}", self.path),
            _ => self.path.to_owned(),
        }
    }
}

/// A row with the defaults of a plain top-level resource: listed at `/v1/{path}`, fetched there,
/// filterable by `created`, swept, incremental from events.
const fn top(
    name: &'static str,
    collection_key: &'static str,
    object: &'static str,
    path: &'static str,
    events: &'static [&'static str],
) -> StripeResource {
    StripeResource {
        name,
        collection_key,
        object,
        path,
        parent: Parent::None,
        retrieve: Some(path),
        created_filter: true,
        params: &[],
        expand: &[],
        events,
        deleted_by: &[],
        archivable: false,
        child: None,
        embedded: &[],
        sweep: true,
        incremental: Incremental::Events,
        connected_accounts: false,
    }
}

/// The resources, in the order a full sync runs them: what others point at first.
pub const TABLE: &[StripeResource] = &[
    StripeResource {
        deleted_by: &["customer.deleted"],
        embedded: &[Embedded {
            field: "discount",
            resource: "discount",
        }],
        ..top(
            "customer",
            "stripe_customer",
            "customer",
            "customers",
            &["customer.created", "customer.updated", "customer.deleted"],
        )
    },
    StripeResource {
        deleted_by: &["product.deleted"],
        archivable: true,
        ..top(
            "product",
            "stripe_product",
            "product",
            "products",
            &["product.created", "product.updated", "product.deleted"],
        )
    },
    StripeResource {
        deleted_by: &["price.deleted"],
        archivable: true,
        ..top(
            "price",
            "stripe_price",
            "price",
            "prices",
            &["price.created", "price.updated", "price.deleted"],
        )
    },
    StripeResource {
        deleted_by: &["plan.deleted"],
        archivable: true,
        ..top(
            "plan",
            "stripe_plan",
            "plan",
            "plans",
            &["plan.created", "plan.updated", "plan.deleted"],
        )
    },
    StripeResource {
        params: &[("status", "all")],
        child: Some(Child {
            collection_key: "stripe_subscription_item",
            object: "subscription_item",
            field: "items",
            list: ChildList::Query {
                path: "subscription_items",
                param: "subscription",
            },
            parent_field: "subscription",
        }),
        ..top(
            "subscription",
            "stripe_subscription",
            "subscription",
            "subscriptions",
            &[
                "customer.subscription.created",
                "customer.subscription.updated",
                "customer.subscription.deleted",
                "customer.subscription.paused",
                "customer.subscription.resumed",
                "customer.subscription.pending_update_applied",
                "customer.subscription.pending_update_expired",
                "customer.subscription.trial_will_end",
            ],
        )
    },
    StripeResource {
        deleted_by: &["coupon.deleted"],
        ..top(
            "coupon",
            "stripe_coupon",
            "coupon",
            "coupons",
            &["coupon.created", "coupon.updated", "coupon.deleted"],
        )
    },
    StripeResource {
        archivable: true,
        ..top(
            "promotion_code",
            "stripe_promotion_code",
            "promotion_code",
            "promotion_codes",
            &["promotion_code.created", "promotion_code.updated"],
        )
    },
    StripeResource {
        archivable: true,
        ..top(
            "tax_rate",
            "stripe_tax_rate",
            "tax_rate",
            "tax_rates",
            &["tax_rate.created", "tax_rate.updated"],
        )
    },
    top(
        "subscription_schedule",
        "stripe_subscription_schedule",
        "subscription_schedule",
        "subscription_schedules",
        &[
            "subscription_schedule.aborted",
            "subscription_schedule.canceled",
            "subscription_schedule.completed",
            "subscription_schedule.created",
            "subscription_schedule.expiring",
            "subscription_schedule.released",
            "subscription_schedule.updated",
        ],
    ),
    StripeResource {
        expand: &["payments"],
        deleted_by: &["invoice.deleted"],
        child: Some(Child {
            collection_key: "stripe_invoice_line_item",
            object: "line_item",
            field: "lines",
            list: ChildList::Nested { segment: "lines" },
            parent_field: "invoice",
        }),
        ..top(
            "invoice",
            "stripe_invoice",
            "invoice",
            "invoices",
            &[
                "invoice.created",
                "invoice.deleted",
                "invoice.finalization_failed",
                "invoice.finalized",
                "invoice.marked_uncollectible",
                "invoice.overdue",
                "invoice.overpaid",
                "invoice.paid",
                "invoice.payment_action_required",
                "invoice.payment_failed",
                "invoice.payment_succeeded",
                "invoice.sent",
                "invoice.updated",
                "invoice.voided",
                "invoice.will_be_due",
            ],
        )
    },
    StripeResource {
        deleted_by: &["invoiceitem.deleted"],
        ..top(
            "invoice_item",
            "stripe_invoice_item",
            "invoiceitem",
            "invoiceitems",
            &["invoiceitem.created", "invoiceitem.deleted"],
        )
    },
    StripeResource {
        child: Some(Child {
            collection_key: "stripe_credit_note_line_item",
            object: "credit_note_line_item",
            field: "lines",
            list: ChildList::Nested { segment: "lines" },
            parent_field: "credit_note",
        }),
        ..top(
            "credit_note",
            "stripe_credit_note",
            "credit_note",
            "credit_notes",
            &[
                "credit_note.created",
                "credit_note.updated",
                "credit_note.voided",
            ],
        )
    },
    top(
        "charge",
        "stripe_charge",
        "charge",
        "charges",
        &[
            "charge.captured",
            "charge.expired",
            "charge.failed",
            "charge.pending",
            "charge.refunded",
            "charge.succeeded",
            "charge.updated",
        ],
    ),
    top(
        "payment_intent",
        "stripe_payment_intent",
        "payment_intent",
        "payment_intents",
        &[
            "payment_intent.amount_capturable_updated",
            "payment_intent.canceled",
            "payment_intent.created",
            "payment_intent.partially_funded",
            "payment_intent.payment_failed",
            "payment_intent.processing",
            "payment_intent.requires_action",
            "payment_intent.succeeded",
        ],
    ),
    top(
        "refund",
        "stripe_refund",
        "refund",
        "refunds",
        &[
            "refund.created",
            "refund.failed",
            "refund.updated",
            "charge.refund.updated",
        ],
    ),
    top(
        "dispute",
        "stripe_dispute",
        "dispute",
        "disputes",
        &[
            "charge.dispute.closed",
            "charge.dispute.created",
            "charge.dispute.funds_reinstated",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.updated",
        ],
    ),
    top(
        "setup_intent",
        "stripe_setup_intent",
        "setup_intent",
        "setup_intents",
        &[
            "setup_intent.canceled",
            "setup_intent.created",
            "setup_intent.requires_action",
            "setup_intent.setup_failed",
            "setup_intent.succeeded",
        ],
    ),
    top(
        "checkout_session",
        "stripe_checkout_session",
        "checkout.session",
        "checkout/sessions",
        &[
            "checkout.session.async_payment_failed",
            "checkout.session.async_payment_succeeded",
            "checkout.session.completed",
            "checkout.session.expired",
        ],
    ),
    top(
        "payout",
        "stripe_payout",
        "payout",
        "payouts",
        &[
            "payout.canceled",
            "payout.created",
            "payout.failed",
            "payout.paid",
            "payout.reconciliation_completed",
            "payout.updated",
        ],
    ),
    StripeResource {
        incremental: Incremental::Trailing {
            field: "status",
            value: "pending",
        },
        ..top(
            "balance_transaction",
            "stripe_balance_transaction",
            "balance_transaction",
            "balance_transactions",
            &[],
        )
    },
    top(
        "early_fraud_warning",
        "stripe_early_fraud_warning",
        "radar.early_fraud_warning",
        "radar/early_fraud_warnings",
        &[
            "radar.early_fraud_warning.created",
            "radar.early_fraud_warning.updated",
        ],
    ),
    // The list holds open reviews only: a closed one is not gone.
    StripeResource {
        sweep: false,
        ..top(
            "review",
            "stripe_review",
            "review",
            "reviews",
            &["review.closed", "review.opened"],
        )
    },
    // No list and no retrieve: from events, and from the customers that carry one.
    StripeResource {
        parent: Parent::Unlisted,
        retrieve: None,
        created_filter: false,
        deleted_by: &["customer.discount.deleted"],
        sweep: false,
        ..top(
            "discount",
            "stripe_discount",
            "discount",
            "",
            &[
                "customer.discount.created",
                "customer.discount.deleted",
                "customer.discount.updated",
            ],
        )
    },
    // Per customer; a customer's list is its whole set, but a run of the resource sees only the
    // customers the mirror holds, so deletions come from events, not from a sweep.
    StripeResource {
        parent: Parent::Customer,
        retrieve: Some("tax_ids"),
        created_filter: false,
        deleted_by: &["customer.tax_id.deleted"],
        sweep: false,
        ..top(
            "tax_id",
            "stripe_tax_id",
            "tax_id",
            "tax_ids",
            &[
                "customer.tax_id.created",
                "customer.tax_id.deleted",
                "customer.tax_id.updated",
            ],
        )
    },
    // Per customer; a detached payment method leaves its customer's list but still exists (its
    // row stays, `customer` null), so nothing is swept.
    StripeResource {
        parent: Parent::Customer,
        retrieve: Some("payment_methods"),
        created_filter: false,
        sweep: false,
        ..top(
            "payment_method",
            "stripe_payment_method",
            "payment_method",
            "payment_methods",
            &[
                "payment_method.attached",
                "payment_method.automatically_updated",
                "payment_method.detached",
                "payment_method.updated",
            ],
        )
    },
    // A Connect platform's connected accounts: listed in full every run (there are no events of
    // them but a Connect endpoint's), never swept (an account leaves by deauthorizing).
    StripeResource {
        sweep: false,
        incremental: Incremental::FullPass,
        connected_accounts: true,
        ..top(
            "account",
            "stripe_account",
            "account",
            "accounts",
            &["account.updated"],
        )
    },
];

/// What the daemon knows of each row of [`TABLE`], in its order.
pub static RESOURCES: [Resource; TABLE.len()] = {
    let mut out = [TABLE[0].resource(); TABLE.len()];
    let mut i = 1;
    while i < TABLE.len() {
        out[i] = TABLE[i].resource();
        i += 1;
    }
    out
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_collections_and_objects_are_unique_and_follow_the_contract() {
        for (i, r) in TABLE.iter().enumerate() {
            assert_eq!(r.collection_key, format!("stripe_{}", r.name), "{}", r.name);
            for other in &TABLE[i + 1..] {
                assert_ne!(r.name, other.name);
                assert_ne!(r.object, other.object);
            }
            assert_eq!(RESOURCES[i], r.resource());
        }
    }

    #[test]
    fn every_event_type_maps_to_one_resource_and_fits_one_request() {
        for r in TABLE {
            assert!(r.events.len() <= 20, "{}", r.name);
            for t in r.events {
                assert_eq!(
                    StripeResource::of_event(t).map(|o| o.name),
                    Some(r.name),
                    "{t}"
                );
            }
            for t in r.deleted_by {
                assert!(r.events.contains(t), "{t}");
            }
        }
        assert_eq!(StripeResource::of_event("invoice.upcoming"), None);
        assert_eq!(
            StripeResource::of_event("charge.refund.updated").map(|r| r.name),
            Some("refund")
        );
        assert_eq!(
            StripeResource::of_event("charge.dispute.created").map(|r| r.name),
            Some("dispute")
        );
    }

    #[test]
    fn resources_without_a_complete_list_are_never_swept() {
        for name in ["review", "discount", "tax_id", "payment_method"] {
            assert!(!StripeResource::named(name).expect(name).sweep, "{name}");
        }
        let discount = StripeResource::named("discount")
            .expect("discount")
            .resource();
        assert!(!discount.listed && !discount.fetchable && !discount.splittable);
        let tax_id = StripeResource::named("tax_id").expect("tax_id").resource();
        assert_eq!(tax_id.per_parent, Some("stripe_customer"));
        assert!(!tax_id.splittable);
    }

    #[test]
    fn embedded_objects_name_a_resource_of_the_table() {
        for r in TABLE {
            for e in r.embedded {
                assert!(
                    StripeResource::named(e.resource).is_some(),
                    "{}",
                    e.resource
                );
            }
        }
    }

    #[test]
    fn the_readme_lists_every_event_type_and_resource() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("Event types to enable on the Stripe webhook endpoint")
            .expect("the README's list of event types");
        let listed: Vec<&str> = readme[start..]
            .split("```")
            .nth(1)
            .expect("a code block")
            .split_whitespace()
            .collect();
        // A connected account's events come to the Connect endpoint only.
        let mut mapped: Vec<&str> = TABLE
            .iter()
            .filter(|r| !r.connected_accounts)
            .flat_map(|r| r.events.iter().copied())
            .collect();
        mapped.sort_unstable();
        assert_eq!(
            listed, mapped,
            "the README lists the table's event types, sorted"
        );
        let connect = &readme[readme
            .find("Event types to enable on the Connect endpoint")
            .expect("the README's Connect event types")..];
        let connect = connect.split("\n\n").next().unwrap_or_default();
        for t in TABLE
            .iter()
            .filter(|r| r.connected_accounts)
            .flat_map(|r| r.events.iter())
            .chain([&crate::events::DEAUTHORIZED])
        {
            assert!(connect.contains(&format!("`{t}`")), "{t}");
        }
        for r in TABLE {
            assert!(readme.contains(&format!("`{}`", r.name)), "{}", r.name);
        }
    }

    #[test]
    fn list_paths() {
        let tax_id = StripeResource::named("tax_id").expect("tax_id");
        assert_eq!(tax_id.list_path(Some("cus_1")), "customers/cus_1/tax_ids");
        let session = StripeResource::named("checkout_session").expect("session");
        assert_eq!(session.list_path(None), "checkout/sessions");
    }
}
