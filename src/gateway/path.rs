//! Canonical paths only: the path the permission check sees is the path that is proxied.
//!
//! Under `/open-banking`, every segment must be plain (`A–Z a–z 0–9 . _ ~ -`), never `.` or
//! `..`, with no empty segments (`//`), no trailing slash, no percent-encoding at all (so no
//! encoded slash, encoded dot or double encoding) and no `;` parameters. Anything else is
//! refused before routing with `400 UK.OBIE.Resource.InvalidFormat`, rather than decoded in a
//! way the upstream might decode differently.

use std::ops::ControlFlow;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ObError};
use crate::http::wrap::Around;

/// Why a path is not canonical, or `None` when it is.
pub fn problem(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("the path must start with /");
    };
    if rest.is_empty() {
        return None;
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Some("empty path segments (// or a trailing slash) are not allowed");
        }
        if segment == "." || segment == ".." {
            return Some("dot segments are not allowed");
        }
        if segment.contains('%') {
            return Some("percent-encoded characters are not allowed in the path");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        {
            return Some("path segments may hold only letters, digits, '.', '_', '~' and '-'");
        }
    }
    None
}

/// Refuses non-canonical `/open-banking` paths before they are routed.
#[derive(Clone, Copy, Debug)]
pub struct CanonicalOnly;

impl Around for CanonicalOnly {
    type Ctx = ();

    fn before(&self, req: &mut Request) -> ControlFlow<Response> {
        let path = req.uri().path();
        if path.starts_with("/open-banking/") {
            if let Some(why) = problem(path) {
                return ControlFlow::Break(
                    ApiError::OpenBanking {
                        status: StatusCode::BAD_REQUEST,
                        errors: vec![ObError {
                            code: "UK.OBIE.Resource.InvalidFormat",
                            message: format!("the request path is not canonical: {why}"),
                            path: None,
                        }],
                    }
                    .into_response(),
                );
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_segments_pass() {
        assert_eq!(
            problem("/open-banking/v3.1/aisp/accounts/acc-1.2_x~y"),
            None
        );
        for bad in [
            "/open-banking/v3.1/aisp/accounts/../balances",
            "/open-banking/v3.1/aisp/accounts/./x",
            "/open-banking/v3.1/aisp/accounts/%2e%2e/balances",
            "/open-banking/v3.1/aisp/accounts/a%2Fb",
            "/open-banking/v3.1/aisp/accounts/a%252e",
            "/open-banking/v3.1/aisp//accounts",
            "/open-banking/v3.1/aisp/accounts/",
            "/open-banking/v3.1/aisp/accounts;jsessionid=1",
            "/open-banking/v3.1/aisp/accounts/a\\b",
        ] {
            assert!(problem(bad).is_some(), "{bad} must be refused");
        }
    }

    mod properties {
        use super::super::problem;
        use proptest::prelude::*;

        /// Segments drawn from the characters that matter: plain ones, dots, percent signs,
        /// slashes, backslashes, semicolons and a few bytes beyond ASCII.
        fn any_path() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    4 => "[A-Za-z0-9._~-]{1,8}",
                    1 => Just(".".to_owned()),
                    1 => Just("..".to_owned()),
                    1 => Just(String::new()),
                    1 => "[%./;\\a-f0-9]{1,6}",
                    1 => "[\\u{80}-\\u{10ffff}]{1,2}",
                ],
                0..8,
            )
            .prop_map(|segments| format!("/open-banking/{}", segments.join("/")))
        }

        proptest! {
            /// Whatever is accepted is a path every server reads the same way: no dot
            /// segments, no empty segments, nothing encoded, nothing but plain characters.
            #[test]
            fn an_accepted_path_has_one_reading(path in any_path()) {
                if problem(&path).is_none() {
                    let segments: Vec<&str> = path[1..].split('/').collect();
                    for s in &segments {
                        prop_assert!(!s.is_empty() && *s != "." && *s != "..", "{path}");
                        prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b)), "{path}");
                    }
                    // Decoding changes nothing, so the upstream cannot read another path.
                    let decoded: String = form_urlencoded::parse(format!("x={path}").as_bytes())
                        .map(|(_, v)| v.into_owned())
                        .collect();
                    prop_assert_eq!(decoded, path.clone());
                }
            }

            /// A traversal or encoding trick added to an accepted path is always refused.
            #[test]
            fn tricks_added_to_any_path_are_refused(
                path in any_path(),
                trick in prop::sample::select(vec!["/..", "/.", "//", "/", "/%2e%2e", "/a%2Fb", "/a;b=c", "/a\\b"]),
            ) {
                let tricked = format!("{path}{trick}");
                prop_assert!(problem(&tricked).is_some(), "{tricked}");
            }
        }
    }
}
