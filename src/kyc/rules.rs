//! Bond's field rules for customers and KYC, as patterns shared with `openapi/obgate.yaml`.
//!
//! Each [`Rule`] pattern is the exact text of the spec's `pattern` (a test compares them), so
//! the server enforces exactly what the contract says.

use time::{Date, Month};

use crate::http::validate::Rule;

/// First and last names: 2–50 ASCII letters, spaces or apostrophes (Bond's rule).
pub const NAME: Rule = Rule {
    pattern: r"^[A-Za-z' ]{2,50}$",
    message: "Must be 2 to 50 letters, spaces or apostrophes.",
};
/// Middle names may be an initial.
pub const MIDDLE_NAME: Rule = Rule {
    pattern: r"^[A-Za-z' ]{1,50}$",
    message: "Must be 1 to 50 letters, spaces or apostrophes.",
};
/// `YYYY-MM-DD`; that it is a real past date of someone 18 or older is checked in code.
pub const DOB: Rule = Rule {
    pattern: r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    message: "Not a valid date: expected YYYY-MM-DD.",
};
/// Street lines.
pub const STREET: Rule = Rule {
    pattern: r"^[^\x00-\x1f\x7f]{1,40}$",
    message: "Must be 1 to 40 characters.",
};
/// City and state or region.
pub const PLACE: Rule = Rule {
    pattern: r"^[^\x00-\x1f\x7f]{1,40}$",
    message: "Must be 1 to 40 characters.",
};
/// Postal codes of any country: letters, digits, spaces and hyphens.
pub const ZIP: Rule = Rule {
    pattern: r"^[A-Za-z0-9][A-Za-z0-9 -]{1,9}$",
    message: "Not a valid postal code: 2 to 10 letters, digits, spaces or hyphens.",
};
/// Bond program ids.
pub const PROGRAM_ID: Rule = Rule {
    pattern: r"^[A-Za-z0-9_-]{1,64}$",
    message: "Not a valid program id: 1 to 64 letters, digits, hyphens or underscores.",
};
/// `#########` or `###-##-####`.
pub const SSN: Rule = Rule {
    pattern: r"^([0-9]{9}|[0-9]{3}-[0-9]{2}-[0-9]{4})$",
    message: "Not a valid SSN: expected ######### or ###-##-####.",
};
/// National phone number, digits only.
pub const PHONE: Rule = Rule {
    pattern: r"^[0-9]{4,14}$",
    message: "Not a valid phone number: 4 to 14 digits, without the country code.",
};
/// Country calling code, digits only.
pub const PHONE_COUNTRY_CODE: Rule = Rule {
    pattern: r"^[1-9][0-9]{0,2}$",
    message: "Not a valid country calling code: 1 to 3 digits, e.g. 1 or 44.",
};
/// Email address (ASCII, the common subset of RFC 5322).
pub const EMAIL: Rule = Rule {
    pattern: r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
    message: "Not a valid email address.",
};
/// Free text of a review decision.
pub const REASON: Rule = Rule {
    pattern: r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]{1,500}$",
    message: "Must be 1 to 500 characters.",
};

/// ISO 3166-1 alpha-2 country codes (officially assigned).
pub const COUNTRIES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Checks a date of birth that matched [`DOB`]: a real calendar date, in the past, and the
/// customer at least 18 on `today`.
pub fn check_dob(dob: &str, today: Date) -> Result<Date, &'static str> {
    let part = |r: std::ops::Range<usize>| dob.get(r).and_then(|s| s.parse::<i32>().ok());
    let (Some(y), Some(m), Some(d)) = (part(0..4), part(5..7), part(8..10)) else {
        return Err("Not a valid date: expected YYYY-MM-DD.");
    };
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or("Not a valid date: no such month.")?;
    let day = u8::try_from(d).map_err(|_| "Not a valid date: no such day.")?;
    let date = Date::from_calendar_date(y, month, day)
        .map_err(|_| "Not a valid date: no such day in that month.")?;
    if date >= today {
        return Err("Must be a date in the past.");
    }
    if y < 1900 {
        return Err("Must be after 1900-01-01.");
    }
    // 18th birthday; someone born on 29 February turns 18 on 1 March in common years.
    let adult_on = Date::from_calendar_date(y + 18, month, day)
        .or_else(|_| Date::from_calendar_date(y + 18, Month::March, 1))
        .map_err(|_| "Not a valid date.")?;
    if adult_on > today {
        return Err("The customer must be at least 18 years old.");
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dob_must_be_real_past_and_adult() {
        let today = date!(2026 - 11 - 22);
        assert!(check_dob("1990-04-15", today).is_ok());
        assert!(check_dob("2008-11-22", today).is_ok(), "18 today");
        assert_eq!(
            check_dob("2008-11-23", today),
            Err("The customer must be at least 18 years old.")
        );
        assert!(check_dob("1990-02-30", today).is_err());
        assert!(check_dob("1990-13-01", today).is_err());
        assert!(check_dob("2030-01-01", today).is_err());
        assert!(check_dob("1899-12-31", today).is_err());
        assert!(check_dob("2008-02-29", date!(2026 - 02 - 28)).is_err());
    }

    #[test]
    fn rules_accept_bonds_examples_and_refuse_the_rest() {
        assert!(SSN.matches("123-45-6789") && SSN.matches("123456789"));
        assert!(!SSN.matches("123-456-789") && !SSN.matches("12345678"));
        assert!(NAME.matches("O'Brien") && NAME.matches("Mary Ann"));
        assert!(!NAME.matches("J") && !NAME.matches("R2D2"));
        assert!(EMAIL.matches("jane.doe+kyc@example.co.uk"));
        assert!(!EMAIL.matches("jane@") && !EMAIL.matches("@example.com") && !EMAIL.matches("a@b"));
        assert!(PHONE.matches("7700900123") && !PHONE.matches("+447700900123"));
        assert!(ZIP.matches("10001") && ZIP.matches("SW1A 1AA") && !ZIP.matches("-"));
        assert_eq!(COUNTRIES.len(), 249);
        let mut sorted = COUNTRIES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), COUNTRIES.len(), "no duplicates");
    }
}
