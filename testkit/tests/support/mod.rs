//! A minimal HTTP/1.1 client for talking to the fakes: one request per connection, read to EOF.

#![allow(dead_code)]

pub mod intercom;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET base + path` with an optional raw `Authorization` value.
pub async fn get(base_url: &str, path: &str, authorization: Option<&str>) -> Reply {
    let auth = authorization.map(|a| ("Authorization", a));
    send(base_url, "GET", path, auth.as_slice(), None).await
}

/// Any request: extra header lines and an optional body (sent with its `Content-Length`).
pub async fn send(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let host = base_url
        .strip_prefix("http://")
        .expect("an http:// base URL");
    let mut stream = TcpStream::connect(host).await.expect("connect to the fake");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&bytes).await.expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read reply");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A client bound to one fake and key.
pub struct Client {
    pub base_url: String,
    pub key: String,
}

impl Client {
    pub fn new(base_url: String, key: &str) -> Self {
        Client {
            base_url,
            key: key.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        get(&self.base_url, path, Some(&format!("Bearer {}", self.key))).await
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

    /// Walks a list with `starting_after` and returns every object, checking each page.
    pub async fn walk(&self, path: &str, limit: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut all: Vec<Value> = Vec::new();
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(last) = all.last() {
                url.push_str(&format!("&starting_after={}", last["id"].as_str().unwrap()));
            }
            let page = self.ok(&url).await;
            assert_eq!(page["object"], "list");
            let data = page["data"].as_array().unwrap().clone();
            assert!(data.len() <= limit);
            let has_more = page["has_more"].as_bool().unwrap();
            if has_more {
                assert_eq!(data.len(), limit, "a page with more after it is full");
            }
            all.extend(data);
            if !has_more {
                return all;
            }
        }
    }
}

pub fn ids(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for query values.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
