//! Arbitrary bytes as the Bond KYC requests (a customer profile, a verification start): each
//! field's rule answers, every error is a 400, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let today = time::macros::date!(2026 - 11 - 30);
    if let Err(e) = obgate::kyc::customers::parse_profile(&body, None, today) {
        assert_eq!(e.status().as_u16(), 400, "{e}");
    }
    if let Err(e) = obgate::kyc::verification::check_start(&body) {
        assert_eq!(e.status().as_u16(), 400, "{e}");
    }
});
