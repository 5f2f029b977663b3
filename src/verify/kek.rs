//! The key-encryption key (KEK): what lets several nodes share one key ring kept in the
//! database (PostgreSQL) while the database alone still reveals nothing. Each master key version
//! is stored wrapped (AES-256-GCM) under the KEK; every node reads the KEK from its environment
//! (`CALLGATE_KEK`, base64 of 32 bytes, for a secrets manager) or from `<data-dir>/callgate.kek`
//! (mode 0600, made on the first start when neither exists). A leaked database without the KEK
//! opens no code hash and no TOTP secret, exactly as a leaked SQLite file without the key file.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use zeroize::Zeroizing;

pub const KEK_FILE: &str = "callgate.kek";
pub const KEK_ENV: &str = "CALLGATE_KEK";

/// Where this node's KEK came from, for messages (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekOrigin {
    Environment,
    File(PathBuf),
}

impl std::fmt::Display for KekOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Environment => write!(f, "{KEK_ENV}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

pub struct Kek {
    key: Zeroizing<[u8; 32]>,
    origin: KekOrigin,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A wrapped master key is nonce (12) || ciphertext (32) || tag (16).
const WRAPPED_LEN: usize = 12 + 32 + 16;

impl Kek {
    /// `CALLGATE_KEK` when set (an empty value counts as unset); else `<data_dir>/callgate.kek`,
    /// made on first use.
    pub fn locate(data_dir: &Path) -> anyhow::Result<Self> {
        match std::env::var(KEK_ENV) {
            Ok(text) if !text.trim().is_empty() => {
                let text = Zeroizing::new(text);
                let key = decode(&text)
                    .with_context(|| format!("{KEK_ENV}: expected the base64 of 32 bytes"))?;
                Ok(Self {
                    key,
                    origin: KekOrigin::Environment,
                })
            }
            _ => Self::load_or_create(&data_dir.join(KEK_FILE)),
        }
    }

    /// Reads the KEK file, making it (atomically, so two nodes starting on one directory agree)
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            create(path)?;
        }
        Self::load(path)
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading key-encryption key {}", path.display()))?,
        );
        let mut found = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = line
                .strip_prefix("kek ")
                .and_then(|b64| decode(b64).ok())
                .with_context(|| {
                    format!(
                        "{}:{}: expected `kek <base64 of 32 bytes>`",
                        path.display(),
                        n + 1
                    )
                })?;
            if found.replace(key).is_some() {
                bail!("{}:{}: a second key", path.display(), n + 1);
            }
        }
        let Some(key) = found else {
            bail!("{} holds no key-encryption key", path.display());
        };
        Ok(Self {
            key,
            origin: KekOrigin::File(path.to_owned()),
        })
    }

    pub fn origin(&self) -> &KekOrigin {
        &self.origin
    }

    fn cipher(&self) -> anyhow::Result<Aes256Gcm> {
        Aes256Gcm::new_from_slice(self.key.as_ref()).context("AES key")
    }

    /// Seals master key `version`; the version is authenticated, so a wrapped key moved to
    /// another version's row does not open.
    pub fn wrap(&self, version: u32, master: &[u8; 32]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated(version);
        let sealed = self
            .cipher()?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: master,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("wrapping key version v{version} failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens master key `version`. A different KEK, a damaged row or a row moved between
    /// versions is an error naming where this node's KEK came from.
    pub fn unwrap(&self, version: u32, wrapped: &[u8]) -> anyhow::Result<Zeroizing<[u8; 32]>> {
        if wrapped.len() != WRAPPED_LEN {
            bail!(
                "key version v{version} in the database is damaged ({} bytes, not {WRAPPED_LEN})",
                wrapped.len()
            );
        }
        let (nonce, body) = wrapped.split_at(12);
        let aad = associated(version);
        let opened = Zeroizing::new(
            self.cipher()?
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: body,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| {
                    anyhow::anyhow!(
                        "key version v{version} in the database does not open with the key-encryption key from {}: \
                         every node needs the same one (copy callgate.kek from the first node, or set {KEK_ENV} alike)",
                        self.origin
                    )
                })?,
        );
        let mut master = Zeroizing::new([0u8; 32]);
        master.copy_from_slice(&opened);
        Ok(master)
    }
}

fn associated(version: u32) -> String {
    format!("callgate/key-ring/v{version}")
}

fn decode(b64: &str) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(STANDARD.decode(b64.trim()).context("not base64")?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        bail!("{} bytes, not 32", bytes.len());
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

fn create(path: &Path) -> anyhow::Result<()> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    let body = Zeroizing::new(format!(
        "# callgate key-encryption key: it opens the key ring kept in the database.\n\
         # Every node needs this same file (or {KEK_ENV}); keep it apart from database backups.\n\
         kek {}\n",
        STANDARD.encode(key.as_ref())
    ));
    super::keys::create_secret_file(path, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_with_its_kek_and_version_only() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::load_or_create(&dir.path().join(KEK_FILE)).unwrap();
        let master = [9u8; 32];
        let wrapped = kek.wrap(3, &master).unwrap();
        assert_eq!(*kek.unwrap(3, &wrapped).unwrap(), master);
        // Moved to another version's row: refused.
        assert!(kek.unwrap(4, &wrapped).is_err());
        // Another KEK: refused, naming where this one came from.
        let other = Kek::load_or_create(&dir.path().join("other.kek")).unwrap();
        let err = other.unwrap(3, &wrapped).unwrap_err().to_string();
        assert!(
            err.contains("other.kek") && err.contains("same one"),
            "{err}"
        );
        // Damaged: refused.
        let mut bad = wrapped.clone();
        bad[20] ^= 1;
        assert!(kek.unwrap(3, &bad).is_err());
        assert!(kek.unwrap(3, &wrapped[..40]).is_err());
        // The same file read again is the same KEK.
        let again = Kek::load(&dir.path().join(KEK_FILE)).unwrap();
        assert_eq!(*again.unwrap(3, &wrapped).unwrap(), master);
    }

    #[test]
    fn the_kek_file_is_private_and_a_bad_one_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEK_FILE);
        Kek::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "# c\nkek short\n").unwrap();
        let err = Kek::load(&path).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
        std::fs::write(&path, "# nothing\n").unwrap();
        let err = Kek::load(&path).unwrap_err().to_string();
        assert!(err.contains("holds no key-encryption key"), "{err}");
        let key = STANDARD.encode([1u8; 32]);
        std::fs::write(&path, format!("kek {key}\nkek {key}\n")).unwrap();
        assert!(Kek::load(&path).unwrap_err().to_string().contains("second"));
    }
}
