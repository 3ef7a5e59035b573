//! Shapes an upstream body to what the consent grants: only consented accounts, only the
//! permitted detail, only the consented transaction window, and links pointing at obgate.

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
    items.retain(|item| {
        let account_ok = item
            .get("AccountId")
            .and_then(Value::as_str)
            .is_some_and(|a| grant.account_ids.iter().any(|c| c == a));
        account_ok && (shape != Shape::Transactions || transaction_allowed(item, grant))
    });
    if let Some((permission, fields)) = detail_fields(shape) {
        if !grant.has(permission) {
            for item in items.iter_mut() {
                if let Some(obj) = item.as_object_mut() {
                    for f in fields {
                        obj.remove(*f);
                    }
                }
            }
        }
    }
}

/// Points every `Links` URL at obgate's public base, keeping the path under the AIS prefix
/// and the query, so a TPP never sees (or follows) the upstream's address.
pub fn rewrite_links(body: &mut Value, public_base: &str) {
    let Some(links) = body.get_mut("Links").and_then(Value::as_object_mut) else {
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
}
