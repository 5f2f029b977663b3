//! The guessing limits applied (RFC 4226 §7.3, OWASP's account-lockout advice): one more failed
//! verification is counted per account, per calling number and across the system, and this
//! module decides what the counts mean: when an account or a number is locked, the audit entries
//! and log lines a lock leaves, and when the system-wide alert is raised. The store only keeps the
//! counts (`crate::store::ThrottleDb`); the thresholds are `Limits` (settings, with a script's
//! `[lockout]` on top).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::CallerId;
use crate::metrics::{Kind, Metrics};
use crate::store::Db;
use crate::store::throttle::FailureKind;
use crate::verify::{Keyring, Limits};

/// What one more failure led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Accounts whose keypad verification this failure locked.
    pub accounts_locked: Vec<String>,
    /// The failure started a lock of the calling number (not set while it stays locked).
    pub number_locked: bool,
    /// Failures across the system in the last minute, when above the alert threshold.
    pub global_alert: Option<i64>,
}

/// How often at most the global guessing alert is raised in the log.
const ALERT_QUIET_MS: i64 = 60_000;

/// Raises the global guessing alert at most once a minute in the log for the whole desk,
/// counting every time the threshold is crossed. Several nodes on one database see the same
/// failures cross the threshold: the turn to raise it is taken in the database
/// (`ThrottleDb::claim_alert`), so one of them raises it, once. This process's memory of its
/// own last alert only spares the database the question while it is fresh.
#[derive(Debug, Default)]
pub struct AlertGate {
    last_logged_ms: AtomicI64,
    pub raised: AtomicU64,
}

impl AlertGate {
    fn raise(&self, db: &dyn Db, failures_last_minute: i64, now: i64) -> anyhow::Result<()> {
        self.raised.fetch_add(1, Ordering::Relaxed);
        let last = self.last_logged_ms.load(Ordering::Relaxed);
        if now - last < ALERT_QUIET_MS || !db.claim_alert(now, ALERT_QUIET_MS)? {
            return Ok(());
        }
        self.last_logged_ms.store(now, Ordering::Relaxed);
        tracing::warn!(
            target: "callgate::alert",
            failures_last_minute,
            "ALERT: verification failures across the system above the alert threshold (possible code guessing)"
        );
        Ok(())
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Counts one failed verification from `caller` against `accounts` (the accounts the call is
/// about: those on the caller ID at the code step, the identified one after it) and applies
/// `limits`. Locks go to the tamper-evident audit trail (the security report reads them there),
/// accounts by id and numbers by keyed pseudonym, since the trail can never be erased.
#[allow(clippy::too_many_arguments)]
pub fn count_failure(
    db: &dyn Db,
    limits: &Limits,
    keys: &Keyring,
    watch: &Watch<'_>,
    caller: &CallerId,
    accounts: &[String],
    call_sid: &str,
    kind: FailureKind,
    now: i64,
) -> anyhow::Result<FailureOutcome> {
    let mut outcome = FailureOutcome::default();
    let caller_key = caller.throttle_key();
    db.log_failure(
        caller_key,
        accounts.first().map(String::as_str),
        call_sid,
        kind,
        now,
    )?;

    for account in accounts {
        let count = db.bump_account_failures(account)?;
        if count.is_some_and(|c| c >= limits.account_max_failures) {
            db.lock_account(account, now + ms(limits.account_lock), now)?;
            watch.lockout("account");
            tracing::warn!(target: "callgate::security", account = %account, "account keypad verification locked after repeated failures");
            db.append_audit(
                "callgate",
                "security.account_locked",
                &format!("account:{account}"),
                &format!(
                    "{} failures in a row ({})",
                    limits.account_max_failures,
                    kind.as_str()
                ),
                now,
            )?;
            outcome.accounts_locked.push(account.clone());
        }
    }

    let from_number = db.failures_from_number_since(caller_key, now - ms(limits.number_window))?;
    if from_number >= limits.number_max_failures {
        // Reported once, when the lock starts: failures while locked only extend it. Of several
        // nodes locking it at once, the store tells one that it started it.
        if db.lock_number(caller_key, now + ms(limits.number_lock), now)? {
            outcome.number_locked = true;
            watch.lockout("number");
            tracing::warn!(target: "callgate::security", caller = %caller.masked(), "calling number locked out after repeated failures");
            let pseudonym = match caller.number() {
                Some(n) => keys.number_pseudonym(n.as_str()),
                // All withheld callers share one throttle key, which is no one's number.
                None => "withheld".to_owned(),
            };
            db.append_audit(
                "callgate",
                "security.number_locked",
                &format!("number:{pseudonym}"),
                &format!("{} failures within the window", limits.number_max_failures),
                now,
            )?;
        }
    }

    let last_minute = db.count_failure_last_minute(now)?;
    if last_minute > i64::from(limits.global_alert_per_minute) {
        outcome.global_alert = Some(last_minute);
        watch.alert(db, last_minute, now)?;
    }
    Ok(outcome)
}

/// Where verification reports what it saw: the metrics and the alert gate of the server (the
/// simulator has its own).
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    pub metrics: &'a Metrics,
    pub alerts: &'a AlertGate,
}

impl Watch<'_> {
    pub fn verification(&self, factor: &'static str, accepted: bool) {
        self.metrics.verification(factor, accepted);
    }

    fn lockout(&self, kind: &'static str) {
        self.metrics.lockouts.get_or_create(&Kind { kind }).inc();
    }

    fn alert(&self, db: &dyn Db, failures_last_minute: i64, now: i64) -> anyhow::Result<()> {
        self.metrics.guessing_alerts.inc();
        self.alerts.raise(db, failures_last_minute, now)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{AccountId, AccountName, PhoneNumber, Region};
    use crate::metrics::Metrics;
    use crate::store::Store;
    use crate::store::accounts::NewAccount;

    const PHONE: &str = "+48601234567";

    struct Desk {
        _dir: tempfile::TempDir,
        store: Store,
        keys: Keyring,
        metrics: Metrics,
        alerts: AlertGate,
    }

    fn desk() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keyring::load_or_create(dir.path()).unwrap();
        let phone = PhoneNumber::parse(PHONE, Region::default()).unwrap();
        let (id, name) = (
            AccountId::parse("acme").unwrap(),
            AccountName::parse("Acme").unwrap(),
        );
        let attributes = BTreeMap::new();
        store
            .write_sync(|db| {
                let new = NewAccount {
                    id: &id,
                    name: &name,
                    phone: &phone,
                    code: None,
                    totp_secret: None,
                    attributes: &attributes,
                    knowledge: &[],
                    test: false,
                };
                Ok(db.add_account(&keys, &new, 0)?)
            })
            .unwrap();
        Desk {
            _dir: dir,
            store,
            keys,
            metrics: Metrics::default(),
            alerts: AlertGate::default(),
        }
    }

    impl Desk {
        fn fail(
            &self,
            limits: &Limits,
            caller: &str,
            accounts: &[&str],
            now: i64,
        ) -> FailureOutcome {
            let caller = CallerId::from_twilio(Some(caller), Region::default());
            let accounts: Vec<String> = accounts.iter().map(|a| (*a).to_owned()).collect();
            let watch = Watch {
                metrics: &self.metrics,
                alerts: &self.alerts,
            };
            self.store
                .write_sync(|db| {
                    count_failure(
                        db,
                        limits,
                        &self.keys,
                        &watch,
                        &caller,
                        &accounts,
                        "CA0123456789abcdef0123456789abcdef",
                        FailureKind::AccountCode,
                        now,
                    )
                })
                .unwrap()
        }

        fn audit_actions(&self) -> Vec<(String, String)> {
            self.store
                .read_sync(|db| db.recent_audit(None, 100))
                .unwrap()
                .into_iter()
                .map(|e| (e.action, e.subject))
                .collect()
        }
    }

    #[test]
    fn the_fifth_failure_in_a_row_locks_the_account_once_and_audits_it() {
        let desk = desk();
        let limits = Limits::default();
        for i in 0..4 {
            let out = desk.fail(&limits, PHONE, &["acme"], 1_000 + i);
            assert!(
                out.accounts_locked.is_empty(),
                "locked after {} failures",
                i + 1
            );
        }
        let out = desk.fail(&limits, PHONE, &["acme"], 2_000);
        assert_eq!(out.accounts_locked, vec!["acme".to_owned()]);
        assert!(!out.number_locked);
        let locked = desk
            .store
            .read_sync(|db| db.account_locked("acme", 2_001))
            .unwrap();
        assert!(locked);
        let unlocked_later = desk
            .store
            .read_sync(|db| db.account_locked("acme", 2_000 + 15 * 60_000 + 1))
            .unwrap();
        assert!(!unlocked_later, "the lock lasts account_lock, not longer");
        let audit = desk.audit_actions();
        assert_eq!(
            audit
                .iter()
                .filter(|(a, s)| a == "security.account_locked" && s == "account:acme")
                .count(),
            1,
            "{audit:?}"
        );
    }

    #[test]
    fn a_script_s_stricter_limit_is_the_one_applied() {
        let desk = desk();
        let limits = Limits {
            account_max_failures: 2,
            ..Limits::default()
        };
        assert!(
            desk.fail(&limits, PHONE, &["acme"], 1)
                .accounts_locked
                .is_empty()
        );
        assert_eq!(
            desk.fail(&limits, PHONE, &["acme"], 2)
                .accounts_locked
                .len(),
            1
        );
    }

    #[test]
    fn a_number_is_locked_at_its_limit_reported_once_under_a_pseudonym() {
        let desk = desk();
        let limits = Limits::default();
        let caller = "+48609999999";
        for i in 0..9 {
            assert!(!desk.fail(&limits, caller, &[], i).number_locked);
        }
        assert!(desk.fail(&limits, caller, &[], 10).number_locked);
        // Failures while it is locked extend the lock but do not report it again.
        assert!(!desk.fail(&limits, caller, &[], 11).number_locked);
        let audit = desk.audit_actions();
        let number_entries: Vec<_> = audit
            .iter()
            .filter(|(a, _)| a == "security.number_locked")
            .collect();
        assert_eq!(number_entries.len(), 1, "{audit:?}");
        assert!(!number_entries[0].1.contains("609"), "{number_entries:?}");
        assert!(number_entries[0].1.starts_with("number:n-"));
        // Another number is not locked by this one's failures.
        let other_locked = desk
            .store
            .read_sync(|db| db.number_locked("+48601234567", 12))
            .unwrap();
        assert!(!other_locked);
    }

    #[test]
    fn failures_across_the_system_raise_the_alert_above_its_threshold() {
        let desk = desk();
        let limits = Limits {
            global_alert_per_minute: 3,
            number_max_failures: 1_000,
            ..Limits::default()
        };
        let callers = [
            "+48600000001",
            "+48600000002",
            "+48600000003",
            "+48600000004",
        ];
        let outcomes: Vec<_> = callers
            .iter()
            .enumerate()
            .map(|(i, c)| desk.fail(&limits, c, &[], 60_000 * 100 + i as i64))
            .collect();
        assert!(outcomes[..3].iter().all(|o| o.global_alert.is_none()));
        assert_eq!(outcomes[3].global_alert, Some(4));
        assert_eq!(desk.alerts.raised.load(Ordering::Relaxed), 1);
        assert_eq!(desk.metrics.guessing_alerts.get(), 1);
    }
}
