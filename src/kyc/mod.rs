//! Customers and KYC: Bond's customer KYC API, KBA rounds, documents, manual review, identity
//! providers, PII encryption and erasure.
//!
//! The rest of obgate asks one question of this part: [`status_of`] a customer. Only
//! [`KycStatus::Passed`] lets a consent be authorised or a customer-bound token be issued.
//! Every status change is stored with its time and cause, audited, and published as an event
//! (`kyc.verification.*`) in the same transaction.
//!
//! # Status model
//!
//! ```text
//! not_started ─▶ initialized ─┬─▶ passed ◀──────────────────────────┐
//!      ▲                      ├─▶ failed ─▶ under_review ─▶ passed | failed
//!      │                      ├─▶ kba triggered ─▶ passed | failed (3 rounds) ─▶ under_review
//!      │                      ├─▶ document_required ─▶ under_review ─▶ passed | failed
//!      │                      ├─▶ under_review
//!      └── error | timeout ◀──┘   (retriable: a new verification-kyc; never treated as passed)
//! passed ─▶ suspended (a monitoring alert) ─▶ passed (alert cleared) | failed (review)
//! passed | suspended ─▶ under_review (a monitoring alert confirmed) ─▶ passed | failed
//! passed ─▶ failed (a review overturning it)
//! ```
//!
//! A compliance review (`verification-kyc/review`) may decide `passed` or `failed` from any
//! state once a verification has run.

pub mod customers;
pub mod documents;
pub mod kba;
pub mod pii;
pub mod provider;
pub mod routes;
pub mod rules;
pub mod verification;
pub mod worker;

use crate::store::{Store, StoreError};

/// A customer's KYC status; the wire form is Bond's (`kba triggered` has a space).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KycStatus {
    /// Created, never verified.
    NotStarted,
    /// A verification is running.
    Initialized,
    /// Verified: the only status that allows third-party access.
    Passed,
    /// Verification failed.
    Failed,
    /// The bureau could not confirm identity: knowledge-based questions are pending.
    KbaTriggered,
    /// Documents are needed.
    DocumentRequired,
    /// A person (or the provider) is reviewing.
    UnderReview,
    /// The provider failed; retriable.
    Error,
    /// The provider did not answer in time; retriable.
    Timeout,
    /// Access suspended by monitoring until a review.
    Suspended,
}

impl KycStatus {
    /// Every status, for validation and the spec test.
    pub const ALL: [KycStatus; 10] = [
        KycStatus::NotStarted,
        KycStatus::Initialized,
        KycStatus::Passed,
        KycStatus::Failed,
        KycStatus::KbaTriggered,
        KycStatus::DocumentRequired,
        KycStatus::UnderReview,
        KycStatus::Error,
        KycStatus::Timeout,
        KycStatus::Suspended,
    ];

    /// Wire and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            KycStatus::NotStarted => "not_started",
            KycStatus::Initialized => "initialized",
            KycStatus::Passed => "passed",
            KycStatus::Failed => "failed",
            KycStatus::KbaTriggered => "kba triggered",
            KycStatus::DocumentRequired => "document_required",
            KycStatus::UnderReview => "under_review",
            KycStatus::Error => "error",
            KycStatus::Timeout => "timeout",
            KycStatus::Suspended => "suspended",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The event announcing that a customer entered this status.
    pub fn event_type(self) -> &'static str {
        match self {
            KycStatus::NotStarted | KycStatus::Initialized => "kyc.verification.initialized",
            KycStatus::Passed => "kyc.verification.success",
            KycStatus::Failed => "kyc.verification.failure",
            KycStatus::KbaTriggered => "kyc.verification.kba",
            KycStatus::DocumentRequired => "kyc.verification.document_required",
            KycStatus::UnderReview => "kyc.verification.under_review",
            KycStatus::Error => "kyc.verification.error",
            KycStatus::Timeout => "kyc.verification.timeout",
            KycStatus::Suspended => "kyc.verification.suspended",
        }
    }

    /// Whether the state machine allows `self → to` (a review is checked separately).
    pub fn can_become(self, to: KycStatus) -> bool {
        use KycStatus::*;
        matches!(
            (self, to),
            (NotStarted | Error | Timeout, Initialized)
                | (
                    Initialized,
                    Passed
                        | Failed
                        | KbaTriggered
                        | DocumentRequired
                        | UnderReview
                        | Error
                        | Timeout
                )
                | (KbaTriggered, Passed | Failed)
                | (Failed, UnderReview)
                | (DocumentRequired, UnderReview)
                | (UnderReview, Passed | Failed)
                | (Passed, Suspended | Failed | UnderReview)
                | (Suspended, Passed | Failed | UnderReview)
        )
    }

    /// Whether a compliance review may decide `decision` from this status.
    pub fn reviewable_to(self, decision: KycStatus) -> bool {
        use KycStatus::*;
        match self {
            NotStarted | Initialized => false,
            Passed => decision == Failed,
            Failed => decision == Passed,
            _ => matches!(decision, Passed | Failed),
        }
    }
}

/// The KYC status of a customer: `None` when there is no such customer or it was erased.
/// This is the one function the token endpoint and the gateway gate on.
pub async fn status_of(
    store: &dyn Store,
    customer_id: &str,
) -> Result<Option<KycStatus>, StoreError> {
    Ok(store
        .get_customer(customer_id)
        .await?
        .filter(|c| c.erased_at.is_none())
        .and_then(|c| KycStatus::parse(&c.kyc_status)))
}

#[cfg(test)]
mod tests {
    use super::KycStatus::*;
    use super::*;

    #[test]
    fn stored_forms_round_trip() {
        for s in KycStatus::ALL {
            assert_eq!(KycStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(KbaTriggered.as_str(), "kba triggered");
    }

    #[test]
    fn only_a_verification_can_reach_passed_from_the_start() {
        assert!(NotStarted.can_become(Initialized));
        assert!(!NotStarted.can_become(Passed));
        assert!(
            !Error.can_become(Passed),
            "an error is never treated as passed"
        );
        assert!(!Timeout.can_become(Passed));
        assert!(Initialized.can_become(Passed));
        assert!(KbaTriggered.can_become(Failed));
        assert!(Failed.can_become(UnderReview));
        assert!(
            !Failed.can_become(Initialized),
            "a failure needs a review, not a retry"
        );
        assert!(Passed.can_become(Suspended));
        assert!(!Suspended.can_become(Initialized));
    }

    #[test]
    fn reviews_decide_only_after_a_verification_ran() {
        assert!(!NotStarted.reviewable_to(Passed));
        assert!(!Initialized.reviewable_to(Failed));
        assert!(UnderReview.reviewable_to(Passed));
        assert!(
            Passed.reviewable_to(Failed),
            "new evidence can overturn a pass"
        );
        assert!(!Passed.reviewable_to(Passed));
        assert!(
            Suspended.reviewable_to(Passed),
            "a review lifts a suspension"
        );
    }
}
