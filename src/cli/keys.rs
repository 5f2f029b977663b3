//! `callgate keys ...`: key custody. `rotate` adds a new current key version and re-encrypts
//! the TOTP secrets under it; code hashes follow on their next successful use; `retire` drops an
//! old version once nothing uses it; `status` shows where things stand.

use anyhow::{Context, bail};
use clap::Subcommand;

use super::operator;
use crate::store::{Store, key_usage, now_ms};
use crate::usecases::keys;
use crate::verify::KeyCustody;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key version and make it current; re-encrypt every TOTP secret under it. Code
    /// hashes are re-keyed as each code is next used. A running server picks the new key up
    /// within a second (or at once on SIGHUP).
    Rotate,
    /// The key versions present, the current one, and how many stored secrets use each.
    Status,
    /// Remove an old key version from the keys, once nothing uses it any more.
    Retire {
        /// The version to remove, as `2` or `v2`.
        version: String,
    },
}

/// How long a running server may take to notice changed keys, plus a margin.
const PICKUP_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

pub fn run(cmd: KeysCommand, place: &crate::store::Location) -> anyhow::Result<()> {
    let store = Store::at(place)?;
    let custody = KeyCustody::of(&store, &place.data_dir)?;
    match cmd {
        KeysCommand::Rotate => rotate(&store, &custody),
        KeysCommand::Status => status(&store, &custody),
        KeysCommand::Retire { version } => {
            let version = version
                .trim()
                .trim_start_matches(['v', 'V'])
                .parse::<u32>()
                .with_context(|| format!("{version:?} is not a key version (such as v1)"))?;
            keys::retire(&store, &custody, &operator(), version, now_ms())?;
            println!(
                "key version v{version} removed from the {}",
                custody.describe()
            );
            Ok(())
        }
    }
}

fn rotate(store: &Store, custody: &KeyCustody) -> anyhow::Result<()> {
    let rotated = keys::rotate(store, custody, &operator(), PICKUP_WAIT, now_ms)?;
    let version = rotated.version;
    println!(
        "key version v{version} added to the {} and made current",
        custody.describe()
    );
    println!(
        "{} TOTP secret(s) re-encrypted under v{version}",
        rotated.resealed
    );
    println!(
        "{} code hash(es) still on older key versions: each is re-keyed when its code is next used \
         (`callgate keys status` shows the count; `callgate keys retire VERSION` once it is 0)",
        rotated.old_code_hashes
    );
    match custody {
        KeyCustody::File(path) => println!(
            "back up the new {} now, apart from the database",
            path.display()
        ),
        KeyCustody::Database { .. } => println!(
            "every node took the new version from the database; the database's backups carry it, wrapped (keep the key-encryption key apart from them)"
        ),
    }
    Ok(())
}

fn status(store: &Store, custody: &KeyCustody) -> anyhow::Result<()> {
    let keyring = custody.read(store)?;
    let usage = store.read_sync(|db| db.key_usage(now_ms()))?;
    let current = keyring.current_version();
    println!("keys: {}", custody.describe());
    let mut versions: Vec<u32> = keyring.versions();
    versions.extend(usage.keys().copied().filter(|v| !keyring.has_version(*v)));
    versions.sort_unstable();
    for v in versions {
        let u = usage.get(&v).copied().unwrap_or_default();
        let mark = if v == current {
            " (current)"
        } else if !keyring.has_version(v) {
            " (MISSING from the keys)"
        } else if u.total() == 0 {
            " (unused: can be retired)"
        } else {
            ""
        };
        println!(
            "v{v}{mark}: {} account code(s), {} TOTP secret(s), {} live call code(s), {} knowledge answer(s)",
            u.account_codes, u.totp_secrets, u.live_call_codes, u.knowledge_answers
        );
    }
    if let Err(e) = store.read_sync(|db| key_usage::check_keyring(db, &keyring)) {
        bail!("{e:#}");
    }
    Ok(())
}
