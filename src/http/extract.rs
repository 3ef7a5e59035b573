//! Extractors whose rejections are [`ApiError`]s, so bad input gets our error bodies.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON body. Wrong content type → 415; not JSON → 400 `invalid_json`; wrong shape → 400
/// listing the field (`Missing data for required field.` for absent ones); too big → 413.
pub struct AppJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(ct) {
            return Err(ApiError::UnsupportedMediaType {
                message: format!(
                    "expected Content-Type: application/json, got {}",
                    if ct.is_empty() { "none" } else { ct }
                ),
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    code: "unreadable_body",
                    message: "the request body could not be read".into(),
                }
            }
        })?;
        // Every obgate body is a JSON object; serde would otherwise read a struct from an array.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(ApiError::BadRequest {
                code: "invalid_body",
                message: "the request body must be a JSON object".into(),
            });
        }
        parse_json(&bytes).map(AppJson)
    }
}

/// Deserializes JSON, turning serde's error into the field it concerns.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::BadRequest {
                    code: "invalid_json",
                    message: format!("request body is not valid JSON: {inner}"),
                });
            }
            Err(ApiError::Validation {
                code: "invalid_body",
                fields: vec![field_error(&path, &inner.to_string())],
            })
        }
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() || parent == "." {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

fn backticked(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.strip_prefix(prefix)?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

fn field_error(path: &str, msg: &str) -> FieldError {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if let Some(name) = backticked(msg, "missing field `") {
        return FieldError::missing(join(path, &name));
    }
    if let Some(name) = backticked(msg, "unknown field `") {
        // The path already ends at the unknown field.
        let field = if path.is_empty() || path == "." {
            name
        } else {
            path.to_owned()
        };
        return FieldError::invalid(field, "Unknown field.");
    }
    let field = if path.is_empty() || path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    FieldError::invalid(field, msg)
}

/// A query string. Unknown or malformed parameters → 400 `invalid_query` naming the parameter.
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de)
            .map(AppQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let mut fe = field_error(&path, &err.into_inner().to_string());
                fe.missing = false;
                ApiError::Validation {
                    code: "invalid_query",
                    fields: vec![fe],
                }
            })
    }
}

/// The `limit` query parameter of a listing: 1–500, default 50.
pub fn page_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    match limit.map(str::parse::<u32>) {
        None => Ok(50),
        Some(Ok(n)) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_field(
            "invalid_query",
            "limit",
            "expected a whole number from 1 to 500",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Inner,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn fields(json: &str) -> Vec<FieldError> {
        match parse_json::<Body>(json.as_bytes()) {
            Err(ApiError::Validation { fields, .. }) => fields,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(
            fields(r#"{"inner": {"count": 1}}"#),
            vec![FieldError::missing("name")]
        );
        assert_eq!(
            fields(r#"{"name": "a", "inner": {}}"#),
            vec![FieldError::missing("inner.count")]
        );
        let f = fields(r#"{"name": "a", "inner": {"count": -1}}"#);
        assert_eq!(f[0].field, "inner.count");
        assert!(
            f[0].message.starts_with("invalid value: integer `-1`"),
            "{}",
            f[0].message
        );
        assert_eq!(
            fields(r#"{"name": "a", "inner": {"count": 1}, "x": 1}"#)[0].field,
            "x"
        );
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        assert!(matches!(
            parse_json::<Body>(b"{\"name\": "),
            Err(ApiError::BadRequest {
                code: "invalid_json",
                ..
            })
        ));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
    }
}
