//! `POST /contacts/search` and `POST /conversations/search`: the query language, and the two ways
//! Intercom compares dates.
//!
//! A query is one filter `{"field", "operator", "value"}` or a group `{"operator": "AND" | "OR",
//! "value": [...]}` of at most 15 filters or groups, nested at most two groups deep. Fields:
//! `created_at`, `updated_at` (Unix seconds, as an integer or a string of digits) and `id`. The
//! date semantics are those of Intercom's API description for 2.14:
//!
//! - contacts match whole UTC days: both sides are truncated to the start of their day, so `>`
//!   starts at the next day, `<` ends before the value's day and `=` is the whole day; `!=`, `>=`,
//!   `<=`, `IN` and `NIN` are refused on dates with a 400;
//! - conversations compare to the second, and their `>` and `<` include the value (documented as
//!   "greater (or equal) than" and "lower (or equal) than"); `>=` and `<=` mean the same.
//!
//! Results come in list order (oldest `created_at` first) unless `sort` asks for `created_at` or
//! `updated_at`, `ascending` or `descending`. Every page filters the whole table, so a search costs
//! a scan; lists do not.

use serde_json::Value;

use super::cursor::{Cursor, Walk};
use super::error::ApiError;
use super::list::{Page, PageParams};
use super::store::{Stored, Table};

const DAY: i64 = 86_400;
const MAX_GROUP: usize = 15;
const MAX_DEPTH: usize = 2;

/// How a search compares dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dates {
    /// Contacts: whole UTC days.
    Days,
    /// Conversations: seconds.
    Seconds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    CreatedAt,
    UpdatedAt,
    Id,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    In,
    Nin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Int(i64),
    Ints(Vec<i64>),
    Text(String),
    Texts(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Cmp {
        field: Field,
        op: Op,
        value: Operand,
    },
}

/// A parsed search request.
#[derive(Debug)]
pub(crate) struct Search {
    filter: Filter,
    sort: Option<(Field, bool)>,
    pub page: PageParams,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid(message)
}

fn int_of(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl Search {
    /// Parses a request body.
    ///
    /// # Errors
    ///
    /// 400 `parameter_invalid` for a body that is not JSON, a missing `query`, an unknown field
    /// or operator, an operator the field's type refuses, a value of the wrong type, a group
    /// that is empty, too large or too deep, or bad pagination.
    pub fn parse(
        body: &[u8],
        walk: Walk,
        dates: Dates,
        per_page: usize,
    ) -> Result<Search, ApiError> {
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("the request body is not valid JSON: {e}")))?;
        let query = body
            .get("query")
            .ok_or_else(|| invalid("query is a required parameter"))?;
        let filter = parse_filter(query, dates, 0)?;
        let pagination = body.get("pagination").filter(|p| !p.is_null());
        // `per_page` may come as a number or a string; anything else is refused by its text.
        let size = pagination
            .and_then(|p| p.get("per_page"))
            .filter(|v| !v.is_null())
            .map(|v| int_of(v).map_or_else(|| v.to_string(), |n| n.to_string()));
        let after = pagination
            .and_then(|p| p.get("starting_after"))
            .and_then(Value::as_str);
        let page = PageParams::parse(size.as_deref(), after, walk, per_page)?;
        let sort = match body.get("sort").filter(|s| !s.is_null()) {
            None => None,
            Some(sort) => {
                let field = match sort.get("field").and_then(Value::as_str) {
                    Some("created_at") => Field::CreatedAt,
                    Some("updated_at") => Field::UpdatedAt,
                    other => return Err(invalid(format!("cannot sort by {other:?}"))),
                };
                let descending = match sort.get("order").and_then(Value::as_str) {
                    None | Some("ascending") => false,
                    Some("descending") => true,
                    Some(other) => return Err(invalid(format!("unknown sort order {other:?}"))),
                };
                Some((field, descending))
            }
        };
        Ok(Search { filter, sort, page })
    }

    /// One page of the objects of `table` that match, leaving out those updated after `visible`
    /// (the search index lags behind).
    pub fn run(&self, table: &Table, walk: Walk, dates: Dates, visible: i64) -> Page {
        let (field, descending) = self.sort.unwrap_or((Field::CreatedAt, false));
        let mut hits: Vec<(i64, u64, &Stored)> = table
            .rows
            .iter()
            .filter(|(_, s)| s.updated_at <= visible && self.filter.admits(s, dates))
            .map(|(key, s)| (sort_value(s, field), key.1, s))
            .collect();
        if self.sort.is_some() {
            hits.sort_by_key(|&(v, seq, _)| (v, seq));
            if descending {
                hits.reverse();
            }
        }
        let from = match self.page.after {
            None => 0,
            Some(c) if descending => {
                hits.partition_point(|&(v, seq, _)| (v, seq) >= (c.primary, c.seq))
            }
            Some(c) => hits.partition_point(|&(v, seq, _)| (v, seq) <= (c.primary, c.seq)),
        };
        let to = (from + self.page.per_page).min(hits.len());
        let page = self.page.page();
        let next = (to < hits.len())
            .then(|| hits[to - 1])
            .map(|(v, seq, _)| Cursor {
                walk,
                page,
                primary: v,
                seq,
            });
        Page {
            rows: hits[from..to].iter().map(|h| h.2.json.clone()).collect(),
            total: hits.len(),
            page,
            per_page: self.page.per_page,
            next,
        }
    }
}

fn sort_value(s: &Stored, field: Field) -> i64 {
    match field {
        Field::UpdatedAt => s.updated_at,
        _ => s.created_at,
    }
}

fn parse_filter(q: &Value, dates: Dates, depth: usize) -> Result<Filter, ApiError> {
    let op = q.get("operator").and_then(Value::as_str);
    if let Some(group @ ("AND" | "OR")) = op {
        if depth >= MAX_DEPTH {
            return Err(invalid(format!(
                "filters may be nested at most {MAX_DEPTH} deep"
            )));
        }
        let items = q
            .get("value")
            .and_then(Value::as_array)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(format!("{group} needs a non-empty array of filters")))?;
        if items.len() > MAX_GROUP {
            return Err(invalid(format!(
                "{group} accepts at most {MAX_GROUP} filters"
            )));
        }
        let items = items
            .iter()
            .map(|item| parse_filter(item, dates, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if group == "AND" {
            Filter::All(items)
        } else {
            Filter::Any(items)
        });
    }
    let name = q
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("a filter needs a field, an operator and a value"))?;
    let field = match name {
        "created_at" => Field::CreatedAt,
        "updated_at" => Field::UpdatedAt,
        "id" => Field::Id,
        other => {
            return Err(invalid(format!(
                "the fake cannot search on field {other:?}"
            )))
        }
    };
    let op = match op.unwrap_or_default() {
        "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        "<" => Op::Lt,
        ">=" => Op::Ge,
        "<=" => Op::Le,
        "IN" => Op::In,
        "NIN" => Op::Nin,
        other => {
            return Err(invalid(format!(
                "unknown or unsupported operator {other:?}"
            )))
        }
    };
    let raw = q.get("value").unwrap_or(&Value::Null);
    let bad_value = || {
        invalid(format!(
            "{raw} is not a valid value for {name} {}",
            op_text(op)
        ))
    };
    let value = match (field, op) {
        (Field::Id, Op::Eq | Op::Ne) => {
            Operand::Text(raw.as_str().ok_or_else(bad_value)?.to_owned())
        }
        (Field::Id, Op::In | Op::Nin) => Operand::Texts(
            raw.as_array()
                .ok_or_else(bad_value)?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(bad_value)?,
        ),
        (Field::Id, _) => {
            return Err(invalid(format!(
                "operator {} is not supported on id",
                op_text(op)
            )))
        }
        (_, Op::Ne | Op::Ge | Op::Le | Op::In | Op::Nin) if dates == Dates::Days => {
            return Err(invalid(format!(
                "operator {} is not supported on date field {name}",
                op_text(op)
            )))
        }
        (_, Op::In | Op::Nin) => Operand::Ints(
            raw.as_array()
                .ok_or_else(bad_value)?
                .iter()
                .map(int_of)
                .collect::<Option<_>>()
                .ok_or_else(bad_value)?,
        ),
        _ => Operand::Int(int_of(raw).ok_or_else(bad_value)?),
    };
    Ok(Filter::Cmp { field, op, value })
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Lt => "<",
        Op::Ge => ">=",
        Op::Le => "<=",
        Op::In => "IN",
        Op::Nin => "NIN",
    }
}

impl Filter {
    fn admits(&self, s: &Stored, dates: Dates) -> bool {
        match self {
            Filter::All(items) => items.iter().all(|f| f.admits(s, dates)),
            Filter::Any(items) => items.iter().any(|f| f.admits(s, dates)),
            Filter::Cmp {
                field: Field::Id,
                op,
                value,
            } => match value {
                Operand::Text(t) => (s.id == *t) == (*op == Op::Eq),
                Operand::Texts(ts) => ts.contains(&s.id) == (*op == Op::In),
                _ => false,
            },
            Filter::Cmp { field, op, value } => {
                let have = sort_value(s, *field);
                match (dates, value) {
                    (Dates::Days, Operand::Int(want)) => {
                        let (have, want) = (have.div_euclid(DAY), want.div_euclid(DAY));
                        match op {
                            Op::Eq => have == want,
                            Op::Gt => have > want,
                            Op::Lt => have < want,
                            _ => false,
                        }
                    }
                    (Dates::Seconds, Operand::Int(want)) => match op {
                        Op::Eq => have == *want,
                        Op::Ne => have != *want,
                        Op::Gt | Op::Ge => have >= *want,
                        Op::Lt | Op::Le => have <= *want,
                        _ => false,
                    },
                    (_, Operand::Ints(list)) => list.contains(&have) == (*op == Op::In),
                    _ => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_intercom::store::{Resource, Store};
    use serde_json::json;

    fn ids(store: &Store, body: Value, dates: Dates) -> Result<Vec<String>, ApiError> {
        let walk = Walk::ContactSearch;
        let search = Search::parse(body.to_string().as_bytes(), walk, dates, 50)?;
        let page = search.run(store.table(Resource::Contact), walk, dates, i64::MAX);
        Ok(page
            .rows
            .iter()
            .map(|r| {
                serde_json::from_slice::<Value>(r).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect())
    }

    fn store() -> Store {
        let mut store = Store::default();
        // Day 10 starts at 864000; a, b on day 10, c on day 11.
        for (id, at) in [("a", 864_000), ("b", 864_000 + 3_600), ("c", 950_400)] {
            store.upsert(Resource::Contact, json!({"id": id, "created_at": at}), 0);
        }
        store
    }

    #[test]
    fn days_for_contacts_seconds_for_conversations() {
        let s = store();
        let q = |op: &str, v: i64| json!({"query": {"field": "updated_at", "operator": op, "value": v}});
        assert_eq!(ids(&s, q(">", 864_000), Dates::Days).unwrap(), ["c"]);
        assert_eq!(
            ids(&s, q("=", 864_000 + 7_000), Dates::Days).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            ids(&s, q("<", 950_400 + 5), Dates::Days).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            ids(&s, q(">", 864_000), Dates::Seconds).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(
            ids(&s, q(">", 864_001), Dates::Seconds).unwrap(),
            ["b", "c"]
        );
        assert_eq!(
            ids(&s, q("<", 864_000 + 3_600), Dates::Seconds).unwrap(),
            ["a", "b"]
        );
        assert_eq!(ids(&s, q("=", 864_000), Dates::Seconds).unwrap(), ["a"]);
        for op in [">=", "<=", "!=", "IN"] {
            assert_eq!(ids(&s, q(op, 1), Dates::Days).unwrap_err().status, 400);
        }
    }

    #[test]
    fn groups_nest_and_values_may_be_strings() {
        let s = store();
        let body = json!({"query": {"operator": "OR", "value": [
            {"field": "id", "operator": "=", "value": "c"},
            {"operator": "AND", "value": [
                {"field": "created_at", "operator": "=", "value": "864000"},
                {"field": "id", "operator": "NIN", "value": ["a"]},
            ]},
        ]}, "sort": {"field": "created_at", "order": "descending"}});
        assert_eq!(ids(&s, body, Dates::Days).unwrap(), ["c", "b"]);
        let deep = json!({"query": {"operator": "AND", "value": [{"operator": "OR", "value": [
            {"operator": "AND", "value": [{"field": "id", "operator": "=", "value": "a"}]}]}]}});
        assert_eq!(ids(&s, deep, Dates::Days).unwrap_err().status, 400);
        assert!(ids(&s, json!({"pagination": {}}), Dates::Days).is_err());
        let unknown = json!({"query": {"field": "email", "operator": "=", "value": "x"}});
        assert!(ids(&s, unknown, Dates::Days).is_err());
    }
}
