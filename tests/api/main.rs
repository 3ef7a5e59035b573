//! The integration suite: the real app over real HTTP, on SQLite by default and on PostgreSQL
//! when `OBGATE_TEST_POSTGRES_URL` is set. One binary, a module per part.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin;
mod attacks;
mod audit;
mod browser;
mod cli;
mod consents;
mod contract;
mod errors;
mod faults;
mod gateway;
mod gateway_nodes;
mod gateway_tls;
mod health;
mod helpers;
mod http;
mod keys;
mod kyc;
mod kyc_http;
mod limits;
mod monitoring;
mod oauth;
mod ob_spec;
mod pages;
mod pii;
mod private_key_jwt;
mod spec;
mod store;
mod webhooks;
