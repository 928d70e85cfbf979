//! A client for the fake Intercom: bearer token and `Intercom-Version` on every request, and
//! walks that follow `pages.next.starting_after` the way a careful client does (percent-encoded).

use serde_json::Value;
use supasaasy_testkit::fake_intercom::{FakeIntercom, API_VERSION};

use super::{encode, send, Reply};

/// A client bound to one fake and token.
pub struct Ic {
    pub base_url: String,
    pub token: String,
}

impl Ic {
    pub fn of(fake: &FakeIntercom) -> Self {
        Ic {
            base_url: fake.base_url(),
            token: fake.token().to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let auth = format!("Bearer {}", self.token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Intercom-Version", API_VERSION),
        ];
        send(&self.base_url, "GET", path, &headers, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let auth = format!("Bearer {}", self.token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Intercom-Version", API_VERSION),
        ];
        let body = body.to_string();
        send(
            &self.base_url,
            "POST",
            path,
            &headers,
            Some(body.as_bytes()),
        )
        .await
    }

    /// A successful JSON answer.
    pub async fn ok(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        assert_eq!(
            reply.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    /// A successful JSON answer to a POST.
    pub async fn ok_post(&self, path: &str, body: &Value) -> Value {
        let reply = self.post(path, body).await;
        assert_eq!(
            reply.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    /// Walks a cursor list (`key` holds the objects) and returns every object, checking each
    /// page's `pages` object.
    pub async fn walk(&self, path: &str, key: &str, per_page: usize) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{path}?per_page={per_page}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&starting_after={}", encode(c)));
            }
            let page = self.ok(&url).await;
            cursor = check_page(&page, key, per_page, &mut all);
            if cursor.is_none() {
                return all;
            }
        }
    }

    /// Runs a search to the end and returns every object found.
    pub async fn search_all(
        &self,
        path: &str,
        key: &str,
        query: Value,
        per_page: usize,
    ) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pagination = serde_json::json!({"per_page": per_page});
            if let Some(c) = &cursor {
                pagination["starting_after"] = Value::from(c.as_str());
            }
            let body = serde_json::json!({"query": query, "pagination": pagination});
            let page = self.ok_post(path, &body).await;
            cursor = check_page(&page, key, per_page, &mut all);
            if cursor.is_none() {
                return all;
            }
        }
    }
}

/// Checks one page against what came before, adds its objects to `all`, returns the next cursor.
fn check_page(page: &Value, key: &str, per_page: usize, all: &mut Vec<Value>) -> Option<String> {
    let data = page[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {page}"));
    let pages = &page["pages"];
    assert_eq!(pages["type"], "pages");
    assert_eq!(pages["per_page"], per_page);
    assert_eq!(
        pages["page"],
        all.len() / per_page + 1,
        "page numbers count up"
    );
    let total = page["total_count"].as_u64().unwrap() as usize;
    assert_eq!(pages["total_pages"], total.div_ceil(per_page));
    all.extend(data.iter().cloned());
    let next = pages.get("next")?;
    assert_eq!(data.len(), per_page, "a page with more after it is full");
    assert_eq!(next["page"], pages["page"].as_u64().unwrap() + 1);
    Some(next["starting_after"].as_str().unwrap().to_owned())
}

pub fn ids(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}
