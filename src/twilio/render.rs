//! The engine's `Reply` written as Twilio's TwiML: the one place that knows which verbs say a
//! prompt, ask a question or hand a call off on Twilio. A gateway dialect (SignalWire's cXML,
//! Telnyx's TeXML, Somleng's subset without `<Enqueue>` or `<Dial><Client>`) is a sibling of
//! `Twiml`: the same `Reply` and screen-pop in, its own document out.

use crate::agent::ScreenPop;
use crate::domain::SipUri;
use crate::ivr::IvrContext;
use crate::ivr::reply::{Ask, Audio, HandOff, Next, Reply, Utterance};
use crate::ivr::script::Via;
use crate::twilio::twiml::{
    Dial, DialTarget, Enqueue, Gather, Play, Prompt, Response, Say, SpeechInput, Verb,
};

/// The URL segment of every hand-off's `action` (`/twilio/ivr/handoff-result`); the checker
/// keeps it out of step names.
pub const HANDOFF_RESULT: &str = "handoff-result";
/// Flex caps task attributes at 1024 characters.
const TASK_ATTRIBUTES_MAX: usize = 1024;
/// Ends a code of any length; also ends a fixed-length answer early.
const FINISH_ON_KEY: &str = "#";

/// Twilio's dialect.
#[derive(Debug, Clone, Copy)]
pub struct Twiml<'a> {
    /// Base of every absolute URL in a document (actions, recordings).
    pub public_url: &'a str,
    /// The server's TaskRouter workflow, for departments that name none.
    pub workflow_sid: Option<&'a str>,
}

impl<'a> Twiml<'a> {
    /// The dialect as the server (or the simulator) is configured.
    pub fn of(ctx: &'a IvrContext) -> Self {
        Self {
            public_url: &ctx.public_url,
            workflow_sid: ctx.workflow_sid.as_deref(),
        }
    }

    /// The document for `reply`. A hand-off carries `pop`, the screen-pop as the desk reads it;
    /// without one (it could not be loaded) the caller hears the hand-off's apology and the
    /// call ends: a hand-off never goes without the facts the agent relies on.
    pub fn document(&self, reply: &Reply, pop: Option<&ScreenPop>) -> Response {
        let mut doc = Response::new();
        for said in &reply.says {
            doc = doc.push(self.said(said));
        }
        match &reply.next {
            Next::Ask(ask) => {
                let action = self.step_url(&ask.step);
                doc.push(Verb::Gather(self.gather(ask, action.clone())))
                    // If the caller says nothing, the `<Redirect>` brings the call back
                    // without digits.
                    .push(Verb::Redirect { url: action })
            }
            Next::HandOff(handoff) => match pop {
                Some(pop) => {
                    if let Some(prompt) = &handoff.prompt {
                        doc = doc.push(self.said(prompt));
                    }
                    doc.push(self.hand_off(handoff, pop))
                }
                None => doc.push(self.said(&handoff.apology)).push(Verb::Hangup),
            },
            Next::HangUp => doc.push(Verb::Hangup),
        }
    }

    fn step_url(&self, step: &str) -> String {
        format!("{}/twilio/ivr/{step}", self.public_url)
    }

    /// A recording is played from callgate's own `/sounds/`; text is spoken in its language.
    fn prompt(&self, utterance: &Utterance) -> Prompt {
        match &utterance.audio {
            Audio::Recording { path } => Prompt::Play(Play {
                url: format!("{}/sounds/{path}", self.public_url),
            }),
            Audio::Text { text, voice } => Prompt::Say(Say {
                text: text.clone(),
                voice: voice.clone(),
                language: Some(utterance.language.clone()),
            }),
        }
    }

    /// An utterance on its own, outside a `<Gather>`.
    fn said(&self, utterance: &Utterance) -> Verb {
        match self.prompt(utterance) {
            Prompt::Say(s) => Verb::Say(s),
            Prompt::Play(p) => Verb::Play(p),
        }
    }

    fn gather(&self, ask: &Ask, action: String) -> Gather {
        Gather {
            action,
            num_digits: ask.digits,
            finish_on_key: Some(FINISH_ON_KEY.into()),
            timeout_secs: ask.timeout_secs,
            prompts: ask.prompts.iter().map(|p| self.prompt(p)).collect(),
            speech: ask.speech.as_ref().map(|listen| SpeechInput {
                language: listen.language.clone(),
                hints: listen.hints.clone(),
            }),
        }
    }

    /// The hand-off verb, carrying the pop as the route allows: `<Task>` attributes (with a
    /// TaskRouter workflow), `<Parameter>`s, SIP `X-` headers; a plain number carries nothing
    /// (the agent opens the pop by its URL).
    fn hand_off(&self, handoff: &HandOff, pop: &ScreenPop) -> Verb {
        let desk = &handoff.desk;
        let fields = handoff.pop;
        let action = Some(self.step_url(HANDOFF_RESULT));
        match handoff.via {
            Via::Enqueue => {
                let workflow = desk
                    .workflow_sid
                    .clone()
                    .or_else(|| self.workflow_sid.map(str::to_owned));
                Verb::Enqueue(Enqueue {
                    queue: desk.queue.clone(),
                    action,
                    task: workflow
                        .as_ref()
                        .map(|_| pop.task_attributes(TASK_ATTRIBUTES_MAX, fields)),
                    workflow_sid: workflow,
                })
            }
            Via::Client => Verb::Dial(Dial {
                action,
                target: DialTarget::Client {
                    identity: desk.client_identity.clone().unwrap_or_default(),
                    parameters: pop.client_parameters(fields),
                },
            }),
            Via::Sip => Verb::Dial(Dial {
                action,
                target: DialTarget::Sip {
                    uri: pop.sip_uri(
                        desk.sip_uri
                            .as_ref()
                            .map(SipUri::as_str)
                            .unwrap_or_default(),
                        fields,
                    ),
                },
            }),
            Via::Number => Verb::Dial(Dial {
                action,
                target: DialTarget::Number {
                    number: desk.number.clone().unwrap_or_default(),
                },
            }),
        }
    }
}

/// Writes a document, falling back to a bare hang-up if it cannot be written (over 64 kB).
pub fn to_xml(doc: &Response) -> String {
    doc.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "TwiML could not be rendered");
        Response::new()
            .push(Verb::Hangup)
            .render()
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::screen_pop::Risk;
    use crate::ivr::reply::{Desk, Listen};
    use crate::ivr::script::PopFields;

    const TWIML: Twiml<'static> = Twiml {
        public_url: "https://cg.example",
        workflow_sid: None,
    };

    fn spoken(prompt: &str, text: &str) -> Utterance {
        Utterance {
            prompt: prompt.into(),
            language: "pl-PL".into(),
            audio: Audio::Text {
                text: text.into(),
                voice: Some("Polly.Ewa".into()),
            },
        }
    }

    fn xml(reply: &Reply, pop: Option<&ScreenPop>) -> String {
        let xml = to_xml(&TWIML.document(reply, pop));
        xml.strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
            .unwrap()
            .to_owned()
    }

    fn pop() -> ScreenPop {
        ScreenPop {
            call_sid: "CA0123456789abcdef0123456789abcdef".into(),
            caller: "+48*******67".into(),
            called: None,
            verified: true,
            level: "medium",
            factors: vec!["account_code", "caller_id"],
            account: None,
            category: Some("billing".into()),
            risk: Risk {
                caller_id_match: true,
                stir_verstat: None,
                stir_failed: false,
                stir_unrecognized: false,
                failed_attempts: 0,
                account_failures_24h: 0,
                caller_withheld: false,
                account_locked_24h: false,
                number_changed_recently: false,
            },
            status: "in-progress".into(),
            step: "handed_off".into(),
            end_reason: None,
            script: "default".into(),
            script_version: "abc".into(),
            language: "pl-PL".into(),
            started_at: None,
            verified_at: None,
            handed_off_at: None,
            ended_at: None,
            pop_url: None,
        }
    }

    fn handoff(via: Via) -> Reply {
        Reply {
            says: vec![],
            next: Next::HandOff(Box::new(HandOff {
                step: "agent".into(),
                prompt: Some(spoken("transferring", "Łączymy.")),
                via,
                desk: Desk {
                    department: "billing".into(),
                    queue: "billing".into(),
                    workflow_sid: None,
                    client_identity: Some("desk".into()),
                    sip_uri: SipUri::parse("sip:desk@pbx.example.com").ok(),
                    number: Some("+48225550100".into()),
                },
                pop: PopFields::ALL,
                apology: spoken("technical_error", "Przepraszamy."),
            })),
        }
    }

    #[test]
    fn a_question_is_a_gather_for_its_step_then_a_redirect_back() {
        let reply = Reply {
            says: vec![spoken("greeting", "Dzień dobry.")],
            next: Next::Ask(Ask {
                step: "menu".into(),
                prompts: vec![Utterance {
                    prompt: "menu".into(),
                    language: "pl-PL".into(),
                    audio: Audio::Recording {
                        path: "pl-PL/menu.wav".into(),
                    },
                }],
                digits: Some(1),
                timeout_secs: 6,
                speech: Some(Listen {
                    language: "pl-PL".into(),
                    hints: Some("faktura, rachunek".into()),
                }),
            }),
        };
        assert_eq!(
            xml(&reply, None),
            "<Response>\
             <Say voice=\"Polly.Ewa\" language=\"pl-PL\">Dzień dobry.</Say>\
             <Gather action=\"https://cg.example/twilio/ivr/menu\" method=\"POST\" \
             input=\"dtmf speech\" numDigits=\"1\" finishOnKey=\"#\" timeout=\"6\" \
             language=\"pl-PL\" hints=\"faktura, rachunek\" speechTimeout=\"auto\">\
             <Play>https://cg.example/sounds/pl-PL/menu.wav</Play></Gather>\
             <Redirect method=\"POST\">https://cg.example/twilio/ivr/menu</Redirect>\
             </Response>"
        );
    }

    #[test]
    fn a_hand_off_carries_the_pop_its_route_allows() {
        let pop = pop();
        let action = "action=\"https://cg.example/twilio/ivr/handoff-result\" method=\"POST\"";
        let enqueue = xml(&handoff(Via::Enqueue), Some(&pop));
        assert!(
            enqueue.ends_with(&format!("<Enqueue {action}>billing</Enqueue></Response>")),
            "{enqueue}"
        );
        assert!(enqueue.contains("Łączymy."), "{enqueue}");
        let with_workflow = Twiml {
            workflow_sid: Some("WW0123456789abcdef0123456789abcdef"),
            ..TWIML
        };
        let task = to_xml(&with_workflow.document(&handoff(Via::Enqueue), Some(&pop)));
        assert!(task.contains("workflowSid=\"WW0123456789abcdef0123456789abcdef\"><Task>{"));
        let client = xml(&handoff(Via::Client), Some(&pop));
        assert!(client.contains(&format!("<Dial {action}><Client><Identity>desk</Identity>")));
        assert!(client.contains("<Parameter name=\"level\" value=\"medium\"/>"));
        let sip = xml(&handoff(Via::Sip), Some(&pop));
        assert!(sip.contains("<Sip>sip:desk@pbx.example.com?X-Callgate-Call=CA0123"));
        let number = xml(&handoff(Via::Number), Some(&pop));
        assert!(number.ends_with("<Number>+48225550100</Number></Dial></Response>"));
    }

    #[test]
    fn a_hand_off_without_its_pop_apologises_and_hangs_up() {
        assert_eq!(
            xml(&handoff(Via::Enqueue), None),
            "<Response><Say voice=\"Polly.Ewa\" language=\"pl-PL\">Przepraszamy.</Say>\
             <Hangup/></Response>"
        );
    }
}
