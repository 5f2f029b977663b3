//! The audit trail: append-only (triggers refuse UPDATE and DELETE), each entry chained to the
//! previous one by SHA-256, so an edited, deleted or inserted row shows in `callgate audit verify`
//! even when done behind callgate's back with the sqlite3 shell.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
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

fn entry_hash(
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

/// Appends one entry in the caller's transaction, so the change and its record commit together.
pub fn append(
    conn: &Connection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
    now: i64,
) -> anyhow::Result<i64> {
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev) = last.map_or((1, GENESIS.to_owned()), |(s, h)| (s + 1, h));
    let hash = entry_hash(&prev, seq, now, actor, action, subject, detail);
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, now, actor, action, subject, detail, prev, hash],
    )
    .context("appending to the audit trail")?;
    Ok(seq)
}

/// The newest entries first, optionally only those about `subject`.
pub fn recent(conn: &Connection, subject: Option<&str>, limit: u32) -> anyhow::Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, actor, action, subject, detail, hash FROM audit_log
         WHERE ?1 IS NULL OR subject = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![subject, limit], |r| {
        Ok(Entry {
            seq: r.get(0)?,
            at: super::to_rfc3339(r.get(1)?).unwrap_or_default(),
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
            hash: r.get(6)?,
        })
    })?;
    rows.collect::<Result<_, _>>()
        .context("reading the audit trail")
}

/// What `callgate audit verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact { entries: i64, head: String },
    Broken { seq: i64, why: String },
}

/// Recomputes the whole chain.
pub fn verify(conn: &Connection) -> anyhow::Result<Verdict> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    // After a retention purge the chain starts at the anchor, not at the genesis.
    let anchor: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_anchor WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (mut expected_seq, mut prev) = match anchor {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let first_seq = expected_seq;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let at: i64 = r.get(1)?;
        let (actor, action, subject, detail): (String, String, String, String) =
            (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
        let (prev_hash, hash): (String, String) = (r.get(6)?, r.get(7)?);
        if seq != expected_seq {
            return Ok(Verdict::Broken {
                seq: expected_seq,
                why: format!("entry {expected_seq} is missing (next is {seq})"),
            });
        }
        if prev_hash != prev {
            return Ok(Verdict::Broken {
                seq,
                why: "does not chain to the entry before it".into(),
            });
        }
        if entry_hash(&prev, seq, at, &actor, &action, &subject, &detail) != hash {
            return Ok(Verdict::Broken {
                seq,
                why: "its content does not match its hash (edited)".into(),
            });
        }
        prev = hash;
        expected_seq += 1;
    }
    Ok(Verdict::Intact {
        entries: expected_seq - first_seq,
        head: prev,
    })
}

/// Drops the entries older than `cutoff`, keeping the chain verifiable from an anchor (the
/// last dropped entry's number and hash). Returns how many were dropped.
pub fn purge_before(conn: &Connection, cutoff: i64, now: i64) -> anyhow::Result<i64> {
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit_log WHERE at < ?1 ORDER BY seq DESC LIMIT 1",
            [cutoff],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, hash)) = last else {
        return Ok(0);
    };
    // The trigger that refuses deletes is lifted for this statement only, in this transaction.
    conn.execute_batch("DROP TRIGGER audit_log_no_delete;")?;
    let dropped = conn.execute("DELETE FROM audit_log WHERE seq <= ?1", [seq])?;
    conn.execute_batch(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
             BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
    )?;
    conn.execute(
        "INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2, at = ?3",
        params![seq, hash, now],
    )?;
    append(
        conn,
        "callgate",
        "audit.purge",
        "audit",
        &format!(
            "{dropped} entries up to #{seq} dropped by the retention purge; the chain continues from #{seq} ({hash})"
        ),
        now,
    )?;
    Ok(i64::try_from(dropped).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::apply(&mut conn).unwrap();
        conn
    }

    #[test]
    fn chain_verifies_and_tampering_shows() {
        let conn = db();
        for i in 0..5 {
            append(
                &conn,
                "admin",
                "script.save",
                "default",
                &format!("v{i}"),
                1000 + i,
            )
            .unwrap();
        }
        assert!(matches!(
            verify(&conn).unwrap(),
            Verdict::Intact { entries: 5, .. }
        ));
        // The triggers refuse edits through SQL ...
        assert!(
            conn.execute("UPDATE audit_log SET detail = 'x' WHERE seq = 3", [])
                .is_err()
        );
        assert!(
            conn.execute("DELETE FROM audit_log WHERE seq = 3", [])
                .is_err()
        );
        // ... and someone who drops them is still caught by the chain.
        conn.execute_batch(
            "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET detail = 'forged' WHERE seq = 3;",
        )
        .unwrap();
        assert_eq!(
            verify(&conn).unwrap(),
            Verdict::Broken {
                seq: 3,
                why: "its content does not match its hash (edited)".into()
            }
        );
    }

    #[test]
    fn a_deleted_entry_is_a_hole() {
        let conn = db();
        for i in 0..3 {
            append(&conn, "a", "x", "s", "d", i).unwrap();
        }
        conn.execute_batch(
            "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 2;",
        )
        .unwrap();
        assert!(matches!(
            verify(&conn).unwrap(),
            Verdict::Broken { seq: 2, .. }
        ));
    }
}
