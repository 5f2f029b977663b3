//! The question a step that waits for the caller (menu, language, verify) puts to them.

use anyhow::Context;

use super::{Flow, step_in, utterance};
use crate::ivr::reply::{Ask, Listen, Next, Reply, Utterance};
use crate::ivr::script::{Challenge, Step};
use crate::verify::totp;

impl Flow<'_> {
    /// The question of the input step `name`: `said` first (not interruptible: greetings,
    /// notices), then `before` (a re-prompt) and the step's prompt, which the caller may cut
    /// short with keys.
    pub(super) fn ask(
        &self,
        name: &str,
        said: Vec<Utterance>,
        before: Vec<Utterance>,
    ) -> anyhow::Result<Reply> {
        let step = step_in(self.script, name)?;
        let input = step
            .input()
            .context("asking at a step that takes no input")?;
        let mut prompts = before;
        let digits = match step {
            Step::Verify { factor, prompt, .. } => {
                prompts.push(self.prompt(prompt));
                match factor {
                    Challenge::Code => None,
                    Challenge::Totp => Some(totp::DIGITS),
                    Challenge::Knowledge { digits, .. } => Some(*digits),
                }
            }
            Step::Menu { prompt, .. } => {
                prompts.push(self.prompt(prompt));
                Some(1)
            }
            Step::Language {
                prompt, options, ..
            } => {
                // Each language offers itself in its own words and voice.
                for language in options.values() {
                    prompts.push(utterance(self.ctx, self.script, language, prompt));
                }
                Some(1)
            }
            _ => None,
        };
        let speech = match step {
            Step::Menu {
                options,
                speech: Some(_),
                ..
            } => Some(Listen {
                language: self.call.language.clone(),
                hints: Some(self.script.speech_hints(options, &self.call.language))
                    .filter(|h| !h.is_empty()),
            }),
            _ => None,
        };
        Ok(Reply {
            says: said,
            next: Next::Ask(Ask {
                step: name.to_owned(),
                prompts,
                digits,
                timeout_secs: input.timeout_secs,
                speech,
            }),
        })
    }
}
