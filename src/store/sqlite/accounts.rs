//! Accounts in SQLite.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::PhoneNumber;
use crate::store::KnowledgeDb;
use crate::store::accounts::{
    Account, AccountHistory, AccountRow, AccountsDb, AddAccountError, CallCodeRow, KnowledgeRow,
    NewAccount, TestAccountRows,
};
use crate::verify::{Keyring, Purpose};

const COLUMNS: &str = "id, name, phone, code_hash IS NOT NULL, totp_secret IS NOT NULL, attributes, \
                       failed_count, locked_until, created_at, test";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let attributes: String = row.get(5)?;
    Ok(Account {
        id: row.get(0)?,
        name: row.get(1)?,
        phone: row.get(2)?,
        has_code: row.get(3)?,
        has_totp: row.get(4)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        failed_count: row.get(6)?,
        locked_until: row.get(7)?,
        created_at: row.get(8)?,
        test: row.get(9)?,
    })
}

impl AccountsDb for Connection {
    fn add_account(
        &self,
        keys: &Keyring,
        new: &NewAccount<'_>,
        now: i64,
    ) -> Result<(), AddAccountError> {
        let exists: bool = self
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM accounts WHERE id = ?1)",
                [new.id.as_str()],
                |r| r.get(0),
            )
            .context("checking id")?;
        if exists {
            return Err(AddAccountError::DuplicateId(new.id.to_string()));
        }
        if let Some(code) = new.code {
            let candidates = keys.keyed_hash_candidates(Purpose::AccountCode, code.expose());
            for (_, hash) in &candidates {
                let taken: bool = self
                    .query_row(
                        "SELECT EXISTS(SELECT 1 FROM accounts WHERE code_hash = ?1)",
                        [hash],
                        |r| r.get(0),
                    )
                    .context("checking code")?;
                if taken {
                    return Err(AddAccountError::DuplicateCode);
                }
            }
            for (_, hash) in keys.keyed_hash_candidates(Purpose::CallCode, code.expose()) {
                let live: bool = self
                    .query_row(
                        "SELECT EXISTS(SELECT 1 FROM call_codes WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2)",
                        params![hash, now],
                        |r| r.get(0),
                    )
                    .context("checking call codes")?;
                if live {
                    return Err(AddAccountError::DuplicateCode);
                }
            }
        }
        self.insert_account(keys, new, now)?;
        Ok(())
    }

    fn insert_account(&self, keys: &Keyring, new: &NewAccount<'_>, now: i64) -> anyhow::Result<()> {
        let code = new
            .code
            .map(|c| keys.keyed_hash(Purpose::AccountCode, c.expose()));
        let totp = match new.totp_secret {
            Some(secret) => Some(keys.encrypt(secret, new.id.as_str())?),
            None => None,
        };
        let attributes = serde_json::to_string(new.attributes).context("attributes")?;
        self.prepare_cached(
            "INSERT INTO accounts (id, name, phone, code_hash, code_key_version, totp_secret, totp_key_version, attributes, created_at, test)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            new.id.as_str(),
            new.name.as_str(),
            new.phone.as_str(),
            code.as_ref().map(|(_, h)| h),
            code.as_ref().map(|(v, _)| v),
            totp.as_ref().map(|(_, s)| s),
            totp.as_ref().map(|(v, _)| v),
            attributes,
            now,
            new.test
        ])
        .context("inserting account")?;
        for (question, answer) in new.knowledge {
            self.set_knowledge_answer(keys, new.id.as_str(), question, answer)?;
        }
        Ok(())
    }

    fn account(&self, id: &str) -> anyhow::Result<Option<Account>> {
        self.prepare_cached(&format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()
            .context("reading account")
    }

    fn accounts(&self) -> anyhow::Result<Vec<Account>> {
        let mut stmt = self.prepare(&format!("SELECT {COLUMNS} FROM accounts ORDER BY id"))?;
        let rows = stmt
            .query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn search_accounts(&self, query: &str, limit: u32) -> anyhow::Result<Vec<Account>> {
        let escaped: String = query
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("%{escaped}%");
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM accounts
             WHERE id LIKE ?1 ESCAPE '\\' OR name LIKE ?1 ESCAPE '\\'
             ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![pattern, limit], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn remove_account(&self, id: &str) -> anyhow::Result<bool> {
        Ok(self.execute("DELETE FROM accounts WHERE id = ?1", [id])? > 0)
    }

    fn set_account_phone(&self, id: &str, phone: &PhoneNumber, now: i64) -> anyhow::Result<bool> {
        let changed = self.execute(
            "UPDATE accounts SET phone = ?2, phone_changed_at = ?3 WHERE id = ?1",
            params![id, phone.as_str(), now],
        )?;
        Ok(changed > 0)
    }

    fn account_ids_on_phone(&self, phone: &str) -> anyhow::Result<Vec<String>> {
        let mut stmt =
            self.prepare_cached("SELECT id FROM accounts WHERE phone = ?1 ORDER BY id")?;
        let ids = stmt
            .query_map([phone], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    fn find_account_by_code(&self, keys: &Keyring, code: &str) -> anyhow::Result<Option<String>> {
        let mut stmt =
            self.prepare_cached("SELECT id, code_key_version FROM accounts WHERE code_hash = ?1")?;
        let current = keys.current_version();
        for (version, hash) in keys.keyed_hash_candidates(Purpose::AccountCode, code) {
            let found: Option<(String, Option<u32>)> = stmt
                .query_row([&hash], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((id, stored_version)) = found {
                if version != current || stored_version != Some(current) {
                    let (v, rekeyed) = keys.keyed_hash(Purpose::AccountCode, code);
                    self.prepare_cached(
                        "UPDATE OR IGNORE accounts SET code_hash = ?2, code_key_version = ?3
                         WHERE id = ?1 AND code_hash = ?4",
                    )?
                    .execute(params![id, rekeyed, v, hash])
                    .context("re-keying the account code")?;
                }
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn totp_secret(
        &self,
        keys: &Keyring,
        id: &str,
    ) -> anyhow::Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let sealed: Option<(Vec<u8>, u32)> = self
            .prepare_cached("SELECT totp_secret, totp_key_version FROM accounts WHERE id = ?1 AND totp_secret IS NOT NULL")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((blob, version)) = sealed else {
            return Ok(None);
        };
        let secret = keys.decrypt(version, &blob, id)?;
        // Sealed under an older key (an account added by a server that had not yet read a
        // rotated key file): re-seal it under the current one.
        if version != keys.current_version() {
            let (v, resealed) = keys.encrypt(&secret, id)?;
            self.prepare_cached(
                "UPDATE accounts SET totp_secret = ?2, totp_key_version = ?3 WHERE id = ?1 AND totp_key_version = ?4",
            )?
            .execute(params![id, resealed, v, version])
            .context("re-sealing the TOTP secret")?;
        }
        Ok(Some(secret))
    }

    fn advance_totp_step(&self, id: &str, step: u64) -> anyhow::Result<bool> {
        let step = i64::try_from(step).context("TOTP step out of range")?;
        // One statement: of two calls presenting the same code at once, one wins.
        let changed = self
            .prepare_cached(
                "UPDATE accounts SET totp_last_step = ?2
                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
            )?
            .execute(params![id, step])?;
        Ok(changed == 1)
    }

    fn account_history(&self, id: &str) -> anyhow::Result<AccountHistory> {
        Ok(self
            .prepare_cached("SELECT last_locked_at, phone_changed_at FROM accounts WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(AccountHistory {
                    last_locked_at: r.get(0)?,
                    phone_changed_at: r.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    fn count_accounts(&self) -> anyhow::Result<i64> {
        Ok(self.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?)
    }

    fn count_real_accounts(&self) -> anyhow::Result<i64> {
        Ok(
            self.query_row("SELECT COUNT(*) FROM accounts WHERE NOT test", [], |r| {
                r.get(0)
            })?,
        )
    }

    fn count_accounts_with_id_prefix(&self, prefix: &str) -> anyhow::Result<i64> {
        // The fixtures' prefix has no LIKE wildcard; `substr` keeps any other prefix literal.
        Ok(self.query_row(
            "SELECT COUNT(*) FROM accounts WHERE substr(id, 1, length(?1)) = ?1",
            [prefix],
            |r| r.get(0),
        )?)
    }

    fn test_account_rows(&self) -> anyhow::Result<TestAccountRows> {
        // Three reads: an account added or removed between them is sorted out by
        // `scratch::from_rows`, which copies only the rows of the accounts it copied.
        let accounts = self
            .prepare(
                "SELECT id, name, phone, code_hash, code_key_version, totp_secret, totp_key_version,
                        totp_last_step, attributes, failed_count, locked_until, created_at, test,
                        phone_changed_at, last_locked_at
                 FROM accounts WHERE test = 1 ORDER BY id",
            )?
            .query_map([], |r| {
                Ok(AccountRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    phone: r.get(2)?,
                    code_hash: r.get(3)?,
                    code_key_version: r.get(4)?,
                    totp_secret: r.get(5)?,
                    totp_key_version: r.get(6)?,
                    totp_last_step: r.get(7)?,
                    attributes: r.get(8)?,
                    failed_count: r.get(9)?,
                    locked_until: r.get(10)?,
                    created_at: r.get(11)?,
                    test: r.get(12)?,
                    phone_changed_at: r.get(13)?,
                    last_locked_at: r.get(14)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .context("reading the test accounts")?;
        let knowledge = self
            .prepare(
                "SELECT k.account_id, k.question, k.answer_hash, k.key_version
                 FROM account_knowledge k JOIN accounts a ON a.id = k.account_id
                 WHERE a.test = 1 ORDER BY k.account_id, k.question",
            )?
            .query_map([], |r| {
                Ok(KnowledgeRow {
                    account_id: r.get(0)?,
                    question: r.get(1)?,
                    answer_hash: r.get(2)?,
                    key_version: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .context("reading the test accounts' answers")?;
        let call_codes = self
            .prepare(
                "SELECT c.id, c.account_id, c.code_hash, c.key_version, c.created_at, c.expires_at,
                        c.used_at, c.used_by_call
                 FROM call_codes c JOIN accounts a ON a.id = c.account_id
                 WHERE a.test = 1 AND c.used_at IS NULL ORDER BY c.id",
            )?
            .query_map([], |r| {
                Ok(CallCodeRow {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    code_hash: r.get(2)?,
                    key_version: r.get(3)?,
                    created_at: r.get(4)?,
                    expires_at: r.get(5)?,
                    used_at: r.get(6)?,
                    used_by_call: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .context("reading the test accounts' call codes")?;
        Ok(TestAccountRows {
            accounts,
            knowledge,
            call_codes,
        })
    }
}
