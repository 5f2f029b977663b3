//! The audit trail: append-only, each entry chained to the previous one by SHA-256, so an
//! edited, deleted or inserted row shows in `callgate audit verify` even when done behind
//! callgate's back (the SQLite backend also refuses UPDATE and DELETE with triggers).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub hash: String,
}

/// One stored entry as the chain check reads it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What `callgate audit verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact { entries: i64, head: String },
    Broken { seq: i64, why: String },
}

pub trait AuditDb {
    /// Appends one entry in the caller's transaction, so the change and its record commit
    /// together. Returns its number.
    fn append_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
        now: i64,
    ) -> anyhow::Result<i64>;

    /// The newest entries first, optionally only those about `subject`.
    fn recent_audit(&self, subject: Option<&str>, limit: u32) -> anyhow::Result<Vec<Entry>>;

    /// Recomputes the whole chain (see [`ChainCheck`]).
    fn verify_audit(&self) -> anyhow::Result<Verdict>;

    /// Drops the entries older than `cutoff`, keeping the chain verifiable from an anchor (the
    /// last dropped entry's number and hash), and records the purge as an entry. Returns how
    /// many were dropped.
    fn purge_audit_before(&self, cutoff: i64, now: i64) -> anyhow::Result<i64>;

    /// The number of the newest entry of `action` (0 before the first): how a server notices
    /// what another process did (`script.publish`).
    fn last_audit_seq(&self, action: &str) -> anyhow::Result<i64>;
}

pub fn entry_hash(
    prev: &str,
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different entries hash the same bytes.
    for part in [
        prev.as_bytes(),
        seq.to_string().as_bytes(),
        at.to_string().as_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        subject.as_bytes(),
        detail.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Walks the chain entry by entry, in order (a backend streams its rows through it).
pub struct ChainCheck {
    expected_seq: i64,
    first_seq: i64,
    prev: String,
}

impl ChainCheck {
    /// Starts at the anchor a retention purge left (`(seq, hash)` of the last dropped entry),
    /// or at the genesis.
    pub fn new(anchor: Option<(i64, String)>) -> Self {
        let (expected_seq, prev) = match anchor {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_owned()),
        };
        Self {
            expected_seq,
            first_seq: expected_seq,
            prev,
        }
    }

    /// Checks the next entry; `Some` is the verdict when the chain breaks there.
    pub fn next(&mut self, e: StoredEntry) -> Option<Verdict> {
        let expected_seq = self.expected_seq;
        if e.seq != expected_seq {
            return Some(Verdict::Broken {
                seq: expected_seq,
                why: format!("entry {expected_seq} is missing (next is {})", e.seq),
            });
        }
        if e.prev_hash != self.prev {
            return Some(Verdict::Broken {
                seq: e.seq,
                why: "does not chain to the entry before it".into(),
            });
        }
        let computed = entry_hash(
            &self.prev, e.seq, e.at, &e.actor, &e.action, &e.subject, &e.detail,
        );
        if computed != e.hash {
            return Some(Verdict::Broken {
                seq: e.seq,
                why: "its content does not match its hash (edited)".into(),
            });
        }
        self.prev = e.hash;
        self.expected_seq += 1;
        None
    }

    pub fn finish(self) -> Verdict {
        Verdict::Intact {
            entries: self.expected_seq - self.first_seq,
            head: self.prev,
        }
    }
}
