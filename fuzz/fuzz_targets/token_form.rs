//! Arbitrary bytes as the token endpoint's form body (and as its content type): the parser
//! answers a parameter map or a 400, never panics, and never returns a repeated parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map(|b| usize::from(*b) % 48).unwrap_or(0);
    let (ct, body) = data.split_at(split.min(data.len()));
    let mut headers = axum::http::HeaderMap::new();
    let content_type = axum::http::HeaderValue::from_bytes(ct).unwrap_or(
        axum::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(axum::http::header::CONTENT_TYPE, content_type);
    if let Ok(params) = obgate::oauth::token::parse_form(&headers, body) {
        let pairs = form_pairs(body);
        assert!(params.len() <= pairs, "more parameters than the body holds");
    }
});

fn form_pairs(body: &[u8]) -> usize {
    body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count()
}
