//! Shapes an upstream body to what the consent grants: only consented accounts, only the
//! permitted detail, only the consented transaction window, and links pointing at obgate.
//!
//! Every gateway answer passes through here, so [`reshape`] works on the raw bytes: it parses
//! only the levels it must decide on (the top object, `Data`, the item list, each item's
//! `AccountId`, `Links`) and copies everything else through untouched. Building a full
//! `Value` tree of each body and serialising it again was about a tenth of the gateway's CPU
//! in its profile (BENCHMARKS.md). Items that lose fields or are checked against the
//! transaction window are still read into a `Value`, by the same [`apply`] rules, and a body
//! that is not a JSON object takes the `Value` path whole; a property test holds the two
//! paths to the same answer.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;
use url::Url;

use super::authorize::Grant;
use super::route_map::Shape;
use crate::consent::parse_date_time;

/// The `Data` array a shape's items live in.
fn items_key(shape: Shape) -> Option<&'static str> {
    Some(match shape {
        Shape::Accounts => "Account",
        Shape::Balances => "Balance",
        Shape::Transactions => "Transaction",
        Shape::Beneficiaries => "Beneficiary",
        Shape::DirectDebits => "DirectDebit",
        Shape::StandingOrders => "StandingOrder",
        Shape::Products => "Product",
        Shape::Offers => "Offer",
        Shape::ScheduledPayments => "ScheduledPayment",
        Shape::Statements => "Statement",
        Shape::Party | Shape::File => return None,
    })
}

/// Fields the AIS profile reserves for a Detail permission, per shape: (the permission, the
/// fields removed without it).
fn detail_fields(shape: Shape) -> Option<(&'static str, &'static [&'static str])> {
    const CREDITOR: &[&str] = &["CreditorAgent", "CreditorAccount"];
    Some(match shape {
        Shape::Accounts => ("ReadAccountsDetail", &["Account", "Servicer"]),
        Shape::Transactions => (
            "ReadTransactionsDetail",
            &[
                "TransactionInformation",
                "Balance",
                "MerchantDetails",
                "CreditorAgent",
                "CreditorAccount",
                "DebtorAgent",
                "DebtorAccount",
            ],
        ),
        Shape::Beneficiaries => ("ReadBeneficiariesDetail", CREDITOR),
        Shape::StandingOrders => ("ReadStandingOrdersDetail", CREDITOR),
        Shape::ScheduledPayments => ("ReadScheduledPaymentsDetail", CREDITOR),
        Shape::Statements => ("ReadStatementsDetail", &["StatementAmount"]),
        _ => return None,
    })
}

/// Whether an item of the route's shape is one the grant shows: a consented account and, for
/// transactions, a permitted direction inside the window.
fn keep(item: &Value, shape: Shape, grant: &Grant) -> bool {
    let account_ok = item
        .get("AccountId")
        .and_then(Value::as_str)
        .is_some_and(|a| grant.account_ids.iter().any(|c| c == a));
    account_ok && (shape != Shape::Transactions || transaction_allowed(item, grant))
}

/// The fields the grant's permissions hide in items of this shape (none when Detail is
/// granted).
fn hidden_fields(shape: Shape, grant: &Grant) -> &'static [&'static str] {
    match detail_fields(shape) {
        Some((permission, fields)) if !grant.has(permission) => fields,
        _ => &[],
    }
}

/// Whether a transaction item is inside the grant: direction permitted, booked in the window.
fn transaction_allowed(item: &Value, grant: &Grant) -> bool {
    let direction_ok = match item.get("CreditDebitIndicator").and_then(Value::as_str) {
        Some("Credit") => grant.has("ReadTransactionsCredits"),
        Some("Debit") => grant.has("ReadTransactionsDebits"),
        _ => false,
    };
    let booked = item
        .get("BookingDateTime")
        .and_then(Value::as_str)
        .and_then(parse_date_time);
    let in_window = match booked {
        Some(t) => grant.from.is_none_or(|f| t >= f) && grant.to.is_none_or(|to| t <= to),
        // Without a booking date the window cannot be checked: leave it out.
        None => grant.from.is_none() && grant.to.is_none(),
    };
    direction_ok && in_window
}

/// Applies the grant to a body of the route's shape, in place.
pub fn apply(body: &mut Value, grant: &Grant) {
    let shape = grant.matched.route.shape;
    let Some(key) = items_key(shape) else {
        return;
    };
    let Some(items) = body
        .get_mut("Data")
        .and_then(|d| d.get_mut(key))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    items.retain(|item| keep(item, shape, grant));
    let hidden = hidden_fields(shape, grant);
    for item in items.iter_mut() {
        if let Some(obj) = item.as_object_mut() {
            for f in hidden {
                obj.remove(*f);
            }
        }
    }
}

/// An object's members as raw JSON, in key order (a repeated key: the last one, as
/// `serde_json::Value` reads it).
type RawObject<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// The grant applied to an upstream JSON body and its links pointed at `public_base`, as
/// the bytes to send: [`apply`] and [`rewrite_links`] without a tree of the whole body (see
/// the module docs). `Err` when the body is not JSON.
pub fn reshape(
    bytes: &[u8],
    grant: &Grant,
    public_base: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    let Ok(top) = serde_json::from_slice::<RawObject>(bytes) else {
        // Not an object (or not JSON at all, which this reports): the tree path decides.
        let mut body: Value = serde_json::from_slice(bytes)?;
        apply(&mut body, grant);
        rewrite_links(&mut body, public_base);
        return serde_json::to_vec(&body);
    };
    let mut out = Vec::with_capacity(bytes.len());
    write_object(&mut out, &top, |out, key, raw| match key {
        "Data" => write_data(out, raw, grant),
        "Links" => {
            let mut links: Value = serde_json::from_str(raw.get())?;
            relink(&mut links, public_base);
            serde_json::to_writer(out, &links)
        }
        _ => {
            out.extend_from_slice(raw.get().as_bytes());
            Ok(())
        }
    })?;
    Ok(out)
}

/// Writes an object member by member, each value as `value` writes it.
fn write_object<'a>(
    out: &mut Vec<u8>,
    members: &RawObject<'a>,
    mut value: impl FnMut(&mut Vec<u8>, &str, &'a RawValue) -> Result<(), serde_json::Error>,
) -> Result<(), serde_json::Error> {
    out.push(b'{');
    for (i, (key, raw)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key)?;
        out.push(b':');
        value(out, key, raw)?;
    }
    out.push(b'}');
    Ok(())
}

/// `Data` with the shape's item list filtered; everything else in it copied through.
fn write_data(out: &mut Vec<u8>, raw: &RawValue, grant: &Grant) -> Result<(), serde_json::Error> {
    let shape = grant.matched.route.shape;
    let data = match items_key(shape) {
        Some(key) => serde_json::from_str::<RawObject>(raw.get())
            .ok()
            .map(|d| (key, d)),
        None => None,
    };
    let Some((items_key, data)) = data else {
        out.extend_from_slice(raw.get().as_bytes());
        return Ok(());
    };
    write_object(out, &data, |out, key, raw| {
        // Only the shape's list is read; every other member is copied as it came.
        let items = (key == items_key)
            .then(|| serde_json::from_str::<Vec<&RawValue>>(raw.get()).ok())
            .flatten();
        match items {
            Some(items) => write_items(out, &items, shape, grant),
            None => {
                out.extend_from_slice(raw.get().as_bytes());
                Ok(())
            }
        }
    })
}

/// The items the grant shows, as [`apply`] keeps and trims them. An item that needs no
/// trimming and no window check is decided on its `AccountId` alone and copied as it came.
fn write_items(
    out: &mut Vec<u8>,
    items: &[&RawValue],
    shape: Shape,
    grant: &Grant,
) -> Result<(), serde_json::Error> {
    /// The one member the fast path reads.
    #[derive(serde::Deserialize)]
    struct Item<'a> {
        #[serde(rename = "AccountId", borrow)]
        account_id: Option<&'a RawValue>,
    }
    let hidden = hidden_fields(shape, grant);
    let whole = shape == Shape::Transactions || !hidden.is_empty();
    out.push(b'[');
    let mut first = true;
    for raw in items {
        let mut comma = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        if whole {
            let mut item: Value = serde_json::from_str(raw.get())?;
            if keep(&item, shape, grant) {
                if let Some(obj) = item.as_object_mut() {
                    for f in hidden {
                        obj.remove(*f);
                    }
                }
                comma(out);
                serde_json::to_writer(&mut *out, &item)?;
            }
            continue;
        }
        let account = serde_json::from_str::<Item>(raw.get())
            .ok()
            .and_then(|i| i.account_id)
            .and_then(|a| serde_json::from_str::<Cow<str>>(a.get()).ok());
        if account.is_some_and(|a| grant.account_ids.iter().any(|c| *c == *a)) {
            comma(out);
            out.extend_from_slice(raw.get().as_bytes());
        }
    }
    out.push(b']');
    Ok(())
}

/// Points every `Links` URL at obgate's public base, keeping the path under the AIS prefix
/// and the query, so a TPP never sees (or follows) the upstream's address.
pub fn rewrite_links(body: &mut Value, public_base: &str) {
    if let Some(links) = body.get_mut("Links") {
        relink(links, public_base);
    }
}

/// Each URL of a `Links` object pointed at `public_base` (see [`rewrite_links`]).
fn relink(links: &mut Value, public_base: &str) {
    let Some(links) = links.as_object_mut() else {
        return;
    };
    for v in links.values_mut() {
        let Some(s) = v.as_str() else { continue };
        let parsed = Url::parse(s).or_else(|_| Url::parse(&format!("http://relative.invalid{s}")));
        let Ok(u) = parsed else { continue };
        let path = u.path();
        let tail = path
            .find(super::route_map::PREFIX)
            .map_or(path, |i| &path[i..]);
        let mut out = format!("{}{tail}", public_base.trim_end_matches('/'));
        if let Some(q) = u.query() {
            out.push('?');
            out.push_str(q);
        }
        *v = Value::String(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::route_map::lookup;
    use serde_json::json;

    fn grant(path: &str, permissions: &[&str]) -> Grant {
        Grant {
            client_id: "cl".into(),
            consent_id: "aac".into(),
            customer_id: "cus".into(),
            account_ids: vec!["a1".into()],
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            from: parse_date_time("2026-01-01T00:00:00+00:00"),
            to: parse_date_time("2026-06-30T23:59:59+00:00"),
            matched: lookup(path).unwrap(),
        }
    }

    #[test]
    fn transactions_are_cut_to_accounts_direction_window_and_detail() {
        let g = grant(
            "/open-banking/v3.1/aisp/transactions",
            &[
                "ReadAccountsBasic",
                "ReadTransactionsBasic",
                "ReadTransactionsDebits",
            ],
        );
        let tx = |acc: &str, cd: &str, at: &str| {
            json!({"AccountId": acc, "CreditDebitIndicator": cd, "BookingDateTime": at,
                   "TransactionInformation": "Coffee", "MerchantDetails": {"MerchantName": "Cafe"}})
        };
        let mut body = json!({"Data": {"Transaction": [
            tx("a1", "Debit", "2026-03-01T10:00:00+00:00"),
            tx("a2", "Debit", "2026-03-01T10:00:00+00:00"),
            tx("a1", "Credit", "2026-03-01T10:00:00+00:00"),
            tx("a1", "Debit", "2025-12-31T23:00:00+00:00"),
        ]}});
        apply(&mut body, &g);
        let items = body["Data"]["Transaction"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(
            items[0].get("TransactionInformation").is_none(),
            "Basic: no detail"
        );
        assert!(items[0].get("MerchantDetails").is_none());
        assert_eq!(items[0]["AccountId"], "a1");
    }

    #[test]
    fn accounts_lose_identification_without_detail_and_links_point_home() {
        let g = grant("/open-banking/v3.1/aisp/accounts", &["ReadAccountsBasic"]);
        let mut body = json!({
            "Data": {"Account": [{"AccountId": "a1", "Account": [{"Identification": "12345612345678"}]}, {"AccountId": "zz"}]},
            "Links": {"Self": "http://core.bank.internal:8443/api/open-banking/v3.1/aisp/accounts?page=2"}
        });
        apply(&mut body, &g);
        rewrite_links(&mut body, "https://obgate.example");
        assert_eq!(body["Data"]["Account"].as_array().unwrap().len(), 1);
        assert!(body["Data"]["Account"][0].get("Account").is_none());
        assert_eq!(
            body["Links"]["Self"],
            "https://obgate.example/open-banking/v3.1/aisp/accounts?page=2"
        );
    }

    /// The tree path: what [`reshape`] must always agree with.
    fn by_tree(body: &Value, g: &Grant) -> Value {
        let mut body = body.clone();
        apply(&mut body, g);
        rewrite_links(&mut body, "https://obgate.example");
        body
    }

    #[test]
    fn reshape_keeps_what_the_grant_shows_and_copies_the_rest_as_it_came() {
        let g = grant("/open-banking/v3.1/aisp/accounts", &["ReadAccountsDetail"]);
        let body = br#"{"Meta": {"TotalPages": 1},
            "Data": {"Account": [
                {"AccountId": "a1", "Nickname": "Bills \u00e9", "Account": [{"Identification": "1"}]},
                {"AccountId": "zz"}, {"AccountId": 7}, "a1", {"Nickname": "no id"}],
              "Other": [1, 2]},
            "Links": {"Self": "http://core.internal/open-banking/v3.1/aisp/accounts"}}"#;
        let out: Value =
            serde_json::from_slice(&reshape(body, &g, "https://obgate.example").unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"Meta": {"TotalPages": 1},
                   "Data": {"Account": [{"AccountId": "a1", "Nickname": "Bills \u{e9}",
                                         "Account": [{"Identification": "1"}]}],
                            "Other": [1, 2]},
                   "Links": {"Self": "https://obgate.example/open-banking/v3.1/aisp/accounts"}})
        );
        assert!(reshape(b"{\"Data\": ", &g, "https://obgate.example").is_err());
        assert!(reshape(b"not json", &g, "https://obgate.example").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// JSON that looks like an upstream answer: the shape's list under `Data` with items
        /// of consented, other and malformed accounts, detail fields, and stray members.
        fn body() -> impl Strategy<Value = Value> {
            let id = prop_oneof![
                Just(json!("a1")),
                Just(json!("a2")),
                Just(json!(1)),
                Just(Value::Null)
            ];
            let item = (
                proptest::option::of(id),
                any::<bool>(),
                any::<bool>(),
                prop_oneof![Just("Credit"), Just("Debit"), Just("Sideways")],
                prop_oneof![
                    Just("2026-03-01T10:00:00+00:00"),
                    Just("2025-01-01T00:00:00+00:00"),
                    Just("not a date")
                ],
            )
                .prop_map(|(id, detail, extra, cd, at)| {
                    let mut o = serde_json::Map::new();
                    if let Some(id) = id {
                        o.insert("AccountId".into(), id);
                    }
                    if detail {
                        o.insert("Account".into(), json!([{"Identification": "1"}]));
                        o.insert("TransactionInformation".into(), json!("Coffee"));
                        o.insert("CreditorAccount".into(), json!({"Name": "X"}));
                    }
                    if extra {
                        o.insert("Nickname".into(), json!("é \" \\ n"));
                    }
                    o.insert("CreditDebitIndicator".into(), json!(cd));
                    o.insert("BookingDateTime".into(), json!(at));
                    Value::Object(o)
                });
            let items = prop_oneof![
                8 => proptest::collection::vec(item, 0..6).prop_map(Value::Array),
                1 => Just(json!("not a list")),
            ];
            let key = prop_oneof![
                Just("Account"),
                Just("Transaction"),
                Just("Beneficiary"),
                Just("Balance")
            ];
            (key, items, any::<bool>(), any::<bool>(), 0..4u8).prop_map(
                |(key, items, links, meta, data_kind)| {
                    let data = match data_kind {
                        0 => json!([1, 2]),
                        _ => json!({ key: items, "Extra": {"k": [true]} }),
                    };
                    let mut body = json!({ "Data": data });
                    if links {
                        body["Links"] = json!({"Self": "http://core.internal/open-banking/v3.1/aisp/x?page=2", "N": 3});
                    }
                    if meta {
                        body["Meta"] = json!({"TotalPages": 1});
                    }
                    body
                },
            )
        }

        fn route() -> impl Strategy<Value = (&'static str, Vec<&'static str>)> {
            let path = prop_oneof![
                Just("/open-banking/v3.1/aisp/accounts"),
                Just("/open-banking/v3.1/aisp/transactions"),
                Just("/open-banking/v3.1/aisp/beneficiaries"),
                Just("/open-banking/v3.1/aisp/balances"),
                Just("/open-banking/v3.1/aisp/party")
            ];
            let permissions = proptest::sample::subsequence(
                vec![
                    "ReadAccountsBasic",
                    "ReadAccountsDetail",
                    "ReadTransactionsBasic",
                    "ReadTransactionsDetail",
                    "ReadTransactionsCredits",
                    "ReadTransactionsDebits",
                    "ReadBeneficiariesBasic",
                    "ReadBeneficiariesDetail",
                ],
                0..8,
            );
            (path, permissions)
        }

        proptest! {
            #[test]
            fn reshape_answers_as_the_tree_path_does(b in body(), (path, perms) in route()) {
                let g = grant(path, &perms);
                let bytes = serde_json::to_vec(&b).unwrap();
                let fast: Value = serde_json::from_slice(&reshape(&bytes, &g, "https://obgate.example").unwrap()).unwrap();
                prop_assert_eq!(fast, by_tree(&b, &g));
            }
        }
    }
}
