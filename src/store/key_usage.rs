//! Which key version each stored secret was made with: what `callgate keys status` shows, what
//! `keys retire` must find unused, what `keys rotate` re-encrypts, and the check that the key
//! file is the one the database was written with.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::verify::Keyring;

use super::Db;

/// How many stored secrets use one key version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub account_codes: u64,
    pub totp_secrets: u64,
    /// Unused, unexpired call codes only: a used or expired code is never looked up again.
    pub live_call_codes: u64,
    pub knowledge_answers: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.account_codes + self.totp_secrets + self.live_call_codes + self.knowledge_answers
    }

    /// The code hashes (which only a successful use can re-key).
    pub fn code_hashes(&self) -> u64 {
        self.account_codes + self.live_call_codes + self.knowledge_answers
    }

    /// `3 account code(s), 1 TOTP secret(s)`, omitting zeros.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.account_codes, "account code(s)"),
            (self.totp_secrets, "TOTP secret(s)"),
            (self.live_call_codes, "live call code(s)"),
            (self.knowledge_answers, "knowledge answer(s)"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

pub trait KeysDb {
    /// Usage per key version, for every version the database mentions.
    fn key_usage(&self, now: i64) -> anyhow::Result<BTreeMap<u32, Usage>>;

    /// One sealed TOTP secret per key version that sealed any: `(account id, sealed, version)`,
    /// the only stored secret that can be checked against a key file without a caller's code.
    fn totp_samples(&self) -> anyhow::Result<Vec<(String, Vec<u8>, u32)>>;

    /// Re-encrypts every TOTP secret not under the current key version, in the caller's
    /// transaction: either all of them are re-sealed or none. Returns how many.
    fn reseal_totp_secrets(&self, keys: &Keyring) -> anyhow::Result<u64>;

    /// The key ring kept in the database (PostgreSQL, several nodes): every master key version,
    /// wrapped under the key-encryption key, oldest first. Empty where the backend keeps none
    /// (SQLite: the key file holds the ring).
    fn key_ring(&self) -> anyhow::Result<Vec<WrappedKey>>;

    /// Stores `keys` as the ring if the database holds none yet, and says whether it did: of
    /// nodes starting together on a new database, one seeds the ring and the others take it.
    fn seed_key_ring(&self, keys: &[WrappedKey], now: i64) -> anyhow::Result<bool>;

    /// Adds the next version (one above the highest ever kept) as `wrap` seals it, and returns
    /// it; two rotations at once make two versions.
    fn add_key_version(
        &self,
        wrap: &dyn Fn(u32) -> anyhow::Result<Vec<u8>>,
        now: i64,
    ) -> anyhow::Result<u32>;

    /// Removes one version from the ring; false when it holds no such version.
    fn remove_key_version(&self, version: u32) -> anyhow::Result<bool>;
}

/// One master key version as the database keeps it: sealed under the key-encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub version: u32,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedKey(v{})", self.version)
    }
}

/// Refuses a key file that is not the database's: a version the database uses is missing, or a
/// TOTP secret (one per version, the only thing that can be checked without a caller's code)
/// does not decrypt.
pub fn check_keyring(db: &dyn Db, keys: &Keyring) -> anyhow::Result<()> {
    let usage = db.key_usage(crate::store::now_ms())?;
    let missing: Vec<String> = usage
        .iter()
        .filter(|(v, u)| !keys.has_version(**v) && u.total() > 0)
        .map(|(v, u)| format!("v{v} ({})", u.describe()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the {} lacks key version(s) the database uses: {}. Is it the key file this \
             database was written with? Restore the right callgate.key (from its backup); without \
             it those codes and TOTP secrets cannot be checked",
            keys.origin(),
            missing.join(", ")
        );
    }
    let samples = db.totp_samples()?;
    for (id, sealed, version) in samples {
        if keys.decrypt(version, &sealed, &id).is_err() {
            bail!(
                "the {} does not match the database: TOTP secrets sealed with key version \
                 v{version} do not decrypt with it (a different or damaged callgate.key). Restore the \
                 right key file from its backup",
                keys.origin()
            );
        }
    }
    Ok(())
}
