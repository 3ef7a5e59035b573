//! Who banks with the sandbox bank: holders, their accounts and their payees.
//!
//! Nothing is stored. Every value comes from a PRNG seeded with SHA-256 of a key (customer id,
//! account id, date), so restarts, replicas and test runs all see the same people and money.

use sha2::{Digest, Sha256};
use time::Date;

/// The sandbox bank's own BIC, for the accounts it services.
pub(super) const OWN_BIC: &str = "SBOXGB2L";
/// Julian day of 2012-01-01: accounts open on fixed dates after it, not relative to the clock.
const EPOCH_JULIAN_DAY: i32 = 2_455_928;

const FIRST_NAMES: [&str; 8] = [
    "Alex", "Sam", "Priya", "Tomasz", "Aisha", "Chen", "Eilidh", "Kofi",
];
const LAST_NAMES: [&str; 8] = [
    "Marsh", "Okafor", "Lund", "Castro", "Whitlow", "Nakano", "Pryce", "Hollis",
];
/// Beneficiaries, paid monthly by standing order: (name, reference).
const BENEFICIARIES: [(&str, &str); 5] = [
    ("Harbour Lettings Ltd", "RENT"),
    ("J Okonkwo", "SHARED BILLS"),
    ("Riverside Allotment Soc", "ALLOTMENT"),
    ("Northgate Tennis Club", "MEMBERSHIP"),
    ("P Lindqvist", "CHILDCARE"),
];
const BILLERS: [&str; 4] = ["Brightwater", "Lumen Energy", "Clearline", "City Gym"];
const EMPLOYERS: [&str; 4] = ["Acme Widgets", "Northwind", "Blue Fin", "Orbital plc"];
/// Counterparty banks: fictional, BIC-shaped.
const BICS: [&str; 4] = ["OTHRGB21", "MOCKGB2L", "DEMOGB22", "TESTGB2X"];

/// SplitMix64, hand-rolled because `rand::rngs::StdRng` may change algorithm in any rand
/// release, and demo data must not shift under a dependency upgrade.
pub(super) struct Rng(u64);

impl Rng {
    /// Seeds from SHA-256 of the parts, so neighbouring keys give unrelated streams.
    pub(super) fn new(parts: &[&str]) -> Self {
        Self(
            digest(parts)
                .iter()
                .take(8)
                .fold(0_u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`, 0 when `n` is 0 (the modulo bias is irrelevant for demo data).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi.saturating_sub(lo)).unwrap_or(0);
        lo.saturating_add(i64::try_from(self.below(span.saturating_add(1))).unwrap_or(0))
    }

    /// One of `items`; every caller passes a non-empty constant table.
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }

    /// `n` decimal digits (sort codes, account numbers, mandates).
    pub(super) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + u8::try_from(self.below(10)).unwrap_or(0)))
            .collect()
    }

    /// A day every month has, so monthly payments never skip February.
    pub(super) fn day_of_month(&mut self) -> u8 {
        u8::try_from(self.between(1, 28)).unwrap_or(1)
    }
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f_u8]);
    }
    h.finalize().into()
}

/// 12 hex digits of SHA-256 of the parts: short ids that differ between customers.
pub(super) fn short_hash(parts: &[&str]) -> String {
    hex::encode(&digest(parts)[..6])
}

/// The account sub-types the sandbox bank offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Current,
    Savings,
    Card,
}

impl Kind {
    /// `AccountSubType`, `Description` (≤ 35 characters) and `Nickname`.
    pub(super) fn labels(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Current => ("CurrentAccount", "Everyday current account", "Everyday"),
            Kind::Savings => ("Savings", "Instant access saver", "Rainy day"),
            Kind::Card => ("CreditCard", "Cashback credit card", "Card"),
        }
    }
}

/// One account: enough to render it and to seed its books.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Account {
    pub(super) id: String,
    pub(super) kind: Kind,
    /// `UK.OBIE.SortCodeAccountNumber`: 6-digit sort code then 8-digit account number.
    pub(super) identification: String,
    pub(super) opened: Date,
}

impl Account {
    /// Details come from the id alone, so a stranger's account named in a test header gets
    /// stable details too.
    fn generate(id: String, kind: Kind) -> Self {
        let mut rng = Rng::new(&["account", &id]);
        let days = i32::try_from(rng.below(2_500)).unwrap_or(0);
        let identification = format!("60{}", rng.digits(12));
        let opened = Date::from_julian_day(EPOCH_JULIAN_DAY + days).unwrap_or(Date::MIN);
        Self {
            id,
            kind,
            identification,
            opened,
        }
    }
}

/// An account holder: a customer, or the stranger owning the leak-test extra account.
#[derive(Clone, Debug)]
pub(super) struct Holder {
    pub(super) id: String,
    pub(super) party_id: String,
    pub(super) first: &'static str,
    pub(super) last: &'static str,
    /// The first is always a current account: the main one, which pays the others.
    pub(super) accounts: Vec<Account>,
}

impl Holder {
    /// 2 to 4 accounts, with ids hashing the customer id so customers never share one.
    pub(super) fn customer(id: &str) -> Self {
        let mut rng = Rng::new(&["customer", id]);
        let count = 2 + rng.below(3);
        let accounts = (0..count)
            .map(|i| {
                let kinds = [Kind::Savings, Kind::Card, Kind::Current];
                let kind = if i == 0 {
                    Kind::Current
                } else {
                    rng.pick(&kinds)
                };
                let n = i.to_string();
                Account::generate(format!("acc-{}", short_hash(&["account-id", id, &n])), kind)
            })
            .collect();
        Self::named(id.to_owned(), &mut rng, accounts)
    }

    /// Someone else's current account with exactly the given id.
    pub(super) fn stranger(account_id: &str) -> Self {
        let id = format!("stranger:{account_id}");
        let mut rng = Rng::new(&["customer", &id]);
        Self::named(
            id,
            &mut rng,
            vec![Account::generate(account_id.to_owned(), Kind::Current)],
        )
    }

    fn named(id: String, rng: &mut Rng, accounts: Vec<Account>) -> Self {
        let party_id = format!("pty-{}", short_hash(&["party", &id]));
        let (first, last) = (rng.pick(&FIRST_NAMES), rng.pick(&LAST_NAMES));
        Self {
            id,
            party_id,
            first,
            last,
            accounts,
        }
    }

    /// Display name, also the name on the holder's accounts.
    pub(super) fn name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }

    /// The holder's account with this id, if it is theirs.
    pub(super) fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }
}

/// Someone an account pays or is paid by, monthly on `day`.
#[derive(Clone, Debug)]
pub(super) struct Payee {
    pub(super) id: String,
    pub(super) name: String,
    /// Payment reference; for a direct debit, the mandate number.
    pub(super) reference: String,
    /// Sort code and account number, 14 digits.
    pub(super) account: String,
    pub(super) bic: &'static str,
    pub(super) pence: i64,
    pub(super) day: u8,
}

impl Payee {
    fn draw(rng: &mut Rng, id: String, name: &str, reference: String, pence: (i64, i64)) -> Self {
        let (account, bic) = (rng.digits(14), rng.pick(&BICS));
        let (pence, day) = (rng.between(pence.0, pence.1), rng.day_of_month());
        Self {
            id,
            name: name.to_owned(),
            reference,
            account,
            bic,
            pence,
            day,
        }
    }
}

fn item_id(prefix: &str, account: &Account, i: u64) -> String {
    format!(
        "{prefix}-{}",
        short_hash(&[prefix, &account.id, &i.to_string()])
    )
}

/// 2 or 3 distinct consecutive entries of a table, from a random start.
fn some_of<T: Copy>(rng: &mut Rng, table: &[T]) -> Vec<(u64, T)> {
    let (count, start) = (2 + rng.below(2), rng.below(table.len() as u64));
    let at = |i: u64| usize::try_from((start + i) % table.len() as u64).unwrap_or(0);
    (0..count).map(|i| (i, table[at(i)])).collect()
}

/// A current account's 2–3 beneficiaries; each is also paid by a monthly standing order.
pub(super) fn beneficiaries(account: &Account) -> Vec<Payee> {
    if account.kind != Kind::Current {
        return Vec::new();
    }
    let mut rng = Rng::new(&["beneficiaries", &account.id]);
    let chosen = some_of(&mut rng, &BENEFICIARIES);
    chosen
        .into_iter()
        .map(|(i, (name, reference))| {
            let id = item_id("ben", account, i);
            Payee::draw(&mut rng, id, name, reference.to_owned(), (1_000, 30_000))
        })
        .collect()
}

/// A current account's 2–3 direct debits.
pub(super) fn direct_debits(account: &Account) -> Vec<Payee> {
    if account.kind != Kind::Current {
        return Vec::new();
    }
    let mut rng = Rng::new(&["direct-debits", &account.id]);
    let chosen = some_of(&mut rng, &BILLERS);
    chosen
        .into_iter()
        .map(|(i, name)| {
            let mandate = format!("SBX{}", rng.digits(9));
            Payee::draw(
                &mut rng,
                item_id("dd", account, i),
                name,
                mandate,
                (1_500, 9_000),
            )
        })
        .collect()
}

/// A current account's one future one-off payment, to its first beneficiary.
pub(super) fn scheduled_payments(account: &Account) -> Vec<Payee> {
    let mut rng = Rng::new(&["scheduled", &account.id]);
    let first = beneficiaries(account).into_iter().take(1);
    first
        .map(|b| Payee {
            id: item_id("sp", account, 0),
            reference: "ONE-OFF PAYMENT".to_owned(),
            pence: rng.between(2_000, 50_000),
            day: rng.day_of_month(),
            ..b
        })
        .collect()
}

/// The monthly salary into a current account, late in the month.
pub(super) fn salary(account: &Account) -> Payee {
    let mut rng = Rng::new(&["salary", &account.id]);
    let (employer, id) = (rng.pick(&EMPLOYERS), item_id("sal", account, 0));
    let p = Payee::draw(&mut rng, id, employer, "SALARY".to_owned(), (2_000, 3_500));
    let day = u8::try_from(rng.between(20, 28)).unwrap_or(25);
    Payee {
        pence: p.pence * 100,
        day,
        ..p
    }
}

/// A credit card's limit in pence (£3,000 to £8,000).
pub(super) fn credit_limit(account: &Account) -> i64 {
    Rng::new(&["limit", &account.id]).between(30, 80) * 10_000
}

/// The first date on or after `from` on `day` of its month (`day` ≤ 28, so within 31 days).
pub(super) fn on_or_after(from: Date, day: u8) -> Option<Date> {
    (0..31)
        .filter_map(|k| Date::from_julian_day(from.to_julian_day() + k).ok())
        .find(|d| d.day() == day)
}

/// The last date strictly before `until` on `day` of its month.
pub(super) fn before(until: Date, day: u8) -> Option<Date> {
    (1..=31)
        .filter_map(|k| Date::from_julian_day(until.to_julian_day() - k).ok())
        .find(|d| d.day() == day)
}
