//! Knowledge answers: stored as hashes bound to the account and the question, replaced, checked,
//! re-keyed by a right answer after a rotation.

use super::accounts::{Keys, Spec, add};
use super::both_backends;
use crate::store::Store;

fn an_answer_is_checked_against_its_account_and_question(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            knowledge: &[("dob", "14031985"), ("pin", "4321")],
            ..Spec::default()
        },
    );
    add(
        store,
        &k.keys,
        Spec {
            id: "B-2",
            knowledge: &[("dob", "14031985")],
            ..Spec::default()
        },
    );
    let checks = store
        .write_sync(|db| {
            Ok([
                db.check_knowledge_answer(&k.keys, "A-1", "dob", "14031985")?,
                db.check_knowledge_answer(&k.keys, "A-1", "dob", "15031985")?,
                db.check_knowledge_answer(&k.keys, "A-1", "pin", "14031985")?,
                db.check_knowledge_answer(&k.keys, "A-1", "zip", "14031985")?,
                db.check_knowledge_answer(&k.keys, "B-2", "dob", "14031985")?,
                db.check_knowledge_answer(&k.keys, "Z-9", "dob", "14031985")?,
            ])
        })
        .unwrap();
    assert_eq!(checks, [true, false, false, false, true, false]);
    let (has, has_not, questions, none) = store
        .read_sync(|db| {
            Ok((
                db.has_knowledge_answer("A-1", "pin")?,
                db.has_knowledge_answer("B-2", "pin")?,
                db.knowledge_questions("A-1")?,
                db.knowledge_questions("Z-9")?,
            ))
        })
        .unwrap();
    assert!(has && !has_not);
    assert_eq!(questions, ["dob", "pin"]);
    assert!(none.is_empty());
    // Same answer, same question, another account: another hash.
    let rows = store.read_sync(|db| db.key_usage(0)).unwrap();
    assert_eq!(rows[&k.keys.current_version()].knowledge_answers, 3);
}

fn an_answer_set_again_replaces_the_old_one(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            knowledge: &[("dob", "14031985")],
            ..Spec::default()
        },
    );
    let (old, new, questions) = store
        .write_sync(|db| {
            db.set_knowledge_answer(&k.keys, "A-1", "dob", "01011990")?;
            Ok((
                db.check_knowledge_answer(&k.keys, "A-1", "dob", "14031985")?,
                db.check_knowledge_answer(&k.keys, "A-1", "dob", "01011990")?,
                db.knowledge_questions("A-1")?,
            ))
        })
        .unwrap();
    assert!(!old && new);
    assert_eq!(questions, ["dob"]);
    let no_account = store.write_sync(|db| db.set_knowledge_answer(&k.keys, "Z-9", "dob", "1"));
    assert!(no_account.is_err(), "an answer needs its account");
}

fn a_right_answer_is_rekeyed_after_a_rotation(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            knowledge: &[("dob", "14031985")],
            ..Spec::default()
        },
    );
    let rotated = k.rotate();
    let (v1, v2) = (k.keys.current_version(), rotated.current_version());
    let wrong = store
        .write_sync(|db| db.check_knowledge_answer(&rotated, "A-1", "dob", "15031985"))
        .unwrap();
    assert!(!wrong);
    let usage = store.read_sync(|db| db.key_usage(0)).unwrap();
    assert_eq!(
        usage[&v1].knowledge_answers, 1,
        "a wrong answer re-keys nothing"
    );
    let right = store
        .write_sync(|db| db.check_knowledge_answer(&rotated, "A-1", "dob", "14031985"))
        .unwrap();
    assert!(right);
    let usage = store.read_sync(|db| db.key_usage(0)).unwrap();
    assert_eq!(usage.get(&v1).map_or(0, |u| u.knowledge_answers), 0);
    assert_eq!(usage[&v2].knowledge_answers, 1);
    let (new_key, old_key) = store
        .read_sync(|db| {
            Ok((
                db.check_knowledge_answer(&rotated, "A-1", "dob", "14031985")?,
                db.check_knowledge_answer(&k.keys, "A-1", "dob", "14031985")?,
            ))
        })
        .unwrap();
    assert!(new_key && !old_key, "the old key file lacks v{v2}");
}

both_backends!(
    an_answer_is_checked_against_its_account_and_question,
    an_answer_set_again_replaces_the_old_one,
    a_right_answer_is_rekeyed_after_a_rotation,
);
