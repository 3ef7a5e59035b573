//! The transaction risk rules: one candidate transaction, the customer's recent history, a
//! score and the reasons behind it.
//!
//! # Design
//!
//! [`assess`] is a pure function: the caller loads the customer's other transactions booked
//! in the [`LOOKBACK`] before the candidate, the customer's risk rating and the sanctions
//! list, and gets back an [`Assessment`]. No clock, no storage and no randomness are involved,
//! so the same inputs always give the same result, a compliance officer can re-run an
//! assessment from the stored facts, and every boundary can be tested exactly.
//!
//! Each rule is small, independent and explainable: when it fires it adds a fixed score and
//! one English sentence ([`Reason`]) that names the amounts and windows involved (never the
//! counterparty's name, which is personal data of a third party). The total is capped at 100
//! and mapped to a [`RiskLevel`] with the configured thresholds.
//!
//! # Conventions
//!
//! * Amounts are `i64` minor units and are only compared within one currency; products and
//!   sums use `i128` so no realistic input overflows.
//! * A window "within W" of the candidate's time `t` is `(t − W, t]`: an item exactly `W`
//!   before the candidate is outside it, an item booked at the same instant is inside.
//! * History booked after the candidate is ignored, so re-assessing an old transaction gives
//!   the answer it would have had at the time.
//! * Large-amount thresholds are configured in major units per currency and tightened by the
//!   customer's rating ([`RuleConfig::large_threshold_minor`]), so a high-risk customer is
//!   looked at from a lower amount.

use std::collections::BTreeMap;
use std::time::Duration;

use super::amount::{format_minor, major_to_minor};
use super::sanctions::SanctionsList;
use crate::clock::Timestamp;

/// How much history the caller must load for [`assess`]: transactions booked in
/// `[t − LOOKBACK, t]`. The longest rule window is the 90-day average of `new_counterparty`;
/// one more day is a margin.
pub const LOOKBACK: Duration = Duration::from_secs(91 * 86_400);

/// One day: the window of `large_daily_total` and `daily_velocity`.
const DAY: Duration = Duration::from_secs(86_400);
/// How far back `daily_velocity` looks for the customer's usual activity.
const BASELINE_WINDOW: Duration = Duration::from_secs(31 * 86_400);
/// The number of days the usual daily activity is averaged over (`[t − 31 days, t − 24h]`).
const BASELINE_DAYS: usize = 30;
/// A customer with history older than this has a usable baseline for `daily_velocity`.
const ESTABLISHED_AFTER: Duration = Duration::from_secs(7 * 86_400);
/// The window of earlier debits `new_counterparty` averages over.
const NEW_COUNTERPARTY_WINDOW: Duration = Duration::from_secs(90 * 86_400);
/// The large-amount threshold (major units) when neither the currency nor `*` is configured.
const FALLBACK_LARGE_MAJOR: u64 = 10_000;
/// The highest total score.
const MAX_SCORE: u32 = 100;

/// Rule names and scores, as stored with alerts and shown to compliance officers.
const LARGE_AMOUNT: (&str, u32) = ("large_amount", 40);
const LARGE_DAILY_TOTAL: (&str, u32) = ("large_daily_total", 30);
const STRUCTURING: (&str, u32) = ("structuring", 50);
const VELOCITY: (&str, u32) = ("velocity", 30);
const DAILY_VELOCITY: (&str, u32) = ("daily_velocity", 25);
const RAPID_MOVEMENT: (&str, u32) = ("rapid_movement", 45);
const NEW_COUNTERPARTY: (&str, u32) = ("new_counterparty", 35);
const SANCTIONS_MATCH: (&str, u32) = ("sanctions_match", 100);

/// How risky a transaction or a customer is, so alerts can be triaged and thresholds
/// tightened for riskier customers. Ordered: `Low < Medium < High`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskLevel {
    /// Nothing notable; no alert.
    Low,
    /// Worth a look by a compliance officer.
    Medium,
    /// Needs prompt review (and, for customers, enhanced due diligence).
    High,
}

impl RiskLevel {
    /// The stored and wire form (`"low"`, `"medium"`, `"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// Reads the stored and wire form back; `None` for anything else, so a bad value in a
    /// request or a row is reported rather than guessed.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    /// The position in [`RuleConfig::rating_percent`].
    fn index(self) -> usize {
        match self {
            Self::Low => 0,
            Self::Medium => 1,
            Self::High => 2,
        }
    }
}

/// Whether money came in or went out of the customer's account; several rules only look at
/// one direction (money leaving is what launders).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Money into the customer's account.
    Credit,
    /// Money out of the customer's account.
    Debit,
}

impl Direction {
    /// The stored and wire form (`"credit"`, `"debit"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Debit => "debit",
        }
    }

    /// Reads the stored and wire form back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "credit" => Some(Self::Credit),
            "debit" => Some(Self::Debit),
            _ => None,
        }
    }
}

/// A booked transaction as the rules see it: only the facts the rules need, so the rules do
/// not depend on how obgate stores transactions.
#[derive(Clone, Debug)]
pub struct Txn {
    /// The bank's id of the transaction, for tracing an alert back to it.
    pub transaction_id: String,
    /// When the bank booked it; all windows are measured on this.
    pub booked_at: Timestamp,
    /// The amount in minor units of `currency`; always positive (the sign is `direction`).
    pub amount_minor: i64,
    /// ISO 4217 code; amount rules only compare transactions of the same currency.
    pub currency: String,
    /// In or out of the customer's account.
    pub direction: Direction,
    /// A stable key of the counterparty (obgate passes a keyed hash of its id), so "new
    /// counterparty" can be decided without storing who the counterparty is.
    pub counterparty: String,
    /// How the payment was made (e.g. `faster_payments`, `card`); kept for the alert record.
    pub channel: String,
}

/// Why a rule fired, so a compliance officer can see at a glance what to look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The rule's stable name (e.g. `large_amount`), for filtering and statistics.
    pub rule: &'static str,
    /// What the rule added to the total score.
    pub score: u32,
    /// One English sentence with the amounts and windows involved.
    pub detail: String,
}

/// The outcome of assessing one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// The level the score maps to, which decides whether an alert is raised.
    pub risk_level: RiskLevel,
    /// The sum of the fired rules' scores, capped at 100.
    pub score: u32,
    /// The fired rules, in rule order; empty when nothing fired.
    pub reasons: Vec<Reason>,
}

/// The tunable parameters of the rules, so a bank can align them with its risk appetite
/// without a code change. [`Default`] holds conservative values suitable for the sandbox.
#[derive(Clone, Debug)]
pub struct RuleConfig {
    /// Large-amount thresholds in MAJOR units per currency; key "*" is the default for
    /// unlisted currencies.
    pub large_amount: BTreeMap<String, u64>,
    /// Percent of the large-amount threshold applied per customer rating [low, medium, high].
    pub rating_percent: [u32; 3],
    /// The structuring band starts at this percent of the large-amount threshold.
    pub structuring_band_percent: u32,
    /// How many in-band transactions (the candidate included) within the window fire
    /// `structuring`.
    pub structuring_count: usize,
    /// The window in which in-band transactions are counted.
    pub structuring_window: Duration,
    /// `velocity` fires when more debits than this (the candidate included) fall in the window.
    pub velocity_debits: usize,
    /// The short window of `velocity`.
    pub velocity_window: Duration,
    /// `daily_velocity` fires above this multiple of the customer's usual daily count.
    pub velocity_daily_factor: u32,
    /// ... but never at or below this many transactions in a day.
    pub velocity_daily_min: usize,
    /// How soon after a large credit the money must leave to count as `rapid_movement`.
    pub rapid_window: Duration,
    /// A credit counts for `rapid_movement` from this percent of the large-amount threshold.
    pub rapid_credit_percent: u32,
    /// `rapid_movement` fires when debits reach this percent of the credit.
    pub rapid_debit_percent: u32,
    /// `new_counterparty` fires at this multiple of the 90-day average debit.
    pub new_counterparty_factor: u32,
    /// `new_counterparty` needs at least this many earlier debits for a meaningful average.
    pub new_counterparty_min_history: usize,
    /// A counterparty-name similarity (0.0 to 1.0) at or above this fires `sanctions_match`.
    pub sanctions_threshold: f64,
    /// A total score at or above this is [`RiskLevel::Medium`].
    pub medium_score: u32,
    /// A total score at or above this is [`RiskLevel::High`].
    pub high_score: u32,
}

impl Default for RuleConfig {
    fn default() -> Self {
        let large_amount = [
            ("*", 10_000),
            ("GBP", 10_000),
            ("EUR", 10_000),
            ("USD", 10_000),
            ("JPY", 1_500_000),
        ]
        .into_iter()
        .map(|(currency, major)| (currency.to_string(), major))
        .collect();
        Self {
            large_amount,
            rating_percent: [100, 80, 50],
            structuring_band_percent: 90,
            structuring_count: 3,
            structuring_window: DAY,
            velocity_debits: 10,
            velocity_window: Duration::from_secs(10 * 60),
            velocity_daily_factor: 5,
            velocity_daily_min: 20,
            rapid_window: Duration::from_secs(48 * 3600),
            rapid_credit_percent: 50,
            rapid_debit_percent: 80,
            new_counterparty_factor: 5,
            new_counterparty_min_history: 3,
            sanctions_threshold: 0.9,
            medium_score: 40,
            high_score: 70,
        }
    }
}

impl RuleConfig {
    /// The large-amount threshold in minor units for a currency and customer rating, so every
    /// amount rule uses the same, rating-adjusted line.
    ///
    /// The currency's configured threshold (or the `*` default; 10,000 if neither is
    /// configured) in minor units, times the rating's percent, divided by 100 (rounded down).
    pub fn large_threshold_minor(&self, currency: &str, rating: RiskLevel) -> i64 {
        let major = self
            .large_amount
            .get(currency)
            .or_else(|| self.large_amount.get("*"))
            .copied()
            .unwrap_or(FALLBACK_LARGE_MAJOR);
        let minor = i128::from(major_to_minor(major, currency));
        let percent = i128::from(self.rating_percent[rating.index()]);
        i64::try_from(minor * percent / 100).unwrap_or(i64::MAX)
    }
}

/// Assesses one transaction against the customer's history, so obgate can raise an alert
/// with reasons a compliance officer can check.
///
/// `history` is the customer's OTHER transactions (not the candidate), in any order, booked
/// in the [`LOOKBACK`] before the candidate; anything booked after the candidate is ignored.
/// `counterparty_name` is only screened against `sanctions`; it never appears in a reason.
/// `rating` is the customer's current risk rating, which tightens the large-amount threshold.
pub fn assess(
    candidate: &Txn,
    counterparty_name: &str,
    history: &[Txn],
    rating: RiskLevel,
    config: &RuleConfig,
    sanctions: &SanctionsList,
) -> Assessment {
    let ctx = Ctx {
        c: candidate,
        t: candidate.booked_at.millis(),
        past: history
            .iter()
            .filter(|h| h.booked_at <= candidate.booked_at)
            .collect(),
        threshold: config.large_threshold_minor(&candidate.currency, rating),
        config,
    };
    let reasons: Vec<Reason> = [
        ctx.large_amount(),
        ctx.structuring(),
        ctx.velocity(),
        ctx.rapid_movement(),
        ctx.new_counterparty(),
        sanctions_match(counterparty_name, config, sanctions),
    ]
    .into_iter()
    .flatten()
    .collect();
    let score = reasons
        .iter()
        .fold(0_u32, |total, r| total.saturating_add(r.score))
        .min(MAX_SCORE);
    let risk_level = if score >= config.high_score {
        RiskLevel::High
    } else if score >= config.medium_score {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    Assessment {
        risk_level,
        score,
        reasons,
    }
}

/// What every rule needs: the candidate, its time, the history up to it and the threshold.
struct Ctx<'a> {
    c: &'a Txn,
    /// The candidate's booking time in epoch milliseconds.
    t: i64,
    /// History booked at or before the candidate.
    past: Vec<&'a Txn>,
    /// The rating-adjusted large-amount threshold in minor units.
    threshold: i64,
    config: &'a RuleConfig,
}

impl<'a> Ctx<'a> {
    /// Epoch milliseconds `d` before the candidate.
    fn since(&self, d: Duration) -> i64 {
        self.t.saturating_sub(millis(d))
    }

    /// Whether `h` lies in `(t − d, t]` (history is already cut at `t`).
    fn within(&self, h: &Txn, d: Duration) -> bool {
        h.booked_at.millis() > self.since(d)
    }

    /// History in the candidate's currency.
    fn same_currency(&self) -> impl Iterator<Item = &'a Txn> + '_ {
        self.past
            .iter()
            .copied()
            .filter(|h| h.currency == self.c.currency)
    }

    /// Formats an amount in the candidate's currency.
    fn money(&self, minor: i64) -> String {
        format_minor(minor, &self.c.currency)
    }

    /// `large_amount`, or else `large_daily_total`.
    fn large_amount(&self) -> Option<Reason> {
        let c = self.c;
        let dir = c.direction.as_str();
        if c.amount_minor > self.threshold {
            return Some(reason(
                LARGE_AMOUNT,
                format!(
                    "{dir} of {} is above the {} large-amount threshold",
                    self.money(c.amount_minor),
                    self.money(self.threshold)
                ),
            ));
        }
        let earlier: i128 = self
            .same_currency()
            .filter(|h| h.direction == c.direction && self.within(h, DAY))
            .map(|h| i128::from(h.amount_minor))
            .sum();
        let total = earlier + i128::from(c.amount_minor);
        (total > i128::from(self.threshold)).then(|| {
            reason(
                LARGE_DAILY_TOTAL,
                format!(
                    "{dir}s totalling {} in the last 24 hours, this one included, are above the \
                     {} large-amount threshold",
                    self.money(saturate(total)),
                    self.money(self.threshold)
                ),
            )
        })
    }

    /// `structuring`: several amounts just under the threshold in a short time.
    fn structuring(&self) -> Option<Reason> {
        let c = self.c;
        let cfg = self.config;
        let band = i128::from(cfg.structuring_band_percent);
        let threshold = i128::from(self.threshold);
        let in_band = |amount: i64| {
            let amount = i128::from(amount);
            amount * 100 >= threshold * band && amount <= threshold
        };
        if !in_band(c.amount_minor) {
            return None;
        }
        let count = 1 + self
            .same_currency()
            .filter(|h| {
                h.direction == c.direction
                    && self.within(h, cfg.structuring_window)
                    && in_band(h.amount_minor)
            })
            .count();
        (count >= cfg.structuring_count).then(|| {
            reason(
                STRUCTURING,
                format!(
                    "{count} {}s between {} and {}, just under the large-amount threshold, \
                     within {}",
                    c.direction.as_str(),
                    self.money(percent_ceil(self.threshold, cfg.structuring_band_percent)),
                    self.money(self.threshold),
                    describe(cfg.structuring_window)
                ),
            )
        })
    }

    /// `velocity` (many debits in minutes), or else `daily_velocity` (far more transactions
    /// than usual in a day, for customers with enough history to know what usual is).
    fn velocity(&self) -> Option<Reason> {
        let cfg = self.config;
        if self.c.direction == Direction::Debit {
            let debits = 1 + self
                .past
                .iter()
                .filter(|h| h.direction == Direction::Debit && self.within(h, cfg.velocity_window))
                .count();
            if debits > cfg.velocity_debits {
                return Some(reason(
                    VELOCITY,
                    format!(
                        "{debits} debits in the last {}, this one included, exceed the limit of {}",
                        describe(cfg.velocity_window),
                        cfg.velocity_debits
                    ),
                ));
            }
        }
        let established_before = self.since(ESTABLISHED_AFTER);
        if !self
            .past
            .iter()
            .any(|h| h.booked_at.millis() < established_before)
        {
            return None;
        }
        let today = 1 + self.past.iter().filter(|h| self.within(h, DAY)).count();
        let (from, to) = (self.since(BASELINE_WINDOW), self.since(DAY));
        let baseline = self
            .past
            .iter()
            .filter(|h| (from..=to).contains(&h.booked_at.millis()))
            .count();
        let usual = baseline.div_ceil(BASELINE_DAYS);
        let factor = usize::try_from(cfg.velocity_daily_factor).unwrap_or(usize::MAX);
        let limit = cfg.velocity_daily_min.max(factor.saturating_mul(usual));
        (today > limit).then(|| {
            reason(
                DAILY_VELOCITY,
                format!(
                    "{today} transactions in the last 24 hours, this one included, exceed the \
                     limit of {limit} (usually {usual} a day over the previous 30 days)"
                ),
            )
        })
    }

    /// `rapid_movement`: most of a large credit leaves again soon after it arrived.
    fn rapid_movement(&self) -> Option<Reason> {
        let c = self.c;
        let cfg = self.config;
        if c.direction != Direction::Debit {
            return None;
        }
        let window_start = self.since(cfg.rapid_window);
        let min_credit = i128::from(self.threshold) * i128::from(cfg.rapid_credit_percent);
        // (credit amount, debited since it), for the largest credit that qualifies.
        let mut worst: Option<(i128, i128)> = None;
        for credit in self.same_currency().filter(|h| {
            h.direction == Direction::Credit
                && h.booked_at.millis() >= window_start
                && h.amount_minor > 0
                && i128::from(h.amount_minor) * 100 >= min_credit
        }) {
            let amount = i128::from(credit.amount_minor);
            let debited_before: i128 = self
                .same_currency()
                .filter(|h| h.direction == Direction::Debit && h.booked_at >= credit.booked_at)
                .map(|h| i128::from(h.amount_minor))
                .sum();
            let debited = debited_before + i128::from(c.amount_minor);
            let moved_out = debited * 100 >= amount * i128::from(cfg.rapid_debit_percent);
            if moved_out && worst.is_none_or(|(largest, _)| amount > largest) {
                worst = Some((amount, debited));
            }
        }
        let (credit, debited) = worst?;
        let percent = debited * 100 / credit;
        Some(reason(
            RAPID_MOVEMENT,
            format!(
                "debits of {}, this one included, moved out {percent}% of a {} credit received \
                 in the last {}",
                self.money(saturate(debited)),
                self.money(saturate(credit)),
                describe(cfg.rapid_window)
            ),
        ))
    }

    /// `new_counterparty`: an unusually large debit to someone never paid or paid by before.
    fn new_counterparty(&self) -> Option<Reason> {
        let c = self.c;
        let cfg = self.config;
        if c.direction != Direction::Debit
            || self.past.iter().any(|h| h.counterparty == c.counterparty)
        {
            return None;
        }
        let from = self.since(NEW_COUNTERPARTY_WINDOW);
        let (count, sum) = self
            .same_currency()
            .filter(|h| {
                h.direction == Direction::Debit
                    && h.booked_at.millis() >= from
                    && h.booked_at.millis() < self.t
            })
            .fold((0_usize, 0_i128), |(n, s), h| {
                (n + 1, s + i128::from(h.amount_minor))
            });
        // At least one earlier debit, whatever the configuration, or there is no average.
        if count == 0 || count < cfg.new_counterparty_min_history {
            return None;
        }
        let n = i128::try_from(count).unwrap_or(i128::MAX);
        let unusual =
            i128::from(c.amount_minor) * n >= i128::from(cfg.new_counterparty_factor) * sum;
        unusual.then(|| {
            reason(
                NEW_COUNTERPARTY,
                format!(
                    "debit of {} to a new counterparty is at least {} times the {} average of \
                     the {count} debits in the previous 90 days",
                    self.money(c.amount_minor),
                    cfg.new_counterparty_factor,
                    self.money(saturate(sum / n))
                ),
            )
        })
    }
}

/// `sanctions_match`: the counterparty's name is close to a sanctions-list entry.
fn sanctions_match(name: &str, config: &RuleConfig, sanctions: &SanctionsList) -> Option<Reason> {
    let (entry, similarity) = sanctions.best_match(name)?;
    (similarity >= config.sanctions_threshold).then(|| {
        reason(
            SANCTIONS_MATCH,
            format!(
                "counterparty name matches sanctions-list entry \"{entry}\" (similarity \
                 {similarity:.2})"
            ),
        )
    })
}

/// Builds a reason from a rule's (name, score).
fn reason((rule, score): (&'static str, u32), detail: String) -> Reason {
    Reason {
        rule,
        score,
        detail,
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An `i128` amount clamped into `i64` for display.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `value × percent / 100`, rounded up: the smallest amount that is at least that percent.
fn percent_ceil(value: i64, percent: u32) -> i64 {
    let product = i128::from(value.max(0)) * i128::from(percent);
    saturate((product + 99) / 100)
}

/// A window in words ("10 minutes", "24 hours"), for reasons.
fn describe(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if d.subsec_nanos() != 0 || secs == 0 {
        (d.as_millis(), "millisecond")
    } else if secs % 3600 == 0 {
        (u128::from(secs / 3600), "hour")
    } else if secs % 60 == 0 {
        (u128::from(secs / 60), "minute")
    } else {
        (u128::from(secs), "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candidate's booking time in the tests.
    const T0: i64 = 1_800_000_000_000;
    const SEC: i64 = 1_000;
    const MIN: i64 = 60 * SEC;
    const HOUR: i64 = 60 * MIN;
    const DAY_MS: i64 = 24 * HOUR;

    /// A GBP transaction booked `before` milliseconds before the candidate's time.
    fn tx(before: i64, amount: i64, direction: Direction, counterparty: &str) -> Txn {
        Txn {
            transaction_id: format!("txn-{before}-{amount}"),
            booked_at: Timestamp::from_millis(T0 - before),
            amount_minor: amount,
            currency: "GBP".to_string(),
            direction,
            counterparty: counterparty.to_string(),
            channel: "faster_payments".to_string(),
        }
    }

    fn debit(before: i64, amount: i64, counterparty: &str) -> Txn {
        tx(before, amount, Direction::Debit, counterparty)
    }

    fn credit(before: i64, amount: i64, counterparty: &str) -> Txn {
        tx(before, amount, Direction::Credit, counterparty)
    }

    fn in_currency(mut t: Txn, currency: &str) -> Txn {
        t.currency = currency.to_string();
        t
    }

    fn assess_with(
        candidate: &Txn,
        name: &str,
        history: &[Txn],
        rating: RiskLevel,
        config: &RuleConfig,
    ) -> Assessment {
        assess(
            candidate,
            name,
            history,
            rating,
            config,
            &SanctionsList::sandbox(),
        )
    }

    /// Assesses with the defaults, a low-rated customer and an ordinary counterparty name.
    fn run(candidate: &Txn, history: &[Txn]) -> Assessment {
        assess_with(
            candidate,
            "Jane Doe",
            history,
            RiskLevel::Low,
            &RuleConfig::default(),
        )
    }

    fn rules(a: &Assessment) -> Vec<&'static str> {
        a.reasons.iter().map(|r| r.rule).collect()
    }

    fn fired(a: &Assessment, rule: &str) -> bool {
        a.reasons.iter().any(|r| r.rule == rule)
    }

    fn detail<'a>(a: &'a Assessment, rule: &str) -> &'a str {
        a.reasons
            .iter()
            .find(|r| r.rule == rule)
            .map(|r| r.detail.as_str())
            .unwrap()
    }

    // ---- configuration -------------------------------------------------------------------

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = RuleConfig::default();
        assert_eq!(c.large_amount.get("*"), Some(&10_000));
        assert_eq!(c.large_amount.get("JPY"), Some(&1_500_000));
        assert_eq!(c.rating_percent, [100, 80, 50]);
        assert_eq!(c.structuring_window, Duration::from_secs(24 * 3600));
        assert_eq!(c.velocity_window, Duration::from_secs(600));
        assert_eq!(c.rapid_window, Duration::from_secs(48 * 3600));
        assert_eq!((c.medium_score, c.high_score), (40, 70));
        assert!((c.sanctions_threshold - 0.9).abs() < f64::EPSILON);
    }

    #[test]
    fn lookback_covers_every_rule_window() {
        assert_eq!(LOOKBACK, Duration::from_secs(91 * 86_400));
        let c = RuleConfig::default();
        for window in [
            NEW_COUNTERPARTY_WINDOW,
            BASELINE_WINDOW,
            ESTABLISHED_AFTER,
            DAY,
            c.structuring_window,
            c.velocity_window,
            c.rapid_window,
        ] {
            assert!(window < LOOKBACK, "{window:?}");
        }
    }

    #[test]
    fn thresholds_follow_currency_and_rating() {
        let c = RuleConfig::default();
        assert_eq!(c.large_threshold_minor("GBP", RiskLevel::Low), 1_000_000);
        assert_eq!(c.large_threshold_minor("GBP", RiskLevel::Medium), 800_000);
        assert_eq!(c.large_threshold_minor("GBP", RiskLevel::High), 500_000);
        assert_eq!(c.large_threshold_minor("JPY", RiskLevel::Low), 1_500_000);
        assert_eq!(c.large_threshold_minor("JPY", RiskLevel::High), 750_000);
        // Unlisted currencies use "*", scaled by their own minor units.
        assert_eq!(c.large_threshold_minor("CHF", RiskLevel::Low), 1_000_000);
        assert_eq!(c.large_threshold_minor("KWD", RiskLevel::Low), 10_000_000);
        // With nothing configured at all, 10,000 major units still apply.
        let empty = RuleConfig {
            large_amount: BTreeMap::new(),
            ..RuleConfig::default()
        };
        assert_eq!(
            empty.large_threshold_minor("GBP", RiskLevel::Low),
            1_000_000
        );
        // An absurd threshold saturates instead of wrapping.
        let huge = RuleConfig {
            large_amount: BTreeMap::from([("*".to_string(), u64::MAX)]),
            rating_percent: [u32::MAX; 3],
            ..RuleConfig::default()
        };
        assert_eq!(huge.large_threshold_minor("GBP", RiskLevel::Low), i64::MAX);
    }

    #[test]
    fn levels_and_directions_round_trip() {
        for level in [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High] {
            assert_eq!(RiskLevel::parse(level.as_str()), Some(level));
        }
        for dir in [Direction::Credit, Direction::Debit] {
            assert_eq!(Direction::parse(dir.as_str()), Some(dir));
        }
        assert_eq!(RiskLevel::parse("HIGH"), None);
        assert_eq!(RiskLevel::parse(""), None);
        assert_eq!(Direction::parse("transfer"), None);
        assert!(RiskLevel::Low < RiskLevel::Medium && RiskLevel::Medium < RiskLevel::High);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe(Duration::from_secs(600)), "10 minutes");
        assert_eq!(describe(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(describe(Duration::from_secs(3600)), "1 hour");
        assert_eq!(describe(Duration::from_secs(90)), "90 seconds");
        assert_eq!(describe(Duration::from_millis(1500)), "1500 milliseconds");
    }

    // ---- large_amount / large_daily_total ------------------------------------------------

    #[test]
    fn exactly_the_threshold_is_not_large() {
        let a = run(&debit(0, 1_000_000, "cp-shop"), &[]);
        assert!(a.reasons.is_empty());
        assert_eq!((a.score, a.risk_level), (0, RiskLevel::Low));
    }

    #[test]
    fn one_penny_above_the_threshold_is_large() {
        let a = run(&debit(0, 1_000_001, "cp-shop"), &[]);
        assert_eq!(
            a.reasons,
            vec![Reason {
                rule: "large_amount",
                score: 40,
                detail: "debit of 10000.01 GBP is above the 10000.00 GBP large-amount threshold"
                    .to_string(),
            }]
        );
        assert_eq!((a.score, a.risk_level), (40, RiskLevel::Medium));
        // Credits are watched too.
        let a = run(&credit(0, 1_000_001, "cp-employer"), &[]);
        assert_eq!(rules(&a), ["large_amount"]);
        assert!(detail(&a, "large_amount").starts_with("credit of 10000.01 GBP"));
    }

    #[test]
    fn high_rated_customer_is_large_from_5000() {
        let c = RuleConfig::default();
        let large = assess_with(
            &debit(0, 500_001, "cp-shop"),
            "Jane Doe",
            &[],
            RiskLevel::High,
            &c,
        );
        assert_eq!(rules(&large), ["large_amount"]);
        assert_eq!(
            detail(&large, "large_amount"),
            "debit of 5000.01 GBP is above the 5000.00 GBP large-amount threshold"
        );
        let at = assess_with(
            &debit(0, 500_000, "cp-shop"),
            "Jane Doe",
            &[],
            RiskLevel::High,
            &c,
        );
        assert!(!fired(&at, "large_amount"));
        // The same 5,000.01 is unremarkable for a low-rated customer.
        assert!(!fired(
            &run(&debit(0, 500_001, "cp-shop"), &[]),
            "large_amount"
        ));
    }

    #[test]
    fn jpy_uses_its_own_threshold_in_whole_yen() {
        let at = run(&in_currency(debit(0, 1_500_000, "cp-shop"), "JPY"), &[]);
        assert!(!fired(&at, "large_amount"));
        let above = run(&in_currency(debit(0, 1_500_001, "cp-shop"), "JPY"), &[]);
        assert_eq!(
            detail(&above, "large_amount"),
            "debit of 1500001 JPY is above the 1500000 JPY large-amount threshold"
        );
    }

    #[test]
    fn daily_total_counts_same_direction_and_currency_within_24h() {
        let history = [
            debit(HOUR, 600_000, "cp-shop"),
            // Not counted: other direction (and too small for rapid movement).
            credit(2 * HOUR, 450_000, "cp-employer"),
            // Not counted: exactly 24 hours before is outside the window.
            debit(DAY_MS, 900_000, "cp-shop"),
            // Not counted: other currency.
            in_currency(debit(HOUR, 900_000, "cp-shop"), "EUR"),
        ];
        let at = run(&debit(0, 400_000, "cp-shop"), &history);
        assert_eq!(rules(&at), Vec::<&str>::new());
        let above = run(&debit(0, 400_001, "cp-shop"), &history);
        assert_eq!(rules(&above), ["large_daily_total"]);
        assert_eq!(above.score, 30);
        assert_eq!(above.risk_level, RiskLevel::Low);
        assert_eq!(
            detail(&above, "large_daily_total"),
            "debits totalling 10000.01 GBP in the last 24 hours, this one included, are above \
             the 10000.00 GBP large-amount threshold"
        );
        // One millisecond inside the window, the old debit counts.
        let mut inside = history.clone();
        inside[2] = debit(DAY_MS - 1, 900_000, "cp-shop");
        assert!(fired(
            &run(&debit(0, 100, "cp-shop"), &inside),
            "large_daily_total"
        ));
    }

    #[test]
    fn a_large_amount_is_not_also_reported_as_a_large_daily_total() {
        let a = run(
            &debit(0, 1_000_001, "cp-shop"),
            &[debit(HOUR, 600_000, "cp-shop")],
        );
        assert_eq!(rules(&a), ["large_amount"]);
    }

    // ---- structuring ----------------------------------------------------------------------

    #[test]
    fn three_amounts_just_under_the_threshold_in_a_day_are_structuring() {
        let history = [
            debit(DAY_MS - 1, 950_000, "cp-a"),
            debit(HOUR, 950_000, "cp-b"),
        ];
        let a = run(&debit(0, 950_000, "cp-c"), &history);
        assert!(fired(&a, "structuring"));
        assert_eq!(
            detail(&a, "structuring"),
            "3 debits between 9000.00 GBP and 10000.00 GBP, just under the large-amount \
             threshold, within 24 hours"
        );
        assert_eq!(
            a.reasons
                .iter()
                .find(|r| r.rule == "structuring")
                .unwrap()
                .score,
            50
        );
    }

    #[test]
    fn structuring_window_excludes_exactly_24h_before() {
        let history = [debit(DAY_MS, 950_000, "cp-a"), debit(HOUR, 950_000, "cp-b")];
        assert!(!fired(
            &run(&debit(0, 950_000, "cp-c"), &history),
            "structuring"
        ));
    }

    #[test]
    fn structuring_band_is_90_to_100_percent_of_the_threshold() {
        // Both edges are in the band.
        let edges = [
            debit(2 * HOUR, 900_000, "cp-a"),
            debit(HOUR, 1_000_000, "cp-b"),
        ];
        assert!(fired(
            &run(&debit(0, 900_000, "cp-c"), &edges),
            "structuring"
        ));
        // 8,999.99 is below the band.
        let low = [
            debit(2 * HOUR, 899_999, "cp-a"),
            debit(HOUR, 950_000, "cp-b"),
        ];
        assert!(!fired(
            &run(&debit(0, 950_000, "cp-c"), &low),
            "structuring"
        ));
        // The candidate itself must be in the band.
        let two = [
            debit(2 * HOUR, 950_000, "cp-a"),
            debit(HOUR, 950_000, "cp-b"),
        ];
        assert!(!fired(
            &run(&debit(0, 899_999, "cp-c"), &two),
            "structuring"
        ));
        // Above the threshold is large, not structuring.
        let a = run(&debit(0, 1_000_001, "cp-c"), &two);
        assert!(!fired(&a, "structuring"));
        assert!(fired(&a, "large_amount"));
    }

    #[test]
    fn structuring_counts_one_direction_and_currency() {
        let credits = [
            credit(2 * HOUR, 950_000, "cp-a"),
            credit(HOUR, 950_000, "cp-b"),
        ];
        assert!(!fired(
            &run(&debit(0, 950_000, "cp-c"), &credits),
            "structuring"
        ));
        let euros = [
            in_currency(debit(2 * HOUR, 950_000, "cp-a"), "EUR"),
            in_currency(debit(HOUR, 950_000, "cp-b"), "EUR"),
        ];
        assert!(!fired(
            &run(&debit(0, 950_000, "cp-c"), &euros),
            "structuring"
        ));
    }

    #[test]
    fn structuring_uses_the_rating_adjusted_band() {
        // High rating: threshold 5,000, band 4,500 to 5,000.
        let history = [
            debit(2 * HOUR, 450_000, "cp-a"),
            debit(HOUR, 500_000, "cp-b"),
        ];
        let a = assess_with(
            &debit(0, 470_000, "cp-c"),
            "Jane Doe",
            &history,
            RiskLevel::High,
            &RuleConfig::default(),
        );
        assert!(fired(&a, "structuring"));
        assert!(detail(&a, "structuring").contains("between 4500.00 GBP and 5000.00 GBP"));
    }

    // ---- velocity / daily_velocity --------------------------------------------------------

    /// `n` small debits to a known counterparty, 50 seconds apart, the last 50 seconds ago.
    fn burst(n: i64) -> Vec<Txn> {
        (1..=n)
            .map(|k| debit(k * 50 * SEC, 1_000, "cp-shop"))
            .collect()
    }

    #[test]
    fn eleven_debits_in_ten_minutes_are_velocity() {
        let a = run(&debit(0, 1_000, "cp-shop"), &burst(10));
        assert_eq!(rules(&a), ["velocity"]);
        assert_eq!(a.score, 30);
        assert_eq!(
            detail(&a, "velocity"),
            "11 debits in the last 10 minutes, this one included, exceed the limit of 10"
        );
    }

    #[test]
    fn ten_debits_in_ten_minutes_are_not_velocity() {
        let a = run(&debit(0, 1_000, "cp-shop"), &burst(9));
        assert_eq!(rules(&a), Vec::<&str>::new());
    }

    #[test]
    fn velocity_window_excludes_exactly_ten_minutes_before() {
        let mut history = burst(9);
        history.push(debit(10 * MIN, 1_000, "cp-shop"));
        assert!(!fired(
            &run(&debit(0, 1_000, "cp-shop"), &history),
            "velocity"
        ));
        history.pop();
        history.push(debit(10 * MIN - 1, 1_000, "cp-shop"));
        assert!(fired(
            &run(&debit(0, 1_000, "cp-shop"), &history),
            "velocity"
        ));
    }

    #[test]
    fn velocity_counts_debits_in_any_currency_but_not_credits() {
        let mixed: Vec<Txn> = burst(10)
            .into_iter()
            .enumerate()
            .map(|(i, t)| if i % 2 == 0 { in_currency(t, "EUR") } else { t })
            .collect();
        assert!(fired(&run(&debit(0, 1_000, "cp-shop"), &mixed), "velocity"));
        let credits: Vec<Txn> = (1..=10)
            .map(|k| credit(k * 50 * SEC, 1_000, "cp-shop"))
            .collect();
        assert!(!fired(
            &run(&debit(0, 1_000, "cp-shop"), &credits),
            "velocity"
        ));
        // A credit candidate is never velocity.
        assert!(!fired(
            &run(&credit(0, 1_000, "cp-shop"), &burst(10)),
            "velocity"
        ));
    }

    /// `n` small credits in the last day, 30 minutes apart.
    fn busy_day(n: i64) -> Vec<Txn> {
        (1..=n)
            .map(|k| credit(k * 30 * MIN, 1_000, "cp-shop"))
            .collect()
    }

    #[test]
    fn daily_velocity_fires_for_an_established_customer() {
        let mut history = busy_day(20);
        history.push(credit(8 * DAY_MS, 1_000, "cp-shop"));
        let a = run(&credit(0, 1_000, "cp-shop"), &history);
        assert_eq!(rules(&a), ["daily_velocity"]);
        assert_eq!((a.score, a.risk_level), (25, RiskLevel::Low));
        assert_eq!(
            detail(&a, "daily_velocity"),
            "21 transactions in the last 24 hours, this one included, exceed the limit of 20 \
             (usually 1 a day over the previous 30 days)"
        );
        // Twenty in the day is not above the minimum of twenty.
        let mut quieter = busy_day(19);
        quieter.push(credit(8 * DAY_MS, 1_000, "cp-shop"));
        assert!(!fired(
            &run(&credit(0, 1_000, "cp-shop"), &quieter),
            "daily_velocity"
        ));
    }

    #[test]
    fn daily_velocity_needs_history_older_than_seven_days() {
        let new_customer = busy_day(30);
        assert!(!fired(
            &run(&credit(0, 1_000, "cp-shop"), &new_customer),
            "daily_velocity"
        ));
        let mut exactly_seven = busy_day(30);
        exactly_seven.push(credit(7 * DAY_MS, 1_000, "cp-shop"));
        assert!(!fired(
            &run(&credit(0, 1_000, "cp-shop"), &exactly_seven),
            "daily_velocity"
        ));
        let mut just_older = busy_day(30);
        just_older.push(credit(7 * DAY_MS + 1, 1_000, "cp-shop"));
        assert!(fired(
            &run(&credit(0, 1_000, "cp-shop"), &just_older),
            "daily_velocity"
        ));
    }

    #[test]
    fn daily_velocity_limit_follows_the_usual_activity() {
        // 150 transactions in the 30-day baseline: usually 5 a day, so the limit is 5 × 5.
        let mut history: Vec<Txn> = (0..150)
            .map(|k| credit(25 * HOUR + k * 4 * HOUR, 1_000, "cp-shop"))
            .collect();
        history.extend(busy_day(24));
        let at_limit = run(&credit(0, 1_000, "cp-shop"), &history);
        assert!(!fired(&at_limit, "daily_velocity"));
        history.extend(busy_day(25).into_iter().skip(24));
        let above = run(&credit(0, 1_000, "cp-shop"), &history);
        assert!(fired(&above, "daily_velocity"));
        assert!(detail(&above, "daily_velocity").contains("limit of 25 (usually 5 a day"));
        // A 151st baseline transaction rounds the usual count up to 6: limit 30.
        history.push(credit(DAY_MS, 1_000, "cp-shop"));
        assert!(!fired(
            &run(&credit(0, 1_000, "cp-shop"), &history),
            "daily_velocity"
        ));
    }

    #[test]
    fn velocity_and_daily_velocity_are_not_both_reported() {
        let mut history = burst(10);
        history.extend(busy_day(20));
        history.push(credit(8 * DAY_MS, 1_000, "cp-shop"));
        let a = run(&debit(0, 1_000, "cp-shop"), &history);
        assert!(fired(&a, "velocity"));
        assert!(!fired(&a, "daily_velocity"));
    }

    // ---- rapid_movement -------------------------------------------------------------------

    /// A 20,000 credit 47 hours ago and an 8,000 debit 24 hours ago.
    fn salary_then_rent() -> Vec<Txn> {
        vec![
            credit(47 * HOUR, 2_000_000, "cp-employer"),
            debit(DAY_MS, 800_000, "cp-landlord"),
        ]
    }

    #[test]
    fn moving_80_percent_of_a_large_credit_within_48h_is_rapid_movement() {
        let a = run(&debit(0, 800_000, "cp-landlord"), &salary_then_rent());
        assert_eq!(rules(&a), ["rapid_movement"]);
        assert_eq!((a.score, a.risk_level), (45, RiskLevel::Medium));
        assert_eq!(
            detail(&a, "rapid_movement"),
            "debits of 16000.00 GBP, this one included, moved out 80% of a 20000.00 GBP credit \
             received in the last 48 hours"
        );
    }

    #[test]
    fn moving_just_under_80_percent_is_not_rapid_movement() {
        let a = run(&debit(0, 799_999, "cp-landlord"), &salary_then_rent());
        assert!(!fired(&a, "rapid_movement"));
    }

    #[test]
    fn rapid_movement_window_includes_exactly_48h_before() {
        let at_edge = [
            credit(48 * HOUR, 2_000_000, "cp-employer"),
            debit(DAY_MS, 800_000, "cp-landlord"),
        ];
        assert!(fired(
            &run(&debit(0, 800_000, "cp-landlord"), &at_edge),
            "rapid_movement"
        ));
        let too_old = [
            credit(48 * HOUR + 1, 2_000_000, "cp-employer"),
            debit(DAY_MS, 800_000, "cp-landlord"),
        ];
        assert!(!fired(
            &run(&debit(0, 800_000, "cp-landlord"), &too_old),
            "rapid_movement"
        ));
    }

    #[test]
    fn debits_before_the_credit_do_not_count() {
        let history = [
            credit(47 * HOUR, 2_000_000, "cp-employer"),
            debit(47 * HOUR + 1, 800_000, "cp-landlord"),
        ];
        assert!(!fired(
            &run(&debit(0, 800_000, "cp-landlord"), &history),
            "rapid_movement"
        ));
        // A debit booked at the same instant as the credit does count.
        let same_instant = [
            credit(47 * HOUR, 2_000_000, "cp-employer"),
            debit(47 * HOUR, 800_000, "cp-landlord"),
        ];
        assert!(fired(
            &run(&debit(0, 800_000, "cp-landlord"), &same_instant),
            "rapid_movement"
        ));
    }

    #[test]
    fn only_credits_of_half_the_threshold_count() {
        let small = [credit(HOUR, 499_999, "cp-employer")];
        assert!(!fired(
            &run(&debit(0, 499_999, "cp-landlord"), &small),
            "rapid_movement"
        ));
        let half = [credit(HOUR, 500_000, "cp-employer")];
        assert!(fired(
            &run(&debit(0, 400_000, "cp-landlord"), &half),
            "rapid_movement"
        ));
        let euros = [in_currency(credit(HOUR, 2_000_000, "cp-employer"), "EUR")];
        assert!(!fired(
            &run(&debit(0, 1_600_000, "cp-landlord"), &euros),
            "rapid_movement"
        ));
        // A credit candidate never moves money out.
        assert!(!fired(
            &run(&credit(0, 1_600_000, "cp-x"), &half),
            "rapid_movement"
        ));
    }

    #[test]
    fn rapid_movement_reports_the_largest_credit() {
        let history = [
            credit(40 * HOUR, 2_000_000, "cp-employer"),
            credit(HOUR, 600_000, "cp-friend"),
        ];
        let a = run(&debit(0, 1_600_000, "cp-landlord"), &history);
        assert!(detail(&a, "rapid_movement").contains("80% of a 20000.00 GBP credit"));
    }

    // ---- new_counterparty -----------------------------------------------------------------

    /// Three 1,000 debits to a known payee in the last 90 days.
    fn usual_debits() -> Vec<Txn> {
        vec![
            debit(10 * DAY_MS, 100_000, "cp-a"),
            debit(20 * DAY_MS, 100_000, "cp-a"),
            debit(30 * DAY_MS, 100_000, "cp-a"),
        ]
    }

    #[test]
    fn five_times_the_average_to_a_new_payee_is_flagged() {
        let a = run(&debit(0, 500_000, "cp-new"), &usual_debits());
        assert_eq!(rules(&a), ["new_counterparty"]);
        assert_eq!((a.score, a.risk_level), (35, RiskLevel::Low));
        assert_eq!(
            detail(&a, "new_counterparty"),
            "debit of 5000.00 GBP to a new counterparty is at least 5 times the 1000.00 GBP \
             average of the 3 debits in the previous 90 days"
        );
    }

    #[test]
    fn just_under_five_times_the_average_is_not_flagged() {
        assert!(!fired(
            &run(&debit(0, 499_999, "cp-new"), &usual_debits()),
            "new_counterparty"
        ));
    }

    #[test]
    fn two_earlier_debits_are_not_enough_history() {
        let usual = usual_debits();
        let two = &usual[..2];
        assert!(!fired(
            &run(&debit(0, 900_000, "cp-new"), two),
            "new_counterparty"
        ));
        // Credits do not count towards the average.
        let mut with_credit = two.to_vec();
        with_credit.push(credit(5 * DAY_MS, 100_000, "cp-a"));
        assert!(!fired(
            &run(&debit(0, 900_000, "cp-new"), &with_credit),
            "new_counterparty"
        ));
    }

    #[test]
    fn a_known_counterparty_is_not_new() {
        let mut history = usual_debits();
        // Known from a credit two months ago, in another currency: still known.
        history.push(in_currency(credit(60 * DAY_MS, 100, "cp-new"), "EUR"));
        assert!(!fired(
            &run(&debit(0, 900_000, "cp-new"), &history),
            "new_counterparty"
        ));
    }

    #[test]
    fn the_average_covers_exactly_90_days() {
        let mut at_edge = usual_debits();
        at_edge[2] = debit(90 * DAY_MS, 100_000, "cp-a");
        assert!(fired(
            &run(&debit(0, 500_000, "cp-new"), &at_edge),
            "new_counterparty"
        ));
        let mut too_old = usual_debits();
        too_old[2] = debit(90 * DAY_MS + 1, 100_000, "cp-a");
        assert!(!fired(
            &run(&debit(0, 500_000, "cp-new"), &too_old),
            "new_counterparty"
        ));
    }

    #[test]
    fn credits_to_a_new_counterparty_are_not_flagged() {
        assert!(!fired(
            &run(&credit(0, 900_000, "cp-new"), &usual_debits()),
            "new_counterparty"
        ));
    }

    // ---- sanctions_match ------------------------------------------------------------------

    #[test]
    fn a_sanctioned_counterparty_is_high_risk_on_its_own() {
        let c = RuleConfig::default();
        let a = assess_with(
            &debit(0, 2_500, "cp-x"),
            "Sanctionov, Ivan",
            &[],
            RiskLevel::Low,
            &c,
        );
        assert_eq!(
            a.reasons,
            vec![Reason {
                rule: "sanctions_match",
                score: 100,
                detail: "counterparty name matches sanctions-list entry \"Ivan Sanctionov\" \
                         (similarity 1.00)"
                    .to_string(),
            }]
        );
        assert_eq!((a.score, a.risk_level), (100, RiskLevel::High));
    }

    #[test]
    fn a_near_miss_spelling_still_matches() {
        let c = RuleConfig::default();
        let a = assess_with(
            &credit(0, 2_500, "cp-x"),
            "Ivan Sanctionof",
            &[],
            RiskLevel::Low,
            &c,
        );
        assert_eq!(
            detail(&a, "sanctions_match"),
            "counterparty name matches sanctions-list entry \"Ivan Sanctionov\" (similarity 0.97)"
        );
        let strict = RuleConfig {
            sanctions_threshold: 0.98,
            ..RuleConfig::default()
        };
        let a = assess_with(
            &credit(0, 2_500, "cp-x"),
            "Ivan Sanctionof",
            &[],
            RiskLevel::Low,
            &strict,
        );
        assert!(!fired(&a, "sanctions_match"));
    }

    #[test]
    fn ordinary_names_and_an_empty_list_do_not_match() {
        let c = RuleConfig::default();
        let a = assess_with(
            &debit(0, 2_500, "cp-x"),
            "Jane Doe",
            &[],
            RiskLevel::Low,
            &c,
        );
        assert!(!fired(&a, "sanctions_match"));
        let a = assess(
            &debit(0, 2_500, "cp-x"),
            "Ivan Sanctionov",
            &[],
            RiskLevel::Low,
            &c,
            &SanctionsList::parse(""),
        );
        assert!(!fired(&a, "sanctions_match"));
    }

    // ---- history handling, totals and levels ----------------------------------------------

    #[test]
    fn history_booked_after_the_candidate_is_ignored() {
        let later = [debit(-1, 900_000, "cp-shop")];
        assert_eq!(
            rules(&run(&debit(0, 200_000, "cp-shop"), &later)),
            Vec::<&str>::new()
        );
        // The same debit booked at the very same instant does count.
        let same_instant = [debit(0, 900_000, "cp-shop")];
        assert_eq!(
            rules(&run(&debit(0, 200_000, "cp-shop"), &same_instant)),
            ["large_daily_total"]
        );
        // A payee first paid after the candidate is still new at the candidate's time.
        let mut history = usual_debits();
        history.push(debit(-HOUR, 100, "cp-new"));
        assert!(fired(
            &run(&debit(0, 500_000, "cp-new"), &history),
            "new_counterparty"
        ));
    }

    #[test]
    fn a_quiet_ordinary_transaction_scores_nothing() {
        let history = [
            credit(20 * DAY_MS, 250_000, "cp-employer"),
            debit(5 * DAY_MS, 2_500, "cp-shop"),
            debit(3 * DAY_MS, 2_500, "cp-shop"),
            debit(DAY_MS, 2_500, "cp-shop"),
        ];
        let c = RuleConfig::default();
        let a = assess_with(
            &debit(0, 2_500, "cp-shop"),
            "Tesco Stores Ltd",
            &history,
            RiskLevel::Low,
            &c,
        );
        assert_eq!(
            a,
            Assessment {
                risk_level: RiskLevel::Low,
                score: 0,
                reasons: vec![],
            }
        );
    }

    #[test]
    fn the_score_is_capped_at_100_and_reasons_keep_rule_order() {
        let mut history = vec![credit(40 * HOUR, 2_000_000, "cp-employer")];
        history.extend(usual_debits());
        history.extend((1..=10).map(|k| debit(k * 50 * SEC, 100, "cp-a")));
        let candidate = debit(0, 1_600_000, "cp-new");
        let c = RuleConfig::default();
        let a = assess_with(&candidate, "Ivan Sanctionov", &history, RiskLevel::Low, &c);
        assert_eq!(
            rules(&a),
            [
                "large_amount",
                "velocity",
                "rapid_movement",
                "new_counterparty",
                "sanctions_match"
            ]
        );
        assert_eq!((a.score, a.risk_level), (100, RiskLevel::High));
        // The order of the history does not matter.
        history.reverse();
        let reversed = assess_with(&candidate, "Ivan Sanctionov", &history, RiskLevel::Low, &c);
        assert_eq!(reversed, a);
        // Without the sanctions hit: 40 + 30 + 45 + 35 = 150, still capped.
        let b = assess_with(&candidate, "Jane Doe", &history, RiskLevel::Low, &c);
        assert_eq!((b.score, b.risk_level), (100, RiskLevel::High));
    }

    #[test]
    fn levels_follow_the_configured_scores() {
        // 40 is exactly the medium score.
        let a = run(&debit(0, 1_000_001, "cp-shop"), &[]);
        assert_eq!((a.score, a.risk_level), (40, RiskLevel::Medium));
        // 30 is below it.
        let b = run(
            &debit(0, 400_001, "cp-shop"),
            &[debit(HOUR, 600_000, "cp-shop")],
        );
        assert_eq!((b.score, b.risk_level), (30, RiskLevel::Low));
        // 40 + 45 = 85 is high.
        let history = [credit(47 * HOUR, 2_000_000, "cp-employer")];
        let c = run(&debit(0, 1_600_000, "cp-landlord"), &history);
        assert_eq!(rules(&c), ["large_amount", "rapid_movement"]);
        assert_eq!((c.score, c.risk_level), (85, RiskLevel::High));
        // With a lower high score, 40 is already high.
        let strict = RuleConfig {
            high_score: 40,
            ..RuleConfig::default()
        };
        let d = assess_with(
            &debit(0, 1_000_001, "cp-shop"),
            "Jane Doe",
            &[],
            RiskLevel::Low,
            &strict,
        );
        assert_eq!(d.risk_level, RiskLevel::High);
    }
}
