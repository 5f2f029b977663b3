//! `callgate keys ...`: key custody. `rotate` adds a new current key version and re-encrypts
//! the TOTP secrets under it; code hashes follow on their next successful use; `retire` drops an
//! old version once nothing uses it; `status` shows where things stand.

use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::store::{Store, key_usage, now_ms};
use crate::verify::Keyring;
use crate::verify::keys::{self, KEY_FILE, KeyFileLock};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key version and make it current; re-encrypt every TOTP secret under it. Code
    /// hashes are re-keyed as each code is next used. A running server picks the new key up
    /// within a second (or at once on SIGHUP).
    Rotate,
    /// The key versions present, the current one, and how many stored secrets use each.
    Status,
    /// Remove an old key version from the key file, once nothing uses it any more.
    Retire {
        /// The version to remove, as `2` or `v2`.
        version: String,
    },
}

/// How long a running server may take to notice a changed key file, plus a margin.
const PICKUP_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

pub fn run(cmd: KeysCommand, data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        bail!(
            "no key file at {}: the server creates one on first start (`callgate serve`), or restore it from its backup",
            path.display()
        );
    }
    match cmd {
        KeysCommand::Rotate => rotate(data_dir, &path),
        KeysCommand::Status => status(data_dir, &path),
        KeysCommand::Retire { version } => {
            let version = version
                .trim()
                .trim_start_matches(['v', 'V'])
                .parse::<u32>()
                .with_context(|| format!("{version:?} is not a key version (such as v1)"))?;
            retire(data_dir, &path, version)
        }
    }
}

fn rotate(data_dir: &Path, path: &Path) -> anyhow::Result<()> {
    let _lock = KeyFileLock::acquire(path)?;
    let store = Store::open(data_dir)?;
    // Never add a key to a file that is not this database's.
    let current = Keyring::load(path)?;
    store.read_sync(|db| key_usage::check_keyring(db, &current))?;
    let version = keys::append_version(path)?;
    let keyring = Keyring::load(path)?;
    if keyring.current_version() != version {
        bail!(
            "{} did not take the new key version v{version}",
            path.display()
        );
    }
    println!(
        "key version v{version} added to {} and made current",
        path.display()
    );
    // Running servers read the file again within a second; until they have, they must still be
    // able to decrypt what is re-sealed below.
    std::thread::sleep(PICKUP_WAIT);
    let resealed = store.write_sync(|db| db.reseal_totp_secrets(&keyring))?;
    println!("{resealed} TOTP secret(s) re-encrypted under v{version}");
    let usage = store.read_sync(|db| db.key_usage(now_ms()))?;
    let old: u64 = usage
        .iter()
        .filter(|(v, _)| **v != version)
        .map(|(_, u)| u.code_hashes())
        .sum();
    println!(
        "{old} code hash(es) still on older key versions: each is re-keyed when its code is next used \
         (`callgate keys status` shows the count; `callgate keys retire VERSION` once it is 0)"
    );
    println!(
        "back up the new {} now, apart from the database",
        path.display()
    );
    Ok(())
}

fn status(data_dir: &Path, path: &Path) -> anyhow::Result<()> {
    let keyring = Keyring::load(path)?;
    let store = Store::open(data_dir)?;
    let usage = store.read_sync(|db| db.key_usage(now_ms()))?;
    let current = keyring.current_version();
    println!("key file: {}", path.display());
    let mut versions: Vec<u32> = keyring.versions();
    versions.extend(usage.keys().copied().filter(|v| !keyring.has_version(*v)));
    versions.sort_unstable();
    for v in versions {
        let u = usage.get(&v).copied().unwrap_or_default();
        let mark = if v == current {
            " (current)"
        } else if !keyring.has_version(v) {
            " (MISSING from the key file)"
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

fn retire(data_dir: &Path, path: &Path, version: u32) -> anyhow::Result<()> {
    let _lock = KeyFileLock::acquire(path)?;
    let keyring = Keyring::load(path)?;
    if !keyring.has_version(version) {
        bail!("{} holds no key version v{version}", path.display());
    }
    if keyring.current_version() == version {
        bail!(
            "v{version} is the current key version: `callgate keys rotate` first, then retire v{version} once nothing uses it"
        );
    }
    let store = Store::open(data_dir)?;
    let usage = store
        .read_sync(|db| db.key_usage(now_ms()))?
        .get(&version)
        .copied()
        .unwrap_or_default();
    if usage.total() > 0 {
        bail!(
            "key version v{version} is still used by {}: not retired. Codes are re-keyed when next \
             used; an account whose code is never used again can be given a new code",
            usage.describe()
        );
    }
    keys::remove_version(path, version)?;
    println!("key version v{version} removed from {}", path.display());
    Ok(())
}
