//! Speech routing: what agents confirmed of what callers said, and the models trained on it.

use super::both_backends;
use super::calls::new_call;
use crate::store::Store;
use crate::store::calls::SpeechRecord;
use crate::store::outcomes::Outcome;
use crate::store::routing::NewRoutingModel;

fn call_with(store: &Store, sid: &str, script: &str, said: Option<&str>, confirmed: Option<&str>) {
    let mut call = new_call(sid, 1_000);
    call.script = script.into();
    call.state.speech = said.map(|text| SpeechRecord {
        text: text.into(),
        asr_confidence: None,
        department: Some("billing".into()),
        probability: 0.5,
        routed: false,
    });
    store
        .write_sync(|db| {
            db.save_call(&call, 1_000)?;
            if let Some(category) = confirmed {
                let outcome = Outcome {
                    resolved: true,
                    category: category.into(),
                    note: String::new(),
                    recurring: false,
                    agent: "ada".into(),
                    at: 2_000,
                };
                db.record_outcome(sid, &outcome)?;
            }
            Ok(())
        })
        .unwrap();
}

fn utterances_come_with_the_category_agents_confirmed(store: &Store) {
    assert!(
        store
            .read_sync(|db| db.confirmed_utterances())
            .unwrap()
            .is_empty()
    );
    call_with(
        store,
        "CA-1",
        "default",
        Some("faktura za luty"),
        Some("billing"),
    );
    call_with(
        store,
        "CA-2",
        "sales",
        Some("nie działa \"internet\""),
        Some("technical"),
    );
    // Said something, nobody confirmed: not training data.
    call_with(store, "CA-3", "default", Some("halo"), None);
    // Confirmed, said nothing (keys only): not training data.
    call_with(store, "CA-4", "default", None, Some("billing"));
    let mut got: Vec<_> = store
        .read_sync(|db| db.confirmed_utterances())
        .unwrap()
        .into_iter()
        .map(|u| (u.call_sid, u.script, u.text, u.category))
        .collect();
    got.sort();
    let want = [
        ("CA-1", "default", "faktura za luty", "billing"),
        ("CA-2", "sales", "nie działa \"internet\"", "technical"),
    ]
    .map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned()));
    assert_eq!(got, want);
}

fn the_newest_model_is_the_last_stored(store: &Store) {
    assert_eq!(
        store.read_sync(|db| db.newest_routing_model_id()).unwrap(),
        None
    );
    assert_eq!(
        store.read_sync(|db| db.newest_routing_model()).unwrap(),
        None
    );
    let first = NewRoutingModel {
        examples: 120,
        held_out: 30,
        accuracy: Some(0.8125),
        baseline_accuracy: None,
        model_json: "{\"v\":1}",
    };
    let a = store
        .write_sync(|db| db.store_routing_model(&first, 1_000))
        .unwrap();
    let second = NewRoutingModel {
        accuracy: None,
        baseline_accuracy: Some(0.5),
        model_json: "{\"v\":2,\"words\":[\"faktura\"]}",
        ..first
    };
    let b = store
        .write_sync(|db| db.store_routing_model(&second, 2_000))
        .unwrap();
    assert!(a < b, "{a} {b}");
    assert_eq!(
        store.read_sync(|db| db.newest_routing_model_id()).unwrap(),
        Some(b)
    );
    assert_eq!(
        store.read_sync(|db| db.newest_routing_model()).unwrap(),
        Some((b, second.model_json.to_owned()))
    );
}

both_backends!(
    utterances_come_with_the_category_agents_confirmed,
    the_newest_model_is_the_last_stored,
);
