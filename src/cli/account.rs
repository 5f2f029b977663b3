//! `callgate account ...`

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::domain::{AccountCode, AccountId, AccountName, AttributeKey, PhoneNumber, Region};
use crate::store::accounts::{self, AddAccountError, NewAccount};
use crate::store::{Store, now_ms, to_rfc3339};
use crate::verify::{Keyring, totp};

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Register a customer account.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Registered phone; without a country code it is read in --region.
        #[arg(long)]
        phone: String,
        /// Permanent account code, 6 to 12 digits, unique.
        #[arg(long)]
        code: Option<String>,
        /// Give the account an authenticator (prints the otpauth:// URI and a QR code).
        #[arg(long)]
        totp: bool,
        /// An attribute shown to agents, e.g. --attr plan=premium (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        /// A knowledge answer, e.g. --knowledge dob=14031985 (digits, as typed on a keypad;
        /// stored as a keyed hash; repeatable).
        #[arg(long, value_name = "QUESTION=DIGITS")]
        knowledge: Vec<String>,
        /// A test account, which the admin page's call simulator may use.
        #[arg(long)]
        test: bool,
    },
    /// Issue a one-time call code (what the customer sees in their logged-in account).
    CallCode {
        id: String,
        /// Validity in minutes.
        #[arg(long, env = "CALLGATE_CALL_CODE_TTL_MINUTES", default_value_t = 30)]
        ttl: u32,
    },
    List,
    Show {
        id: String,
    },
    Remove {
        id: String,
    },
    /// Change the registered phone. The change is remembered: for 30 days agents see the risk
    /// flag "number changed recently" on the account's calls.
    SetPhone {
        id: String,
        phone: String,
    },
    /// Which account attributes agents see in screen-pops: a comma-separated list of keys
    /// (e.g. `plan,device`; "" for none), `--all` for every attribute, nothing to show the
    /// current choice.
    VisibleAttributes {
        keys: Option<String>,
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
    /// Everything held about the account, as JSON (no code, TOTP secret or answer: only whether
    /// they exist).
    Export {
        id: String,
    },
    /// Erase the account's personal data; its calls stay as anonymous counts.
    Forget {
        id: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Lift a lock on the account's keypad verification and forget its failure count (after
    /// the customer's identity was confirmed another way).
    Unlock {
        id: String,
    },
}

pub fn run(cmd: AccountCommand, data_dir: &Path, region: Region) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Add {
            id,
            name,
            phone,
            code,
            totp,
            attrs,
            knowledge,
            test,
        } => {
            // Everything is parsed before anything is opened or written.
            let id = AccountId::parse(&id)?;
            let name = AccountName::parse(&name)?;
            let phone = PhoneNumber::parse(&phone, region)?;
            let code = code.as_deref().map(AccountCode::parse).transpose()?;
            let attributes = parse_attributes(&attrs)?;
            let knowledge = parse_knowledge(&knowledge)?;
            let store = Store::open(data_dir)?;
            let keys = Keyring::load_or_create(data_dir)?;
            let secret = totp.then(totp::new_secret);
            let new = NewAccount {
                id: &id,
                name: &name,
                phone: &phone,
                code: code.as_ref(),
                totp_secret: secret.as_deref().map(Vec::as_slice),
                attributes: &attributes,
                knowledge: &knowledge,
                test,
            };
            let uri = secret
                .as_ref()
                .map(|s| totp::provisioning_uri(s, id.as_str()))
                .transpose()?;
            // The account and its audit entry commit together; a refused code is audited and
            // committed too, as the admin API does, so probing for codes shows in the trail.
            let (actor, now) = (cli_actor(), now_ms());
            // The refusal is committed, then reported.
            let refused = store.write_sync(|db| match db.add_account(&keys, &new, now) {
                Ok(()) => {
                    accounts::audit_added(db, &actor, &new, now)?;
                    Ok(None)
                }
                Err(e @ AddAccountError::DuplicateCode) => {
                    accounts::audit_code_refused(db, &actor, &id, now)?;
                    Ok(Some(e))
                }
                Err(e) => Err(e.into()),
            })?;
            if let Some(e) = refused {
                return Err(e.into());
            }
            println!("account {id} added: {name} {phone}", name = name.as_str());
            if let Some(uri) = uri {
                println!("Scan this with an authenticator app:");
                print_qr(&uri);
                println!("{uri}");
            }
            Ok(())
        }
        AccountCommand::Export { id } => {
            let store = Store::open(data_dir)?;
            let export = store.read_sync(|db| db.export_account(&id))?;
            println!("{}", serde_json::to_string_pretty(&export)?);
            Ok(())
        }
        AccountCommand::Forget { id, yes } => {
            if !yes {
                bail!("forgetting {id} erases its personal data for good: add --yes to confirm");
            }
            let store = Store::open(data_dir)?;
            let done = store.write_sync(|db| db.forget_account(&id, &cli_actor(), now_ms()))?;
            // The erased data may still sit in the backend's own files (SQLite's write-ahead
            // log) until they are emptied.
            if let Err(e) = store.purge_erased_copies() {
                eprintln!(
                    "note: old copies of the erased data could not be cleared now ({e:#}); the server's checkpoints will"
                );
            }
            println!(
                "account {id} forgotten: personal data erased; {} call(s) kept as anonymous counts",
                done.calls_kept_anonymously
            );
            Ok(())
        }
        AccountCommand::CallCode { id, ttl } => {
            if !(1..=24 * 60).contains(&ttl) {
                bail!("--ttl must be between 1 and 1440 minutes");
            }
            let store = Store::open(data_dir)?;
            let keys = Keyring::load_or_create(data_dir)?;
            let code = store.write_sync(|db| {
                if db.account(&id)?.is_none() {
                    bail!("no account with id {id}");
                }
                db.issue_call_code(&keys, &id, i64::from(ttl) * 60_000, now_ms())
            })?;
            println!("one-time call code for {id}, valid {ttl} minutes, single use:");
            println!("{}", code.as_str());
            Ok(())
        }
        AccountCommand::List => {
            let store = Store::open(data_dir)?;
            let list = store.read_sync(|db| db.accounts())?;
            if list.is_empty() {
                println!("no accounts");
            }
            for a in list {
                println!(
                    "{:<16} {:<14} code:{} totp:{} {}",
                    a.id,
                    a.phone,
                    yes_no(a.has_code),
                    yes_no(a.has_totp),
                    a.name
                );
            }
            Ok(())
        }
        AccountCommand::Show { id } => {
            let store = Store::open(data_dir)?;
            let account = store
                .read_sync(|db| db.account(&id))?
                .with_context(|| format!("no account with id {id}"))?;
            let view = serde_json::json!({
                "id": account.id,
                "name": account.name,
                "phone": account.phone,
                "has_code": account.has_code,
                "has_totp": account.has_totp,
                "attributes": account.attributes,
                "failed_attempts": account.failed_count,
                "locked_until": account.locked_until.filter(|&t| t > now_ms()).and_then(to_rfc3339),
                "created_at": to_rfc3339(account.created_at),
            });
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(())
        }
        AccountCommand::SetPhone { id, phone } => {
            let phone = PhoneNumber::parse(&phone, region)?;
            let store = Store::open(data_dir)?;
            let changed = store.write_sync(|db| db.set_account_phone(&id, &phone, now_ms()))?;
            if !changed {
                bail!("no account with id {id}");
            }
            println!("account {id}: phone changed to {phone}");
            Ok(())
        }
        AccountCommand::VisibleAttributes { keys, all } => {
            let store = Store::open(data_dir)?;
            if all || keys.is_some() {
                let list = match keys {
                    Some(k) => {
                        let parts: Vec<String> = k
                            .split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(str::to_owned)
                            .collect();
                        Some(
                            crate::agent::console::parse_keys(&parts)
                                .map_err(|e| anyhow::anyhow!(e))?,
                        )
                    }
                    None => None,
                };
                let now = now_ms();
                let detail = serde_json::json!({ "attributes": list }).to_string();
                store.write_sync(|db| {
                    db.set_visible_attributes(list.as_deref(), now)?;
                    db.append_audit("cli", "visible_attributes.set", "settings", &detail, now)?;
                    Ok(())
                })?;
            }
            match store.read_sync(|db| db.visible_attributes())? {
                None => println!("agents see every account attribute"),
                Some(list) if list.is_empty() => println!("agents see no account attribute"),
                Some(list) => println!("agents see: {}", list.join(", ")),
            }
            Ok(())
        }
        AccountCommand::Unlock { id } => {
            let store = Store::open(data_dir)?;
            if !store.write_sync(|db| db.unlock_account(&id))? {
                bail!("no account with id {id}");
            }
            println!("account {id} unlocked");
            Ok(())
        }
        AccountCommand::Remove { id } => {
            let store = Store::open(data_dir)?;
            if !store.write_sync(|db| db.remove_account(&id))? {
                bail!("no account with id {id}");
            }
            println!("account {id} removed");
            Ok(())
        }
    }
}

/// Who the audit trail says did what the CLI did: the operator's login.
fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `question=digits` pairs: the question a script's knowledge step names, the answer as the
/// caller types it.
fn parse_knowledge(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| {
            let (q, a) = pair
                .split_once('=')
                .with_context(|| format!("--knowledge {pair:?}: expected QUESTION=DIGITS"))?;
            let q = q.trim();
            let valid_q = !q.is_empty()
                && q.len() <= 40
                && q.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid_q {
                bail!("--knowledge: question {q:?} must be lowercase letters, digits, - or _");
            }
            if a.is_empty() || a.len() > 20 || !a.bytes().all(|b| b.is_ascii_digit()) {
                bail!("--knowledge {q}: the answer must be 1-20 digits, as typed on a keypad");
            }
            Ok((q.to_owned(), a.to_owned()))
        })
        .collect()
}

fn parse_attributes(attrs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for attr in attrs {
        let (key, value) = attr
            .split_once('=')
            .with_context(|| format!("--attr {attr:?} must be KEY=VALUE"))?;
        let key = AttributeKey::parse(key)?;
        if value.chars().count() > 200 || value.chars().any(char::is_control) {
            bail!("--attr value for {key:?} must be at most 200 printable characters");
        }
        map.insert(key.into_string(), value.to_owned());
    }
    Ok(map)
}

fn print_qr(uri: &str) {
    if let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) {
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        println!("{art}");
    }
}
