//! What every handler can reach.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::oauth::keys::Keys;
use crate::oauth::secrets::SecretHasher;
use crate::store::Store;

impl AppState {
    /// What a valid access token of this server must say (`iss`, `aud`).
    pub fn token_expectations(&self) -> crate::oauth::jwt::Expected<'_> {
        crate::oauth::jwt::Expected {
            issuer: self.config.public_base(),
            audience: &self.config.oauth.audience,
        }
    }

    /// Announces changes that were just committed: the decision caches forget what they made
    /// stale (before the caller answers), then workers and in-process listeners hear of them.
    pub fn committed(&self, events: &[crate::store::events::EventRow]) {
        use crate::events::invalidation::{Follower, Invalidation};
        for e in events {
            for what in Invalidation::of_event(e) {
                self.decisions.apply(&what);
            }
        }
        self.events.published(events);
    }

    /// Tells this node's decision caches that tokens were revoked (the store has told the
    /// other nodes in the revoking transaction).
    pub fn tokens_revoked(&self, what: &crate::events::invalidation::Invalidation) {
        use crate::events::invalidation::Follower;
        self.decisions.apply(what);
    }

    /// Keeps the decision caches in step with changes made on other nodes until `stop` turns
    /// true. [`crate::App::serve`] runs it; a bank that embeds the router and serves it
    /// itself spawns it, or the caches (on PostgreSQL) are never used.
    pub async fn follow_changes(&self, stop: tokio::sync::watch::Receiver<bool>) {
        self.store
            .follow_changes(self.decisions.clone(), stop)
            .await;
    }

    /// The client registry with this app's dependencies.
    pub fn clients(&self) -> crate::oauth::clients::Clients<'_> {
        crate::oauth::clients::Clients {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            hasher: &self.hasher,
            mode: self.config.mode,
            grace: self.config.oauth.secret_rotation_grace,
            cache: Some(&self.decisions),
        }
    }
}

/// Shared application state: one `Arc`, so the clone every layer and extractor makes per
/// request is a single reference count, not one per part (measured in the gateway's profile).
/// Fields are reached through `Deref` (`state.store`, `state.config`, …).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Parts>);

impl AppState {
    /// Wraps the parts.
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`AppState`] holds. Each part is its own `Arc` too, so a part can be handed to a task
/// or a store call on its own.
#[derive(Debug)]
pub struct Parts {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The source of "now".
    pub clock: Arc<dyn Clock>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// JWT signing keys.
    pub keys: Arc<Keys>,
    /// argon2 for client secrets.
    pub hasher: Arc<SecretHasher>,
    /// Recently verified client secrets.
    pub secret_cache: Arc<crate::oauth::client_auth::SecretCache>,
    /// The identity-verification provider KYC checks run against.
    pub provider: Arc<dyn crate::kyc::provider::IdentityProvider>,
    /// Committed events: wakes the workers, tells in-process listeners.
    pub events: Arc<crate::events::Hub>,
    /// The gateway's in-memory consent, KYC and token decisions.
    pub decisions: Arc<crate::gateway::cache::DecisionCache>,
    /// The gateway's proxy to the bank's account API.
    pub gateway: Arc<crate::gateway::proxy::Proxy>,
    /// Gateway decisions waiting to be written to the audit log.
    pub access_log: Arc<crate::gateway::access_log::AccessLog>,
    /// Audit rows that stand alone, appended in shared transactions.
    pub audit_group: Arc<crate::audit::group::GroupCommit>,
    /// Rate limits and the authentication lockout.
    pub limits: Arc<crate::limits::Limits>,
    /// The keys that verify the bank's customer assertions (hosted pages' sign-in).
    pub bank_keys: Arc<crate::pages::assertion::BankKeys>,
}
