//! One error type for the whole service, rendered in the body family of the API it occurs on.
//!
//! Handlers return [`ApiError`]. Its `IntoResponse` attaches the error to the response, and the
//! `render_errors` middleware (see [`crate::http`]) renders it for the request's path:
//!
//! | path | family | body |
//! |---|---|---|
//! | `/oauth2/*` | [`Family::OAuth`] | RFC 6749 §5.2 `{"error", "error_description"}` |
//! | `/open-banking/*` | [`Family::OpenBanking`] | `OBErrorResponse1`, or no body where the OB file defines none (401, 404, 405, 406, 415, 429) |
//! | `/api/*` | [`Family::Admin`] | Bond style `{"Message", "Status", "Code", "Type"}`; 409 as `{"type", "code", "message"}` |
//! | anything else | [`Family::Problem`] | RFC 9457 `application/problem+json` |
//!
//! Internal failures get a fresh error id: the response carries only the id, the log carries
//! the detail under the same id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::store::StoreError;

/// Which API family a path belongs to, and so which error body it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `/oauth2/*`: RFC 6749 errors.
    OAuth,
    /// `/open-banking/*`: UK Open Banking `OBErrorResponse1`.
    OpenBanking,
    /// `/api/*`: bank-facing API, Bond's shapes.
    Admin,
    /// Everything else: RFC 9457 problem details.
    Problem,
}

impl Family {
    /// The family of a request path.
    pub fn of(path: &str) -> Self {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/oauth2") {
            Family::OAuth
        } else if under("/open-banking") {
            Family::OpenBanking
        } else if under("/api") {
            Family::Admin
        } else {
            Family::Problem
        }
    }
}

/// One invalid or missing input field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field in the request (`addresses[0].zip_code`, `limit`).
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
    /// The field was absent rather than malformed.
    pub missing: bool,
}

impl FieldError {
    /// A malformed field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            missing: false,
        }
    }

    /// A required field that was not sent; Bond's wording.
    pub fn missing(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: "Missing data for required field.".into(),
            missing: true,
        }
    }
}

/// One entry of an Open Banking `OBErrorResponse1.Errors` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObError {
    /// A `UK.OBIE.*` code.
    pub code: &'static str,
    /// What is wrong, for the TPP developer.
    pub message: String,
    /// JSON path of the field (`Data.Permissions`), when a field is at fault.
    pub path: Option<String>,
}

impl ObError {
    /// An error about a field.
    pub fn field(code: &'static str, path: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            path: Some(path.to_owned()),
        }
    }
}

/// Every way a request can fail.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    /// An Open Banking error with its `UK.OBIE.*` codes (400 or 403 with a body, as the UK OB
    /// specification defines them).
    #[error("{}", .errors.first().map(|e| e.message.as_str()).unwrap_or("open banking error"))]
    OpenBanking {
        /// HTTP status.
        status: StatusCode,
        /// The errors; at least one.
        errors: Vec<ObError>,
    },
    /// 400: one or more fields are missing or malformed; every one is listed.
    #[error("validation failed")]
    Validation {
        /// Machine-readable code, e.g. `invalid_query`.
        code: &'static str,
        /// The bad fields.
        fields: Vec<FieldError>,
    },
    /// 400: the request as a whole is unusable (e.g. the body is not JSON).
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code, e.g. `invalid_json`.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// 401: no or bad credentials.
    #[error("{message}")]
    Unauthorized {
        /// What to send instead.
        message: String,
        /// The `WWW-Authenticate` challenge, when the scheme calls for one.
        challenge: Option<&'static str>,
    },
    /// An RFC 6749 §5.2 error with its own code (`invalid_grant`, `invalid_scope`, …).
    #[error("{error}: {description}")]
    OAuth {
        /// HTTP status (400 for all but `invalid_client`).
        status: StatusCode,
        /// The RFC 6749 / RFC 9396 error code.
        error: &'static str,
        /// What failed, for the TPP developer.
        description: String,
    },
    /// 403: authenticated but not allowed.
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// Which check failed.
        message: String,
    },
    /// 404: no such resource or route.
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
    },
    /// 405: the route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with existing state.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// 413: the body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not in a supported media type.
    #[error("{message}")]
    UnsupportedMediaType {
        /// What content type to send.
        message: String,
    },
    /// 429: a rate limit or a lockout; retry after `retry_after`.
    #[error("{message}")]
    TooManyRequests {
        /// `rate_limited` or `temporarily_locked`.
        code: &'static str,
        /// Which limit, and what to do.
        message: String,
        /// Sent as `Retry-After` (whole seconds, rounded up).
        retry_after: std::time::Duration,
    },
    /// 408: the request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// 502: the bank's account service could not be reached.
    #[error("bad gateway")]
    BadGateway,
    /// 504: the bank's account service did not answer in time.
    #[error("gateway timeout")]
    GatewayTimeout,
    /// 503: a dependency (the database) is unavailable; retry later.
    #[error("service unavailable")]
    Unavailable {
        /// Error id; the detail is in the log under it.
        id: String,
    },
    /// 500: a bug or an unexpected failure; the detail is in the log under `id`.
    #[error("internal error {id}")]
    Internal {
        /// Error id to quote to support.
        id: String,
    },
}

impl ApiError {
    /// Logs `detail` under a new error id and returns the opaque 500.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        tracing::error!(error_id = %id, error = %detail, "internal error");
        ApiError::Internal { id }
    }

    /// The 503 for a dependency that is away for a moment (the detail is logged by the caller).
    pub fn unavailable() -> Self {
        ApiError::Unavailable {
            id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// A single-field validation failure.
    pub fn invalid_field(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Validation {
            code,
            fields: vec![FieldError::invalid(field, message)],
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::OAuth { status, .. } | ApiError::OpenBanking { status, .. } => *status,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Machine-readable code used by the Admin and Problem families.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::TooManyRequests { code, .. } => code,
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::OAuth { error, .. } => error,
            ApiError::OpenBanking { errors, .. } => errors
                .first()
                .map(|e| e.code)
                .unwrap_or("UK.OBIE.UnexpectedError"),
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::Timeout => "request_timeout",
            ApiError::BadGateway => "upstream_unreachable",
            ApiError::GatewayTimeout => "upstream_timeout",
            ApiError::Unavailable { .. } => "service_unavailable",
            ApiError::Internal { .. } => "internal_error",
        }
    }

    /// A sentence for a human: what went wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            ApiError::Validation { fields, .. } => {
                let list: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect();
                format!("invalid request: {}", list.join("; "))
            }
            ApiError::OAuth { description, .. } => description.clone(),
            ApiError::OpenBanking { errors, .. } => errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::BadRequest { message, .. }
            | ApiError::Unauthorized { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::NotFound { message }
            | ApiError::Conflict { message, .. }
            | ApiError::TooManyRequests { message, .. }
            | ApiError::UnsupportedMediaType { message } => message.clone(),
            ApiError::MethodNotAllowed => {
                "this route does not accept that method; see the Allow header".into()
            }
            ApiError::PayloadTooLarge => {
                "request body is larger than this server accepts (http.body_limit)".into()
            }
            ApiError::Timeout => "request took longer than the server's timeout".into(),
            ApiError::BadGateway => {
                "the bank's account service cannot be reached; retry later".into()
            }
            ApiError::GatewayTimeout => {
                "the bank's account service did not answer in time; retry later".into()
            }
            ApiError::Unavailable { id } => {
                format!("service temporarily unavailable, retry later (error id {id})")
            }
            ApiError::Internal { id } => {
                format!("internal error; quote error id {id} to the bank's support")
            }
        }
    }

    fn error_id(&self) -> Option<&str> {
        match self {
            ApiError::Internal { id } | ApiError::Unavailable { id } => Some(id),
            _ => None,
        }
    }

    /// Renders the body of `family` for this error.
    pub fn render(&self, family: Family) -> Response {
        let status = self.status();
        let (content_type, body) = match family {
            Family::OAuth => ("application/json", Some(self.oauth_body())),
            Family::OpenBanking => ("application/json", self.open_banking_body()),
            Family::Admin => ("application/json", Some(self.admin_body())),
            Family::Problem => ("application/problem+json", Some(self.problem_body())),
        };
        let mut res = match body {
            Some(b) => (
                status,
                [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
                b.to_string(),
            )
                .into_response(),
            None => status.into_response(),
        };
        if let ApiError::Unauthorized {
            challenge: Some(challenge),
            ..
        } = self
        {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        let retry_after = match self {
            ApiError::TooManyRequests { retry_after, .. } => Some(retry_after_secs(*retry_after)),
            ApiError::Unavailable { .. } => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }

    fn oauth_body(&self) -> Value {
        if let ApiError::OAuth {
            error, description, ..
        } = self
        {
            return json!({"error": error, "error_description": description});
        }
        let error = match self.status().as_u16() {
            401 => "invalid_client",
            403 => "access_denied",
            429 => self.code(),
            503 => "temporarily_unavailable",
            500..=599 => "server_error",
            _ => "invalid_request",
        };
        json!({"error": error, "error_description": self.message()})
    }

    fn open_banking_body(&self) -> Option<Value> {
        let status = self.status();
        if matches!(status.as_u16(), 401 | 404 | 405 | 406 | 415 | 429) {
            return None;
        }
        let errors: Vec<Value> = match self {
            ApiError::OpenBanking { errors, .. } => errors
                .iter()
                .map(|e| {
                    let mut v = json!({"ErrorCode": e.code, "Message": truncate(&e.message, 500)});
                    if let (Some(p), Some(obj)) = (&e.path, v.as_object_mut()) {
                        obj.insert("Path".into(), json!(truncate(p, 500)));
                    }
                    v
                })
                .collect(),
            ApiError::Validation { fields, .. } => fields
                .iter()
                .map(|f| {
                    let code = if f.missing {
                        "UK.OBIE.Field.Missing"
                    } else {
                        "UK.OBIE.Field.Invalid"
                    };
                    json!({"ErrorCode": code, "Message": truncate(&f.message, 500), "Path": truncate(&f.field, 500)})
                })
                .collect(),
            ApiError::BadRequest { .. } => {
                vec![json!({"ErrorCode": "UK.OBIE.Resource.InvalidFormat", "Message": truncate(&self.message(), 500)})]
            }
            ApiError::Forbidden { code, message } => {
                vec![json!({"ErrorCode": code, "Message": truncate(message, 500)})]
            }
            ApiError::PayloadTooLarge => {
                vec![json!({"ErrorCode": "UK.OBIE.Field.Invalid", "Message": self.message()})]
            }
            _ => vec![json!({"ErrorCode": "UK.OBIE.UnexpectedError", "Message": truncate(&self.message(), 500)})],
        };
        let id = self
            .error_id()
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let reason = status.canonical_reason().unwrap_or("Error");
        Some(json!({
            "Code": truncate(&format!("{} {}", status.as_u16(), reason), 40),
            "Id": id,
            "Message": truncate(&self.message(), 500),
            "Errors": errors,
        }))
    }

    fn admin_body(&self) -> Value {
        match self {
            ApiError::Conflict { code, message } => {
                json!({"type": "RESOURCE_CONFLICT", "code": code, "message": message})
            }
            _ => {
                let message = match self {
                    ApiError::Validation { fields, .. } => {
                        let mut map = Map::new();
                        for f in fields {
                            let entry = map
                                .entry(f.field.clone())
                                .or_insert_with(|| Value::Array(Vec::new()));
                            if let Value::Array(list) = entry {
                                list.push(Value::String(f.message.clone()));
                            }
                        }
                        Value::Object(map)
                    }
                    _ => Value::String(self.message()),
                };
                let kind = match self.status().as_u16() {
                    401 => "Authentication Error",
                    403 => "Permission Error",
                    500..=599 => "Server Error",
                    _ => "Request Error",
                };
                json!({"Message": message, "Status": self.status().as_u16(), "Code": self.code(), "Type": kind})
            }
        }
    }

    fn problem_body(&self) -> Value {
        let status = self.status();
        let mut body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.message(),
            "code": self.code(),
        });
        if let (Some(id), Some(obj)) = (self.error_id(), body.as_object_mut()) {
            obj.insert("error_id".into(), Value::String(id.to_owned()));
        }
        body
    }

    /// The error a framework-generated response (no JSON body of ours) stands for.
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            404 => ApiError::NotFound {
                message: "no such route; see /openapi.yaml for the API".into(),
            },
            405 => ApiError::MethodNotAllowed,
            408 => ApiError::Timeout,
            413 => ApiError::PayloadTooLarge,
            415 => ApiError::UnsupportedMediaType {
                message: "unsupported content type; send application/json".into(),
            },
            400..=499 => ApiError::BadRequest {
                code: "bad_request",
                message: "the request could not be understood".into(),
            },
            _ => ApiError::internal(format!("framework answered {status} without detail")),
        }
    }
}

/// Seconds a client is told to wait when the database is away: long enough not to hammer a
/// recovering database, short enough that a retry lands soon after it is back.
const UNAVAILABLE_RETRY_AFTER: u64 = 2;

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars()
            .take(max - 1)
            .chain(std::iter::once('…'))
            .collect()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Rendered as a problem document until `render_errors` re-renders it for its family.
        let mut res = self.render(Family::Problem);
        res.extensions_mut().insert(self);
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                let id = uuid::Uuid::new_v4().to_string();
                tracing::error!(error_id = %id, error = %e, "database unavailable");
                ApiError::Unavailable { id }
            }
            StoreError::Conflict(what) => ApiError::Conflict {
                code: "conflict",
                message: format!("conflicts with an existing resource ({what})"),
            },
            other => ApiError::internal(other),
        }
    }
}

/// A wait as `Retry-After` seconds: rounded up, at least 1 (a client told 0 would retry at
/// once, into the same refusal).
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_the_path_prefix_exactly() {
        assert_eq!(Family::of("/oauth2/token"), Family::OAuth);
        assert_eq!(Family::of("/oauth2"), Family::OAuth);
        assert_eq!(Family::of("/oauth2x"), Family::Problem);
        assert_eq!(
            Family::of("/open-banking/v3.1/aisp/accounts"),
            Family::OpenBanking
        );
        assert_eq!(Family::of("/api/v0/audit"), Family::Admin);
        assert_eq!(Family::of("/apiary"), Family::Problem);
        assert_eq!(Family::of("/healthz"), Family::Problem);
    }

    #[test]
    fn validation_lists_every_field_in_bond_shape() {
        let e = ApiError::Validation {
            code: "kyc_post_schema",
            fields: vec![
                FieldError::missing("ssn"),
                FieldError::invalid("ip", "not an IP address"),
            ],
        };
        assert_eq!(
            e.admin_body(),
            json!({"Message": {"ssn": ["Missing data for required field."], "ip": ["not an IP address"]},
                   "Status": 400, "Code": "kyc_post_schema", "Type": "Request Error"})
        );
        let ob = e.open_banking_body().unwrap_or_default();
        assert_eq!(ob["Errors"][0]["ErrorCode"], "UK.OBIE.Field.Missing");
        assert_eq!(ob["Errors"][1]["Path"], "ip");
    }

    #[test]
    fn internal_errors_carry_only_an_id() {
        let e = ApiError::internal("connection string postgres://secret@db");
        let body = e.oauth_body().to_string();
        assert!(!body.contains("secret"));
        assert_eq!(e.oauth_body()["error"], "server_error");
    }
}
