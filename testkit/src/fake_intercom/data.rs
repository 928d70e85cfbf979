//! [`IntercomData`]: the objects, token, webhook secret and app id a
//! [`FakeIntercom`](super::FakeIntercom) starts with, and the example objects they are built from.
//!
//! The examples are the 200 responses of Intercom's API description for 2.14 (one admin,
//! company, contact, conversation and conversation part, `data/intercom_examples.json`), embedded
//! in the binary.

use std::sync::OnceLock;

use serde_json::Value;

use super::store::{Resource, Store};
use crate::fake_stripe::unix_now;

/// The access token a fake accepts unless told otherwise.
pub const DEFAULT_TOKEN: &str = "ic_test_fake";
/// The client secret webhook notifications are signed with unless told otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "ic_secret_fake";
/// The workspace id (`app_id`) of generated objects and notifications.
pub const DEFAULT_APP_ID: &str = "fakeapp1";
/// The API version the fake speaks.
pub const API_VERSION: &str = "2.14";

static EXAMPLES: &str = include_str!("../../data/intercom_examples.json");

/// One example object from Intercom's API description: `admin`, `company`, `contact`,
/// `conversation` (without parts) or `conversation_part`.
///
/// # Panics
///
/// When there is no example by that name.
pub fn example(name: &str) -> Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        serde_json::from_str(EXAMPLES).expect("the embedded Intercom examples are valid JSON")
    });
    all.get(name)
        .filter(|_| !name.starts_with('_'))
        .cloned()
        .unwrap_or_else(|| panic!("no Intercom example named {name:?}"))
}

/// The state a fake Intercom serves.
///
/// Build one with [`IntercomData::generate`] or [`IntercomData::empty`] and
/// [`IntercomData::upsert`]. Resource names are Intercom's object types: `admin`, `company`,
/// `contact`, `conversation`; an unknown name panics.
#[derive(Debug)]
pub struct IntercomData {
    /// The bearer token clients must present.
    pub(crate) token: String,
    /// The secret webhook signatures are keyed by.
    pub(crate) client_secret: String,
    /// The workspace's id.
    pub(crate) app_id: String,
    /// The objects, already indexed the way the server reads them.
    pub(crate) store: Store,
}

impl Default for IntercomData {
    fn default() -> Self {
        Self::empty()
    }
}

impl IntercomData {
    /// No objects; the default token, client secret and app id.
    pub fn empty() -> Self {
        IntercomData {
            token: DEFAULT_TOKEN.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            app_id: DEFAULT_APP_ID.to_owned(),
            store: Store::default(),
        }
    }

    /// The same data, accepting another access token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// The same data, signing notifications with another client secret.
    pub fn with_client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = secret.into();
        self
    }

    /// The access token clients must present.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Inserts or replaces an object. Missing `created_at` and `updated_at` are set to now
    /// (`updated_at` to `created_at` when only that is given); a conversation's
    /// `conversation_parts` become its parts.
    ///
    /// # Panics
    ///
    /// On an unknown resource name, an object without a string `id`, non-integer timestamps or a
    /// part without an id.
    pub fn upsert(&mut self, resource: &str, object: Value) {
        self.store
            .upsert(Resource::named(resource), object, unix_now());
    }

    /// Replaces a conversation's parts (oldest first).
    ///
    /// # Panics
    ///
    /// When the conversation does not exist or a part has no id.
    pub fn set_parts(&mut self, conversation_id: &str, parts: Vec<Value>) {
        self.store.set_parts(conversation_id, parts);
    }

    /// Ids of a resource, in list order (oldest `created_at` first; admins as inserted).
    pub fn ids(&self, resource: &str) -> Vec<String> {
        self.store.ids(Resource::named(resource))
    }

    /// One object as a retrieve would serve it (a conversation with its newest 500 parts).
    pub fn get(&self, resource: &str, id: &str) -> Option<Value> {
        self.store.get(Resource::named(resource), id)
    }

    /// All of a conversation's parts, oldest first (`None` for an unknown conversation).
    pub fn parts(&self, conversation_id: &str) -> Option<Vec<Value>> {
        self.store.parts(conversation_id)
    }

    /// How many objects a resource has.
    pub fn count(&self, resource: &str) -> usize {
        self.store.count(Resource::named(resource))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_the_api_descriptions() {
        assert_eq!(example("company")["type"], "company");
        assert_eq!(example("contact")["type"], "contact");
        assert_eq!(example("admin")["type"], "admin");
        let conversation = example("conversation");
        assert_eq!(conversation["type"], "conversation");
        assert!(conversation.get("conversation_parts").is_none());
        assert_eq!(example("conversation_part")["type"], "conversation_part");
    }

    #[test]
    #[should_panic(expected = "no Intercom example")]
    fn unknown_examples_panic() {
        example("_source");
    }
}
