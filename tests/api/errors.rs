//! Bad input and failures get a clear error in the body family of their API.

use std::time::Duration;

use futures_util::stream;
use reqwest::{Body, Method};

use crate::helpers::{spawn, spawn_with};

#[tokio::test]
async fn malformed_json_is_a_400_in_the_admin_shape() {
    let app = spawn().await;
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    assert_eq!(r.status, 400);
    let b = r.json();
    assert_eq!(b["Code"], "invalid_json");
    assert_eq!(b["Type"], "Request Error");
    assert!(
        b["Message"]
            .as_str()
            .unwrap()
            .starts_with("request body is not valid JSON"),
        "{b}"
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused() {
    let app = spawn().await;
    for body in ["[\"ops\"]", "\"ops\"", "42"] {
        let r = app
            .send(
                app.admin(Method::POST, "/api/v0/admin-keys")
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.json()["Message"],
            "the request body must be a JSON object"
        );
    }
}

#[tokio::test]
async fn missing_wrong_and_unknown_fields_are_named() {
    let app = spawn().await;
    let post = |body: &'static str| {
        app.admin(Method::POST, "/api/v0/admin-keys")
            .header("content-type", "application/json")
            .body(body)
    };
    let r = app.send(post("{}")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["Message"]["name"][0],
        "Missing data for required field."
    );
    let r = app.send(post("{\"name\": 5}")).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["Message"]["name"][0]
        .as_str()
        .unwrap()
        .contains("expected a string"));
    let r = app.send(post("{\"name\": \"ops\", \"nmae\": \"x\"}")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Message"]["nmae"][0], "Unknown field.");
}

#[tokio::test]
async fn wrong_content_type_is_a_415() {
    let app = spawn().await;
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .header("content-type", "text/plain")
                .body("{\"name\":\"ops\"}"),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["Code"], "unsupported_media_type");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .body("{\"name\":\"ops\"}"),
        )
        .await;
    assert_eq!(r.status, 415);
}

#[tokio::test]
async fn oversized_bodies_are_a_413_with_or_without_content_length() {
    let app = spawn_with(&[("OBGATE_HTTP_BODY_LIMIT", "2KiB")]).await;
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(4096));
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["Code"], "payload_too_large");

    // Chunked: the limit is enforced while reading.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(512)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .header("content-type", "application/json")
                .body(Body::wrap_stream(stream::iter(chunks))),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["Code"], "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_are_404_in_each_family() {
    let app = spawn().await;
    let r = app.admin_get("/api/v0/nope").await;
    assert_eq!(
        (r.status, r.json()["Code"].as_str()),
        (404, Some("not_found"))
    );
    let r = app.get("/oauth2/nope").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("invalid_request"))
    );
    let r = app.get("/open-banking/v3.1/aisp/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty(), "OB 404 has no body");
    let r = app.get("/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["code"], "not_found");
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let app = spawn().await;
    let r = app.send(app.request(Method::DELETE, "/healthz")).await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("GET"));
    assert_eq!(r.json()["code"], "method_not_allowed");
    let r = app.send(app.admin(Method::PUT, "/api/v0/audit")).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["Code"], "method_not_allowed");
    // Without credentials too: the method is what to fix, not the credentials.
    for path in ["/api/v0/audit", "/open-banking/v3.1/aisp/accounts"] {
        let r = app.send(app.request(Method::DELETE, path)).await;
        assert_eq!(r.status, 405, "DELETE {path}");
        assert!(r.header("allow").unwrap().contains("GET"), "DELETE {path}");
        // The right method without credentials is still refused.
        assert_eq!(app.send(app.request(Method::GET, path)).await.status, 401);
    }
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_gets_a_408() {
    let app = spawn_with(&[("OBGATE_HTTP_REQUEST_TIMEOUT", "300ms")]).await;
    // The body arrives after the deadline.
    let slow = stream::once(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok::<_, std::io::Error>("{\"name\": \"slow\"}".to_owned())
    });
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .header("content-type", "application/json")
                .body(Body::wrap_stream(slow)),
        )
        .await;
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["Code"], "request_timeout");
    // Nothing was created.
    let keys = app.admin_get("/api/v0/admin-keys").await.json();
    assert!(keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["name"] != "slow"));
}

#[tokio::test]
async fn an_internal_failure_is_a_500_with_an_error_id_and_no_detail() {
    let app = spawn().await;
    // Damage the schema behind obgate's back.
    app.db
        .exec("ALTER TABLE admin_keys RENAME TO admin_keys_moved")
        .await;
    let r = app.admin_get("/api/v0/admin-keys").await;
    assert_eq!(r.status, 500);
    let b = r.json();
    assert_eq!(b["Code"], "internal_error");
    assert_eq!(b["Type"], "Server Error");
    let msg = b["Message"].as_str().unwrap();
    assert!(msg.contains("error id "), "{msg}");
    for leak in ["admin_keys", "sqlite", "postgres", "relation", "table"] {
        assert!(
            !msg.to_lowercase().contains(leak),
            "500 leaks detail: {msg}"
        );
    }
    app.db
        .exec("ALTER TABLE admin_keys_moved RENAME TO admin_keys")
        .await;
    assert_eq!(app.admin_get("/api/v0/admin-keys").await.status, 200);
}
