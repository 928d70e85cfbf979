//! A fault both fakes can inject: successful answers to some paths rewritten on the way out (a
//! text replaced), as a misbehaving provider or a proxy in front of it would. Tests use it for
//! what the fakes' stores cannot hold: a lone surrogate escape, a number past any range, another
//! object's id in a fetch's answer.

use std::sync::Mutex;

use bytes::Bytes;

/// The rewrites in force: a path prefix, the text to find and its replacement.
#[derive(Debug, Default)]
pub(crate) struct Rewrites(Mutex<Vec<(String, String, String)>>);

impl Rewrites {
    /// From now on, answers to paths starting with `path` have `from` replaced by `to`.
    pub fn add(&self, path: &str, from: &str, to: &str) {
        let mut rules = self.0.lock().unwrap_or_else(|e| e.into_inner());
        rules.push((path.to_owned(), from.to_owned(), to.to_owned()));
    }

    /// Lifts every rewrite.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `body` as answered to `path`, the rewrites for it applied.
    pub fn apply(&self, path: &str, body: Bytes) -> Bytes {
        let rules = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut text: Option<String> = None;
        for (_, from, to) in rules
            .iter()
            .filter(|(p, _, _)| path.starts_with(p.as_str()))
        {
            let current = text.get_or_insert_with(|| String::from_utf8_lossy(&body).into_owned());
            *current = current.replace(from.as_str(), to);
        }
        text.map_or(body, Bytes::from)
    }
}
