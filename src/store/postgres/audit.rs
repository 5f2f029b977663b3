//! The audit trail on PostgreSQL. Several nodes append at once, yet the trail must stay ONE
//! chain numbered without holes: whoever appends (or moves the anchor) first takes
//! [`AUDIT_LOCK`], so reading the head and writing the next entry cannot interleave with
//! another transaction doing the same. Triggers (migrations V1) refuse UPDATE and TRUNCATE, and
//! DELETE of any entry the anchor does not already cover; the chain catches whoever gets
//! around them.

use anyhow::Context;
use postgres::fallible_iterator::FallibleIterator;

use super::PgDb;
use crate::store::audit::{AuditDb, ChainCheck, Entry, GENESIS, StoredEntry, Verdict, entry_hash};

/// `pg_advisory_xact_lock` key of the audit chain's head: "cgaudit" in ASCII, as a number.
/// Held from reading the last entry to the commit that makes the next one visible, so two
/// nodes never both chain to the same entry (a fork, or the same seq twice and one failing).
const AUDIT_LOCK: i64 = 0x0063_6761_7564_6974;

impl PgDb<'_> {
    /// Waits for the chain's head, until the end of this transaction. The transaction runs at
    /// READ COMMITTED (`PgBackend::run`), so each statement after this one sees every entry
    /// committed by the previous holder.
    fn lock_audit_head(&self) -> anyhow::Result<()> {
        self.tx()?
            .execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .context("waiting for the audit trail")?;
        Ok(())
    }
}

impl AuditDb for PgDb<'_> {
    fn append_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
        now: i64,
    ) -> anyhow::Result<i64> {
        self.lock_audit_head()?;
        // The newest entry, or the anchor when a purge dropped every entry: the chain goes
        // on from the last entry it ever had, never again from the genesis.
        let last = self.tx()?.query_opt(
            "SELECT seq, hash FROM (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS l
                 UNION ALL SELECT seq, hash FROM audit_anchor WHERE id = 1
                 ORDER BY seq DESC LIMIT 1",
            &[],
        )?;
        let (seq, prev) = last.map_or((1, GENESIS.to_owned()), |r| {
            (r.get::<_, i64>(0) + 1, r.get::<_, String>(1))
        });
        let hash = entry_hash(&prev, seq, now, actor, action, subject, detail);
        self.tx()?
            .execute(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&seq, &now, &actor, &action, &subject, &detail, &prev, &hash],
            )
            .context("appending to the audit trail")?;
        Ok(seq)
    }

    fn recent_audit(&self, subject: Option<&str>, limit: u32) -> anyhow::Result<Vec<Entry>> {
        let rows = self
            .tx()?
            .query(
                "SELECT seq, at, actor, action, subject, detail, hash FROM audit_log
                 WHERE $1::TEXT IS NULL OR subject = $1 ORDER BY seq DESC LIMIT $2",
                &[&subject, &i64::from(limit)],
            )
            .context("reading the audit trail")?;
        Ok(rows
            .iter()
            .map(|r| Entry {
                seq: r.get(0),
                at: crate::store::to_rfc3339(r.get(1)).unwrap_or_default(),
                actor: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                detail: r.get(5),
                hash: r.get(6),
            })
            .collect())
    }

    fn verify_audit(&self) -> anyhow::Result<Verdict> {
        // The anchor and the entries in ONE statement, so one snapshot: at READ COMMITTED two
        // statements could straddle a purge that moved the anchor and dropped entries, and an
        // intact chain would read as broken. The anchor row (kind 0) comes first; rows stream
        // rather than load, as the trail only grows.
        let mut tx = self.tx()?;
        let mut rows = tx
            .query_raw(
                "SELECT 0 AS kind, seq, at, '' AS actor, '' AS action, '' AS subject, '' AS detail,
                        '' AS prev_hash, hash
                 FROM audit_anchor WHERE id = 1
                 UNION ALL
                 SELECT 1, seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log
                 ORDER BY kind, seq",
                std::iter::empty::<i64>(),
            )
            .context("reading the audit trail")?;
        let mut chain: Option<ChainCheck> = None;
        while let Some(r) = rows.next().context("reading the audit trail")? {
            if r.get::<_, i32>(0) == 0 {
                // After a retention purge the chain starts at the anchor, not at the genesis.
                chain = Some(ChainCheck::new(Some((r.get(1), r.get(8)))));
                continue;
            }
            let entry = StoredEntry {
                seq: r.get(1),
                at: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                subject: r.get(5),
                detail: r.get(6),
                prev_hash: r.get(7),
                hash: r.get(8),
            };
            if let Some(broken) = chain
                .get_or_insert_with(|| ChainCheck::new(None))
                .next(entry)
            {
                return Ok(broken);
            }
        }
        Ok(chain.unwrap_or_else(|| ChainCheck::new(None)).finish())
    }

    fn purge_audit_before(&self, cutoff: i64, now: i64) -> anyhow::Result<i64> {
        // The head's lock first: the anchor must not move while another node reads the head
        // to append, and two purges must not interleave.
        self.lock_audit_head()?;
        let last = self.tx()?.query_opt(
            "SELECT seq, hash FROM audit_log WHERE at < $1 ORDER BY seq DESC LIMIT 1",
            &[&cutoff],
        )?;
        let Some((seq, hash)) = last.map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))) else {
            return Ok(0);
        };
        // The anchor moves before the delete: the trigger lets a delete through only for the
        // entries the anchor covers. (SQLite drops and recreates its trigger here instead;
        // on PostgreSQL that DDL would lock audit_log against every node's reads until commit.)
        self.tx()?.execute(
            "INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, at = EXCLUDED.at",
            &[&seq, &hash, &now],
        )?;
        let dropped = self
            .tx()?
            .execute("DELETE FROM audit_log WHERE seq <= $1", &[&seq])
            .context("dropping old audit entries")?;
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
        Ok(self
            .tx()?
            .query_one(
                "SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE action = $1",
                &[&action],
            )
            .context("reading the audit trail")?
            .get(0))
    }
}
