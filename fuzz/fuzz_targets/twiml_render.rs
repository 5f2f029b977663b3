//! Arbitrary text (fields separated by U+001F) as prompt texts, voices, URLs, account names and
//! attribute values, rendered into every verb callgate emits, including the screen-pop that
//! travels in a hand-off (`<Task>` attributes, `<Parameter>`s, SIP `X-` headers). The document
//! must always parse back as TwiML with the text intact (less the control characters XML cannot
//! carry), or be refused cleanly as too large.
#![no_main]

use std::collections::BTreeMap;

use callgate::agent::ScreenPop;
use callgate::domain::SipUri;
use callgate::agent::screen_pop::{PopAccount, Risk};
use callgate::ivr::script::PopFields;
use callgate::twilio::twiml::{
    self, Dial, DialTarget, Enqueue, Gather, Play, Prompt, Response, Say, SpeechInput, TwimlError,
    Verb,
};
use libfuzzer_sys::fuzz_target;

/// What `twiml` keeps of a text: XML 1.0 cannot carry most control characters.
fn xml_safe(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r')
                || (!c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

fn pop(f: &dyn Fn(usize) -> String) -> ScreenPop {
    let mut attributes = BTreeMap::new();
    attributes.insert(f(11), f(12));
    attributes.insert("segment".to_owned(), f(13));
    ScreenPop {
        call_sid: format!("CA{}", f(14)),
        caller: f(15),
        called: Some(f(16)),
        verified: f(0).len() % 2 == 0,
        level: "medium",
        factors: vec!["account_code", "caller_id"],
        account: Some(PopAccount {
            id: f(17),
            name: f(10),
            attributes,
        }),
        category: Some(f(18)),
        risk: Risk {
            caller_id_match: true,
            stir_verstat: Some(f(19)),
            stir_failed: false,
            stir_unrecognized: f(0).len() % 7 == 0,
            failed_attempts: 1,
            account_failures_24h: 2,
            caller_withheld: false,
            account_locked_24h: f(0).len() % 3 == 0,
            number_changed_recently: f(0).len() % 5 == 0,
        },
        status: "in-progress".into(),
        step: f(20),
        end_reason: None,
        script: "default".into(),
        script_version: "1".into(),
        language: "pl-PL".into(),
        started_at: None,
        verified_at: None,
        handed_off_at: None,
        ended_at: None,
        pop_url: Some(format!("https://callgate.example/pop/{}", f(21))),
    }
}

fuzz_target!(|input: &str| {
    let fields: Vec<&str> = input.split('\u{1f}').collect();
    // Field i, cycling through what the input has.
    let f = |i: usize| fields[i % fields.len()].to_owned();
    let pop = pop(&f);
    let task = pop.task_attributes(1024, PopFields::ALL);
    serde_json::from_str::<serde_json::Value>(&task).expect("task attributes are JSON");
    let say = |text: String| Say {
        text,
        voice: Some(f(1)),
        language: Some(f(2)),
    };
    let doc = Response::new()
        .push(Verb::Say(say(f(0))))
        .push(Verb::Gather(Gather {
            action: f(3),
            num_digits: Some(6),
            finish_on_key: Some(f(4)),
            timeout_secs: 5,
            prompts: vec![Prompt::Say(say(f(5))), Prompt::Play(Play { url: f(6) })],
            // Speech hints are script text too: they must come out escaped.
            speech: Some(SpeechInput {
                language: "pl-PL".into(),
                hints: Some(f(5)),
            }),
        }))
        .push(Verb::Play(Play { url: f(6) }))
        .push(Verb::Redirect { url: f(7) })
        .push(Verb::Enqueue(Enqueue {
            queue: f(8),
            action: Some(f(3)),
            workflow_sid: Some(f(9)),
            task: Some(task.clone()),
        }))
        .push(Verb::Enqueue(Enqueue {
            queue: f(8),
            action: None,
            workflow_sid: None,
            task: None,
        }))
        .push(Verb::Dial(Dial {
            action: Some(f(3)),
            target: DialTarget::Client {
                identity: f(10),
                parameters: pop.client_parameters(PopFields::ALL),
            },
        }))
        .push(Verb::Dial(Dial {
            action: None,
            target: DialTarget::Sip {
                // Only a parsed SIP URI reaches the renderer (it refuses any other).
                uri: pop.sip_uri(
                    SipUri::parse(&f(9))
                        .as_ref()
                        .map_or("sip:desk@pbx.example.com", SipUri::as_str),
                    PopFields::ALL,
                ),
            },
        }))
        .push(Verb::Dial(Dial {
            action: None,
            target: DialTarget::Number { number: f(15) },
        }))
        .push(Verb::Hangup);

    let xml = match doc.render() {
        Ok(xml) => xml,
        Err(TwimlError::TooLarge(n)) => {
            assert!(n > twiml::MAX_DOCUMENT_BYTES);
            return;
        }
        Err(e) => panic!("render failed: {e}"),
    };
    assert!(xml.len() <= twiml::MAX_DOCUMENT_BYTES);
    twiml::parse_tree(&xml).expect("rendered TwiML is well-formed");
    let back = twiml::parse(&xml).expect("rendered TwiML reads back as verbs");

    // What should come back: every text less the characters XML cannot carry; the nouns that
    // `parse` trims, trimmed.
    let clean = |s: &str| xml_safe(s);
    let trimmed = |s: &str| xml_safe(s).trim().to_owned();
    let clean_say = |s: &Say| Say {
        text: clean(&s.text),
        voice: s.voice.as_deref().map(clean),
        language: s.language.as_deref().map(clean),
    };
    let expected: Vec<Verb> = doc
        .verbs
        .iter()
        .map(|v| match v {
            Verb::Say(s) => Verb::Say(clean_say(s)),
            Verb::Play(p) => Verb::Play(Play { url: trimmed(&p.url) }),
            Verb::Gather(g) => Verb::Gather(Gather {
                action: clean(&g.action),
                finish_on_key: g.finish_on_key.as_deref().map(clean),
                speech: g.speech.as_ref().map(|sp| SpeechInput {
                    language: clean(&sp.language),
                    hints: sp.hints.as_deref().map(clean),
                }),
                prompts: g
                    .prompts
                    .iter()
                    .map(|p| match p {
                        Prompt::Say(s) => Prompt::Say(clean_say(s)),
                        Prompt::Play(p) => Prompt::Play(Play { url: trimmed(&p.url) }),
                    })
                    .collect(),
                ..g.clone()
            }),
            Verb::Redirect { url } => Verb::Redirect { url: trimmed(url) },
            Verb::Hangup => Verb::Hangup,
            Verb::Enqueue(e) => Verb::Enqueue(Enqueue {
                queue: if e.task.is_some() { String::new() } else { trimmed(&e.queue) },
                action: e.action.as_deref().map(clean),
                workflow_sid: e.workflow_sid.as_deref().map(clean),
                task: e.task.as_deref().map(clean),
            }),
            Verb::Dial(d) => Verb::Dial(Dial {
                action: d.action.as_deref().map(clean),
                target: match &d.target {
                    DialTarget::Client { identity, parameters } => DialTarget::Client {
                        identity: trimmed(identity),
                        parameters: parameters.iter().map(|(k, v)| (clean(k), clean(v))).collect(),
                    },
                    DialTarget::Sip { uri } => DialTarget::Sip { uri: trimmed(uri) },
                    DialTarget::Number { number } => DialTarget::Number { number: trimmed(number) },
                },
            }),
        })
        .collect();
    assert_eq!(back.verbs, expected, "TwiML did not read back intact:\n{xml}");
    // The task attributes survive as the same JSON.
    if let Some(Verb::Enqueue(Enqueue { task: Some(t), .. })) = back.verbs.get(4) {
        assert_eq!(t, &task, "task attributes changed on the way");
    }
});
