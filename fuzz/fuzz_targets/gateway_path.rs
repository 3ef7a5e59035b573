//! Arbitrary bytes as a gateway path: a path the normaliser accepts has one reading (nothing
//! to decode, no dot or empty segments), and routing it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if obgate::gateway::path::problem(path).is_none() {
        for segment in path.split('/').skip(1) {
            assert!(!segment.is_empty() || path == "/", "{path}");
            assert!(segment != "." && segment != "..", "{path}");
            assert!(!segment.contains('%'), "{path}");
        }
        let _ = obgate::gateway::route_map::lookup(path);
    }
});
