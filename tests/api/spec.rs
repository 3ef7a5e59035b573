//! Validates live responses against `openapi/obgate.yaml`.
//!
//! For a request's method and path, the helper finds the operation (path templates matched
//! segment by segment, literal segments preferred), then the documented response for the
//! status (or `default`). It checks: the status is documented, the content type is one the
//! operation lists (an empty body where none is), the JSON body validates against the schema,
//! and every required header is present. Paths the spec does not describe (unknown routes)
//! must answer with the error body of their API family.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::{json, Value};

const SPEC_URI: &str = "urn:obgate:openapi";

pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/obgate.yaml"))
                .expect("read openapi/obgate.yaml");
        serde_yaml::from_str(&text).expect("openapi/obgate.yaml is YAML")
    })
}

fn validator(pointer: &str) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().expect("cache").get(pointer) {
        return v.clone();
    }
    let v = Arc::new(
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .with_resource(SPEC_URI, Draft::Draft202012.create_resource(spec().clone()))
            .build(&json!({"$ref": format!("{SPEC_URI}#{pointer}")}))
            .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}")),
    );
    cache
        .lock()
        .expect("cache")
        .insert(pointer.to_owned(), v.clone());
    v
}

/// A JSON-pointer segment, percent-encoded for use in a URI fragment (RFC 6901 §6).
fn escape(segment: &str) -> String {
    segment
        .replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// The spec path template matching a concrete path, literal segments preferred.
pub fn match_path(path: &str) -> Option<String> {
    let paths = spec()["paths"].as_object()?;
    let segs: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, &String)> = None;
    for template in paths.keys() {
        let tsegs: Vec<&str> = template.split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') && t.ends_with('}') {
                !s.is_empty()
            } else if t == s {
                literal += 1;
                true
            } else {
                false
            }
        });
        if ok && best.is_none_or(|(l, _)| literal > l) {
            best = Some((literal, template));
        }
    }
    best.map(|(_, t)| t.clone())
}

fn resolve(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(
                spec()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => v,
    }
}

/// What a test got back, as the spec check sees it.
pub struct Observed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub headers: &'a reqwest::header::HeaderMap,
    pub body: &'a [u8],
}

fn content_type(o: &Observed) -> Option<String> {
    o.headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

fn check_schema(pointer: &str, body: &[u8], what: &str) {
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{what}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let v = validator(pointer);
    let errors: Vec<String> = v
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: body breaks the spec schema {pointer}: {errors:?}\nbody: {value}"
    );
}

/// Panics with a precise message when the response breaks the contract.
pub fn check(o: &Observed) {
    let what = format!("{} {} → {}", o.method, o.path, o.status);
    assert!(
        o.headers.contains_key("x-fapi-interaction-id"),
        "{what}: missing x-fapi-interaction-id"
    );
    let method = o.method.to_ascii_lowercase();
    let op =
        match_path(o.path).and_then(|t| spec()["paths"][&t].get(&method).map(|op| (t.clone(), op)));
    let Some((template, op)) = op else {
        return check_family(o, &what);
    };
    let status = o.status.to_string();
    let (key, response) = match op["responses"].get(&status) {
        Some(r) => (status, r),
        None => (
            "default".to_owned(),
            op["responses"]
                .get("default")
                .unwrap_or_else(|| panic!("{what}: status not documented for {method} {template}")),
        ),
    };
    let response = resolve(response);
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (name, h) in headers {
            if resolve(h).get("required") == Some(&Value::Bool(true)) {
                assert!(
                    o.headers.contains_key(name.as_str()),
                    "{what}: required header {name} missing"
                );
            }
        }
    }
    match response.get("content").and_then(Value::as_object) {
        None => assert!(
            o.body.is_empty(),
            "{what}: documented without a body, got {}",
            String::from_utf8_lossy(o.body)
        ),
        Some(content) => {
            let ct = content_type(o).unwrap_or_else(|| panic!("{what}: no content type"));
            let media = content.get(&ct).unwrap_or_else(|| {
                panic!(
                    "{what}: content type {ct} not documented ({:?})",
                    content.keys().collect::<Vec<_>>()
                )
            });
            if ct.contains("json") && media.get("schema").is_some() {
                let pointer = format!(
                    "{}/content/{}/schema",
                    response_pointer(&template, &method, &key, op),
                    escape(&ct)
                );
                check_schema(&pointer, o.body, &what);
            }
        }
    }
}

/// JSON pointer to the (resolved) response object.
fn response_pointer(template: &str, method: &str, key: &str, op: &Value) -> String {
    let raw = &op["responses"][key];
    match raw.get("$ref").and_then(Value::as_str) {
        Some(r) => r.trim_start_matches('#').to_owned(),
        None => format!("/paths/{}/{method}/responses/{key}", escape(template)),
    }
}

fn check_family(o: &Observed, what: &str) {
    assert!(
        o.status >= 400,
        "{what}: path not in the spec but answered {}",
        o.status
    );
    let ct = content_type(o);
    let schemas = "/components/schemas";
    if o.path.starts_with("/open-banking") {
        if [401, 404, 405, 406, 415, 429].contains(&o.status) {
            assert!(
                o.body.is_empty(),
                "{what}: OB defines no body for this status"
            );
        } else {
            assert_eq!(ct.as_deref(), Some("application/json"), "{what}");
            check_schema(&format!("{schemas}/OBErrorResponse1"), o.body, what);
        }
    } else if o.path.starts_with("/oauth2") {
        assert_eq!(ct.as_deref(), Some("application/json"), "{what}");
        check_schema(&format!("{schemas}/OAuthError"), o.body, what);
    } else if o.path.starts_with("/api/") {
        assert_eq!(ct.as_deref(), Some("application/json"), "{what}");
        let name = if o.status == 409 {
            "ConflictError"
        } else {
            "AdminError"
        };
        check_schema(&format!("{schemas}/{name}"), o.body, what);
    } else {
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{what}");
        check_schema(&format!("{schemas}/Problem"), o.body, what);
    }
}
