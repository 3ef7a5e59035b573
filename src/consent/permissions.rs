//! UK Open Banking v3.1.11 account-access permissions: the codes, what each means in plain
//! words (for the bank's consent screen), and the AIS profile's rules on combining them.

use crate::error::ObError;

/// Every permission code of the v3.1.11 account-information API, in the file's order, with
/// what it lets the TPP see, in words a customer understands.
pub const PERMISSIONS: [(&str, &str); 21] = [
    (
        "ReadAccountsBasic",
        "Your account names, types and currencies",
    ),
    (
        "ReadAccountsDetail",
        "Your account names, types, currencies, numbers and sort codes",
    ),
    ("ReadBalances", "Your account balances"),
    (
        "ReadBeneficiariesBasic",
        "The people and businesses you pay (names only)",
    ),
    (
        "ReadBeneficiariesDetail",
        "The people and businesses you pay, with their account details",
    ),
    ("ReadDirectDebits", "Your direct debits"),
    ("ReadOffers", "Offers the bank has made you"),
    ("ReadPAN", "Your full card numbers"),
    (
        "ReadParty",
        "The account holders' names and contact details",
    ),
    ("ReadPartyPSU", "Your own name and contact details"),
    ("ReadProducts", "The products your accounts are"),
    (
        "ReadScheduledPaymentsBasic",
        "Your scheduled payments (amounts and dates)",
    ),
    (
        "ReadScheduledPaymentsDetail",
        "Your scheduled payments, with the payees' account details",
    ),
    (
        "ReadStandingOrdersBasic",
        "Your standing orders (amounts and dates)",
    ),
    (
        "ReadStandingOrdersDetail",
        "Your standing orders, with the payees' account details",
    ),
    ("ReadStatementsBasic", "Your statements (dates and periods)"),
    (
        "ReadStatementsDetail",
        "Your statements, with their amounts and files",
    ),
    (
        "ReadTransactionsBasic",
        "Your transactions (amounts, dates, status)",
    ),
    ("ReadTransactionsCredits", "Money coming into your accounts"),
    ("ReadTransactionsDebits", "Money going out of your accounts"),
    (
        "ReadTransactionsDetail",
        "Your transactions with their descriptions, merchants and counterparties",
    ),
];

/// The groups a consent screen shows permissions under, in display order: the "data
/// clusters" of the UK Open Banking consent guidelines, so customers see the same headings at
/// every bank.
pub const CLUSTERS: [&str; 7] = [
    "Your account details",
    "Your balances",
    "Your regular payments",
    "Your account transactions",
    "Your statements",
    "Your account features and benefits",
    "Contact and party details",
];

/// The data cluster (an entry of [`CLUSTERS`]) a permission belongs to.
pub fn cluster(code: &str) -> &'static str {
    let i = match code {
        "ReadAccountsBasic" | "ReadAccountsDetail" | "ReadPAN" => 0,
        "ReadBalances" => 1,
        c if c.starts_with("ReadBeneficiaries")
            || c.starts_with("ReadStandingOrders")
            || c.starts_with("ReadScheduledPayments")
            || c == "ReadDirectDebits" =>
        {
            2
        }
        c if c.starts_with("ReadTransactions") => 3,
        c if c.starts_with("ReadStatements") => 4,
        "ReadProducts" | "ReadOffers" => 5,
        _ => 6,
    };
    CLUSTERS[i]
}

/// Whether `code` is a permission this server grants.
pub fn known(code: &str) -> bool {
    PERMISSIONS.iter().any(|(c, _)| *c == code)
}

/// The plain-words description of a permission.
pub fn describe(code: &str) -> &'static str {
    PERMISSIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, d)| *d)
        .unwrap_or("")
}

/// Whether a set of granted permissions includes `code`, counting a Detail permission as its
/// Basic one too (AIS profile: "Detail implies Basic").
pub fn grants(granted: &[&str], code: &str) -> bool {
    granted.iter().any(|g| implies(g, code))
}

/// Whether one granted permission includes `code`: it is `code`, or the Detail permission of
/// `code`'s Basic one. Compared in place, without building the Detail name: the gateway asks
/// this on every request.
pub fn implies(granted: &str, code: &str) -> bool {
    granted == code
        || code
            .strip_suffix("Basic")
            .is_some_and(|stem| granted.strip_suffix("Detail") == Some(stem))
}

/// The AIS profile's rules on a permission list (each code already known); every broken rule
/// is one error.
pub fn check_combination(codes: &[&str]) -> Vec<ObError> {
    const PATH: &str = "Data.Permissions";
    let has = |c: &str| codes.contains(&c);
    let mut errors = Vec::new();
    if !has("ReadAccountsBasic") && !has("ReadAccountsDetail") {
        errors.push(ObError::field(
            "UK.OBIE.Field.Invalid",
            PATH,
            "Permissions must include ReadAccountsBasic or ReadAccountsDetail",
        ));
    }
    let list_kind = has("ReadTransactionsBasic") || has("ReadTransactionsDetail");
    let direction = has("ReadTransactionsCredits") || has("ReadTransactionsDebits");
    if list_kind && !direction {
        errors.push(ObError::field(
            "UK.OBIE.Field.Expected",
            PATH,
            "ReadTransactionsBasic or ReadTransactionsDetail needs ReadTransactionsCredits or ReadTransactionsDebits",
        ));
    }
    if direction && !list_kind {
        errors.push(ObError::field(
            "UK.OBIE.Field.Expected",
            PATH,
            "ReadTransactionsCredits or ReadTransactionsDebits needs ReadTransactionsBasic or ReadTransactionsDetail",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_implies_basic_but_not_the_reverse() {
        assert!(grants(&["ReadAccountsDetail"], "ReadAccountsBasic"));
        assert!(!grants(&["ReadAccountsBasic"], "ReadAccountsDetail"));
        assert!(grants(&["ReadBalances"], "ReadBalances"));
        assert!(!grants(&["ReadBalances"], "ReadAccountsBasic"));
        // Only the same stem's Detail implies a Basic.
        assert!(!grants(&["ReadBeneficiariesDetail"], "ReadAccountsBasic"));
        assert!(!grants(&["ReadAccountsDetailed"], "ReadAccountsBasic"));
        assert!(!grants(&["ReadAccounts"], "ReadAccountsBasic"));
    }

    #[test]
    fn the_profile_rules_on_combinations() {
        let codes = |e: Vec<ObError>| e.into_iter().map(|e| e.code).collect::<Vec<_>>();
        assert!(check_combination(&["ReadAccountsBasic"]).is_empty());
        assert_eq!(
            codes(check_combination(&["ReadBalances"])),
            ["UK.OBIE.Field.Invalid"]
        );
        assert_eq!(
            codes(check_combination(&[
                "ReadAccountsDetail",
                "ReadTransactionsDetail"
            ])),
            ["UK.OBIE.Field.Expected"]
        );
        assert_eq!(
            codes(check_combination(&[
                "ReadAccountsBasic",
                "ReadTransactionsCredits"
            ])),
            ["UK.OBIE.Field.Expected"]
        );
        assert!(check_combination(&[
            "ReadAccountsBasic",
            "ReadTransactionsBasic",
            "ReadTransactionsDebits"
        ])
        .is_empty());
        assert_eq!(PERMISSIONS.len(), 21);
    }

    #[test]
    fn every_permission_sits_in_its_guidelines_cluster() {
        assert_eq!(cluster("ReadAccountsDetail"), "Your account details");
        assert_eq!(cluster("ReadPAN"), "Your account details");
        assert_eq!(cluster("ReadBalances"), "Your balances");
        assert_eq!(cluster("ReadDirectDebits"), "Your regular payments");
        assert_eq!(cluster("ReadStandingOrdersDetail"), "Your regular payments");
        assert_eq!(
            cluster("ReadTransactionsCredits"),
            "Your account transactions"
        );
        assert_eq!(cluster("ReadStatementsBasic"), "Your statements");
        assert_eq!(cluster("ReadOffers"), "Your account features and benefits");
        assert_eq!(cluster("ReadPartyPSU"), "Contact and party details");
        // Every known code lands in a named cluster, and each cluster is used.
        for (code, _) in PERMISSIONS {
            assert!(CLUSTERS.contains(&cluster(code)), "{code}");
        }
        for c in CLUSTERS {
            assert!(
                PERMISSIONS.iter().any(|(code, _)| cluster(code) == c),
                "{c}"
            );
        }
    }
}
