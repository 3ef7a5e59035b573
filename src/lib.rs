//! obgate: an Open Banking consent and OAuth2 gateway with KYC gating.
//!
//! A bank puts obgate in front of its account-data API. Third-party providers get OAuth2 tokens
//! from it, customers approve consents through it, and every TPP request is checked (token,
//! consent, KYC) before it is proxied to the bank.
//!
//! # Layout
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | the one [`config::Config`], from TOML + `OBGATE_*` env, validated at start |
//! | [`store`] | the storage trait and its SQLite and PostgreSQL implementations |
//! | [`error`] | the one error type, rendered per API family (OAuth, Open Banking, admin) |
//! | [`http`] | route assembly, request-wide layers, graceful serving |
//! | [`admin`] | admin API keys and the check in front of `/api/v0/*` |
//! | [`audit`] | the append-only, hash-chained audit log |
//! | [`oauth`] | the authorization server: signing keys, access tokens |
//! | [`gateway`] | the tower layers guarding account data, the permission map, the proxy |
//! | [`sandbox_bank`] | the built-in demo account API the gateway uses in sandbox mode |
//! | [`limits`] | per-client rate limits and the client-authentication lockout, shared through Redis |
//! | [`consent`] | UK OB account-access consents, the authorization flow, the KYC gate |
//! | [`pages`] | the customer's hosted consent screen and access dashboard (HTML, sign-in by bank assertion) |
//! | [`kyc`] | customers, Bond's KYC API, KBA, documents, reviews, identity providers, PII |
//! | [`events`] | the event outbox, signed webhooks and their dispatcher |
//! | [`crypto`] | AES-256-GCM sealing of secrets at rest |
//! | [`demo`] | the sandbox demo TPP, customers and walkthrough created at the first start |
//! | [`health`], [`metrics`], [`docs`], [`telemetry`] | probes, Prometheus, the OpenAPI contract, logging |
//! | [`cli`] | the `obgate` command line (`main.rs` only calls it) |
//! | [`runtime`] | the async runtime `serve` runs on, and optional pinning of its workers to CPUs |
//!
//! # Request flow
//!
//! ```text
//! request ─ interaction id ─ trace span ─ metrics ─ error rendering ─ panic guard
//!         ─ timeout ─ body limit ─ route (admin key check on /api/v0) ─ handler ─ store
//! ```
//!
//! # Embedding
//!
//! [`App::build`] turns a [`config::Config`] into a ready router; [`App::serve`] runs it on any
//! listener until a shutdown future completes, which is how the tests start the real app on
//! `127.0.0.1:0`.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod demo;
pub mod docs;
pub mod error;
pub mod events;
pub mod gateway;
pub mod health;
pub mod http;
pub mod kyc;
pub mod limits;
pub mod metrics;
pub mod monitoring;
pub mod oauth;
pub mod pages;
pub mod runtime;
pub mod sandbox_bank;
pub mod state;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use axum::http::Method;
use axum::Router;
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::StoreError;

/// How long past the shutdown budget (`http.shutdown_grace` from the signal) background
/// workers, and then the database pool, are waited for. More than the access log's floor
/// (`access_log::WRITER_FLOOR`), so its writer is never stopped before it has spilled.
const WORKERS_STOP_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing keys could not be created or loaded.
    #[error(transparent)]
    Keys(#[from] oauth::keys::KeyError),
    /// `redis.url` is set but Redis cannot be reached, or is too old for the shared lockout.
    #[error(transparent)]
    Redis(#[from] limits::shared::ConnectError),
}

/// A built application: state, router and the list of routes it serves.
pub struct App {
    state: AppState,
    router: Router,
    /// The gateway's routes without the router, for [`App::serve`] (see `http::dispatch`).
    gateway: http::dispatch::GatewayService,
    routes: Vec<(Method, String)>,
}

impl App {
    /// Opens storage (migrating it when `database.migrate_on_start`) and builds the router.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`App::build`], with an injected clock (tests move time without sleeping).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let store = store::connect(&config).await?;
        if config.migrate_on_start {
            store.migrate().await?;
        }
        let keys = Arc::new(oauth::keys::Keys::new(
            store.clone(),
            clock.clone(),
            &config.oauth,
        ));
        // Fail fast on key problems (a wrong key-encryption key) when the database is ready;
        // when it is not (down, or migrations pending), keys are set up on first use and
        // /readyz says what is missing.
        if matches!(store.migration_state().await, Ok(m) if m.is_current()) {
            keys.ensure().await?;
        }
        let metrics = Arc::new(Metrics::new());
        let provider = kyc::provider::from_config(&config.kyc);
        let gateway = Arc::new(gateway::proxy::Proxy::new(&config.upstream, clock.clone()));
        let decisions = Arc::new(gateway::cache::DecisionCache::new(
            config.gateway.cache_ttl,
            config.gateway.cache_entries,
            store.backend() == config::Backend::Postgres,
            metrics.clone(),
        ));
        let bank_keys = Arc::new(pages::assertion::BankKeys::new(
            config.pages.assertion_keys.clone(),
        ));
        let shared = match &config.limits.redis_url {
            Some(url) => Some(
                limits::SharedRedis::connect(
                    url.expose(),
                    &config.limits.redis_key_prefix,
                    metrics.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let limits = Arc::new(limits::Limits {
            rates: limits::RateLimits::new(config.limits.rates.clone(), shared.clone()),
            lockout: limits::Lockout::new(config.oauth.lockout, shared.clone()),
            shared,
        });
        let state = AppState::new(state::Parts {
            decisions,
            limits,
            access_log: Arc::default(),
            audit_group: Arc::new(audit::group::GroupCommit::new(store.clone())),
            config: Arc::new(config),
            store,
            clock,
            hasher: Arc::new(oauth::secrets::SecretHasher::new(metrics.clone())),
            secret_cache: Arc::default(),
            provider,
            gateway,
            events: Arc::default(),
            metrics,
            keys,
            bank_keys,
        });
        let http::Built {
            router,
            gateway,
            routes,
        } = http::router(state.clone());
        Ok(Self {
            state,
            router,
            gateway,
            routes,
        })
    }

    /// Shared state (store, clock, config).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Every (method, path template) the router serves, as registered.
    pub fn routes(&self) -> &[(Method, String)] {
        &self.routes
    }

    /// The router, for embedding in another axum or tower service.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for at most
    /// `http.shutdown_grace` and closes the database pool. First writes the decisions a
    /// previous shutdown left in `gateway.decision_spill_file` ([`gateway::spill`]).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.state.config.http.shutdown_grace;
        // Decisions an earlier shutdown could not write go into the audit log before any new
        // one is made; if they cannot, the start stops and the file waits for the next.
        gateway::spill::replay(&self.state)
            .await
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopped_bank = stopped.clone();
        let workers = [
            tokio::spawn(kyc::worker::run(self.state.clone(), stopped.clone())),
            tokio::spawn(events::dispatcher::run(self.state.clone(), stopped.clone())),
            tokio::spawn({
                let state = self.state.clone();
                let stopped = stopped.clone();
                async move { state.follow_changes(stopped).await }
            }),
            tokio::spawn(gateway::access_log::write(
                self.state.clone(),
                stopped.clone(),
            )),
            tokio::spawn({
                let shared = self.state.limits.shared.clone();
                async move {
                    if let Some(shared) = shared {
                        shared.supervise(stopped).await;
                    }
                }
            }),
        ];
        if let Some(addr) = self.state.config.sandbox_bank_listen {
            let bank = TcpListener::bind(addr).await?;
            tracing::info!(%addr, "sandbox bank listening");
            let router = sandbox_bank::router(self.state.clock.clone());
            let mut stopped = stopped_bank;
            tokio::spawn(async move {
                let done = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                axum::serve(bank, router).with_graceful_shutdown(done).await
            });
        }
        let header_timeout = self.state.config.http.header_timeout;
        // One budget from the signal: draining requests, then writing their decisions.
        let shutdown = {
            let state = self.state.clone();
            async move {
                shutdown.await;
                state
                    .access_log
                    .shutdown_by(tokio::time::Instant::now() + grace);
            }
        };
        let result = http::serve(
            listener,
            http::dispatch::Dispatch::new(self.router, self.gateway),
            shutdown,
            grace,
            header_timeout,
        )
        .await;
        let _ = stop.send(true);
        // Workers finish what they hold (the access log within the budget above); one stuck
        // on a database that stopped answering is not waited for past it.
        let until = self.state.access_log.deadline(grace) + WORKERS_STOP_MARGIN;
        for mut w in workers {
            if tokio::time::timeout_at(until, &mut w).await.is_err() {
                tracing::warn!("a background worker did not stop in time; stopped it");
                w.abort();
            }
        }
        if tokio::time::timeout(WORKERS_STOP_MARGIN, self.state.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the database pool did not close in time; leaving it");
        }
        result
    }
}
