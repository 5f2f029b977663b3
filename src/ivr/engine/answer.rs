//! The caller's answer to the question of the step the call waits at: keys, words (a speech
//! menu) or silence. A menu key or a language moves on; a verify step's keys are checked
//! (`proofs`); a wrong answer is asked again until the step's attempts are used up.

use super::input::CallInput;
use super::proofs::Attempt;
use super::{Flow, step_in};
use crate::ivr::reply::{Reply, Utterance};
use crate::ivr::script::{Challenge, Step};

impl Flow<'_> {
    /// The answer `input` to the question of the step the call is at.
    pub(super) fn answer(&mut self, input: &CallInput) -> anyhow::Result<Reply> {
        let name = self.call.step.clone();
        let Some(step) = self.script.step(&name) else {
            return self.resume();
        };
        if step.input().is_none() {
            return self.resume();
        }
        if let (
            None,
            Some(speech),
            Step::Menu {
                options,
                speech: Some(menu),
                ..
            },
        ) = (&input.digits, &input.speech, step)
        {
            self.call.step_attempts += 1;
            return self.route_speech(&name, options, *menu, speech);
        }
        let Some(keys) = input.digits.as_ref() else {
            self.note("silence", None);
            return self.silence(&name);
        };
        // A menu key or language choice is not a secret; a code or an answer never is written.
        let detail = matches!(step, Step::Menu { .. } | Step::Language { .. })
            .then(|| keys.expose().chars().take(4).collect());
        self.note("keys", detail);
        self.call.step_attempts += 1;
        match step {
            Step::Menu { options, .. } => match options.get(keys.expose()) {
                Some(to) => {
                    self.log("menu choice");
                    self.goto(&to.clone(), vec![])
                }
                None => self.retry(&name),
            },
            Step::Language { options, next, .. } => match options.get(keys.expose()) {
                Some(language) => {
                    self.call.language = language.clone();
                    self.log("language chosen");
                    self.goto(&next.clone(), vec![])
                }
                None => self.retry(&name),
            },
            Step::Verify {
                factor,
                on_success,
                on_lockout,
                ..
            } => {
                let attempt = match factor {
                    Challenge::Code => self.check_code(keys)?,
                    Challenge::Totp => self.check_totp(keys)?,
                    Challenge::Knowledge { question, .. } => {
                        self.check_knowledge(question, keys)?
                    }
                };
                let verdict = match attempt {
                    Attempt::Passed => "passed",
                    Attempt::Failed { .. } => "failed",
                };
                self.note(verdict, Some(factor.as_str().to_owned()));
                match attempt {
                    Attempt::Passed => {
                        self.on_factor_passed()?;
                        let to = self.success_exit(on_success);
                        self.goto(&to, vec![])
                    }
                    Attempt::Failed {
                        number_locked: true,
                    } if on_lockout.is_some() => {
                        self.call.state.return_to = None;
                        let to = on_lockout.clone().unwrap_or_default();
                        self.goto(&to, vec![])
                    }
                    Attempt::Failed { .. } => self.retry(&name),
                }
            }
            _ => self.resume(),
        }
    }

    /// No answer: the step's no-input prompt and the question again, or its `on_no_input` when
    /// the caller stayed silent too often.
    fn silence(&mut self, name: &str) -> anyhow::Result<Reply> {
        let step = step_in(self.script, name)?;
        let (input, on_no_input) = match step {
            Step::Menu {
                input, on_no_input, ..
            }
            | Step::Language {
                input, on_no_input, ..
            }
            | Step::Verify {
                input, on_no_input, ..
            } => (input, on_no_input.clone()),
            _ => return self.resume(),
        };
        self.call.step_silences += 1;
        if self.call.step_silences >= input.max_silences {
            self.call.state.return_to = None;
            return self.goto(&on_no_input, vec![]);
        }
        self.log("caller silent, prompting again");
        let before: Vec<Utterance> = input
            .no_input_prompt
            .iter()
            .map(|p| self.prompt(p))
            .collect();
        self.ask(name, vec![], before)
    }

    /// Another try at the step, or its `on_failure` when the attempts are used up.
    pub(super) fn retry(&mut self, name: &str) -> anyhow::Result<Reply> {
        let step = step_in(self.script, name)?;
        let (input, on_failure) = match step {
            Step::Menu {
                input, on_failure, ..
            }
            | Step::Language {
                input, on_failure, ..
            }
            | Step::Verify {
                input, on_failure, ..
            } => (input, on_failure.clone()),
            _ => return self.resume(),
        };
        if self.call.step_attempts >= input.max_attempts {
            self.call.state.return_to = None;
            return self.goto(&on_failure, vec![]);
        }
        let before: Vec<Utterance> = input.retry_prompt.iter().map(|p| self.prompt(p)).collect();
        self.ask(name, vec![], before)
    }
}
