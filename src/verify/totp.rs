//! TOTP as RFC 6238 defines it for authenticator apps: SHA1, 6 digits, 30-second steps, one step
//! of drift either way. Replays are refused by the store, which keeps the last accepted step per
//! account and only moves it forward (RFC 6238 §5.2); here we only compute and match.

use anyhow::Context;
use rand::RngCore;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

pub const DIGITS: u8 = 6;
pub const STEP_SECS: u64 = 30;
pub const SKEW: u16 = 1;
pub const ISSUER: &str = "callgate";

/// A fresh 160-bit secret, the size RFC 4226 recommends.
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

fn build(secret: &[u8], account_label: &str) -> anyhow::Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(ISSUER))
        .with_account_name(account_label)
        .build()
        .context("building TOTP")
}

/// The `otpauth://totp/callgate:<account>?secret=...` URI an authenticator app scans.
pub fn provisioning_uri(secret: &[u8], account_label: &str) -> anyhow::Result<String> {
    build(secret, account_label)?
        .to_url()
        .context("building otpauth URI")
}

/// The time step the code matches at `unix_time`, within one step of drift; `None` for a wrong or
/// malformed code. The comparison is constant-time inside totp-rs.
pub fn matching_step(secret: &[u8], code: &str, unix_time: u64) -> Option<u64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    build(secret, "check").ok()?.check(code, unix_time)
}

/// The code for `unix_time` (for the softphone's demo and for tests).
pub fn code_at(secret: &[u8], unix_time: u64) -> anyhow::Result<String> {
    Ok(build(secret, "generate")?.generate(unix_time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA1 column, with the 20-byte ASCII seed; the RFC's codes have 8
    /// digits, so the vectors are checked with an 8-digit generator of the same crate.
    #[test]
    fn rfc6238_sha1_vectors() {
        let seed = b"12345678901234567890".to_vec();
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_step_duration(30)
            .with_skew(0)
            .with_secret(seed.clone())
            .build_noncompliant();
        for (t, want) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(totp.generate(t).to_string(), want, "t={t}");
        }
    }

    #[test]
    fn rfc6238_sha256_and_sha512_vectors_with_their_own_seeds() {
        let sha256 = Builder::new()
            .with_algorithm(Algorithm::SHA256)
            .with_digits(8)
            .with_secret(b"12345678901234567890123456789012".to_vec())
            .build_noncompliant();
        let sha512 = Builder::new()
            .with_algorithm(Algorithm::SHA512)
            .with_digits(8)
            .with_secret(
                b"1234567890123456789012345678901234567890123456789012345678901234".to_vec(),
            )
            .build_noncompliant();
        assert_eq!(sha256.generate(59).to_string(), "46119246");
        assert_eq!(sha256.generate(20000000000).to_string(), "77737706");
        assert_eq!(sha512.generate(59).to_string(), "90693936");
        assert_eq!(sha512.generate(1234567890).to_string(), "93441116");
    }

    #[test]
    fn rfc4226_hotp_vectors_as_six_digit_steps() {
        // HOTP(counter) == TOTP at time counter*30 with a 30 s step.
        let seed = b"12345678901234567890";
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in want.iter().enumerate() {
            assert_eq!(
                code_at(seed, counter as u64 * 30).unwrap(),
                *code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn one_step_of_drift_and_no_more() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let step = now / 30;
        let prev = code_at(&secret, now - 30).unwrap();
        let next = code_at(&secret, now + 30).unwrap();
        let far = code_at(&secret, now - 90).unwrap();
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now).unwrap(), now),
            Some(step)
        );
        assert_eq!(matching_step(&secret, &prev, now), Some(step - 1));
        assert_eq!(matching_step(&secret, &next, now), Some(step + 1));
        if far != prev && far != next && far != code_at(&secret, now).unwrap() {
            assert_eq!(matching_step(&secret, &far, now), None);
        }
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "12345a", now), None);
    }

    #[test]
    fn provisioning_uri_names_issuer_and_account() {
        let uri = provisioning_uri(b"12345678901234567890", "ACC-1001").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/callgate:ACC-1001?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
    }
}
