//! The sandbox bank's data as UK Open Banking v3.1.11 JSON, named as the official schemas name
//! it (`OBAccount6`, `OBTransaction6`, …). Every optional field the profile reserves for a
//! Detail permission is filled, so the gateway has something to strip under Basic consents.

use serde_json::{json, Value};
use time::{Date, PrimitiveDateTime};

use super::data::{self, Account, Holder, Kind, Payee, Rng, OWN_BIC};
use super::ledger::{self, Detail, Statement, Tx};

const SCHEME: &str = "UK.OBIE.SortCodeAccountNumber";
const STREETS: [&str; 4] = ["Mill Lane", "Station Road", "Orchard Close", "Quay Street"];
const TOWNS: [(&str, &str); 3] = [
    ("Millbrook", "MB1 4QT"),
    ("Eastwick", "EW3 7LD"),
    ("Hollowmere", "HM2 9RS"),
];

/// RFC 3339 with an explicit `+00:00`: the books are kept in UTC.
pub(super) fn stamp(at: PrimitiveDateTime) -> String {
    let date = ledger::ymd(at.date());
    format!(
        "{date}T{:02}:{:02}:{:02}+00:00",
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn day_stamp(date: Option<Date>) -> Value {
    date.map_or(Value::Null, |d| Value::String(stamp(d.midnight())))
}

/// Pounds with two decimals, unsigned: the sign travels in `CreditDebitIndicator`.
fn money(pence: i64) -> Value {
    let a = pence.unsigned_abs();
    json!({"Amount": format!("{}.{:02}", a / 100, a % 100), "Currency": "GBP"})
}

fn indicator(pence: i64) -> &'static str {
    if pence < 0 {
        "Debit"
    } else {
        "Credit"
    }
}

/// Drops `null` members: optional dates that could not be worked out are simply absent.
fn compact(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, member| !member.is_null());
    }
    v
}

fn insert(v: &mut Value, key: &str, member: Value) {
    if let Some(map) = v.as_object_mut() {
        map.insert(key.to_owned(), member);
    }
}

fn cash_account(identification: &str, name: &str) -> Value {
    json!({"SchemeName": SCHEME, "Identification": identification, "Name": name})
}

fn agent(bic: &str) -> Value {
    json!({"SchemeName": "UK.OBIE.BICFI", "Identification": bic})
}

/// `OBAccount6`.
pub(super) fn account(holder: &Holder, a: &Account) -> Value {
    let (sub_type, description, nickname) = a.kind.labels();
    json!({
        "AccountId": a.id, "Status": "Enabled", "StatusUpdateDateTime": day_stamp(Some(a.opened)),
        "Currency": "GBP", "AccountType": "Personal", "AccountSubType": sub_type,
        "Description": description, "Nickname": nickname, "OpeningDate": day_stamp(Some(a.opened)),
        "Account": [cash_account(&a.identification, &holder.name())], "Servicer": agent(OWN_BIC),
    })
}

/// `OBReadBalance1` entries as of the start of today. A card's available balance is its
/// credit line less what is owed, and says so in `CreditLine`.
pub(super) fn balances(a: &Account, booked: i64, today: Date) -> Vec<Value> {
    let one = |kind: &str, pence: i64| {
        json!({"AccountId": a.id, "CreditDebitIndicator": indicator(pence), "Type": kind,
               "DateTime": day_stamp(Some(today)), "Amount": money(pence)})
    };
    let available = if a.kind == Kind::Card {
        let limit = data::credit_limit(a);
        let mut v = one("InterimAvailable", limit.saturating_add(booked));
        let line = json!([{"Included": true, "Type": "Credit", "Amount": money(limit)}]);
        insert(&mut v, "CreditLine", line);
        v
    } else {
        one("InterimAvailable", booked)
    };
    vec![one("InterimBooked", booked), available]
}

/// `OBTransaction6`, with every Detail-only field the booking has.
pub(super) fn transaction(tx: &Tx) -> Value {
    let mut v = json!({
        "AccountId": tx.account_id, "TransactionId": tx.id,
        "CreditDebitIndicator": indicator(tx.pence), "Status": "Booked",
        "BookingDateTime": stamp(tx.at), "ValueDateTime": stamp(tx.at),
        "TransactionInformation": tx.info, "Amount": money(tx.pence),
        "ProprietaryBankTransactionCode": {"Code": tx.code, "Issuer": "SandboxBank"},
        "Balance": {"CreditDebitIndicator": indicator(tx.balance), "Type": "InterimBooked",
                    "Amount": money(tx.balance)},
    });
    let (side, p) = match &tx.detail {
        Detail::Card(name, mcc) => {
            let details = json!({"MerchantName": name, "MerchantCategoryCode": mcc});
            insert(&mut v, "MerchantDetails", details);
            return v;
        }
        Detail::Paid(p) => ("Creditor", p),
        Detail::Received(p) => ("Debtor", p),
        Detail::Bank => return v,
    };
    insert(
        &mut v,
        &format!("{side}Account"),
        cash_account(&p.account, &p.name),
    );
    insert(&mut v, &format!("{side}Agent"), agent(p.bic));
    v
}

/// `OBBeneficiary5`.
pub(super) fn beneficiary(a: &Account, p: &Payee) -> Value {
    json!({
        "AccountId": a.id, "BeneficiaryId": p.id, "BeneficiaryType": "Trusted",
        "Reference": p.reference, "CreditorAgent": agent(p.bic),
        "CreditorAccount": cash_account(&p.account, &p.name),
    })
}

/// `OBReadDirectDebit2` entry; the last collection is the one in the transactions.
pub(super) fn direct_debit(a: &Account, p: &Payee, today: Date) -> Value {
    let previous = data::before(today, p.day).map(|d| stamp(ledger::at(d, 5, 0)));
    compact(json!({
        "AccountId": a.id, "DirectDebitId": p.id, "MandateIdentification": p.reference,
        "DirectDebitStatusCode": "Active", "Name": p.name, "PreviousPaymentDateTime": previous,
        "Frequency": "UK.OBIE.Monthly", "PreviousPaymentAmount": money(p.pence),
    }))
}

/// `OBStandingOrder6`: monthly on the payee's day, to a beneficiary.
pub(super) fn standing_order(a: &Account, p: &Payee, today: Date) -> Value {
    let first = a
        .opened
        .next_day()
        .and_then(|d| data::on_or_after(d, p.day));
    compact(json!({
        "AccountId": a.id, "StandingOrderId": format!("so-{}", data::short_hash(&["so", &p.id])),
        "Frequency": format!("IntrvlMnthDay:01:{:02}", p.day), "Reference": p.reference,
        "FirstPaymentDateTime": day_stamp(first),
        "NextPaymentDateTime": day_stamp(data::on_or_after(today, p.day)),
        "LastPaymentDateTime": day_stamp(data::before(today, p.day)),
        "StandingOrderStatusCode": "Active", "FirstPaymentAmount": money(p.pence),
        "NextPaymentAmount": money(p.pence), "LastPaymentAmount": money(p.pence),
        "CreditorAgent": agent(p.bic), "CreditorAccount": cash_account(&p.account, &p.name),
    }))
}

/// `OBScheduledPayment3`: one-off, on the next occurrence of its day after today.
pub(super) fn scheduled_payment(a: &Account, p: &Payee, today: Date) -> Value {
    let when = today.next_day().and_then(|d| data::on_or_after(d, p.day));
    compact(json!({
        "AccountId": a.id, "ScheduledPaymentId": p.id, "ScheduledPaymentDateTime": day_stamp(when),
        "ScheduledType": "Execution", "Reference": p.reference,
        "InstructedAmount": money(p.pence), "CreditorAgent": agent(p.bic),
        "CreditorAccount": cash_account(&p.account, &p.name),
    }))
}

/// `OBReadProduct2` entry. The `ProductType` enum has no personal savings or card products,
/// so those are `Other`, described in `OtherProductType`.
pub(super) fn product(a: &Account) -> Value {
    let (name, id, other) = match a.kind {
        Kind::Current => ("Sandbox Everyday Account", "prd-everyday", None),
        Kind::Savings => (
            "Sandbox Instant Saver",
            "prd-saver",
            Some("Savings, monthly interest"),
        ),
        Kind::Card => (
            "Sandbox Cashback Card",
            "prd-card",
            Some("Credit card, repaid monthly"),
        ),
    };
    let product_type = if other.is_some() {
        "Other"
    } else {
        "PersonalCurrentAccount"
    };
    let mut v = json!({"ProductName": name, "ProductId": id, "AccountId": a.id,
                       "ProductType": product_type});
    if let Some(description) = other {
        let other = json!({"Name": name, "Description": description});
        insert(&mut v, "OtherProductType", other);
    }
    v
}

/// `OBParty2`: the holder as a sole individual; `AccountRole` only in an account's context.
pub(super) fn party(holder: &Holder, for_account: bool) -> Value {
    let mut rng = Rng::new(&["party-details", &holder.id]);
    let (town, post_code) = rng.pick(&TOWNS);
    let email = format!("{}.{}@example.com", holder.first, holder.last).to_ascii_lowercase();
    let mut v = json!({
        "PartyId": holder.party_id, "PartyNumber": rng.digits(8), "PartyType": "Sole",
        "Name": holder.name(), "FullLegalName": holder.name(),
        "LegalStructure": "UK.OBIE.Individual", "BeneficialOwnership": true,
        "EmailAddress": email, "Mobile": format!("+44-7700900{}", rng.digits(3)),
        "Address": [{
            "AddressType": "Residential", "BuildingNumber": rng.between(1, 180).to_string(),
            "StreetName": rng.pick(&STREETS), "TownName": town, "PostCode": post_code,
            "Country": "GB",
        }],
    });
    if for_account {
        insert(&mut v, "AccountRole", json!("UK.OBIE.Principal"));
    }
    v
}

/// `OBStatement2`, with the Detail-only `StatementAmount`s.
pub(super) fn statement(st: &Statement) -> Value {
    let amounts: Vec<Value> = [
        (
            "UK.OBIE.PreviousClosingBalance",
            indicator(st.opening),
            st.opening,
        ),
        ("UK.OBIE.ClosingBalance", indicator(st.closing), st.closing),
        ("UK.OBIE.TotalCredits", "Credit", st.credits),
        ("UK.OBIE.TotalDebits", "Debit", st.debits),
    ]
    .into_iter()
    .map(|(kind, cd, p)| json!({"CreditDebitIndicator": cd, "Type": kind, "Amount": money(p)}))
    .collect();
    let created = st.end.next_day().unwrap_or(st.end);
    json!({
        "AccountId": st.account_id, "StatementId": st.id,
        "StatementReference": &ledger::ymd(st.start)[..7], "Type": "RegularPeriodic",
        "StartDateTime": day_stamp(Some(st.start)),
        "EndDateTime": stamp(ledger::at(st.end, 23, 59)),
        "CreationDateTime": stamp(ledger::at(created, 2, 0)),
        "StatementDescription": ["Monthly statement"], "StatementAmount": amounts,
    })
}
