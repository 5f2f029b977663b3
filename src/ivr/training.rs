//! `callgate routing train`: the speech classifier learns from what agents confirmed. Every
//! call whose speech menu heard words and whose outcome names the category it really was for is
//! an example; a fixed share (chosen by a hash of the CallSid, so reruns agree) is kept aside to
//! measure the model against the script phrases alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::routing::Model;
use super::script::{self, Env, Script};
use crate::store::Db;
use crate::store::routing::NewRoutingModel;

#[derive(Debug, Serialize)]
pub struct Trained {
    pub id: i64,
    pub examples: usize,
    pub held_out: usize,
    /// Share of held-out utterances routed to the confirmed category, with the learned model.
    pub accuracy: Option<f64>,
    /// The same with the script phrases alone.
    pub baseline_accuracy: Option<f64>,
    pub per_category: BTreeMap<String, usize>,
}

struct Example {
    script: String,
    text: String,
    category: String,
    held_out: bool,
}

fn held_out(call_sid: &str, share: f64) -> bool {
    let h = Sha256::digest(call_sid.as_bytes());
    f64::from(u16::from_be_bytes([h[0], h[1]])) / 65536.0 < share
}

/// Trains from the database, stores the model, and returns what it measured.
pub fn train(db: &dyn Db, holdout: f64, now: i64) -> anyhow::Result<Trained> {
    let examples: Vec<Example> = db
        .confirmed_utterances()?
        .into_iter()
        .map(|u| Example {
            held_out: held_out(&u.call_sid, holdout),
            script: u.script,
            text: u.text,
            category: u.category,
        })
        .collect();
    let mut learned = Model::default();
    let mut per_category = BTreeMap::new();
    for e in examples.iter().filter(|e| !e.held_out) {
        learned.learn(&e.category, &e.text);
        *per_category.entry(e.category.clone()).or_default() += 1;
    }
    // The published scripts give the phrases and the departments each utterance chose among.
    let mut scripts: BTreeMap<String, Arc<Script>> = BTreeMap::new();
    for (name, _, source) in db.published_scripts()? {
        if let Some(s) = script::check(&source, Env::default()).script {
            scripts.insert(name, Arc::new(s));
        }
    }
    let (mut right, mut right_baseline, mut scored) = (0usize, 0usize, 0usize);
    for e in examples.iter().filter(|e| e.held_out) {
        let Some(script) = scripts.get(&e.script) else {
            continue;
        };
        let offered: Vec<&str> = script.departments.keys().map(String::as_str).collect();
        let baseline = script.routing.classify(&e.text, &offered);
        let mut both = script.routing.clone();
        both.merge(&learned);
        let with = both.classify(&e.text, &offered);
        scored += 1;
        right += usize::from(with.is_some_and(|v| v.department == e.category));
        right_baseline += usize::from(baseline.is_some_and(|v| v.department == e.category));
    }
    let share = |n: usize| (scored > 0).then(|| n as f64 / scored as f64);
    let (accuracy, baseline_accuracy) = (share(right), share(right_baseline));
    let examples_n = examples.iter().filter(|e| !e.held_out).count();
    let held = examples.len() - examples_n;
    let model_json = serde_json::to_string(&learned)?;
    let id = db.store_routing_model(
        &NewRoutingModel {
            examples: examples_n as i64,
            held_out: held as i64,
            accuracy,
            baseline_accuracy,
            model_json: &model_json,
        },
        now,
    )?;
    Ok(Trained {
        id,
        examples: examples_n,
        held_out: held,
        accuracy,
        baseline_accuracy,
        per_category,
    })
}

/// The newest trained model: (id, model).
pub fn latest(db: &dyn Db) -> anyhow::Result<Option<(i64, Model)>> {
    match db.newest_routing_model()? {
        Some((id, json)) => Ok(Some((
            id,
            serde_json::from_str(&json).context("stored routing model")?,
        ))),
        None => Ok(None),
    }
}
