//! The key ring kept in the database (PostgreSQL): seeded once however many nodes start
//! together, versions numbered without gaps or reuse under concurrent rotations, opened only
//! with the right key-encryption key; and the custody built on it (`verify::custody`): a first
//! ring taken from an existing key file, a fresh one for a new desk, none invented for a
//! database that already holds secrets. SQLite keeps its keys in the key file.

use std::path::Path;
use std::sync::Arc;

use super::accounts::{Keys, Spec, add};
use super::support::at_once;
use super::{Fresh, postgres, sqlite};
use crate::store::key_usage::WrappedKey;
use crate::verify::kek::{KEK_FILE, Kek};
use crate::verify::keys::KEY_FILE;
use crate::verify::{KeyCustody, Purpose};

fn custody(dir: &Path) -> KeyCustody {
    KeyCustody::Database {
        kek: Arc::new(Kek::load_or_create(&dir.join(KEK_FILE)).unwrap()),
        key_file: dir.join(KEY_FILE),
    }
}

fn wrapped(kek: &Kek, version: u32, byte: u8) -> WrappedKey {
    WrappedKey {
        version,
        wrapped: kek.wrap(version, &[byte; 32]).unwrap(),
    }
}

#[test]
fn sqlite_keeps_no_ring_in_the_database() {
    let fresh = sqlite();
    assert!(!fresh.store.keys_in_database());
    assert!(
        fresh
            .store
            .read_sync(|db| db.key_ring())
            .unwrap()
            .is_empty()
    );
    let refused = fresh
        .store
        .write_sync(|db| db.remove_key_version(1))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("key file"), "{refused}");
}

#[test]
fn nodes_seeding_at_once_agree_on_one_ring() {
    let fresh: Fresh = postgres();
    assert!(fresh.store.keys_in_database());
    let dir = tempfile::tempdir().unwrap();
    let kek = Kek::load_or_create(&dir.path().join(KEK_FILE)).unwrap();
    let (a, b) = (wrapped(&kek, 1, 1), wrapped(&kek, 1, 2));
    let store = &fresh.store;
    let (seeded_a, seeded_b) = at_once(
        || store.write_sync(|db| db.seed_key_ring(std::slice::from_ref(&a), 10)),
        || store.write_sync(|db| db.seed_key_ring(std::slice::from_ref(&b), 10)),
    );
    let (seeded_a, seeded_b) = (seeded_a.unwrap(), seeded_b.unwrap());
    assert!(
        seeded_a ^ seeded_b,
        "exactly one seeds: {seeded_a} {seeded_b}"
    );
    let ring = store.read_sync(|db| db.key_ring()).unwrap();
    let winner = if seeded_a { &a } else { &b };
    assert_eq!(ring, vec![winner.clone()]);
    // A later seed changes nothing.
    assert!(
        !store
            .write_sync(|db| db.seed_key_ring(&[wrapped(&kek, 1, 3)], 11))
            .unwrap()
    );
    assert_eq!(store.read_sync(|db| db.key_ring()).unwrap(), ring);
}

#[test]
fn rotations_at_once_make_distinct_versions_and_a_retired_number_is_never_reused() {
    let fresh = postgres();
    let store = &fresh.store;
    let dir = tempfile::tempdir().unwrap();
    let kek = Kek::load_or_create(&dir.path().join(KEK_FILE)).unwrap();
    store
        .write_sync(|db| db.seed_key_ring(&[wrapped(&kek, 1, 1)], 1))
        .unwrap();
    let add = || store.write_sync(|db| db.add_key_version(&|v| kek.wrap(v, &[v as u8; 32]), 2));
    let (x, y) = at_once(add, add);
    let mut made = vec![x.unwrap(), y.unwrap()];
    made.sort_unstable();
    assert_eq!(made, vec![2, 3]);
    // Each version opens with its own key.
    for key in store.read_sync(|db| db.key_ring()).unwrap() {
        let master = kek.unwrap(key.version, &key.wrapped).unwrap();
        if key.version > 1 {
            assert_eq!(*master, [key.version as u8; 32]);
        }
    }
    assert!(store.write_sync(|db| db.remove_key_version(3)).unwrap());
    assert!(!store.write_sync(|db| db.remove_key_version(3)).unwrap());
    // v3 was given once: the next is v4, though v2 is now the highest kept.
    assert_eq!(add().unwrap(), 4);
    let versions: Vec<u32> = store
        .read_sync(|db| db.key_ring())
        .unwrap()
        .iter()
        .map(|k| k.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 4]);
}

#[test]
fn a_first_ring_is_taken_from_the_key_file_and_shared_by_every_node_with_the_kek() {
    let fresh = postgres();
    let store = &fresh.store;
    // A desk's key file with two versions (as after a rotation on SQLite).
    let node_a = tempfile::tempdir().unwrap();
    let file_keys = Keys::new();
    let rotated = file_keys.rotate();
    std::fs::copy(file_keys.path(), node_a.path().join(KEY_FILE)).unwrap();
    let a = custody(node_a.path());
    let ring = a.open(store, 1).unwrap();
    assert_eq!(ring.versions(), vec![1, 2]);
    assert_eq!(
        ring.keyed_hash(Purpose::AccountCode, "2468"),
        rotated.keyed_hash(Purpose::AccountCode, "2468"),
        "the ring holds the key file's keys"
    );
    assert!(a.take_over_key_file(store, 2).is_ok());

    // Node B has no key file, only the same key-encryption key: the same keys.
    let node_b = tempfile::tempdir().unwrap();
    std::fs::copy(node_a.path().join(KEK_FILE), node_b.path().join(KEK_FILE)).unwrap();
    let b = custody(node_b.path()).read(store).unwrap();
    assert_eq!(
        b.keyed_hash(Purpose::CallCode, "1357"),
        ring.keyed_hash(Purpose::CallCode, "1357")
    );

    // A node with another key-encryption key opens nothing, and says what to do.
    let stranger = tempfile::tempdir().unwrap();
    let refused = custody(stranger.path())
        .open(store, 3)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("does not open") && refused.contains("same one"),
        "{refused}"
    );

    // A rotation through node A reaches node B's live keys on reload (the server reloads at
    // the change's NOTIFY).
    let live_b = custody(node_b.path()).live(store, b);
    let v3 = a.add_version(store, 4).unwrap();
    assert_eq!(v3, 3);
    assert_eq!(live_b.reload().unwrap(), vec![1, 2, 3]);
    assert_eq!(live_b.get().current_version(), 3);
    // A key file whose keys differ from the ring is refused for a take-over.
    let refused = a.take_over_key_file(store, 5).unwrap_err().to_string();
    assert!(refused.contains("not the key file"), "{refused}");
}

#[test]
fn a_new_desk_gets_a_fresh_ring_but_secrets_without_their_keys_are_refused() {
    let fresh = postgres();
    let dir = tempfile::tempdir().unwrap();
    let first = custody(dir.path()).open(&fresh.store, 1).unwrap();
    assert_eq!(first.versions(), vec![1]);
    assert!(
        !dir.path().join(KEY_FILE).exists(),
        "no key file is written"
    );

    // A database holding secrets but no ring (its keys were in a key file not given here).
    let other = postgres();
    let k = Keys::new();
    add(
        &other.store,
        &k.keys,
        Spec {
            code: Some("24681012"),
            ..Spec::default()
        },
    );
    let refused = custody(dir.path())
        .open(&other.store, 1)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("no key ring") && refused.contains("callgate.key"),
        "{refused}"
    );
    assert!(
        other
            .store
            .read_sync(|db| db.key_ring())
            .unwrap()
            .is_empty()
    );
}
