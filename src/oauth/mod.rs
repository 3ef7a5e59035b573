//! The OAuth2 authorization server.
//!
//! | module | holds |
//! |---|---|
//! | [`keys`] | signing keys: generation, encryption at rest, rotation, the JWKS |
//! | [`jwt`] | RFC 9068 access tokens: claims, signing, verification |
//! | [`secrets`] | client secrets: generation, argon2id off the runtime |
//! | [`client_auth`] | client authentication for every client-authenticated endpoint |
//! | [`assertion`] | `private_key_jwt` (RFC 7523) client assertions |
//! | [`clients`] | TPP clients: RFC 7591 metadata, registration, rotation, disabling |
//! | `client_routes` | `/api/v0/oauth-clients` |
//! | [`token`] | `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke` |
//! | `routes` | JWKS, RFC 8414 metadata, and the route table |

pub mod assertion;
pub mod client_auth;
mod client_routes;
pub mod clients;
pub mod jwt;
pub mod keys;
mod routes;
pub mod secrets;
pub mod token;

pub use client_routes::routes as client_routes;
pub use routes::routes;
