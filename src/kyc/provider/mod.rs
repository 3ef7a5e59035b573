//! Identity-verification providers: one interface, a deterministic sandbox and an HTTP adapter.
//!
//! A provider is given the applicant and a reference (the KYC job id, stable across retries,
//! so a provider that de-duplicates on it never runs a check twice). It answers with an outcome
//! or `Pending` (poll later), or fails; a failure is never treated as `passed`.

pub mod http;
pub mod sandbox;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::customers::Address;
use crate::config::{KycConfig, ProviderConfig};

/// Who is being verified (opened PII; never logged).
#[derive(Clone)]
pub struct Applicant {
    /// First name.
    pub first_name: String,
    /// Middle name.
    pub middle_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub dob: String,
    /// Primary address.
    pub address: Option<Address>,
    /// SSN digits.
    pub ssn: String,
    /// National phone number.
    pub phone: String,
    /// Calling code.
    pub phone_country_code: String,
    /// Email.
    pub email: String,
    /// IP address.
    pub ip: String,
}

impl std::fmt::Debug for Applicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Applicant([REDACTED])")
    }
}

/// Per-check results Bond reports as `reasons` (`ofac`, `bureau`, `ip`, `phone`, `email`):
/// `passed`, `failed`, `kba triggered`, `document_required`, `under_review`.
pub type Reasons = BTreeMap<String, String>;

/// Evidence a provider may ask for.
pub const DOCUMENT_KINDS: [&str; 3] = ["government_id", "proof_of_address", "social_security_card"];

/// What a check concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Identity confirmed.
    Passed,
    /// Identity refused (an OFAC hit, a mismatch).
    Failed,
    /// The bureau could not confirm: ask knowledge-based questions.
    Kba,
    /// Evidence needed: these document kinds.
    Documents(Vec<String>),
    /// A person must decide.
    ManualReview,
    /// Not decided yet; poll with this provider reference.
    Pending(String),
}

/// A check's decision and the per-check reasons.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The decision.
    pub decision: Decision,
    /// Per-check results.
    pub reasons: Reasons,
}

/// One KBA question; `answer` is the right `choice_id` when the provider lets obgate check
/// answers itself (the sandbox), `None` when the provider checks them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KbaQuestion {
    /// Id to answer with.
    pub question_id: String,
    /// The question.
    pub question: String,
    /// Multiple choices.
    pub choices: Vec<KbaChoice>,
    /// The right choice, kept sealed, never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// One choice of a KBA question.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KbaChoice {
    /// Id to answer with.
    pub choice_id: String,
    /// Text.
    pub choice: String,
}

/// How a provider call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time (after retries): the status becomes `timeout`.
    #[error("the identity provider did not answer in time")]
    Timeout,
    /// Any other failure (after retries): the status becomes `error`.
    #[error("identity provider failed: {0}")]
    Failed(String),
}

/// An identity-verification provider.
#[async_trait]
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    /// Submits a verification.
    async fn verify(&self, reference: &str, a: &Applicant) -> Result<Outcome, ProviderError>;
    /// The outcome of a `Pending` verification.
    async fn poll(&self, provider_ref: &str) -> Result<Outcome, ProviderError>;
    /// Questions for KBA round `round` (1-based).
    async fn kba_questions(
        &self,
        reference: &str,
        a: &Applicant,
        round: u32,
    ) -> Result<Vec<KbaQuestion>, ProviderError>;
    /// Whether `answers` (question id, choice id) answer every question right.
    async fn check_kba(
        &self,
        reference: &str,
        questions: &[KbaQuestion],
        answers: &BTreeMap<String, String>,
    ) -> Result<bool, ProviderError>;
    /// Decides on submitted documents (kinds and detected content types).
    async fn review_documents(
        &self,
        reference: &str,
        a: &Applicant,
        documents: &[(String, String)],
    ) -> Result<Outcome, ProviderError>;
}

/// The configured provider.
pub fn from_config(config: &KycConfig) -> Arc<dyn IdentityProvider> {
    match &config.provider {
        ProviderConfig::Sandbox => Arc::new(sandbox::Sandbox),
        ProviderConfig::Http { url, api_key } => Arc::new(http::HttpProvider::new(
            url.clone(),
            api_key.clone(),
            config.provider_timeout,
            config.provider_retries,
        )),
    }
}

/// Checks the answers against a sealed answer key (for providers that hand one over).
pub fn answers_match(questions: &[KbaQuestion], answers: &BTreeMap<String, String>) -> bool {
    questions
        .iter()
        .all(|q| q.answer.is_some() && answers.get(&q.question_id) == q.answer.as_ref())
}
