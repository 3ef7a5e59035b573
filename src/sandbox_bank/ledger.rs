//! The sandbox bank's books: a year of booked transactions per account, with running balances
//! and monthly statements.
//!
//! Each calendar day's bookings are seeded by (account, date), so a day keeps the same
//! transactions whatever day "today" is. The window is the 365 days *before* today: today holds
//! nothing, so answers never depend on the hour. Running balances start from a fixed opening
//! balance at the window's start: stable for a given today, shifting as the window moves.

use time::{Date, PrimitiveDateTime, Time};

use super::data::{self, Account, Holder, Kind, Payee, Rng, OWN_BIC};

/// Days of history before today.
pub(super) const HISTORY_DAYS: i32 = 365;

/// Card merchants: name, merchant category code, spend range in pence.
const MERCHANTS: [(&str, &str, i64, i64); 7] = [
    ("Corner Grocer", "5411", 300, 6_000),
    ("Bean There Coffee", "5814", 250, 900),
    ("Metro Transit", "4111", 150, 1_200),
    ("Page and Quill Books", "5942", 800, 3_500),
    ("Fuel Stop", "5541", 2_000, 7_000),
    ("Luna Pizzeria", "5812", 1_200, 4_500),
    ("Everything Online", "5399", 500, 8_000),
];

/// The other side of a booking: the fields only a Detail consent may see.
#[derive(Clone, Debug)]
pub(super) enum Detail {
    /// `MerchantDetails`: name and category code.
    Card(&'static str, &'static str),
    /// Money out: `CreditorAccount` / `CreditorAgent`.
    Paid(Payee),
    /// Money in: `DebtorAccount` / `DebtorAgent`.
    Received(Payee),
    /// The bank's own entry (interest).
    Bank,
}

/// One booked transaction.
#[derive(Clone, Debug)]
pub(super) struct Tx {
    pub(super) id: String,
    pub(super) account_id: String,
    pub(super) at: PrimitiveDateTime,
    /// Signed: positive credits the account.
    pub(super) pence: i64,
    pub(super) info: String,
    /// Proprietary transaction code: CARD, DD, SO, BGC, TFR, INT.
    pub(super) code: &'static str,
    pub(super) detail: Detail,
    /// Running balance after this booking.
    pub(super) balance: i64,
}

/// The recurring part of an account's month, worked out once per history.
#[derive(Default)]
struct Plan {
    credits: Vec<(Payee, &'static str)>,
    debits: Vec<(Payee, &'static str)>,
    /// Card payments per day are drawn from `0..spend`.
    spend: u64,
    /// Pence credited on the last day of each month.
    interest: i64,
}

/// The balance at the start of the window.
pub(super) fn opening_balance(account: &Account) -> i64 {
    let mut rng = Rng::new(&["opening", &account.id]);
    match account.kind {
        Kind::Current => rng.between(50_000, 300_000),
        Kind::Savings => rng.between(100_000, 1_500_000),
        Kind::Card => -rng.between(20_000, 80_000),
    }
}

/// Every booking in the window, oldest first, with ids and running balances.
pub(super) fn history(holder: &Holder, account: &Account, today: Date) -> Vec<Tx> {
    let plan = plan(holder, account);
    let last = today.to_julian_day();
    let mut balance = opening_balance(account);
    let mut out = Vec::new();
    let days =
        (last.saturating_sub(HISTORY_DAYS)..last).filter_map(|d| Date::from_julian_day(d).ok());
    for date in days {
        for (seq, mut tx) in bookings(account, &plan, date).into_iter().enumerate() {
            balance = balance.saturating_add(tx.pence);
            tx.balance = balance;
            tx.id = format!("{}-{}-{seq:02}", account.id, ymd(date).replace('-', ""));
            out.push(tx);
        }
    }
    out
}

/// The balance at the start of today.
pub(super) fn closing_balance(holder: &Holder, account: &Account, today: Date) -> i64 {
    let history = history(holder, account, today);
    history
        .last()
        .map_or_else(|| opening_balance(account), |t| t.balance)
}

/// A booking-time filter, `[from, to]`, either end open.
pub(super) type Window = (Option<PrimitiveDateTime>, Option<PrimitiveDateTime>);

/// Whether a booking falls in the window.
pub(super) fn within(tx: &Tx, window: Window) -> bool {
    window.0.is_none_or(|f| tx.at >= f) && window.1.is_none_or(|t| tx.at <= t)
}

/// The monthly transfer from the main account to another (savings sweep or card repayment).
/// One seed gives both sides, so the two books agree. Returns (payee as the main account sees
/// it, payer as `other` sees it).
fn transfer(holder: &Holder, main: &Account, other: &Account) -> Option<(Payee, Payee)> {
    let (reference, lo, hi, day) = match other.kind {
        Kind::Savings => ("SAVINGS SWEEP", 50, 300, 1),
        Kind::Card => ("CARD REPAYMENT", 300, 500, 15),
        Kind::Current => return None,
    };
    let pence = Rng::new(&["transfer", &other.id]).between(lo, hi) * 100;
    let side = |account: &Account| Payee {
        id: format!("tfr-{}", data::short_hash(&["transfer", &other.id])),
        name: holder.name(),
        reference: reference.to_owned(),
        account: account.identification.clone(),
        bic: OWN_BIC,
        pence,
        day,
    };
    Some((side(other), side(main)))
}

fn plan(holder: &Holder, account: &Account) -> Plan {
    // `main` is the holder's first account, when `account` is another one.
    let main = holder.accounts.first().filter(|m| m.id != account.id);
    let mut plan = Plan {
        spend: 2,
        ..Plan::default()
    };
    match account.kind {
        Kind::Current => {
            plan.credits.push((data::salary(account), "BGC"));
            let dds = data::direct_debits(account).into_iter().map(|p| (p, "DD"));
            plan.debits.extend(dds);
            let sos = data::beneficiaries(account).into_iter().map(|p| (p, "SO"));
            plan.debits.extend(sos);
            if main.is_none() {
                let others = holder
                    .accounts
                    .iter()
                    .filter_map(|o| transfer(holder, account, o));
                plan.debits.extend(others.map(|(to, _)| (to, "TFR")));
            }
        }
        Kind::Savings | Kind::Card => {
            if let Some((_, from)) = main.and_then(|m| transfer(holder, m, account)) {
                plan.credits.push((from, "TFR"));
            }
            if account.kind == Kind::Savings {
                plan.spend = 0;
                plan.interest = Rng::new(&["interest", &account.id]).between(40, 400);
            }
        }
    }
    plan
}

/// One day's bookings in time order (ids and balances are filled in by [`history`]).
fn bookings(account: &Account, plan: &Plan, date: Date) -> Vec<Tx> {
    let due = |p: &Payee| p.day == date.day();
    let info = |p: &Payee| format!("{} {}", p.name, p.reference);
    let mut out = Vec::new();
    for (p, code) in plan.credits.iter().filter(|(p, _)| due(p)) {
        let detail = Detail::Received(p.clone());
        out.push(booking(
            account,
            at(date, 6, 0),
            p.pence,
            info(p),
            code,
            detail,
        ));
    }
    for (i, (p, code)) in plan.debits.iter().filter(|(p, _)| due(p)).enumerate() {
        let time = at(date, 5, u8::try_from(i).unwrap_or(59));
        out.push(booking(
            account,
            time,
            -p.pence,
            info(p),
            code,
            Detail::Paid(p.clone()),
        ));
    }
    if plan.interest > 0 && date.next_day().is_some_and(|d| d.day() == 1) {
        let interest = "Interest paid".to_owned();
        out.push(booking(
            account,
            at(date, 23, 0),
            plan.interest,
            interest,
            "INT",
            Detail::Bank,
        ));
    }
    let mut rng = Rng::new(&["spend", &account.id, &ymd(date)]);
    for _ in 0..rng.below(plan.spend) {
        let (merchant, mcc, lo, hi) = rng.pick(&MERCHANTS);
        let hour = u8::try_from(rng.between(8, 21)).unwrap_or(12);
        let time = at(date, hour, u8::try_from(rng.between(0, 59)).unwrap_or(0));
        let text = format!("Card payment to {merchant}");
        let detail = Detail::Card(merchant, mcc);
        out.push(booking(
            account,
            time,
            -rng.between(lo, hi),
            text,
            "CARD",
            detail,
        ));
    }
    out.sort_by_key(|t| t.at);
    out
}

fn booking(
    account: &Account,
    at: PrimitiveDateTime,
    pence: i64,
    info: String,
    code: &'static str,
    detail: Detail,
) -> Tx {
    let (id, account_id) = (String::new(), account.id.clone());
    Tx {
        id,
        account_id,
        at,
        pence,
        info,
        code,
        detail,
        balance: 0,
    }
}

/// A UTC wall-clock time on `date`.
pub(super) fn at(date: Date, hour: u8, minute: u8) -> PrimitiveDateTime {
    PrimitiveDateTime::new(
        date,
        Time::from_hms(hour, minute, 0).unwrap_or(Time::MIDNIGHT),
    )
}

/// `YYYY-MM-DD`.
pub(super) fn ymd(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// One monthly statement: its month and its opening, closing, credit and debit totals.
#[derive(Clone, Debug)]
pub(super) struct Statement {
    pub(super) id: String,
    pub(super) account_id: String,
    pub(super) start: Date,
    pub(super) end: Date,
    pub(super) opening: i64,
    pub(super) closing: i64,
    pub(super) credits: i64,
    pub(super) debits: i64,
}

impl Statement {
    /// Whether the booking falls in this statement's month.
    pub(super) fn covers(&self, tx: &Tx) -> bool {
        (self.start..=self.end).contains(&tx.at.date())
    }
}

/// Statements for the last three complete calendar months, oldest first.
pub(super) fn statements(account: &Account, txs: &[Tx], today: Date) -> Vec<Statement> {
    let mut months = Vec::new();
    let mut cursor = today.replace_day(1).ok();
    for _ in 0..3 {
        let Some(end) = cursor.and_then(Date::previous_day) else {
            break;
        };
        let start = end.replace_day(1).unwrap_or(end);
        months.push(summarise(account, txs, start, end));
        cursor = Some(start);
    }
    months.reverse();
    months
}

fn summarise(account: &Account, txs: &[Tx], start: Date, end: Date) -> Statement {
    let before = txs.iter().take_while(|t| t.at.date() < start).last();
    let opening = before.map_or_else(|| opening_balance(account), |t| t.balance);
    let month = ymd(start).replace('-', "");
    let mut st = Statement {
        id: format!("{}-{}", account.id, &month[..6]),
        account_id: account.id.clone(),
        start,
        end,
        opening,
        closing: opening,
        credits: 0,
        debits: 0,
    };
    for tx in txs.iter().filter(|t| (start..=end).contains(&t.at.date())) {
        st.closing = tx.balance;
        if tx.pence >= 0 {
            st.credits += tx.pence;
        } else {
            st.debits -= tx.pence;
        }
    }
    st
}
