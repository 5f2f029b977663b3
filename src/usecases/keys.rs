//! Key custody: rotate the server key and retire old versions. Each is audited (`keys.rotate`,
//! `keys.retire`) with the version, never key material. Both hold the key file's lock, so two
//! operators cannot change the file at once.

use std::path::Path;
use std::time::Duration;

use super::{Actor, Refused, Result};
use crate::store::Store;
use crate::store::key_usage::{self, Usage};
use crate::verify::Keyring;
use crate::verify::keys::{self, KeyFileLock};

/// What a rotation did.
pub struct Rotated {
    /// The new current version.
    pub version: u32,
    /// TOTP secrets re-encrypted under it.
    pub resealed: u64,
    /// Code hashes still under older versions: each is re-keyed when its code is next used.
    pub old_code_hashes: u64,
}

/// Adds a new key version to `key_file`, makes it current and re-encrypts every TOTP secret
/// under it. Running servers read the file again within a second; `pickup_wait` gives them
/// that time before anything is sealed under a key they may not have yet. The key file changes
/// between transactions, so this takes the store rather than one transaction's `Db`.
pub fn rotate(
    store: &Store,
    key_file: &Path,
    actor: &Actor,
    pickup_wait: Duration,
    now: impl Fn() -> i64,
) -> Result<Rotated> {
    let _lock = KeyFileLock::acquire(key_file)?;
    // Never add a key to a file that is not this database's.
    let current = Keyring::load(key_file)?;
    store.read_sync(|db| key_usage::check_keyring(db, &current))?;
    let version = keys::append_version(key_file)?;
    let keyring = Keyring::load(key_file)?;
    if keyring.current_version() != version {
        return Err(anyhow::anyhow!(
            "{} did not take the new key version v{version}",
            key_file.display()
        )
        .into());
    }
    std::thread::sleep(pickup_wait);
    // The secrets re-sealed and the entry that says so commit together.
    let resealed = store.write_sync(|db| {
        let resealed = db.reseal_totp_secrets(&keyring)?;
        db.append_audit(
            actor.as_str(),
            "keys.rotate",
            "keys",
            &format!(
                "key version v{version} added and made current; {resealed} TOTP secret(s) re-encrypted"
            ),
            now(),
        )?;
        Ok(resealed)
    })?;
    let old_code_hashes = store
        .read_sync(|db| db.key_usage(now()))?
        .iter()
        .filter(|(v, _)| **v != version)
        .map(|(_, u)| u.code_hashes())
        .sum();
    tracing::info!(actor = %actor, version, "key version added");
    Ok(Rotated {
        version,
        resealed,
        old_code_hashes,
    })
}

/// Removes an old key version from `key_file`, once nothing stored uses it; the current
/// version never. The key file's lock is taken first and the database's write lock only for
/// the audit entry, which commits once the file has changed: a server's writer never waits on
/// the key file.
pub fn retire(store: &Store, key_file: &Path, actor: &Actor, version: u32, now: i64) -> Result<()> {
    let _lock = KeyFileLock::acquire(key_file)?;
    let keyring = Keyring::load(key_file)?;
    if !keyring.has_version(version) {
        return Err(Refused::NotFound(format!(
            "{} holds no key version v{version}",
            key_file.display()
        ))
        .into());
    }
    if keyring.current_version() == version {
        return Err(Refused::Conflict(format!(
            "v{version} is the current key version: `callgate keys rotate` first, then retire v{version} once nothing uses it"
        ))
        .into());
    }
    let usage: Usage = store
        .read_sync(|db| db.key_usage(now))?
        .get(&version)
        .copied()
        .unwrap_or_default();
    if usage.total() > 0 {
        return Err(Refused::Conflict(format!(
            "key version v{version} is still used by {}: not retired. Codes are re-keyed when next \
             used; an account whose code is never used again can be given a new code",
            usage.describe()
        ))
        .into());
    }
    store.write_sync(|db| {
        db.append_audit(
            actor.as_str(),
            "keys.retire",
            "keys",
            &format!("key version v{version} removed"),
            now,
        )?;
        // A file that cannot be changed rolls the entry back.
        keys::remove_version(key_file, version)
    })?;
    tracing::info!(actor = %actor, version, "key version retired");
    Ok(())
}
