//! Personal data in SQLite: export, forget and the retention purge.

use anyhow::{Context, bail};
use rand::RngCore;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::store::AuditDb;
use crate::store::privacy::{
    Forgotten, PrivacyDb, Purged, Retention, cutoff, number_forms, scrub_strings,
};
use crate::store::to_rfc3339;

fn changes(conn: &Connection, sql: &str, cutoff: Option<i64>) -> anyhow::Result<i64> {
    match cutoff {
        Some(c) => Ok(i64::try_from(conn.execute(sql, [c])?).unwrap_or(i64::MAX)),
        None => Ok(0),
    }
}

impl PrivacyDb for Connection {
    fn claim_purge(&self) -> anyhow::Result<bool> {
        // One writer: no other purge can be running in this database.
        Ok(true)
    }

    fn purge_expired(&self, r: &Retention, now: i64) -> anyhow::Result<Purged> {
        let journeys = cutoff(now, r.journeys_days);
        let notes = cutoff(now, r.notes_days);
        let details = cutoff(now, r.call_details_days);
        let events = cutoff(now, r.events_days);
        let purged = Purged {
            journeys: changes(
                self,
                "UPDATE calls SET state = json_remove(state, '$.journey', '$.speech.text')
             WHERE started_at < ?1 AND (json_type(state, '$.journey') IS NOT NULL
                                        OR json_type(state, '$.speech.text') IS NOT NULL)",
                journeys,
            )?,
            notes: changes(
                self,
                "UPDATE call_outcomes SET note = '' WHERE at < ?1 AND note != ''",
                notes,
            )?,
            call_details: changes(
                self,
                "UPDATE calls SET caller = 'erased', called = NULL, account_id = NULL
             WHERE started_at < ?1 AND (caller != 'erased' OR account_id IS NOT NULL)",
                details,
            )?,
            failures: changes(self, "DELETE FROM failures WHERE at < ?1", details)?,
            events: changes(self, "DELETE FROM call_events WHERE at < ?1", events)?,
            crm_bodies: changes(
                self,
                "DELETE FROM crm_outbox WHERE created_at < ?1
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
        // Every list is ordered to the key (ties by id), so the export reads the same on
        // every backend.
        let account = self
        .query_row(
            "SELECT id, name, phone, attributes, code_hash IS NOT NULL, totp_secret IS NOT NULL,
                    test, created_at, locked_until, phone_changed_at, failed_count
             FROM accounts WHERE id = ?1",
            [id],
            |r| {
                let attributes: String = r.get(3)?;
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "name": r.get::<_, String>(1)?,
                    "phone": r.get::<_, String>(2)?,
                    "attributes": serde_json::from_str::<Value>(&attributes).unwrap_or(Value::Null),
                    "has_account_code": r.get::<_, bool>(4)?,
                    "has_authenticator": r.get::<_, bool>(5)?,
                    "test_account": r.get::<_, bool>(6)?,
                    "created_at": to_rfc3339(r.get(7)?),
                    "locked_until": r.get::<_, Option<i64>>(8)?.and_then(to_rfc3339),
                    "phone_changed_at": r.get::<_, Option<i64>>(9)?.and_then(to_rfc3339),
                    "failed_entries_in_a_row": r.get::<_, i64>(10)?,
                }))
            },
        )
        .optional_context(id)?;
        let knowledge: Vec<String> = collect(
            self,
            "SELECT question FROM account_knowledge WHERE account_id = ?1 ORDER BY question",
            id,
            |r| r.get(0),
        )?;
        let calls = collect(
            self,
            "SELECT c.call_sid, c.started_at, c.caller, c.called, c.script, c.script_version_no,
                c.level, c.factors, c.category, c.end_reason, c.handed_off_at, c.ended_at,
                c.state, o.resolved, o.category, o.note, o.recurring, o.agent, o.at
         FROM calls c LEFT JOIN call_outcomes o ON o.call_sid = c.call_sid
         WHERE c.account_id = ?1 ORDER BY c.started_at, c.call_sid",
            id,
            |r| {
                let state: Value =
                    serde_json::from_str(&r.get::<_, String>(12)?).unwrap_or(Value::Null);
                let outcome = match r.get::<_, Option<bool>>(13)? {
                    Some(resolved) => json!({
                        "resolved": resolved,
                        "category": r.get::<_, Option<String>>(14)?,
                        "note": r.get::<_, Option<String>>(15)?,
                        "recurring_problem": r.get::<_, Option<bool>>(16)?,
                        "agent": r.get::<_, Option<String>>(17)?,
                        "at": r.get::<_, Option<i64>>(18)?.and_then(to_rfc3339),
                    }),
                    None => Value::Null,
                };
                Ok(json!({
                    "call_sid": r.get::<_, String>(0)?,
                    "started_at": to_rfc3339(r.get(1)?),
                    "caller": r.get::<_, String>(2)?,
                    "called": r.get::<_, Option<String>>(3)?,
                    "script": r.get::<_, String>(4)?,
                    "script_version": r.get::<_, Option<i64>>(5)?,
                    "level": r.get::<_, String>(6)?,
                    "factors": r.get::<_, String>(7)?,
                    "department": r.get::<_, Option<String>>(8)?,
                    "end_reason": r.get::<_, Option<String>>(9)?,
                    "handed_off_at": r.get::<_, Option<i64>>(10)?.and_then(to_rfc3339),
                    "ended_at": r.get::<_, Option<i64>>(11)?.and_then(to_rfc3339),
                    "journey": state.get("journey").cloned().unwrap_or(Value::Null),
                    "speech": state.get("speech").cloned().unwrap_or(Value::Null),
                    "outcome": outcome,
                }))
            },
        )?;
        let failures = collect(
            self,
            "SELECT at, kind, caller FROM failures WHERE account_id = ?1 ORDER BY at, id",
            id,
            |r| {
                Ok(json!({
                    "at": to_rfc3339(r.get(0)?),
                    "kind": r.get::<_, String>(1)?,
                    "caller": r.get::<_, String>(2)?,
                }))
            },
        )?;
        let codes = collect(
            self,
            "SELECT created_at, expires_at, used_at, used_by_call FROM call_codes
         WHERE account_id = ?1 ORDER BY created_at, id",
            id,
            |r| {
                Ok(json!({
                    "issued_at": to_rfc3339(r.get(0)?),
                    "expires_at": to_rfc3339(r.get(1)?),
                    "used_at": r.get::<_, Option<i64>>(2)?.and_then(to_rfc3339),
                    "used_by_call": r.get::<_, Option<String>>(3)?,
                }))
            },
        )?;
        let audit = collect(
            self,
            "SELECT seq, at, actor, action, detail FROM audit_log WHERE subject = ?1 ORDER BY seq",
            &format!("account:{id}"),
            |r| {
                Ok(json!({
                    "seq": r.get::<_, i64>(0)?,
                    "at": to_rfc3339(r.get(1)?),
                    "actor": r.get::<_, String>(2)?,
                    "action": r.get::<_, String>(3)?,
                    "detail": r.get::<_, String>(4)?,
                }))
            },
        )?;
        let mut account = account;
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
        let phone: String = self
            .query_row("SELECT phone FROM accounts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional_context(id)?;
        let mut raw = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let pseudonym = format!("forgotten-{}", hex::encode(raw));
        self.execute(
            "INSERT INTO accounts (id, name, phone, attributes, created_at, test)
         SELECT ?2, 'forgotten', '', attributes, created_at, test FROM accounts WHERE id = ?1",
            params![id, pseudonym],
        )?;
        // The calls about the person: the account's, and those from its registered number.
        let about: Vec<(String, String, String)> = {
            let mut stmt = self.prepare(
                "SELECT call_sid, caller, state FROM calls
             WHERE account_id = ?1 OR (?2 != '' AND caller = ?2)",
            )?;
            let rows = stmt.query_map(params![id, phone], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<Result<_, _>>().context("reading calls")?
        };
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
            self.execute(
                "UPDATE calls SET caller = 'erased', called = NULL, state = ?2 WHERE call_sid = ?1",
                params![call_sid, state.to_string()],
            )?;
            self.execute(
                "UPDATE call_outcomes SET note = '' WHERE call_sid = ?1",
                [&call_sid],
            )?;
            self.execute("DELETE FROM crm_outbox WHERE call_sid = ?1", [&call_sid])?;
            self.execute(
                "UPDATE failures SET caller = 'erased' WHERE call_sid = ?1",
                [&call_sid],
            )?;
        }
        let calls = self.execute(
            "UPDATE calls SET account_id = ?2 WHERE account_id = ?1",
            params![id, pseudonym],
        )?;
        self.execute(
            "UPDATE failures SET account_id = ?2 WHERE account_id = ?1",
            params![id, pseudonym],
        )?;
        if !phone.is_empty() {
            self.execute(
                "UPDATE failures SET caller = 'erased' WHERE caller = ?1",
                [&phone],
            )?;
            self.execute("DELETE FROM number_locks WHERE caller = ?1", [&phone])?;
        }
        // Codes and answers go with the row (ON DELETE CASCADE).
        self.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
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

fn collect<T>(
    conn: &Connection,
    sql: &str,
    id: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([id], map)?;
    rows.collect::<Result<_, _>>().context("reading")
}

trait OptionalContext<T> {
    fn optional_context(self, id: &str) -> anyhow::Result<T>;
}

impl<T> OptionalContext<T> for rusqlite::Result<T> {
    fn optional_context(self, id: &str) -> anyhow::Result<T> {
        match self {
            Ok(v) => Ok(v),
            Err(rusqlite::Error::QueryReturnedNoRows) => bail!("no account with id {id}"),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditDb;
    use crate::store::audit::Verdict;
    use crate::store::privacy::DAY_MS;
    use serde_json::json;

    #[test]
    fn forget_scrubs_the_numbers_older_journeys_hold_and_the_calls_from_the_number() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::apply(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO accounts (id, name, phone, created_at) VALUES ('A-1', 'Ola', '+48601234567', 0)",
            [],
        )
        .unwrap();
        // A journey as callgate wrote it before journeys stopped naming the caller, with what
        // a speech menu heard; one call identified from another number, one unidentified from
        // the registered number.
        let state = |from: &str| {
            json!({
                "journey": [{ "at": 1, "step": "greeting", "event": "call started",
                              "detail": format!("script default v1 from {}", crate::domain::mask_number(from)) }],
                "speech": { "text": "faktura Ola", "asr_confidence": 0.9, "department": null,
                            "probability": 0.5, "routed": false },
            })
            .to_string()
        };
        for (sid, caller, account) in [
            ("CA1", "+48601234567", Some("A-1")),
            ("CA2", "+48700111222", Some("A-1")),
            ("CA3", "+48601234567", None),
            ("CA4", "+48700999888", None),
        ] {
            conn.execute(
                "INSERT INTO calls (call_sid, caller, script, script_version, language, step,
                                    account_id, started_at, updated_at, state)
                 VALUES (?1, ?2, 'default', 'x', 'pl', 'ended', ?3, 1, 1, ?4)",
                params![sid, caller, account, state(caller)],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO failures (at, caller, account_id, call_sid, kind) VALUES (1, ?1, ?2, ?3, 'account_code')",
                params![caller, account, sid],
            )
            .unwrap();
        }
        let done = conn.forget_account("A-1", "admin", 2).unwrap();
        assert_eq!(done.calls_kept_anonymously, 2);
        let dump: Vec<(String, String, String)> = conn
            .prepare("SELECT call_sid, caller, state FROM calls ORDER BY call_sid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (sid, caller, state) in &dump[..3] {
            assert_eq!(caller, "erased", "{sid}");
            for gone in [
                "601234567",
                "+48******567",
                "700111222",
                "+48******222",
                "Ola",
            ] {
                assert!(!state.contains(gone), "{gone} in {sid}: {state}");
            }
            assert!(state.contains("script default v1 from erased"), "{state}");
        }
        // Someone else's call keeps its number.
        assert_eq!(dump[3].1, "+48700999888");
        assert!(dump[3].2.contains("+48******888"));
        let callers: Vec<String> = conn
            .prepare("SELECT caller FROM failures ORDER BY call_sid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(callers, ["erased", "erased", "erased", "+48700999888"]);
    }

    #[test]
    fn purging_old_audit_entries_keeps_the_chain_verifiable() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::apply(&mut conn).unwrap();
        let now = 2_000 * DAY_MS;
        for day in [10, 20, 1_990, 1_995] {
            conn.append_audit("admin", "script.save", "script:x", "v", day * DAY_MS)
                .unwrap();
        }
        let r = Retention {
            audit_days: 30,
            ..Retention::default()
        };
        let purged = crate::store::privacy::purge_retention(&conn, &r, now)
            .unwrap()
            .expect("one writer: never skipped");
        assert_eq!(purged.audit_entries, 2);
        let left: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'script.save'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 2);
        assert!(matches!(
            conn.verify_audit().unwrap(),
            Verdict::Intact { .. }
        ));
        // Deletes are refused again once the purge is over.
        assert!(conn.execute("DELETE FROM audit_log", []).is_err());
        // A second purge with nothing old changes nothing and still verifies.
        assert_eq!(
            crate::store::privacy::purge_retention(&conn, &r, now)
                .unwrap()
                .expect("one writer: never skipped")
                .audit_entries,
            0
        );
        assert!(matches!(
            conn.verify_audit().unwrap(),
            Verdict::Intact { .. }
        ));
    }
}
