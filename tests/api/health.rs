//! `/healthz`, `/readyz`, `/metrics`.

use crate::helpers::{config, spawn, spawn_on, TestDb};

#[tokio::test]
async fn healthz_and_readyz_answer_on_a_migrated_database() {
    let app = spawn().await;
    let r = app.get("/healthz").await;
    assert_eq!((r.status, r.json()["status"].clone()), (200, "ok".into()));
    let r = app.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "ready");
    let backend = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], backend);
    assert_eq!(
        body["migrations"]["applied"],
        body["migrations"]["expected"]
    );
}

#[tokio::test]
async fn readyz_is_503_until_migrations_are_applied_when_auto_migration_is_off() {
    let db = TestDb::new().await;
    let cfg = config(&db, &[("OBGATE_DATABASE_MIGRATE_ON_START", "false")]);
    let app = spawn_on(db, cfg).await;
    let r = app.get("/readyz").await;
    assert_eq!(r.status, 503);
    let reason = r.json()["reason"].as_str().unwrap().to_owned();
    let expected = app.store.migration_state().await.unwrap().expected;
    assert!(
        reason.contains(&format!("{expected} of {expected} migrations pending"))
            && reason.contains("obgate migrate"),
        "{reason}"
    );
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status, 200);

    app.store.migrate().await.unwrap();
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_unreachable() {
    // Nothing listens on port 1: the PostgreSQL pool is lazy, so the app starts and reports.
    let db = TestDb::new().await;
    let mut cfg = config(&db, &[("OBGATE_DATABASE_MIGRATE_ON_START", "false")]);
    cfg.database_url =
        obgate::config::DatabaseUrl::parse("postgres://obgate@127.0.0.1:1/none").unwrap();
    let app = spawn_on(db, cfg).await;
    let r = app.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "database unreachable");
    assert_eq!(r.json()["database"], "postgres");
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route_and_status() {
    let app = spawn().await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/no/such/thing").await;
    app.admin_get("/api/v0/admin-keys/").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("obgate_http_requests_total{")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no healthz counter in\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(
        text.contains("route=\"unmatched\",status=\"404\""),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/thing"),
        "raw paths must not become labels"
    );
    assert!(
        text.contains("obgate_http_request_duration_seconds_bucket{"),
        "{text}"
    );

    // Made-up methods (HTTP accepts any token) share one label: a client cannot grow the
    // metric set by inventing them.
    for i in 0..20 {
        let m = reqwest::Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        app.send(app.request(m, "/healthz")).await;
    }
    let text = app.get("/metrics").await.text();
    assert!(!text.contains("method=\"X1"), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
}
