//! A speech menu's words: the classifier (the script's phrases, plus what `callgate routing
//! train` learned) picks among the departments the menu's options lead to.

use std::collections::BTreeMap;

use super::Flow;
use super::input::Speech;
use crate::ivr::reply::Reply;
use crate::ivr::script::model::SpeechMenu;
use crate::store::calls::SpeechRecord;

impl Flow<'_> {
    /// A speech menu heard words: the classifier picks among the departments its options lead
    /// to; below `min_confidence` the caller is asked again (and may use the keys). So is a
    /// transcript the gateway itself rated below `min_gateway_confidence`: the classifier can be
    /// sure of words the caller never said.
    pub(super) fn route_speech(
        &mut self,
        name: &str,
        options: &BTreeMap<String, String>,
        menu: SpeechMenu,
        speech: &Speech,
    ) -> anyhow::Result<Reply> {
        let offered = self.script.menu_departments(options);
        let departments: Vec<&str> = offered.iter().map(|(_, d, _)| *d).collect();
        let mut model = self.script.routing.clone();
        if let Some(learned) = self.ctx.routing_model() {
            model.merge(&learned);
        }
        let verdict = model.classify(&speech.text, &departments);
        // No confidence sent: no doubt voiced, so the classifier alone decides.
        let doubted = speech
            .confidence
            .filter(|c| *c < menu.min_gateway_confidence);
        let routed = verdict
            .as_ref()
            .filter(|v| doubted.is_none() && v.probability >= menu.min_confidence)
            .and_then(|v| offered.iter().find(|(_, d, _)| *d == v.department));
        self.call.state.speech = Some(SpeechRecord {
            text: speech.text.clone(),
            asr_confidence: speech.confidence,
            department: verdict.as_ref().map(|v| v.department.clone()),
            probability: verdict.as_ref().map_or(0.0, |v| v.probability),
            routed: routed.is_some(),
        });
        let heard = match (&verdict, routed.is_some(), doubted) {
            (_, false, Some(c)) => format!(
                "unsure: gateway confidence {c:.2} below {:.2}",
                menu.min_gateway_confidence
            ),
            (Some(v), true, _) => format!("routed to {} (p={:.2})", v.department, v.probability),
            (Some(v), false, _) => format!("unsure: {} (p={:.2})", v.department, v.probability),
            (None, _, _) => "not understood".to_owned(),
        };
        self.note("speech", Some(heard));
        self.ctx
            .metrics
            .speech_routing
            .get_or_create(&crate::metrics::Outcome {
                outcome: if routed.is_some() {
                    "routed"
                } else {
                    "not_understood"
                },
            })
            .inc();
        match routed {
            Some((_, dept, to)) => {
                self.log(&format!(
                    "speech routed to {dept} (p={:.2})",
                    verdict.as_ref().map_or(0.0, |v| v.probability)
                ));
                let to = (*to).to_owned();
                self.goto(&to, vec![])
            }
            None => {
                self.log("speech not understood well enough; asking again");
                self.retry(name)
            }
        }
    }
}
