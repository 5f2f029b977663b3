//! Leaving the IVR for an agent: the call is filed as handed off and the reply names the
//! department's desk. The screen-pop that travels with the call is not the engine's: whoever
//! writes the reply out loads it (in the same transaction). When the hand-off ends the
//! gateway calls back, and the script goes on from `on_completed` or `on_unanswered`.

use anyhow::{Context, bail};

use super::{Flow, step_in};
use crate::ivr::reply::{Desk, HandOff, Next, Reply, Utterance};
use crate::ivr::script::Step;
use crate::ivr::script::model::TECHNICAL_ERROR_PROMPT;
use crate::store::calls::HANDED_OFF;

impl Flow<'_> {
    /// Hands the call off at the hand-off step `name`, after `said`.
    pub(super) fn handoff(&mut self, name: &str, said: Vec<Utterance>) -> anyhow::Result<Reply> {
        let Step::Handoff { via, .. } = step_in(self.script, name)? else {
            bail!("{name} is not a hand-off step");
        };
        let via = *via;
        let department = self.call.department.clone().unwrap_or_default();
        self.call.handed_off_at = Some(self.now);
        self.call.handoff = Some(via.as_str().to_owned());
        self.call.state.handoff_step = Some(name.to_owned());
        self.call.enter(HANDED_OFF);
        let handoff = crate::metrics::Handoff {
            category: department.clone(),
            level: self.call.level().as_str(),
        };
        self.ctx.metrics.handoffs.get_or_create(&handoff).inc();
        self.log(&format!("handing off to {department}"));
        let queue = self
            .script
            .departments
            .get(&department)
            .map_or(department.clone(), |d| d.queue.clone());
        self.call.state.note(
            self.now,
            name,
            "handed off",
            Some(format!("{} to {queue}", via.as_str())),
        );
        self.handoff_reply(name, said)
    }

    /// The hand-off of step `name` to the call's department, after `said`: when the call is
    /// handed off, and again for a retried webhook while it is.
    pub(super) fn handoff_reply(&self, name: &str, said: Vec<Utterance>) -> anyhow::Result<Reply> {
        let Step::Handoff {
            prompt, via, pop, ..
        } = step_in(self.script, name)?
        else {
            bail!("{name} is not a hand-off step");
        };
        let department = self.call.department.clone().unwrap_or_default();
        let dept =
            self.script.departments.get(&department).with_context(|| {
                format!("hand-off without a defined department ({department:?})")
            })?;
        Ok(Reply {
            says: said,
            next: Next::HandOff(Box::new(HandOff {
                step: name.to_owned(),
                prompt: prompt.as_deref().map(|p| self.prompt(p)),
                via: *via,
                desk: Desk {
                    department: department.clone(),
                    queue: dept.queue.clone(),
                    workflow_sid: dept.workflow_sid.clone(),
                    client_identity: dept.client_identity.clone(),
                    sip_uri: dept.sip_uri.clone(),
                    number: dept.number.clone(),
                },
                pop: *pop,
                apology: self.prompt(TECHNICAL_ERROR_PROMPT),
            })),
        })
    }

    /// The hand-off ended: the caller was bridged and the agent hung up, or nobody answered.
    pub(super) fn after_handoff(&mut self, result: Option<&str>) -> anyhow::Result<Reply> {
        if self.call.step != HANDED_OFF {
            return self.resume();
        }
        let Some(name) = self.call.state.handoff_step.clone() else {
            return self.resume();
        };
        let Step::Handoff {
            on_completed,
            on_unanswered,
            ..
        } = step_in(self.script, &name)?
        else {
            return self.resume();
        };
        let result = result.unwrap_or("unknown");
        let served = matches!(result, "completed" | "answered" | "bridged" | "hangup");
        self.call.state.handoff_result = Some(result.to_owned());
        self.log(&format!("hand-off ended: {result}"));
        let waited = self.call.handed_off_at.map_or(String::new(), |t| {
            format!(" after {} s", (self.now - t) / 1000)
        });
        self.note("hand-off ended", Some(format!("{result}{waited}")));
        let to = if served { on_completed } else { on_unanswered }.clone();
        self.goto(&to, vec![])
    }
}
