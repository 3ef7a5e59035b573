//! The hash chain: how a row is sealed and how the whole table is verified.
//!
//! `hash = SHA-256(JSON array of [seq, id, occurred_at, actor_type, actor_id, action,
//! resource_type, resource_id, outcome, reason, interaction_id, prev_hash])`, hex-encoded.
//! A JSON array has one serialization, so the hash is the same on every node and backend.
//! Removing a row breaks the seq sequence or the next row's `prev_hash`; changing one breaks its
//! hash; removing rows at the end disagrees with the head kept in `audit_head`.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{AuditEvent, AuditRecord};
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
pub fn hash_of(r: &AuditRecord) -> String {
    let canonical = json!([
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

/// A verified chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Rows checked.
    pub rows: i64,
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
}

/// Walks the whole table in chain order, a page at a time.
pub async fn verify(store: &dyn Store) -> Result<Verified, VerifyError> {
    const PAGE: u32 = 1000;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
    loop {
        let rows = store.audit_chain_page(expected_seq - 1, PAGE).await?;
        let done = rows.len() < PAGE as usize;
        for row in rows {
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
            prev_hash = row.hash;
            expected_seq += 1;
        }
        if done {
            break;
        }
    }
    let last = expected_seq - 1;
    let head = store.audit_head().await?;
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
    Ok(Verified {
        rows: last,
        head_hash: prev_hash,
    })
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
