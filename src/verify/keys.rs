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
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::AccountCode => b"callgate/account-code",
            Self::CallCode => b"callgate/call-code",
            Self::Knowledge => b"callgate/knowledge",
            Self::PopUrl => b"callgate/pop-url",
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
            totp_secret: derive(b"callgate/totp-secret"),
        }
    }

    fn hmac_key(&self, purpose: Purpose) -> &[u8; 32] {
        match purpose {
            Purpose::AccountCode => &self.account_code,
            Purpose::CallCode => &self.call_code,
            Purpose::Knowledge => &self.knowledge,
            Purpose::PopUrl => &self.pop_url,
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
    path: PathBuf,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("versions", &self.versions.keys().collect::<Vec<_>>())
            .finish()
    }
}

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
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading key file {}", path.display()))?,
        );
        let mut versions = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = line.split_once(' ').and_then(|(v, k)| {
                let version = v.strip_prefix('v')?.parse::<u32>().ok()?;
                let bytes = Zeroizing::new(STANDARD.decode(k.trim()).ok()?);
                let master: [u8; 32] = bytes.as_slice().try_into().ok()?;
                Some((version, master))
            });
            let Some((version, master)) = parsed else {
                bail!(
                    "{}:{}: expected `v<N> <base64 of 32 bytes>`",
                    path.display(),
                    n + 1
                );
            };
            versions.insert(version, KeyVersion::from_master(&Zeroizing::new(master)));
        }
        if versions.is_empty() {
            bail!("{} holds no key", path.display());
        }
        Ok(Self {
            versions,
            path: path.to_owned(),
        })
    }

    /// The version new hashes and ciphertexts are made with.
    pub fn current_version(&self) -> u32 {
        self.current().0
    }

    fn version(&self, version: u32) -> anyhow::Result<&KeyVersion> {
        self.versions
            .get(&version)
            .with_context(|| format!("key version {version} is not in {}", self.path.display()))
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

    /// The hashes of `secret` under every key version, for look-ups during a key rotation.
    pub fn keyed_hash_candidates(&self, purpose: Purpose, secret: &str) -> Vec<(u32, Vec<u8>)> {
        self.versions
            .iter()
            .map(|(&v, keys)| (v, keys.keyed_hash(purpose, secret)))
            .collect()
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

fn create_key_file(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("key file has no parent directory")?;
    crate::store::create_private_dir(dir)?;
    let mut master = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(master.as_mut());
    let body = Zeroizing::new(format!(
        "# callgate server key: keep it secret and back it up apart from the database.\n\
         # Without it no account code, call code or TOTP secret can be checked.\nv1 {}\n",
        STANDARD.encode(master.as_ref())
    ));
    let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
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
}
