//! Validates consent requests and responses against the OFFICIAL UK Open Banking v3.1.11
//! account-information OpenAPI file (`shared/specs/uk-ob-account-info-openapi-v3.1.11.yaml`).
//!
//! `spec.rs` checks obgate against its own `openapi/obgate.yaml`, which obgate's authors wrote:
//! if that file drifts from the standard, both sides drift together and every test still passes.
//! This helper closes that gap: the same traffic is judged against the file Open Banking
//! publishes, untouched.
//!
//! The official file is OpenAPI 3.0, whose schemas are not quite JSON Schema 2020-12. On load,
//! every schema is normalised: `nullable: true` becomes a `null` alternative, boolean
//! `exclusiveMinimum`/`exclusiveMaximum` become the 2020-12 numeric form, `x-` extensions
//! (`x-namespaced-enum`, …) are dropped, and siblings of `$ref` are dropped (3.0 ignores them).
//! The whole document is then registered as one resource, so `#/components/...` references
//! resolve (cycles included), and formats (`date-time` is RFC 3339) are enforced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const OB_URI: &str = "urn:obgate:uk-ob-aisp-v3-1-11";
const OB_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/specs/uk-ob-account-info-openapi-v3.1.11.yaml"
);
/// The only media types whose schemas are checked, in order of preference.
const JSON_MEDIA: [&str; 2] = ["application/json; charset=utf-8", "application/json"];

/// The official document, parsed once and normalised to JSON Schema 2020-12.
fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = std::fs::read_to_string(OB_FILE).unwrap_or_else(|e| {
            panic!(
                "read {OB_FILE}: {e}. The official UK OB file lives in ../shared/specs/ beside \
                 the repository; check the repository out next to shared/"
            )
        });
        // Unquoted status keys (`201:`) arrive as the strings "201".
        let mut doc: Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{OB_FILE} is not YAML: {e}"));
        normalise_document(&mut doc);
        if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
            for schema in schemas.values_mut() {
                normalise_schema(schema, 0);
            }
        }
        doc
    })
}

/// Every value under a `schema` key (parameters, headers, media types) is a schema.
fn normalise_document(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "schema" {
                    normalise_schema(child, 0);
                } else {
                    normalise_document(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_document),
        _ => {}
    }
}

/// OpenAPI 3.0 schema object → JSON Schema 2020-12, in place (idempotent).
fn normalise_schema(v: &mut Value, depth: usize) {
    assert!(
        depth < 64,
        "schema nesting deeper than 64 levels in {OB_FILE}"
    );
    let nullable = match v.as_object_mut() {
        Some(obj) => obj.remove("nullable") == Some(Value::Bool(true)),
        None => return,
    };
    if nullable && v.get("type").is_none() {
        // `{$ref: X, nullable: true}` and friends: X or null.
        let inner = std::mem::take(v);
        *v = json!({"anyOf": [inner, {"type": "null"}]});
        normalise_schema(v, depth + 1);
        return;
    }
    let Some(obj) = v.as_object_mut() else { return };
    if obj.contains_key("$ref") {
        obj.retain(|k, _| k == "$ref");
        return;
    }
    obj.retain(|k, _| !k.starts_with("x-"));
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(exclusive)) = obj.get(flag).cloned() {
            obj.remove(flag);
            if exclusive {
                if let Some(limit) = obj.remove(bound) {
                    obj.insert(flag.to_owned(), limit);
                }
            }
        }
    }
    if nullable {
        if let Some(t) = obj.get_mut("type") {
            if let Some(name) = t.as_str().map(str::to_owned) {
                *t = json!([name, "null"]);
            }
        }
        if let Some(Value::Array(values)) = obj.get_mut("enum") {
            if !values.contains(&Value::Null) {
                values.push(Value::Null);
            }
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = obj.get_mut(key) {
            normalise_schema(child, depth + 1);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = obj.get_mut(key) {
            for child in children {
                normalise_schema(child, depth + 1);
            }
        }
    }
    if let Some(Value::Object(properties)) = obj.get_mut("properties") {
        for child in properties.values_mut() {
            normalise_schema(child, depth + 1);
        }
    }
}

/// A JSON-pointer segment (RFC 6901).
fn segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer percent-encoded for a URI fragment (`{`, space, … are not allowed raw).
fn fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for c in pointer.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(c) {
            out.push(c);
        } else {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Follows `$ref`s from the value at `pointer`: the final pointer and value.
fn follow(mut pointer: String) -> Result<(String, &'static Value), String> {
    for _ in 0..32 {
        let v = document()
            .pointer(&pointer)
            .ok_or_else(|| format!("nothing at #{pointer} in the official file"))?;
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let local = r
                    .strip_prefix('#')
                    .ok_or_else(|| format!("non-local $ref {r}"))?;
                pointer = local.to_owned();
            }
            None => return Ok((pointer, v)),
        }
    }
    Err(format!("$ref chain longer than 32 at #{pointer}"))
}

fn validator(pointer: &str) -> Result<Arc<Validator>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().expect("cache").get(pointer) {
        return Ok(v.clone());
    }
    let v = Arc::new(
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .with_resource(
                OB_URI,
                Draft::Draft202012.create_resource(document().clone()),
            )
            .build(&json!({"$ref": format!("{OB_URI}#{}", fragment(pointer))}))
            .map_err(|e| format!("official schema at #{pointer} does not compile: {e}"))?,
    );
    cache
        .lock()
        .expect("cache")
        .insert(pointer.to_owned(), v.clone());
    Ok(v)
}

/// The official path template for a concrete request path, literal segments preferred.
fn match_template(path: &str) -> Result<String, String> {
    let server = document()["servers"][0]["url"].as_str().unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    let rest = path
        .strip_prefix(server)
        .ok_or_else(|| format!("{path} is not under the official server url {server}"))?;
    let segs: Vec<&str> = rest.split('/').collect();
    let paths = document()["paths"]
        .as_object()
        .expect("official file has paths");
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
        .ok_or_else(|| format!("{path}: no path of the official file matches {rest}"))
}

/// The operation object for (method, concrete path), with its pointer.
fn operation(method: &str, path: &str) -> Result<(String, &'static Value), String> {
    let template = match_template(path)?;
    let method = method.to_ascii_lowercase();
    let pointer = format!("/paths/{}/{method}", segment(&template));
    let op = document()
        .pointer(&pointer)
        .ok_or_else(|| format!("the official file has no {method} on {template}"))?;
    Ok((pointer, op))
}

/// Pointer to the JSON schema of a request body or response object, if it defines one.
fn json_schema_pointer(container_pointer: &str, container: &Value) -> Option<String> {
    let content = container.get("content")?.as_object()?;
    let media = JSON_MEDIA
        .into_iter()
        .find(|m| content.get(*m).is_some_and(|c| c.get("schema").is_some()))?;
    Some(format!(
        "{container_pointer}/content/{}/schema",
        segment(media)
    ))
}

fn validate(schema_pointer: &str, value: &Value, what: &str) -> Result<(), String> {
    // A `$ref` schema is compiled by its component pointer: one validator per component.
    let (pointer, _) = follow(schema_pointer.to_owned())?;
    let v = validator(&pointer)?;
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("at {}: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}: breaks the official schema #{pointer}: {errors:?}\nbody: {value}"
        ))
    }
}

/// Validates a request body against the official file's requestBody schema for (method, path).
pub fn try_check_request(method: &str, path: &str, body: &Value) -> Result<(), String> {
    let what = format!("{method} {path} request");
    let (op_pointer, op) = operation(method, path).map_err(|e| format!("{what}: {e}"))?;
    if op.get("requestBody").is_none() {
        return Err(format!("{what}: the official file defines no request body"));
    }
    let (body_pointer, request_body) = follow(format!("{op_pointer}/requestBody"))?;
    let schema = json_schema_pointer(&body_pointer, request_body)
        .ok_or_else(|| format!("{what}: the official file defines no JSON request schema"))?;
    validate(&schema, body, &what)
}

/// Validates a request body against the official file's requestBody schema for (method, path).
pub fn check_request(method: &str, path: &str, body: &Value) {
    try_check_request(method, path, body).unwrap_or_else(|e| panic!("{e}"));
}

/// Validates a response against the official file's response for (method, path, status).
pub fn try_check_response(
    method: &str,
    path: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let what = format!("{method} {path} → {status}");
    let (op_pointer, op) = operation(method, path).map_err(|e| format!("{what}: {e}"))?;
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{what}: the operation lists no responses"))?;
    let key = status.to_string();
    let key = if responses.contains_key(&key) {
        key
    } else if responses.contains_key("default") {
        "default".to_owned()
    } else {
        return Err(format!(
            "{what}: status {status} is not listed for this operation in the official file \
             (listed: {:?})",
            responses.keys().collect::<Vec<_>>()
        ));
    };
    let (resp_pointer, response) = follow(format!("{op_pointer}/responses/{}", segment(&key)))?;
    if let Some(declared) = response.get("headers").and_then(Value::as_object) {
        for name in declared.keys() {
            let (_, header) = follow(format!("{resp_pointer}/headers/{}", segment(name)))?;
            let required = header.get("required") == Some(&Value::Bool(true));
            if required && !headers.contains_key(name.to_ascii_lowercase().as_str()) {
                return Err(format!("{what}: required header {name} is missing"));
            }
        }
    }
    match json_schema_pointer(&resp_pointer, response) {
        None if body.is_empty() => Ok(()),
        None => Err(format!(
            "{what}: the official file defines no body (#{resp_pointer}), got {}",
            String::from_utf8_lossy(body)
        )),
        Some(schema) if body.is_empty() => Err(format!(
            "{what}: the official file defines a body (#{schema}), got none"
        )),
        Some(schema) => {
            let value: Value = serde_json::from_slice(body).map_err(|e| {
                format!(
                    "{what}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(body)
                )
            })?;
            validate(&schema, &value, &what)
        }
    }
}

/// Validates a response against the official file's response for (method, path, status);
/// panics with the reason when it does not conform.
pub fn check_response(method: &str, path: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
    try_check_response(method, path, status, headers, body).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_official_file_loads_and_describes_the_consent_operations() {
    let consents = "/open-banking/v3.1/aisp/account-access-consents";
    let one = format!("{consents}/aac-123");
    for (method, path) in [
        ("POST", consents),
        ("GET", one.as_str()),
        ("DELETE", one.as_str()),
    ] {
        let (pointer, op) = operation(method, path).unwrap_or_else(|e| panic!("{e}"));
        assert!(op["responses"].is_object(), "{method} {path}: {pointer}");
    }
    assert_eq!(
        match_template(&one).unwrap(),
        "/account-access-consents/{ConsentId}"
    );
    assert!(operation("PUT", &one).is_err());
    assert!(match_template("/open-banking/v3.1/pisp/domestic-payments").is_err());

    let valid = json!({"Data": {"Permissions": ["ReadAccountsBasic"]}, "Risk": {}});
    check_request("POST", consents, &valid);
    let unknown = json!({"Data": {"Permissions": ["ReadEverything"]}, "Risk": {}});
    let err = try_check_request("POST", consents, &unknown).unwrap_err();
    assert!(err.contains("/Data/Permissions/0"), "{err}");
    let bad_date = json!({"Data": {"Permissions": ["ReadAccountsBasic"],
        "ExpirationDateTime": "next tuesday"}, "Risk": {}});
    assert!(
        try_check_request("POST", consents, &bad_date).is_err(),
        "date-time not enforced"
    );
    assert!(
        try_check_request("GET", &one, &valid).is_err(),
        "GET has no request body"
    );

    let mut headers = HeaderMap::new();
    headers.insert(
        "x-fapi-interaction-id",
        "93bac548-d2de-4546-b106-880a5018460d".parse().unwrap(),
    );
    let created = json!({
        "Data": {
            "ConsentId": "aac-123",
            "CreationDateTime": "2024-05-01T10:43:07+00:00",
            "Status": "AwaitingAuthorisation",
            "StatusUpdateDateTime": "2024-05-01T10:43:07Z",
            "Permissions": ["ReadAccountsBasic"]
        },
        "Risk": {},
        "Links": {"Self": "https://bank.example/open-banking/v3.1/aisp/account-access-consents/aac-123"},
        "Meta": {}
    });
    let created = created.to_string();
    check_response("POST", consents, 201, &headers, created.as_bytes());
    check_response("GET", &one, 200, &headers, created.as_bytes());
    check_response("DELETE", &one, 204, &headers, b"");
    let error = json!({"Code": "400 BadRequest", "Message": "Bad request", "Errors": [
        {"ErrorCode": "UK.OBIE.Field.Invalid", "Message": "Permissions are invalid"}]});
    check_response(
        "POST",
        consents,
        400,
        &headers,
        error.to_string().as_bytes(),
    );

    assert!(try_check_response("DELETE", &one, 204, &HeaderMap::new(), b"").is_err());
    assert!(try_check_response("DELETE", &one, 204, &headers, b"{}").is_err());
    assert!(try_check_response("GET", &one, 200, &headers, b"").is_err());
    assert!(try_check_response("GET", &one, 418, &headers, b"").is_err());
    assert!(try_check_response("POST", consents, 201, &headers, br#"{"Data": {}}"#).is_err());
}
