//! Arbitrary bytes as an account-access-consent request: JSON or not, the profile's rules
//! answer an accepted consent or a 400 listing what is wrong, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obgate::clock::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Err(e) =
        obgate::consent::ob_routes::check_request(&body, Timestamp::from_millis(1_790_000_000_000))
    {
        assert_eq!(e.status().as_u16(), 400, "{e}");
    }
});
