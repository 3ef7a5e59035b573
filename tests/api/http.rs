//! Interaction ids, cache headers, graceful shutdown.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Body, Method};

use crate::helpers::spawn;

#[tokio::test]
async fn interaction_id_is_echoed_or_generated_on_every_response() {
    let app = spawn().await;
    let r = app
        .send(app.request(Method::GET, "/healthz").header(
            "x-fapi-interaction-id",
            "93bac548-d2de-4546-b106-880a5018460d",
        ))
        .await;
    assert_eq!(
        r.header("x-fapi-interaction-id"),
        Some("93bac548-d2de-4546-b106-880a5018460d")
    );

    let r = app.get("/nope").await;
    let generated = r.header("x-fapi-interaction-id").unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    // An unusable value (too long, or odd characters) is replaced, not echoed.
    let r = app
        .send(
            app.request(Method::GET, "/healthz")
                .header("x-fapi-interaction-id", "a b<script>"),
        )
        .await;
    assert!(uuid::Uuid::parse_str(r.header("x-fapi-interaction-id").unwrap()).is_ok());

    // Errors carry it too, and the audit row of a refused key records it.
    let r = app
        .send(
            app.request(Method::GET, "/api/v0/audit")
                .bearer_auth("obg_wrong")
                .header("x-fapi-interaction-id", "trace-401"),
        )
        .await;
    assert_eq!(
        (r.status, r.header("x-fapi-interaction-id")),
        (401, Some("trace-401"))
    );
    let rows = app.audit("interaction_id=trace-401").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["action"], "admin.authenticate");
}

#[tokio::test]
async fn api_responses_are_never_cached_and_probes_are_left_alone() {
    let app = spawn().await;
    for r in [
        app.admin_get("/api/v0/audit").await,
        app.get("/api/v0/audit").await,
        app.get("/oauth2/token").await,
    ] {
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
    }
    assert_eq!(app.get("/healthz").await.header("cache-control"), None);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let mut app = spawn().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    tx.send(Ok("{\"name\": ".into())).await.unwrap();
    let req = app
        .admin(Method::POST, "/api/v0/admin-keys")
        .header("content-type", "application/json")
        .body(Body::wrap_stream(tokio_stream_from(rx)));
    let in_flight = tokio::spawn(req.send());
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.trigger_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server is draining: new connections are refused.
    let fresh = reqwest::Client::new().get(app.url("/healthz")).send().await;
    assert!(
        fresh.is_err(),
        "new connections must be refused while draining"
    );

    tx.send(Ok("\"during-shutdown\"}".into())).await.unwrap();
    drop(tx);
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    // The work was committed (the server closed its pool on the way out: open a new one).
    let store = obgate::store::connect(&crate::helpers::config(&app.db, &[]))
        .await
        .unwrap();
    let keys = store.list_admin_keys().await.unwrap();
    assert!(keys.iter().any(|k| k.name == "during-shutdown"));
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
