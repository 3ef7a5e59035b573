//! Gateway decisions: the audit record of every request to account data, one compact row each,
//! sealed into the hash chain a batch at a time.
//!
//! A gateway read is the one thing obgate does thousands of times a second, and each needs a
//! record of who read what under which consent. As a full audit row it cost a UUID, a hash and
//! seven index entries; that writer was the largest cost of a gateway read that obgate controls
//! (BENCHMARKS.md). Here a decision is a row of `gateway_decisions` with two indexes (consent,
//! client), and each batch the access log writes is one `gateway.decisions` row in the audit
//! chain: `resource_id` names the batch's first and last decision seq (`"17-2016"`) and
//! `reason` is the [`digest`] of those rows. The seal, the rows and the head move in one
//! transaction, so `obgate audit verify` ([`super::chain::verify`]) proves each decision as it
//! proves each audit row: a changed, removed or added decision no longer matches its seal.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::chain::HashWriter;
use super::{ActorType, AuditEvent, Outcome};
use crate::clock::Timestamp;

/// The audit action of the row that seals a batch of decisions.
pub const SEAL_ACTION: &str = "gateway.decisions";
/// The resource type of that row (its id is the seq range it seals).
pub const SEAL_RESOURCE: &str = "gateway_decisions";

/// One decision about one gateway request, as the access log queues it.
///
/// Its four texts (client, consent, path, interaction id) are kept in one buffer: a decision
/// is made on every gateway request, and four separate copies were four allocations there
/// (BENCHMARKS.md, thirteenth pass). Read them through the accessors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayDecision {
    /// When it was decided.
    pub at: Timestamp,
    /// Whether the request went on to the bank.
    pub allowed: bool,
    /// `ok`, or why not (`consent_revoked`, `invalid_token`, `rate_limited`, …): one of the
    /// gateway's codes, owned only when read back from a spill file.
    pub reason: std::borrow::Cow<'static, str>,
    /// The four texts, one after another.
    text: String,
    /// Where each text ends in `text`, and `None` for an absent optional one.
    ends: [Option<usize>; 4],
}

impl GatewayDecision {
    /// A decision: who (`client_id`, when its token was verified), under which consent (when
    /// known), allowed or not and why, for which path (no query string), with the request's
    /// `x-fapi-interaction-id`.
    pub fn new(
        at: Timestamp,
        client_id: Option<&str>,
        consent_id: Option<&str>,
        allowed: bool,
        reason: &'static str,
        path: &str,
        interaction_id: Option<&str>,
    ) -> Self {
        let parts = [client_id, consent_id, Some(path), interaction_id];
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let ends = parts.map(|p| {
            p.map(|p| {
                text.push_str(p);
                text.len()
            })
        });
        Self {
            at,
            allowed,
            reason: std::borrow::Cow::Borrowed(reason),
            text,
            ends,
        }
    }

    /// A decision read back from a spill file ([`crate::gateway::spill`]), its reason owned.
    pub fn restored(
        at: Timestamp,
        client_id: Option<&str>,
        consent_id: Option<&str>,
        allowed: bool,
        reason: String,
        path: &str,
        interaction_id: Option<&str>,
    ) -> Self {
        let mut d = Self::new(at, client_id, consent_id, allowed, "", path, interaction_id);
        d.reason = std::borrow::Cow::Owned(reason);
        d
    }

    /// Text `i` (in the order [`GatewayDecision::new`] takes them), `None` when absent.
    fn part(&self, i: usize) -> Option<&str> {
        let end = self.ends[i]?;
        let start = self.ends[..i].iter().rev().find_map(|e| *e).unwrap_or(0);
        self.text.get(start..end)
    }

    /// The TPP, when its token was verified.
    pub fn client_id(&self) -> Option<&str> {
        self.part(0)
    }

    /// The consent the token acts under, when known.
    pub fn consent_id(&self) -> Option<&str> {
        self.part(1)
    }

    /// The path requested (no query string).
    pub fn path(&self) -> &str {
        self.part(2).unwrap_or("")
    }

    /// The request's `x-fapi-interaction-id`.
    pub fn interaction_id(&self) -> Option<&str> {
        self.part(3)
    }
}

/// A stored decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DecisionRecord {
    /// Position among all decisions, 1-based and gap-free.
    pub seq: i64,
    /// The `seq` of the audit row that seals this decision's batch.
    pub sealed_by: i64,
    /// When it was decided.
    pub occurred_at: Timestamp,
    /// The TPP, when its token was verified.
    pub client_id: Option<String>,
    /// The consent the token acted under, when known.
    pub consent_id: Option<String>,
    /// `success` (passed on to the bank) or `denied`.
    pub outcome: String,
    /// `ok`, or the denial's code.
    pub reason: String,
    /// The path requested.
    pub path: String,
    /// The request's `x-fapi-interaction-id`.
    pub interaction_id: Option<String>,
}

impl DecisionRecord {
    /// The row for `d` at position `seq` in the batch sealed by audit row `sealed_by`.
    pub fn new(seq: i64, sealed_by: i64, d: &GatewayDecision) -> Self {
        let row = d.row(seq, sealed_by);
        Self {
            seq,
            sealed_by,
            occurred_at: row.occurred_at,
            client_id: row.client_id.map(str::to_owned),
            consent_id: row.consent_id.map(str::to_owned),
            outcome: row.outcome.to_owned(),
            reason: row.reason.to_owned(),
            path: row.path.to_owned(),
            interaction_id: row.interaction_id.map(str::to_owned),
        }
    }

    /// This stored row's fields, as [`digest`] hashes them.
    pub fn row(&self) -> DecisionRow<'_> {
        DecisionRow {
            seq: self.seq,
            sealed_by: self.sealed_by,
            occurred_at: self.occurred_at,
            client_id: self.client_id.as_deref(),
            consent_id: self.consent_id.as_deref(),
            outcome: &self.outcome,
            reason: &self.reason,
            path: &self.path,
            interaction_id: self.interaction_id.as_deref(),
        }
    }
}

impl GatewayDecision {
    /// The row this decision becomes at position `seq` in the batch sealed by audit row
    /// `sealed_by`, borrowed: the writer binds and hashes these fields without copying each
    /// queued decision into a [`DecisionRecord`] first (six strings a gateway request).
    pub fn row(&self, seq: i64, sealed_by: i64) -> DecisionRow<'_> {
        DecisionRow {
            seq,
            sealed_by,
            occurred_at: self.at,
            client_id: self.client_id(),
            consent_id: self.consent_id(),
            outcome: if self.allowed {
                Outcome::Success
            } else {
                Outcome::Denied
            }
            .as_str(),
            reason: &self.reason,
            path: self.path(),
            interaction_id: self.interaction_id(),
        }
    }
}

/// One decision row's fields, borrowed: what the writer inserts and what the seal hashes, the
/// same whether the row is about to be written ([`GatewayDecision::row`]) or was read back to
/// be verified ([`DecisionRecord::row`]).
#[derive(Clone, Copy, Debug)]
pub struct DecisionRow<'a> {
    /// Position among all decisions.
    pub seq: i64,
    /// The `seq` of the sealing audit row.
    pub sealed_by: i64,
    /// When it was decided.
    pub occurred_at: Timestamp,
    /// The TPP, when known.
    pub client_id: Option<&'a str>,
    /// The consent, when known.
    pub consent_id: Option<&'a str>,
    /// `success` or `denied`.
    pub outcome: &'a str,
    /// `ok`, or the denial's code.
    pub reason: &'a str,
    /// The path requested.
    pub path: &'a str,
    /// The request's `x-fapi-interaction-id`.
    pub interaction_id: Option<&'a str>,
}

/// The hash a batch's seal carries: SHA-256, hex, over each row as a JSON array of its fields
/// (`[seq, sealed_by, occurred_at, client_id, consent_id, outcome, reason, path,
/// interaction_id]`), one per line. One serialization, so the same on every node and backend.
pub fn digest<'a>(rows: impl IntoIterator<Item = DecisionRow<'a>>) -> String {
    let mut hasher = Sha256::new();
    for r in rows {
        let fields = (
            r.seq,
            r.sealed_by,
            r.occurred_at.millis(),
            r.client_id,
            r.consent_id,
            r.outcome,
            r.reason,
            r.path,
            r.interaction_id,
        );
        // Writing into a hasher cannot fail, and neither can serializing strings and integers.
        let _ = serde_json::to_writer(HashWriter(&mut hasher), &fields);
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// The audit event sealing `rows` (a non-empty, consecutive batch), stamped with the time of
/// its last decision.
pub fn seal_event(rows: &[DecisionRow<'_>]) -> Option<AuditEvent> {
    let (first, last) = (rows.first()?, rows.last()?);
    Some(
        AuditEvent::new(last.occurred_at, ActorType::System, "obgate", SEAL_ACTION)
            .on(SEAL_RESOURCE, format!("{}-{}", first.seq, last.seq))
            .outcome(Outcome::Success, digest(rows.iter().copied())),
    )
}

/// The decision seq range a seal's `resource_id` names (`"17-2016"`), when well formed.
pub fn sealed_range(resource_id: &str) -> Option<(i64, i64)> {
    let (first, last) = resource_id.split_once('-')?;
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (1 <= first && first <= last).then_some((first, last))
}

/// Filters for listing decisions; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct DecisionFilter {
    /// Exact client id.
    pub client_id: Option<String>,
    /// Exact consent id.
    pub consent_id: Option<String>,
    /// `success` or `denied`.
    pub outcome: Option<String>,
    /// Exact reason code (`ok`, `consent_revoked`, …).
    pub reason: Option<String>,
    /// Exact interaction id.
    pub interaction_id: Option<String>,
    /// Time window and page.
    pub window: super::Window,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(i: i64) -> GatewayDecision {
        GatewayDecision::new(
            Timestamp::from_millis(i),
            Some("cl_1"),
            Some("aac_1"),
            i % 2 == 0,
            if i % 2 == 0 {
                "ok"
            } else {
                "permission_missing"
            },
            "/open-banking/v3.1/aisp/accounts",
            None,
        )
    }

    #[test]
    fn a_decision_gives_back_each_text_as_given_present_or_absent() {
        let (c, k, p, i) = ("cl_1", "aac-ü", "/open-banking/v3.1/aisp/accounts", "ia-1");
        for mask in 0..8u8 {
            let on = |bit: u8, v: &'static str| (mask & bit != 0).then_some(v);
            let d = GatewayDecision::new(
                Timestamp::from_millis(1),
                on(1, c),
                on(2, k),
                true,
                "ok",
                p,
                on(4, i),
            );
            assert_eq!(d.client_id(), on(1, c), "mask {mask}");
            assert_eq!(d.consent_id(), on(2, k), "mask {mask}");
            assert_eq!(d.path(), p, "mask {mask}");
            assert_eq!(d.interaction_id(), on(4, i), "mask {mask}");
        }
        let empty = GatewayDecision::new(
            Timestamp::from_millis(1),
            Some(""),
            None,
            false,
            "invalid_token",
            "",
            Some(""),
        );
        assert_eq!(
            (
                empty.client_id(),
                empty.consent_id(),
                empty.path(),
                empty.interaction_id()
            ),
            (Some(""), None, "", Some(""))
        );
    }

    #[test]
    fn the_seal_names_its_range_and_any_change_to_a_row_changes_its_digest() {
        let rows: Vec<DecisionRecord> = (5..8)
            .map(|i| DecisionRecord::new(i, 40, &decision(i)))
            .collect();
        let hash = |rows: &[DecisionRecord]| digest(rows.iter().map(DecisionRecord::row));
        let views: Vec<DecisionRow<'_>> = rows.iter().map(DecisionRecord::row).collect();
        let seal = seal_event(&views).unwrap();
        assert_eq!(seal.action, SEAL_ACTION);
        assert_eq!(seal.resource_id.as_deref(), Some("5-7"));
        assert_eq!(sealed_range("5-7"), Some((5, 7)));
        assert_eq!(seal.at, rows[2].occurred_at);
        let sealed = seal.reason.unwrap();
        assert_eq!(sealed, hash(&rows));
        // The writer hashes the queued decisions as they are bound; verification hashes the
        // rows read back. Both must give the seal's digest.
        let queued: Vec<GatewayDecision> = (5..8).map(decision).collect();
        let written = digest(queued.iter().zip(5..).map(|(d, seq)| d.row(seq, 40)));
        assert_eq!(written, sealed);

        let mut changed = rows.clone();
        // Row 1 (i = 6) was allowed; make it look denied.
        assert_eq!(changed[1].outcome, "success");
        changed[1].outcome = "denied".into();
        assert_ne!(hash(&changed), sealed);
        let mut moved = rows.clone();
        moved[2].sealed_by = 41;
        assert_ne!(hash(&moved), sealed);
        assert_ne!(hash(&rows[..2]), sealed);
        // A field's bytes cannot slide into its neighbour's.
        let mut a = rows.clone();
        a[0].client_id = Some("cl_1\",\"x".into());
        a[0].consent_id = None;
        let mut b = rows;
        b[0].consent_id = Some("x".into());
        assert_ne!(hash(&a), hash(&b));
        assert!(seal_event(&[]).is_none());
    }

    #[test]
    fn only_a_forward_range_of_positive_seqs_is_a_range() {
        for bad in ["", "5", "7-5", "0-3", "-1-3", "a-b", "3-", "3-4-5"] {
            assert_eq!(sealed_range(bad), None, "{bad}");
        }
        assert_eq!(sealed_range("1-1"), Some((1, 1)));
    }
}
