//! TPP clients: RFC 7591 metadata, validation, registration, secret rotation, disabling.
//!
//! The API speaks RFC 7591 field names so registration tooling fits. Rules a TPP will meet:
//! redirect URIs are compared exactly and must be https (plain http only for `127.0.0.1`,
//! `[::1]` or `localhost`, and only in sandbox mode); `authorization_code` needs at least one
//! redirect URI and `refresh_token` needs `authorization_code`; `private_key_jwt` needs a
//! `jwks` of ES256/PS256 public keys, and the secret methods must not carry one. The secret is
//! generated here (256 bits), returned once, and stored as argon2id.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::secrets::{generate_secret, SecretHasher};
use crate::audit::{Actor, AuditEvent};
use crate::clock::{Clock, Timestamp};
use crate::config::Mode;
use crate::error::{ApiError, FieldError};
use crate::store::{ClientRow, Store};

/// Grant types a client may register.
pub const GRANT_TYPES: [&str; 3] = ["client_credentials", "authorization_code", "refresh_token"];
/// Scopes a client may register.
pub const SCOPES: [&str; 1] = ["accounts"];
/// Client authentication methods at the token endpoint.
pub const AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// Registration or update input (RFC 7591 names). Absent fields keep their value on update
/// and take the default on create.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMetadata {
    /// Shown to customers on the consent page.
    pub client_name: Option<String>,
    /// Exact-match redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// Default `["client_credentials"]`.
    pub grant_types: Option<Vec<String>>,
    /// Space-separated; default `accounts`.
    pub scope: Option<String>,
    /// Default `client_secret_basic`.
    pub token_endpoint_auth_method: Option<String>,
    /// Public keys for `private_key_jwt`.
    pub jwks: Option<Value>,
}

/// A client as the API shows it (never a secret or its hash).
#[derive(Clone, Debug, Serialize)]
pub struct ClientView {
    /// Client id.
    pub client_id: String,
    /// Name.
    pub client_name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Scopes, space-separated.
    pub scope: String,
    /// Authentication method.
    pub token_endpoint_auth_method: String,
    /// Public keys, for `private_key_jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// RFC 7591: registration time, Unix seconds.
    pub client_id_issued_at: i64,
    /// RFC 7591: 0, secrets do not expire (they are rotated).
    pub client_secret_expires_at: i64,
    /// Registration time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When disabled, if it is.
    pub disabled_at: Option<Timestamp>,
    /// Until when the previous secret still works, after a rotation.
    pub previous_secret_expires_at: Option<Timestamp>,
}

impl ClientView {
    /// The API view of a stored row.
    pub fn of(row: &ClientRow) -> Self {
        let split = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        Self {
            client_id: row.client_id.clone(),
            client_name: row.client_name.clone(),
            redirect_uris: split(&row.redirect_uris),
            grant_types: split(&row.grant_types),
            scope: row.scope.clone(),
            token_endpoint_auth_method: row.token_endpoint_auth_method.clone(),
            jwks: row
                .jwks
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
            client_id_issued_at: row.created_at.millis() / 1000,
            client_secret_expires_at: 0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            disabled_at: row.disabled_at,
            previous_secret_expires_at: row.previous_secret_expires_at,
        }
    }
}

/// What the client operations need.
pub struct Clients<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Now.
    pub clock: &'a dyn Clock,
    /// argon2.
    pub hasher: &'a SecretHasher,
    /// Sandbox allows http loopback redirect URIs.
    pub mode: Mode,
    /// Old secret validity after rotation.
    pub grace: Duration,
    /// This node's cache of registrations, told of each change as it commits (the store
    /// tells the other nodes). `None` in the CLI, a process with no cache of its own: a
    /// running SQLite node then sees the change when its entry expires (`gateway.cache_ttl`).
    pub cache: Option<&'a crate::gateway::cache::DecisionCache>,
}

fn invalid(fields: Vec<FieldError>) -> ApiError {
    ApiError::Validation {
        code: "invalid_client_metadata",
        fields,
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("no OAuth client with id {id}"),
    }
}

/// The shape every redirect URI must have: https with a lower-case DNS host (or http on
/// 127.0.0.1/localhost), optional port, a path and query of unreserved characters, no
/// fragment. Deliberately conservative, and the same pattern as `RedirectUri` in
/// `openapi/obgate.yaml` (a test holds them equal), so the contract is exactly what is enforced.
pub const REDIRECT_URI_PATTERN: &str = r"^(https://[a-z]([a-z0-9-]*[a-z0-9])?(\.[a-z]([a-z0-9-]*[a-z0-9])?)*|http://(127\.0\.0\.1|localhost))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~-]*)*(\?[A-Za-z0-9._~=&-]*)?$";

fn redirect_uri_shape() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(REDIRECT_URI_PATTERN)
            .unwrap_or_else(|e| panic!("REDIRECT_URI_PATTERN does not compile: {e}"))
    })
}

fn validate_redirect_uri(uri: &str, mode: Mode) -> Result<(), String> {
    if !redirect_uri_shape().is_match(uri) {
        return Err("must look like https://host[:port][/path][?query] with a lower-case host and no fragment (http only for 127.0.0.1 or localhost in sandbox mode)".into());
    }
    let u = url::Url::parse(uri).map_err(|_| "not an absolute URI".to_owned())?;
    if u.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost"));
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback && mode == Mode::Sandbox => Ok(()),
        "http" if loopback => Err("http is allowed only in sandbox mode; use https".into()),
        "http" => {
            Err("must be https (http only for 127.0.0.1 or localhost in sandbox mode)".into())
        }
        s => Err(format!("scheme {s} is not allowed; use https")),
    }
}

/// A JWK set for `private_key_jwt`: 1–10 public keys, each EC P-256 (`x`, `y`) for ES256 or
/// RSA of at least 2048 bits (`n`, `e`) for PS256, no private members; the OpenAPI
/// `ClientJwks` schema states the same rules.
fn validate_jwks(jwks: &Value) -> Result<(), String> {
    let b64url = |s: Option<&str>, min: usize, max: usize| {
        s.is_some_and(|v| {
            (min..=max).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .filter(|k| (1..=10).contains(&k.len()))
        .ok_or("must be a JWK set with 1 to 10 keys: {\"keys\": [...]}")?;
    for (i, k) in keys.iter().enumerate() {
        let s = |f: &str| k.get(f).and_then(Value::as_str);
        let ok = match s("kty") {
            Some("EC") => {
                s("crv") == Some("P-256")
                    && b64url(s("x"), 43, 43)
                    && b64url(s("y"), 43, 43)
                    && k.get("alg").is_none_or(|a| a == "ES256")
            }
            Some("RSA") => {
                b64url(s("n"), 342, 2048)
                    && b64url(s("e"), 1, 8)
                    && k.get("alg").is_none_or(|a| a == "PS256")
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "keys[{i}] must be an EC P-256 public key (x, y; alg ES256) or an RSA public key of 2048 bits or more (n, e; alg PS256)"
            ));
        }
        if k.get("d").is_some() {
            return Err(format!(
                "keys[{i}] contains a private key; send public keys only"
            ));
        }
        if k.get("kid").is_some_and(|v| !v.is_string()) {
            return Err(format!("keys[{i}].kid must be a string"));
        }
    }
    Ok(())
}

/// Checks a full set of metadata, listing every problem.
fn validate(row: &ClientRow, jwks: Option<&Value>, mode: Mode) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let name = row.client_name.trim();
    if name.is_empty() || row.client_name.chars().count() > 100 {
        errors.push(FieldError::invalid(
            "client_name",
            "must be 1 to 100 characters",
        ));
    } else if row.client_name.chars().any(char::is_control) || name != row.client_name {
        errors.push(FieldError::invalid(
            "client_name",
            "must not contain control characters or start or end with a space",
        ));
    }
    let grants: Vec<&str> = row.grant_types.split_whitespace().collect();
    if grants.is_empty() {
        errors.push(FieldError::invalid(
            "grant_types",
            "must name at least one grant type",
        ));
    }
    for (i, g) in grants.iter().enumerate() {
        if !GRANT_TYPES.contains(g) {
            errors.push(FieldError::invalid(
                format!("grant_types[{i}]"),
                format!(
                    "unsupported grant type; expected one of {}",
                    GRANT_TYPES.join(", ")
                ),
            ));
        }
    }
    let uris: Vec<&str> = row.redirect_uris.split_whitespace().collect();
    if grants.contains(&"authorization_code") && uris.is_empty() {
        errors.push(FieldError::invalid(
            "redirect_uris",
            "authorization_code needs at least one redirect URI",
        ));
    }
    if grants.contains(&"refresh_token") && !grants.contains(&"authorization_code") {
        errors.push(FieldError::invalid(
            "grant_types",
            "refresh_token is only issued with authorization_code",
        ));
    }
    if uris.len() > 10 {
        errors.push(FieldError::invalid(
            "redirect_uris",
            "at most 10 redirect URIs",
        ));
    }
    for (i, u) in uris.iter().enumerate() {
        if let Err(e) = validate_redirect_uri(u, mode) {
            errors.push(FieldError::invalid(format!("redirect_uris[{i}]"), e));
        }
    }
    let scopes: Vec<&str> = row.scope.split_whitespace().collect();
    if scopes.is_empty() {
        errors.push(FieldError::invalid("scope", "must name at least one scope"));
    }
    for s in &scopes {
        if !SCOPES.contains(s) {
            errors.push(FieldError::invalid(
                "scope",
                format!("unknown scope {s:?}; expected {}", SCOPES.join(", ")),
            ));
        }
    }
    let method = row.token_endpoint_auth_method.as_str();
    if !AUTH_METHODS.contains(&method) {
        errors.push(FieldError::invalid(
            "token_endpoint_auth_method",
            format!("expected one of {}", AUTH_METHODS.join(", ")),
        ));
    }
    match (method, jwks) {
        ("private_key_jwt", None) => errors.push(FieldError::missing("jwks")),
        ("private_key_jwt", Some(j)) => {
            if let Err(e) = validate_jwks(j) {
                errors.push(FieldError::invalid("jwks", e));
            }
        }
        (_, Some(_)) => errors.push(FieldError::invalid(
            "jwks",
            "only for token_endpoint_auth_method private_key_jwt",
        )),
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(errors))
    }
}

fn normalise(list: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for item in list {
        if !out.contains(&item.as_str()) {
            out.push(item);
        }
    }
    out.join(" ")
}

fn has_space(list: &Option<Vec<String>>, field: &str) -> Option<FieldError> {
    list.as_ref()?
        .iter()
        .position(|v| v.is_empty() || v.chars().any(char::is_whitespace))
        .map(|i| {
            FieldError::invalid(
                format!("{field}[{i}]"),
                "must be non-empty and contain no spaces",
            )
        })
}

fn too_many(uris: &Option<Vec<String>>) -> Option<FieldError> {
    uris.as_ref()
        .filter(|u| u.len() > 10)
        .map(|_| FieldError::invalid("redirect_uris", "at most 10 redirect URIs"))
}

/// Checks on the lists as sent, before they are de-duplicated and joined for storage.
fn list_errors(meta: &ClientMetadata) -> Vec<FieldError> {
    [
        has_space(&meta.redirect_uris, "redirect_uris"),
        has_space(&meta.grant_types, "grant_types"),
        too_many(&meta.redirect_uris),
    ]
    .into_iter()
    .flatten()
    .collect()
}

impl Clients<'_> {
    fn event(&self, actor: &Actor, action: &'static str, client_id: &str) -> AuditEvent {
        actor
            .event(self.clock.now(), action)
            .on("oauth_client", client_id)
    }

    /// Registers a client; returns it and its secret (for the secret methods).
    pub async fn create(
        &self,
        meta: ClientMetadata,
        actor: &Actor,
    ) -> Result<(ClientView, Option<String>), ApiError> {
        let mut early = list_errors(&meta);
        if meta.client_name.is_none() {
            early.push(FieldError::missing("client_name"));
        }
        if !early.is_empty() {
            return Err(invalid(early));
        }
        let now = self.clock.now();
        let mut id = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
        let client_id = format!(
            "cl_{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id)
        );
        let mut row = ClientRow {
            client_id: client_id.clone(),
            client_name: meta.client_name.unwrap_or_default(),
            redirect_uris: normalise(&meta.redirect_uris.unwrap_or_default()),
            grant_types: normalise(
                &meta
                    .grant_types
                    .unwrap_or_else(|| vec!["client_credentials".into()]),
            ),
            scope: meta.scope.unwrap_or_else(|| "accounts".into()),
            token_endpoint_auth_method: meta
                .token_endpoint_auth_method
                .unwrap_or_else(|| "client_secret_basic".into()),
            jwks: meta.jwks.as_ref().map(Value::to_string),
            secret_hash: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            disabled_at: None,
        };
        validate(&row, meta.jwks.as_ref(), self.mode)?;
        let secret = if row.token_endpoint_auth_method == "private_key_jwt" {
            None
        } else {
            let secret = generate_secret();
            row.secret_hash = Some(
                self.hasher
                    .hash(&secret)
                    .await
                    .map_err(ApiError::internal)?,
            );
            Some(secret)
        };
        let audit = self.event(actor, "oauth_client.create", &client_id);
        self.store.insert_client(&row, &audit).await?;
        Ok((ClientView::of(&row), secret))
    }

    /// An active client by id. A disabled client is gone for the API (404, saying when it was
    /// disabled); its record stays for the audit trail.
    pub async fn get(&self, client_id: &str) -> Result<ClientRow, ApiError> {
        let row = self
            .store
            .get_client(client_id)
            .await?
            .ok_or_else(|| not_found(client_id))?;
        match row.disabled_at {
            Some(at) => Err(ApiError::NotFound {
                message: format!("OAuth client {client_id} was disabled at {at}"),
            }),
            None => Ok(row),
        }
    }

    /// Changes metadata (not the authentication method).
    pub async fn update(
        &self,
        client_id: &str,
        patch: ClientMetadata,
        actor: &Actor,
    ) -> Result<ClientView, ApiError> {
        let mut row = self.get(client_id).await?;
        let early: Vec<FieldError> = list_errors(&patch)
            .into_iter()
            .chain(
                patch
                    .token_endpoint_auth_method
                    .as_ref()
                    .filter(|m| **m != row.token_endpoint_auth_method)
                    .map(|_| {
                        FieldError::invalid(
                            "token_endpoint_auth_method",
                            "cannot change; register a new client for another method",
                        )
                    }),
            )
            .collect();
        if !early.is_empty() {
            return Err(invalid(early));
        }
        if let Some(v) = patch.client_name {
            row.client_name = v;
        }
        if let Some(v) = patch.redirect_uris {
            row.redirect_uris = normalise(&v);
        }
        if let Some(v) = patch.grant_types {
            row.grant_types = normalise(&v);
        }
        if let Some(v) = patch.scope {
            row.scope = v;
        }
        if let Some(v) = &patch.jwks {
            row.jwks = Some(v.to_string());
        }
        let jwks: Option<Value> = row
            .jwks
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok());
        validate(&row, jwks.as_ref(), self.mode)?;
        let read_at = self.touch(&mut row);
        let audit = self.event(actor, "oauth_client.update", client_id);
        if !self.store.update_client(&row, read_at, &audit).await? {
            return Err(self.lost(client_id).await);
        }
        self.changed(client_id);
        Ok(ClientView::of(&row))
    }

    /// Moves `row.updated_at` forward (strictly, so it tells every write apart) and answers
    /// the value read, for the conditional write.
    fn touch(&self, row: &mut ClientRow) -> Timestamp {
        let read_at = row.updated_at;
        let next = read_at.plus(Duration::from_millis(1));
        row.updated_at = self.clock.now().max(next);
        read_at
    }

    /// Why a conditional write found the client changed: disabled (or gone) meanwhile is a
    /// 404 as for any disabled client, anything else a 409 to read it again.
    async fn lost(&self, client_id: &str) -> ApiError {
        match self.get(client_id).await {
            Err(e) => e,
            Ok(_) => ApiError::Conflict {
                code: "client_changed",
                message: format!(
                    "OAuth client {client_id} changed while this request ran (a secret \
                     rotation or an update); read it again and retry"
                ),
            },
        }
    }

    /// Drops this node's cached copy of a registration that just changed.
    fn changed(&self, client_id: &str) {
        use crate::events::invalidation::{Follower, Invalidation};
        if let Some(cache) = self.cache {
            cache.apply(&Invalidation::Client(client_id.to_owned()));
        }
    }

    /// Disables a client: refused everywhere from the next request on. Idempotent.
    /// A change that raced it (a rotation, an update) is read again and disabled after it:
    /// a disable is never lost, nor undone by the other write.
    pub async fn disable(&self, client_id: &str, actor: &Actor) -> Result<ClientView, ApiError> {
        for _ in 0..5 {
            let mut row = self
                .store
                .get_client(client_id)
                .await?
                .ok_or_else(|| not_found(client_id))?;
            if row.disabled_at.is_some() {
                return Ok(ClientView::of(&row));
            }
            let read_at = self.touch(&mut row);
            row.disabled_at = Some(row.updated_at);
            let audit = self.event(actor, "oauth_client.disable", client_id);
            if self.store.update_client(&row, read_at, &audit).await? {
                self.changed(client_id);
                return Ok(ClientView::of(&row));
            }
        }
        Err(ApiError::Conflict {
            code: "client_changed",
            message: format!(
                "OAuth client {client_id} kept changing while it was being disabled; retry"
            ),
        })
    }

    /// Issues a new secret; the old one keeps working for the grace period.
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        actor: &Actor,
    ) -> Result<(ClientView, String), ApiError> {
        let mut row = self.get(client_id).await?;
        if row.token_endpoint_auth_method == "private_key_jwt" {
            return Err(ApiError::Conflict {
                code: "client_has_no_secret",
                message: "this client authenticates with private_key_jwt; update its jwks instead"
                    .into(),
            });
        }
        let secret = generate_secret();
        let now = self.clock.now();
        row.previous_secret_hash = row.secret_hash.take();
        row.previous_secret_expires_at = Some(now.plus(self.grace));
        row.secret_hash = Some(
            self.hasher
                .hash(&secret)
                .await
                .map_err(ApiError::internal)?,
        );
        let read_at = self.touch(&mut row);
        let audit = self.event(actor, "oauth_client.rotate_secret", client_id);
        // The new secret is handed out only if it was stored: a disable (or another change)
        // while it was being hashed wins.
        if !self.store.update_client(&row, read_at, &audit).await? {
            return Err(self.lost(client_id).await);
        }
        self.changed(client_id);
        Ok((ClientView::of(&row), secret))
    }
}

/// The scope a request may have: the client's own when `requested` is absent, else a
/// non-empty subset of it; the error says what is wrong.
pub fn requested_scope(client_scope: &str, requested: Option<&str>) -> Result<String, String> {
    let Some(requested) = requested else {
        return Ok(client_scope.to_owned());
    };
    let allowed: Vec<&str> = client_scope.split_whitespace().collect();
    let asked: Vec<&str> = requested.split_whitespace().collect();
    if asked.is_empty() {
        return Err("scope is empty".into());
    }
    if let Some(extra) = asked.iter().find(|r| !allowed.contains(r)) {
        return Err(format!("scope {extra:?} is not registered for this client"));
    }
    Ok(asked.join(" "))
}

#[cfg(test)]
mod redirect_uri_tests {
    use super::*;

    #[test]
    fn any_tcp_port_is_accepted_and_only_tcp_ports() {
        // Native and local development apps listen on ephemeral (five-digit) ports.
        for ok in [
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:54321/callback",
            "https://tpp.example:65535/cb",
            "https://tpp.example/cb?x=1",
        ] {
            assert_eq!(validate_redirect_uri(ok, Mode::Sandbox), Ok(()), "{ok}");
        }
        for bad in [
            "https://tpp.example:65536/cb",
            "https://tpp.example:0/cb",
            "https://tpp.example:123456/cb",
            "https://tpp.example/cb#frag",
        ] {
            assert!(validate_redirect_uri(bad, Mode::Sandbox).is_err(), "{bad}");
        }
    }
}
