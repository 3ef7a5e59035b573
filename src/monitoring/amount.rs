//! Money amounts: exact decimal strings in, integer minor units out.
//!
//! Transaction monitoring compares amounts against thresholds, sums them over windows and
//! shows them to compliance officers, so an amount must never be approximated. Everything
//! inside obgate is an `i64` count of the currency's minor unit (pence, cents, yen, fils);
//! the only conversions are here:
//!
//! * [`parse_amount`] turns the decimal string an API client sent (`"125.50"`) into minor
//!   units, refusing anything ambiguous (signs, exponents, stray dots) and anything more
//!   precise than the currency allows, with a message that says what to fix;
//! * [`format_minor`] turns minor units back into a readable `"125.50 GBP"` with integer
//!   arithmetic only;
//! * [`major_to_minor`] scales configured thresholds (written in major units) to minor units.
//!
//! The number of minor-unit digits per currency comes from ISO 4217 ([`exponent`]).

use rust_decimal::Decimal;

/// The largest accepted integer part, in major units (15 digits), so that every accepted
/// amount fits an `i64` of minor units even for three-decimal currencies.
const MAX_MAJOR_DIGITS: usize = 15;

/// The message for an amount that is too large.
const TOO_LARGE: &str = "must be at most 999999999999999 in major units";

/// The message for an amount that is not a plain positive decimal string.
const NOT_DECIMAL: &str = "must be a positive decimal string like \"125.50\"";

/// ISO 4217 minor-unit digits of a currency, so amounts can be scaled and validated exactly.
///
/// Currencies without a listed exception use two digits, which is the ISO default.
pub fn exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Whether a string has the shape of an ISO 4217 code (three upper-case ASCII letters), so
/// a request with `"gbp"` or `"£"` is refused before any amount is interpreted.
pub fn valid_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Parses an exact, positive decimal string into minor units of `currency`, so monitoring
/// never works on a rounded or misread amount.
///
/// Accepted: digits, optionally followed by `.` and more digits (`"12500"`, `"12500.5"`,
/// `"0.01"`). Refused, with a message saying what to fix: signs, exponents, spaces, a leading
/// or trailing dot, zero, more than 15 integer digits, and more decimal places than the
/// currency has. Trailing zeros past the currency's precision are harmless (`"10.500"` GBP is
/// 1050 pence): precision is decided by value, not by the text.
pub fn parse_amount(s: &str, currency: &str) -> Result<i64, String> {
    let (int_part, frac_part) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !frac_part.is_none_or(all_digits) {
        return Err(NOT_DECIMAL.to_string());
    }
    if int_part.trim_start_matches('0').len() > MAX_MAJOR_DIGITS {
        return Err(TOO_LARGE.to_string());
    }
    let exp = exponent(currency);
    // The value's real precision: the fraction without its trailing zeros.
    let significant_places = frac_part.map_or(0, |f| f.trim_end_matches('0').len());
    let places_error = |places: usize| {
        if exp == 0 {
            format!("{currency} has no decimal places; \"{s}\" has {places}")
        } else {
            format!("{currency} has {exp} decimal places; \"{s}\" has {places}")
        }
    };
    // Parse without the insignificant text (leading integer zeros, trailing fraction zeros),
    // so a long run of zeros cannot exceed `Decimal`'s 28 digits.
    let int_trimmed = match int_part.trim_start_matches('0') {
        "" => "0",
        t => t,
    };
    let canonical = match frac_part.map(|f| f.trim_end_matches('0')) {
        Some(f) if !f.is_empty() => format!("{int_trimmed}.{f}"),
        _ => int_trimmed.to_string(),
    };
    let value = match Decimal::from_str_exact(&canonical) {
        Ok(d) => d.normalize(),
        // Only a fraction longer than `Decimal` holds gets here: far beyond any currency.
        Err(_) => return Err(places_error(significant_places)),
    };
    if value.is_zero() {
        return Err("must be greater than zero".to_string());
    }
    if value.is_sign_negative() {
        return Err(NOT_DECIMAL.to_string());
    }
    let scale = value.scale();
    if scale > exp {
        return Err(places_error(scale as usize));
    }
    let minor = value
        .mantissa()
        .checked_mul(10_i128.pow(exp - scale))
        .and_then(|m| i64::try_from(m).ok());
    minor.ok_or_else(|| TOO_LARGE.to_string())
}

/// Formats minor units as an exact decimal with the currency code (`"12500.00 GBP"`,
/// `"1500000 JPY"`, `"1.250 KWD"`), so alerts and reasons show amounts as a person reads them.
pub fn format_minor(minor: i64, currency: &str) -> String {
    let exp = exponent(currency);
    if exp == 0 {
        return format!("{minor} {currency}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let divisor = 10_u64.pow(exp);
    let (major, frac) = (abs / divisor, abs % divisor);
    let width = exp as usize;
    format!("{sign}{major}.{frac:0width$} {currency}")
}

/// Converts whole major units (how thresholds are configured) to minor units, saturating at
/// `i64::MAX` so an absurd configured threshold means "never" rather than wrapping around.
pub fn major_to_minor(major: u64, currency: &str) -> i64 {
    let minor = u128::from(major).saturating_mul(10_u128.pow(exponent(currency)));
    i64::try_from(minor).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(exponent("GBP"), 2);
        assert_eq!(exponent("EUR"), 2);
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("KRW"), 0);
        assert_eq!(exponent("XOF"), 0);
        assert_eq!(exponent("KWD"), 3);
        assert_eq!(exponent("BHD"), 3);
        assert_eq!(exponent("TND"), 3);
        // Unknown codes fall back to the ISO default of two.
        assert_eq!(exponent("ZZZ"), 2);
    }

    #[test]
    fn currency_codes_must_be_three_upper_case_letters() {
        assert!(valid_currency("GBP"));
        assert!(valid_currency("JPY"));
        assert!(!valid_currency("gbp"));
        assert!(!valid_currency("GB"));
        assert!(!valid_currency("GBPX"));
        assert!(!valid_currency("GB1"));
        assert!(!valid_currency(""));
        assert!(!valid_currency("£"));
        assert!(!valid_currency("ÉUR"));
    }

    #[test]
    fn plain_decimals_become_minor_units() {
        assert_eq!(parse_amount("12500", "GBP"), Ok(1_250_000));
        assert_eq!(parse_amount("12500.5", "GBP"), Ok(1_250_050));
        assert_eq!(parse_amount("12500.50", "GBP"), Ok(1_250_050));
        assert_eq!(parse_amount("0.01", "GBP"), Ok(1));
        assert_eq!(parse_amount("007.10", "GBP"), Ok(710));
    }

    #[test]
    fn trailing_zeros_beyond_the_precision_are_allowed() {
        assert_eq!(parse_amount("10.500", "GBP"), Ok(1050));
        assert_eq!(parse_amount("1500000.000", "JPY"), Ok(1_500_000));
        assert_eq!(
            parse_amount("1.0000000000000000000000000000000000", "GBP"),
            Ok(100)
        );
    }

    #[test]
    fn more_decimal_places_than_the_currency_has_are_refused() {
        assert_eq!(
            parse_amount("1.005", "GBP"),
            Err("GBP has 2 decimal places; \"1.005\" has 3".to_string())
        );
        assert_eq!(
            parse_amount("1.5", "JPY"),
            Err("JPY has no decimal places; \"1.5\" has 1".to_string())
        );
        assert_eq!(
            parse_amount("1.2345", "KWD"),
            Err("KWD has 3 decimal places; \"1.2345\" has 4".to_string())
        );
        let long = format!("1.{}", "1".repeat(40));
        assert!(parse_amount(&long, "GBP").is_err_and(|e| e.starts_with("GBP has 2")));
    }

    #[test]
    fn jpy_and_kwd_use_their_own_precision() {
        assert_eq!(parse_amount("1500000", "JPY"), Ok(1_500_000));
        assert_eq!(parse_amount("1.25", "KWD"), Ok(1250));
        assert_eq!(parse_amount("0.001", "KWD"), Ok(1));
    }

    #[test]
    fn anything_but_plain_digits_is_refused() {
        for bad in [
            "1e3", "-5", "+5", ".5", "5.", "", ".", " 5", "5 ", "1,000", "1_000", "1.2.3", "NaN",
            "0x10", "١٢",
        ] {
            assert_eq!(
                parse_amount(bad, "GBP"),
                Err(NOT_DECIMAL.to_string()),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn zero_is_refused() {
        for zero in ["0", "0.00", "000", "0.0000000"] {
            assert_eq!(
                parse_amount(zero, "GBP"),
                Err("must be greater than zero".to_string()),
                "{zero:?}"
            );
        }
    }

    #[test]
    fn fifteen_integer_digits_is_the_limit() {
        assert_eq!(
            parse_amount("999999999999999", "GBP"),
            Ok(99_999_999_999_999_900)
        );
        assert_eq!(
            parse_amount("999999999999999.999", "KWD"),
            Ok(999_999_999_999_999_999)
        );
        // Leading zeros are not digits of the value.
        assert_eq!(
            parse_amount("0000999999999999999", "JPY"),
            Ok(999_999_999_999_999)
        );
        assert_eq!(
            parse_amount("1000000000000000", "GBP"),
            Err(TOO_LARGE.to_string())
        );
        assert_eq!(
            parse_amount(&"9".repeat(40), "GBP"),
            Err(TOO_LARGE.to_string())
        );
    }

    #[test]
    fn formatting_is_exact() {
        assert_eq!(format_minor(1_250_000, "GBP"), "12500.00 GBP");
        assert_eq!(format_minor(1_500_000, "JPY"), "1500000 JPY");
        assert_eq!(format_minor(1250, "KWD"), "1.250 KWD");
        assert_eq!(format_minor(1, "GBP"), "0.01 GBP");
        assert_eq!(format_minor(0, "GBP"), "0.00 GBP");
        assert_eq!(format_minor(-1, "GBP"), "-0.01 GBP");
        assert_eq!(format_minor(i64::MIN, "GBP"), "-92233720368547758.08 GBP");
        assert_eq!(format_minor(i64::MAX, "KWD"), "9223372036854775.807 KWD");
    }

    #[test]
    fn parse_and_format_round_trip() {
        for (text, currency) in [("125.50", "GBP"), ("7", "JPY"), ("0.125", "BHD")] {
            let minor = parse_amount(text, currency).unwrap();
            let shown = format_minor(minor, currency);
            let (number, code) = shown.split_once(' ').unwrap();
            assert_eq!(code, currency);
            assert_eq!(parse_amount(number, currency), Ok(minor));
        }
    }

    #[test]
    fn major_units_scale_and_saturate() {
        assert_eq!(major_to_minor(10_000, "GBP"), 1_000_000);
        assert_eq!(major_to_minor(1_500_000, "JPY"), 1_500_000);
        assert_eq!(major_to_minor(10_000, "KWD"), 10_000_000);
        assert_eq!(major_to_minor(0, "GBP"), 0);
        assert_eq!(major_to_minor(u64::MAX, "GBP"), i64::MAX);
        assert_eq!(major_to_minor(u64::MAX, "JPY"), i64::MAX);
    }
}
