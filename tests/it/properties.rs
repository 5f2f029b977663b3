//! Properties over arbitrary input: whatever text a script or an account holds, the TwiML that
//! carries it is well-formed and says exactly that text; the signature check accepts exactly
//! what was signed.

use callgate::twilio::signature;
use callgate::twilio::twiml::{
    self, Dial, DialTarget, Enqueue, Gather, Prompt, Response, Say, Verb,
};
use proptest::prelude::*;

/// What XML 1.0 can carry: the renderer drops the rest.
fn xml_visible(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r')
                || (!c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

fn say(text: &str, voice: &str) -> Say {
    Say {
        text: text.into(),
        voice: Some(voice.into()),
        language: Some("pl-PL".into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_text_comes_out_escaped_and_parseable(
        text in any::<String>(),
        attr in any::<String>(),
        name in "\\PC{0,40}",
    ) {
        let doc = Response::new()
            .push(Verb::Say(say(&text, &attr)))
            .push(Verb::Gather(Gather {
                action: format!("https://x.example/{attr}"),
                num_digits: Some(6),
                finish_on_key: Some("#".into()),
                timeout_secs: 5,
                prompts: vec![Prompt::Say(say(&text, "Polly.Ewa"))],
                speech: None,
            }))
            .push(Verb::Enqueue(Enqueue { queue: "q".into(), action: None, workflow_sid: Some("WW".into()), task: Some(text.clone()) }))
            .push(Verb::Dial(Dial {
                action: None,
                target: DialTarget::Client { identity: name.clone(), parameters: vec![(name.clone(), text.clone())] },
            }));
        let xml = doc.render().unwrap();
        prop_assert!(xml.starts_with("<?xml"));
        let back = twiml::parse(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
        prop_assert_eq!(back.verbs.len(), 4);
        match &back.verbs[0] {
            Verb::Say(s) => {
                prop_assert_eq!(&s.text, &xml_visible(&text));
                prop_assert_eq!(s.voice.clone(), Some(xml_visible(&attr)));
            }
            other => prop_assert!(false, "{other:?}"),
        }
        match &back.verbs[2] {
            Verb::Enqueue(e) => prop_assert_eq!(e.task.clone(), Some(xml_visible(&text))),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn the_signature_accepts_what_was_signed_and_nothing_else(
        params in proptest::collection::vec(("[A-Za-z]{1,12}", any::<String>()), 0..12),
        path in "/[a-z/]{0,20}",
        token in "[a-f0-9]{32}",
        tamper in any::<prop::sample::Index>(),
    ) {
        let params: Vec<(String, String)> = params;
        let url = format!("https://cg.example{path}");
        let sig = signature::compute(&token, &url, &params);
        prop_assert!(signature::is_valid(std::slice::from_ref(&token), &url, &params, &sig));
        // The order in which the parameters arrive does not matter: they are sorted.
        let mut reversed = params.clone();
        reversed.reverse();
        prop_assert!(signature::is_valid(std::slice::from_ref(&token), &url, &reversed, &sig));
        // Any change to a value does.
        if !params.is_empty() {
            let mut changed = params.clone();
            let i = tamper.index(changed.len());
            changed[i].1.push('x');
            prop_assert!(!signature::is_valid(std::slice::from_ref(&token), &url, &changed, &sig));
        }
        let other_url = format!("{url}x");
        prop_assert!(!signature::is_valid(std::slice::from_ref(&token), &other_url, &params, &sig));
    }
}
