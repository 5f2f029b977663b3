//! `callgate account ...`

use anyhow::{Context, bail};
use clap::Subcommand;

use super::{in_transaction, operator, refusal};
use crate::domain::{PhoneNumber, Region};
use crate::store::{Store, now_ms, to_rfc3339};
use crate::usecases::accounts::{self, AccountForm, CallCodeTtl};
use crate::usecases::settings::set_visible_attributes;
use crate::verify::KeyCustody;

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
        #[arg(long, env = "CALLGATE_CALL_CODE_TTL_MINUTES", default_value_t = crate::config::DEFAULT_CALL_CODE_TTL_MINUTES)]
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

pub fn run(
    cmd: AccountCommand,
    place: &crate::store::Location,
    region: Region,
) -> anyhow::Result<()> {
    let data_dir = place.data_dir.as_path();
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
            let form = AccountForm {
                id,
                name,
                phone,
                code,
                totp,
                test,
                attributes: pairs(&attrs, "--attr", "KEY=VALUE")?,
                knowledge: pairs(&knowledge, "--knowledge", "QUESTION=DIGITS")?,
            };
            // Everything is checked before anything is opened or written.
            let account = form.validate(region).map_err(refusal)?;
            let store = Store::at(place)?;
            let keys = KeyCustody::of(&store, data_dir)?.open(&store, now_ms())?;
            let added = in_transaction(&store, |db| {
                accounts::add(db, &keys, &operator(), &account, now_ms())
            })?;
            let a = &added.account;
            println!("account {} added: {} {}", a.id, a.name, a.phone);
            if let Some(uri) = added.otpauth_uri {
                println!("Scan this with an authenticator app:");
                print_qr(&uri);
                println!("{uri}");
            }
            Ok(())
        }
        AccountCommand::Export { id } => {
            let store = Store::at(place)?;
            let export = store.read_sync(|db| db.export_account(&id))?;
            println!("{}", serde_json::to_string_pretty(&export)?);
            Ok(())
        }
        AccountCommand::Forget { id, yes } => {
            if !yes {
                bail!("forgetting {id} erases its personal data for good: add --yes to confirm");
            }
            let store = Store::at(place)?;
            let done = in_transaction(&store, |db| {
                accounts::forget(db, &operator(), &id, now_ms())
            })?;
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
            let ttl = CallCodeTtl::minutes(ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
            let store = Store::at(place)?;
            let keys = KeyCustody::of(&store, data_dir)?.open(&store, now_ms())?;
            let code = in_transaction(&store, |db| {
                accounts::issue_call_code(db, &keys, &operator(), &id, ttl, now_ms())
            })?;
            println!(
                "one-time call code for {id}, valid {} minutes, single use:",
                ttl.as_minutes()
            );
            println!("{}", code.as_str());
            Ok(())
        }
        AccountCommand::List => {
            let store = Store::at(place)?;
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
            let store = Store::at(place)?;
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
            let store = Store::at(place)?;
            in_transaction(&store, |db| {
                accounts::change_phone(db, &operator(), &id, &phone, now_ms())
            })?;
            println!("account {id}: phone changed to {phone}");
            Ok(())
        }
        AccountCommand::VisibleAttributes { keys, all } => {
            let store = Store::at(place)?;
            if all || keys.is_some() {
                let list: Option<Vec<String>> = keys.map(|k| {
                    k.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                });
                in_transaction(&store, |db| {
                    set_visible_attributes(db, &operator(), list.as_deref(), now_ms())
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
            let store = Store::at(place)?;
            in_transaction(&store, |db| {
                accounts::unlock(db, &operator(), &id, now_ms())
            })?;
            println!("account {id} unlocked");
            Ok(())
        }
        AccountCommand::Remove { id } => {
            let store = Store::at(place)?;
            in_transaction(&store, |db| {
                accounts::remove(db, &operator(), &id, now_ms())
            })?;
            println!("account {id} removed");
            Ok(())
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `KEY=VALUE` arguments of a repeatable flag, split; the rules on keys and values are the use
/// case's.
fn pairs(args: &[String], flag: &str, shape: &str) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|arg| {
            let (key, value) = arg.split_once('=').with_context(|| {
                // An answer is a secret: a malformed pair is not repeated.
                if flag == "--knowledge" {
                    format!("{flag}: expected {shape}")
                } else {
                    format!("{flag} {arg:?} must be {shape}")
                }
            })?;
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
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
