//! The gateway: every TPP request for account data passes a stack of tower layers before it
//! reaches the bank.
//!
//! ```text
//! canonical path (global, before routing) ─ AuthenticateLayer ─ AuthorizeLayer (rate limit first) ─ proxy
//!                                                  └──── every decision ──→ access_log (batched audit)
//! ```
//!
//! The server hands GET requests on these routes to the layers directly, without axum's
//! router in between (`http::dispatch`); the same layers are also registered on the router,
//! which serves the routes' other methods and an embedding application.
//!
//! Both layers decide from [`cache`]: verified tokens, consents and KYC statuses in memory,
//! removed by every change that could turn an allow into a deny, on this node at once and on
//! the others through PostgreSQL `LISTEN/NOTIFY`.
//!
//! [`AuthenticateLayer`] and [`AuthorizeLayer`] are ordinary [`tower::Layer`]s, so a bank that
//! embeds obgate as a library can put them in front of its own handlers:
//!
//! ```no_run
//! # async fn example(config: obgate::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use obgate::gateway::{AuthenticateLayer, AuthorizeLayer, Grant};
//! use tower::ServiceBuilder;
//!
//! let app = obgate::App::build(config).await?;
//! let state = app.state().clone();
//! // The layers decide from in-memory copies (see `cache`); on PostgreSQL those copies are
//! // used only while this node follows the other nodes' changes.
//! let (_stop, stopped) = tokio::sync::watch::channel(false);
//! tokio::spawn({
//!     let state = state.clone();
//!     let stopped = stopped.clone();
//!     async move { state.follow_changes(stopped).await }
//! });
//! // Every decision is audited in batches by this writer (see `access_log`).
//! tokio::spawn(obgate::gateway::access_log::write(state.clone(), stopped));
//! // The bank's own handler sees only requests whose consent allows them.
//! let accounts = get(|grant: axum::Extension<Grant>| async move {
//!     format!("accounts of {} allowed: {:?}", grant.customer_id(), grant.account_ids)
//! });
//! let bank: Router = Router::new()
//!     .route("/open-banking/v3.1/aisp/accounts", accounts)
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(AuthenticateLayer::new(state.clone()))
//!             .layer(AuthorizeLayer::new(state)),
//!     );
//! # let _ = bank; Ok(()) }
//! ```

pub mod access_log;
pub mod authenticate;
pub mod authorize;
pub mod cache;
pub mod filter;
pub mod path;
pub mod proxy;
pub mod rate_limit;
pub mod route_map;
pub mod spill;

pub use authenticate::{AuthenticateLayer, Principal};
pub use authorize::{AuthorizeLayer, Grant};

use tower::layer::util::{Identity, Stack};
use tower::ServiceBuilder;

use crate::http::Routes;
use crate::state::AppState;

/// Every route of the permission map, behind the two layers (the second checks the per-client
/// rate limit first), ending in the proxy. The server calls the same layers and proxy directly
/// for GET requests on these routes (see `http::dispatch`); this registration serves the rest
/// (HEAD, wrong methods) and an embedding application's router.
pub fn routes(state: AppState) -> Routes<AppState> {
    let mut routes = Routes::new();
    for template in route_map::TEMPLATES.iter() {
        routes = routes.get(template, proxy::handle);
    }
    routes.route_layer(checks(state))
}

/// The gateway's two checks as one layer: the token ([`AuthenticateLayer`]), then the
/// rate limit, consent, KYC and permission ([`AuthorizeLayer`]).
pub fn checks(
    state: AppState,
) -> ServiceBuilder<Stack<AuthorizeLayer, Stack<AuthenticateLayer, Identity>>> {
    ServiceBuilder::new()
        .layer(AuthenticateLayer::new(state.clone()))
        // The per-client rate limit is the first thing AuthorizeLayer checks.
        .layer(AuthorizeLayer::new(state))
}

/// `GET /api/v0/customers/{customer_id}/accounts`: a customer's accounts through the
/// upstream, for the bank's consent UI to offer.
pub fn bank_routes(state: AppState) -> Routes<AppState> {
    Routes::new()
        .get(
            "/api/v0/customers/{customer_id}/accounts",
            customer_accounts,
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::admin::auth::require_admin,
        ))
}

async fn customer_accounts(
    axum::extract::State(state): axum::extract::State<AppState>,
    interaction: crate::http::middleware::InteractionId,
    axum::extract::Path(customer_id): axum::extract::Path<String>,
) -> Result<axum::Json<serde_json::Value>, crate::error::ApiError> {
    let live = state
        .store
        .get_customer(&customer_id)
        .await?
        .is_some_and(|c| c.erased_at.is_none());
    if !live {
        return Err(crate::kyc::customers::not_found(&customer_id));
    }
    let accounts = state
        .gateway
        .accounts_of(&customer_id, &interaction.0)
        .await
        .map_err(|e| match e {
            proxy::UpstreamError::Timeout => crate::error::ApiError::GatewayTimeout,
            proxy::UpstreamError::Unreachable => crate::error::ApiError::BadGateway,
        })?;
    let data: Vec<serde_json::Value> = accounts
        .iter()
        .filter_map(|a| {
            let mut item = serde_json::Map::new();
            item.insert("account_id".into(), a.get("AccountId")?.clone());
            for (to, from) in [
                ("currency", "Currency"),
                ("account_type", "AccountType"),
                ("account_sub_type", "AccountSubType"),
                ("nickname", "Nickname"),
            ] {
                if let Some(v) = a.get(from).filter(|v| v.is_string()) {
                    item.insert(to.into(), v.clone());
                }
            }
            Some(serde_json::Value::Object(item))
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "data": data })))
}
