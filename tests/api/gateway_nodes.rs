//! Two gateway nodes on one database: a change made through node A ends access on node B,
//! whose decisions come from its in-memory caches.
//!
//! On PostgreSQL node B hears of each change through `LISTEN/NOTIFY`, so with a cache TTL of
//! five minutes the denial still arrives within moments. SQLite is one node by design; a
//! second process on the same file has no change feed, and there the guarantee is the TTL:
//! the test runs with a one-second TTL and checks the denial arrives within it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::gateway::{access, bound_token, metric, AISP};
use crate::helpers::{postgres_url, spawn_with};
use crate::kyc::FAST;
use crate::oauth::form;

/// A second obgate process, killed when dropped.
struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_node(database_url: &str, public_url: &str, ttl: &str) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_obgate"))
        .env_clear()
        .env("OBGATE_DATABASE_URL", database_url)
        .env("OBGATE_DATABASE_MAX_CONNECTIONS", "5")
        .env("OBGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("OBGATE_PUBLIC_URL", public_url)
        .env("OBGATE_GATEWAY_CACHE_TTL", ttl)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("{}/readyz", node.base)).await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "node B did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node
}

/// GETs `/accounts` on `base` until `done(status)`, for at most `within`; the last status
/// and how long it took.
async fn until(
    base: &str,
    token: &str,
    within: Duration,
    done: impl Fn(u16) -> bool,
) -> (u16, Duration) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let status = http
            .get(format!("{base}{AISP}/accounts"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if done(status) || started.elapsed() > within {
            return (status, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node's count of hits in one of its decision caches, from `/metrics`.
async fn cache_hits(base: &str, cache: &str) -> f64 {
    let m = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(
        &m,
        &format!(r#"obgate_gateway_cache_lookups_total{{cache="{cache}",result="hit"}}"#),
    )
}

/// Reads `/accounts` on `base` with `token` until a read is served from node B's consent
/// cache (the hit counter moves).
async fn warm(base: &str, token: &str) {
    let hits = || cache_hits(base, "consent");
    let before = hits().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = until(base, token, Duration::ZERO, |_| true).await;
        assert_eq!(status, 200);
        if hits().await > before + 1.0 {
            return;
        }
        assert!(Instant::now() < deadline, "node B never served from cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_change_on_node_a_denies_on_node_b() {
    let postgres = postgres_url().is_some();
    let (ttl, within) = if postgres {
        ("300s", Duration::from_secs(2))
    } else {
        ("1s", Duration::from_secs(4))
    };
    let public = "http://gateway.test";
    let mut env = FAST.to_vec();
    env.push(("OBGATE_GATEWAY_CACHE_TTL", ttl));
    env.push(("OBGATE_PUBLIC_URL", public));
    let a = spawn_with(&env).await;
    let tpp = access(&a, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    let b = start_node(&a.db.url, public, ttl).await;

    // Node B serves node A's token, and from its caches once warm (on PostgreSQL, once its
    // change feed listens).
    warm(&b.base, &tpp.token).await;

    // A KYC downgrade on A: B denies; the pass again: B allows.
    let review = |decision: &str| {
        a.admin(
            Method::POST,
            &format!(
                "/api/v0/customers/{}/verification-kyc/review",
                tpp.customer_id
            ),
        )
        .json(&json!({"decision": decision, "reason": "two-node test"}))
    };
    assert_eq!(a.send(review("failed")).await.status, 200);
    let (status, took) = until(&b.base, &tpp.token, within, |s| s != 200).await;
    assert_eq!(status, 403, "KYC downgrade not seen by node B in {took:?}");
    assert_eq!(a.send(review("passed")).await.status, 200);
    let (status, took) = until(&b.base, &tpp.token, within, |s| s == 200).await;
    assert_eq!(status, 200, "KYC pass not seen by node B in {took:?}");

    // Monitoring on A suspends the customer (a payee on the sanctions list): B denies; the
    // alert cleared on A: B allows again.
    let r = a
        .send(
            a.admin(
                Method::POST,
                &format!("/api/v0/customers/{}/transactions", tpp.customer_id),
            )
            .json(&json!({"transactions": [{
                "transaction_id": "wire-1", "booked_at": "2026-01-05T10:00:00Z",
                "amount": "250.00", "currency": "GBP", "direction": "debit",
                "counterparty": {"id": "acct-9", "name": "Ivan Sanctionov"},
                "channel": "transfer"}]})),
        )
        .await;
    assert_eq!(r.json()["kyc_status"], "suspended", "{}", r.text());
    let alert = r.json()["alerts"][0].as_str().unwrap().to_owned();
    let (status, took) = until(&b.base, &tpp.token, within, |s| s != 200).await;
    assert_eq!(
        status, 403,
        "monitoring suspension not seen by node B in {took:?}"
    );
    let r = a
        .send(
            a.admin(Method::POST, &format!("/api/v0/alerts/{alert}/resolve"))
                .json(&json!({"outcome": "cleared", "note": "false positive"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, took) = until(&b.base, &tpp.token, within, |s| s == 200).await;
    assert_eq!(status, 200, "cleared alert not seen by node B in {took:?}");

    // A token revoked on A (RFC 7009): B refuses it.
    let r = form(
        &a,
        "/oauth2/revoke",
        Some((&tpp.client_id, &tpp.secret)),
        &format!("token={}", tpp.token),
    )
    .await;
    assert_eq!(r.status, 200);
    let (status, took) = until(&b.base, &tpp.token, within, |s| s != 200).await;
    assert_eq!(
        status, 401,
        "token revocation not seen by node B in {took:?}"
    );

    // The consent revoked on A: B denies a fresh token that it had just served.
    let fresh = bound_token(&a, &tpp.client_id, &tpp.secret, &tpp.consent_id)
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    if postgres {
        // Node B's change feed loses its connection: B drops what it kept, stops serving
        // from memory, listens again, and only then caches again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN %'",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    warm(&b.base, &fresh).await;
    let r = a
        .send(
            a.admin(
                Method::POST,
                &format!("/api/v0/consents/{}/revoke", tpp.consent_id),
            )
            .json(&json!({"reason": "customer"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let (status, took) = until(&b.base, &fresh, within, |s| s != 200).await;
    assert!(
        status == 401 || status == 403,
        "consent revocation not seen by node B in {took:?} ({status})"
    );
}

#[tokio::test]
async fn a_client_disabled_on_node_a_gets_no_token_from_node_b() {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, Scope, TokenUrl};
    let postgres = postgres_url().is_some();
    let (ttl, within) = if postgres {
        ("300s", Duration::from_secs(2))
    } else {
        ("1s", Duration::from_secs(4))
    };
    let public = "http://gateway.test";
    let a = spawn_with(&[
        ("OBGATE_GATEWAY_CACHE_TTL", ttl),
        ("OBGATE_PUBLIC_URL", public),
    ])
    .await;
    let (id, secret) = crate::consents::tpp(&a, "Two-node TPP").await;
    let b = start_node(&a.db.url, public, ttl).await;
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret))
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", b.base)).unwrap());
    let http = crate::consents::http();
    let issue = || async {
        client
            .exchange_client_credentials()
            .add_scope(Scope::new("accounts".into()))
            .request_async(&http)
            .await
    };
    // Node B issues tokens to the client from its cached registration (on PostgreSQL, once
    // its change feed listens and the cache is in use).
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache_hits(&b.base, "client").await < 1.0 {
        issue()
            .await
            .expect("node B issues a token to a live client");
        assert!(Instant::now() < deadline, "node B never cached the client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let r = a
        .send(a.admin(Method::DELETE, &format!("/api/v0/oauth-clients/{id}")))
        .await;
    assert_eq!(r.status, 204);
    let started = Instant::now();
    loop {
        match issue().await {
            Err(oauth2::RequestTokenError::ServerResponse(e)) => {
                assert_eq!(e.error().as_ref(), "invalid_client");
                break;
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => assert!(
                started.elapsed() < within,
                "node B still issues tokens to a client disabled on node A"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
