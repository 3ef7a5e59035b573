//! Adapter for a real identity-verification provider's REST API.
//!
//! All request and response mapping lives in this module. The provider's verification is
//! identified by obgate's reference, so creating it is an idempotent `PUT` and a retry after a
//! lost answer never starts a second check:
//!
//! | call | request | answer |
//! |---|---|---|
//! | submit | `PUT /v1/verifications/{reference}` with the applicant | a verification |
//! | poll | `GET /v1/verifications/{reference}` | a verification |
//! | KBA questions | `GET /v1/verifications/{reference}/kba?round=N` | `{"questions": [{"id", "text", "choices": [{"id", "text"}]}]}` |
//! | KBA answers | `POST /v1/verifications/{reference}/kba` `{"answers": [{"question_id", "choice_id"}]}` | `{"correct": bool}` |
//! | documents | `POST /v1/verifications/{reference}/documents` `{"documents": [{"kind", "content_type"}]}` | a verification |
//!
//! A verification is `{"status": "approved" | "declined" | "pending" | "kba_required" |
//! "documents_required" | "review", "checks": {"ofac": …, "bureau": …}, "documents": [kinds]}`.
//!
//! Every call has `kyc.provider_timeout`; 5xx answers, timeouts and connection failures are
//! retried `kyc.provider_retries` times with exponential backoff (200 ms, 400 ms, …). What
//! still fails ends as `timeout` or `error`, never as `passed`; a 4xx is not retried.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::{
    Applicant, Decision, IdentityProvider, KbaChoice, KbaQuestion, Outcome, ProviderError, Reasons,
    DOCUMENT_KINDS,
};
use crate::config::Secret;

/// The HTTP provider.
#[derive(Debug)]
pub struct HttpProvider {
    base: Url,
    api_key: Option<Secret>,
    retries: u32,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Verification {
    status: String,
    #[serde(default)]
    checks: BTreeMap<String, String>,
    #[serde(default)]
    documents: Vec<String>,
}

#[derive(Deserialize)]
struct RemoteChoice {
    id: String,
    text: String,
}

#[derive(Deserialize)]
struct RemoteQuestion {
    id: String,
    text: String,
    choices: Vec<RemoteChoice>,
}

#[derive(Deserialize)]
struct Questions {
    questions: Vec<RemoteQuestion>,
}

#[derive(Deserialize)]
struct KbaResult {
    correct: bool,
}

impl HttpProvider {
    /// An adapter for the API at `base`.
    pub fn new(base: Url, api_key: Option<Secret>, timeout: Duration, retries: u32) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            base,
            api_key,
            retries,
            client,
        }
    }

    fn url(&self, path: &str) -> Result<Url, ProviderError> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}"))
            .map_err(|_| ProviderError::Failed("cannot build the provider URL".into()))
    }

    /// One call with retries on 5xx, timeouts and connection failures.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ProviderError> {
        let url = self.url(path)?;
        let mut attempt = 0;
        loop {
            let mut req = self.client.request(method.clone(), url.clone());
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key.expose());
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let err = match req.send().await {
                Ok(res) if res.status().is_success() => {
                    return res.json::<T>().await.map_err(|_| {
                        ProviderError::Failed("the provider's answer did not parse".into())
                    });
                }
                Ok(res) if res.status().is_server_error() => {
                    ProviderError::Failed(format!("the provider answered {}", res.status()))
                }
                Ok(res) => {
                    return Err(ProviderError::Failed(format!(
                        "the provider refused the request ({})",
                        res.status()
                    )))
                }
                Err(e) if e.is_timeout() => ProviderError::Timeout,
                Err(e) if e.is_connect() => {
                    ProviderError::Failed("cannot connect to the provider".into())
                }
                Err(_) => ProviderError::Failed("transport error".into()),
            };
            if attempt >= self.retries {
                return Err(err);
            }
            tracing::warn!(attempt = attempt + 1, error = %err, "identity provider call failed; retrying");
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(6))).await;
            attempt += 1;
        }
    }
}

fn outcome(v: Verification, reference: &str) -> Result<Outcome, ProviderError> {
    let reasons: Reasons = v.checks;
    let decision = match v.status.as_str() {
        "approved" => Decision::Passed,
        "declined" => Decision::Failed,
        "pending" => Decision::Pending(reference.to_owned()),
        "kba_required" => Decision::Kba,
        "review" => Decision::ManualReview,
        "documents_required" => {
            let kinds: Vec<String> = v
                .documents
                .into_iter()
                .filter(|d| DOCUMENT_KINDS.contains(&d.as_str()))
                .collect();
            if kinds.is_empty() {
                return Err(ProviderError::Failed(
                    "the provider asked for documents without naming known kinds".into(),
                ));
            }
            Decision::Documents(kinds)
        }
        other => {
            return Err(ProviderError::Failed(format!(
                "the provider answered an unknown status {other:?}"
            )))
        }
    };
    Ok(Outcome { decision, reasons })
}

#[async_trait]
impl IdentityProvider for HttpProvider {
    async fn verify(&self, reference: &str, a: &Applicant) -> Result<Outcome, ProviderError> {
        let address = a.address.as_ref().map(|ad| {
            json!({
                "street": ad.street, "street2": ad.street2, "city": ad.city,
                "state": ad.state, "postal_code": ad.zip_code, "country": ad.country,
            })
        });
        let body = json!({
            "reference": reference,
            "applicant": {
                "first_name": a.first_name, "middle_name": a.middle_name,
                "last_name": a.last_name, "date_of_birth": a.dob, "address": address,
                "national_id": a.ssn, "phone": format!("+{}{}", a.phone_country_code, a.phone),
                "email": a.email, "ip_address": a.ip,
            }
        });
        let v = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/verifications/{reference}"),
                Some(body),
            )
            .await?;
        outcome(v, reference)
    }

    async fn poll(&self, provider_ref: &str) -> Result<Outcome, ProviderError> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/verifications/{provider_ref}"),
                None,
            )
            .await?;
        outcome(v, provider_ref)
    }

    async fn kba_questions(
        &self,
        reference: &str,
        _a: &Applicant,
        round: u32,
    ) -> Result<Vec<KbaQuestion>, ProviderError> {
        let q: Questions = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/verifications/{reference}/kba?round={round}"),
                None,
            )
            .await?;
        Ok(q.questions
            .into_iter()
            .take(4)
            .map(|q| KbaQuestion {
                question_id: q.id,
                question: q.text,
                choices: q
                    .choices
                    .into_iter()
                    .map(|c| KbaChoice {
                        choice_id: c.id,
                        choice: c.text,
                    })
                    .collect(),
                answer: None,
            })
            .collect())
    }

    async fn check_kba(
        &self,
        reference: &str,
        _questions: &[KbaQuestion],
        answers: &BTreeMap<String, String>,
    ) -> Result<bool, ProviderError> {
        let answers: Vec<Value> = answers
            .iter()
            .map(|(q, c)| json!({"question_id": q, "choice_id": c}))
            .collect();
        let r: KbaResult = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/verifications/{reference}/kba"),
                Some(json!({ "answers": answers })),
            )
            .await?;
        Ok(r.correct)
    }

    async fn review_documents(
        &self,
        reference: &str,
        _a: &Applicant,
        documents: &[(String, String)],
    ) -> Result<Outcome, ProviderError> {
        let docs: Vec<Value> = documents
            .iter()
            .map(|(kind, ct)| json!({"kind": kind, "content_type": ct}))
            .collect();
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/verifications/{reference}/documents"),
                Some(json!({ "documents": docs })),
            )
            .await?;
        outcome(v, reference)
    }
}
