//! Personal data on PostgreSQL: export, forget and the retention purge, as SQLite does them
//! (`crate::store::sqlite::privacy`).
//!
//! Call states are JSON text written by serde_json. Journeys are removed from them in Rust
//! rather than with `jsonb` operators: PostgreSQL's JSON functions refuse a document holding
//! the `\u0000` escape serde_json writes for a NUL character, and one such state would make
//! every purge fail. Rows are selected in SQL as SQLite's `json_type` selects them, on the
//! state with that escape neutralised (`reports::STATE_JSON`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use postgres::{Client, Row};
use rand::RngCore;
use serde_json::{Value, json};

use super::PgDb;
use super::reports::STATE_JSON;
use crate::store::AuditDb;
use crate::store::privacy::{
    Forgotten, PrivacyDb, Purged, Retention, cutoff, number_forms, scrub_strings,
};
use crate::store::to_rfc3339;

/// Call states rewritten per statement by the journey purge: bounds what it holds in memory.
const JOURNEY_BATCH: i64 = 500;

impl PgDb<'_> {
    /// Runs `sql` with the cutoff as `$1`, if there is one; the rows it changed.
    fn changes(&self, sql: &str, cutoff: Option<i64>) -> anyhow::Result<i64> {
        match cutoff {
            Some(c) => Ok(i64::try_from(self.tx()?.execute(sql, &[&c])?).unwrap_or(i64::MAX)),
            None => Ok(0),
        }
    }

    /// SQLite's `json_remove(state, '$.journey', '$.speech.text')` on the calls started
    /// before `cutoff` whose state holds either; how many changed.
    fn purge_journeys(&self, cutoff: i64) -> anyhow::Result<i64> {
        let mut changed = 0i64;
        let mut after = String::new();
        loop {
            // In call_sid order from where the last batch ended (the key's index); FOR
            // UPDATE, so a node writing one of these states meanwhile waits, and neither
            // write is lost.
            let rows = self.tx()?.query(
                &format!(
                    "SELECT call_sid, state FROM calls
                     WHERE started_at < $1 AND call_sid > $2
                       AND (({STATE_JSON} -> 'journey') IS NOT NULL
                            OR ({STATE_JSON} #> '{{speech,text}}') IS NOT NULL)
                     ORDER BY call_sid LIMIT $3 FOR UPDATE"
                ),
                &[&cutoff, &after, &JOURNEY_BATCH],
            )?;
            let Some(last) = rows.last() else {
                return Ok(changed);
            };
            after = last.get(0);
            let mut sids = Vec::with_capacity(rows.len());
            let mut states = Vec::with_capacity(rows.len());
            for r in &rows {
                let sid: String = r.get(0);
                let mut state: Value = serde_json::from_str(r.get(1))
                    .with_context(|| format!("reading the state of call {sid}"))?;
                if let Some(map) = state.as_object_mut() {
                    map.remove("journey");
                }
                if let Some(speech) = state.get_mut("speech").and_then(Value::as_object_mut) {
                    speech.remove("text");
                }
                sids.push(sid);
                states.push(state.to_string());
            }
            let n = self.tx()?.execute(
                "UPDATE calls SET state = u.state
                 FROM unnest($1::TEXT[], $2::TEXT[]) AS u(call_sid, state)
                 WHERE calls.call_sid = u.call_sid",
                &[&sids, &states],
            )?;
            changed = changed.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
            if i64::try_from(rows.len()).unwrap_or(i64::MAX) < JOURNEY_BATCH {
                return Ok(changed);
            }
        }
    }

    /// The rows of `sql` run with `id` as `$1`, each made into JSON by `map`.
    fn collect(
        &self,
        sql: &str,
        id: &str,
        map: impl FnMut(&Row) -> Value,
    ) -> anyhow::Result<Vec<Value>> {
        let rows = self.tx()?.query(sql, &[&id]).context("reading")?;
        Ok(rows.iter().map(map).collect())
    }
}

/// `pg_try_advisory_xact_lock` key of the retention purge: "cg purge" folded to a number.
const PURGE_LOCK: i64 = 0x6367_5f70_7572_6765;

impl PrivacyDb for PgDb<'_> {
    fn claim_purge(&self) -> anyhow::Result<bool> {
        // Not waiting: a second node that finds the lock taken skips, since the first is
        // doing the same work. Released when the purge's transaction ends.
        let row = self
            .tx()?
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PURGE_LOCK])
            .context("claiming the retention purge")?;
        Ok(row.try_get(0)?)
    }

    fn purge_expired(&self, r: &Retention, now: i64) -> anyhow::Result<Purged> {
        let journeys = cutoff(now, r.journeys_days);
        let notes = cutoff(now, r.notes_days);
        let details = cutoff(now, r.call_details_days);
        let events = cutoff(now, r.events_days);
        let purged = Purged {
            journeys: match journeys {
                Some(c) => self.purge_journeys(c)?,
                None => 0,
            },
            notes: self.changes(
                "UPDATE call_outcomes SET note = '' WHERE at < $1 AND note <> ''",
                notes,
            )?,
            call_details: self.changes(
                "UPDATE calls SET caller = 'erased', called = NULL, account_id = NULL
                 WHERE started_at < $1 AND (caller <> 'erased' OR account_id IS NOT NULL)",
                details,
            )?,
            failures: self.changes("DELETE FROM failures WHERE at < $1", details)?,
            events: self.changes("DELETE FROM call_events WHERE at < $1", events)?,
            crm_bodies: self.changes(
                "DELETE FROM crm_outbox WHERE created_at < $1
                 AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)",
                events,
            )?,
            audit_entries: match cutoff(now, r.audit_days) {
                Some(c) => self.purge_audit_before(c, now)?,
                None => 0,
            },
        };
        Ok(purged)
    }

    fn export_account(&self, id: &str) -> anyhow::Result<Value> {
        let Some(r) = self.tx()?.query_opt(
            "SELECT id, name, phone, attributes, code_hash IS NOT NULL, totp_secret IS NOT NULL,
                    test, created_at, locked_until, phone_changed_at, failed_count
             FROM accounts WHERE id = $1",
            &[&id],
        )?
        else {
            bail!("no account with id {id}");
        };
        let mut account = json!({
            "id": r.get::<_, String>(0),
            "name": r.get::<_, String>(1),
            "phone": r.get::<_, String>(2),
            "attributes": serde_json::from_str::<Value>(r.get(3)).unwrap_or(Value::Null),
            "has_account_code": r.get::<_, bool>(4),
            "has_authenticator": r.get::<_, bool>(5),
            "test_account": r.get::<_, bool>(6),
            "created_at": to_rfc3339(r.get(7)),
            "locked_until": r.get::<_, Option<i64>>(8).and_then(to_rfc3339),
            "phone_changed_at": r.get::<_, Option<i64>>(9).and_then(to_rfc3339),
            "failed_entries_in_a_row": r.get::<_, i64>(10),
        });
        let knowledge = self.collect(
            r#"SELECT question FROM account_knowledge WHERE account_id = $1
               ORDER BY question COLLATE "C""#,
            id,
            |r| json!(r.get::<_, String>(0)),
        )?;
        let calls = self.collect(
            "SELECT c.call_sid, c.started_at, c.caller, c.called, c.script, c.script_version_no,
                    c.level, c.factors, c.category, c.end_reason, c.handed_off_at, c.ended_at,
                    c.state, o.resolved, o.category, o.note, o.recurring, o.agent, o.at
             FROM calls c LEFT JOIN call_outcomes o ON o.call_sid = c.call_sid
             WHERE c.account_id = $1 ORDER BY c.started_at, c.call_sid COLLATE \"C\"",
            id,
            |r| {
                let state: Value = serde_json::from_str(r.get(12)).unwrap_or(Value::Null);
                let outcome = match r.get::<_, Option<bool>>(13) {
                    Some(resolved) => json!({
                        "resolved": resolved,
                        "category": r.get::<_, Option<String>>(14),
                        "note": r.get::<_, Option<String>>(15),
                        "recurring_problem": r.get::<_, Option<bool>>(16),
                        "agent": r.get::<_, Option<String>>(17),
                        "at": r.get::<_, Option<i64>>(18).and_then(to_rfc3339),
                    }),
                    None => Value::Null,
                };
                json!({
                    "call_sid": r.get::<_, String>(0),
                    "started_at": to_rfc3339(r.get(1)),
                    "caller": r.get::<_, String>(2),
                    "called": r.get::<_, Option<String>>(3),
                    "script": r.get::<_, String>(4),
                    "script_version": r.get::<_, Option<i64>>(5),
                    "level": r.get::<_, String>(6),
                    "factors": r.get::<_, String>(7),
                    "department": r.get::<_, Option<String>>(8),
                    "end_reason": r.get::<_, Option<String>>(9),
                    "handed_off_at": r.get::<_, Option<i64>>(10).and_then(to_rfc3339),
                    "ended_at": r.get::<_, Option<i64>>(11).and_then(to_rfc3339),
                    "journey": state.get("journey").cloned().unwrap_or(Value::Null),
                    "speech": state.get("speech").cloned().unwrap_or(Value::Null),
                    "outcome": outcome,
                })
            },
        )?;
        let failures = self.collect(
            "SELECT at, kind, caller FROM failures WHERE account_id = $1 ORDER BY at, id",
            id,
            |r| {
                json!({
                    "at": to_rfc3339(r.get(0)),
                    "kind": r.get::<_, String>(1),
                    "caller": r.get::<_, String>(2),
                })
            },
        )?;
        let codes = self.collect(
            "SELECT created_at, expires_at, used_at, used_by_call FROM call_codes
             WHERE account_id = $1 ORDER BY created_at, id",
            id,
            |r| {
                json!({
                    "issued_at": to_rfc3339(r.get(0)),
                    "expires_at": to_rfc3339(r.get(1)),
                    "used_at": r.get::<_, Option<i64>>(2).and_then(to_rfc3339),
                    "used_by_call": r.get::<_, Option<String>>(3),
                })
            },
        )?;
        let audit = self.collect(
            "SELECT seq, at, actor, action, detail FROM audit_log WHERE subject = $1 ORDER BY seq",
            &format!("account:{id}"),
            |r| {
                json!({
                    "seq": r.get::<_, i64>(0),
                    "at": to_rfc3339(r.get(1)),
                    "actor": r.get::<_, String>(2),
                    "action": r.get::<_, String>(3),
                    "detail": r.get::<_, String>(4),
                })
            },
        )?;
        account["knowledge_questions"] = json!(knowledge);
        Ok(json!({
            "account": account,
            "calls": calls,
            "failed_entries": failures,
            "one_time_call_codes": codes,
            "audit": audit,
        }))
    }

    fn forget_account(&self, id: &str, actor: &str, now: i64) -> anyhow::Result<Forgotten> {
        // FOR UPDATE: the account cannot change (a new phone) or go while it is erased.
        let Some(phone) = self
            .tx()?
            .query_opt(
                "SELECT phone FROM accounts WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            .map(|r| r.get::<_, String>(0))
        else {
            bail!("no account with id {id}");
        };
        let mut raw = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let pseudonym = format!("forgotten-{}", hex::encode(raw));
        self.tx()?.execute(
            "INSERT INTO accounts (id, name, phone, attributes, created_at, test)
             SELECT $2, 'forgotten', '', attributes, created_at, test FROM accounts WHERE id = $1",
            &[&id, &pseudonym],
        )?;
        // The calls about the person: the account's, and those from its registered number.
        // FOR UPDATE, so a node writing one of these calls meanwhile waits for the scrub
        // instead of having its write lost or losing the scrub.
        let about: Vec<(String, String, String)> = self
            .tx()?
            .query(
                "SELECT call_sid, caller, state FROM calls
                 WHERE account_id = $1 OR ($2 <> '' AND caller = $2) FOR UPDATE",
                &[&id, &phone],
            )
            .context("reading calls")?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let account_forms = number_forms(&phone);
        for (call_sid, caller, state) in about {
            let mut forms = number_forms(&caller);
            forms.extend(account_forms.iter().cloned());
            forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
            forms.dedup();
            // A state that does not parse (never written so by callgate) goes whole.
            let mut state: Value = serde_json::from_str(&state).unwrap_or_else(|_| json!({}));
            if let Some(speech) = state.get_mut("speech").and_then(Value::as_object_mut) {
                speech.remove("text");
            }
            scrub_strings(&mut state, &forms);
            let mut tx = self.tx()?;
            tx.execute(
                "UPDATE calls SET caller = 'erased', called = NULL, state = $2 WHERE call_sid = $1",
                &[&call_sid, &state.to_string()],
            )?;
            tx.execute(
                "UPDATE call_outcomes SET note = '' WHERE call_sid = $1",
                &[&call_sid],
            )?;
            tx.execute("DELETE FROM crm_outbox WHERE call_sid = $1", &[&call_sid])?;
            tx.execute(
                "UPDATE failures SET caller = 'erased' WHERE call_sid = $1",
                &[&call_sid],
            )?;
        }
        let mut tx = self.tx()?;
        let calls = tx.execute(
            "UPDATE calls SET account_id = $2 WHERE account_id = $1",
            &[&id, &pseudonym],
        )?;
        tx.execute(
            "UPDATE failures SET account_id = $2 WHERE account_id = $1",
            &[&id, &pseudonym],
        )?;
        if !phone.is_empty() {
            tx.execute(
                "UPDATE failures SET caller = 'erased' WHERE caller = $1",
                &[&phone],
            )?;
            tx.execute("DELETE FROM number_locks WHERE caller = $1", &[&phone])?;
        }
        // Codes and answers go with the row (ON DELETE CASCADE).
        tx.execute("DELETE FROM accounts WHERE id = $1", &[&id])?;
        drop(tx);
        let calls = i64::try_from(calls).unwrap_or(i64::MAX);
        // The trail says that an account was forgotten, not which: naming it would undo the erasure.
        self.append_audit(
            actor,
            "account.forget",
            "account:forgotten",
            &format!("personal data erased; {calls} call(s) kept anonymously"),
            now,
        )?;
        Ok(Forgotten {
            pseudonym,
            calls_kept_anonymously: calls,
        })
    }
}

/// Every table `forget_account` changes: where old copies of erased data can stay behind.
const ERASED_TABLES: [&str; 8] = [
    "accounts",
    "account_knowledge",
    "call_codes",
    "calls",
    "call_outcomes",
    "crm_outbox",
    "failures",
    "number_locks",
];

/// How long the purge waits for transactions older than it to end, and how long for a
/// table's lock.
const WAIT_FOR_OLDER: Duration = Duration::from_secs(10);

/// `Backend::purge_erased_copies` on PostgreSQL, which has no secure_delete: an UPDATE or
/// DELETE leaves the old row version in the table's pages, and plain VACUUM only marks its
/// space free (the bytes stay until a new row happens to land there; the contract test
/// `privacy::no_copy_of_a_forgotten_name_stays_in_the_files` shows it). VACUUM FULL writes
/// every table the erasure touched anew, indexes and TOAST included, and drops the old files;
/// ANALYZE replaces the column statistics, which sample values such as names and numbers.
///
/// VACUUM FULL still copies a row version that a transaction running anywhere on the server
/// might yet see, so it first waits for the transactions begun before it to end. It locks
/// each table while it rewrites it: the lock_timeout gives up (an error the CLI reports)
/// rather than queue every node's calls behind a long transaction. What stays out of reach:
/// the write-ahead log and its archives, replicas and backups (they age out under the
/// database's own retention, as SQLite's backups do), and old statistics rows in the system
/// catalog until the server's own vacuum reclaims them.
pub(super) fn purge_erased_copies(client: &mut Client) -> anyhow::Result<()> {
    // VACUUM skips, with only a warning, a table the role does not own.
    let foreign: Option<String> = client
        .query_one(
            "SELECT string_agg(relname, ', ') FROM pg_class
             WHERE oid = ANY($1::TEXT[]::REGCLASS[]) AND NOT pg_has_role(relowner, 'USAGE')",
            &[&ERASED_TABLES.as_slice()],
        )?
        .get(0);
    if let Some(tables) = foreign {
        bail!(
            "{tables} belong to another database role: run VACUUM FULL on them as their owner to clear the erased data's old copies"
        );
    }
    let older = wait_for_older_transactions(client)?;
    client.batch_execute(&format!(
        "SET lock_timeout = '{}s'",
        WAIT_FOR_OLDER.as_secs()
    ))?;
    let vacuumed = client
        .batch_execute(&format!(
            "VACUUM (FULL, ANALYZE) {}",
            ERASED_TABLES.join(", ")
        ))
        .context("rewriting the tables that held the erased data (VACUUM FULL)");
    // The connection goes back to the pool: its other users wait for locks as before.
    let reset = client.batch_execute("RESET lock_timeout");
    vacuumed?;
    reset?;
    if older > 0 {
        bail!(
            "{older} transaction(s) open since before the erasure outlasted the wait: old copies of the erased rows they could still see stay until these tables are next rewritten (VACUUM FULL)"
        );
    }
    Ok(())
}

/// Waits (at most [`WAIT_FOR_OLDER`]) until no client transaction that began before this call
/// is still open, on any database of the server (their snapshots decide what VACUUM may
/// drop); how many still are. Sessions of other roles are visible only to a role allowed to
/// read all statistics, so this is a best effort there.
fn wait_for_older_transactions(client: &mut Client) -> anyhow::Result<i64> {
    // As text, so that no time type crosses the driver: the server compares its own times.
    let started: String = client
        .query_one("SELECT clock_timestamp()::TEXT", &[])?
        .get(0);
    let deadline = Instant::now() + WAIT_FOR_OLDER;
    loop {
        let older: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                   AND xact_start < $1::TEXT::TIMESTAMPTZ",
                &[&started],
            )?
            .get(0);
        if older == 0 || Instant::now() >= deadline {
            return Ok(older);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
