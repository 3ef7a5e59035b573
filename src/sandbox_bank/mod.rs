//! The built-in sandbox bank: a fake upstream account API for sandbox mode.
//!
//! In production obgate proxies to the bank's real account API; in sandbox mode there is no
//! bank, so it proxies here. This module answers the UK Open Banking v3.1.11
//! account-information GET endpoints (under [`PATH_PREFIX`]) with bodies that validate against
//! the official OpenAPI file, so the gateway's consent checks, permission filtering and link
//! rewriting meet realistic upstream traffic.
//!
//! # Data
//!
//! Nothing is stored: answers are regenerated from the customer id (PRNG seeded with SHA-256),
//! so a customer always has the same 2 to 4 GBP accounts (a current account first, then
//! savings, credit cards or more current accounts), payees, party and statements. Bookings
//! cover the 365 days before today (from the injected [`Clock`]); a given day's bookings never
//! change. Every field the profile reserves for Detail permissions is filled, for the gateway
//! to strip under Basic consents.
//!
//! # Headers
//!
//! - [`CUSTOMER_HEADER`] (required): whose data to serve; 400 `UK.OBIE.Header.Missing` without.
//! - [`BASE_HEADER`]: prefix of `Links.Self` (default [`DEFAULT_BASE`]), followed by the
//!   request's path and query.
//! - [`EXTRA_ACCOUNT_HEADER`], for leak tests: bulk endpoints (`/accounts`, `/balances`,
//!   `/transactions`, … all but `/party`) also return this account id, owned by a stranger,
//!   with its data. Per-account paths never serve it.
//! - `x-fapi-interaction-id`: echoed, or a fresh UUID (the official file requires it back).
//!
//! # Errors and filters
//!
//! An `AccountId` or `StatementId` that is not the customer's answers 404 with no body, except
//! on `/accounts/{AccountId}`, `…/balances` and `…/transactions`, where the official file lists
//! no 404: those answer 400 `UK.OBIE.Resource.NotFound`. `fromBookingDateTime` and
//! `toBookingDateTime` bound transactions (inclusive): `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`,
//! then any fraction and offset, which is ignored as the profile requires. An unreadable one
//! answers 400 `UK.OBIE.Field.InvalidDate`.

mod data;
mod ledger;
mod render;

use std::future::ready;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::clock::Clock;
use data::{Account, Holder};
use ledger::Window;

/// Header naming the customer on every upstream call.
pub const CUSTOMER_HEADER: &str = "x-obgate-customer-id";
/// Set to an account id that is *not* the customer's, bulk endpoints leak that account on
/// purpose, so a test can prove the gateway filters by consent.
pub const EXTRA_ACCOUNT_HEADER: &str = "x-sandbox-extra-account";
/// Where the sandbox bank is reached, so `Links` look like the upstream's own and the gateway's
/// link rewriting has something real to rewrite.
pub const BASE_HEADER: &str = "x-sandbox-base";
/// `Links` prefix without [`BASE_HEADER`]: a reserved `.invalid` host that never resolves.
pub const DEFAULT_BASE: &str = "http://sandbox-bank.invalid";
/// The official file's server url, under which all the sandbox bank's paths live.
pub const PATH_PREFIX: &str = "/open-banking/v3.1/aisp";
const INTERACTION_HEADER: &str = "x-fapi-interaction-id";

/// What a path returns, whichever accounts it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Accounts,
    Balances,
    Beneficiaries,
    DirectDebits,
    Offers,
    Parties,
    Party,
    Products,
    ScheduledPayments,
    StandingOrders,
    Statements,
    Transactions,
}

/// The reads under `/accounts/{AccountId}/statements/{StatementId}`.
#[derive(Clone, Copy, Debug)]
enum Part {
    Detail,
    File,
    Transactions,
}

const BULK: [(&str, Resource); 11] = [
    ("/accounts", Resource::Accounts),
    ("/balances", Resource::Balances),
    ("/beneficiaries", Resource::Beneficiaries),
    ("/direct-debits", Resource::DirectDebits),
    ("/offers", Resource::Offers),
    ("/party", Resource::Party),
    ("/products", Resource::Products),
    ("/scheduled-payments", Resource::ScheduledPayments),
    ("/standing-orders", Resource::StandingOrders),
    ("/statements", Resource::Statements),
    ("/transactions", Resource::Transactions),
];

/// Paths under `/accounts/{AccountId}`.
const PER_ACCOUNT: [(&str, Resource); 12] = [
    ("", Resource::Accounts),
    ("/balances", Resource::Balances),
    ("/beneficiaries", Resource::Beneficiaries),
    ("/direct-debits", Resource::DirectDebits),
    ("/offers", Resource::Offers),
    ("/parties", Resource::Parties),
    ("/party", Resource::Party),
    ("/product", Resource::Products),
    ("/scheduled-payments", Resource::ScheduledPayments),
    ("/standing-orders", Resource::StandingOrders),
    ("/statements", Resource::Statements),
    ("/transactions", Resource::Transactions),
];

const STATEMENT_PARTS: [(&str, Part); 3] = [
    ("", Part::Detail),
    ("/file", Part::File),
    ("/transactions", Part::Transactions),
];

/// The sandbox bank's routes, to be nested by obgate (paths below are relative to the router
/// root). The clock decides "today", so a manual clock gives tests fixed histories.
pub fn router(clock: Arc<dyn Clock>) -> Router {
    let mut router = Router::new();
    for (path, res) in BULK {
        let c = clock.clone();
        let handler = move |headers: HeaderMap, uri: Uri| {
            ready(serve(c.as_ref(), &headers, &uri, |call| call.bulk(res)))
        };
        router = router.route(&format!("{PATH_PREFIX}{path}"), get(handler));
    }
    let account = format!("{PATH_PREFIX}/accounts/{{AccountId}}");
    for (path, res) in PER_ACCOUNT {
        let c = clock.clone();
        let handler = move |Path(id): Path<String>, headers: HeaderMap, uri: Uri| {
            ready(serve(c.as_ref(), &headers, &uri, |call| call.one(res, &id)))
        };
        router = router.route(&format!("{account}{path}"), get(handler));
    }
    for (path, part) in STATEMENT_PARTS {
        let c = clock.clone();
        let handler = move |Path(ids): Path<(String, String)>, headers: HeaderMap, uri: Uri| {
            ready(serve(c.as_ref(), &headers, &uri, |call| {
                call.statement(part, &ids)
            }))
        };
        router = router.route(
            &format!("{account}/statements/{{StatementId}}{path}"),
            get(handler),
        );
    }
    router
}

/// The account ids the sandbox bank holds for a customer (2 to 4, deterministic), for obgate
/// to offer when the customer picks the accounts a consent covers.
pub fn account_ids(customer_id: &str) -> Vec<String> {
    let holder = Holder::customer(customer_id);
    holder.accounts.into_iter().map(|a| a.id).collect()
}

/// One request past the customer check.
struct Call {
    customer: Holder,
    /// The stranger behind [`EXTRA_ACCOUNT_HEADER`], unless that account is the customer's.
    extra: Option<Holder>,
    today: Date,
    link: String,
    query: String,
    interaction: Option<HeaderValue>,
}

/// Checks the customer header and hands the request, as a [`Call`], to `handle`.
fn serve(
    clock: &dyn Clock,
    headers: &HeaderMap,
    uri: &Uri,
    handle: impl FnOnce(&Call) -> Response,
) -> Response {
    let interaction = headers.get(INTERACTION_HEADER).cloned();
    let interaction =
        interaction.or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).ok());
    let Some(customer_id) = header(headers, CUSTOMER_HEADER) else {
        let message = format!("The {CUSTOMER_HEADER} header is required");
        let missing = "UK.OBIE.Header.Missing";
        return bad_request(interaction.as_ref(), missing, &message, CUSTOMER_HEADER);
    };
    let customer = Holder::customer(customer_id);
    let extra = header(headers, EXTRA_ACCOUNT_HEADER)
        .filter(|id| customer.account(id).is_none())
        .map(Holder::stranger);
    let base = header(headers, BASE_HEADER).unwrap_or(DEFAULT_BASE);
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let link = format!("{}{target}", base.trim_end_matches('/'));
    let query = uri.query().unwrap_or_default().to_owned();
    handle(&Call {
        customer,
        extra,
        today: today(clock),
        link,
        query,
        interaction,
    })
}

impl Call {
    fn bulk(&self, res: Resource) -> Response {
        let mut selected: Vec<(&Holder, &Account)> = self
            .customer
            .accounts
            .iter()
            .map(|a| (&self.customer, a))
            .collect();
        // The party is the customer's own: there is no account of anyone else's to leak.
        if let Some(extra) = self.extra.as_ref().filter(|_| res != Resource::Party) {
            selected.extend(extra.accounts.iter().map(|a| (extra, a)));
        }
        self.answer(self.collect(res, &selected, true))
    }

    fn one(&self, res: Resource, id: &str) -> Response {
        let no_404 = [
            Resource::Accounts,
            Resource::Balances,
            Resource::Transactions,
        ];
        match self.customer.account(id) {
            Some(a) => self.answer(self.collect(res, &[(&self.customer, a)], false)),
            // The official file lists no 404 for these three; 400 keeps them valid.
            None if no_404.contains(&res) => {
                let message = "The customer has no account with this AccountId";
                bad_request(
                    self.interaction.as_ref(),
                    "UK.OBIE.Resource.NotFound",
                    message,
                    "AccountId",
                )
            }
            None => self.not_found(),
        }
    }

    fn statement(&self, part: Part, (id, sid): &(String, String)) -> Response {
        let Some(account) = self.customer.account(id) else {
            return self.not_found();
        };
        let txs = ledger::history(&self.customer, account, self.today);
        let statements = ledger::statements(account, &txs, self.today);
        let Some(st) = statements.iter().find(|s| s.id == *sid) else {
            return self.not_found();
        };
        match part {
            Part::Detail => self.answer(Ok(json!({"Statement": [render::statement(st)]}))),
            // The official `File` schema is an empty object: there is no PDF to serve.
            Part::File => {
                with_interaction(Json(json!({})).into_response(), self.interaction.as_ref())
            }
            Part::Transactions => {
                let items = txs.iter().filter(|t| st.covers(t)).map(render::transaction);
                self.answer(Ok(json!({"Transaction": items.collect::<Vec<_>>()})))
            }
        }
    }

    /// Wraps `Data` in the envelope every OB read shares; `Err` names an unreadable date
    /// parameter, which answers 400.
    fn answer(&self, data: Result<Value, String>) -> Response {
        match data {
            Ok(data) => {
                let links = json!({"Self": self.link});
                let body = json!({"Data": data, "Links": links, "Meta": {"TotalPages": 1}});
                with_interaction(Json(body).into_response(), self.interaction.as_ref())
            }
            Err(param) => {
                let message = format!("{param} must be an ISO 8601 date-time");
                let code = "UK.OBIE.Field.InvalidDate";
                bad_request(self.interaction.as_ref(), code, &message, &param)
            }
        }
    }

    fn not_found(&self) -> Response {
        with_interaction(
            StatusCode::NOT_FOUND.into_response(),
            self.interaction.as_ref(),
        )
    }

    /// `Data` for a resource over (holder, account) pairs. `bulk` tells the bulk `/party` (the
    /// customer, no account role) from an account's `/party`.
    fn collect(
        &self,
        res: Resource,
        selected: &[(&Holder, &Account)],
        bulk: bool,
    ) -> Result<Value, String> {
        let today = self.today;
        let history = |h: &Holder, a: &Account| ledger::history(h, a, today);
        Ok(match res {
            Resource::Accounts => {
                json!({"Account": each(selected, |h, a| vec![render::account(h, a)])})
            }
            Resource::Balances => json!({"Balance": each(selected, |h, a| {
                render::balances(a, ledger::closing_balance(h, a, today), today)
            })}),
            Resource::Beneficiaries => json!({"Beneficiary": each(selected, |_, a| {
                data::beneficiaries(a).iter().map(|p| render::beneficiary(a, p)).collect()
            })}),
            Resource::DirectDebits => json!({"DirectDebit": each(selected, |_, a| {
                data::direct_debits(a).iter().map(|p| render::direct_debit(a, p, today)).collect()
            })}),
            Resource::Offers => json!({"Offer": []}),
            Resource::Parties => {
                json!({"Party": each(selected, |h, _| vec![render::party(h, true)])})
            }
            Resource::Party => {
                json!({"Party": selected.first().map(|(h, _)| render::party(h, !bulk))})
            }
            Resource::Products => {
                json!({"Product": each(selected, |_, a| vec![render::product(a)])})
            }
            Resource::ScheduledPayments => json!({"ScheduledPayment": each(selected, |_, a| {
                let payments = data::scheduled_payments(a);
                payments.iter().map(|p| render::scheduled_payment(a, p, today)).collect()
            })}),
            Resource::StandingOrders => json!({"StandingOrder": each(selected, |_, a| {
                data::beneficiaries(a).iter().map(|p| render::standing_order(a, p, today)).collect()
            })}),
            Resource::Statements => json!({"Statement": each(selected, |h, a| {
                let statements = ledger::statements(a, &history(h, a), today);
                statements.iter().map(render::statement).collect()
            })}),
            Resource::Transactions => {
                let window = self.booking_window()?;
                json!({"Transaction": each(selected, |h, a| {
                    let txs = history(h, a);
                    let kept = txs.iter().filter(|t| ledger::within(t, window));
                    kept.map(render::transaction).collect()
                })})
            }
        })
    }

    /// The `fromBookingDateTime` / `toBookingDateTime` window, or the name of an unreadable one.
    fn booking_window(&self) -> Result<Window, String> {
        let mut window: Window = (None, None);
        for (key, value) in form_urlencoded::parse(self.query.as_bytes()) {
            let slot = match &*key {
                "fromBookingDateTime" => &mut window.0,
                "toBookingDateTime" => &mut window.1,
                _ => continue,
            };
            *slot = Some(parse_booking_time(&value).ok_or_else(|| key.to_string())?);
        }
        Ok(window)
    }
}

/// Concatenates per-account items, in account order.
fn each<F>(selected: &[(&Holder, &Account)], f: F) -> Vec<Value>
where
    F: Fn(&Holder, &Account) -> Vec<Value>,
{
    selected.iter().flat_map(|&(h, a)| f(h, a)).collect()
}

/// A non-empty header value as text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then_some(value)
}

fn with_interaction(mut resp: Response, interaction: Option<&HeaderValue>) -> Response {
    if let Some(id) = interaction {
        resp.headers_mut().insert(INTERACTION_HEADER, id.clone());
    }
    resp
}

/// A 400 `OBErrorResponse1` with one error.
fn bad_request(
    interaction: Option<&HeaderValue>,
    code: &str,
    message: &str,
    path: &str,
) -> Response {
    let body = json!({
        "Code": "400 Bad Request", "Id": uuid::Uuid::new_v4().to_string(), "Message": message,
        "Errors": [{"ErrorCode": code, "Message": message, "Path": path}],
    });
    with_interaction(
        (StatusCode::BAD_REQUEST, Json(body)).into_response(),
        interaction,
    )
}

/// The UTC date of the clock's now.
fn today(clock: &dyn Clock) -> Date {
    let nanos = i128::from(clock.now().millis()) * 1_000_000;
    let now = OffsetDateTime::from_unix_timestamp_nanos(nanos);
    now.unwrap_or(OffsetDateTime::UNIX_EPOCH).date()
}

/// `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM:SS`, then any fraction and zone (`Z`,
/// `±HH:MM`, or a space where an unencoded `+` was form-decoded). The zone is dropped, not
/// applied: the profile tells the bank to ignore it.
fn parse_booking_time(raw: &str) -> Option<PrimitiveDateTime> {
    let s = raw.trim().to_ascii_uppercase();
    if s.len() == 10 {
        let date = Date::parse(&s, format_description!("[year]-[month]-[day]"));
        return date.ok().map(Date::midnight);
    }
    let (head, zone) = (s.get(..19)?, s.get(19..)?);
    if !zone
        .chars()
        .all(|c| c.is_ascii_digit() || ".:+- Z".contains(c))
    {
        return None;
    }
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(head, format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Timestamp};
    use axum::body::Body;
    use axum::http::Request;
    use time::Month;
    use tower::ServiceExt;

    /// The date of `NOW_MS`, 2026-11-18T11:06:40.123Z.
    fn today() -> Date {
        Date::from_calendar_date(2026, Month::November, 18).unwrap()
    }
    const NOW_MS: i64 = 1_795_000_000_123;

    fn all_bookings(h: &Holder, today: Date) -> Vec<ledger::Tx> {
        h.accounts
            .iter()
            .flat_map(|a| ledger::history(h, a, today))
            .collect()
    }

    #[test]
    fn the_same_customer_always_gets_the_same_accounts_and_books() {
        let (a, b) = (Holder::customer("cust-1"), Holder::customer("cust-1"));
        assert_eq!(a.accounts, b.accounts);
        assert_eq!(account_ids("cust-1"), account_ids("cust-1"));
        let json = |h: &Holder| -> Vec<Value> {
            all_bookings(h, today())
                .iter()
                .map(render::transaction)
                .collect()
        };
        assert_eq!(json(&a), json(&b));
    }

    #[test]
    fn different_customers_get_different_accounts() {
        let (a, b) = (Holder::customer("cust-1"), Holder::customer("cust-2"));
        assert!(a.accounts.iter().all(|x| b.account(&x.id).is_none()));
        assert_ne!(a.accounts[0].identification, b.accounts[0].identification);
    }

    #[test]
    fn every_customer_has_two_to_four_accounts_led_by_a_current_account() {
        let mut counts = std::collections::BTreeSet::new();
        for i in 0..200 {
            let h = Holder::customer(&format!("customer-{i}"));
            assert!((2..=4).contains(&h.accounts.len()), "{}", h.accounts.len());
            assert_eq!(h.accounts[0].kind, data::Kind::Current);
            counts.insert(h.accounts.len());
        }
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn a_year_of_mostly_debits_in_which_past_days_never_change() {
        let h = Holder::customer("cust-1");
        let all = all_bookings(&h, today());
        assert!((200..=1_500).contains(&all.len()), "{}", all.len());
        assert!(all.iter().filter(|t| t.pence < 0).count() * 2 > all.len());
        let first = today().to_julian_day() - ledger::HISTORY_DAYS;
        let window = Date::from_julian_day(first).unwrap()..today();
        assert!(all.iter().all(|t| window.contains(&t.at.date())));
        let june = |txs: Vec<ledger::Tx>| -> Vec<(String, i64)> {
            let june = txs.into_iter().filter(|t| t.at.month() == Month::June);
            june.map(|t| (t.id, t.pence)).collect()
        };
        let a_week_later = Date::from_calendar_date(2026, Month::November, 25).unwrap();
        assert_eq!(june(all), june(all_bookings(&h, a_week_later)));
    }

    #[test]
    fn booking_times_parse_with_or_without_an_offset_which_is_ignored() {
        let june_5 = Date::from_calendar_date(2026, Month::June, 5).unwrap();
        let expected = june_5.with_hms(10, 15, 0).unwrap();
        for s in [
            "2026-06-05T10:15:00",
            "2026-06-05t10:15:00z",
            "2026-06-05T10:15:00+02:00",
        ] {
            assert_eq!(parse_booking_time(s), Some(expected), "{s}");
        }
        for s in ["2026-06-05T10:15:00 02:00", "2026-06-05T10:15:00.123-05:00"] {
            assert_eq!(parse_booking_time(s), Some(expected), "{s}");
        }
        assert_eq!(parse_booking_time("2026-06-05"), Some(june_5.midnight()));
        for s in [
            "",
            "soon",
            "2026-13-01",
            "2026-06-05T25:00:00",
            "2026-06-05T10:15:00abc",
        ] {
            assert_eq!(parse_booking_time(s), None, "{s}");
        }
    }

    #[test]
    fn the_window_keeps_exactly_the_bookings_inside_it() {
        let h = Holder::customer("cust-1");
        let all = ledger::history(&h, &h.accounts[0], today());
        let from = parse_booking_time("2026-06-01T00:00:00+05:00");
        let window = (from, parse_booking_time("2026-06-30T23:59:59Z"));
        let kept: Vec<_> = all.iter().filter(|t| ledger::within(t, window)).collect();
        let june = all.iter().filter(|t| t.at.month() == Month::June).count();
        assert!(june > 0 && kept.len() == june, "{} of {june}", kept.len());
        assert!(kept.iter().all(|t| t.at.month() == Month::June));
        assert_eq!(
            all.iter()
                .filter(|t| ledger::within(t, (None, None)))
                .count(),
            all.len()
        );
    }

    async fn fetch(uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_millis(NOW_MS)));
        let mut request = Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router(clock)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn the_router_checks_the_customer_ownership_and_window() {
        let (status, headers, body) = fetch(&format!("{PATH_PREFIX}/accounts"), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(headers.contains_key(INTERACTION_HEADER));
        assert_eq!(body["Errors"][0]["ErrorCode"], "UK.OBIE.Header.Missing");

        let me = [(CUSTOMER_HEADER, "cust-1")];
        let ids = account_ids("cust-1");
        let path = format!(
            "{PATH_PREFIX}/accounts/{}/transactions?toBookingDateTime=2026-06-30",
            ids[0]
        );
        let (status, _, body) = fetch(&path, &me).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["Links"]["Self"], format!("{DEFAULT_BASE}{path}"));
        let txs = body["Data"]["Transaction"].as_array().unwrap();
        assert!(txs
            .iter()
            .all(|t| t["BookingDateTime"].as_str().unwrap() < "2026-06-30"));

        let other = format!("{PATH_PREFIX}/accounts/acc-other");
        let (status, _, body) = fetch(&other, &me).await;
        assert_eq!(body["Errors"][0]["ErrorCode"], "UK.OBIE.Resource.NotFound");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, body) = fetch(&format!("{other}/product"), &me).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, Value::Null));
        let statement = format!("{PATH_PREFIX}/accounts/{}/statements/nope/file", ids[0]);
        assert_eq!(fetch(&statement, &me).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_extra_account_leaks_into_bulk_answers_only() {
        let headers = [
            (CUSTOMER_HEADER, "cust-1"),
            (EXTRA_ACCOUNT_HEADER, "acc-stranger"),
            (BASE_HEADER, "https://bank.example/up/"),
        ];
        let path = format!("{PATH_PREFIX}/balances");
        let (_, _, body) = fetch(&path, &headers).await;
        let balances = body["Data"]["Balance"].as_array().unwrap();
        assert_eq!(balances.len(), 2 * (account_ids("cust-1").len() + 1));
        assert!(balances.iter().any(|b| b["AccountId"] == "acc-stranger"));
        assert_eq!(
            body["Links"]["Self"],
            format!("https://bank.example/up{path}")
        );
        let one = format!("{PATH_PREFIX}/accounts/acc-stranger/balances");
        assert_eq!(fetch(&one, &headers).await.0, StatusCode::BAD_REQUEST);
    }
}
