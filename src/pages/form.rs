//! Reading the pages' `application/x-www-form-urlencoded` bodies, which may repeat a field
//! (`account_id` once per chosen account) — something serde's form extractor cannot express.

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;

/// A parsed form: every (name, value) pair in order.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses the body when the request says it is a form; `None` otherwise.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Option<Self> {
        let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return None;
        }
        Some(Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    /// The first value of `name`.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
