//! The OAuth2 authorization server.
//!
//! | module | holds |
//! |---|---|
//! | [`keys`] | signing keys: generation, encryption at rest, rotation, the JWKS |
//! | [`jwt`] | RFC 9068 access tokens: claims, signing, verification |
//! | `routes` | `GET /oauth2/jwks` |

pub mod jwt;
pub mod keys;
mod routes;

pub use routes::routes;
