//! A verify step's keys, checked by `crate::verify` and taken into the call: the factors it
//! credited, the journey notes and log lines of what happened, and the first time the call
//! counts as verified. Which keys prove what, and what a failure costs, is not decided here.

use super::Flow;
use crate::domain::Keypad;
use crate::verify::checks::{credit_identification, identified_account};
use crate::verify::{Check, CodeCheck, Factor, Refusal, Verifier, Watch};

/// How a verify step's check came out.
pub(super) enum Attempt {
    Passed,
    Failed { number_locked: bool },
}

impl Flow<'_> {
    fn verifier(&self) -> Verifier<'_> {
        Verifier {
            db: self.db,
            keys: &self.keys,
            limits: &self.limits,
            watch: Watch {
                metrics: &self.ctx.metrics,
                alerts: &self.ctx.alerts,
            },
            caller: self.caller,
            call_sid: &self.call.call_sid,
            test_accounts_answer: self.ctx.test_accounts_answer,
            now: self.now,
        }
    }

    /// The account code or a one-time call code.
    pub(super) fn check_code(&mut self, keys: &Keypad) -> anyhow::Result<Attempt> {
        let checked = self.verifier().check_code(keys)?;
        let (account, factor) = match checked {
            CodeCheck::Identified { account, factor } => (account, factor),
            CodeCheck::Refused(refusal) => {
                let locked = refusal.account_locked;
                let attempt = self.refused(&refusal);
                self.log(if locked {
                    "code refused: account locked"
                } else {
                    "code refused"
                });
                return Ok(attempt);
            }
        };
        if credit_identification(self.call, &account, factor, self.caller) {
            // Step-ups were offered to the earlier account; this one has not had its chance.
            self.call.state.stepped_up.clear();
            self.note("account switched", None);
            self.log("another account identified: earlier factors dropped");
        }
        self.log("account identified");
        Ok(Attempt::Passed)
    }

    pub(super) fn check_totp(&mut self, keys: &Keypad) -> anyhow::Result<Attempt> {
        let account = identified_account(self.call)?.to_owned();
        let checked = self.verifier().check_totp(&account, keys)?;
        self.credit(checked, Factor::Totp, "TOTP refused")
    }

    pub(super) fn check_knowledge(
        &mut self,
        question: &str,
        keys: &Keypad,
    ) -> anyhow::Result<Attempt> {
        let account = identified_account(self.call)?.to_owned();
        let checked = self.verifier().check_knowledge(&account, question, keys)?;
        self.credit(checked, Factor::Knowledge, "knowledge answer refused")
    }

    fn credit(&mut self, checked: Check, factor: Factor, refused: &str) -> anyhow::Result<Attempt> {
        match checked {
            Check::Passed => {
                self.call.factors.add(factor);
                Ok(Attempt::Passed)
            }
            Check::Refused(refusal) => {
                let attempt = self.refused(&refusal);
                self.log(refused);
                Ok(attempt)
            }
        }
    }

    /// A refusal in the call: its failure count, and the locks it caused in the journey.
    fn refused(&mut self, refusal: &Refusal) -> Attempt {
        self.call.failed_attempts += 1;
        for _ in &refusal.counted.accounts_locked {
            self.note("account locked", None);
        }
        if refusal.counted.number_locked {
            self.note("number locked", None);
        }
        Attempt::Failed {
            number_locked: refusal.number_locked,
        }
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
            self.verifier().forgive(account)?;
        }
        Ok(())
    }
}
