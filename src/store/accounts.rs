//! Customer accounts. Codes are stored as keyed hashes, TOTP secrets encrypted; nothing here
//! ever holds a plaintext secret longer than the call that hashes or seals it.

use std::collections::BTreeMap;

use crate::domain::{AccountCode, AccountId, AccountName, PhoneNumber};
use crate::verify::Keyring;

use super::Db;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub has_code: bool,
    pub has_totp: bool,
    pub attributes: BTreeMap<String, String>,
    pub failed_count: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub test: bool,
}

pub struct NewAccount<'a> {
    pub id: &'a AccountId,
    pub name: &'a AccountName,
    pub phone: &'a PhoneNumber,
    pub code: Option<&'a AccountCode>,
    /// A TOTP secret to seal, when the account gets an authenticator.
    pub totp_secret: Option<&'a [u8]>,
    pub attributes: &'a BTreeMap<String, String>,
    /// Knowledge answers (question, answer), e.g. ("dob", "14031985"), stored as keyed hashes.
    pub knowledge: &'a [(String, String)],
    /// A test account: the only kind the admin page's call simulator sees.
    pub test: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AddAccountError {
    #[error("an account with id {0} already exists")]
    DuplicateId(String),
    #[error("that account code is already in use; choose another")]
    DuplicateCode,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// When an account was last locked and its phone last changed (the screen-pop's risk flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountHistory {
    pub last_locked_at: Option<i64>,
    pub phone_changed_at: Option<i64>,
}

/// The test accounts as stored, for the call simulator's scratch store: whole rows, hashes and
/// ciphertexts included, so the copies verify exactly as the originals (`Backend::
/// scratch_with_test_accounts`). Never shown or logged: they hold sealed secrets.
#[derive(Default)]
pub struct TestAccountRows {
    pub accounts: Vec<AccountRow>,
    /// Their knowledge answers.
    pub knowledge: Vec<KnowledgeRow>,
    /// Their unused call codes.
    pub call_codes: Vec<CallCodeRow>,
}

/// Every column of an `accounts` row.
pub struct AccountRow {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub code_hash: Option<Vec<u8>>,
    pub code_key_version: Option<i64>,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_key_version: Option<i64>,
    pub totp_last_step: Option<i64>,
    pub attributes: String,
    pub failed_count: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub test: bool,
    pub phone_changed_at: Option<i64>,
    pub last_locked_at: Option<i64>,
}

/// Every column of an `account_knowledge` row.
pub struct KnowledgeRow {
    pub account_id: String,
    pub question: String,
    pub answer_hash: Vec<u8>,
    pub key_version: i64,
}

/// Every column of a `call_codes` row.
pub struct CallCodeRow {
    pub id: i64,
    pub account_id: String,
    pub code_hash: Vec<u8>,
    pub key_version: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by_call: Option<String>,
}

pub trait AccountsDb {
    /// Checks for a duplicate id or code (an account's or a live call code's) and inserts the
    /// account, in the caller's transaction (the admin API writes its audit entry in the same
    /// one).
    fn add_account(
        &self,
        keys: &Keyring,
        new: &NewAccount<'_>,
        now: i64,
    ) -> Result<(), AddAccountError>;

    /// Writes the account row, sealing its secrets; the caller has checked for duplicates (or
    /// is seeding test data it generated itself).
    fn insert_account(&self, keys: &Keyring, new: &NewAccount<'_>, now: i64) -> anyhow::Result<()>;

    fn account(&self, id: &str) -> anyhow::Result<Option<Account>>;

    /// Every account, by id.
    fn accounts(&self) -> anyhow::Result<Vec<Account>>;

    /// Up to `limit` accounts whose id or name contains `query` (case-insensitive), by id: the
    /// admin page's list, which must stay fast with many accounts.
    fn search_accounts(&self, query: &str, limit: u32) -> anyhow::Result<Vec<Account>>;

    /// Removes an account and its call codes; its past calls keep their record without the
    /// link. `false` if there was no such account.
    fn remove_account(&self, id: &str) -> anyhow::Result<bool>;

    /// Changes the registered phone and remembers when (a risk flag for a while); `false` if
    /// there is no such account.
    fn set_account_phone(&self, id: &str, phone: &PhoneNumber, now: i64) -> anyhow::Result<bool>;

    /// The ids of the accounts registered to `phone`.
    fn account_ids_on_phone(&self, phone: &str) -> anyhow::Result<Vec<String>>;

    /// The account whose permanent code is `code`, by keyed-hash look-up (under every key
    /// version). A code found under an older key version is re-keyed on the spot, in the
    /// caller's transaction (a successful use is the only moment a rotation can reach it).
    fn find_account_by_code(&self, keys: &Keyring, code: &str) -> anyhow::Result<Option<String>>;

    /// The account's decrypted TOTP secret, if it has an authenticator (re-sealed under the
    /// current key when it was sealed under an older one).
    fn totp_secret(
        &self,
        keys: &Keyring,
        id: &str,
    ) -> anyhow::Result<Option<zeroize::Zeroizing<Vec<u8>>>>;

    /// Accepts TOTP `step` for the account only if it is later than every step accepted
    /// before, atomically, so two calls presenting the same code at once cannot both win.
    fn advance_totp_step(&self, id: &str, step: u64) -> anyhow::Result<bool>;

    fn account_history(&self, id: &str) -> anyhow::Result<AccountHistory>;

    /// How many accounts there are.
    fn count_accounts(&self) -> anyhow::Result<i64>;

    /// How many accounts are not test accounts.
    fn count_real_accounts(&self) -> anyhow::Result<i64>;

    /// How many account ids start with `prefix` (the load test's fixtures).
    fn count_accounts_with_id_prefix(&self, prefix: &str) -> anyhow::Result<i64>;

    /// The test accounts, their knowledge answers and their unused call codes, as stored.
    fn test_account_rows(&self) -> anyhow::Result<TestAccountRows>;
}

/// Records a new account in the audit trail (in the caller's transaction): its id and which
/// fields were set, never a value. The trail is append-only and outlives `account forget`, so a
/// name, a phone (even masked), an attribute value or an answer written there could never be
/// erased; attribute keys and knowledge questions are field names, not data about the person.
pub fn audit_added(db: &dyn Db, actor: &str, new: &NewAccount<'_>, now: i64) -> anyhow::Result<()> {
    let detail = serde_json::json!({
        "fields": ["name", "phone"],
        "code": new.code.is_some(),
        "totp": new.totp_secret.is_some(),
        "test": new.test,
        "attributes": new.attributes.keys().collect::<Vec<_>>(),
        "knowledge": new.knowledge.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(),
    });
    db.append_audit(
        actor,
        "account.add",
        &format!("account:{}", new.id),
        &detail.to_string(),
        now,
    )?;
    Ok(())
}

/// Records that `actor` was refused an account code already in use (in the caller's
/// transaction, which must commit although the account was not added). Codes stay unique, so
/// the refusal tells whoever tries a code that someone has it: each try shows in the trail, so
/// probing for codes shows. Never the code, nor the name or phone of the refused account.
pub fn audit_code_refused(
    db: &dyn Db,
    actor: &str,
    id: &AccountId,
    now: i64,
) -> anyhow::Result<()> {
    db.append_audit(
        actor,
        "account.code_refused",
        &format!("account:{id}"),
        "an account code already in use was refused; the account was not added",
        now,
    )?;
    tracing::warn!(target: "callgate::security", actor = %actor, account = %id, "an account code already in use was refused");
    Ok(())
}
