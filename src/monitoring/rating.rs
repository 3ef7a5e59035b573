//! Customer risk rating for due diligence: low, medium or high, with the factors behind it.
//!
//! A bank must know how risky each customer is, both to apply enhanced due diligence to
//! high-risk customers and to watch their transactions more closely (a higher rating lowers
//! the large-amount threshold of the transaction rules). [`rate`] derives the rating from a
//! [`Profile`] of facts obgate already holds: where the customer lives, how KYC was passed,
//! how long the relationship is, whether the name is close to a sanctioned one and whether
//! monitoring alerts are open.
//!
//! Like the transaction rules, rating is a pure function of its inputs, so a rating can be
//! recomputed whenever a fact changes and explained afterwards. Each factor is a stable,
//! machine-readable string (`high_risk_country:IR`, `kyc_kba`, ...) stored with the rating;
//! the level is simply the highest level among the factors (Low when there are none), so
//! one serious factor is never diluted by the absence of others.

use std::time::Duration;

use super::rules::RiskLevel;
use super::sanctions::SanctionsList;
use crate::clock::Timestamp;

/// The facts about a customer that the rating depends on, gathered by the caller so rating
/// needs no storage access.
#[derive(Clone, Debug)]
pub struct Profile<'a> {
    /// The customer's full name, screened against the sanctions list.
    pub full_name: &'a str,
    /// ISO 3166 alpha-2 codes of the customer's addresses.
    pub countries: Vec<String>,
    /// KYC passed via knowledge-based questions (weaker evidence than documents).
    pub kba_used: bool,
    /// KYC passed via documents or a compliance review (the automatic check was not enough).
    pub manual_review: bool,
    /// When the customer relationship started.
    pub customer_since: Timestamp,
    /// The time of rating, so tests and re-ratings do not depend on the wall clock.
    pub now: Timestamp,
    /// Monitoring alerts still open for the customer.
    pub open_high_alerts: usize,
}

/// The tunable parameters of the rating, so a bank can follow its own risk assessment.
#[derive(Clone, Debug)]
pub struct RatingConfig {
    /// Upper-case ISO 3166 alpha-2 codes of jurisdictions whose residents rate high.
    pub high_risk_countries: Vec<String>,
    /// A customer-name similarity (0.0 to 1.0) to a sanctions-list entry at or above this
    /// rates high.
    pub sanctions_proximity: f64,
    /// Relationships younger than this rate at least medium.
    pub new_relationship: Duration,
}

impl Default for RatingConfig {
    /// The FATF "call for action" jurisdictions (Iran, North Korea, Myanmar), a sanctions
    /// proximity below the transaction rules' threshold (a customer's own name deserves a
    /// wider net), and a 90-day new relationship.
    fn default() -> Self {
        Self {
            high_risk_countries: vec!["IR".into(), "KP".into(), "MM".into()],
            sanctions_proximity: 0.9,
            new_relationship: Duration::from_secs(90 * 86_400),
        }
    }
}

/// A customer's risk rating and the factors that produced it, so the rating can be stored,
/// shown and challenged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rating {
    /// The highest level among the factors; Low when there are none.
    pub level: RiskLevel,
    /// Machine-readable factors, in a fixed order: `high_risk_country:XX` (one per listed
    /// country), `sanctions_proximity`, `monitoring_alert`, `kyc_kba`, `kyc_manual_review`,
    /// `new_relationship`.
    pub factors: Vec<String>,
}

/// Rates a customer, so due diligence and transaction monitoring can scale with the risk.
///
/// High factors: an address in a high-risk country (`high_risk_country:XX`, each country
/// once), a full name close to a sanctions-list entry (`sanctions_proximity`), open monitoring
/// alerts (`monitoring_alert`). Medium factors: KYC via knowledge-based questions (`kyc_kba`),
/// KYC via documents or review (`kyc_manual_review`), a relationship younger than the
/// configured period (`new_relationship`; a start in the future counts as new).
pub fn rate(p: &Profile<'_>, config: &RatingConfig, sanctions: &SanctionsList) -> Rating {
    let mut factors: Vec<(RiskLevel, String)> = Vec::new();

    for country in &p.countries {
        let code = country.trim().to_ascii_uppercase();
        let listed = config
            .high_risk_countries
            .iter()
            .any(|c| c.trim().eq_ignore_ascii_case(&code));
        let factor = format!("high_risk_country:{code}");
        if listed && !factors.iter().any(|(_, f)| *f == factor) {
            factors.push((RiskLevel::High, factor));
        }
    }
    let near_sanctioned = sanctions
        .best_match(p.full_name)
        .is_some_and(|(_, similarity)| similarity >= config.sanctions_proximity);
    let age = p.now.millis().saturating_sub(p.customer_since.millis());
    let young =
        i128::from(age) < i128::try_from(config.new_relationship.as_millis()).unwrap_or(i128::MAX);
    let flags = [
        (near_sanctioned, RiskLevel::High, "sanctions_proximity"),
        (p.open_high_alerts > 0, RiskLevel::High, "monitoring_alert"),
        (p.kba_used, RiskLevel::Medium, "kyc_kba"),
        (p.manual_review, RiskLevel::Medium, "kyc_manual_review"),
        (young, RiskLevel::Medium, "new_relationship"),
    ];
    for (set, level, name) in flags {
        if set {
            factors.push((level, name.to_string()));
        }
    }

    Rating {
        level: factors
            .iter()
            .map(|(level, _)| *level)
            .max()
            .unwrap_or(RiskLevel::Low),
        factors: factors.into_iter().map(|(_, f)| f).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const DAY_MS: i64 = 86_400_000;

    /// An established, document-free, KBA-free UK customer with nothing against them.
    fn profile() -> Profile<'static> {
        Profile {
            full_name: "Jane Doe",
            countries: vec!["GB".to_string()],
            kba_used: false,
            manual_review: false,
            customer_since: Timestamp::from_millis(NOW - 365 * DAY_MS),
            now: Timestamp::from_millis(NOW),
            open_high_alerts: 0,
        }
    }

    fn rate_default(p: &Profile<'_>) -> Rating {
        rate(p, &RatingConfig::default(), &SanctionsList::sandbox())
    }

    fn rating(level: RiskLevel, factors: &[&str]) -> Rating {
        Rating {
            level,
            factors: factors.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_are_the_fatf_call_for_action_list() {
        let c = RatingConfig::default();
        assert_eq!(c.high_risk_countries, ["IR", "KP", "MM"]);
        assert!((c.sanctions_proximity - 0.9).abs() < f64::EPSILON);
        assert_eq!(c.new_relationship, Duration::from_secs(90 * 86_400));
    }

    #[test]
    fn an_ordinary_established_customer_is_low_with_no_factors() {
        assert_eq!(rate_default(&profile()), rating(RiskLevel::Low, &[]));
    }

    #[test]
    fn a_high_risk_country_rates_high() {
        let p = Profile {
            countries: vec!["GB".into(), "IR".into()],
            ..profile()
        };
        assert_eq!(
            rate_default(&p),
            rating(RiskLevel::High, &["high_risk_country:IR"])
        );
    }

    #[test]
    fn country_codes_compare_case_insensitively_and_count_once() {
        let p = Profile {
            countries: vec!["kp".into(), "KP".into(), "mm".into()],
            ..profile()
        };
        assert_eq!(
            rate_default(&p),
            rating(
                RiskLevel::High,
                &["high_risk_country:KP", "high_risk_country:MM"]
            )
        );
        // A lower-case configured list works too.
        let config = RatingConfig {
            high_risk_countries: vec!["ir".into()],
            ..RatingConfig::default()
        };
        let p = Profile {
            countries: vec!["IR".into()],
            ..profile()
        };
        let r = rate(&p, &config, &SanctionsList::sandbox());
        assert_eq!(r.factors, ["high_risk_country:IR"]);
        // Unlisted countries are not factors.
        let p = Profile {
            countries: vec!["DE".into(), "FR".into()],
            ..profile()
        };
        assert_eq!(rate_default(&p).level, RiskLevel::Low);
    }

    #[test]
    fn a_name_close_to_a_sanctioned_one_rates_high() {
        let p = Profile {
            full_name: "Ivan Sanctionof",
            ..profile()
        };
        assert_eq!(
            rate_default(&p),
            rating(RiskLevel::High, &["sanctions_proximity"])
        );
        // A stricter proximity than the similarity (0.97) does not fire.
        let config = RatingConfig {
            sanctions_proximity: 0.98,
            ..RatingConfig::default()
        };
        assert_eq!(
            rate(&p, &config, &SanctionsList::sandbox()).level,
            RiskLevel::Low
        );
        // An empty list never matches.
        assert_eq!(
            rate(&p, &RatingConfig::default(), &SanctionsList::parse("")).level,
            RiskLevel::Low
        );
    }

    #[test]
    fn sanctions_proximity_is_inclusive() {
        let list = SanctionsList::sandbox();
        let p = Profile {
            full_name: "Ivan Sanctionof",
            ..profile()
        };
        let (_, similarity) = list.best_match(p.full_name).unwrap();
        let at = RatingConfig {
            sanctions_proximity: similarity,
            ..RatingConfig::default()
        };
        assert_eq!(rate(&p, &at, &list).factors, ["sanctions_proximity"]);
    }

    #[test]
    fn open_alerts_rate_high() {
        let p = Profile {
            open_high_alerts: 1,
            ..profile()
        };
        assert_eq!(
            rate_default(&p),
            rating(RiskLevel::High, &["monitoring_alert"])
        );
    }

    #[test]
    fn kba_and_manual_review_rate_medium() {
        let kba = Profile {
            kba_used: true,
            ..profile()
        };
        assert_eq!(rate_default(&kba), rating(RiskLevel::Medium, &["kyc_kba"]));
        let manual = Profile {
            manual_review: true,
            ..profile()
        };
        assert_eq!(
            rate_default(&manual),
            rating(RiskLevel::Medium, &["kyc_manual_review"])
        );
    }

    #[test]
    fn a_relationship_younger_than_90_days_rates_medium() {
        let day_89 = Profile {
            customer_since: Timestamp::from_millis(NOW - 90 * DAY_MS + 1),
            ..profile()
        };
        assert_eq!(
            rate_default(&day_89),
            rating(RiskLevel::Medium, &["new_relationship"])
        );
        let exactly_90 = Profile {
            customer_since: Timestamp::from_millis(NOW - 90 * DAY_MS),
            ..profile()
        };
        assert_eq!(rate_default(&exactly_90), rating(RiskLevel::Low, &[]));
        // A start after "now" (clock skew) is treated as new, not as old.
        let future = Profile {
            customer_since: Timestamp::from_millis(NOW + DAY_MS),
            ..profile()
        };
        assert_eq!(rate_default(&future).factors, ["new_relationship"]);
    }

    #[test]
    fn the_level_is_the_highest_factor_and_factors_keep_their_order() {
        let p = Profile {
            full_name: "Sanctionov, Ivan",
            countries: vec!["MM".into(), "GB".into(), "IR".into()],
            kba_used: true,
            manual_review: true,
            customer_since: Timestamp::from_millis(NOW - DAY_MS),
            now: Timestamp::from_millis(NOW),
            open_high_alerts: 2,
        };
        assert_eq!(
            rate_default(&p),
            rating(
                RiskLevel::High,
                &[
                    "high_risk_country:MM",
                    "high_risk_country:IR",
                    "sanctions_proximity",
                    "monitoring_alert",
                    "kyc_kba",
                    "kyc_manual_review",
                    "new_relationship",
                ]
            )
        );
    }

    #[test]
    fn medium_factors_do_not_add_up_to_high() {
        let p = Profile {
            kba_used: true,
            manual_review: true,
            customer_since: Timestamp::from_millis(NOW - DAY_MS),
            ..profile()
        };
        assert_eq!(
            rate_default(&p),
            rating(
                RiskLevel::Medium,
                &["kyc_kba", "kyc_manual_review", "new_relationship"]
            )
        );
    }

    #[test]
    fn one_high_factor_outweighs_medium_ones() {
        let p = Profile {
            kba_used: true,
            open_high_alerts: 1,
            ..profile()
        };
        let r = rate_default(&p);
        assert_eq!(r.level, RiskLevel::High);
        assert_eq!(r.factors, ["monitoring_alert", "kyc_kba"]);
    }
}
