//! Accounts on PostgreSQL.

use anyhow::Context;
use postgres::Row;

use super::PgDb;
use crate::domain::PhoneNumber;
use crate::store::KnowledgeDb;
use crate::store::accounts::{
    Account, AccountHistory, AccountRow, AccountsDb, AddAccountError, CallCodeRow, KnowledgeRow,
    NewAccount, TestAccountRows,
};
use crate::verify::{Keyring, Purpose};

const COLUMNS: &str = "id, name, phone, code_hash IS NOT NULL, totp_secret IS NOT NULL, attributes, \
                       failed_count, locked_until, created_at, test";

/// Serialises the checks and the insert of `add_account` against each other and against
/// `issue_call_code` on every node: with no single writer, two of them could otherwise both
/// find a code free and both take it (an account code equal to a live call code, which the
/// unique indexes, one per table, cannot see). "cg-codes" in ASCII.
pub(super) const CODE_SPACE_LOCK: i64 = 0x6367_2d63_6f64_6573;

fn from_row(row: &Row) -> anyhow::Result<Account> {
    let attributes: String = row.try_get(5)?;
    Ok(Account {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        phone: row.try_get(2)?,
        has_code: row.try_get(3)?,
        has_totp: row.try_get(4)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        failed_count: row.try_get(6)?,
        locked_until: row.try_get(7)?,
        created_at: row.try_get(8)?,
        test: row.try_get(9)?,
    })
}

/// A stored key version (BIGINT) as the keyring's `u32`.
pub(super) fn key_version(v: i64) -> anyhow::Result<u32> {
    u32::try_from(v).with_context(|| format!("stored key version {v} is out of range"))
}

impl PgDb<'_> {
    /// Writes the account row; with `skip_taken`, an id or code already stored is not an error
    /// but `false` (and nothing is written), so `add_account` can tell a duplicate without
    /// aborting the transaction as a failed INSERT would.
    fn insert_account_row(
        &self,
        keys: &Keyring,
        new: &NewAccount<'_>,
        now: i64,
        skip_taken: bool,
    ) -> anyhow::Result<bool> {
        let code = new
            .code
            .map(|c| keys.keyed_hash(Purpose::AccountCode, c.expose()));
        let totp = match new.totp_secret {
            Some(secret) => Some(keys.encrypt(secret, new.id.as_str())?),
            None => None,
        };
        let attributes = serde_json::to_string(new.attributes).context("attributes")?;
        let sql = if skip_taken {
            "INSERT INTO accounts (id, name, phone, code_hash, code_key_version, totp_secret, totp_key_version, attributes, created_at, test)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        } else {
            "INSERT INTO accounts (id, name, phone, code_hash, code_key_version, totp_secret, totp_key_version, attributes, created_at, test)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        };
        let inserted = self
            .tx()?
            .execute(
                sql,
                &[
                    &new.id.as_str(),
                    &new.name.as_str(),
                    &new.phone.as_str(),
                    &code.as_ref().map(|(_, h)| h.as_slice()),
                    &code.as_ref().map(|(v, _)| i64::from(*v)),
                    &totp.as_ref().map(|(_, s)| s.as_slice()),
                    &totp.as_ref().map(|(v, _)| i64::from(*v)),
                    &attributes,
                    &now,
                    &new.test,
                ],
            )
            .context("inserting account")?;
        if inserted == 0 {
            return Ok(false);
        }
        for (question, answer) in new.knowledge {
            self.set_knowledge_answer(keys, new.id.as_str(), question, answer)?;
        }
        Ok(true)
    }

    fn exists(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> anyhow::Result<bool> {
        Ok(self.tx()?.query_one(sql, params)?.try_get(0)?)
    }
}

impl AccountsDb for PgDb<'_> {
    fn add_account(
        &self,
        keys: &Keyring,
        new: &NewAccount<'_>,
        now: i64,
    ) -> Result<(), AddAccountError> {
        // SQLite's single writer made check-then-insert atomic; here the lock does, until
        // the caller's transaction ends.
        self.tx()?
            .execute("SELECT pg_advisory_xact_lock($1)", &[&CODE_SPACE_LOCK])
            .context("waiting for the code lock")?;
        let id_taken = || {
            self.exists(
                "SELECT EXISTS(SELECT 1 FROM accounts WHERE id = $1)",
                &[&new.id.as_str()],
            )
            .context("checking id")
        };
        if id_taken()? {
            return Err(AddAccountError::DuplicateId(new.id.to_string()));
        }
        if let Some(code) = new.code {
            for (_, hash) in keys.keyed_hash_candidates(Purpose::AccountCode, code.expose()) {
                let taken = self
                    .exists(
                        "SELECT EXISTS(SELECT 1 FROM accounts WHERE code_hash = $1)",
                        &[&hash.as_slice()],
                    )
                    .context("checking code")?;
                if taken {
                    return Err(AddAccountError::DuplicateCode);
                }
            }
            for (_, hash) in keys.keyed_hash_candidates(Purpose::CallCode, code.expose()) {
                let live = self
                    .exists(
                        "SELECT EXISTS(SELECT 1 FROM call_codes WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2)",
                        &[&hash.as_slice(), &now],
                    )
                    .context("checking call codes")?;
                if live {
                    return Err(AddAccountError::DuplicateCode);
                }
            }
        }
        // `insert_account` (seeding) takes no lock: should it have written the same id or
        // code meanwhile, the insert finds it taken rather than failing.
        if !self.insert_account_row(keys, new, now, true)? {
            return Err(if id_taken()? {
                AddAccountError::DuplicateId(new.id.to_string())
            } else {
                AddAccountError::DuplicateCode
            });
        }
        Ok(())
    }

    fn insert_account(&self, keys: &Keyring, new: &NewAccount<'_>, now: i64) -> anyhow::Result<()> {
        self.insert_account_row(keys, new, now, false)?;
        Ok(())
    }

    fn account(&self, id: &str) -> anyhow::Result<Option<Account>> {
        let row = self
            .tx()?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"),
                &[&id],
            )
            .context("reading account")?;
        row.as_ref().map(from_row).transpose()
    }

    fn accounts(&self) -> anyhow::Result<Vec<Account>> {
        let rows = self
            .tx()?
            .query(&format!("SELECT {COLUMNS} FROM accounts ORDER BY id"), &[])?;
        rows.iter().map(from_row).collect()
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
        // ILIKE: PostgreSQL's LIKE is case-sensitive, SQLite's is not (for ASCII).
        let rows = self.tx()?.query(
            &format!(
                "SELECT {COLUMNS} FROM accounts
                 WHERE id ILIKE $1 ESCAPE '\\' OR name ILIKE $1 ESCAPE '\\'
                 ORDER BY id LIMIT $2"
            ),
            &[&pattern, &i64::from(limit)],
        )?;
        rows.iter().map(from_row).collect()
    }

    fn remove_account(&self, id: &str) -> anyhow::Result<bool> {
        Ok(self
            .tx()?
            .execute("DELETE FROM accounts WHERE id = $1", &[&id])?
            > 0)
    }

    fn set_account_phone(&self, id: &str, phone: &PhoneNumber, now: i64) -> anyhow::Result<bool> {
        let changed = self.tx()?.execute(
            "UPDATE accounts SET phone = $2, phone_changed_at = $3 WHERE id = $1",
            &[&id, &phone.as_str(), &now],
        )?;
        Ok(changed > 0)
    }

    fn account_ids_on_phone(&self, phone: &str) -> anyhow::Result<Vec<String>> {
        let rows = self.tx()?.query(
            "SELECT id FROM accounts WHERE phone = $1 ORDER BY id",
            &[&phone],
        )?;
        rows.iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<anyhow::Result<_>>()
    }

    fn find_account_by_code(&self, keys: &Keyring, code: &str) -> anyhow::Result<Option<String>> {
        let current = keys.current_version();
        for (version, hash) in keys.keyed_hash_candidates(Purpose::AccountCode, code) {
            let found = self.tx()?.query_opt(
                "SELECT id, code_key_version FROM accounts WHERE code_hash = $1",
                &[&hash.as_slice()],
            )?;
            let Some(found) = found else {
                continue;
            };
            let id: String = found.try_get(0)?;
            let stored_version = found
                .try_get::<_, Option<i64>>(1)?
                .map(key_version)
                .transpose()?;
            if version != current || stored_version != Some(current) {
                let (v, rekeyed) = keys.keyed_hash(Purpose::AccountCode, code);
                // SQLite's UPDATE OR IGNORE: a hash some other account holds already is left
                // alone (a failed UPDATE would abort the whole transaction here). The code_hash
                // guard makes a second node re-keying the same row at once change nothing.
                self.tx()?
                    .execute(
                        "UPDATE accounts SET code_hash = $2, code_key_version = $3
                         WHERE id = $1 AND code_hash = $4
                           AND NOT EXISTS (SELECT 1 FROM accounts WHERE code_hash = $2)",
                        &[&id, &rekeyed.as_slice(), &i64::from(v), &hash.as_slice()],
                    )
                    .context("re-keying the account code")?;
            }
            return Ok(Some(id));
        }
        Ok(None)
    }

    fn totp_secret(
        &self,
        keys: &Keyring,
        id: &str,
    ) -> anyhow::Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let sealed = self.tx()?.query_opt(
            "SELECT totp_secret, totp_key_version FROM accounts WHERE id = $1 AND totp_secret IS NOT NULL",
            &[&id],
        )?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let blob: Vec<u8> = sealed.try_get(0)?;
        let version = key_version(sealed.try_get(1)?)?;
        let secret = keys.decrypt(version, &blob, id)?;
        // Sealed under an older key (an account added by a server that had not yet read a
        // rotated key file): re-seal it under the current one. The version guard makes a
        // second node doing the same at once change nothing.
        if version != keys.current_version() {
            let (v, resealed) = keys.encrypt(&secret, id)?;
            self.tx()?
                .execute(
                    "UPDATE accounts SET totp_secret = $2, totp_key_version = $3 WHERE id = $1 AND totp_key_version = $4",
                    &[&id, &resealed.as_slice(), &i64::from(v), &i64::from(version)],
                )
                .context("re-sealing the TOTP secret")?;
        }
        Ok(Some(secret))
    }

    fn advance_totp_step(&self, id: &str, step: u64) -> anyhow::Result<bool> {
        let step = i64::try_from(step).context("TOTP step out of range")?;
        // One winner across nodes: the UPDATE locks the row, and a second transaction that
        // waited for the lock re-checks the WHERE on the row the first one wrote (READ
        // COMMITTED), finds the step no longer later, and changes nothing.
        let changed = self.tx()?.execute(
            "UPDATE accounts SET totp_last_step = $2
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            &[&id, &step],
        )?;
        Ok(changed == 1)
    }

    fn account_history(&self, id: &str) -> anyhow::Result<AccountHistory> {
        let row = self.tx()?.query_opt(
            "SELECT last_locked_at, phone_changed_at FROM accounts WHERE id = $1",
            &[&id],
        )?;
        Ok(match row {
            Some(r) => AccountHistory {
                last_locked_at: r.try_get(0)?,
                phone_changed_at: r.try_get(1)?,
            },
            None => AccountHistory::default(),
        })
    }

    fn count_accounts(&self) -> anyhow::Result<i64> {
        Ok(self
            .tx()?
            .query_one("SELECT COUNT(*) FROM accounts", &[])?
            .try_get(0)?)
    }

    fn count_real_accounts(&self) -> anyhow::Result<i64> {
        Ok(self
            .tx()?
            .query_one("SELECT COUNT(*) FROM accounts WHERE NOT test", &[])?
            .try_get(0)?)
    }

    fn count_accounts_with_id_prefix(&self, prefix: &str) -> anyhow::Result<i64> {
        // starts_with keeps the prefix literal (no LIKE wildcards).
        Ok(self
            .tx()?
            .query_one(
                "SELECT COUNT(*) FROM accounts WHERE starts_with(id, $1)",
                &[&prefix],
            )?
            .try_get(0)?)
    }

    fn test_account_rows(&self) -> anyhow::Result<TestAccountRows> {
        let accounts = self
            .tx()?
            .query(
                "SELECT id, name, phone, code_hash, code_key_version, totp_secret, totp_key_version,
                        totp_last_step, attributes, failed_count, locked_until, created_at, test,
                        phone_changed_at, last_locked_at
                 FROM accounts WHERE test ORDER BY id",
                &[],
            )
            .context("reading the test accounts")?
            .iter()
            .map(|r| {
                Ok(AccountRow {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    phone: r.try_get(2)?,
                    code_hash: r.try_get(3)?,
                    code_key_version: r.try_get(4)?,
                    totp_secret: r.try_get(5)?,
                    totp_key_version: r.try_get(6)?,
                    totp_last_step: r.try_get(7)?,
                    attributes: r.try_get(8)?,
                    failed_count: r.try_get(9)?,
                    locked_until: r.try_get(10)?,
                    created_at: r.try_get(11)?,
                    test: r.try_get(12)?,
                    phone_changed_at: r.try_get(13)?,
                    last_locked_at: r.try_get(14)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // The answers and codes of exactly these accounts (READ COMMITTED: each statement
        // sees its own snapshot, so a join on `test` again could name another set).
        let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        let knowledge = self
            .tx()?
            .query(
                "SELECT account_id, question, answer_hash, key_version FROM account_knowledge
                 WHERE account_id = ANY($1) ORDER BY account_id, question",
                &[&ids],
            )
            .context("reading the test accounts' answers")?
            .iter()
            .map(|r| {
                Ok(KnowledgeRow {
                    account_id: r.try_get(0)?,
                    question: r.try_get(1)?,
                    answer_hash: r.try_get(2)?,
                    key_version: r.try_get(3)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let call_codes = self
            .tx()?
            .query(
                "SELECT id, account_id, code_hash, key_version, created_at, expires_at, used_at,
                        used_by_call
                 FROM call_codes WHERE account_id = ANY($1) AND used_at IS NULL ORDER BY id",
                &[&ids],
            )
            .context("reading the test accounts' call codes")?
            .iter()
            .map(|r| {
                Ok(CallCodeRow {
                    id: r.try_get(0)?,
                    account_id: r.try_get(1)?,
                    code_hash: r.try_get(2)?,
                    key_version: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    expires_at: r.try_get(5)?,
                    used_at: r.try_get(6)?,
                    used_by_call: r.try_get(7)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(TestAccountRows {
            accounts,
            knowledge,
            call_codes,
        })
    }
}
