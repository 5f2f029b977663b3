//! Walking the script: from a step to the next one that needs the caller (a question), or out
//! of the IVR (a hand-off, goodbye). Also the call's first webhook and its last step.

use anyhow::bail;

use super::{Flow, MAX_HOPS, step_in};
use crate::ivr::reply::{Reply, Utterance};
use crate::ivr::script::{Challenge, Step};
use crate::store::calls::{ENDED, HANDED_OFF};
use crate::verify::AssuranceLevel;

impl Flow<'_> {
    pub(super) fn start(&mut self) -> anyhow::Result<Reply> {
        self.log("call started");
        // No caller number in the journey, not even masked: the call row holds it, where the
        // retention purge and `account forget` erase it.
        let detail = format!("script {} v{}", self.script.name, self.script.version);
        self.note("call started", Some(detail));
        let start = self.script.start.clone();
        self.goto(&start, vec![])
    }

    /// Asks again for whatever the call is waiting for.
    pub(super) fn resume(&mut self) -> anyhow::Result<Reply> {
        match self.call.step.as_str() {
            ENDED => Ok(Reply::hang_up(vec![])),
            HANDED_OFF => match self.call.state.handoff_step.clone() {
                Some(step) => self.handoff_reply(&step, vec![]),
                None => Ok(Reply::hang_up(vec![])),
            },
            step => {
                let step = step.to_owned();
                if step_in(self.script, &step)?.input().is_some() {
                    self.ask(&step, vec![], vec![])
                } else {
                    self.goto(&step, vec![])
                }
            }
        }
    }

    /// Runs steps from `to` until one needs the caller (or the call leaves the IVR). `said`
    /// holds what earlier steps of this webhook say first.
    pub(super) fn goto(&mut self, to: &str, mut said: Vec<Utterance>) -> anyhow::Result<Reply> {
        let script = self.script;
        let mut current = to.to_owned();
        for _ in 0..MAX_HOPS {
            let step = step_in(self.script, &current)?;
            self.call.state.note(self.now, &current, step.kind(), None);
            match step {
                Step::Say { prompt, next } => {
                    said.push(self.prompt(prompt));
                    current = next.clone();
                }
                Step::Goodbye { prompt, reason } => {
                    said.push(self.prompt(prompt));
                    return Ok(self.end(said, reason));
                }
                Step::Department {
                    department,
                    next,
                    step_up,
                    on_insufficient,
                } => {
                    let requires = script
                        .departments
                        .get(department)
                        .map_or(AssuranceLevel::None, |d| d.requires);
                    self.call.department = Some(department.clone());
                    let level = self.call.level();
                    if level >= requires {
                        self.call.state.note(
                            self.now,
                            &current,
                            "department",
                            Some(department.clone()),
                        );
                        current = next.clone();
                    } else if let Some(up) = step_up
                        && !self.call.state.stepped_up.contains(&current)
                    {
                        self.call.state.stepped_up.push(current.clone());
                        self.call.state.return_to = Some(current.clone());
                        self.log(&format!(
                            "{department} requires {}: stepping up",
                            requires.as_str()
                        ));
                        self.call.state.note(
                            self.now,
                            &current,
                            "step-up",
                            Some(format!("{department} requires {}", requires.as_str())),
                        );
                        current = up.clone();
                    } else if let Some(to) = on_insufficient {
                        self.log(&format!(
                            "{department} requires {}: refused",
                            requires.as_str()
                        ));
                        current = to.clone();
                    } else {
                        // The checker demands on_insufficient here; never hand off below the
                        // department's level whatever the script says.
                        bail!("department {department} needs on_insufficient");
                    }
                }
                Step::Handoff { .. } => return self.handoff(&current, said),
                Step::Verify {
                    factor,
                    skip_at_level,
                    on_success,
                    on_unavailable,
                    ..
                } => {
                    if skip_at_level.is_some_and(|l| self.call.level() >= l) {
                        current = self.success_exit(on_success);
                        continue;
                    }
                    if !self.factor_available(factor)? {
                        self.call.state.return_to = None;
                        match on_unavailable {
                            Some(to) => current = to.clone(),
                            None => bail!("verify step without on_unavailable"),
                        }
                        continue;
                    }
                    self.call.enter(&current);
                    return self.ask(&current, said, vec![]);
                }
                Step::Menu { .. } | Step::Language { .. } => {
                    self.call.enter(&current);
                    return self.ask(&current, said, vec![]);
                }
            }
        }
        bail!("script {} loops without asking the caller", script.name)
    }

    /// Where a passed verify step goes: back to the department that asked for a step-up, or
    /// its `on_success`.
    pub(super) fn success_exit(&mut self, on_success: &str) -> String {
        self.call
            .state
            .return_to
            .take()
            .unwrap_or_else(|| on_success.to_owned())
    }

    /// Whether a verify step can ask its challenge of this call.
    fn factor_available(&self, factor: &Challenge) -> anyhow::Result<bool> {
        let Some(account) = &self.call.account_id else {
            return Ok(matches!(factor, Challenge::Code));
        };
        Ok(match factor {
            Challenge::Code => true,
            Challenge::Totp => self.db.account(account)?.is_some_and(|a| a.has_totp),
            Challenge::Knowledge { question, .. } => {
                self.db.has_knowledge_answer(account, question)?
            }
        })
    }

    /// The IVR is done with the call: `said`, then hang up.
    fn end(&mut self, said: Vec<Utterance>, reason: &str) -> Reply {
        let reason = match &self.call.state.handoff_result {
            Some(result) => format!(
                "handoff_{}",
                result.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            ),
            None => reason.to_owned(),
        };
        if self.call.step != HANDED_OFF {
            self.call.state.last_step = Some(self.call.step.clone());
        }
        self.call.enter(ENDED);
        self.call.end_reason.get_or_insert(reason.clone());
        self.call.ended_at.get_or_insert(self.now);
        self.log(&format!("call ended by the IVR: {reason}"));
        self.call
            .state
            .note(self.now, ENDED, "ended", Some(reason.clone()));
        Reply::hang_up(said)
    }
}
