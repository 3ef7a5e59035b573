//! The permission map: every account-information route obgate proxies, the consent permission
//! it needs (from the UK OB v3.1.11 AIS profile in `../shared/specs/`), and how its response
//! is filtered. One table; the router, the authorize layer and the OpenAPI test all read it.

use crate::consent::permissions::grants;

/// What a route needs from the consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any one of these permissions (a Detail permission implies its Basic one).
    Any(&'static [&'static str]),
    /// Transactions: (`ReadTransactionsBasic` or `Detail`) and (`Credits` or `Debits`).
    Transactions,
}

/// How the gateway shapes a route's response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Accounts (`Data.Account`): consented accounts only; `Account` identification needs Detail.
    Accounts,
    /// Balances (`Data.Balance`).
    Balances,
    /// Transactions (`Data.Transaction`): accounts, credit/debit, time window, Detail fields.
    Transactions,
    /// Beneficiaries (`Data.Beneficiary`); `CreditorAccount`/`CreditorAgent` need Detail.
    Beneficiaries,
    /// Direct debits (`Data.DirectDebit`).
    DirectDebits,
    /// Standing orders (`Data.StandingOrder`); creditor details need Detail.
    StandingOrders,
    /// Products (`Data.Product`).
    Products,
    /// Offers (`Data.Offer`).
    Offers,
    /// Parties of an account (`Data.Party`), no account filter needed.
    Party,
    /// Scheduled payments (`Data.ScheduledPayment`); creditor details need Detail.
    ScheduledPayments,
    /// Statements (`Data.Statement`); `StatementAmount` needs Detail.
    Statements,
    /// A statement file: passed through untouched.
    File,
}

/// One proxied route.
#[derive(Debug)]
pub struct RouteSpec {
    /// Path template under `/open-banking/v3.1/aisp`, with `{AccountId}`/`{StatementId}`.
    pub template: &'static str,
    /// The permission it needs.
    pub need: Need,
    /// How its response is shaped.
    pub shape: Shape,
}

const ACCOUNTS: Need = Need::Any(&["ReadAccountsBasic", "ReadAccountsDetail"]);
const BALANCES: Need = Need::Any(&["ReadBalances"]);
const BENEFICIARIES: Need = Need::Any(&["ReadBeneficiariesBasic", "ReadBeneficiariesDetail"]);
const DIRECT_DEBITS: Need = Need::Any(&["ReadDirectDebits"]);
const OFFERS: Need = Need::Any(&["ReadOffers"]);
const PARTY: Need = Need::Any(&["ReadParty"]);
const PARTY_PSU: Need = Need::Any(&["ReadPartyPSU"]);
const PRODUCTS: Need = Need::Any(&["ReadProducts"]);
const SCHEDULED: Need = Need::Any(&["ReadScheduledPaymentsBasic", "ReadScheduledPaymentsDetail"]);
const STANDING: Need = Need::Any(&["ReadStandingOrdersBasic", "ReadStandingOrdersDetail"]);
const STATEMENTS: Need = Need::Any(&["ReadStatementsBasic", "ReadStatementsDetail"]);
const STATEMENT_FILE: Need = Need::Any(&["ReadStatementsDetail"]);

/// The prefix every route lives under.
pub const PREFIX: &str = "/open-banking/v3.1/aisp";

/// Every route, as the AIS profile maps them.
pub const ROUTES: [RouteSpec; 26] = [
    RouteSpec {
        template: "/accounts",
        need: ACCOUNTS,
        shape: Shape::Accounts,
    },
    RouteSpec {
        template: "/accounts/{AccountId}",
        need: ACCOUNTS,
        shape: Shape::Accounts,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/balances",
        need: BALANCES,
        shape: Shape::Balances,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/beneficiaries",
        need: BENEFICIARIES,
        shape: Shape::Beneficiaries,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/direct-debits",
        need: DIRECT_DEBITS,
        shape: Shape::DirectDebits,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/offers",
        need: OFFERS,
        shape: Shape::Offers,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/parties",
        need: PARTY,
        shape: Shape::Party,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/party",
        need: PARTY,
        shape: Shape::Party,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/product",
        need: PRODUCTS,
        shape: Shape::Products,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/scheduled-payments",
        need: SCHEDULED,
        shape: Shape::ScheduledPayments,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/standing-orders",
        need: STANDING,
        shape: Shape::StandingOrders,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/statements",
        need: STATEMENTS,
        shape: Shape::Statements,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/statements/{StatementId}",
        need: STATEMENTS,
        shape: Shape::Statements,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/statements/{StatementId}/file",
        need: STATEMENT_FILE,
        shape: Shape::File,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/statements/{StatementId}/transactions",
        need: Need::Transactions,
        shape: Shape::Transactions,
    },
    RouteSpec {
        template: "/accounts/{AccountId}/transactions",
        need: Need::Transactions,
        shape: Shape::Transactions,
    },
    RouteSpec {
        template: "/balances",
        need: BALANCES,
        shape: Shape::Balances,
    },
    RouteSpec {
        template: "/beneficiaries",
        need: BENEFICIARIES,
        shape: Shape::Beneficiaries,
    },
    RouteSpec {
        template: "/direct-debits",
        need: DIRECT_DEBITS,
        shape: Shape::DirectDebits,
    },
    RouteSpec {
        template: "/offers",
        need: OFFERS,
        shape: Shape::Offers,
    },
    RouteSpec {
        template: "/party",
        need: PARTY_PSU,
        shape: Shape::Party,
    },
    RouteSpec {
        template: "/products",
        need: PRODUCTS,
        shape: Shape::Products,
    },
    RouteSpec {
        template: "/scheduled-payments",
        need: SCHEDULED,
        shape: Shape::ScheduledPayments,
    },
    RouteSpec {
        template: "/standing-orders",
        need: STANDING,
        shape: Shape::StandingOrders,
    },
    RouteSpec {
        template: "/statements",
        need: STATEMENTS,
        shape: Shape::Statements,
    },
    RouteSpec {
        template: "/transactions",
        need: Need::Transactions,
        shape: Shape::Transactions,
    },
];

/// A request path matched to its route, with the path parameters.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The route.
    pub route: &'static RouteSpec,
    /// `{AccountId}`, when the route has one.
    pub account_id: Option<String>,
    /// `{StatementId}`, when the route has one.
    pub statement_id: Option<String>,
}

/// Matches a canonical path (see [`super::path`]) to its route; `None` for routes obgate
/// does not know (a 404).
pub fn lookup(path: &str) -> Option<Matched> {
    let (i, rest) = find(path)?;
    let route = ROUTES.get(i)?;
    let mut m = Matched {
        route,
        account_id: None,
        statement_id: None,
    };
    for (t, s) in route.template.split('/').zip(rest.split('/')) {
        match t {
            "{AccountId}" => m.account_id = Some(s.to_owned()),
            "{StatementId}" => m.statement_id = Some(s.to_owned()),
            _ => {}
        }
    }
    Some(m)
}

/// The full path template (`/open-banking/v3.1/aisp/accounts/{AccountId}`) of the route a
/// path names: the gateway routes as the router registers them, and the `route` label a
/// request on the gateway's direct path is counted under (see `http::dispatch`).
pub fn template(path: &str) -> Option<&'static str> {
    let (i, _) = find(path)?;
    TEMPLATES.get(i).map(String::as_str)
}

/// Each route's full path template, in the order of [`ROUTES`].
pub static TEMPLATES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|r| format!("{PREFIX}{}", r.template))
        .collect()
});

/// The route a path names, by its place in [`ROUTES`], and the path under [`PREFIX`], matched
/// segment by segment without allocating: a parameter matches any one segment, anything else
/// only itself.
fn find(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let i = ROUTES.iter().position(|route| {
        let mut tpl = route.template.split('/');
        let mut segments = rest.split('/');
        loop {
            match (tpl.next(), segments.next()) {
                (None, None) => return true,
                (Some("{AccountId}" | "{StatementId}"), Some(_)) => {}
                (Some(t), Some(s)) if t == s => {}
                _ => return false,
            }
        }
    })?;
    Some((i, rest))
}

/// Whether `granted` permissions satisfy `need`; the missing permission when not.
pub fn permits(granted: &[&str], need: Need) -> Result<(), String> {
    permits_by(|code| grants(granted, code), need)
}

/// [`permits`] asked of a permission test instead of a list: the gateway asks a
/// [`super::Grant`] directly on every request, without collecting its codes first.
/// `has(code)` must answer as [`grants`] does (a Detail permission includes its Basic one).
pub fn permits_by(has: impl Fn(&str) -> bool, need: Need) -> Result<(), String> {
    match need {
        Need::Any(options) => {
            if options.iter().any(|p| has(p)) {
                Ok(())
            } else {
                Err(options.join(" or "))
            }
        }
        Need::Transactions => {
            let list = has("ReadTransactionsBasic");
            let direction = has("ReadTransactionsCredits") || has("ReadTransactionsDebits");
            if list && direction {
                Ok(())
            } else {
                Err("ReadTransactionsBasic or ReadTransactionsDetail, with ReadTransactionsCredits or ReadTransactionsDebits".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_routes_and_capture_ids() {
        let m = lookup("/open-banking/v3.1/aisp/accounts/a1/statements/s9/transactions").unwrap();
        assert_eq!(
            m.route.template,
            "/accounts/{AccountId}/statements/{StatementId}/transactions"
        );
        assert_eq!(m.account_id.as_deref(), Some("a1"));
        assert_eq!(m.statement_id.as_deref(), Some("s9"));
        assert_eq!(
            lookup("/open-banking/v3.1/aisp/accounts")
                .unwrap()
                .account_id,
            None
        );
        assert!(lookup("/open-banking/v3.1/aisp/payments").is_none());
        assert!(lookup("/open-banking/v3.1/aisp/accounts/a1/unknown").is_none());
        assert!(lookup("/open-banking/v3.1/aisp/account-access-consents").is_none());
        // The prefix is a whole segment: `aispX` is not `aisp`.
        assert!(lookup("/open-banking/v3.1/aispX/accounts").is_none());
        assert!(lookup("/open-banking/v3.1/aisp").is_none());
    }

    #[test]
    fn templates_are_the_routes_as_registered() {
        assert_eq!(TEMPLATES.len(), ROUTES.len());
        assert_eq!(
            template("/open-banking/v3.1/aisp/accounts/a1/statements/s9/transactions"),
            Some("/open-banking/v3.1/aisp/accounts/{AccountId}/statements/{StatementId}/transactions")
        );
        assert_eq!(
            template("/open-banking/v3.1/aisp/accounts"),
            Some("/open-banking/v3.1/aisp/accounts")
        );
        assert_eq!(template("/open-banking/v3.1/aispX/accounts"), None);
        assert_eq!(
            template("/open-banking/v3.1/aisp/account-access-consents"),
            None
        );
        for (route, full) in ROUTES.iter().zip(TEMPLATES.iter()) {
            // A template read as a path names its own route.
            assert_eq!(lookup(full).map(|m| m.route.template), Some(route.template));
        }
    }

    #[test]
    fn the_profile_permission_rules() {
        assert!(permits(&["ReadAccountsDetail"], ACCOUNTS).is_ok());
        assert!(permits(&["ReadBalances"], ACCOUNTS).is_err());
        assert!(permits(
            &["ReadTransactionsDetail", "ReadTransactionsDebits"],
            Need::Transactions
        )
        .is_ok());
        assert!(permits(&["ReadTransactionsBasic"], Need::Transactions).is_err());
        assert!(permits(&["ReadTransactionsCredits"], Need::Transactions).is_err());
        assert!(
            permits(&["ReadStatementsBasic"], STATEMENT_FILE).is_err(),
            "files need Detail"
        );
        assert!(
            permits(&["ReadStatementsDetail"], STATEMENTS).is_ok(),
            "Detail implies Basic"
        );
        assert!(permits(&["ReadParty"], PARTY_PSU).is_err());
    }

    mod properties {
        use super::super::{lookup, permits, Need, ROUTES};
        use crate::consent::permissions::{grants, PERMISSIONS};
        use proptest::prelude::*;

        fn any_grant() -> impl Strategy<Value = Vec<&'static str>> {
            proptest::sample::subsequence(
                PERMISSIONS.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
                0..=PERMISSIONS.len(),
            )
        }

        proptest! {
            /// More permissions never allow less: whatever a consent allows, a consent with
            /// those permissions and more allows too, on every route.
            #[test]
            fn more_permissions_never_allow_less(a in any_grant(), b in any_grant()) {
                let mut union = a.clone();
                union.extend(b.iter().copied());
                for r in ROUTES.iter() {
                    if permits(&a, r.need).is_ok() {
                        prop_assert!(permits(&union, r.need).is_ok(), "{}: {a:?} ⊆ {union:?}", r.template);
                    }
                }
            }

            /// Only what the consent lists is granted, plus a Basic permission whose Detail
            /// one it lists: nothing else, ever.
            #[test]
            fn nothing_is_granted_beyond_the_list_and_detail_implies_basic(granted in any_grant()) {
                for (code, _) in PERMISSIONS.iter() {
                    let implied = code
                        .strip_suffix("Basic")
                        .is_some_and(|stem| granted.contains(&format!("{stem}Detail").as_str()));
                    prop_assert_eq!(grants(&granted, code), granted.contains(code) || implied, "{}", code);
                }
            }

            /// Every route is reachable with its permissions and refused without them: the
            /// route's own permissions (and their Detail forms) decide, never anything else
            /// the consent holds. Its template resolves back to itself.
            #[test]
            fn each_route_is_decided_by_its_own_permissions(granted in any_grant(), account in "[a-z0-9-]{1,12}") {
                for r in ROUTES.iter() {
                    let path = format!("/open-banking/v3.1/aisp{}", r.template.replace("{AccountId}", &account).replace("{StatementId}", "st-1"));
                    let m = lookup(&path).expect("every route matches its own template");
                    prop_assert_eq!(m.route.template, r.template);
                    let own: Vec<String> = match r.need {
                        Need::Any(options) => options
                            .iter()
                            .flat_map(|p| [p.to_string(), p.replace("Basic", "Detail")])
                            .collect(),
                        Need::Transactions => ["Basic", "Detail", "Credits", "Debits"]
                            .iter()
                            .map(|k| format!("ReadTransactions{k}"))
                            .collect(),
                    };
                    let without: Vec<&str> = granted.iter().copied().filter(|g| !own.iter().any(|o| o == g)).collect();
                    prop_assert!(permits(&without, r.need).is_err(), "{} allowed by {without:?}", r.template);
                    let mut with = granted.clone();
                    with.extend(own.iter().map(String::as_str));
                    prop_assert!(permits(&with, r.need).is_ok(), "{} refused with {with:?}", r.template);
                }
                prop_assert!(ROUTES.iter().all(|r| permits(&[], r.need).is_err()), "no permission, no route");
            }
        }
    }
}
