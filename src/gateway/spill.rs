//! Gateway decisions that could not reach the audit log before shutdown, kept in a file until
//! the next start writes them.
//!
//! The access log never drops a decision, so while the database is away its writer retries.
//! At shutdown that would hold the process past SIGTERM for as long as the outage lasts (an
//! orchestrator then kills it, and the queue is lost with it). Instead, once
//! `http.shutdown_grace` has passed, what is still unwritten is appended to
//! `gateway.decision_spill_file` as JSON lines and synced to disk, and the process exits. The
//! next start writes the file's decisions into the audit log, sealed like any other batch,
//! before it serves, then deletes the file.
//!
//! Exactly once: the same transaction records the file's SHA-256 (`spill_replays`), so a file
//! that survives its own replay (the node died between the commit and the delete) is
//! recognised and deleted at the next start; each write starts with a line holding a random
//! id, so no two files share a digest. On a database with migrations pending the file waits
//! for the first start after them. (One case is not covered: a write cut short by the
//! shutdown deadline just as its commit went out leaves its decisions both written and
//! spilled; telling them apart would need an id per decision.)
//!
//! The file holds ids, paths (which name accounts) and reason codes, never tokens, and is
//! created readable by the node's user alone. One node per file: nodes that share a working
//! directory need their own `gateway.decision_spill_file`.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::decisions::GatewayDecision;
use crate::clock::Timestamp;
use crate::state::AppState;

/// One decision, one line.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    at: Timestamp,
    allowed: bool,
    #[serde(borrow)]
    reason: Cow<'a, str>,
    #[serde(borrow)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    consent_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    interaction_id: Option<Cow<'a, str>>,
}

/// The line each write starts with: a random id, so two writes of the same decisions (two
/// nodes that spilled alike in the same millisecond) never make files with the same bytes,
/// which the replay tells apart by their SHA-256.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    write: String,
}

impl<'a> Line<'a> {
    /// The line for `d`, borrowing its texts.
    fn of(d: &'a GatewayDecision) -> Self {
        Self {
            at: d.at,
            allowed: d.allowed,
            reason: Cow::Borrowed(&d.reason),
            client_id: d.client_id().map(Cow::Borrowed),
            consent_id: d.consent_id().map(Cow::Borrowed),
            path: Cow::Borrowed(d.path()),
            interaction_id: d.interaction_id().map(Cow::Borrowed),
        }
    }

    /// The decision this line was written from.
    fn into_decision(self) -> GatewayDecision {
        GatewayDecision::restored(
            self.at,
            self.client_id.as_deref(),
            self.consent_id.as_deref(),
            self.allowed,
            self.reason.into_owned(),
            &self.path,
            self.interaction_id.as_deref(),
        )
    }
}

/// Appends `decisions` to the spill file at `path` and syncs it, and its directory, to disk.
pub fn write(path: &Path, decisions: &[GatewayDecision]) -> std::io::Result<()> {
    let mut out = Vec::new();
    // A line torn by a crash while an earlier shutdown wrote it is cut off first: appended
    // after, it would be damage in the middle of the file, which stops the next start.
    cut_torn_tail(path)?;
    let marker = Marker {
        write: uuid::Uuid::new_v4().simple().to_string(),
    };
    serde_json::to_writer(&mut out, &marker)?;
    out.push(b'\n');
    for d in decisions {
        serde_json::to_writer(&mut out, &Line::of(d))?;
        out.push(b'\n');
    }
    // Paths name accounts: the file is the node's user's alone.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&out)?;
    file.sync_all()?;
    // The file's name, too, must survive a power cut: its directory entry is the directory's.
    // The decisions are on disk already, so a failure here is only said, not returned (the
    // caller would report them lost).
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(
            error = %e,
            file = %path.display(),
            "the spill file is written, but its directory could not be synced: a power cut \
             now could lose the file"
        );
    }
    Ok(())
}

/// Cuts the file at `path` back to its last newline, if it has a torn last line.
fn cut_torn_tail(path: &Path) -> std::io::Result<()> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if text.last().is_none_or(|b| *b == b'\n') {
        return Ok(());
    }
    let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
}

/// Where a spill file is moved while it is read back: a start that dies during the read finds
/// it there next time.
fn replaying(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".replaying");
    PathBuf::from(name)
}

/// Writes the decisions of a spill file left by an earlier shutdown into the audit log and
/// deletes the file; answers how many there were. An error (the database is still away, the
/// file is damaged) stops the start, and the file stays for the next. On a database with
/// migrations pending (`database.migrate_on_start = false`, an upgrade whose migration has
/// not run yet) the file is left for the first start after it: the node starts, as it does
/// on such a database, and says so.
pub async fn replay(state: &AppState) -> Result<usize, String> {
    let path = &state.config.gateway.decision_spill_file;
    let pending = replaying(path);
    if !pending.exists() && !path.exists() {
        return Ok(0);
    }
    let migrations = state
        .store
        .migration_state()
        .await
        .map_err(|e| format!("cannot read the database's migrations: {e}"))?;
    if !migrations.is_current() {
        tracing::warn!(
            file = %path.display(),
            pending = migrations.pending.len(),
            "gateway decisions left unwritten at the last shutdown wait in the spill file: the \
             database has migrations pending; the first start after `obgate migrate` writes them"
        );
        return Ok(0);
    }
    let mut total = 0;
    // A file left mid-read by a start that died first, then the one the last shutdown wrote.
    for source in [pending.clone(), path.clone()] {
        if !source.exists() {
            continue;
        }
        if source != pending {
            std::fs::rename(&source, &pending)
                .map_err(|e| format!("cannot move {}: {e}", source.display()))?;
        }
        total += replay_file(state, &pending).await?;
        std::fs::remove_file(&pending)
            .map_err(|e| format!("cannot delete {}: {e}", pending.display()))?;
    }
    if total > 0 {
        tracing::warn!(
            decisions = total,
            file = %path.display(),
            "gateway decisions left unwritten at the last shutdown are now in the audit log"
        );
    }
    Ok(total)
}

/// Reads the whole file and writes it as one batch, in one transaction: a failure leaves the
/// audit log without any of it, so reading the file again cannot write a decision twice. (A
/// file holds at most what one shutdown found queued, some thousands of decisions.) The same
/// transaction records the file's SHA-256, so a file that comes back after its commit (the
/// node died before deleting it) is recognised and not written again. A last line without
/// its newline was cut short by a crash while it was written: it is skipped, and said so,
/// rather than keeping the node from starting.
async fn replay_file(state: &AppState, path: &Path) -> Result<usize, String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{}: not a spill file (not UTF-8)", path.display()))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut batch = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = match serde_json::from_str(line) {
            Ok(l) => l,
            Err(_) if serde_json::from_str::<Marker>(line).is_ok() => continue,
            Err(_) if i + 1 == lines.len() && !complete => {
                tracing::error!(
                    file = %path.display(),
                    "the spill file's last line was cut short while it was written; the \
                     gateway decisions of that write from it on are lost"
                );
                continue;
            }
            Err(e) => {
                return Err(format!(
                    "{} line {}: not a spilled decision: {e}",
                    path.display(),
                    i + 1
                ))
            }
        };
        batch.push(l.into_decision());
    }
    if batch.is_empty() {
        return Ok(0);
    }
    let first = state
        .store
        .append_spilled(&digest, &batch, state.clock.now())
        .await
        .map_err(|e| format!("cannot write spilled gateway decisions to the audit log: {e}"))?;
    if !first {
        tracing::warn!(
            file = %path.display(),
            "this spill file's decisions were written into the audit log by an earlier start, \
             which stopped before deleting it; they are not written again"
        );
        return Ok(0);
    }
    Ok(batch.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(i: i64) -> GatewayDecision {
        GatewayDecision::new(
            Timestamp::from_millis(1_790_000_000_000 + i),
            Some("cl_1"),
            Some("aac-1"),
            true,
            "ok",
            "/open-banking/v3.1/aisp/accounts",
            Some("ia-\"quoted\""),
        )
    }

    #[test]
    fn a_write_after_a_torn_line_leaves_only_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.spill");
        write(&path, &[decision(1), decision(2)]).unwrap();
        // A crash while the next shutdown wrote: half a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"at":"2026-12-07T21:00:00.000Z","allo"#)
            .unwrap();
        write(&path, &[decision(3)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let markers: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Marker>(l).ok())
            .map(|m| m.write)
            .collect();
        assert_eq!(markers.len(), 2, "one per write: {text}");
        assert_ne!(markers[0], markers[1], "each write its own id");
        let read: Vec<GatewayDecision> = text
            .lines()
            .filter(|l| serde_json::from_str::<Marker>(l).is_err())
            .map(|l| serde_json::from_str::<Line>(l).unwrap().into_decision())
            .collect();
        assert_eq!(read, vec![decision(1), decision(2), decision(3)]);
    }
}
