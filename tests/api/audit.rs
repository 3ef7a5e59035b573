//! The audit log: listing with filters and cursors, append-only storage, and the hash chain
//! that `obgate audit verify` checks.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use obgate::audit::chain::{self, Broken, VerifyError};
use obgate::audit::decisions::GatewayDecision;
use obgate::audit::{ActorType, AuditEvent, Outcome};
use obgate::clock::Timestamp;
use obgate::store::Store;

use crate::helpers::{spawn, TestApp};

async fn seed(app: &TestApp, n: i64, start: Timestamp) {
    for i in 0..n {
        let at = Timestamp::from_millis(start.millis() + i * 1000);
        let mut e = AuditEvent::new(
            at,
            ActorType::System,
            format!("actor-{}", i % 2),
            if i % 3 == 0 {
                "demo.denied"
            } else {
                "demo.allowed"
            },
        )
        .on("demo", format!("res-{i}"));
        if i % 3 == 0 {
            e = e.outcome(Outcome::Denied, "demo_reason");
        }
        app.store.append_audit(&e).await.unwrap();
    }
}

#[tokio::test]
async fn listing_pages_newest_first_with_stable_cursors_and_filters() {
    let app = spawn().await;
    let start = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    seed(&app, 7, start).await;

    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v0/audit?resource_type=demo&limit=3&cursor={c}"),
            None => "/api/v0/audit?resource_type=demo&limit=3".to_owned(),
        };
        let page = app.admin_get(&q).await.json();
        let rows = page["data"].as_array().unwrap();
        assert!(rows.len() <= 3);
        seen.extend(rows.iter().map(|r| r["seq"].as_i64().unwrap()));
        // A row appended meanwhile does not disturb the pages being walked.
        if cursor.is_none() {
            seed(&app, 1, Timestamp::from_millis(start.millis() + 100_000)).await;
        }
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);

    let denied = app.audit("resource_type=demo&outcome=denied").await;
    assert_eq!(denied.len(), 3 + 1, "i = 0, 3, 6 and the extra row");
    assert!(denied.iter().all(|r| r["reason"] == "demo_reason"));
    let window = app
        .audit("resource_type=demo&since=2026-01-01T00:00:02Z&until=2026-01-01T00:00:04Z")
        .await;
    let ids: Vec<&str> = window
        .iter()
        .map(|r| r["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["res-3", "res-2"]);
    assert_eq!(
        app.audit("actor_id=actor-1&action=demo.allowed")
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn bad_query_parameters_are_each_named() {
    let app = spawn().await;
    let r = app
        .admin_get("/api/v0/audit?limit=0&since=yesterday&cursor=-3&outcome=maybe&actor_type=robot")
        .await;
    assert_eq!(r.status, 400);
    let m = &r.json()["Message"];
    for field in ["limit", "since", "cursor", "outcome", "actor_type"] {
        assert!(m[field].is_array(), "{field} not reported: {m}");
    }
    assert_eq!(r.json()["Code"], "invalid_query");
    let r = app.admin_get("/api/v0/audit?actr=x").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Message"]["actr"][0], "Unknown field.");
}

#[tokio::test]
async fn the_database_refuses_edits_and_deletions_of_audit_rows() {
    let app = spawn().await;
    seed(&app, 2, Timestamp::from_millis(0)).await;
    let err = app
        .db
        .try_exec("UPDATE audit SET outcome = 'success' WHERE seq = 1")
        .await
        .unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    let err = app
        .db
        .try_exec("DELETE FROM audit WHERE seq = 2")
        .await
        .unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    let head = app.store.audit_head().await.unwrap().seq;
    assert_eq!(chain::verify(app.store.as_ref()).await.unwrap().rows, head);
}

/// What someone with direct database access would do first.
async fn drop_guards(app: &TestApp) {
    if app.db.is_postgres() {
        app.db
            .exec("DROP TRIGGER audit_no_update_delete ON audit")
            .await;
    } else {
        app.db
            .exec("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
            .await;
    }
}

#[tokio::test]
async fn verify_detects_an_altered_row() {
    let app = spawn().await;
    let base = app.store.audit_head().await.unwrap().seq;
    seed(&app, 5, Timestamp::from_millis(0)).await;
    let ok = chain::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(ok.rows, base + 5);
    drop_guards(&app).await;
    // The fourth seeded row (i = 3) was a denial: make it look allowed.
    let seq = base + 4;
    app.db
        .exec(&format!(
            "UPDATE audit SET outcome = 'success', reason = NULL WHERE seq = {seq}"
        ))
        .await;
    assert!(matches!(
        chain::verify(app.store.as_ref()).await,
        Err(VerifyError::Broken(Broken::Altered { seq: s })) if s == seq
    ));
}

#[tokio::test]
async fn verify_detects_deleted_rows_in_the_middle_and_at_the_end() {
    let app = spawn().await;
    seed(&app, 5, Timestamp::from_millis(0)).await;
    let last = app.store.audit_head().await.unwrap().seq;
    drop_guards(&app).await;
    app.db
        .exec(&format!("DELETE FROM audit WHERE seq = {last}"))
        .await;
    assert!(matches!(
        chain::verify(app.store.as_ref()).await,
        Err(VerifyError::Broken(Broken::Head { last: l, head: h })) if l == last - 1 && h == last
    ));
    app.db
        .exec(&format!("DELETE FROM audit WHERE seq = {}", last - 2))
        .await;
    assert!(matches!(
        chain::verify(app.store.as_ref()).await,
        Err(VerifyError::Broken(Broken::Gap { expected: e, found: f })) if e == last - 2 && f == last - 1
    ));
}

#[tokio::test]
async fn verify_detects_a_renumbered_chain() {
    // Deleting a row and renumbering the rest to hide the gap breaks the links instead.
    let app = spawn().await;
    seed(&app, 2, Timestamp::from_millis(0)).await;
    drop_guards(&app).await;
    app.db.exec("DELETE FROM audit WHERE seq = 2").await;
    app.db.exec("UPDATE audit SET seq = 2 WHERE seq = 3").await;
    app.db.exec("UPDATE audit_head SET seq = seq - 1").await;
    assert!(matches!(
        chain::verify(app.store.as_ref()).await,
        Err(VerifyError::Broken(Broken::Link { seq: 2 }))
    ));
}

#[tokio::test]
async fn concurrent_appends_keep_one_unbroken_chain() {
    let app = spawn().await;
    let store: Arc<dyn Store> = app.store.clone();
    let base = store.audit_head().await.unwrap().seq;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let e = AuditEvent::new(
                    Timestamp::from_millis(i),
                    ActorType::System,
                    "race",
                    "demo.race",
                );
                store.append_audit(&e).await.unwrap().seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (base + 1..=base + 40).collect::<Vec<i64>>());
    assert_eq!(
        chain::verify(app.store.as_ref()).await.unwrap().rows,
        base + 40
    );
}

#[tokio::test]
async fn verify_beside_a_node_that_is_appending_never_calls_the_chain_broken() {
    // `obgate audit verify` runs beside a live gateway: batches of decisions and other rows
    // land while it walks. Reading the head after the walk once called such a batch a break.
    let app = spawn().await;
    seed_decisions(&app).await;
    let store: Arc<dyn Store> = app.store.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move {
            let mut i = 100;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<GatewayDecision> = (i..i + 5).map(|j| decision(j, true)).collect();
                store.append_decisions(&batch).await.unwrap();
                let e = AuditEvent::new(
                    Timestamp::from_millis(i),
                    ActorType::System,
                    "live",
                    "demo.live",
                );
                store.append_audit(&e).await.unwrap();
                i += 5;
            }
            i
        }
    });
    let mut intact = 0;
    for _ in 0..40 {
        match chain::verify(store.as_ref()).await {
            Ok(v) => {
                assert!(v.decisions >= 8, "{v:?}");
                intact += 1;
            }
            Err(VerifyError::Busy) => {}
            Err(e) => panic!("a live chain was reported as {e}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(
        written > 100,
        "the writer appended nothing during the checks"
    );
    assert!(intact > 0, "no check completed beside the writer");
    // Once the writer is done, the whole of it verifies.
    let done = chain::verify(store.as_ref()).await.unwrap();
    assert_eq!(done.decisions, 8 + (written - 100));
}

#[tokio::test]
async fn verify_detects_a_row_appended_past_the_head() {
    let app = spawn().await;
    seed(&app, 2, Timestamp::from_millis(0)).await;
    let head = app.store.audit_head().await.unwrap();
    app.db
        .exec(&format!(
            "INSERT INTO audit (seq, id, occurred_at, actor_type, actor_id, action, outcome, \
             prev_hash, hash) VALUES ({}, 'out-of-band', 0, 'system', 'x', 'demo.x', \
             'success', '{h}', '{h}')",
            head.seq + 1,
            h = head.last_hash
        ))
        .await;
    let found = chain::verify(app.store.as_ref()).await;
    assert!(
        matches!(
            found,
            Err(VerifyError::Broken(Broken::Head { last, head: h })) if last == head.seq + 1 && h == head.seq
        ),
        "{found:?}"
    );
}

/// Rows and decisions numbered before the chain's start (seq 0 or less) are out of band too:
/// the walk from seq 1 would never read them, while the listings (newest first) show them.
#[tokio::test]
async fn verify_detects_rows_and_decisions_slipped_in_before_the_start() {
    let app = spawn().await;
    seed(&app, 2, Timestamp::from_millis(0)).await;
    chain::verify(app.store.as_ref()).await.unwrap();
    app.db
        .exec(
            "INSERT INTO gateway_decisions (seq, sealed_by, occurred_at, outcome, reason, path) \
             VALUES (-1, 1, 0, 'success', 'allowed', '/x')",
        )
        .await;
    let found = chain::verify(app.store.as_ref()).await;
    assert!(
        matches!(
            found,
            Err(VerifyError::Broken(Broken::BeforeStart {
                what: "gateway decision",
                seq: -1
            }))
        ),
        "{found:?}"
    );
    app.db
        .exec(&format!(
            "INSERT INTO audit (seq, id, occurred_at, actor_type, actor_id, action, outcome, \
             prev_hash, hash) VALUES (0, 'forged', 0, 'customer', 'cus_x', 'consent.authorise', \
             'success', '{h}', '{h}')",
            h = chain::GENESIS_HASH
        ))
        .await;
    let found = chain::verify(app.store.as_ref()).await;
    assert!(
        matches!(
            found,
            Err(VerifyError::Broken(Broken::BeforeStart {
                what: "audit row",
                seq: 0
            }))
        ),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_batch_that_breaks_a_constraint_writes_none_of_its_rows_and_appending_goes_on() {
    let app = spawn().await;
    seed(&app, 1, Timestamp::from_millis(0)).await;
    let head = app.store.audit_head().await.unwrap();
    // A row slipped in out of band where the batch's second row belongs.
    let taken = head.seq + 2;
    app.db
        .exec(&format!(
            "INSERT INTO audit (seq, id, occurred_at, actor_type, actor_id, action, outcome, \
             prev_hash, hash) VALUES ({taken}, 'out-of-band', 0, 'system', 'x', 'demo.x', \
             'success', '{h}', '{h}')",
            h = chain::GENESIS_HASH
        ))
        .await;
    let batch: Vec<AuditEvent> = (0..3)
        .map(|i| {
            AuditEvent::new(
                Timestamp::from_millis(i),
                ActorType::Client,
                "cl_batch",
                "gateway.access",
            )
        })
        .collect();
    assert!(app.store.append_audit_batch(&batch).await.is_err());

    // Nothing of the batch was kept, and the head did not move.
    assert_eq!(app.store.audit_head().await.unwrap(), head);
    let after: Vec<(i64, String)> = app
        .store
        .audit_chain_page(head.seq, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.actor_id))
        .collect();
    assert_eq!(after, vec![(taken, "x".to_owned())]);

    // The writer still works: the next append takes the first free seq and links to the head.
    let next = app
        .store
        .append_audit(&AuditEvent::new(
            Timestamp::from_millis(9),
            ActorType::System,
            "obgate",
            "demo.after",
        ))
        .await
        .unwrap();
    assert_eq!(next.seq, head.seq + 1);
    assert_eq!(next.prev_hash, head.last_hash);
}

fn decision(i: i64, allowed: bool) -> GatewayDecision {
    GatewayDecision::new(
        Timestamp::from_millis(1_000 * i),
        Some(&format!("cl_{}", i % 2)),
        Some(&format!("aac_{}", i % 3)),
        allowed,
        if allowed { "ok" } else { "consent_revoked" },
        "/open-banking/v3.1/aisp/accounts",
        Some(&format!("ia-{i}")),
    )
}

/// Three batches of decisions (3, 1 and 4 of them) between ordinary audit rows.
async fn seed_decisions(app: &TestApp) -> Vec<i64> {
    let mut seals = Vec::new();
    let mut i = 0;
    for size in [3, 1, 4] {
        seed(app, 1, Timestamp::from_millis(0)).await;
        let batch: Vec<GatewayDecision> = (i..i + size).map(|j| decision(j, j % 4 != 3)).collect();
        i += size;
        app.store.append_decisions(&batch).await.unwrap();
        seals.push(app.store.audit_head().await.unwrap().seq);
    }
    seals
}

/// What someone with direct database access would do first, to the decisions.
async fn drop_decision_guards(app: &TestApp) {
    if app.db.is_postgres() {
        app.db
            .exec("DROP TRIGGER gateway_decisions_no_update_delete ON gateway_decisions")
            .await;
    } else {
        app.db
            .exec("DROP TRIGGER gateway_decisions_no_update; DROP TRIGGER gateway_decisions_no_delete;")
            .await;
    }
}

#[tokio::test]
async fn each_batch_of_gateway_decisions_is_sealed_into_the_chain_and_listed() {
    let app = spawn().await;
    let seals = seed_decisions(&app).await;
    let v = chain::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(v.decisions, 8);
    assert_eq!(app.store.audit_head().await.unwrap().decisions, 8);

    // The seal of the second batch names its one decision, with their digest.
    let seal = &app
        .audit(&format!(
            "action=gateway.decisions&cursor={}&limit=1",
            seals[1] + 1
        ))
        .await[0];
    assert_eq!(seal["seq"], seals[1]);
    assert_eq!(seal["resource_type"], "gateway_decisions");
    assert_eq!(seal["resource_id"], "4-4");
    assert_eq!(seal["actor_type"], "system");
    assert_eq!(seal["reason"].as_str().unwrap().len(), 64);

    // Listed newest first, each pointing at its seal; filters combine; the cursor pages.
    let r = app
        .admin_get("/api/v0/audit/gateway-decisions?limit=5")
        .await;
    assert_eq!(r.status, 200);
    let page = r.json();
    let seqs: Vec<i64> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [8, 7, 6, 5, 4]);
    assert_eq!(page["next_cursor"], 4);
    assert_eq!(page["data"][0]["sealed_by"], seals[2]);
    assert_eq!(page["data"][4]["sealed_by"], seals[1]);
    let rest = app
        .admin_get("/api/v0/audit/gateway-decisions?limit=5&cursor=4")
        .await
        .json();
    assert_eq!(rest["data"].as_array().unwrap().len(), 3);
    assert_eq!(rest["next_cursor"], serde_json::Value::Null);

    let denied = app
        .admin_get("/api/v0/audit/gateway-decisions?outcome=denied&consent_id=aac_0")
        .await
        .json();
    let denied = denied["data"].as_array().unwrap();
    // Decisions 3 and 7 (0-based) were denials; only 3 is under aac_0.
    assert_eq!(denied.len(), 1, "{denied:?}");
    let d = &denied[0];
    assert_eq!(d["seq"], 4);
    assert_eq!(d["client_id"], "cl_1");
    assert_eq!(d["reason"], "consent_revoked");
    assert_eq!(d["path"], "/open-banking/v3.1/aisp/accounts");
    assert_eq!(d["interaction_id"], "ia-3");
    assert_eq!(d["occurred_at"], "1970-01-01T00:00:03.000Z");
    let by_interaction = app
        .admin_get("/api/v0/audit/gateway-decisions?interaction_id=ia-5&since=1970-01-01T00:00:05Z&until=1970-01-01T00:00:06Z")
        .await
        .json();
    assert_eq!(by_interaction["data"].as_array().unwrap().len(), 1);

    let r = app
        .admin_get("/api/v0/audit/gateway-decisions?outcome=failure&limit=501&consent=x")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Message"]["consent"][0], "Unknown field.");
    let r = app
        .admin_get("/api/v0/audit/gateway-decisions?outcome=failure&limit=501")
        .await;
    assert_eq!(r.status, 400);
    let fields = r.json()["Message"].clone();
    assert!(
        fields["outcome"][0]
            .as_str()
            .unwrap()
            .contains("success or denied"),
        "{fields}"
    );
    assert!(
        fields["limit"][0].as_str().unwrap().contains("1 to 500"),
        "{fields}"
    );
}

#[tokio::test]
async fn the_database_refuses_edits_and_deletions_of_gateway_decisions() {
    let app = spawn().await;
    seed_decisions(&app).await;
    for sql in [
        "UPDATE gateway_decisions SET outcome = 'success' WHERE seq = 4",
        "DELETE FROM gateway_decisions WHERE seq = 8",
    ] {
        let err = app.db.try_exec(sql).await.unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        chain::verify(app.store.as_ref()).await.unwrap().decisions,
        8
    );
}

#[tokio::test]
async fn verify_detects_decisions_altered_removed_moved_or_added() {
    let broken = |seq| move |r: Result<chain::Verified, VerifyError>| matches!(r, Err(VerifyError::Broken(Broken::Decisions { seq: s })) if s == seq);

    // A denial rewritten as allowed.
    let app = spawn().await;
    let seals = seed_decisions(&app).await;
    drop_decision_guards(&app).await;
    app.db
        .exec("UPDATE gateway_decisions SET outcome = 'success', reason = 'ok' WHERE seq = 4")
        .await;
    assert!(broken(seals[1])(chain::verify(app.store.as_ref()).await));

    // One decision of a batch deleted.
    let app = spawn().await;
    let seals = seed_decisions(&app).await;
    drop_decision_guards(&app).await;
    app.db
        .exec("DELETE FROM gateway_decisions WHERE seq = 6")
        .await;
    assert!(broken(seals[2])(chain::verify(app.store.as_ref()).await));

    // A whole batch deleted, and the one after renumbered to close the gap.
    let app = spawn().await;
    let seals = seed_decisions(&app).await;
    drop_decision_guards(&app).await;
    app.db
        .exec("DELETE FROM gateway_decisions WHERE seq = 4")
        .await;
    app.db
        .exec("UPDATE gateway_decisions SET seq = seq - 1 WHERE seq > 4")
        .await;
    assert!(broken(seals[1])(chain::verify(app.store.as_ref()).await));

    // A decision added after the last seal, and the head bumped to match.
    let app = spawn().await;
    seed_decisions(&app).await;
    app.db
        .exec(
            "INSERT INTO gateway_decisions (seq, sealed_by, occurred_at, client_id, consent_id, \
             outcome, reason, path, interaction_id) \
             VALUES (9, 1, 0, 'cl_x', 'aac_x', 'success', 'ok', '/x', NULL)",
        )
        .await;
    assert!(matches!(
        chain::verify(app.store.as_ref()).await,
        Err(VerifyError::Broken(Broken::DecisionsHead { sealed: 8, .. }))
    ));
    app.db.exec("UPDATE audit_head SET decisions = 9").await;
    assert!(matches!(
        chain::verify(app.store.as_ref()).await,
        Err(VerifyError::Broken(Broken::DecisionsHead { sealed: 8, .. }))
    ));
}

#[tokio::test]
async fn a_batch_of_decisions_that_fails_writes_none_of_them_nor_its_seal() {
    let app = spawn().await;
    seed_decisions(&app).await;
    let head = app.store.audit_head().await.unwrap();
    // A decision slipped in out of band where the next batch's second row belongs.
    app.db
        .exec(
            "INSERT INTO gateway_decisions (seq, sealed_by, occurred_at, client_id, consent_id, \
             outcome, reason, path, interaction_id) \
             VALUES (10, 1, 0, NULL, NULL, 'denied', 'x', '/x', NULL)",
        )
        .await;
    let batch: Vec<GatewayDecision> = (20..23).map(|i| decision(i, true)).collect();
    assert!(app.store.append_decisions(&batch).await.is_err());
    assert_eq!(app.store.audit_head().await.unwrap(), head);
    let after = app.store.decisions_between(9, i64::MAX, 10).await.unwrap();
    assert_eq!(after.iter().map(|d| d.seq).collect::<Vec<_>>(), [10]);
    assert_eq!(after[0].reason, "x");
}

/// With the database refusing decision rows at shutdown, the process still stops when
/// `http.shutdown_grace` ends (it used to retry for as long as the outage lasted, past
/// SIGTERM): what is unwritten goes to the spill file, and the next start writes it into the
/// audit log, sealed into the chain, before it serves.
#[tokio::test]
async fn decisions_unwritten_at_shutdown_are_spilled_and_written_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("decisions.spill");
    let spill_env = spill.to_str().unwrap().to_owned();
    let env = [
        ("OBGATE_GATEWAY_DECISION_SPILL_FILE", spill_env.as_str()),
        ("OBGATE_HTTP_SHUTDOWN_GRACE", "1s"),
    ];
    let db = crate::helpers::TestDb::new().await;
    let config = crate::helpers::config(&db, &env);
    let mut app = crate::helpers::spawn_on(db, config).await;
    app.db.refuse_inserts("gateway_decisions").await;
    for i in 0..3 {
        let r = app
            .send(
                app.request(reqwest::Method::GET, "/open-banking/v3.1/aisp/accounts")
                    .header("x-fapi-interaction-id", format!("spilled-{i}")),
            )
            .await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    app.trigger_shutdown();
    let server = app.server.take().unwrap();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the server did not stop cleanly with the audit log unwritable: {stopped:?}"
    );
    let kept = std::fs::read_to_string(&spill).expect("the spill file was written");
    let decisions = kept.lines().filter(|l| l.contains(r#""path":"#)).count();
    assert_eq!(decisions, 3, "{kept}");
    assert!(!kept.contains("Bearer"), "{kept}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&spill).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by the node's user alone");
    // A crash while a fourth line was being written left it cut short: the start still
    // writes the three whole ones.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&spill)
        .unwrap()
        .write_all(br#"{"at":"2026-12-07T21:00:00.000Z","allowed":tr"#)
        .unwrap();

    let as_left = std::fs::read(&spill).unwrap();

    // The database is writable again: the next start writes the three decisions, sealed.
    app.db.allow_inserts("gateway_decisions").await;
    let again = crate::helpers::TestDb::external(app.db.url.clone());
    let mut env = env.to_vec();
    env.push(("OBGATE_DATABASE_MIGRATE_ON_START", "false"));
    let config = crate::helpers::config(&again, &env);
    let mut next = crate::helpers::spawn_on(again, config).await;
    next.admin_key = app.admin_key.clone();
    for i in 0..3 {
        let rows = next
            .decisions_eventually(&format!("interaction_id=spilled-{i}"), |d| !d.is_empty())
            .await;
        assert_eq!(rows.len(), 1, "written once: {rows:?}");
        assert_eq!(rows[0]["outcome"], "denied");
        assert_eq!(rows[0]["path"], "/open-banking/v3.1/aisp/accounts");
    }
    assert!(!spill.exists(), "the spill file is deleted once written");
    chain::verify(next.store.as_ref()).await.unwrap();

    // A node that died after that write's commit and before it deleted the file finds the
    // file again at its next start: its decisions are in the audit log already, once.
    next.trigger_shutdown();
    let server = next.server.take().unwrap();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    let replaying = dir.path().join("decisions.spill.replaying");
    std::fs::write(&replaying, &as_left).unwrap();
    let third = crate::helpers::TestDb::external(next.db.url.clone());
    let config = crate::helpers::config(&third, &env);
    let mut third = crate::helpers::spawn_on(third, config).await;
    third.admin_key = app.admin_key.clone();
    // The start reads the file before it serves, so it is done once anything is answered.
    for i in 0..3 {
        let rows = third
            .decisions_eventually(&format!("interaction_id=spilled-{i}"), |d| !d.is_empty())
            .await;
        assert_eq!(rows.len(), 1, "not written a second time: {rows:?}");
    }
    assert!(!replaying.exists(), "the file written before is deleted");
    assert!(!spill.exists());
    chain::verify(third.store.as_ref()).await.unwrap();
}

/// An upgraded node started with `database.migrate_on_start = false` before its migration ran
/// starts as on any database with migrations pending (`/readyz` 503 until `obgate migrate`),
/// and leaves a spill file for the first start after the migration, rather than refusing to
/// start over a table the replay needs.
#[tokio::test]
async fn a_spill_file_waits_for_pending_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("decisions.spill");
    let spill_env = spill.to_str().unwrap().to_owned();
    let db = crate::helpers::TestDb::new().await;
    let config = crate::helpers::config(&db, &[]);
    let app = crate::helpers::spawn_on(db, config).await;
    // The database one migration behind this binary, as before an upgrade's migrate job.
    app.db.exec("DROP TABLE spill_replays").await;
    app.db
        .exec("DELETE FROM _sqlx_migrations WHERE version = 14")
        .await;
    let waiting = decision(7, false);
    obgate::gateway::spill::write(&spill, std::slice::from_ref(&waiting)).unwrap();

    let behind = crate::helpers::TestDb::external(app.db.url.clone());
    let env = [
        ("OBGATE_GATEWAY_DECISION_SPILL_FILE", spill_env.as_str()),
        ("OBGATE_DATABASE_MIGRATE_ON_START", "false"),
    ];
    let config = crate::helpers::config(&behind, &env);
    let node = crate::helpers::spawn_on(behind, config).await;
    let r = node.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(spill.exists(), "kept for the start after the migration");

    // Migrated (`obgate migrate`): the next start writes it.
    app.store.migrate().await.unwrap();
    let migrated = crate::helpers::TestDb::external(app.db.url.clone());
    let config = crate::helpers::config(&migrated, &env);
    let mut next = crate::helpers::spawn_on(migrated, config).await;
    next.admin_key = app.admin_key.clone();
    let rows = next
        .decisions_eventually("interaction_id=ia-7", |d| !d.is_empty())
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["reason"], "consent_revoked");
    assert!(!spill.exists());
}
