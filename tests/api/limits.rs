//! Rate limits and the client-authentication lockout: per client, answered with `429` and
//! `Retry-After` in each API's error family, and shared by every node through Redis when
//! `OBGATE_REDIS_URL` is set.

use std::time::Duration;

use oauth2::AuthType;
use reqwest::Method;
use serde_json::json;

use crate::gateway::{access, AISP};
use crate::helpers::{redis_url, spawn_peer, spawn_with, Resp, TestApp};
use crate::kyc::FAST;
use crate::oauth::{form, register, tpp_token};

const CC: &str = "grant_type=client_credentials&scope=accounts";

fn retry_after(r: &Resp) -> u64 {
    r.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on {}", r.status))
        .parse()
        .unwrap()
}

async fn accounts(base: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}{AISP}/accounts"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A unique key prefix, so tests sharing the one Redis do not share buckets.
fn prefix() -> String {
    format!("test{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn the_token_endpoint_limits_each_authenticated_client_and_audits_the_refusal() {
    let app = spawn_with(&[("OBGATE_RATE_LIMIT_TOKEN", "2/min")]).await;
    let (a, a_secret) = register(&app, json!({"client_name": "A"})).await;
    let (b, b_secret) = register(&app, json!({"client_name": "B"})).await;
    for _ in 0..2 {
        tpp_token(&app, &a, &a_secret, AuthType::BasicAuth)
            .await
            .unwrap();
    }
    // The TPP's OAuth2 client sees an RFC 6749 error it can act on.
    let err = tpp_token(&app, &a, &a_secret, AuthType::BasicAuth)
        .await
        .unwrap_err();
    assert!(err.contains("rate_limited"), "{err}");
    let r = form(&app, "/oauth2/token", Some((&a, &a_secret)), CC).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "rate_limited");
    // 2/min: one request comes back every 30 s.
    let wait = retry_after(&r);
    assert!((1..=30).contains(&wait), "{wait}");
    // Another client has its own bucket, and naming client A without its secret is not
    // rate-limited (it cannot spend A's budget) but refused as unauthenticated.
    tpp_token(&app, &b, &b_secret, AuthType::BasicAuth)
        .await
        .unwrap();
    let r = form(&app, "/oauth2/token", Some((&a, "wrong")), CC).await;
    assert_eq!(r.status, 401);
    let rows = app
        .audit(&format!("action=token.issue&actor_id={a}&outcome=denied"))
        .await;
    assert!(
        rows.iter().any(|r| r["reason"] == "rate_limited"),
        "{rows:?}"
    );

    // A per-client override, on a node started with it.
    let (c, c_secret) = register(&app, json!({"client_name": "C"})).await;
    let clients = format!("{c}:token=5/min");
    let peer = spawn_peer(
        &app,
        &[
            ("OBGATE_RATE_LIMIT_TOKEN", "2/min"),
            ("OBGATE_RATE_LIMIT_CLIENTS", &clients),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let mut statuses = vec![];
    for _ in 0..6 {
        let r = http
            .post(format!("{}/oauth2/token", peer.base))
            .basic_auth(&c, Some(&c_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(CC)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn introspection_revocation_and_pushed_requests_share_one_budget_per_client() {
    let app = spawn_with(&[("OBGATE_RATE_LIMIT_OAUTH", "3/min")]).await;
    let (a, a_secret) = register(&app, json!({"client_name": "A"})).await;
    let token = form(&app, "/oauth2/token", Some((&a, &a_secret)), CC).await;
    assert_eq!(token.status, 200, "{}", token.text());
    let token = token.json()["access_token"].as_str().unwrap().to_owned();
    let introspect = format!("token={token}");
    // One each of the three, then the budget is used up whichever is asked next.
    let r = form(
        &app,
        "/oauth2/introspect",
        Some((&a, &a_secret)),
        &introspect,
    )
    .await;
    assert_eq!(r.json()["active"], true);
    let r = form(&app, "/oauth2/revoke", Some((&a, &a_secret)), &introspect).await;
    assert_eq!(r.status, 200);
    let r = form(
        &app,
        "/oauth2/par",
        Some((&a, &a_secret)),
        "response_type=code",
    )
    .await;
    assert_eq!(r.status, 400, "a malformed push counts too: {}", r.text());
    for path in ["/oauth2/introspect", "/oauth2/revoke", "/oauth2/par"] {
        let r = form(&app, path, Some((&a, &a_secret)), &introspect).await;
        assert_eq!(r.status, 429, "{path}");
        assert_eq!(r.json()["error"], "rate_limited", "{path}");
        assert!((1..=20).contains(&retry_after(&r)), "{path}");
    }
    // The token endpoint keeps its own budget; another client has its own; naming A without
    // its secret is refused as unauthenticated, not counted.
    assert_eq!(
        form(&app, "/oauth2/token", Some((&a, &a_secret)), CC)
            .await
            .status,
        200
    );
    let (b, b_secret) = register(&app, json!({"client_name": "B"})).await;
    let r = form(
        &app,
        "/oauth2/introspect",
        Some((&b, &b_secret)),
        &introspect,
    )
    .await;
    assert_eq!(r.status, 200, "B's budget is its own");
    assert_eq!(r.json()["active"], false, "A's (revoked) token");
    let r = form(&app, "/oauth2/introspect", Some((&a, "wrong")), &introspect).await;
    assert_eq!(r.status, 401);
}

async fn get_accounts(app: &TestApp, token: &str) -> Resp {
    app.send(
        app.request(Method::GET, &format!("{AISP}/accounts"))
            .bearer_auth(token),
    )
    .await
}

#[tokio::test]
async fn the_gateway_limits_each_client_before_any_consent_lookup() {
    let mut env = FAST.to_vec();
    env.push(("OBGATE_RATE_LIMIT_GATEWAY", "3/min"));
    let app = spawn_with(&env).await;
    let a = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    for _ in 0..3 {
        assert_eq!(get_accounts(&app, &a.token).await.status, 200);
    }
    let r = get_accounts(&app, &a.token).await;
    assert_eq!(r.status, 429);
    assert!(
        r.body.is_empty(),
        "the UK OB file defines 429 without a body"
    );
    assert!((1..=20).contains(&retry_after(&r)));
    // Another TPP is not held back by the first one's traffic.
    let b = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&b.token),
        )
        .await;
    assert_eq!(r.status, 200);
    // A forged token is refused as unauthenticated, never counted against the real client.
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(format!("{}x", b.token)),
        )
        .await;
    assert_eq!(r.status, 401);
    let metrics = app.get("/metrics").await.text();
    assert_eq!(
        crate::gateway::metric(
            &metrics,
            "obgate_gateway_decisions_total{outcome=\"denied\",reason=\"rate_limited\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn with_redis_every_node_draws_from_the_same_bucket() {
    let redis = redis_url();
    let prefix = prefix();
    let mut env = FAST.to_vec();
    env.extend([
        ("OBGATE_RATE_LIMIT_GATEWAY", "4/min"),
        ("OBGATE_REDIS_URL", redis.as_str()),
        ("OBGATE_REDIS_KEY_PREFIX", prefix.as_str()),
    ]);
    let app = spawn_with(&env).await;
    let b = spawn_peer(&app, &env).await;
    let a = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    let mut statuses = vec![];
    for base in [&app.base, &b.base, &app.base, &b.base, &b.base, &app.base] {
        statuses.push(accounts(base, &a.token).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

/// A Redis of this test's own (the test stops and kills it), on a free port; killed when
/// dropped.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (.ci/test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis is a helper, never a dependency, and its failure lifts no limit: a Redis that stops
/// answering (paused, a failover black-holing its address) does not hold requests until the
/// request timeout, and one that is gone leaves each node limiting on its own.
#[tokio::test]
async fn a_redis_that_hangs_or_dies_leaves_limits_per_node_neither_hung_nor_lifted() {
    let redis = OwnRedis::start();
    let mut env = FAST.to_vec();
    env.extend([
        ("OBGATE_RATE_LIMIT_GATEWAY", "3/min"),
        ("OBGATE_REDIS_URL", redis.url.as_str()),
        ("OBGATE_HTTP_REQUEST_TIMEOUT", "10s"),
    ]);
    let app = spawn_with(&env).await;
    let a = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    assert_eq!(accounts(&app.base, &a.token).await.status(), 200);

    // Paused: answered, by this node's own bucket (three more, then none).
    redis.signal("-STOP");
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(accounts(&app.base, &a.token).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "not held until the timeout");

    // Gone: once the node has seen it fail, its own bucket decides; the limit holds.
    redis.signal("-CONT");
    redis.signal("-KILL");
    let errors = |m: String| crate::gateway::metric(&m, "obgate_redis_errors_total ");
    let before = errors(app.get("/metrics").await.text());
    for _ in 0..100 {
        if errors(app.get("/metrics").await.text()) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(errors(app.get("/metrics").await.text()) > before, "noticed");
    let r = accounts(&app.base, &a.token).await;
    assert_eq!(r.status(), 429, "a Redis outage lifts no limit");
}

/// What a Redis before 7.0 answers, as far as a node asks at start: `PEXPIRE key ms NX` is an
/// error there (the option came in 7.0), everything else it is asked at connect succeeds. A
/// fake, since no old Redis can be installed beside the machine's own.
async fn redis_6(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let (read, mut write) = socket.into_split();
            let mut read = BufReader::new(read);
            let mut line = String::new();
            // RESP commands: `*N`, then N bulk strings, each `$len` and its text.
            loop {
                line.clear();
                if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let Some(n) = line.trim_end().strip_prefix('*') else {
                    return;
                };
                let mut args = vec![];
                for _ in 0..n.parse::<usize>().unwrap() {
                    for _ in 0..2 {
                        line.clear();
                        read.read_line(&mut line).await.unwrap();
                    }
                    args.push(line.trim_end().to_ascii_uppercase());
                }
                let answer = match args.first().map(String::as_str) {
                    Some("PEXPIRE") if args.len() > 3 => {
                        "-ERR wrong number of arguments for 'pexpire' command\r\n"
                    }
                    Some("PING") => "+PONG\r\n",
                    _ => "+OK\r\n",
                };
                if write.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A Redis before 7.0 refuses the `PEXPIRE … NX` that counts failed sign-ins across nodes, so
/// every count would fall back to the node's own and the lockout would silently stop being
/// shared. The node refuses to start with it, saying what to use, without the URL's password.
#[tokio::test]
async fn a_redis_older_than_7_is_refused_at_start() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://:s3cret-pw@{}", listener.local_addr().unwrap());
    tokio::spawn(redis_6(listener));
    let db = crate::helpers::TestDb::new().await;
    let cfg = crate::helpers::config(&db, &[("OBGATE_REDIS_URL", url.as_str())]);
    let err = match obgate::App::build(cfg).await {
        Ok(_) => panic!("started with a Redis too old for the shared lockout"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("redis.url"), "{err}");
    assert!(err.contains("Redis 7.0 or later"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

async fn token_from(app: &TestApp, id: &str, secret: &str, from: &str) -> Resp {
    app.send(
        app.request(Method::POST, "/oauth2/token")
            .basic_auth(id, Some(secret))
            .header("x-forwarded-for", format!("10.9.9.9, {from}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(CC),
    )
    .await
}

#[tokio::test]
async fn failed_authentications_lock_the_id_for_one_window_then_the_real_client_gets_in() {
    let app = spawn_with(&[
        ("OBGATE_OAUTH_LOCKOUT_AFTER", "4"),
        ("OBGATE_OAUTH_LOCKOUT_WINDOW", "2s"),
        ("OBGATE_HTTP_CLIENT_IP_HEADER", "x-forwarded-for"),
    ])
    .await;
    let (id, secret) = register(&app, json!({"client_name": "Victim"})).await;
    // An attacker at one address guesses secrets for the victim's id.
    for _ in 0..4 {
        let r = token_from(&app, &id, "guess", "203.0.113.9").await;
        assert_eq!(r.status, 401);
    }
    // Locked: even the right secret, from the real client's own address, waits out the window.
    let r = token_from(&app, &id, &secret, "198.51.100.7").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"], "temporarily_locked");
    let wait = retry_after(&r);
    assert!((1..=2).contains(&wait), "{wait}");
    let locks = app.audit("action=client.lockout").await;
    let subjects: Vec<&str> = locks
        .iter()
        .map(|r| r["actor_id"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(&id.as_str()), "{locks:?}");
    assert!(subjects.contains(&"203.0.113.9"), "{locks:?}");
    assert_eq!(locks.len(), 2, "each lock is audited once: {locks:?}");
    // No longer than the window: then the real client is in.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = token_from(&app, &id, &secret, "198.51.100.7").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn an_address_that_sprays_many_ids_is_locked_and_others_are_not() {
    let app = spawn_with(&[
        ("OBGATE_OAUTH_LOCKOUT_AFTER", "4"),
        ("OBGATE_OAUTH_LOCKOUT_WINDOW", "1m"),
        ("OBGATE_HTTP_CLIENT_IP_HEADER", "x-forwarded-for"),
    ])
    .await;
    let (id, secret) = register(&app, json!({"client_name": "Bystander"})).await;
    for n in 0..4 {
        let r = token_from(&app, &format!("made-up-{n}"), "guess", "203.0.113.50").await;
        assert_eq!(r.status, 401);
    }
    // The spraying address is locked, whichever id it names next, the real one included.
    let r = token_from(&app, &id, &secret, "203.0.113.50").await;
    assert_eq!(r.status, 429);
    // The real client elsewhere is untouched: four failures were spread over four ids.
    let r = token_from(&app, &id, &secret, "198.51.100.7").await;
    assert_eq!(r.status, 200);
}

/// Many clients behind one address (a TPP's egress NAT): with `oauth.lockout_after_address`
/// above `oauth.lockout_after`, one client's failures lock that client's id at its own count
/// without locking the address its neighbours share (with the default they would: see the
/// test above); spraying many ids from the address still locks it, at the address's count.
#[tokio::test]
async fn an_address_shared_by_many_clients_locks_at_its_own_higher_count() {
    let app = spawn_with(&[
        ("OBGATE_OAUTH_LOCKOUT_AFTER", "3"),
        ("OBGATE_OAUTH_LOCKOUT_AFTER_ADDRESS", "8"),
        ("OBGATE_OAUTH_LOCKOUT_WINDOW", "1m"),
        ("OBGATE_HTTP_CLIENT_IP_HEADER", "x-forwarded-for"),
    ])
    .await;
    let nat = "203.0.113.60";
    let (broken, _) = register(&app, json!({"client_name": "Rotated badly"})).await;
    let (neighbour, secret) = register(&app, json!({"client_name": "Neighbour"})).await;
    // A client with a stale secret fails three times: its id is locked...
    for _ in 0..3 {
        assert_eq!(token_from(&app, &broken, "stale", nat).await.status, 401);
    }
    let r = token_from(&app, &broken, "stale", nat).await;
    assert_eq!(r.status, 429, "{}", r.text());
    // ...and its neighbour behind the same address still gets tokens (which, being a correct
    // secret, starts the address's count again).
    let r = token_from(&app, &neighbour, &secret, nat).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Spraying made-up ids from the address: each of eight is checked (none finds the address
    // locked), and the eighth locks it.
    for n in 1..=8 {
        let r = token_from(&app, &format!("made-up-{n}"), "guess", nat).await;
        assert_eq!(r.status, 401, "failure {n} of 8: {}", r.text());
    }
    let r = token_from(&app, &neighbour, &secret, nat).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"], "temporarily_locked");
}

/// Guesses sent all at once pass the lockout's first look together, before any has failed:
/// each waits for its argon2 turn, and the lock set meanwhile stops those still waiting, so a
/// burst is not a way round the limit on guesses.
#[tokio::test]
async fn a_burst_of_guesses_sent_at_once_gets_no_more_tries_than_the_lockout_allows() {
    let app = spawn_with(&[
        ("OBGATE_OAUTH_LOCKOUT_AFTER", "4"),
        ("OBGATE_OAUTH_LOCKOUT_WINDOW", "1m"),
        ("OBGATE_HTTP_CLIENT_IP_HEADER", "x-forwarded-for"),
    ])
    .await;
    let (id, _) = register(&app, json!({"client_name": "Victim"})).await;
    let guesses = (0..40).map(|n| {
        let (app, id) = (&app, &id);
        async move { token_from(app, id, &format!("guess-{n}"), "203.0.113.12").await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let tried = answers.iter().filter(|r| r.status == 401).count();
    let locked = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!(tried + locked, 40);
    // The lockout allows four; one more may already be running argon2 on each permit.
    let permits =
        std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1));
    assert!(tried <= 4 + permits, "{tried} guesses tried");
    let audited = app
        .audit(&format!("action=client.authenticate&actor_id={id}"))
        .await
        .len();
    assert_eq!(audited, tried, "only the guesses tried are audited");
}

/// Credentials that cannot be read (no client id to count against), or are presented wrongly,
/// still count against the address they come from: once it is locked, they are refused
/// without an audit row each.
#[tokio::test]
async fn unreadable_credentials_count_against_their_address() {
    let app = spawn_with(&[
        ("OBGATE_OAUTH_LOCKOUT_AFTER", "3"),
        ("OBGATE_OAUTH_LOCKOUT_WINDOW", "1m"),
        ("OBGATE_HTTP_CLIENT_IP_HEADER", "x-forwarded-for"),
    ])
    .await;
    let (id, secret) = register(&app, json!({"client_name": "Bystander"})).await;
    let garbled = |ip: &'static str| {
        app.send(
            app.request(Method::POST, "/oauth2/token")
                .header("authorization", "Basic !!!not-base64")
                .header("x-forwarded-for", ip)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(CC),
        )
    };
    for _ in 0..3 {
        assert_eq!(garbled("203.0.113.60").await.status, 401);
    }
    let audited = app
        .audit("action=client.authenticate&actor_id=-")
        .await
        .len();
    for _ in 0..5 {
        assert_eq!(garbled("203.0.113.60").await.status, 429);
    }
    assert_eq!(
        app.audit("action=client.authenticate&actor_id=-")
            .await
            .len(),
        audited,
        "a locked address's attempts write nothing"
    );
    // Credentials presented wrongly (two methods at once, a 400) count the same way.
    let both_methods = |ip: &'static str| {
        app.send(
            app.request(Method::POST, "/oauth2/token")
                .basic_auth(&id, Some(&secret))
                .header("x-forwarded-for", ip)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("{CC}&client_id={id}&client_secret={secret}")),
        )
    };
    for _ in 0..3 {
        assert_eq!(both_methods("203.0.113.61").await.status, 400);
    }
    assert_eq!(both_methods("203.0.113.61").await.status, 429);
    // The lock is the address's: the real client elsewhere is untouched.
    assert_eq!(
        token_from(&app, &id, &secret, "203.0.113.60").await.status,
        429
    );
    assert_eq!(
        token_from(&app, &id, &secret, "198.51.100.8").await.status,
        200
    );
}

/// Made-up admin keys count against the address they come from like failed client
/// authentications: once it is locked, they are refused without an audit row each.
#[tokio::test]
async fn made_up_admin_keys_count_against_their_address() {
    let app = spawn_with(&[
        ("OBGATE_OAUTH_LOCKOUT_AFTER", "3"),
        ("OBGATE_OAUTH_LOCKOUT_WINDOW", "1m"),
        ("OBGATE_HTTP_CLIENT_IP_HEADER", "x-forwarded-for"),
    ])
    .await;
    let admin = |ip: &'static str, key: &str| {
        app.send(
            app.request(Method::GET, "/api/v0/oauth-clients")
                .bearer_auth(key)
                .header("x-forwarded-for", ip),
        )
    };
    for _ in 0..3 {
        assert_eq!(admin("203.0.113.70", "made-up").await.status, 401);
    }
    let audited = app.audit("action=admin.authenticate").await.len();
    for _ in 0..5 {
        let r = admin("203.0.113.70", "made-up").await;
        assert_eq!(r.status, 429);
        assert!((1..=60).contains(&retry_after(&r)));
    }
    assert_eq!(
        app.audit("action=admin.authenticate").await.len(),
        audited,
        "a locked address's attempts write nothing"
    );
    // The lock is the address's: the bank's real key works from elsewhere.
    let key = app.admin_key.clone();
    assert_eq!(admin("203.0.113.70", &key).await.status, 429);
    assert_eq!(admin("198.51.100.9", &key).await.status, 200);
}

#[tokio::test]
async fn with_redis_a_lock_set_on_one_node_holds_on_the_other() {
    let redis = redis_url();
    let prefix = prefix();
    let env = [
        ("OBGATE_OAUTH_LOCKOUT_AFTER", "3"),
        ("OBGATE_OAUTH_LOCKOUT_WINDOW", "1m"),
        ("OBGATE_REDIS_URL", redis.as_str()),
        ("OBGATE_REDIS_KEY_PREFIX", prefix.as_str()),
    ];
    let app = spawn_with(&env).await;
    let b = spawn_peer(&app, &env).await;
    let (id, secret) = register(&app, json!({"client_name": "Shared"})).await;
    let post = |base: String, secret: String| {
        let id = id.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/oauth2/token"))
                .basic_auth(id, Some(secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(CC)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Failures spread over both nodes add up.
    assert_eq!(post(app.base.clone(), "x".into()).await, 401);
    assert_eq!(post(b.base.clone(), "x".into()).await, 401);
    assert_eq!(post(app.base.clone(), "x".into()).await, 401);
    assert_eq!(post(b.base.clone(), secret.clone()).await, 429);
    assert_eq!(post(app.base.clone(), secret).await, 429);
    // Set once, audited once, though two nodes saw the failures.
    let locks = app
        .audit(&format!("action=client.lockout&actor_id={id}"))
        .await;
    assert_eq!(locks.len(), 1, "{locks:?}");
}
