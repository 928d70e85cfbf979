//! Deterministic data generation: [`IntercomData::generate`] and [`IntercomCounts`].
//!
//! Objects are built from the API description's examples with ids of Intercom's shapes: contacts
//! and companies 24 hex characters (a Mongo-style id whose first 8 encode `created_at`), admins,
//! conversations and parts numeric strings. `created_at` is spread over the past year; references
//! hold: a user is attached to companies that existed before it (leads to none, and every fourth
//! contact is a lead), a conversation is with a contact that existed before it and assigned to an
//! admin, its parts are written by that contact and that admin between its creation and its
//! `updated_at`. A seeded PRNG makes two runs with the same counts and clock give the same objects.
//!
//! For speed, the fields objects of a kind share are serialised once (a
//! [`Template`](crate::fake_stripe::synth::Template)), and each object writes only its own.

use serde_json::{json, Value};

use super::data::{example, IntercomData, DEFAULT_APP_ID};
use super::store::{Resource, Store, Stored};
use crate::fake_stripe::synth::{int_or_null, Field, Rng, Template};
use crate::fake_stripe::unix_now;

const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;
const SEED: u64 = 0x1c7e_4c0e_5eed_0001;

/// How many objects [`IntercomData::generate`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntercomCounts {
    /// Companies.
    pub companies: usize,
    /// Contacts; every fourth is a lead, the others users with emails `user{N}@example.com`.
    pub contacts: usize,
    /// Admins (teammates).
    pub admins: usize,
    /// Conversations (none when there are no contacts).
    pub conversations: usize,
    /// Parts of each conversation.
    pub parts_per_conversation: usize,
}

impl Default for IntercomCounts {
    fn default() -> Self {
        IntercomCounts {
            companies: 20,
            contacts: 100,
            admins: 4,
            conversations: 50,
            parts_per_conversation: 3,
        }
    }
}

/// The `i`th of `n` ascending, distinct (when `span >= n`) times in `[start, start + span)`.
fn spread(rng: &mut Rng, i: usize, n: usize, start: i64, span: i64) -> i64 {
    let n = n.max(1) as i64;
    let step = (span / n).max(1);
    start + (i as i64) * span / n + rng.below(step as u64) as i64
}

/// A Mongo-style id: `created_at` as 8 hex digits, then 16 unique to `(salt, n)`.
fn hex_id(created_at: i64, salt: u64, n: usize) -> String {
    format!(
        "{:08x}{:016x}",
        created_at as u32,
        Rng(n as u64 ^ salt).next()
    )
}

/// A time in `[from, to]`.
fn between(rng: &mut Rng, from: i64, to: i64) -> i64 {
    from + rng.below((to - from).max(0) as u64 + 1) as i64
}

/// How many of the ascending `times` are at or before `at`.
fn existing(times: &[i64], at: i64) -> usize {
    times.partition_point(|&t| t <= at)
}

const FIRST: [&str; 8] = [
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Radia", "Ken",
];
const LAST: [&str; 8] = [
    "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Perlman", "Thompson",
];

fn person(i: usize) -> String {
    format!("{} {}", FIRST[i % 8], LAST[(i / 8) % 8])
}

fn raw(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A generated contact, as conversations refer to it.
struct ContactRef {
    created_at: i64,
    author: Vec<u8>,
    /// `{"type": "contact", "id", "external_id"}`, serialised.
    reference: String,
}

impl IntercomData {
    /// Generates consistent data with `counts`, timed relative to the current clock.
    pub fn generate(counts: &IntercomCounts) -> IntercomData {
        Self::generate_at(counts, unix_now())
    }

    /// Generates consistent data with `counts`, timed as if the clock read `now` (Unix seconds):
    /// the same counts and `now` always give the same objects.
    pub fn generate_at(counts: &IntercomCounts, now: i64) -> IntercomData {
        let mut data = IntercomData::empty();
        let mut rng = Rng(SEED);
        let admins = admins(&mut data.store, counts.admins);
        let company_times: Vec<i64> = (0..counts.companies)
            .map(|i| spread(&mut rng, i, counts.companies, now - YEAR, YEAR))
            .collect();
        let company_ids: Vec<String> = company_times
            .iter()
            .enumerate()
            .map(|(i, &t)| hex_id(t, 0xc0, i))
            .collect();
        let (contacts, users_of) = contacts(
            &mut data.store,
            &mut rng,
            counts.contacts,
            now,
            &company_times,
            &company_ids,
        );
        companies(
            &mut data.store,
            &mut rng,
            now,
            &company_times,
            &company_ids,
            &users_of,
        );
        conversations(&mut data.store, &mut rng, counts, now, &contacts, &admins);
        data
    }
}

/// Admins, returned as the `author` objects parts embed.
fn admins(store: &mut Store, n: usize) -> Vec<(i64, Vec<u8>)> {
    let template = Template::new(example("admin"), &["id", "name", "email"]);
    (0..n)
        .map(|i| {
            let id = 991_267_400 + i as i64;
            let (name, email) = (person(i + 3), format!("admin{}@example.com", i + 1));
            let json = template.render(&[
                Field::Str(&id.to_string()),
                Field::Str(&name),
                Field::Str(&email),
            ]);
            store.insert(
                Resource::Admin,
                Stored {
                    id: id.to_string(),
                    json,
                    created_at: 0,
                    updated_at: 0,
                },
            );
            let author =
                json!({"type": "admin", "id": id.to_string(), "name": name, "email": email});
            (id, raw(&author))
        })
        .collect()
}

const CONTACT_OWN: &[&str] = &[
    "id",
    "workspace_id",
    "external_id",
    "role",
    "email",
    "name",
    "created_at",
    "updated_at",
    "signed_up_at",
    "last_seen_at",
    "companies",
    "tags",
    "notes",
    "opted_out_subscription_types",
    "opted_in_subscription_types",
];

/// Contacts, and for each company the number of users attached to it.
fn contacts(
    store: &mut Store,
    rng: &mut Rng,
    n: usize,
    now: i64,
    company_times: &[i64],
    company_ids: &[String],
) -> (Vec<ContactRef>, Vec<i64>) {
    let template = Template::new(example("contact"), CONTACT_OWN);
    let mut users_of = vec![0i64; company_ids.len()];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let created = spread(rng, i, n, now - YEAR, YEAR);
        let updated = between(rng, created, now);
        let id = hex_id(created, 0xc7, i);
        let lead = i % 4 == 3;
        let (role, email) = if lead {
            ("lead", format!("lead{}@example.com", i + 1))
        } else {
            ("user", format!("user{}@example.com", i + 1))
        };
        let external = (!lead).then(|| format!("u{}", i + 1));
        let before = existing(company_times, created);
        let linked: Vec<usize> = if lead || before == 0 {
            Vec::new()
        } else {
            let first = rng.below(before as u64) as usize;
            let second = rng.below(before as u64) as usize;
            let mut linked = vec![first];
            if i % 3 == 0 && second != first {
                linked.push(second);
            }
            linked
        };
        // Generated text needs no JSON escaping: ids are hex, names and emails plain ASCII.
        let data: Vec<String> = linked
            .iter()
            .map(|&c| {
                users_of[c] += 1;
                let cid = &company_ids[c];
                format!(r#"{{"id":"{cid}","type":"company","url":"/companies/{cid}"}}"#)
            })
            .collect();
        let list = |what: &str, data: &[String]| {
            format!(
                r#"{{"type":"list","data":[{}],"url":"/contacts/{id}/{what}","total_count":{},"has_more":false}}"#,
                data.join(","),
                data.len()
            )
        };
        let companies = list("companies", &data);
        let (tags, notes, subs) = (
            list("tags", &[]),
            list("notes", &[]),
            list("subscriptions", &[]),
        );
        let name = person(i);
        let json = template.render(&[
            Field::Str(&id),
            Field::Str(DEFAULT_APP_ID),
            external.as_deref().map_or(Field::Raw(b"null"), Field::Str),
            Field::Str(role),
            Field::Str(&email),
            Field::Str(&name),
            Field::Int(created),
            Field::Int(updated),
            int_or_null((!lead).then_some(created)),
            Field::Int(updated),
            Field::Raw(companies.as_bytes()),
            Field::Raw(tags.as_bytes()),
            Field::Raw(notes.as_bytes()),
            Field::Raw(subs.as_bytes()),
            Field::Raw(subs.as_bytes()),
        ]);
        store.insert(
            Resource::Contact,
            Stored {
                id: id.clone(),
                json,
                created_at: created,
                updated_at: updated,
            },
        );
        let external = external.map_or_else(|| "null".to_owned(), |e| format!(r#""{e}""#));
        out.push(ContactRef {
            created_at: created,
            author: format!(r#"{{"type":"{role}","id":"{id}","name":"{name}","email":"{email}"}}"#)
                .into_bytes(),
            reference: format!(r#"{{"type":"contact","id":"{id}","external_id":{external}}}"#),
        });
    }
    (out, users_of)
}

const COMPANY_OWN: &[&str] = &[
    "id",
    "company_id",
    "app_id",
    "name",
    "remote_created_at",
    "created_at",
    "updated_at",
    "monthly_spend",
    "session_count",
    "user_count",
];

fn companies(
    store: &mut Store,
    rng: &mut Rng,
    now: i64,
    times: &[i64],
    ids: &[String],
    users_of: &[i64],
) {
    let template = Template::new(example("company"), COMPANY_OWN);
    for (i, (&created, id)) in times.iter().zip(ids).enumerate() {
        let updated = between(rng, created, now);
        let json = template.render(&[
            Field::Str(id),
            Field::Str(&(i + 1).to_string()),
            Field::Str(DEFAULT_APP_ID),
            Field::Str(&format!("Company {}", i + 1)),
            Field::Int(created),
            Field::Int(created),
            Field::Int(updated),
            Field::Int(rng.below(50) as i64 * 100),
            Field::Int(rng.below(500) as i64),
            Field::Int(users_of[i]),
        ]);
        store.insert(
            Resource::Company,
            Stored {
                id: id.clone(),
                json,
                created_at: created,
                updated_at: updated,
            },
        );
    }
}

const CONVERSATION_OWN: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "waiting_since",
    "source",
    "contacts",
    "admin_assignee_id",
    "open",
    "state",
    "read",
];

const PART_OWN: &[&str] = &[
    "id",
    "part_type",
    "body",
    "created_at",
    "updated_at",
    "notified_at",
    "assigned_to",
    "author",
    "state",
];

fn conversations(
    store: &mut Store,
    rng: &mut Rng,
    counts: &IntercomCounts,
    now: i64,
    contacts: &[ContactRef],
    admins: &[(i64, Vec<u8>)],
) {
    if contacts.is_empty() {
        return;
    }
    let mut base = example("conversation");
    if let Some(map) = base.as_object_mut() {
        map.insert("tags".into(), json!({"type": "tag.list", "tags": []}));
        map.insert("team_assignee_id".into(), Value::Null);
    }
    let template = Template::new(base, CONVERSATION_OWN);
    let mut part = example("conversation_part");
    if let Some(map) = part.as_object_mut() {
        map.insert("tags".into(), json!([]));
        map.insert("external_id".into(), Value::Null);
    }
    let part_template = Template::new(part, PART_OWN);
    let contact_times: Vec<i64> = contacts.iter().map(|c| c.created_at).collect();
    let (n, per) = (counts.conversations, counts.parts_per_conversation);
    let mut part_no = 0u64;
    for i in 0..n {
        let id = (100_000_000 + i as u64).to_string();
        let created = spread(rng, i, n, now - YEAR, YEAR);
        let known = existing(&contact_times, created).max(1);
        let contact = &contacts[rng.below(known as u64) as usize];
        let admin = (!admins.is_empty()).then(|| &admins[rng.below(admins.len() as u64) as usize]);
        let updated = between(rng, created, (created + 30 * DAY).min(now));
        let open = i % 3 == 0;
        let (state, read) = if open {
            ("open", "false")
        } else {
            ("closed", "true")
        };
        let by_admin = admin.is_some() && i % 2 == 1;
        let author: &[u8] = match admin {
            Some((_, author)) if by_admin => author,
            _ => &contact.author,
        };
        let source = format!(
            r#"{{"type":"conversation","id":"{}","delivered_as":"{}","subject":"","body":"<p>Conversation {}</p>","author":{},"attachments":[],"url":null,"redacted":false}}"#,
            400_000_000 + i as u64,
            if by_admin {
                "admin_initiated"
            } else {
                "customer_initiated"
            },
            i + 1,
            String::from_utf8_lossy(author),
        );
        let with = format!(
            r#"{{"type":"contact.list","contacts":[{}]}}"#,
            contact.reference
        );
        let assignee = admin.map(|a| a.0);
        let json = template.render(&[
            Field::Str(&id),
            Field::Int(created),
            Field::Int(updated),
            int_or_null(open.then_some(updated)),
            Field::Raw(source.as_bytes()),
            Field::Raw(with.as_bytes()),
            int_or_null(assignee),
            Field::Raw(if open { b"true" } else { b"false" }),
            Field::Str(state),
            Field::Raw(read.as_bytes()),
        ]);
        store.insert(
            Resource::Conversation,
            Stored {
                id: id.clone(),
                json,
                created_at: created,
                updated_at: updated,
            },
        );
        let mut parts = Vec::with_capacity(per);
        for k in 0..per {
            let at = if k + 1 == per {
                updated
            } else {
                spread(rng, k, per, created + 1, updated - created)
            };
            let at = at.clamp(created, updated);
            let (kind, who, assigned): (&str, &[u8], &[u8]) = match admin {
                Some((_, a)) if k == 0 => ("assignment", a, a),
                Some((_, a)) if k + 1 == per && !open => ("close", a, b"null"),
                Some((_, a)) if k % 2 == 1 => {
                    (if k % 5 == 0 { "note" } else { "comment" }, a, b"null")
                }
                _ => ("comment", &contact.author, b"null"),
            };
            let part_id = (20_000_000_000 + part_no).to_string();
            part_no += 1;
            let body = format!("<p>Part {} of conversation {}</p>", k + 1, i + 1);
            let json = part_template.render(&[
                Field::Str(&part_id),
                Field::Str(kind),
                Field::Str(&body),
                Field::Int(at),
                Field::Int(at),
                Field::Int(at),
                Field::Raw(assigned),
                Field::Raw(who),
                Field::Str(state),
            ]);
            parts.push(json);
        }
        store.put_parts(&id, parts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generation_is_deterministic_and_consistent() {
        let counts = IntercomCounts {
            companies: 10,
            contacts: 40,
            admins: 3,
            conversations: 30,
            parts_per_conversation: 4,
        };
        let now = 1_700_000_000;
        let a = IntercomData::generate_at(&counts, now);
        let b = IntercomData::generate_at(&counts, now);
        assert_eq!(a.ids("contact"), b.ids("contact"));
        let conv = &a.ids("conversation")[7];
        assert_eq!(a.get("conversation", conv), b.get("conversation", conv));
        assert_eq!(
            (a.count("company"), a.count("contact"), a.count("admin")),
            (10, 40, 3)
        );
        let mut roles = HashSet::new();
        for id in a.ids("contact") {
            let c = a.get("contact", &id).unwrap();
            assert_eq!(id.len(), 24);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(
                &id[..8],
                format!("{:08x}", c["created_at"].as_i64().unwrap())
            );
            assert!(c["updated_at"].as_i64() >= c["created_at"].as_i64());
            assert!(c["updated_at"].as_i64().unwrap() <= now);
            roles.insert(c["role"].as_str().unwrap().to_owned());
            for link in c["companies"]["data"].as_array().unwrap() {
                let company = a.get("company", link["id"].as_str().unwrap()).unwrap();
                assert!(company["created_at"].as_i64() <= c["created_at"].as_i64());
            }
        }
        assert_eq!(roles.len(), 2);
        let mut part_ids = HashSet::new();
        for id in a.ids("conversation") {
            assert!(id.parse::<u64>().is_ok());
            let conv = a.get("conversation", &id).unwrap();
            let contact = conv["contacts"]["contacts"][0]["id"].as_str().unwrap();
            assert!(a.get("contact", contact).is_some());
            let admin = conv["admin_assignee_id"].as_i64().unwrap().to_string();
            assert!(a.get("admin", &admin).is_some());
            let parts = conv["conversation_parts"]["conversation_parts"]
                .as_array()
                .unwrap();
            assert_eq!(parts.len(), 4);
            for p in parts {
                assert!(part_ids.insert(p["id"].as_str().unwrap().to_owned()));
                assert!(p["created_at"].as_i64() >= conv["created_at"].as_i64());
                assert!(p["created_at"].as_i64() <= conv["updated_at"].as_i64());
            }
        }
    }

    #[test]
    fn no_contacts_means_no_conversations() {
        let counts = IntercomCounts {
            contacts: 0,
            ..IntercomCounts::default()
        };
        assert_eq!(IntercomData::generate(&counts).count("conversation"), 0);
    }
}
