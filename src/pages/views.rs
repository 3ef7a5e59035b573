//! What each page template shows. Field names are the templates' variables
//! (`templates/pages/*.html`); everything is escaped by askama.

use askama::Template;

use crate::state::AppState;

/// The bank's branding, from `pages.*`.
pub struct Brand {
    /// Shown in the header and titles.
    pub bank_name: String,
    /// The logo, when configured.
    pub logo_url: Option<String>,
}

impl Brand {
    /// Branding from the configuration.
    pub fn of(state: &AppState) -> Self {
        Self {
            bank_name: state.config.pages.bank_name.clone(),
            logo_url: state.config.pages.logo_url.as_ref().map(|u| u.to_string()),
        }
    }
}

/// The header's signed-in part: the dashboard link and the sign-out form.
pub struct Nav {
    /// The session's CSRF token, for the sign-out form.
    pub csrf: String,
}

/// A message page.
#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct Message<'a> {
    pub brand: &'a Brand,
    pub session: Option<Nav>,
    pub title: &'a str,
    pub message: &'a str,
    pub next_step: Option<&'a str>,
}

/// One demo customer on the sandbox sign-in page.
pub struct DemoCustomer {
    pub customer_id: String,
    pub name: String,
    pub kyc_status: String,
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "pages/signin.html")]
pub struct SignIn<'a> {
    pub brand: &'a Brand,
    pub session: Option<Nav>,
    pub sandbox: bool,
    pub customers: Vec<DemoCustomer>,
    pub csrf: String,
    pub return_to: String,
    pub login_url: Option<String>,
    pub error: Option<String>,
}

/// A group of requested permissions under one heading (the OB consent guidelines' data
/// clusters).
pub struct PermissionGroup {
    pub title: &'static str,
    pub items: Vec<&'static str>,
}

/// An account the customer can choose.
pub struct AccountChoice {
    pub id: String,
    pub label: String,
    pub detail: String,
    pub checked: bool,
}

/// Why the customer cannot approve (KYC not passed).
pub struct KycProblem {
    pub title: &'static str,
    pub detail: &'static str,
    pub what_to_do: &'static str,
}

/// The consent screen.
#[derive(Template)]
#[template(path = "pages/consent.html")]
pub struct ConsentScreen<'a> {
    pub brand: &'a Brand,
    pub session: Option<Nav>,
    pub tpp_name: String,
    pub challenge: String,
    pub csrf: String,
    pub groups: Vec<PermissionGroup>,
    pub access_ends: String,
    pub history: String,
    pub accounts: Vec<AccountChoice>,
    pub can_approve: bool,
    pub kyc_problem: Option<KycProblem>,
    pub error: Option<String>,
}

/// One consent on the dashboard.
pub struct ConsentCard {
    pub consent_id: String,
    pub tpp_name: String,
    pub permissions: String,
    pub accounts: String,
    pub granted: String,
    pub expires: String,
    pub status: String,
}

/// The access dashboard.
#[derive(Template)]
#[template(path = "pages/dashboard.html")]
pub struct Dashboard<'a> {
    pub brand: &'a Brand,
    pub session: Option<Nav>,
    pub active: Vec<ConsentCard>,
    pub ended: Vec<ConsentCard>,
    pub notice: Option<String>,
}

/// The revocation confirm step.
#[derive(Template)]
#[template(path = "pages/revoke.html")]
pub struct RevokeConfirm<'a> {
    pub brand: &'a Brand,
    pub session: Option<Nav>,
    pub card: ConsentCard,
    pub csrf: String,
}
