//! Load-test accounts, derived from their index so that the generator knows every code and TOTP
//! secret without reading the database. Their secrets are public (they follow from this file),
//! so `seed` refuses a data directory that holds real accounts.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use rand::Rng;
use sha1::{Digest, Sha1};

use crate::domain::{AccountCode, AccountId, AccountName, PhoneNumber, Region};
use crate::store::Store;
use crate::store::accounts::NewAccount;
use crate::store::calls::{self, Call};
use crate::verify::{Factor, Factors, Keyring};

pub const ID_PREFIX: &str = "LOAD-";

#[derive(Debug, Clone)]
pub struct Fixture {
    pub index: u64,
    pub id: String,
    pub phone: String,
    pub code: String,
    /// Every second account has an authenticator.
    pub totp_secret: Option<Vec<u8>>,
}

pub fn fixture(index: u64) -> Fixture {
    let totp_secret = index.is_multiple_of(2).then(|| {
        let mut h = Sha1::new();
        h.update(b"callgate loadtest totp ");
        h.update(index.to_le_bytes());
        h.finalize().to_vec()
    });
    Fixture {
        index,
        id: format!("{ID_PREFIX}{index:07}"),
        // +48 50x xxx xxx: Polish mobile numbers, one per account.
        phone: format!("+4850{:07}", index % 10_000_000),
        code: format!("{:09}", 300_000_000 + index),
        totp_secret,
    }
}

/// A code no fixture has (fixtures have 9 digits; this has 10).
pub fn wrong_code() -> String {
    format!("1{:09}", rand::thread_rng().gen_range(0..1_000_000_000u64))
}

/// A caller ID registered to no fixture, for legitimate callers (+48 79x xxx xxx).
pub fn stranger_number() -> String {
    format!("+4879{:07}", rand::thread_rng().gen_range(0..10_000_000u32))
}

/// A caller ID for guessers (+48 78x xxx xxx), apart from the legitimate callers' numbers: a
/// number that guessed wrong often enough is locked out, rightly, and a legitimate call must
/// not land on it by chance.
pub fn guesser_number() -> String {
    format!("+4878{:07}", rand::thread_rng().gen_range(0..10_000_000u32))
}

/// Adds fixtures `0..accounts` (those missing) and `finished_calls` finished calls of history,
/// in batches of one transaction each.
pub fn seed(
    store: &Store,
    keys: &Keyring,
    accounts: u64,
    finished_calls: u64,
    force: bool,
) -> anyhow::Result<u64> {
    let (all, existing) = store.read_sync(|db| {
        Ok((
            db.count_accounts()?,
            db.count_accounts_with_id_prefix(ID_PREFIX)?,
        ))
    })?;
    let real = all - existing;
    if real > 0 && !force {
        bail!(
            "this data directory holds {real} real account(s); load-test accounts have public codes and \
             TOTP secrets and must never sit beside them (use a separate --data-dir, or --force)"
        );
    }
    let start = u64::try_from(existing).unwrap_or(0);
    let now = crate::store::now_ms();
    let region = Region::default();
    let attributes: BTreeMap<String, String> = [("plan".to_owned(), "loadtest".to_owned())].into();
    let name = AccountName::parse("Load Test")?;
    for batch_start in (start..accounts).step_by(10_000) {
        store.write_sync(|db| {
            for index in batch_start..(batch_start + 10_000).min(accounts) {
                let f = fixture(index);
                let id = AccountId::parse(&f.id)?;
                let phone = PhoneNumber::parse(&f.phone, region)
                    .with_context(|| format!("fixture phone {}", f.phone))?;
                let code = AccountCode::parse(&f.code)?;
                let new = NewAccount {
                    id: &id,
                    name: &name,
                    phone: &phone,
                    code: Some(&code),
                    totp_secret: f.totp_secret.as_deref(),
                    attributes: &attributes,
                    knowledge: &[],
                    test: false,
                };
                db.insert_account(keys, &new, now)?;
            }
            Ok(())
        })?;
    }
    if finished_calls > 0 {
        if accounts == 0 {
            bail!("call history needs at least one load-test account (--accounts)");
        }
        seed_history(store, accounts, finished_calls, now)?;
    }
    Ok(accounts.saturating_sub(start))
}

/// Finished calls spread over the last 90 days, so that per-call look-ups run against a table of
/// realistic size.
fn seed_history(store: &Store, accounts: u64, finished_calls: u64, now: i64) -> anyhow::Result<()> {
    let mut rng = rand::thread_rng();
    let existing = store.read_sync(|db| db.count_calls_with_sid_prefix("CAhist"))?;
    let start = u64::try_from(existing).unwrap_or(0);
    for batch_start in (start..finished_calls).step_by(10_000) {
        store.write_sync(|db| {
            for n in batch_start..(batch_start + 10_000).min(finished_calls) {
                let f = fixture(n % accounts);
                let started = now - rng.gen_range(0..90 * 24 * 3600 * 1000i64);
                let mut factors = Factors::default();
                factors.add(Factor::AccountCode);
                factors.add(Factor::CallerId);
                let call = Call {
                    call_sid: format!("CAhist{n:026}"),
                    caller: f.phone.clone(),
                    called: Some("+48221234567".into()),
                    stir_verstat: None,
                    script: "default".into(),
                    script_sha: "seed".into(),
                    script_version: None,
                    language: "pl-PL".into(),
                    step: calls::HANDED_OFF.into(),
                    state: Default::default(),
                    step_attempts: 0,
                    step_silences: 0,
                    account_id: Some(f.id.clone()),
                    caller_id_match: true,
                    factors,
                    failed_attempts: 0,
                    department: Some(["billing", "technical", "other"][(n % 3) as usize].into()),
                    handoff: Some("enqueue".into()),
                    status: "completed".into(),
                    end_reason: Some("handoff_bridged".into()),
                    started_at: started,
                    verified_at: Some(started + 8_000),
                    handed_off_at: Some(started + 15_000),
                    ended_at: Some(started + 300_000),
                    duration_secs: Some(300),
                };
                db.save_call(&call, now)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_phones_are_valid_and_codes_unique() {
        let region = Region::default();
        for i in [0, 1, 9, 1234, 999_999, 9_999_999] {
            let f = fixture(i);
            assert!(PhoneNumber::parse(&f.phone, region).is_ok(), "{}", f.phone);
            assert!(AccountCode::parse(&f.code).is_ok());
        }
        assert_ne!(fixture(1).code, fixture(2).code);
        assert!(fixture(2).totp_secret.is_some() && fixture(3).totp_secret.is_none());
        assert!(PhoneNumber::parse(&stranger_number(), region).is_ok());
        assert!(PhoneNumber::parse(&guesser_number(), region).is_ok());
        assert!(
            PhoneNumber::parse("+48780000000", region).is_ok()
                && PhoneNumber::parse("+48799999999", region).is_ok()
        );
        assert_eq!(wrong_code().len(), 10);
    }
}
