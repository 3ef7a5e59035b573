//! The hash chain: how a row is sealed and how the whole table is verified.
//!
//! `hash = SHA-256(JSON array of [seq, id, occurred_at, actor_type, actor_id, action,
//! resource_type, resource_id, outcome, reason, interaction_id, prev_hash])`, hex-encoded.
//! A JSON array has one serialization, so the hash is the same on every node and backend.
//! Removing a row breaks the seq sequence or the next row's `prev_hash`; changing one breaks its
//! hash; removing rows at the end disagrees with the head kept in `audit_head`.
//!
//! Gateway decisions are proved through the chain too: each `gateway.decisions` row seals a
//! consecutive range of them with their digest ([`super::decisions`]), the ranges follow one
//! another from decision 1, and the head counts the decisions sealed. A decision changed,
//! removed, moved or added out of band no longer matches a seal.

use sha2::{Digest, Sha256};

use super::decisions::{self, SEAL_ACTION, SEAL_RESOURCE};
use super::{AuditEvent, AuditHead, AuditRecord};
use crate::store::{Store, StoreError};

/// `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Builds the row for `event` at position `seq` after a row whose hash is `prev_hash`.
pub fn seal(seq: i64, prev_hash: &str, event: &AuditEvent) -> AuditRecord {
    let mut record = AuditRecord {
        seq,
        id: uuid::Uuid::now_v7().to_string(),
        occurred_at: event.at,
        actor_type: event.actor_type.as_str().to_owned(),
        actor_id: event.actor_id.clone(),
        action: event.action.to_owned(),
        resource_type: event.resource_type.map(str::to_owned),
        resource_id: event.resource_id.clone(),
        outcome: event.outcome.as_str().to_owned(),
        reason: event.reason.clone(),
        interaction_id: event.interaction_id.clone(),
        prev_hash: prev_hash.to_owned(),
        hash: String::new(),
    };
    record.hash = hash_of(&record);
    record
}

/// The hash a row should carry, from its other fields.
///
/// The fields are serialized as a tuple, which serde_json writes as the same JSON array a
/// `json!` tree of them would print (the bytes every sealed row was hashed over), without
/// building the tree: this runs once per gateway request.
pub fn hash_of(r: &AuditRecord) -> String {
    let fields = (
        r.seq,
        &r.id,
        r.occurred_at.millis(),
        &r.actor_type,
        &r.actor_id,
        &r.action,
        &r.resource_type,
        &r.resource_id,
        &r.outcome,
        &r.reason,
        &r.interaction_id,
        &r.prev_hash,
    );
    let mut hasher = Sha256::new();
    // Writing into a hasher cannot fail, and neither can serializing strings and integers.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), &fields);
    hex::encode(hasher.finalize())
}

/// Feeds serialized bytes straight into the hash, so no JSON text is kept.
pub(crate) struct HashWriter<'a>(pub(crate) &'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A verified chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Rows checked.
    pub rows: i64,
    /// Gateway decisions checked against their seals.
    pub decisions: i64,
    /// Hash of the last row: record it elsewhere to detect a rewrite of the whole table later.
    pub head_hash: String,
}

/// Where and how the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A row is missing: the sequence jumps.
    #[error(
        "row seq {expected} is missing (the next row present is seq {found}): rows were deleted"
    )]
    Gap {
        /// The seq that should come next.
        expected: i64,
        /// The seq found instead.
        found: i64,
    },
    /// A row's `prev_hash` is not the previous row's hash.
    #[error("row seq {seq} does not link to the row before it: rows were deleted or replaced")]
    Link {
        /// The row whose link is wrong.
        seq: i64,
    },
    /// A row's content does not match its hash.
    #[error("row seq {seq} was altered: its content does not match its hash")]
    Altered {
        /// The altered row.
        seq: i64,
    },
    /// The table ends before (or after) the recorded head.
    #[error("the chain ends at seq {last} but its head records seq {head}: rows at the end were deleted or appended out of band")]
    Head {
        /// Last seq in the table.
        last: i64,
        /// Seq recorded in the head.
        head: i64,
    },
    /// A seal does not name the decisions that follow the previous seal's.
    #[error("row seq {seq} seals gateway decisions out of order: expected a range from decision {expected}")]
    SealRange {
        /// The sealing row.
        seq: i64,
        /// The first decision it should seal.
        expected: i64,
    },
    /// A batch of decisions does not match its seal.
    #[error("the gateway decisions sealed by row seq {seq} were altered, removed or moved")]
    Decisions {
        /// The sealing row.
        seq: i64,
    },
    /// Decisions exist past the last seal, or the head counts other than were sealed.
    #[error("gateway decisions are sealed up to {sealed} but {found}: rows were deleted or appended out of band")]
    DecisionsHead {
        /// Last decision seq sealed.
        sealed: i64,
        /// What was found instead.
        found: String,
    },
    /// A row or a decision numbered before the first (seq 0 or less): the walk starts at 1,
    /// so only this check sees it, while listings sorted by seq show it.
    #[error("{what} seq {seq} lies before the start of the chain: written out of band")]
    BeforeStart {
        /// `audit row` or `gateway decision`.
        what: &'static str,
        /// Its seq.
        seq: i64,
    },
    /// The head's hash is not the last row's hash.
    #[error("the head hash does not match row seq {seq}: the last row was replaced")]
    HeadHash {
        /// Last seq.
        seq: i64,
    },
}

/// Why verification could not complete.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken.
    #[error("audit chain broken: {0}")]
    Broken(#[from] Broken),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log was appended to at every look past the walked head: nothing was found wrong up
    /// to it, but the end could not be checked. Run it again at a quieter moment.
    #[error("the audit log was written to throughout the check of its end; nothing was found broken up to the head read at the start; run the check again")]
    Busy,
}

/// Walks the chain in order, a page at a time, up to the head as it stood when the walk began.
///
/// A node may be appending while this runs (`obgate audit verify` beside a live gateway): rows
/// and decisions committed after the head was read are the next verification's, so reading the
/// head last, as this once did, called a batch that landed during the walk a broken chain.
/// What lies past the walked head is still checked ([`nothing_unaccounted`]): a row or decision
/// that no head counts, even one read after it, was written behind obgate's back.
pub async fn verify(store: &dyn Store) -> Result<Verified, VerifyError> {
    const PAGE: u32 = 1000;
    nothing_before_the_start(store).await?;
    let head = store.audit_head().await?;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut next_decision = 1;
    'walk: while expected_seq <= head.seq {
        let rows = store.audit_chain_page(expected_seq - 1, PAGE).await?;
        let done = rows.len() < PAGE as usize;
        for row in rows {
            if expected_seq > head.seq {
                break 'walk;
            }
            if row.seq != expected_seq {
                return Err(Broken::Gap {
                    expected: expected_seq,
                    found: row.seq,
                }
                .into());
            }
            if row.prev_hash != prev_hash {
                return Err(Broken::Link { seq: row.seq }.into());
            }
            if hash_of(&row) != row.hash {
                return Err(Broken::Altered { seq: row.seq }.into());
            }
            if row.action == SEAL_ACTION {
                next_decision = verify_sealed(store, &row, next_decision).await?;
            }
            prev_hash = row.hash;
            expected_seq += 1;
        }
        if done {
            break;
        }
    }
    let last = expected_seq - 1;
    if head.seq != last {
        return Err(Broken::Head {
            last,
            head: head.seq,
        }
        .into());
    }
    if head.last_hash != prev_hash {
        return Err(Broken::HeadHash { seq: last }.into());
    }
    let sealed = next_decision - 1;
    if head.decisions != sealed {
        return Err(Broken::DecisionsHead {
            sealed,
            found: format!("the head counts {}", head.decisions),
        }
        .into());
    }
    nothing_unaccounted(store, head).await?;
    Ok(Verified {
        rows: last,
        decisions: sealed,
        head_hash: prev_hash,
    })
}

/// Checks that no row and no decision is numbered before the chain's first (seq 1): obgate
/// never writes one, and the walk from seq 1 would not see it.
async fn nothing_before_the_start(store: &dyn Store) -> Result<(), VerifyError> {
    if let Some(row) = store
        .audit_chain_page(i64::MIN, 1)
        .await?
        .into_iter()
        .next()
    {
        if row.seq < 1 {
            return Err(Broken::BeforeStart {
                what: "audit row",
                seq: row.seq,
            }
            .into());
        }
    }
    if let Some(d) = store
        .decisions_between(i64::MIN, 0, 1)
        .await?
        .into_iter()
        .next()
    {
        return Err(Broken::BeforeStart {
            what: "gateway decision",
            seq: d.seq,
        }
        .into());
    }
    Ok(())
}

/// Checks that nothing is stored past `head` that a head read afterwards does not count.
///
/// A batch commits its rows, its decisions and the head's move in one transaction, so whatever
/// of it a read sees, a head read after that read counts. The first row and the first decision
/// past the head are read, then the head again: if the new head counts them, the walk goes on
/// from there; if it does not, they were written out of band. A head that moves at every look
/// (the log written to throughout) ends the check as [`VerifyError::Busy`], never as broken.
async fn nothing_unaccounted(store: &dyn Store, mut head: AuditHead) -> Result<(), VerifyError> {
    const LOOKS: usize = 100;
    for _ in 0..LOOKS {
        let row = store
            .audit_chain_page(head.seq, 1)
            .await?
            .into_iter()
            .next();
        let decision = store
            .decisions_between(head.decisions + 1, i64::MAX, 1)
            .await?
            .into_iter()
            .next();
        if row.is_none() && decision.is_none() {
            return Ok(());
        }
        let later = store.audit_head().await?;
        if let Some(row) = row.filter(|r| r.seq > later.seq) {
            return Err(Broken::Head {
                last: row.seq,
                head: later.seq,
            }
            .into());
        }
        if let Some(decision) = decision.filter(|d| d.seq > later.decisions) {
            return Err(Broken::DecisionsHead {
                sealed: later.decisions,
                found: format!("decision {} is stored", decision.seq),
            }
            .into());
        }
        head = later;
    }
    Err(VerifyError::Busy)
}

/// Checks the decisions a `gateway.decisions` row seals, which must start at `next`; the
/// decision seq after them.
async fn verify_sealed(
    store: &dyn Store,
    seal: &AuditRecord,
    next: i64,
) -> Result<i64, VerifyError> {
    let range = (seal.resource_type.as_deref() == Some(SEAL_RESOURCE))
        .then(|| {
            seal.resource_id
                .as_deref()
                .and_then(decisions::sealed_range)
        })
        .flatten();
    let (first, last) = match range {
        Some((first, last)) if first == next => (first, last),
        _ => {
            return Err(Broken::SealRange {
                seq: seal.seq,
                expected: next,
            }
            .into())
        }
    };
    let count = u32::try_from(last - first + 1).map_err(|_| Broken::SealRange {
        seq: seal.seq,
        expected: next,
    })?;
    let rows = store.decisions_between(first, last, count).await?;
    if rows.len() != count as usize
        || seal.reason.as_deref()
            != Some(&decisions::digest(
                rows.iter().map(decisions::DecisionRecord::row),
            ))
    {
        return Err(Broken::Decisions { seq: seal.seq }.into());
    }
    Ok(last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ActorType, Outcome};
    use crate::clock::Timestamp;

    fn event() -> AuditEvent {
        AuditEvent::new(
            Timestamp::from_millis(1),
            ActorType::Cli,
            "root",
            "admin_key.create",
        )
        .on("admin_key", "ak_1")
    }

    /// The bytes every existing row was hashed over: a `json!` array of its fields.
    fn reference_hash(r: &AuditRecord) -> String {
        let canonical = serde_json::json!([
            r.seq,
            r.id,
            r.occurred_at.millis(),
            r.actor_type,
            r.actor_id,
            r.action,
            r.resource_type,
            r.resource_id,
            r.outcome,
            r.reason,
            r.interaction_id,
            r.prev_hash,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    #[test]
    fn the_hash_is_over_the_same_bytes_as_rows_sealed_before() {
        // Escapes, non-ASCII, control characters, nulls and negative numbers: any byte of
        // difference would make `obgate audit verify` call every stored row altered.
        let mut r = seal(
            -7,
            GENESIS_HASH,
            &AuditEvent::new(
                Timestamp::from_millis(-1),
                ActorType::Client,
                "cl_\"quoted\" \\ back\u{1}slash \u{7f}",
                "gateway.access",
            )
            .outcome(Outcome::Denied, "résumé ✓ \n\t\r / </script> \u{2028}")
            .interaction(Some("😀")),
        );
        assert_eq!(hash_of(&r), reference_hash(&r));
        assert_eq!(r.hash, reference_hash(&r));
        r.resource_type = None;
        r.reason = None;
        r.interaction_id = None;
        r.seq = i64::MAX;
        assert_eq!(hash_of(&r), reference_hash(&r));
        let admin = seal(1, GENESIS_HASH, &event());
        assert_eq!(admin.hash, reference_hash(&admin));
        // A row as an earlier release sealed it; its hash was computed apart (Python's json).
        let pinned = AuditRecord {
            seq: 1,
            id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            occurred_at: Timestamp::from_millis(1_700_000_000_000),
            actor_type: "cli".into(),
            actor_id: "root".into(),
            action: "admin_key.create".into(),
            resource_type: Some("admin_key".into()),
            resource_id: Some("ak_1".into()),
            outcome: "success".into(),
            reason: None,
            interaction_id: None,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let pinned_hash = "9f3e51b5e5add7452876e74e1d3dcab64dd483f47a74fa1320d8d5d101796df3";
        assert_eq!(reference_hash(&pinned), pinned_hash);
        assert_eq!(hash_of(&pinned), pinned_hash);
    }

    #[test]
    fn sealing_links_rows_and_any_field_change_breaks_the_hash() {
        let first = seal(1, GENESIS_HASH, &event());
        let second = seal(
            2,
            &first.hash,
            &event().outcome(Outcome::Denied, "revoked_key"),
        );
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(hash_of(&second), second.hash);
        let mut tampered = second.clone();
        tampered.outcome = "success".into();
        assert_ne!(hash_of(&tampered), second.hash);
        let mut moved = second;
        moved.resource_id = None;
        assert_ne!(hash_of(&moved), first.hash);
    }
}
