//! Checking what a caller typed at a verify step: an account code or a one-time call code, the
//! authenticator's digits, a knowledge answer. Each check refuses alike whatever was wrong (an
//! unknown code, a wrong one, a right one while the account or the number is locked), so nothing
//! tells a guesser what was right; every refusal is counted (`guessing`).
//!
//! The IVR engine asks; this module answers and credits the factors to the call. What the
//! caller hears next, and the call's journey, are the engine's.

use anyhow::Context;

use super::guessing::{self, FailureOutcome, Watch};
use super::{Factor, Keyring, Limits, totp};
use crate::domain::{AccountCode, CallerId, Keypad};
use crate::store::Db;
use crate::store::accounts::Account;
use crate::store::calls::Call;
use crate::store::throttle::FailureKind;

/// One webhook's verifier: who is calling, when, with which keys and limits.
pub struct Verifier<'a> {
    pub db: &'a dyn Db,
    pub keys: &'a Keyring,
    pub limits: &'a Limits,
    pub watch: Watch<'a>,
    pub caller: &'a CallerId,
    pub call_sid: &'a str,
    /// Whether test accounts may identify a caller (the simulator and a demo server only).
    pub test_accounts_answer: bool,
    pub now: i64,
}

/// How a code step came out.
#[derive(Debug)]
pub enum CodeCheck {
    /// The code named this account; `factor` says which kind of code it was.
    Identified {
        account: Account,
        factor: Factor,
    },
    Refused(Refusal),
}

/// How a check of an identified account's factor came out.
#[derive(Debug)]
pub enum Check {
    Passed,
    Refused(Refusal),
}

/// A refused attempt, counted.
#[derive(Debug)]
pub struct Refusal {
    /// The calling number is locked out now (it was, or this failure locked it).
    pub number_locked: bool,
    /// The code named an account whose keypad verification is locked.
    pub account_locked: bool,
    pub counted: FailureOutcome,
}

/// What the keys of a code step named: an account by its code, or a one-time call code.
enum CodeMatch {
    Account(String),
    CallCode { row: i64, account: String },
}

impl Verifier<'_> {
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
            self.db.find_account_by_code(self.keys, keys.expose())?
        } else {
            None
        };
        let found = match by_account_code {
            Some(id) => Some(CodeMatch::Account(id)),
            None => self
                .db
                .find_live_call_code(self.keys, keys.expose(), self.now)?
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
            .filter(|a| !a.test || self.test_accounts_answer)
            .map(|a| (found, a)))
    }

    /// The account code or a one-time call code (consumed by this call when accepted).
    pub fn check_code(&self, keys: &Keypad) -> anyhow::Result<CodeCheck> {
        let was_locked = self.number_locked()?;
        let found = if was_locked {
            None
        } else {
            self.find_code(keys)?
        };
        let account_locked = found
            .as_ref()
            .is_some_and(|(_, a)| a.locked_until.is_some_and(|t| t > self.now));
        let accepted = match (&found, account_locked) {
            (Some((CodeMatch::CallCode { row, .. }, _)), false) => {
                self.db.consume_call_code(*row, self.call_sid, self.now)?
            }
            (Some((CodeMatch::Account(_), _)), false) => true,
            _ => false,
        };
        self.watch.verification("code", accepted);
        let (Some((found, account)), true) = (found, accepted) else {
            // The failure counts against the accounts registered to the caller ID.
            let on_phone = match self.caller.number() {
                Some(n) => self.db.account_ids_on_phone(n.as_str())?,
                None => vec![],
            };
            let counted = self.count(FailureKind::AccountCode, &on_phone)?;
            return Ok(CodeCheck::Refused(Refusal {
                number_locked: was_locked || counted.number_locked,
                account_locked,
                counted,
            }));
        };
        let factor = match found {
            CodeMatch::CallCode { .. } => Factor::CallCode,
            CodeMatch::Account(_) => Factor::AccountCode,
        };
        Ok(CodeCheck::Identified { account, factor })
    }

    /// The authenticator's digits for `account`; a right code used a second time is a replay,
    /// refused and counted like a wrong one.
    pub fn check_totp(&self, account: &str, keys: &Keypad) -> anyhow::Result<Check> {
        let number_locked = self.number_locked()?;
        let blocked = number_locked || self.db.account_locked(account, self.now)?;
        let unix_secs = u64::try_from(self.now / 1000).unwrap_or_default();
        let step = match (blocked, self.db.totp_secret(self.keys, account)?) {
            (false, Some(secret)) => totp::matching_step(&secret, keys.expose(), unix_secs),
            _ => None,
        };
        let fresh = match step {
            Some(step) => {
                let advanced = self.db.advance_totp_step(account, step)?;
                if !advanced {
                    tracing::warn!(target: "callgate::security", account = %account, "TOTP replay refused");
                }
                advanced
            }
            None => false,
        };
        self.watch.verification("totp", fresh);
        if fresh {
            return Ok(Check::Passed);
        }
        let kind = if step.is_some() {
            FailureKind::TotpReplay
        } else {
            FailureKind::Totp
        };
        self.refuse(kind, account, number_locked)
    }

    /// The answer to knowledge question `question` for `account`.
    pub fn check_knowledge(
        &self,
        account: &str,
        question: &str,
        keys: &Keypad,
    ) -> anyhow::Result<Check> {
        let number_locked = self.number_locked()?;
        let blocked = number_locked || self.db.account_locked(account, self.now)?;
        let right = !blocked
            && keys.is_all_digits()
            && self
                .db
                .check_knowledge_answer(self.keys, account, question, keys.expose())?;
        self.watch.verification("knowledge", right);
        if right {
            return Ok(Check::Passed);
        }
        self.refuse(FailureKind::Knowledge, account, number_locked)
    }

    /// A completed verification forgives the account's earlier failures.
    pub fn forgive(&self, account: &str) -> anyhow::Result<()> {
        self.db.reset_account_failures(account)
    }

    fn refuse(
        &self,
        kind: FailureKind,
        account: &str,
        number_was_locked: bool,
    ) -> anyhow::Result<Check> {
        let counted = self.count(kind, std::slice::from_ref(&account.to_owned()))?;
        Ok(Check::Refused(Refusal {
            number_locked: number_was_locked || counted.number_locked,
            account_locked: false,
            counted,
        }))
    }

    fn count(&self, kind: FailureKind, accounts: &[String]) -> anyhow::Result<FailureOutcome> {
        guessing::count_failure(
            self.db,
            self.limits,
            self.keys,
            &self.watch,
            self.caller,
            accounts,
            self.call_sid,
            kind,
            self.now,
        )
    }
}

/// Credits an identified account to the call: its code's factor, and the caller ID when the
/// number is the account's registered phone and STIR/SHAKEN did not discredit it. Factors prove
/// something about the account they were proven for: when the call had identified another
/// account, that account's caller-ID match, authenticator and answers say nothing about this
/// one, so the call starts afresh as if this code were its first. True when it switched.
pub fn credit_identification(
    call: &mut Call,
    account: &Account,
    factor: Factor,
    caller: &CallerId,
) -> bool {
    let switched = call
        .account_id
        .as_ref()
        .is_some_and(|earlier| *earlier != account.id);
    if switched {
        call.factors = Default::default();
        call.caller_id_match = false;
        call.verified_at = None;
    }
    let caller_matches = caller.number().is_some_and(|n| n.as_str() == account.phone);
    call.account_id = Some(account.id.clone());
    call.caller_id_match = caller_matches;
    if caller_matches && !call.stir_discredits_caller_id() {
        call.factors.add(Factor::CallerId);
    }
    call.factors.add(factor);
    switched
}

/// The account a call identified, for the steps that check its factors.
pub fn identified_account(call: &Call) -> anyhow::Result<&str> {
    call.account_id
        .as_deref()
        .context("a factor step before the call identified an account")
}
