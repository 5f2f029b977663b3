//! Key custody: rotate the server key and retire old versions, wherever the keys are kept (the
//! key file, or the database's key ring on PostgreSQL: `verify::custody`). Each is audited
//! (`keys.rotate`, `keys.retire`) with the version, never key material. Changes take turns:
//! the key file's lock, or the ring's lock in the database.

use std::time::Duration;

use super::{Actor, Refused, Result};
use crate::store::Store;
use crate::store::key_usage::{self, Usage};
use crate::verify::KeyCustody;

/// What a rotation did.
pub struct Rotated {
    /// The new current version.
    pub version: u32,
    /// TOTP secrets re-encrypted under it.
    pub resealed: u64,
    /// Code hashes still under older versions: each is re-keyed when its code is next used.
    pub old_code_hashes: u64,
}

/// Adds a new key version, makes it current and re-encrypts every TOTP secret under it.
/// Running servers take the new key within a second (key file: on their next look at it;
/// database: at the commit's NOTIFY); `pickup_wait` gives them that time before anything is
/// sealed under a key they may not have yet. The keys change between transactions, so this
/// takes the store rather than one transaction's `Db`.
pub fn rotate(
    store: &Store,
    custody: &KeyCustody,
    actor: &Actor,
    pickup_wait: Duration,
    now: impl Fn() -> i64,
) -> Result<Rotated> {
    let _lock = custody.lock()?;
    // Never add a key to a ring that is not this database's.
    let current = custody.read(store)?;
    store.read_sync(|db| key_usage::check_keyring(db, &current))?;
    let version = custody.add_version(store, now())?;
    let keyring = custody.read(store)?;
    if !keyring.has_version(version) {
        return Err(anyhow::anyhow!(
            "the {} did not take the new key version v{version}",
            custody.describe()
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

/// Removes an old key version, once nothing stored uses it; the current version never. The
/// keys' lock is taken first and the database's write lock only for the audit entry, which
/// commits with the removal (key file: once the file has changed): a server's writer never
/// waits on the key file.
pub fn retire(
    store: &Store,
    custody: &KeyCustody,
    actor: &Actor,
    version: u32,
    now: i64,
) -> Result<()> {
    let _lock = custody.lock()?;
    let keyring = custody.read(store)?;
    if !keyring.has_version(version) {
        return Err(Refused::NotFound(format!(
            "the {} holds no key version v{version}",
            custody.describe()
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
        // Keys that cannot be changed roll the entry back.
        custody.remove_version(db, version)
    })?;
    tracing::info!(actor = %actor, version, "key version retired");
    Ok(())
}
