//! The story test: every store method in a realistic order, on the backend under test.

use obgate::audit::chain;
use obgate::audit::{ActorType, AuditEvent, AuditFilter, Outcome, Window};
use obgate::clock::Timestamp;
use obgate::config::Backend;
use obgate::store::{self, NewAdminKey, StoreError};

use crate::helpers::{config, TestDb};

#[tokio::test]
async fn store_story() {
    let db = TestDb::new().await;
    let store = store::connect(&config(&db, &[])).await.unwrap();
    assert_eq!(
        store.backend(),
        if db.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    );

    // A fresh database: reachable, nothing applied.
    store.ping().await.unwrap();
    let state = store.migration_state().await.unwrap();
    assert_eq!((state.applied, state.pending.len()), (0, state.expected));
    assert!(!state.is_current());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap(); // idempotent
    if !db.is_postgres() {
        // WAL is a property of the file: readers never block the writer.
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
    assert!(store.migration_state().await.unwrap().is_current());

    // Admin keys.
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let key = NewAdminKey {
        id: "ak_story".into(),
        name: "ops".into(),
        prefix: "obg_abcdef".into(),
        key_hash: "h1".into(),
        created_at: t0,
    };
    let audit =
        AuditEvent::new(t0, ActorType::Cli, "root", "admin_key.create").on("admin_key", "ak_story");
    let stored = store.insert_admin_key(&key, &audit).await.unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.created_at, stored.revoked_at),
        ("ops", t0, None)
    );

    let dup = NewAdminKey {
        id: "ak_other".into(),
        key_hash: "h2".into(),
        ..key.clone()
    };
    assert!(matches!(
        store.insert_admin_key(&dup, &audit).await,
        Err(StoreError::Conflict(_))
    ));
    // The failed insert left no audit row behind.
    assert_eq!(store.audit_head().await.unwrap().seq, 1);

    let found = store.find_admin_key_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(found.id, "ak_story");
    assert!(store
        .find_admin_key_by_hash("nope")
        .await
        .unwrap()
        .is_none());

    let t1 = Timestamp::from_millis(t0.millis() + 5_000);
    store.touch_admin_key("ak_story", t1).await.unwrap();
    let listed = store.list_admin_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(t1));

    let revoke =
        AuditEvent::new(t1, ActorType::Cli, "root", "admin_key.revoke").on("admin_key", "ak_story");
    let revoked = store
        .revoke_admin_key("ak_story", t1, &revoke)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(t1));
    let again = store
        .revoke_admin_key("ak_story", Timestamp::from_millis(t1.millis() + 1), &revoke)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(t1),
        "revoking twice keeps the first time"
    );
    assert!(store
        .revoke_admin_key("ak_none", t1, &revoke)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.audit_head().await.unwrap().seq,
        2,
        "only the real revocation was audited"
    );
    // The name is free again once revoked.
    let reuse = NewAdminKey {
        id: "ak_story2".into(),
        key_hash: "h3".into(),
        ..key.clone()
    };
    store.insert_admin_key(&reuse, &audit).await.unwrap();

    // Audit.
    let denied = AuditEvent::new(t1, ActorType::Anonymous, "-", "admin.authenticate")
        .outcome(Outcome::Denied, "unknown_key")
        .interaction(Some("ix-1"));
    let rec = store.append_audit(&denied).await.unwrap();
    assert_eq!(rec.seq, 4);
    let all = store
        .list_audit(&AuditFilter {
            window: Window {
                limit: 10,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![4, 3, 2, 1]
    );
    assert_eq!(all[0], rec, "stored exactly as sealed");
    let filtered = store
        .list_audit(&AuditFilter {
            action: Some("admin_key.create".into()),
            window: Window {
                before_seq: Some(3),
                limit: 10,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(filtered.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
    let window = store
        .list_audit(&AuditFilter {
            interaction_id: Some("ix-1".into()),
            window: Window {
                since: Some(t1),
                limit: 10,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(window.len(), 1);

    let page = store.audit_chain_page(1, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(page[0].prev_hash, all[3].hash);
    let head = store.audit_head().await.unwrap();
    assert_eq!((head.seq, head.last_hash.as_str()), (4, rec.hash.as_str()));
    assert_eq!(
        chain::verify(store.as_ref()).await.unwrap().head_hash,
        rec.hash
    );

    // Page sessions: started with their audit row, found by id hash, ended once; expired ones
    // are swept when the next session starts.
    use obgate::store::pages::PageSessionRow;
    let session = |id: &str, from: i64, to: i64| PageSessionRow {
        id_hash: id.into(),
        customer_id: "cus_story".into(),
        csrf_token: format!("csrf-{id}"),
        created_at: Timestamp::from_millis(from),
        expires_at: Timestamp::from_millis(to),
    };
    let sign_in = |at: i64| {
        AuditEvent::new(
            Timestamp::from_millis(at),
            ActorType::Customer,
            "cus_story",
            "pages.sign_in",
        )
    };
    store
        .start_page_session(&session("h1", 1_000, 2_000), &sign_in(1_000))
        .await
        .unwrap();
    let got = store.get_page_session("h1").await.unwrap().unwrap();
    assert_eq!(
        (got.customer_id.as_str(), got.csrf_token.as_str()),
        ("cus_story", "csrf-h1")
    );
    assert_eq!(got.expires_at, Timestamp::from_millis(2_000));
    store
        .start_page_session(&session("h2", 3_000, 9_000), &sign_in(3_000))
        .await
        .unwrap();
    assert!(
        store.get_page_session("h1").await.unwrap().is_none(),
        "expired, swept"
    );
    assert!(store.get_page_session("h2").await.unwrap().is_some());
    let sign_out = AuditEvent::new(
        Timestamp::from_millis(4_000),
        ActorType::Customer,
        "cus_story",
        "pages.sign_out",
    );
    assert!(store.end_page_session("h2", &sign_out).await.unwrap());
    assert!(
        !store.end_page_session("h2", &sign_out).await.unwrap(),
        "ended once"
    );
    assert_eq!(
        store.audit_head().await.unwrap().seq,
        7,
        "each sign-in audited, and the one sign-out that ended a session"
    );
    chain::verify(store.as_ref()).await.unwrap();

    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store refuses work");
}
