//! Accounts: what is stored, what is refused, re-keying after a key rotation, the TOTP replay
//! guard (one winner among calls presenting the same step at once) and the simulator's scratch
//! copy of the test accounts. Also the fixtures the other areas' contract tests share.

use std::collections::BTreeMap;
use std::sync::{Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::both_backends;
use crate::domain::{AccountCode, AccountId, AccountName, PhoneNumber, Region};
use crate::store::accounts::{AddAccountError, NewAccount};
use crate::store::{Db, Store};
use crate::verify::Keyring;

/// A key file in a directory of its own, and the keyring read from it.
pub(super) struct Keys {
    dir: tempfile::TempDir,
    pub keys: Keyring,
}

impl Keys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::load_or_create(dir.path()).unwrap();
        Self { dir, keys }
    }

    /// The key file.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join(crate::verify::keys::KEY_FILE)
    }

    /// Adds a key version to the file; the keyring read from it afterwards (the old one keeps
    /// answering with the old version).
    pub fn rotate(&self) -> Keyring {
        let path = self.dir.path().join(crate::verify::keys::KEY_FILE);
        crate::verify::keys::append_version(&path).unwrap();
        Keyring::load(&path).unwrap()
    }
}

/// An account to add; `Spec { id: "A-1", ..Spec::default() }`.
#[derive(Clone, Copy)]
pub(super) struct Spec<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub phone: &'a str,
    pub code: Option<&'a str>,
    pub totp: Option<&'a [u8]>,
    pub knowledge: &'a [(&'a str, &'a str)],
    pub attributes: &'a [(&'a str, &'a str)],
    pub test: bool,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Self {
            id: "A-1",
            name: "Ola Nordmann",
            phone: "+48601234567",
            code: None,
            totp: None,
            knowledge: &[],
            attributes: &[],
            test: false,
        }
    }
}

/// `add_account` of `spec` in the caller's transaction.
pub(super) fn try_add(
    db: &dyn Db,
    keys: &Keyring,
    spec: Spec<'_>,
    now: i64,
) -> Result<(), AddAccountError> {
    let id = AccountId::parse(spec.id).unwrap();
    let name = AccountName::parse(spec.name).unwrap();
    let phone = PhoneNumber::parse(spec.phone, Region::default()).unwrap();
    let code = spec.code.map(|c| AccountCode::parse(c).unwrap());
    let attributes: BTreeMap<String, String> = spec
        .attributes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let knowledge: Vec<(String, String)> = spec
        .knowledge
        .iter()
        .map(|(q, a)| ((*q).to_owned(), (*a).to_owned()))
        .collect();
    db.add_account(
        keys,
        &NewAccount {
            id: &id,
            name: &name,
            phone: &phone,
            code: code.as_ref(),
            totp_secret: spec.totp,
            attributes: &attributes,
            knowledge: &knowledge,
            test: spec.test,
        },
        now,
    )
}

/// Adds `spec` in a transaction of its own; it must succeed.
pub(super) fn add(store: &Store, keys: &Keyring, spec: Spec<'_>) {
    store
        .write_sync(|db| Ok(try_add(db, keys, spec, 1_000)?))
        .unwrap();
}

/// A rendezvous inside transactions: each waits until all `n` arrived, or for 50 ms. On
/// PostgreSQL every transaction arrives (they run side by side), so the statements after it
/// race; SQLite's transactions run one at a time, so there the first gives up waiting.
pub(super) struct Meet {
    n: usize,
    arrived: Mutex<usize>,
    all_in: Condvar,
}

impl Meet {
    pub fn wait(&self) {
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_in.notify_all();
        while *arrived < self.n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            arrived = self.all_in.wait_timeout(arrived, left).unwrap().0;
        }
    }
}

/// Runs `work(db, i, meet)` in `n` transactions at once (`store.write_sync` on `n` threads
/// released together); their results by `i`.
pub(super) fn race<T: Send>(
    store: &Store,
    n: usize,
    work: impl Fn(&dyn Db, usize, &Meet) -> anyhow::Result<T> + Sync,
) -> Vec<anyhow::Result<T>> {
    let start = Barrier::new(n);
    let meet = Meet {
        n,
        arrived: Mutex::new(0),
        all_in: Condvar::new(),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (start, meet, work) = (&start, &meet, &work);
                s.spawn(move || {
                    start.wait();
                    store.write_sync(|db| work(db, i, meet))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn an_account_is_stored_whole(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            id: "B-2",
            name: "Kari Nordmann",
            code: Some("12345678"),
            totp: Some(b"12345678901234567890"),
            knowledge: &[("dob", "14031985")],
            attributes: &[("tier", "gold"), ("branch", "Oslo")],
            test: true,
            ..Spec::default()
        },
    );
    add(store, &k.keys, Spec::default());
    let (one, all, missing) = store
        .read_sync(|db| Ok((db.account("B-2")?, db.accounts()?, db.account("Z-9")?)))
        .unwrap();
    let one = one.unwrap();
    assert_eq!(
        (one.id.as_str(), one.name.as_str(), one.phone.as_str()),
        ("B-2", "Kari Nordmann", "+48601234567")
    );
    assert!(one.has_code && one.has_totp && one.test);
    assert_eq!(
        one.attributes,
        BTreeMap::from([
            ("branch".to_owned(), "Oslo".to_owned()),
            ("tier".to_owned(), "gold".to_owned())
        ])
    );
    assert_eq!(
        (one.failed_count, one.locked_until, one.created_at),
        (0, None, 1_000)
    );
    let ids: Vec<_> = all.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["A-1", "B-2"], "by id");
    assert!(!all[0].has_code && !all[0].has_totp && !all[0].test);
    assert!(all[0].attributes.is_empty());
    assert!(missing.is_none());
    let questions = store.read_sync(|db| db.knowledge_questions("B-2")).unwrap();
    assert_eq!(questions, ["dob"]);
}

fn a_taken_id_or_code_is_refused_and_the_transaction_goes_on(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            code: Some("12345678"),
            ..Spec::default()
        },
    );
    let call_code = store
        .write_sync(|db| db.issue_call_code(&k.keys, "A-1", 60_000, 1_000))
        .unwrap();
    let (same_id, same_code, live_call_code, after) = store
        .write_sync(|db| {
            let same_id = try_add(db, &k.keys, Spec::default(), 2_000);
            let same_code = try_add(
                db,
                &k.keys,
                Spec {
                    id: "B-2",
                    code: Some("12345678"),
                    ..Spec::default()
                },
                2_000,
            );
            let live_call_code = try_add(
                db,
                &k.keys,
                Spec {
                    id: "C-3",
                    code: Some(&call_code),
                    ..Spec::default()
                },
                2_000,
            );
            // A refusal must leave the transaction usable (PostgreSQL aborts a transaction
            // on a failed statement).
            let after = try_add(
                db,
                &k.keys,
                Spec {
                    id: "D-4",
                    code: Some("87654321"),
                    ..Spec::default()
                },
                2_000,
            );
            Ok((same_id, same_code, live_call_code, after))
        })
        .unwrap();
    assert!(
        matches!(same_id, Err(AddAccountError::DuplicateId(ref id)) if id == "A-1"),
        "{same_id:?}"
    );
    assert!(
        matches!(same_code, Err(AddAccountError::DuplicateCode)),
        "{same_code:?}"
    );
    assert!(
        matches!(live_call_code, Err(AddAccountError::DuplicateCode)),
        "{live_call_code:?}"
    );
    after.unwrap();
    // An expired call code no longer holds its digits.
    store
        .write_sync(|db| {
            Ok(try_add(
                db,
                &k.keys,
                Spec {
                    id: "E-5",
                    code: Some(&call_code),
                    ..Spec::default()
                },
                61_000,
            )?)
        })
        .unwrap();
    let ids: Vec<String> = store
        .read_sync(|db| Ok(db.accounts()?.into_iter().map(|a| a.id).collect()))
        .unwrap();
    assert_eq!(ids, ["A-1", "D-4", "E-5"]);
}

fn accounts_added_at_once_with_one_id_or_code_have_one_winner(store: &Store) {
    let k = Keys::new();
    for round in 0..10 {
        let id = format!("R-{round}");
        let code = format!("5555000{round}");
        // The same id, and different ids with the same code.
        for (ids, refusal) in [([id.as_str(), id.as_str()], "id"), (["X-1", "X-2"], "code")] {
            let results = race(store, 2, |db, i, meet| {
                meet.wait();
                let code = if refusal == "code" {
                    Some(code.as_str())
                } else {
                    None
                };
                Ok(try_add(
                    db,
                    &k.keys,
                    Spec {
                        id: ids[i],
                        code,
                        ..Spec::default()
                    },
                    1_000,
                ))
            });
            let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
            let won = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(won, 1, "round {round} ({refusal}): {results:?}");
            assert!(
                results.iter().any(|r| match r {
                    Err(AddAccountError::DuplicateId(_)) => refusal == "id",
                    Err(AddAccountError::DuplicateCode) => refusal == "code",
                    _ => false,
                }),
                "round {round}: {results:?}"
            );
            if refusal == "code" {
                let found = store
                    .write_sync(|db| {
                        let found = db.find_account_by_code(&k.keys, &code)?;
                        if let Some(id) = &found {
                            db.remove_account(id)?;
                        }
                        Ok(found)
                    })
                    .unwrap();
                assert!(found.is_some(), "round {round}");
            }
        }
    }
    assert_eq!(store.read_sync(|db| db.count_accounts()).unwrap(), 10);
}

fn search_is_case_insensitive_literal_and_limited(store: &Store) {
    let k = Keys::new();
    for (id, name) in [
        ("ACC-1", "Ola Nordmann"),
        ("ACC-2", "Kari Hansen"),
        ("ACC_3", "Per 100% Olsen"),
        ("BCC-4", "Nils Nordli"),
    ] {
        add(
            store,
            &k.keys,
            Spec {
                id,
                name,
                ..Spec::default()
            },
        );
    }
    let search = |q: &str, limit: u32| -> Vec<String> {
        store
            .read_sync(|db| {
                Ok(db
                    .search_accounts(q, limit)?
                    .into_iter()
                    .map(|a| a.id)
                    .collect())
            })
            .unwrap()
    };
    assert_eq!(search("nord", 10), ["ACC-1", "BCC-4"], "by name, any case");
    assert_eq!(search("acc", 10), ["ACC-1", "ACC-2", "ACC_3"], "by id");
    assert_eq!(search("acc", 2), ["ACC-1", "ACC-2"], "limited");
    assert_eq!(search("_", 10), ["ACC_3"], "_ is literal");
    assert_eq!(search("0%", 10), ["ACC_3"], "% is literal");
    assert_eq!(search("\\", 10), Vec::<String>::new(), "\\ is literal");
    assert_eq!(search("", 10).len(), 4);
}

fn removing_an_account_takes_its_codes_and_answers(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            knowledge: &[("dob", "14031985")],
            ..Spec::default()
        },
    );
    let code = store
        .write_sync(|db| db.issue_call_code(&k.keys, "A-1", 60_000, 1_000))
        .unwrap();
    let (removed, again) = store
        .write_sync(|db| Ok((db.remove_account("A-1")?, db.remove_account("A-1")?)))
        .unwrap();
    assert!(removed && !again);
    let (live, answer, usage) = store
        .read_sync(|db| {
            Ok((
                db.find_live_call_code(&k.keys, &code, 2_000)?,
                db.has_knowledge_answer("A-1", "dob")?,
                db.key_usage(2_000)?,
            ))
        })
        .unwrap();
    assert!(live.is_none() && !answer);
    assert!(usage.values().all(|u| u.total() == 0), "{usage:?}");
}

fn a_phone_change_is_remembered(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    add(
        store,
        &k.keys,
        Spec {
            id: "B-2",
            phone: "+48602345678",
            ..Spec::default()
        },
    );
    let new_phone = PhoneNumber::parse("+48602345678", Region::default()).unwrap();
    let (changed, missing) = store
        .write_sync(|db| {
            Ok((
                db.set_account_phone("A-1", &new_phone, 5_000)?,
                db.set_account_phone("Z-9", &new_phone, 5_000)?,
            ))
        })
        .unwrap();
    assert!(changed && !missing);
    let (history, none, on_phone, old_phone) = store
        .read_sync(|db| {
            Ok((
                db.account_history("A-1")?,
                db.account_history("Z-9")?,
                db.account_ids_on_phone("+48602345678")?,
                db.account_ids_on_phone("+48601234567")?,
            ))
        })
        .unwrap();
    assert_eq!(history.phone_changed_at, Some(5_000));
    assert_eq!(history.last_locked_at, None);
    assert_eq!(none, Default::default());
    assert_eq!(on_phone, ["A-1", "B-2"]);
    assert!(old_phone.is_empty());
}

fn an_account_code_is_found_and_rekeyed_after_a_rotation(store: &Store) {
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            code: Some("12345678"),
            ..Spec::default()
        },
    );
    let (found, wrong) = store
        .write_sync(|db| {
            Ok((
                db.find_account_by_code(&k.keys, "12345678")?,
                db.find_account_by_code(&k.keys, "12345679")?,
            ))
        })
        .unwrap();
    assert_eq!(found.as_deref(), Some("A-1"));
    assert!(wrong.is_none());
    let v1 = k.keys.current_version();
    let rotated = k.rotate();
    let v2 = rotated.current_version();
    let before = store.read_sync(|db| db.key_usage(1_000)).unwrap();
    assert_eq!(before[&v1].account_codes, 1);
    let found = store
        .write_sync(|db| db.find_account_by_code(&rotated, "12345678"))
        .unwrap();
    assert_eq!(found.as_deref(), Some("A-1"));
    let after = store.read_sync(|db| db.key_usage(1_000)).unwrap();
    assert_eq!(after.get(&v1).map_or(0, |u| u.account_codes), 0);
    assert_eq!(after[&v2].account_codes, 1, "re-keyed under v{v2}");
    // Found under the new key directly now; the old keyring no longer finds it.
    let (new_key, old_key) = store
        .read_sync(|db| {
            Ok((
                db.find_account_by_code(&rotated, "12345678")?,
                db.find_account_by_code(&k.keys, "12345678")?,
            ))
        })
        .unwrap();
    assert_eq!(new_key.as_deref(), Some("A-1"));
    assert!(old_key.is_none());
}

fn a_rekey_onto_a_hash_another_account_holds_is_skipped(store: &Store) {
    // Two accounts whose codes are equal under different key versions (only possible through
    // seeding, which skips the checks): re-keying one onto the other's hash is skipped, as
    // SQLite's UPDATE OR IGNORE does, and the transaction goes on.
    let k = Keys::new();
    let rotated = k.rotate();
    let id = AccountId::parse("OLD-1").unwrap();
    let (name, attributes) = (AccountName::parse("Ola").unwrap(), BTreeMap::new());
    let phone = PhoneNumber::parse("+48601234567", Region::default()).unwrap();
    let code = AccountCode::parse("12345678").unwrap();
    store
        .write_sync(|db| {
            db.insert_account(
                &k.keys,
                &NewAccount {
                    id: &id,
                    name: &name,
                    phone: &phone,
                    code: Some(&code),
                    totp_secret: None,
                    attributes: &attributes,
                    knowledge: &[],
                    test: false,
                },
                1_000,
            )
        })
        .unwrap();
    let new_id = AccountId::parse("NEW-1").unwrap();
    store
        .write_sync(|db| {
            db.insert_account(
                &rotated,
                &NewAccount {
                    id: &new_id,
                    name: &name,
                    phone: &phone,
                    code: Some(&code),
                    totp_secret: None,
                    attributes: &attributes,
                    knowledge: &[],
                    test: false,
                },
                1_000,
            )
        })
        .unwrap();
    let (found, later) = store
        .write_sync(|db| {
            let found = db.find_account_by_code(&rotated, "12345678")?;
            Ok((found, db.count_accounts()?))
        })
        .unwrap();
    assert_eq!(found.as_deref(), Some("OLD-1"), "oldest version first");
    assert_eq!(later, 2);
    let usage = store.read_sync(|db| db.key_usage(1_000)).unwrap();
    assert_eq!(usage[&k.keys.current_version()].account_codes, 1);
    assert_eq!(usage[&rotated.current_version()].account_codes, 1);
}

fn a_totp_secret_decrypts_and_is_resealed_after_a_rotation(store: &Store) {
    let k = Keys::new();
    let secret: &[u8] = b"12345678901234567890";
    add(
        store,
        &k.keys,
        Spec {
            totp: Some(secret),
            ..Spec::default()
        },
    );
    add(
        store,
        &k.keys,
        Spec {
            id: "B-2",
            ..Spec::default()
        },
    );
    let (got, none, missing) = store
        .write_sync(|db| {
            Ok((
                db.totp_secret(&k.keys, "A-1")?,
                db.totp_secret(&k.keys, "B-2")?,
                db.totp_secret(&k.keys, "Z-9")?,
            ))
        })
        .unwrap();
    assert_eq!(got.as_deref().map(Vec::as_slice), Some(secret));
    assert!(none.is_none() && missing.is_none());
    let rotated = k.rotate();
    let got = store
        .write_sync(|db| db.totp_secret(&rotated, "A-1"))
        .unwrap();
    assert_eq!(got.as_deref().map(Vec::as_slice), Some(secret));
    let usage = store.read_sync(|db| db.key_usage(1_000)).unwrap();
    assert_eq!(usage[&rotated.current_version()].totp_secrets, 1);
    assert_eq!(
        usage
            .get(&k.keys.current_version())
            .map_or(0, |u| u.totp_secrets),
        0
    );
}

fn a_totp_step_is_accepted_once_and_only_forward(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    let steps = store
        .write_sync(|db| {
            Ok([
                db.advance_totp_step("A-1", 100)?,
                db.advance_totp_step("A-1", 100)?,
                db.advance_totp_step("A-1", 99)?,
                db.advance_totp_step("A-1", 101)?,
                db.advance_totp_step("Z-9", 1)?,
            ])
        })
        .unwrap();
    assert_eq!(steps, [true, false, false, true, false]);
    let too_big = store.write_sync(|db| db.advance_totp_step("A-1", u64::MAX));
    assert!(too_big.is_err());
}

fn one_totp_step_presented_at_once_is_accepted_once(store: &Store) {
    let k = Keys::new();
    add(store, &k.keys, Spec::default());
    for round in 0..50u64 {
        let step = 1_000 + round;
        let results = race(store, 2, |db, _, meet| {
            // What the engine does: look at the account, then claim the step.
            db.account("A-1")?;
            meet.wait();
            db.advance_totp_step("A-1", step)
        });
        let won: Vec<bool> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
    }
}

fn counts_tell_test_and_prefixed_accounts(store: &Store) {
    let k = Keys::new();
    for (id, test) in [
        ("LOAD-1", false),
        ("LOAD-2", true),
        ("LOADX", false),
        ("L_AD-3", false),
    ] {
        add(
            store,
            &k.keys,
            Spec {
                id,
                test,
                ..Spec::default()
            },
        );
    }
    let counts = store
        .read_sync(|db| {
            Ok((
                db.count_accounts()?,
                db.count_real_accounts()?,
                db.count_accounts_with_id_prefix("LOAD-")?,
                db.count_accounts_with_id_prefix("L_AD")?,
                db.count_accounts_with_id_prefix("L%")?,
                db.count_accounts_with_id_prefix("")?,
            ))
        })
        .unwrap();
    assert_eq!(counts, (4, 3, 2, 1, 0, 4));
}

fn the_scratch_store_holds_copies_of_the_test_accounts(store: &Store) {
    let k = Keys::new();
    let secret: &[u8] = b"12345678901234567890";
    add(
        store,
        &k.keys,
        Spec {
            id: "TEST-1",
            code: Some("12345678"),
            totp: Some(secret),
            knowledge: &[("dob", "14031985"), ("pin", "4321")],
            attributes: &[("tier", "gold")],
            test: true,
            ..Spec::default()
        },
    );
    add(
        store,
        &k.keys,
        Spec {
            id: "REAL-1",
            code: Some("87654321"),
            knowledge: &[("dob", "01011990")],
            ..Spec::default()
        },
    );
    let now = crate::store::now_ms();
    let (live, used, real) = store
        .write_sync(|db| {
            let live = db.issue_call_code(&k.keys, "TEST-1", 600_000, now)?;
            let used = db.issue_call_code(&k.keys, "TEST-1", 600_000, now)?;
            let (id, _) = db.find_live_call_code(&k.keys, &used, now)?.unwrap();
            assert!(db.consume_call_code(id, "CA1", now)?);
            let real = db.issue_call_code(&k.keys, "REAL-1", 600_000, now)?;
            db.bump_account_failures("TEST-1")?;
            db.advance_totp_step("TEST-1", 7)?;
            Ok((live, used, real))
        })
        .unwrap();

    let scratch = store.scratch_with_test_accounts().unwrap();
    let accounts = scratch.read_sync(|db| db.accounts()).unwrap();
    assert_eq!(accounts.len(), 1, "the test account only");
    let copy = &accounts[0];
    let original = store.read_sync(|db| db.account("TEST-1")).unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(copy).unwrap(),
        serde_json::to_value(&original).unwrap()
    );
    assert_eq!(copy.failed_count, 1);
    scratch
        .write_sync(|db| {
            assert_eq!(
                db.find_account_by_code(&k.keys, "12345678")?.as_deref(),
                Some("TEST-1")
            );
            assert!(db.find_account_by_code(&k.keys, "87654321")?.is_none());
            assert_eq!(
                db.totp_secret(&k.keys, "TEST-1")?
                    .as_deref()
                    .map(Vec::as_slice),
                Some(secret)
            );
            assert!(
                !db.advance_totp_step("TEST-1", 7)?,
                "the replay guard came along"
            );
            assert!(db.check_knowledge_answer(&k.keys, "TEST-1", "dob", "14031985")?);
            assert!(db.check_knowledge_answer(&k.keys, "TEST-1", "pin", "4321")?);
            assert!(!db.has_knowledge_answer("REAL-1", "dob")?);
            let (id, account) = db.find_live_call_code(&k.keys, &live, now)?.unwrap();
            assert_eq!(account, "TEST-1");
            assert!(db.find_live_call_code(&k.keys, &used, now)?.is_none());
            assert!(db.find_live_call_code(&k.keys, &real, now)?.is_none());
            assert!(db.consume_call_code(id, "CA-SIM", now)?);
            db.remove_account("TEST-1")?;
            Ok(())
        })
        .unwrap();
    // The simulator's writes stayed in the scratch store.
    let (ids, live_again) = store
        .read_sync(|db| {
            Ok((
                db.accounts()?.into_iter().map(|a| a.id).collect::<Vec<_>>(),
                db.find_live_call_code(&k.keys, &live, now)?,
            ))
        })
        .unwrap();
    assert_eq!(ids, ["REAL-1", "TEST-1"]);
    assert!(live_again.is_some());
    let rows = store.read_sync(|db| db.test_account_rows()).unwrap();
    assert_eq!(
        (
            rows.accounts.len(),
            rows.knowledge.len(),
            rows.call_codes.len()
        ),
        (1, 2, 1),
        "the test account, its answers and its unused code"
    );
}

both_backends!(
    an_account_is_stored_whole,
    a_taken_id_or_code_is_refused_and_the_transaction_goes_on,
    accounts_added_at_once_with_one_id_or_code_have_one_winner,
    search_is_case_insensitive_literal_and_limited,
    removing_an_account_takes_its_codes_and_answers,
    a_phone_change_is_remembered,
    an_account_code_is_found_and_rekeyed_after_a_rotation,
    a_rekey_onto_a_hash_another_account_holds_is_skipped,
    a_totp_secret_decrypts_and_is_resealed_after_a_rotation,
    a_totp_step_is_accepted_once_and_only_forward,
    one_totp_step_presented_at_once_is_accepted_once,
    counts_tell_test_and_prefixed_accounts,
    the_scratch_store_holds_copies_of_the_test_accounts,
);

/// The row copy (`AccountRow`, `KnowledgeRow`, `CallCodeRow`) names every column, on both
/// schemas: a column added to a table and not to its row type would be lost in the simulator's
/// scratch copy of a PostgreSQL database.
#[test]
fn the_row_copy_names_every_column() {
    let expected: [(&str, &[&str]); 3] = [
        (
            "accounts",
            &[
                "attributes",
                "code_hash",
                "code_key_version",
                "created_at",
                "failed_count",
                "id",
                "last_locked_at",
                "locked_until",
                "name",
                "phone",
                "phone_changed_at",
                "test",
                "totp_key_version",
                "totp_last_step",
                "totp_secret",
            ],
        ),
        (
            "account_knowledge",
            &["account_id", "answer_hash", "key_version", "question"],
        ),
        (
            "call_codes",
            &[
                "account_id",
                "code_hash",
                "created_at",
                "expires_at",
                "id",
                "key_version",
                "used_at",
                "used_by_call",
            ],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path()).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("callgate.db")).unwrap();
    let fresh = super::postgres();
    let url = fresh.url().to_owned();
    let pg_columns = std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        expected.map(|(table, _)| {
            let mut columns: Vec<String> = client
                .query(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1",
                    &[&table],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            columns.sort();
            columns
        })
    })
    .join()
    .unwrap();
    for ((table, columns), pg) in expected.iter().zip(pg_columns) {
        let mut sqlite: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        sqlite.sort();
        assert_eq!(sqlite, *columns, "SQLite's {table}");
        assert_eq!(pg, *columns, "PostgreSQL's {table}");
    }
}

/// On SQLite the scratch store is made by attaching the live file; built from the rows instead
/// (PostgreSQL's way) it holds the same.
#[test]
fn the_scratch_store_from_rows_equals_the_attached_copy() {
    let fresh = super::sqlite();
    let store = &fresh.store;
    let k = Keys::new();
    add(
        store,
        &k.keys,
        Spec {
            id: "TEST-1",
            code: Some("12345678"),
            totp: Some(b"12345678901234567890"),
            knowledge: &[("dob", "14031985")],
            test: true,
            ..Spec::default()
        },
    );
    add(
        store,
        &k.keys,
        Spec {
            id: "TEST-2",
            phone: "+48602345678",
            test: true,
            ..Spec::default()
        },
    );
    add(
        store,
        &k.keys,
        Spec {
            id: "REAL-1",
            ..Spec::default()
        },
    );
    store
        .write_sync(|db| {
            db.issue_call_code(&k.keys, "TEST-1", 60_000, 1_000)?;
            db.issue_call_code(&k.keys, "REAL-1", 60_000, 1_000)?;
            db.lock_account("TEST-2", 9_000, 2_000)?;
            db.set_account_phone(
                "TEST-1",
                &PhoneNumber::parse("+48603456789", Region::default()).unwrap(),
                3_000,
            )?;
            Ok(())
        })
        .unwrap();
    let attached = store.scratch_with_test_accounts().unwrap();
    let rows = store.read_sync(|db| db.test_account_rows()).unwrap();
    let built = crate::store::sqlite::scratch::from_rows(&rows).unwrap();
    let dump = |s: &Store| {
        let rows = s.read_sync(|db| db.test_account_rows()).unwrap();
        let accounts: Vec<String> = rows
            .accounts
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} {:?} {:?} {:?} {:?} {:?} {} {} {:?} {} {} {:?} {:?}",
                    a.id,
                    a.name,
                    a.phone,
                    a.code_hash,
                    a.code_key_version,
                    a.totp_secret,
                    a.totp_key_version,
                    a.totp_last_step,
                    a.attributes,
                    a.failed_count,
                    a.locked_until,
                    a.created_at,
                    a.test,
                    a.phone_changed_at,
                    a.last_locked_at
                )
            })
            .collect();
        let knowledge: Vec<String> = rows
            .knowledge
            .iter()
            .map(|k| {
                format!(
                    "{} {} {:?} {}",
                    k.account_id, k.question, k.answer_hash, k.key_version
                )
            })
            .collect();
        let codes: Vec<String> = rows
            .call_codes
            .iter()
            .map(|c| {
                format!(
                    "{} {} {:?} {} {} {} {:?} {:?}",
                    c.id,
                    c.account_id,
                    c.code_hash,
                    c.key_version,
                    c.created_at,
                    c.expires_at,
                    c.used_at,
                    c.used_by_call
                )
            })
            .collect();
        (accounts, knowledge, codes)
    };
    let (a, b) = (dump(&attached), dump(&built));
    assert_eq!(a, b);
    assert_eq!((a.0.len(), a.1.len(), a.2.len()), (2, 1, 1));
    // Sanity: the copy is of real hashes, not empty ones.
    assert!(
        built
            .read_sync(|db| db.find_account_by_code(&k.keys, "12345678"))
            .unwrap()
            .is_some()
    );
}
