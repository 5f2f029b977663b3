//! Checking what a verify step asks: the account code or a one-time call code, the
//! authenticator's digits, a knowledge answer; counting failures, locking accounts and numbers,
//! and the audit entries and alert that go with a lock. (Kept in one file: it moves to
//! `crate::verify` once the store has its interface.)

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use anyhow::Context;

use super::Flow;
use crate::domain::{AccountCode, Keypad};
use crate::store::accounts::Account;
use crate::store::throttle::FailureKind;
use crate::verify::{Factor, totp};

/// Raises the global guessing alert at most once a minute in the log, counting every time the
/// threshold is crossed.
#[derive(Debug, Default)]
pub struct AlertGate {
    last_logged_ms: AtomicI64,
    pub raised: AtomicU64,
}

impl AlertGate {
    fn raise(&self, failures_last_minute: i64, now: i64) {
        self.raised.fetch_add(1, Ordering::Relaxed);
        let last = self.last_logged_ms.load(Ordering::Relaxed);
        if now - last >= 60_000
            && self
                .last_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                target: "callgate::alert",
                failures_last_minute,
                "ALERT: verification failures across the system above the alert threshold (possible code guessing)"
            );
        }
    }
}

/// What the keys of a code step named: an account by its code, or a one-time call code.
enum CodeMatch {
    Account(String),
    CallCode { row: i64, account: String },
}

/// How a verify step's check came out.
pub(super) enum Attempt {
    Passed,
    Failed { number_locked: bool },
}

impl Flow<'_> {
    /// The calling number as the audit trail names it: a keyed pseudonym, never the number
    /// (all withheld callers share one throttle key, which is no one's number).
    fn number_pseudonym(&self) -> String {
        match self.caller.number() {
            Some(n) => self.keys.number_pseudonym(n.as_str()),
            None => "withheld".to_owned(),
        }
    }

    /// The keypad may not verify anything from a number that is locked out.
    fn number_locked(&self) -> anyhow::Result<bool> {
        self.db.number_locked(self.caller.throttle_key(), self.now)
    }

    /// The account a code names, read once (for its lock, its phone and its test flag), if it
    /// may answer on this line: a test account's code where test accounts do not answer is an
    /// unknown code, refused and counted like any other.
    fn find_code(&self, keys: &Keypad) -> anyhow::Result<Option<(CodeMatch, Account)>> {
        if !keys.is_all_digits() {
            return Ok(None);
        }
        let by_account_code = if AccountCode::parse(keys.expose()).is_ok() {
            self.db.find_account_by_code(&self.keys, keys.expose())?
        } else {
            None
        };
        let found = match by_account_code {
            Some(id) => Some(CodeMatch::Account(id)),
            None => self
                .db
                .find_live_call_code(&self.keys, keys.expose(), self.now)?
                .map(|(row, account)| CodeMatch::CallCode { row, account }),
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let id = match &found {
            CodeMatch::Account(id) | CodeMatch::CallCode { account: id, .. } => id,
        };
        Ok(self
            .db
            .account(id)?
            .filter(|a| !a.test || self.ctx.test_accounts_answer)
            .map(|a| (found, a)))
    }

    /// The account code or a one-time call code. Caller ID counts as a factor when it is the
    /// account's registered phone and STIR/SHAKEN did not fail.
    pub(super) fn check_code(&mut self, keys: &Keypad) -> anyhow::Result<Attempt> {
        let was_locked = self.number_locked()?;
        let found = if was_locked {
            None
        } else {
            self.find_code(keys)?
        };
        let locked = found
            .as_ref()
            .is_some_and(|(_, a)| a.locked_until.is_some_and(|t| t > self.now));
        let accepted = match (&found, locked) {
            (Some((CodeMatch::CallCode { row, .. }, _)), false) => {
                self.db
                    .consume_call_code(*row, &self.call.call_sid, self.now)?
            }
            (Some((CodeMatch::Account(_), _)), false) => true,
            _ => false,
        };
        let (Some((found, registered)), true) = (found, accepted) else {
            // The failure counts against the accounts registered to the caller ID.
            let on_phone = match self.caller.number() {
                Some(n) => self.db.account_ids_on_phone(n.as_str())?,
                None => vec![],
            };
            self.ctx.metrics.verification("code", false);
            let number_locked = self.fail(FailureKind::AccountCode, &on_phone)? || was_locked;
            self.log(if locked {
                "code refused: account locked"
            } else {
                "code refused"
            });
            return Ok(Attempt::Failed { number_locked });
        };

        self.ctx.metrics.verification("code", true);
        if self
            .call
            .account_id
            .as_ref()
            .is_some_and(|earlier| *earlier != registered.id)
        {
            // Factors prove something about the account they were proven for: the earlier
            // account's caller ID match, authenticator or answers say nothing about this one.
            // Start afresh, as if this code were the call's first.
            self.call.factors = Default::default();
            self.call.caller_id_match = false;
            self.call.verified_at = None;
            // Step-ups were offered to the earlier account; this one has not had its chance.
            self.call.state.stepped_up.clear();
            self.note("account switched", None);
            self.log("another account identified: earlier factors dropped");
        }
        let caller_matches = self
            .caller
            .number()
            .is_some_and(|n| n.as_str() == registered.phone);
        self.call.account_id = Some(registered.id);
        self.call.caller_id_match = caller_matches;
        if caller_matches && !self.call.stir_discredits_caller_id() {
            self.call.factors.add(Factor::CallerId);
        }
        self.call.factors.add(match found {
            CodeMatch::CallCode { .. } => Factor::CallCode,
            CodeMatch::Account(_) => Factor::AccountCode,
        });
        self.log("account identified");
        Ok(Attempt::Passed)
    }

    pub(super) fn check_totp(&mut self, keys: &Keypad) -> anyhow::Result<Attempt> {
        let account = self
            .call
            .account_id
            .clone()
            .context("TOTP step without an account")?;
        let number_locked = self.number_locked()?;
        let blocked = number_locked || self.db.account_locked(&account, self.now)?;
        let unix_secs = u64::try_from(self.now / 1000).unwrap_or_default();
        let step = match (blocked, self.db.totp_secret(&self.keys, &account)?) {
            (false, Some(secret)) => totp::matching_step(&secret, keys.expose(), unix_secs),
            _ => None,
        };
        let fresh = match step {
            Some(step) => {
                let advanced = self.db.advance_totp_step(&account, step)?;
                if !advanced {
                    tracing::warn!(target: "callgate::security", account = %account, "TOTP replay refused");
                }
                advanced
            }
            None => false,
        };
        self.ctx.metrics.verification("totp", fresh);
        if fresh {
            self.call.factors.add(Factor::Totp);
            return Ok(Attempt::Passed);
        }
        let kind = if step.is_some() {
            FailureKind::TotpReplay
        } else {
            FailureKind::Totp
        };
        let locked_now = self.fail(kind, std::slice::from_ref(&account))?;
        self.log("TOTP refused");
        Ok(Attempt::Failed {
            number_locked: number_locked || locked_now,
        })
    }

    pub(super) fn check_knowledge(
        &mut self,
        question: &str,
        keys: &Keypad,
    ) -> anyhow::Result<Attempt> {
        let account = self
            .call
            .account_id
            .clone()
            .context("knowledge step without an account")?;
        let number_locked = self.number_locked()?;
        let blocked = number_locked || self.db.account_locked(&account, self.now)?;
        let right = !blocked
            && keys.is_all_digits()
            && self
                .db
                .check_knowledge_answer(&self.keys, &account, question, keys.expose())?;
        self.ctx.metrics.verification("knowledge", right);
        if right {
            self.call.factors.add(Factor::Knowledge);
            return Ok(Attempt::Passed);
        }
        let locked_now = self.fail(FailureKind::Knowledge, std::slice::from_ref(&account))?;
        self.log("knowledge answer refused");
        Ok(Attempt::Failed {
            number_locked: number_locked || locked_now,
        })
    }

    /// After a factor passed: the first time the call reaches `medium` it counts as verified.
    pub(super) fn on_factor_passed(&mut self) -> anyhow::Result<()> {
        let level = self.call.level();
        if level.is_verified() && self.call.verified_at.is_none() {
            self.call.verified_at = Some(self.now);
            self.ctx
                .metrics
                .verified_calls
                .get_or_create(&crate::metrics::Level {
                    level: level.as_str(),
                })
                .inc();
            self.log("caller verified");
        }
        if level.is_verified()
            && let Some(account) = &self.call.account_id
        {
            self.db.reset_account_failures(account)?;
        }
        Ok(())
    }

    /// Counts a failure; true when it locked the calling number.
    fn fail(&mut self, kind: FailureKind, accounts: &[String]) -> anyhow::Result<bool> {
        self.call.failed_attempts += 1;
        let outcome = self.db.record_failure(
            &self.limits,
            self.caller.throttle_key(),
            accounts,
            &self.call.call_sid,
            kind,
            self.now,
        )?;
        let lockouts = &self.ctx.metrics.lockouts;
        // Lockouts go to the tamper-evident trail too (the security report reads them there);
        // accounts by id and numbers by pseudonym, since the trail can never be erased.
        for account in &outcome.accounts_locked {
            lockouts
                .get_or_create(&crate::metrics::Kind { kind: "account" })
                .inc();
            tracing::warn!(target: "callgate::security", account = %account, "account keypad verification locked after repeated failures");
            let step = self.call.step.clone();
            self.call
                .state
                .note(self.now, &step, "account locked", None);
            self.db.append_audit(
                "callgate",
                "security.account_locked",
                &format!("account:{account}"),
                &format!(
                    "{} failures in a row ({})",
                    self.limits.account_max_failures,
                    kind.as_str()
                ),
                self.now,
            )?;
        }
        if outcome.number_locked {
            lockouts
                .get_or_create(&crate::metrics::Kind { kind: "number" })
                .inc();
            tracing::warn!(target: "callgate::security", caller = %self.caller.masked(), "calling number locked out after repeated failures");
            self.note("number locked", None);
            self.db.append_audit(
                "callgate",
                "security.number_locked",
                &format!("number:{}", self.number_pseudonym()),
                &format!(
                    "{} failures within the window",
                    self.limits.number_max_failures
                ),
                self.now,
            )?;
        }
        if let Some(n) = outcome.global_alert {
            self.ctx.metrics.guessing_alerts.inc();
            self.ctx.alerts.raise(n, self.now);
        }
        Ok(outcome.number_locked)
    }
}
