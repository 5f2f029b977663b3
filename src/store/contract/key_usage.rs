//! Key usage: what each key version protects, one TOTP sample per version, re-sealing every
//! TOTP secret under the current key, and the key file check built on them.

use super::accounts::{Keys, Spec, add};
use super::both_backends;
use crate::store::Store;
use crate::store::key_usage::{Usage, check_keyring};

fn an_empty_database_uses_no_key(store: &Store) {
    let (usage, samples) = store
        .read_sync(|db| Ok((db.key_usage(0)?, db.totp_samples()?)))
        .unwrap();
    assert!(usage.is_empty() && samples.is_empty());
}

fn usage_counts_each_kind_of_secret_per_version(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            code: Some("12345678"),
            totp: Some(b"12345678901234567890"),
            knowledge: &[("dob", "14031985"), ("pin", "4321")],
            ..Spec::default()
        },
    );
    store
        .write_sync(|db| {
            db.issue_call_code(&k.keys, "A-1", 60_000, 1_000)?;
            db.issue_call_code(&k.keys, "A-1", 5_000, 1_000)?;
            let used = db.issue_call_code(&k.keys, "A-1", 60_000, 1_000)?;
            let (id, _) = db
                .find_live_call_code(&k.keys, &used, 1_000)?
                .ok_or_else(|| anyhow::anyhow!("issued code not found"))?;
            db.consume_call_code(id, "CA1", 1_000)?;
            Ok(())
        })
        .unwrap();
    let rotated = k.rotate();
    add(
        store,
        &rotated,
        Spec {
            id: "B-2",
            totp: Some(b"abcdefghijabcdefghij"),
            ..Spec::default()
        },
    );
    let usage = store.read_sync(|db| db.key_usage(6_000)).unwrap();
    let (v1, v2) = (k.keys.current_version(), rotated.current_version());
    assert_eq!(
        usage[&v1],
        Usage {
            account_codes: 1,
            totp_secrets: 1,
            live_call_codes: 1,
            knowledge_answers: 2,
        },
        "the used and the expired call code do not count"
    );
    assert_eq!(
        usage[&v2],
        Usage {
            totp_secrets: 1,
            ..Usage::default()
        }
    );
    assert_eq!(usage.len(), 2);
}

fn every_totp_secret_is_resealed_under_the_current_key(store: &Store) {
    let k = Keys::new();
    for id in ["A-1", "B-2"] {
        add(
            store,
            &k.keys,
            Spec {
                id,
                totp: Some(b"12345678901234567890"),
                ..Spec::default()
            },
        );
    }
    add(
        store,
        &k.keys,
        Spec {
            id: "C-3",
            ..Spec::default()
        },
    );
    let rotated = k.rotate();
    add(
        store,
        &rotated,
        Spec {
            id: "D-4",
            totp: Some(b"abcdefghijabcdefghij"),
            ..Spec::default()
        },
    );
    let (v1, v2) = (k.keys.current_version(), rotated.current_version());
    let mut samples = store.read_sync(|db| db.totp_samples()).unwrap();
    samples.sort_by_key(|s| s.2);
    let versions: Vec<u32> = samples.iter().map(|s| s.2).collect();
    assert_eq!(versions, [v1, v2], "one sample per version");
    assert_eq!(samples[1].0, "D-4");
    for (id, sealed, version) in &samples {
        assert!(rotated.decrypt(*version, sealed, id).is_ok());
    }
    store.read_sync(|db| check_keyring(db, &rotated)).unwrap();

    let resealed = store
        .write_sync(|db| db.reseal_totp_secrets(&rotated))
        .unwrap();
    assert_eq!(resealed, 2);
    let again = store
        .write_sync(|db| db.reseal_totp_secrets(&rotated))
        .unwrap();
    assert_eq!(again, 0);
    let usage = store.read_sync(|db| db.key_usage(0)).unwrap();
    assert_eq!(usage.get(&v1).map_or(0, |u| u.totp_secrets), 0);
    assert_eq!(usage[&v2].totp_secrets, 3);
    let secret = store
        .write_sync(|db| db.totp_secret(&rotated, "B-2"))
        .unwrap()
        .unwrap();
    assert_eq!(secret.as_slice(), b"12345678901234567890");
}

fn a_key_file_that_is_not_the_databases_is_refused(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            totp: Some(b"12345678901234567890"),
            ..Spec::default()
        },
    );
    store.read_sync(|db| check_keyring(db, &k.keys)).unwrap();
    let other = Keys::new();
    let refused = store
        .read_sync(|db| check_keyring(db, &other.keys))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("does not match the database"), "{refused}");
}

fn resealing_stops_at_a_secret_the_key_file_cannot_open(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            totp: Some(b"12345678901234567890"),
            ..Spec::default()
        },
    );
    let other = Keys::new();
    let _ = other.rotate();
    let rotated = other.rotate();
    let failed = store.write_sync(|db| db.reseal_totp_secrets(&rotated));
    assert!(failed.is_err());
    let usage = store.read_sync(|db| db.key_usage(0)).unwrap();
    assert_eq!(
        usage[&k.keys.current_version()].totp_secrets,
        1,
        "nothing changed"
    );
}

both_backends!(
    an_empty_database_uses_no_key,
    usage_counts_each_kind_of_secret_per_version,
    every_totp_secret_is_resealed_under_the_current_key,
    a_key_file_that_is_not_the_databases_is_refused,
    resealing_stops_at_a_secret_the_key_file_cannot_open,
);
