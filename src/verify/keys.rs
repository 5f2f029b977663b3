//! The server key: a 256-bit master secret kept in `<data-dir>/callgate.key` (mode 0600), apart
//! from the database, so a leaked database file alone reveals no code and no TOTP secret.
//! Sub-keys are derived with HKDF-SHA256 per purpose; every stored hash or ciphertext carries the
//! version of the key that made it, so the key can be rotated.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

pub const KEY_FILE: &str = "callgate.key";

/// What a keyed hash is for. Each purpose has its own derived key, so an account-code hash can
/// never be matched against a call-code hash.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    AccountCode,
    CallCode,
    Knowledge,
    /// The signature of a short-lived screen-pop URL (`/pop/{token}`).
    PopUrl,
    /// The pseudonym of a calling number in the audit trail (`Keyring::number_pseudonym`).
    NumberPseudonym,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::AccountCode => b"callgate/account-code",
            Self::CallCode => b"callgate/call-code",
            Self::Knowledge => b"callgate/knowledge",
            Self::PopUrl => b"callgate/pop-url",
            Self::NumberPseudonym => b"callgate/number-pseudonym",
        }
    }
}

/// The keys one master key version stands for, derived once when the key file is read (every
/// webhook hashes a code; deriving them each time repeated two HKDF rounds per hash).
struct KeyVersion {
    account_code: Zeroizing<[u8; 32]>,
    call_code: Zeroizing<[u8; 32]>,
    knowledge: Zeroizing<[u8; 32]>,
    pop_url: Zeroizing<[u8; 32]>,
    number_pseudonym: Zeroizing<[u8; 32]>,
    totp_secret: Zeroizing<[u8; 32]>,
}

impl KeyVersion {
    fn from_master(master: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, master);
        let derive = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            // 32 bytes is far below HKDF-SHA256's output limit.
            if hk.expand(label, out.as_mut()).is_err() {
                unreachable!("HKDF output length is valid");
            }
            out
        };
        Self {
            account_code: derive(Purpose::AccountCode.label()),
            call_code: derive(Purpose::CallCode.label()),
            knowledge: derive(Purpose::Knowledge.label()),
            pop_url: derive(Purpose::PopUrl.label()),
            number_pseudonym: derive(Purpose::NumberPseudonym.label()),
            totp_secret: derive(b"callgate/totp-secret"),
        }
    }

    fn hmac_key(&self, purpose: Purpose) -> &[u8; 32] {
        match purpose {
            Purpose::AccountCode => &self.account_code,
            Purpose::CallCode => &self.call_code,
            Purpose::Knowledge => &self.knowledge,
            Purpose::PopUrl => &self.pop_url,
            Purpose::NumberPseudonym => &self.number_pseudonym,
        }
    }

    fn keyed_hash(&self, purpose: Purpose, secret: &str) -> Vec<u8> {
        // An HMAC takes a key of any length, so this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(self.hmac_key(purpose)) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn cipher(&self) -> anyhow::Result<Aes256Gcm> {
        Aes256Gcm::new_from_slice(self.totp_secret.as_ref()).context("AES key")
    }
}

pub struct Keyring {
    versions: BTreeMap<u32, KeyVersion>,
    origin: KeyOrigin,
}

/// Where a keyring's master keys are kept: the key file (one node, SQLite) or the database,
/// wrapped under a key-encryption key (several nodes, PostgreSQL; see `custody`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    File(PathBuf),
    Database(super::kek::KekOrigin),
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "key file {}", path.display()),
            Self::Database(kek) => write!(
                f,
                "key ring in the database (opened with the key-encryption key from {kek})"
            ),
        }
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("origin", &self.origin)
            .field("versions", &self.versions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Master keys by version, as a key file or the database's key ring holds them.
pub type MasterKeys = BTreeMap<u32, Zeroizing<[u8; 32]>>;

impl Keyring {
    /// Loads `<data_dir>/callgate.key`, creating it (with one fresh key) on first use. Creation is
    /// atomic: the key is written to a private temporary file which is then hard-linked into
    /// place, so two processes starting together agree on one key.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            create_key_file(&path)?;
        }
        Self::load(&path)
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let masters = read_key_file(path)?;
        Ok(Self::from_masters(
            &masters,
            KeyOrigin::File(path.to_owned()),
        ))
    }

    /// The keyring of these master keys (at least one; the callers check).
    pub fn from_masters(masters: &MasterKeys, origin: KeyOrigin) -> Self {
        Self {
            versions: masters
                .iter()
                .map(|(&v, master)| (v, KeyVersion::from_master(master)))
                .collect(),
            origin,
        }
    }

    /// Where the master keys are kept.
    pub fn origin(&self) -> &KeyOrigin {
        &self.origin
    }

    /// Every version present, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.versions.keys().copied().collect()
    }

    pub fn has_version(&self, version: u32) -> bool {
        self.versions.contains_key(&version)
    }

    /// The version new hashes and ciphertexts are made with.
    pub fn current_version(&self) -> u32 {
        self.current().0
    }

    fn version(&self, version: u32) -> anyhow::Result<&KeyVersion> {
        self.versions
            .get(&version)
            .with_context(|| format!("key version {version} is not in the {}", self.origin))
    }

    /// The newest version: the one new hashes and ciphertexts are made with.
    fn current(&self) -> (u32, &KeyVersion) {
        match self.versions.iter().next_back() {
            Some((&v, keys)) => (v, keys),
            // `load` refuses a key file without a key.
            None => unreachable!("a Keyring always holds a key"),
        }
    }

    /// HMAC-SHA256 of a short secret under the current key: deterministic, so it can be indexed
    /// and looked up, yet useless to whoever holds the database without the key file.
    pub fn keyed_hash(&self, purpose: Purpose, secret: &str) -> (u32, Vec<u8>) {
        let (version, keys) = self.current();
        (version, keys.keyed_hash(purpose, secret))
    }

    /// The hash of `secret` under one given version (`None` when the key file lacks it).
    pub fn keyed_hash_with(&self, version: u32, purpose: Purpose, secret: &str) -> Option<Vec<u8>> {
        self.versions
            .get(&version)
            .map(|keys| keys.keyed_hash(purpose, secret))
    }

    /// The hashes of `secret` under every key version, for look-ups during a key rotation.
    pub fn keyed_hash_candidates(&self, purpose: Purpose, secret: &str) -> Vec<(u32, Vec<u8>)> {
        self.versions
            .iter()
            .map(|(&v, keys)| (v, keys.keyed_hash(purpose, secret)))
            .collect()
    }

    /// A stable pseudonym for a calling number (`n-` and 16 hex digits: the first 64 bits of its
    /// HMAC under the current key), for the append-only audit trail, which can never be erased:
    /// even a masked number there is personal data tied to a person, while the pseudonym lets
    /// the security report group one number's lockouts and means nothing without the key file.
    /// A key rotation starts new pseudonyms.
    pub fn number_pseudonym(&self, number: &str) -> String {
        let (_, hash) = self.keyed_hash(Purpose::NumberPseudonym, number);
        format!("n-{}", hex::encode(&hash[..8.min(hash.len())]))
    }

    /// AES-256-GCM with a fresh 96-bit nonce; `associated` (the account id) is authenticated, so
    /// a ciphertext copied to another account's row does not decrypt. Output: nonce || ciphertext.
    pub fn encrypt(&self, plaintext: &[u8], associated: &str) -> anyhow::Result<(u32, Vec<u8>)> {
        let (version, keys) = self.current();
        let cipher = keys.cipher()?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok((version, out))
    }

    pub fn decrypt(
        &self,
        version: u32,
        sealed: &[u8],
        associated: &str,
    ) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            bail!("sealed secret is too short");
        }
        let cipher = self.version(version)?.cipher()?;
        let (nonce, body) = sealed.split_at(12);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: associated.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| anyhow::anyhow!("sealed secret does not decrypt (wrong key or moved row)"))
    }
}

/// The master keys of a key file: `v<N> <base64 of 32 bytes>` lines, comments and blank lines
/// between; at least one, no version twice.
pub fn read_key_file(path: &Path) -> anyhow::Result<MasterKeys> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?,
    );
    let mut versions = MasterKeys::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(v, k)| {
            let version = v.strip_prefix('v')?.parse::<u32>().ok()?;
            let bytes = Zeroizing::new(STANDARD.decode(k.trim()).ok()?);
            let master: [u8; 32] = bytes.as_slice().try_into().ok()?;
            Some((version, Zeroizing::new(master)))
        });
        let Some((version, master)) = parsed else {
            bail!(
                "{}:{}: expected `v<N> <base64 of 32 bytes>`",
                path.display(),
                n + 1
            );
        };
        if versions.insert(version, master).is_some() {
            bail!(
                "{}:{}: key version v{version} appears twice",
                path.display(),
                n + 1
            );
        }
    }
    if versions.is_empty() {
        bail!("{} holds no key", path.display());
    }
    Ok(versions)
}

/// Holds an exclusive lock on `<key file>.lock` while a command rewrites the key file, so two
/// rotations at once cannot both append "the next version" with different keys.
pub struct KeyFileLock {
    _file: std::fs::File,
}

impl KeyFileLock {
    pub fn acquire(key_path: &Path) -> anyhow::Result<Self> {
        let lock_path = key_path.with_extension("key.lock");
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        Ok(Self { _file: file })
    }
}

/// Appends a fresh key version (one above the highest) to the key file, atomically: the new
/// file is written to a private temporary file, synced, and renamed over the old one, so a
/// reader sees either the old file or the new one, never half of it. Returns the new version.
/// The caller holds the `KeyFileLock`.
pub fn append_version(path: &Path) -> anyhow::Result<u32> {
    let current = Keyring::load(path)?;
    let next = current
        .current_version()
        .checked_add(1)
        .context("key version overflow")?;
    let old = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let mut master = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(master.as_mut());
    let mut body = Zeroizing::new(String::with_capacity(old.len() + 64));
    body.push_str(&old);
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(&format!("v{next} {}\n", STANDARD.encode(master.as_ref())));
    replace_key_file(path, &body)?;
    Ok(next)
}

/// Removes `version` from the key file, atomically. Refuses the current (newest) version and a
/// version the file does not hold; whether anything still uses it is the caller's check.
pub fn remove_version(path: &Path, version: u32) -> anyhow::Result<()> {
    let keyring = Keyring::load(path)?;
    if !keyring.has_version(version) {
        bail!("{} holds no key version v{version}", path.display());
    }
    if keyring.current_version() == version {
        bail!(
            "v{version} is the current key version: rotate first, then retire it once nothing uses it"
        );
    }
    let old = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let prefix = format!("v{version} ");
    let mut body = Zeroizing::new(String::with_capacity(old.len()));
    for line in old.lines() {
        if line.trim_start().starts_with(&prefix) {
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    replace_key_file(path, &body)?;
    Ok(())
}

/// Write temp (0600, same directory) + fsync + rename + fsync of the directory.
fn replace_key_file(path: &Path, body: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("key file has no parent directory")?;
    let tmp = dir.join(format!(".{KEY_FILE}.{}.rotate.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> anyhow::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
        // What was written must read back as a keyring before it replaces the old file.
        Keyring::load(&tmp)?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The keyring a running server uses. From a key file: the file is read again when it changed
/// (its size, modification time or inode differ), checked at most once a second on use, or at
/// once on `reload` (SIGHUP). From the database (several nodes): read again on `reload`, which
/// the server calls when another node changes the ring (PostgreSQL NOTIFY), when the change feed
/// resumes after a gap, and on SIGHUP. Keys that fail to load are reported and the keys in use
/// are kept.
pub struct LiveKeyring {
    current: std::sync::RwLock<std::sync::Arc<Keyring>>,
    reader: Reader,
}

enum Reader {
    File {
        path: PathBuf,
        stamp: std::sync::Mutex<Option<FileStamp>>,
        epoch: std::time::Instant,
        /// Milliseconds after `epoch` when the file is looked at next.
        next_check_ms: std::sync::atomic::AtomicU64,
    },
    /// Reads the ring from where it is kept (blocking: never call it on an async worker).
    Source(Box<dyn Fn() -> anyhow::Result<Keyring> + Send + Sync>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

const CHECK_INTERVAL_MS: u64 = 1000;

impl std::fmt::Debug for LiveKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveKeyring").field(&self.get()).finish()
    }
}

impl LiveKeyring {
    /// Keys from a key file, followed as it changes. (A keyring from elsewhere is only
    /// replaced by `reload`, which reads the file it names, if any.)
    pub fn new(keyring: Keyring) -> Self {
        let reader = match keyring.origin() {
            KeyOrigin::File(path) => Reader::File {
                path: path.clone(),
                stamp: std::sync::Mutex::new(FileStamp::of(path)),
                epoch: std::time::Instant::now(),
                next_check_ms: std::sync::atomic::AtomicU64::new(CHECK_INTERVAL_MS),
            },
            KeyOrigin::Database(_) => Reader::Source(Box::new(|| {
                anyhow::bail!("this keyring was given without a way to read it again")
            })),
        };
        Self {
            current: std::sync::RwLock::new(std::sync::Arc::new(keyring)),
            reader,
        }
    }

    /// Keys that `read` reads again on each `reload`.
    pub fn from_source(
        keyring: Keyring,
        read: impl Fn() -> anyhow::Result<Keyring> + Send + Sync + 'static,
    ) -> Self {
        Self {
            current: std::sync::RwLock::new(std::sync::Arc::new(keyring)),
            reader: Reader::Source(Box::new(read)),
        }
    }

    fn loaded(&self) -> std::sync::Arc<Keyring> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The keys to use now. From a key file, at most once a second this costs a `stat` of the
    /// file; a changed file is read again.
    pub fn get(&self) -> std::sync::Arc<Keyring> {
        use std::sync::atomic::Ordering;
        if let Reader::File {
            epoch,
            next_check_ms,
            ..
        } = &self.reader
        {
            let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            let due = next_check_ms.load(Ordering::Relaxed);
            if now >= due
                && next_check_ms
                    .compare_exchange(
                        due,
                        now + CHECK_INTERVAL_MS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                let _ = self.reload_if_changed(false);
            }
        }
        self.loaded()
    }

    /// Reads the keys again now (SIGHUP, a change another node made), even if they look
    /// unchanged. Returns the versions loaded; on error the keys in use stay. Blocking.
    pub fn reload(&self) -> anyhow::Result<Vec<u32>> {
        self.reload_if_changed(true)
    }

    fn reload_if_changed(&self, force: bool) -> anyhow::Result<Vec<u32>> {
        let read = match &self.reader {
            Reader::File { path, stamp, .. } => {
                let mut stamp = match stamp.lock() {
                    Ok(s) => s,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let fresh = FileStamp::of(path);
                if !force && *stamp == fresh {
                    return Ok(self.loaded().versions());
                }
                // Recorded before reading: a change while reading is seen on the next check.
                *stamp = fresh;
                Keyring::load(path)
            }
            Reader::Source(read) => read(),
        };
        match read {
            Ok(keyring) => {
                let versions = keyring.versions();
                let current = keyring.current_version();
                let origin = keyring.origin().to_string();
                match self.current.write() {
                    Ok(mut k) => *k = std::sync::Arc::new(keyring),
                    Err(poisoned) => *poisoned.into_inner() = std::sync::Arc::new(keyring),
                }
                tracing::info!(keys = %origin, ?versions, current, "server keys loaded");
                Ok(versions)
            }
            Err(e) => {
                tracing::error!(
                    keys = %self.loaded().origin(),
                    "server keys changed but do not load; keeping the keys in use: {e:#}"
                );
                Err(e)
            }
        }
    }
}

fn create_key_file(path: &Path) -> anyhow::Result<()> {
    let mut master = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(master.as_mut());
    let body = Zeroizing::new(format!(
        "# callgate server key: keep it secret and back it up apart from the database.\n\
         # Without it no account code, call code or TOTP secret can be checked.\nv1 {}\n",
        STANDARD.encode(master.as_ref())
    ));
    create_secret_file(path, &body)
}

/// Makes `path` (mode 0600, its directory 0700 if new) holding `body`, unless it exists: the
/// body goes to a private temporary file, synced, then hard-linked into place, so of processes
/// starting together exactly one file wins and all of them read that one.
pub(super) fn create_secret_file(path: &Path, body: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("secret file has no parent directory")?;
    crate::store::create_private_dir(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "secret".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keyring::load_or_create(dir.path()).unwrap();
        let b = Keyring::load_or_create(dir.path()).unwrap();
        assert_eq!(
            a.keyed_hash(Purpose::AccountCode, "123456"),
            b.keyed_hash(Purpose::AccountCode, "123456")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn purposes_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let k = Keyring::load_or_create(dir.path()).unwrap();
        assert_ne!(
            k.keyed_hash(Purpose::AccountCode, "123456"),
            k.keyed_hash(Purpose::CallCode, "123456")
        );
    }

    #[test]
    fn ciphertext_is_bound_to_its_account() {
        let dir = tempfile::tempdir().unwrap();
        let k = Keyring::load_or_create(dir.path()).unwrap();
        let (v, sealed) = k.encrypt(b"secret-bytes", "ACC-1").unwrap();
        assert_eq!(
            k.decrypt(v, &sealed, "ACC-1").unwrap().as_slice(),
            b"secret-bytes"
        );
        assert!(k.decrypt(v, &sealed, "ACC-2").is_err());
        let (_, again) = k.encrypt(b"secret-bytes", "ACC-1").unwrap();
        assert_ne!(sealed, again, "fresh nonce each time");
    }

    #[test]
    fn corrupt_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "v1 not-base64\n").unwrap();
        let err = Keyring::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains(":1:"), "{err}");
    }

    #[test]
    fn rotation_appends_a_current_version_and_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = Keyring::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let (_, sealed) = v1.encrypt(b"totp", "ACC-1").unwrap();
        let old_hash = v1.keyed_hash(Purpose::AccountCode, "123456");

        assert_eq!(append_version(&path).unwrap(), 2);
        let k = Keyring::load(&path).unwrap();
        assert_eq!(k.versions(), vec![1, 2]);
        assert_eq!(k.current_version(), 2);
        // Old material still reads; new material is made with v2.
        assert_eq!(k.decrypt(1, &sealed, "ACC-1").unwrap().as_slice(), b"totp");
        assert_eq!(k.encrypt(b"x", "ACC-1").unwrap().0, 2);
        let (v, new_hash) = k.keyed_hash(Purpose::AccountCode, "123456");
        assert_eq!(v, 2);
        assert_ne!(new_hash, old_hash.1);
        assert!(
            k.keyed_hash_candidates(Purpose::AccountCode, "123456")
                .contains(&old_hash)
        );
        assert_eq!(
            k.keyed_hash_with(1, Purpose::AccountCode, "123456"),
            Some(old_hash.1)
        );
        assert_eq!(k.keyed_hash_with(9, Purpose::AccountCode, "123456"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the rewritten key file stays private");
        }
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn retiring_removes_only_an_old_version() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        append_version(&path).unwrap();
        let before = Keyring::load(&path).unwrap();
        let err = remove_version(&path, 2).unwrap_err().to_string();
        assert!(err.contains("current"), "{err}");
        let err = remove_version(&path, 7).unwrap_err().to_string();
        assert!(err.contains("no key version v7"), "{err}");
        remove_version(&path, 1).unwrap();
        let after = Keyring::load(&path).unwrap();
        assert_eq!(after.versions(), vec![2]);
        assert_eq!(
            after.keyed_hash(Purpose::CallCode, "42"),
            before.keyed_hash(Purpose::CallCode, "42")
        );
        // The comment header survives.
        assert!(std::fs::read_to_string(&path).unwrap().starts_with('#'));
        assert_eq!(append_version(&path).unwrap(), 3);
    }

    #[test]
    fn a_version_listed_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = STANDARD.encode([7u8; 32]);
        std::fs::write(dir.path().join(KEY_FILE), format!("v1 {key}\nv1 {key}\n")).unwrap();
        let err = Keyring::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("twice"), "{err}");
        std::fs::write(dir.path().join(KEY_FILE), "# only a comment\n").unwrap();
        let err = Keyring::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds no key"), "{err}");
    }

    #[test]
    fn live_keyring_follows_the_file_and_survives_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let live = LiveKeyring::new(Keyring::load_or_create(dir.path()).unwrap());
        let path = dir.path().join(KEY_FILE);
        assert_eq!(live.get().current_version(), 1);
        append_version(&path).unwrap();
        // Checked at most once a second: SIGHUP (`reload`) takes it at once.
        assert_eq!(live.reload().unwrap(), vec![1, 2]);
        assert_eq!(live.get().current_version(), 2);
        // A rotation is noticed on use, within the check interval.
        append_version(&path).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while live.get().current_version() != 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "rotation not picked up"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // A damaged key file is refused and the keys in use stay.
        std::fs::write(&path, "v1 garbage\n").unwrap();
        assert!(live.reload().is_err());
        assert_eq!(live.get().versions(), vec![1, 2, 3]);
    }

    #[test]
    fn two_rotations_at_once_make_two_versions() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let _lock = KeyFileLock::acquire(&path).unwrap();
                    append_version(&path).unwrap()
                })
            })
            .collect();
        let mut made: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        made.sort_unstable();
        assert_eq!(made, vec![2, 3, 4, 5]);
        assert_eq!(
            Keyring::load(&path).unwrap().versions(),
            vec![1, 2, 3, 4, 5]
        );
    }
}
