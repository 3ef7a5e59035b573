//! Sandbox demo data, created at the first `obgate serve` with no configuration, so a
//! developer can run a whole TPP journey in minutes: a TPP client, a customer whose KYC passes
//! (the sandbox provider checks it right after start) and one who has not started KYC, and a
//! printed walkthrough of curl commands.

use serde_json::json;

use crate::audit::{Actor, ActorType};
use crate::error::ApiError;
use crate::kyc::{customers, verification};
use crate::oauth::clients::ClientMetadata;
use crate::state::AppState;

/// What the demo created, to print once.
#[derive(Debug)]
pub struct Demo {
    /// The TPP client id.
    pub client_id: String,
    /// Its secret (shown once).
    pub client_secret: String,
    /// A customer whose KYC passes.
    pub passed_customer: String,
    /// A customer who has not started KYC (cannot authorise a consent).
    pub unverified_customer: String,
}

fn actor() -> Actor {
    Actor {
        kind: ActorType::System,
        id: "sandbox-demo".into(),
        interaction_id: None,
    }
}

fn person(first: &str, dob: &str, street: &str) -> serde_json::Value {
    json!({
        "first_name": first, "last_name": "Demo", "dob": dob,
        "addresses": [{"address_type": "PHYSICAL", "street": street, "city": "London",
                       "zip_code": "SW1A 1AA", "country": "GB"}]
    })
}

/// Creates the demo TPP and customers and starts the passing customer's KYC.
pub async fn seed(state: &AppState) -> Result<Demo, ApiError> {
    let actor = actor();
    let meta = ClientMetadata {
        client_name: Some("Demo Budgeting App".into()),
        redirect_uris: Some(vec!["http://127.0.0.1:9999/callback".into()]),
        grant_types: Some(vec![
            "client_credentials".into(),
            "authorization_code".into(),
            "refresh_token".into(),
        ]),
        ..ClientMetadata::default()
    };
    let (client, secret) = state.clients().create(meta, &actor).await?;
    let today = customers::today(state);
    let alice =
        customers::parse_profile(&person("Alice", "1988-05-17", "1 Demo Street"), None, today)?;
    let alice = customers::create(state, alice, None, &actor).await?;
    let bob = customers::parse_profile(&person("Bob", "1990-09-02", "2 Demo Street"), None, today)?;
    let bob = customers::create(state, bob, None, &actor).await?;
    let kyc = json!({
        "program_id": "sandbox-demo", "ssn": "123-45-6789", "phone": "7700900123",
        "phone_country_code": "44", "email": "alice@example.com", "ip": "203.0.113.10"
    });
    verification::start(state, &alice.row.customer_id, &kyc, None, &actor).await?;
    Ok(Demo {
        client_id: client.client_id,
        client_secret: secret.unwrap_or_default(),
        passed_customer: alice.row.customer_id,
        unverified_customer: bob.row.customer_id,
    })
}

/// The walkthrough printed at the first start.
pub fn walkthrough(demo: &Demo, admin_key: &str, base: &str) -> String {
    let (c, s, alice, bob) = (
        &demo.client_id,
        &demo.client_secret,
        &demo.passed_customer,
        &demo.unverified_customer,
    );
    format!(
        r#"
  obgate sandbox demo (created once; kept in the database)
    admin key:   {admin_key}
    TPP client:  {c} / {s}
    customers:   {alice} (Alice, KYC passed)   {bob} (Bob, KYC not started: cannot authorise)

  A TPP journey (needs curl and jq):
    B={base}; ADMIN={admin_key}
    TOKEN=$(curl -s -u {c}:{s} -d grant_type=client_credentials -d scope=accounts $B/oauth2/token | jq -r .access_token)
    CONSENT=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
      -d '{{"Data":{{"Permissions":["ReadAccountsDetail","ReadBalances"]}},"Risk":{{}}}}' \
      $B/open-banking/v3.1/aisp/account-access-consents | jq -r .Data.ConsentId)
    ACCOUNTS=$(curl -s -H "Authorization: Bearer $ADMIN" $B/api/v0/customers/{alice}/accounts | jq -c '[.data[].account_id]')
    curl -s -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
      -d "{{\"customer_id\":\"{alice}\",\"account_ids\":$ACCOUNTS}}" $B/api/v0/consents/$CONSENT/authorise
    BOUND=$(curl -s -u {c}:{s} -d grant_type=client_credentials \
      --data-urlencode "authorization_details=[{{\"type\":\"openbanking_account_access\",\"consent_id\":\"$CONSENT\"}}]" \
      $B/oauth2/token | jq -r .access_token)
    curl -s -H "Authorization: Bearer $BOUND" $B/open-banking/v3.1/aisp/accounts

  The customer's side, in a browser: open $B/login, continue as Alice, and see her connected
  apps (the consent above included); Stop access ends the TPP's access at once. A TPP sending
  her to $B/oauth2/authorize lands on the hosted consent screen ($B/consent).
"#
    )
}
