//! The audit trail in SQLite: triggers refuse UPDATE and DELETE on `audit_log`; the chain
//! (`crate::store::audit`) catches whoever drops them.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::audit::{AuditDb, ChainCheck, Entry, GENESIS, StoredEntry, Verdict, entry_hash};

/// The newest entry's number and hash, or the anchor's once a purge dropped them all.
const LAST_ENTRY: &str =
    "SELECT seq, hash FROM (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1)
     UNION ALL SELECT seq, hash FROM audit_anchor WHERE id = 1
     ORDER BY seq DESC LIMIT 1";

impl AuditDb for Connection {
    fn append_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
        now: i64,
    ) -> anyhow::Result<i64> {
        // The newest entry, or the anchor when a purge dropped every entry: the chain goes
        // on from the last entry it ever had, never again from the genesis.
        let last: Option<(i64, String)> = self
            .query_row(LAST_ENTRY, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev) = last.map_or((1, GENESIS.to_owned()), |(s, h)| (s + 1, h));
        let hash = entry_hash(&prev, seq, now, actor, action, subject, detail);
        self.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![seq, now, actor, action, subject, detail, prev, hash],
        )
        .context("appending to the audit trail")?;
        Ok(seq)
    }

    fn recent_audit(&self, subject: Option<&str>, limit: u32) -> anyhow::Result<Vec<Entry>> {
        let mut stmt = self.prepare_cached(
            "SELECT seq, at, actor, action, subject, detail, hash FROM audit_log
             WHERE ?1 IS NULL OR subject = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![subject, limit], |r| {
            Ok(Entry {
                seq: r.get(0)?,
                at: crate::store::to_rfc3339(r.get(1)?).unwrap_or_default(),
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

    fn verify_audit(&self) -> anyhow::Result<Verdict> {
        let mut stmt = self.prepare(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        // After a retention purge the chain starts at the anchor, not at the genesis.
        let anchor: Option<(i64, String)> = self
            .query_row("SELECT seq, hash FROM audit_anchor WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let mut chain = ChainCheck::new(anchor);
        while let Some(r) = rows.next()? {
            let entry = StoredEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
                prev_hash: r.get(6)?,
                hash: r.get(7)?,
            };
            if let Some(broken) = chain.next(entry) {
                return Ok(broken);
            }
        }
        Ok(chain.finish())
    }

    fn purge_audit_before(&self, cutoff: i64, now: i64) -> anyhow::Result<i64> {
        let last: Option<(i64, String)> = self
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
        self.execute_batch("DROP TRIGGER audit_log_no_delete;")?;
        let dropped = self.execute("DELETE FROM audit_log WHERE seq <= ?1", [seq])?;
        self.execute_batch(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
                 BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
        )?;
        self.execute(
            "INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2, at = ?3",
            params![seq, hash, now],
        )?;
        self.append_audit(
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

    fn last_audit_seq(&self, action: &str) -> anyhow::Result<i64> {
        self.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE action = ?1",
            [action],
            |r| r.get::<_, i64>(0),
        )
        .context("reading the audit trail")
    }
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
            conn.append_audit(
                "admin",
                "script.save",
                "default",
                &format!("v{i}"),
                1000 + i,
            )
            .unwrap();
        }
        assert!(matches!(
            conn.verify_audit().unwrap(),
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
            conn.verify_audit().unwrap(),
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
            conn.append_audit("a", "x", "s", "d", i).unwrap();
        }
        conn.execute_batch(
            "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 2;",
        )
        .unwrap();
        assert!(matches!(
            conn.verify_audit().unwrap(),
            Verdict::Broken { seq: 2, .. }
        ));
    }
}
