//! Customer accounts: add, change the phone, unlock, remove, forget, issue a one-time call code.
//! What was typed is checked here, by one set of rules for the admin API, the command line and
//! the demo; every change is audited here, in its own transaction, with no personal value in the
//! entry (the trail outlives `forget`).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use zeroize::{Zeroize, Zeroizing};

use super::{Actor, Refused, Result};
use crate::domain::{
    AccountCode, AccountId, AccountName, AttributeKey, KnowledgeAnswer, PhoneNumber, QuestionId,
    Region,
};
use crate::store::Db;
use crate::store::accounts::{self, Account, AddAccountError, NewAccount};
use crate::store::privacy::Forgotten;
use crate::verify::{Keyring, totp};

/// Attributes one account may have.
pub const MAX_ATTRIBUTES: usize = 32;
/// The longest attribute value, in characters.
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 200;
/// Knowledge answers one account may have.
pub const MAX_KNOWLEDGE_ANSWERS: usize = 16;
/// How long a one-time call code may be valid, in minutes.
pub const CALL_CODE_TTL_MINUTES: RangeInclusive<u32> = 1..=24 * 60;

/// An account as typed at an entry point (JSON, flags), before any rule is applied. The code and
/// the answers are wiped from memory when it is dropped.
#[derive(Default)]
pub struct AccountForm {
    pub id: String,
    pub name: String,
    pub phone: String,
    /// The permanent account code; absent or blank for none.
    pub code: Option<String>,
    /// Give the account an authenticator.
    pub totp: bool,
    /// A test account: answers only in the simulator and on a `--demo` server.
    pub test: bool,
    /// (key, value); a later key replaces an earlier one.
    pub attributes: Vec<(String, String)>,
    /// (question, answer as typed on a keypad).
    pub knowledge: Vec<(String, String)>,
}

impl Drop for AccountForm {
    fn drop(&mut self) {
        self.code.zeroize();
        for (_, answer) in &mut self.knowledge {
            answer.zeroize();
        }
    }
}

/// An account that passed every rule, ready to add.
pub struct ValidAccount {
    id: AccountId,
    name: AccountName,
    phone: PhoneNumber,
    code: Option<AccountCode>,
    totp: bool,
    test: bool,
    attributes: BTreeMap<String, String>,
    knowledge: Vec<(QuestionId, KnowledgeAnswer)>,
}

impl ValidAccount {
    pub fn id(&self) -> &AccountId {
        &self.id
    }
}

impl AccountForm {
    /// Applies every rule before anything is written; a phone without a country code is read in
    /// `region`.
    pub fn validate(&self, region: Region) -> std::result::Result<ValidAccount, Refused> {
        let id = AccountId::parse(self.id.trim()).map_err(Refused::invalid)?;
        let name = AccountName::parse(&self.name).map_err(Refused::invalid)?;
        let phone = PhoneNumber::parse(self.phone.trim(), region).map_err(Refused::invalid)?;
        let code = match self.code.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => Some(AccountCode::parse(c).map_err(Refused::invalid)?),
            _ => None,
        };
        Ok(ValidAccount {
            id,
            name,
            phone,
            code,
            totp: self.totp,
            test: self.test,
            attributes: attributes(&self.attributes)?,
            knowledge: knowledge(&self.knowledge)?,
        })
    }
}

/// Attributes shown to agents: keys by `AttributeKey`'s rule, short printable values.
fn attributes(
    pairs: &[(String, String)],
) -> std::result::Result<BTreeMap<String, String>, Refused> {
    let mut out = BTreeMap::new();
    for (key, value) in pairs {
        let key = AttributeKey::parse(key)
            .map_err(Refused::invalid)?
            .into_string();
        if value.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS || value.chars().any(char::is_control)
        {
            return Err(Refused::Invalid(format!(
                "attribute {key}: the value must be at most {MAX_ATTRIBUTE_VALUE_CHARS} printable characters"
            )));
        }
        out.insert(key, value.clone());
    }
    if out.len() > MAX_ATTRIBUTES {
        return Err(Refused::Invalid(format!(
            "at most {MAX_ATTRIBUTES} attributes"
        )));
    }
    Ok(out)
}

/// Knowledge answers: a question a script can ask (the checker's identifier rule), an answer
/// of keypad digits.
fn knowledge(
    pairs: &[(String, String)],
) -> std::result::Result<Vec<(QuestionId, KnowledgeAnswer)>, Refused> {
    if pairs.len() > MAX_KNOWLEDGE_ANSWERS {
        return Err(Refused::Invalid(format!(
            "at most {MAX_KNOWLEDGE_ANSWERS} knowledge answers"
        )));
    }
    pairs
        .iter()
        .map(|(question, answer)| {
            let question = QuestionId::parse(question.trim()).map_err(Refused::invalid)?;
            let answer = KnowledgeAnswer::parse(&question, answer).map_err(Refused::invalid)?;
            Ok((question, answer))
        })
        .collect()
}

/// A new account, and its authenticator's `otpauth://` URI (a secret: shown once, in the answer
/// that made it, never logged or audited).
pub struct Added {
    pub account: Account,
    pub otpauth_uri: Option<String>,
}

/// Adds an account, audited as `account.add` (which fields were set, never a value). An id or a
/// code already in use is refused; a refused code is audited (`account.code_refused`, without
/// the code) and committed with the refusal, so probing for codes shows in the trail.
pub fn add(
    db: &dyn Db,
    keys: &Keyring,
    actor: &Actor,
    account: &ValidAccount,
    now: i64,
) -> Result<Added> {
    let secret = account.totp.then(totp::new_secret);
    let otpauth_uri = secret
        .as_ref()
        .map(|s| totp::provisioning_uri(s, account.id.as_str()))
        .transpose()?;
    // The store takes plain strings; this copy of the answers is wiped when it goes.
    let knowledge: Zeroizing<Vec<(String, String)>> = Zeroizing::new(
        account
            .knowledge
            .iter()
            .map(|(q, a)| (q.as_str().to_owned(), a.expose().to_owned()))
            .collect(),
    );
    let new = NewAccount {
        id: &account.id,
        name: &account.name,
        phone: &account.phone,
        code: account.code.as_ref(),
        totp_secret: secret.as_deref().map(Vec::as_slice),
        attributes: &account.attributes,
        knowledge: &knowledge,
        test: account.test,
    };
    match db.add_account(keys, &new, now) {
        Ok(()) => {}
        Err(AddAccountError::Other(e)) => return Err(e.into()),
        Err(e @ AddAccountError::DuplicateCode) => {
            accounts::audit_code_refused(db, actor.as_str(), &account.id, now)?;
            return Err(Refused::Conflict(e.to_string()).into());
        }
        Err(e @ AddAccountError::DuplicateId(_)) => {
            return Err(Refused::Conflict(e.to_string()).into());
        }
    }
    accounts::audit_added(db, actor.as_str(), &new, now)?;
    let added = db
        .account(account.id.as_str())?
        .ok_or_else(|| anyhow::anyhow!("the new account was not found"))?;
    tracing::info!(actor = %actor, account = %account.id, "account added");
    Ok(Added {
        account: added,
        otpauth_uri,
    })
}

fn no_account(id: &str) -> Refused {
    Refused::NotFound(format!("no account with id {id}"))
}

/// An id as typed: one that cannot be an account id names no account.
fn account_id(id: &str) -> std::result::Result<AccountId, Refused> {
    AccountId::parse(id).map_err(|_| no_account(id))
}

/// Writes the audit entry of a change to `id` that carries no detail.
fn audit_account(db: &dyn Db, actor: &Actor, action: &str, id: &AccountId, now: i64) -> Result<()> {
    db.append_audit(actor.as_str(), action, &format!("account:{id}"), "", now)?;
    Ok(())
}

/// Removes an account and its call codes; its past calls keep their record without the link.
/// Audited as `account.remove`.
pub fn remove(db: &dyn Db, actor: &Actor, id: &str, now: i64) -> Result<()> {
    let id = account_id(id)?;
    if !db.remove_account(id.as_str())? {
        return Err(no_account(id.as_str()).into());
    }
    audit_account(db, actor, "account.remove", &id, now)?;
    tracing::info!(actor = %actor, account = %id, "account removed");
    Ok(())
}

/// Lifts a lock on the account's keypad verification and forgets its failure count (after the
/// customer's identity was confirmed another way). Audited as `account.unlock`.
pub fn unlock(db: &dyn Db, actor: &Actor, id: &str, now: i64) -> Result<()> {
    let id = account_id(id)?;
    if !db.unlock_account(id.as_str())? {
        return Err(no_account(id.as_str()).into());
    }
    audit_account(db, actor, "account.unlock", &id, now)?;
    tracing::info!(actor = %actor, account = %id, "account unlocked");
    Ok(())
}

/// Changes the registered phone; remembered, so agents see "number changed recently" on the
/// account's calls for a while. Audited as `account.set_phone`, without either number.
pub fn change_phone(
    db: &dyn Db,
    actor: &Actor,
    id: &str,
    phone: &PhoneNumber,
    now: i64,
) -> Result<()> {
    let id = account_id(id)?;
    if !db.set_account_phone(id.as_str(), phone, now)? {
        return Err(no_account(id.as_str()).into());
    }
    audit_account(db, actor, "account.set_phone", &id, now)?;
    tracing::info!(actor = %actor, account = %id, "account phone changed");
    Ok(())
}

/// Erases the account's personal data; its calls stay as anonymous counts. Audited as
/// `account.forget`, without naming the account (that would undo the erasure).
pub fn forget(db: &dyn Db, actor: &Actor, id: &str, now: i64) -> Result<Forgotten> {
    let id = account_id(id)?;
    if db.account(id.as_str())?.is_none() {
        return Err(no_account(id.as_str()).into());
    }
    let forgotten = db.forget_account(id.as_str(), actor.as_str(), now)?;
    tracing::info!(actor = %actor, "account forgotten");
    Ok(forgotten)
}

/// How long a one-time call code stays valid.
#[derive(Debug, Clone, Copy)]
pub struct CallCodeTtl(u32);

impl CallCodeTtl {
    pub fn minutes(minutes: u32) -> std::result::Result<Self, Refused> {
        if CALL_CODE_TTL_MINUTES.contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(Refused::Invalid(format!(
                "a call code must be valid between {} and {} minutes",
                CALL_CODE_TTL_MINUTES.start(),
                CALL_CODE_TTL_MINUTES.end()
            )))
        }
    }

    pub fn as_minutes(self) -> u32 {
        self.0
    }
}

/// Issues a one-time call code for the account (what the customer sees in their logged-in
/// account). The code is returned once and stored only as a keyed hash. Audited as
/// `account.call_code`, without the code: it is a way in to the account.
pub fn issue_call_code(
    db: &dyn Db,
    keys: &Keyring,
    actor: &Actor,
    id: &str,
    ttl: CallCodeTtl,
    now: i64,
) -> Result<Zeroizing<String>> {
    let id = account_id(id)?;
    if db.account(id.as_str())?.is_none() {
        return Err(no_account(id.as_str()).into());
    }
    let minutes = ttl.as_minutes();
    let code = db.issue_call_code(keys, id.as_str(), i64::from(minutes) * 60_000, now)?;
    db.append_audit(
        actor.as_str(),
        "account.call_code",
        &format!("account:{id}"),
        &format!("a one-time call code, valid {minutes} minute(s)"),
        now,
    )?;
    Ok(code)
}
