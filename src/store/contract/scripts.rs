//! Script versions: numbered 1, 2, 3 ... per script, even when several transactions (nodes)
//! add versions at once; one published version per script; every change audited.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use super::Fresh;
use super::raw::both_fresh;
use crate::store::Store;
use crate::store::audit::Verdict;

fn add(store: &Store, name: &str, source: &str, at: i64) -> anyhow::Result<i64> {
    let (name, source) = (name.to_owned(), source.to_owned());
    store.write_sync(move |db| db.add_script_version(&name, &source, "api", "ada", at))
}

fn publish(store: &Store, name: &str, version: i64, at: i64) -> anyhow::Result<()> {
    let name = name.to_owned();
    store.write_sync(move |db| db.publish_script(&name, version, "bob", at))
}

fn versions_round_trip_and_are_audited(fresh: &Fresh) {
    let store = &fresh.store;
    assert_eq!(add(store, "default", "a = 1\n", 1_000).unwrap(), 1);
    assert_eq!(add(store, "default", "a = 2\n", 2_000).unwrap(), 2);
    store
        .read_sync(|db| {
            assert_eq!(
                db.latest_script("default")?,
                Some((2, "a = 2\n".to_owned()))
            );
            assert_eq!(db.latest_script("missing")?, None);
            assert!(db.script_has_source("default", "a = 1\n")?);
            assert!(!db.script_has_source("default", "a = 3\n")?);
            assert!(!db.script_has_source("missing", "a = 1\n")?);
            assert_eq!(db.script_source("default", 1)?.as_deref(), Some("a = 1\n"));
            assert_eq!(db.script_source("default", 3)?, None);
            assert_eq!(db.published_version("default")?, None);
            assert_eq!(db.published_version("missing")?, None);
            assert!(db.published_scripts()?.is_empty());
            Ok(())
        })
        .unwrap();

    let refused = publish(store, "default", 3, 2_500).unwrap_err();
    assert_eq!(refused.to_string(), "script default has no version 3");
    publish(store, "default", 2, 3_000).unwrap();
    publish(store, "default", 1, 4_000).unwrap();
    store
        .read_sync(|db| {
            assert_eq!(db.published_version("default")?, Some(1));
            assert_eq!(
                db.published_scripts()?,
                [("default".to_owned(), 1, "a = 1\n".to_owned())]
            );
            let rows = db.scripts()?;
            assert_eq!(rows.len(), 1);
            let row = &rows[0];
            assert_eq!(
                (
                    row.name.as_str(),
                    row.published_version,
                    row.latest_version,
                    row.versions
                ),
                ("default", Some(1), 2, 2)
            );
            assert_eq!(row.updated_at.as_deref(), Some("1970-01-01T00:00:04.000Z"));
            let versions = db.script_versions("default")?;
            assert_eq!(
                versions
                    .iter()
                    .map(|v| (v.version, v.published, v.origin.as_str(), v.author.as_str()))
                    .collect::<Vec<_>>(),
                [(2, false, "api", "ada"), (1, true, "api", "ada")]
            );
            assert_eq!(
                versions[1].sha256,
                crate::store::scripts::sha256_hex("a = 1\n")
            );
            assert_eq!(
                versions[0].created_at.as_deref(),
                Some("1970-01-01T00:00:02.000Z")
            );
            assert!(db.script_versions("missing")?.is_empty());
            Ok(())
        })
        .unwrap();

    let trail = store
        .read_sync(|db| db.recent_audit(Some("script:default"), 10))
        .unwrap();
    let said: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e.action.as_str(), e.detail.lines().next().unwrap_or("")))
        .collect();
    assert_eq!(
        said,
        [
            ("script.publish", "rolled back from version 2 to version 1"),
            ("script.publish", "published version 2"),
            ("script.save", "version 2 (api)"),
            ("script.save", "version 1 (api)"),
        ]
    );
    assert!(
        trail[2].detail.contains("-a = 1\n+a = 2"),
        "{}",
        trail[2].detail
    );
    assert_eq!(trail[0].actor, "bob");
    assert_eq!(
        store
            .read_sync(|db| db.last_audit_seq("script.publish"))
            .unwrap(),
        trail[0].seq
    );
}

/// Lists come in byte order of the names, whatever the database's locale.
fn scripts_are_listed_by_name_in_byte_order(fresh: &Fresh) {
    fresh
        .raw()
        .collate_by_locale(&["scripts.name", "script_versions.name"]);
    let store = &fresh.store;
    for name in ["beta", "Zeta", "alpha", "Ärger", "_x"] {
        add(store, name, name, 1).unwrap();
        publish(store, name, 1, 2).unwrap();
    }
    let expected = ["Zeta", "_x", "alpha", "beta", "Ärger"];
    let (listed, published) = store
        .read_sync(|db| Ok((db.scripts()?, db.published_scripts()?)))
        .unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        published.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        expected
    );
}

/// Threads (nodes) adding versions of one script at once get 1, 2, 3 ... each once: the
/// first round races to create the script, the next adds to an existing one.
fn concurrent_version_adds_get_distinct_numbers(fresh: &Fresh) {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    for round in 0..ROUNDS {
        let name = format!("race{round}");
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = fresh.store.clone();
                let barrier = barrier.clone();
                let name = name.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let first = add(&store, &name, &format!("t{t} first"), 1).unwrap();
                    let second = add(&store, &name, &format!("t{t} second"), 2).unwrap();
                    [first, second]
                })
            })
            .collect();
        let mut numbers = BTreeSet::new();
        for h in handles {
            for n in h.join().unwrap() {
                assert!(numbers.insert(n), "version {n} of {name} twice");
            }
        }
        let total = i64::try_from(THREADS * 2).unwrap();
        assert_eq!(numbers, (1..=total).collect::<BTreeSet<_>>(), "{name}");
        let versions = fresh
            .store
            .read_sync(move |db| db.script_versions(&name))
            .unwrap();
        assert_eq!(versions.len(), THREADS * 2);
    }
    assert!(matches!(
        fresh.store.read_sync(|db| db.verify_audit()).unwrap(),
        Verdict::Intact { entries, .. } if entries == i64::try_from(THREADS * 2 * ROUNDS).unwrap()
    ));
}

both_fresh!(
    versions_round_trip_and_are_audited,
    scripts_are_listed_by_name_in_byte_order,
    concurrent_version_adds_get_distinct_numbers,
);
