//! Key custody: where the master keys are kept, and how a version is added or removed there.
//!
//! - One node on SQLite: the key file `<data-dir>/callgate.key` holds them, apart from the
//!   database file (as since the start).
//! - Several nodes on PostgreSQL: the database holds the key ring, each version wrapped under
//!   the key-encryption key (`kek`) every node reads from `CALLGATE_KEK` or its
//!   `callgate.kek`. All nodes thus use the same keys; a rotation on any node (or from the CLI
//!   anywhere) reaches the others at commit (NOTIFY), and no key file has to be copied around
//!   after each rotation. The database alone still opens nothing.
//!
//! A PostgreSQL database without a ring gets one on first use: the master keys of
//! `<data-dir>/callgate.key` when that exists (a desk moving from SQLite, or nodes that shared
//! a key file before the ring existed), else a fresh first version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rand::RngCore;
use zeroize::Zeroizing;

use super::kek::Kek;
use super::keys::{self, KEY_FILE, KeyFileLock, KeyOrigin, Keyring, LiveKeyring, MasterKeys};
use crate::store::key_usage::WrappedKey;
use crate::store::{Db, Store};

#[derive(Debug, Clone)]
pub enum KeyCustody {
    /// Master keys in this key file.
    File(PathBuf),
    /// Master keys in the database, wrapped under `kek`; `key_file` is where a first ring may
    /// be taken from.
    Database { kek: Arc<Kek>, key_file: PathBuf },
}

/// Held while the keys change; dropped when done.
pub struct ChangeGuard {
    _file: Option<KeyFileLock>,
}

impl KeyCustody {
    /// The custody `store` calls for, with the key file (or key-encryption key file) in
    /// `data_dir`.
    pub fn of(store: &Store, data_dir: &Path) -> anyhow::Result<Self> {
        let key_file = data_dir.join(KEY_FILE);
        if store.keys_in_database() {
            Ok(Self::Database {
                kek: Arc::new(Kek::locate(data_dir)?),
                key_file,
            })
        } else {
            Ok(Self::File(key_file))
        }
    }

    /// The keys as they are now, making the first ones when there are none yet (a new key
    /// file; a database without a ring).
    pub fn open(&self, store: &Store, now: i64) -> anyhow::Result<Keyring> {
        match self {
            Self::File(path) => {
                let dir = path.parent().context("key file has no parent directory")?;
                Keyring::load_or_create(dir)
            }
            Self::Database { .. } => {
                if store.read_sync(|db| db.key_ring())?.is_empty() {
                    self.seed(store, now)?;
                }
                self.read(store)
            }
        }
    }

    /// The keys as they are now; none yet is an error saying how to make them.
    pub fn read(&self, store: &Store) -> anyhow::Result<Keyring> {
        match self {
            Self::File(path) => {
                if !path.exists() {
                    bail!(
                        "no key file at {}: the server creates one on first start (`callgate serve`), or restore it from its backup",
                        path.display()
                    );
                }
                Keyring::load(path)
            }
            Self::Database { kek, .. } => {
                let ring = store.read_sync(|db| db.key_ring())?;
                if ring.is_empty() {
                    bail!(
                        "the database holds no key ring yet: start a node (`callgate serve`) or run `callgate migrate-to-postgres` first"
                    );
                }
                let mut masters = MasterKeys::new();
                for key in &ring {
                    masters.insert(key.version, kek.unwrap(key.version, &key.wrapped)?);
                }
                Ok(Keyring::from_masters(&masters, self.origin()))
            }
        }
    }

    /// The keyring a running server uses, following changes (see `LiveKeyring`).
    pub fn live(&self, store: &Store, keyring: Keyring) -> LiveKeyring {
        match self {
            Self::File(_) => LiveKeyring::new(keyring),
            Self::Database { .. } => {
                let (custody, store) = (self.clone(), store.clone());
                LiveKeyring::from_source(keyring, move || custody.read(&store))
            }
        }
    }

    /// Keeps other changes of the keys out until dropped: the key file's lock (a database ring
    /// takes its own lock inside each change's transaction).
    pub fn lock(&self) -> anyhow::Result<ChangeGuard> {
        Ok(ChangeGuard {
            _file: match self {
                Self::File(path) => Some(KeyFileLock::acquire(path)?),
                Self::Database { .. } => None,
            },
        })
    }

    /// Adds a fresh master key as the next version and returns it.
    pub fn add_version(&self, store: &Store, now: i64) -> anyhow::Result<u32> {
        match self {
            Self::File(path) => keys::append_version(path),
            Self::Database { kek, .. } => {
                let master = fresh_master();
                store.write_sync(|db| db.add_key_version(&|v| kek.wrap(v, &master), now))
            }
        }
    }

    /// Removes `version`, in the caller's transaction where the keys are in the database (the
    /// key file changes at once: a failure after it rolls the caller's transaction back).
    pub fn remove_version(&self, db: &dyn Db, version: u32) -> anyhow::Result<()> {
        match self {
            Self::File(path) => keys::remove_version(path, version),
            Self::Database { .. } => {
                if !db.remove_key_version(version)? {
                    bail!("the database's key ring holds no key version v{version}");
                }
                Ok(())
            }
        }
    }

    /// After a SQLite data directory was copied into the database: the database's ring must
    /// be the key file's (seeded from it now when the database holds none), every version with
    /// the same key, or the copied codes would never match again.
    pub fn take_over_key_file(&self, store: &Store, now: i64) -> anyhow::Result<Keyring> {
        let Self::Database { key_file, .. } = self else {
            bail!("the keys stay in the key file: there is no database key ring to take it over");
        };
        let from_file = Keyring::load(key_file)?;
        let ring = self.open(store, now)?;
        let probe = "callgate key ring probe";
        let same = from_file.versions() == ring.versions()
            && from_file.versions().iter().all(|&v| {
                from_file.keyed_hash_with(v, super::Purpose::AccountCode, probe)
                    == ring.keyed_hash_with(v, super::Purpose::AccountCode, probe)
            });
        if !same {
            bail!(
                "the database already holds a key ring that is not the key file {}: was a node started on it before the copy? \
                 Copy into a new, empty database",
                key_file.display()
            );
        }
        Ok(ring)
    }

    /// Where the keys are kept (its `Display` is what messages say).
    pub fn origin(&self) -> KeyOrigin {
        match self {
            Self::File(path) => KeyOrigin::File(path.clone()),
            Self::Database { kek, .. } => KeyOrigin::Database(kek.origin().clone()),
        }
    }

    /// Where the keys are kept, for messages.
    pub fn describe(&self) -> String {
        self.origin().to_string()
    }

    fn seed(&self, store: &Store, now: i64) -> anyhow::Result<()> {
        let Self::Database { kek, key_file } = self else {
            return Ok(());
        };
        let (masters, from) = if key_file.exists() {
            (keys::read_key_file(key_file)?, Some(key_file))
        } else {
            // A database that holds secrets but no ring: its keys are somewhere else, and a
            // fresh key would silently fail every code. Say where they must come from.
            let usage = store.read_sync(|db| db.key_usage(now))?;
            if usage.values().any(|u| u.total() > 0) {
                bail!(
                    "the database holds codes or TOTP secrets but no key ring, and there is no key file at {} to take it from: \
                     start this node once with the data directory holding the callgate.key the database was written with",
                    key_file.display()
                );
            }
            let mut first = MasterKeys::new();
            first.insert(1, fresh_master());
            (first, None)
        };
        let wrapped = masters
            .iter()
            .map(|(&version, master)| {
                Ok(WrappedKey {
                    version,
                    wrapped: kek.wrap(version, master)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let seeded = store.write_sync(|db| db.seed_key_ring(&wrapped, now))?;
        if seeded {
            match from {
                Some(path) => tracing::info!(
                    key_file = %path.display(),
                    versions = ?masters.keys().collect::<Vec<_>>(),
                    "key ring stored in the database from the key file"
                ),
                None => tracing::info!("key ring started in the database with a fresh key"),
            }
        }
        Ok(())
    }
}

fn fresh_master() -> Zeroizing<[u8; 32]> {
    let mut master = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(master.as_mut());
    master
}
