//! What the fake serves, read from the connector's table
//! ([`TABLE`](supasaasy_stripe::resources::TABLE)): one [`Kind`] per row and one per row's
//! children, what each kind's fixture says about its objects, and which kind a request path names
//! ([`Route`]).
//!
//! Nothing here names a Stripe resource but [`STUBS_WHEN_DELETED`] and the routes outside the table
//! (events and Connect's accounts): a new row of the table is a new kind with its list (top-level or per customer), its retrieve and its child list, and its
//! fixture decides which filters its list takes and whether its objects carry `created`.

use std::sync::OnceLock;

use serde_json::Value;
use supasaasy_stripe::resources::{Child, ChildList, Parent, StripeResource, TABLE};

use super::data::fixture_ref;

/// The resources whose deleted objects still retrieve, as `{"id", "object", "deleted": true}`,
/// and whose deletion events carry `"deleted": true`: Stripe keeps a stub of a deleted customer.
const STUBS_WHEN_DELETED: &[&str] = &["customer"];

/// Fields of an object a list may filter on by equality (`/v1/charges?customer=cus_...`), when
/// the resource's fixture has them at the top level.
const FILTER_FIELDS: &[&str] = &["customer", "product", "email"];

/// A kind of stored object: the objects of a row of the table, or the children of a row's objects
/// (a subscription's items). The index is the row's place in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// The objects of `TABLE[i]`.
    Row(usize),
    /// The children of the objects of `TABLE[i]` (its `child`).
    Child(usize),
}

/// What a kind's fixture says about its objects.
#[derive(Debug)]
struct Facts {
    /// The objects carry `created` (an invoice item has `date`, a discount `start`): one stored
    /// without it gets the fake's clock.
    stamped: bool,
    /// The [`FILTER_FIELDS`] the objects have.
    filters: Vec<&'static str>,
    /// For children: they name their parent in the child's `parent_field` (a credit note line
    /// does not), so the fake sets it on each.
    names_parent: bool,
}

/// The facts of every row (first) and of every row's children (after), read once.
fn facts(kind: Kind) -> &'static Facts {
    static ALL: OnceLock<Vec<Facts>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let of = |object: &str, parent_field: Option<&str>| {
            let fixture = fixture_ref(object).and_then(Value::as_object);
            let has = |field: &str| fixture.is_none_or(|f| f.contains_key(field));
            Facts {
                stamped: has("created"),
                filters: FILTER_FIELDS.iter().copied().filter(|f| has(f)).collect(),
                names_parent: parent_field.is_some_and(has),
            }
        };
        let rows = TABLE.iter().map(|r| of(r.object, None));
        let children = TABLE.iter().map(|r| match &r.child {
            Some(child) => of(child.object, Some(child.parent_field)),
            None => of("", None),
        });
        rows.chain(children).collect()
    });
    match kind {
        Kind::Row(i) => &all[i],
        Kind::Child(i) => &all[TABLE.len() + i],
    }
}

impl Kind {
    /// Every kind: the rows in the table's order, then the children.
    pub fn all() -> impl Iterator<Item = Kind> {
        let rows = (0..TABLE.len()).map(Kind::Row);
        let children = (0..TABLE.len())
            .filter(|i| TABLE[*i].child.is_some())
            .map(Kind::Child);
        rows.chain(children)
    }

    /// The row of the table this kind belongs to (a child's: its parent's row).
    pub fn row(self) -> &'static StripeResource {
        &TABLE[self.index()]
    }

    /// The place of the kind's row in the table.
    pub fn index(self) -> usize {
        match self {
            Kind::Row(i) | Kind::Child(i) => i,
        }
    }

    /// The child description, for a child kind.
    pub fn child(self) -> Option<&'static Child> {
        match self {
            Kind::Row(_) => None,
            Kind::Child(i) => TABLE[i].child.as_ref(),
        }
    }

    /// The name tests use: the row's name, or a child's collection key without `stripe_`
    /// (`subscription_item`, `invoice_line_item`).
    pub fn name(self) -> &'static str {
        match self.child() {
            Some(child) => child
                .collection_key
                .strip_prefix("stripe_")
                .unwrap_or(child.collection_key),
            None => self.row().name,
        }
    }

    /// How `No such ...` messages name an object of the kind (`subscription item`).
    pub fn human(self) -> String {
        self.name().replace('_', " ")
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::all().find(|k| k.name() == name)
    }

    /// The kind with this name, for the public helpers.
    ///
    /// # Panics
    ///
    /// When no kind has the name: a test bug, best reported loudly.
    pub fn named(name: &str) -> Kind {
        Kind::from_name(name).unwrap_or_else(|| {
            let known: Vec<_> = Kind::all().map(Kind::name).collect();
            panic!(
                "unknown resource {name:?}; the fake serves {}",
                known.join(", ")
            )
        })
    }

    /// Objects of the kind carry `created`.
    pub fn stamped(self) -> bool {
        facts(self).stamped
    }

    /// Whether a list of the kind filters on `field` (`customer`, `product`, `email`).
    pub fn filters_on(self, field: &str) -> bool {
        facts(self).filters.contains(&field)
    }

    /// For a child kind: the fake sets the parent's id in the child's `parent_field`.
    pub fn names_parent(self) -> bool {
        facts(self).names_parent
    }

    /// A deleted object of the kind still retrieves, as a stub.
    pub fn stub_when_deleted(self) -> bool {
        matches!(self, Kind::Row(_)) && STUBS_WHEN_DELETED.contains(&self.row().name)
    }

    /// For a kind listed per customer, the place of the customers' row in the table.
    pub fn owner(self) -> Option<usize> {
        match self {
            Kind::Row(i) if TABLE[i].parent == Parent::Customer => {
                let collection = TABLE[i].resource().per_parent?;
                TABLE.iter().position(|r| r.collection_key == collection)
            }
            _ => None,
        }
    }
}

/// What a request path names, under `/v1/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `events`, or `events/{id}`.
    Events(Option<&'a str>),
    /// `account`: the account the request reached.
    Account,
    /// `accounts`, or `accounts/{id}`: the platform's connected accounts.
    Accounts(Option<&'a str>),
    /// The top-level list of `TABLE[i]`, at `/v1/{path}`.
    List(usize),
    /// One object, at `/v1/{retrieve}/{id}` (a child at `/v1/{child path}/{id}`).
    Retrieve(Kind, &'a str),
    /// The complete child list of a parent of `TABLE[i]`: the parent's id is in the path
    /// (`invoices/{id}/lines`), or `None` when a query parameter names it.
    Children(usize, Option<&'a str>),
    /// The list of `TABLE[i]` under one customer, `customers/{id}/{path}`.
    OfCustomer(usize, &'a str),
}

impl<'a> Route<'a> {
    /// The route of `rest`, the path after `/v1/`; `None` when the fake serves nothing there.
    pub fn parse(rest: &'a str) -> Option<Route<'a>> {
        if rest == "events" {
            return Some(Route::Events(None));
        }
        if let Some(id) = id_after(rest, "events") {
            return Some(Route::Events(Some(id)));
        }
        match rest {
            "account" => return Some(Route::Account),
            "accounts" => return Some(Route::Accounts(None)),
            _ => {}
        }
        if let Some(id) = id_after(rest, "accounts") {
            return Some(Route::Accounts(Some(id)));
        }
        for (i, row) in TABLE.iter().enumerate() {
            if let Some(route) = Self::of_row(i, row, rest) {
                return Some(route);
            }
        }
        None
    }

    fn of_row(i: usize, row: &'static StripeResource, rest: &'a str) -> Option<Route<'a>> {
        match row.parent {
            Parent::None if rest == row.path => return Some(Route::List(i)),
            Parent::Customer => {
                let owner = TABLE[Kind::Row(i).owner()?].path;
                let customer = rest
                    .strip_prefix(owner)
                    .and_then(|r| r.strip_prefix('/'))
                    .and_then(|r| r.strip_suffix(row.path))
                    .and_then(|r| r.strip_suffix('/'))
                    .filter(|id| is_segment(id));
                if let Some(customer) = customer {
                    return Some(Route::OfCustomer(i, customer));
                }
            }
            _ => {}
        }
        if let Some(id) = row.retrieve.and_then(|path| id_after(rest, path)) {
            return Some(Route::Retrieve(Kind::Row(i), id));
        }
        match row.child?.list {
            ChildList::Query { path, .. } if rest == path => Some(Route::Children(i, None)),
            ChildList::Query { path, .. } => {
                id_after(rest, path).map(|id| Route::Retrieve(Kind::Child(i), id))
            }
            ChildList::Nested { segment } => rest
                .strip_prefix(row.path)
                .and_then(|r| r.strip_prefix('/'))
                .and_then(|r| r.strip_suffix(segment))
                .and_then(|r| r.strip_suffix('/'))
                .filter(|id| is_segment(id))
                .map(|id| Route::Children(i, Some(id))),
        }
    }
}

/// The id in `{prefix}/{id}`.
fn id_after<'a>(rest: &'a str, prefix: &str) -> Option<&'a str> {
    rest.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|id| is_segment(id))
}

/// One non-empty path segment.
fn is_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> Kind {
        Kind::named(name)
    }

    #[test]
    fn names_cover_the_table_and_its_children() {
        assert_eq!(Kind::all().count(), TABLE.len() + 3);
        for name in [
            "customer",
            "checkout_session",
            "subscription_item",
            "invoice_line_item",
            "credit_note_line_item",
        ] {
            assert_eq!(kind(name).name(), name);
        }
        assert_eq!(kind("subscription_item").human(), "subscription item");
        assert_eq!(Kind::from_name("widget"), None);
    }

    #[test]
    fn fixtures_decide_created_filters_and_parent_fields() {
        assert!(kind("customer").stamped());
        assert!(!kind("invoice_item").stamped() && !kind("discount").stamped());
        assert!(kind("customer").filters_on("email"));
        assert!(kind("charge").filters_on("customer"));
        assert!(kind("price").filters_on("product"));
        assert!(!kind("customer").filters_on("customer"));
        assert!(kind("subscription_item").names_parent());
        assert!(kind("invoice_line_item").names_parent());
        assert!(!kind("credit_note_line_item").names_parent());
        assert!(kind("customer").stub_when_deleted() && !kind("product").stub_when_deleted());
        let customers = TABLE.iter().position(|r| r.name == "customer");
        assert_eq!(kind("tax_id").owner(), customers);
        assert_eq!(kind("charge").owner(), None);
    }

    #[test]
    fn paths_name_their_routes() {
        let row = |name: &str| kind(name).index();
        let cases = [
            ("events", Some(Route::Events(None))),
            ("events/evt_1", Some(Route::Events(Some("evt_1")))),
            ("account", Some(Route::Account)),
            ("accounts", Some(Route::Accounts(None))),
            ("accounts/acct_1", Some(Route::Accounts(Some("acct_1")))),
            ("accounts/acct_1/external_accounts", None),
            ("customers", Some(Route::List(row("customer")))),
            (
                "customers/cus_1",
                Some(Route::Retrieve(kind("customer"), "cus_1")),
            ),
            (
                "customers/cus_1/tax_ids",
                Some(Route::OfCustomer(row("tax_id"), "cus_1")),
            ),
            (
                "tax_ids/txi_1",
                Some(Route::Retrieve(kind("tax_id"), "txi_1")),
            ),
            (
                "checkout/sessions",
                Some(Route::List(row("checkout_session"))),
            ),
            (
                "checkout/sessions/cs_1",
                Some(Route::Retrieve(kind("checkout_session"), "cs_1")),
            ),
            (
                "subscription_items",
                Some(Route::Children(row("subscription"), None)),
            ),
            (
                "subscription_items/si_1",
                Some(Route::Retrieve(kind("subscription_item"), "si_1")),
            ),
            (
                "invoices/in_1/lines",
                Some(Route::Children(row("invoice"), Some("in_1"))),
            ),
            (
                "credit_notes/cn_1/lines",
                Some(Route::Children(row("credit_note"), Some("cn_1"))),
            ),
            ("tax_ids", None),
            ("discounts", None),
            ("", None),
            ("invoices/in_1/lines/il_1", None),
            ("customers//tax_ids", None),
            ("customers/cus_1/", None),
        ];
        for (path, want) in cases {
            assert_eq!(Route::parse(path), want, "{path}");
        }
    }
}
