//! Knowledge answers on PostgreSQL.

use anyhow::Context;
use subtle::ConstantTimeEq;

use super::PgDb;
use super::accounts::key_version;
use crate::store::knowledge::{KnowledgeDb, material};
use crate::verify::{Keyring, Purpose};

impl KnowledgeDb for PgDb<'_> {
    fn set_knowledge_answer(
        &self,
        keys: &Keyring,
        account_id: &str,
        question: &str,
        answer: &str,
    ) -> anyhow::Result<()> {
        let (version, hash) =
            keys.keyed_hash(Purpose::Knowledge, &material(account_id, question, answer));
        self.tx()?
            .execute(
                "INSERT INTO account_knowledge (account_id, question, answer_hash, key_version)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, question)
                 DO UPDATE SET answer_hash = EXCLUDED.answer_hash, key_version = EXCLUDED.key_version",
                &[&account_id, &question, &hash.as_slice(), &i64::from(version)],
            )
            .context("saving knowledge answer")?;
        Ok(())
    }

    fn has_knowledge_answer(&self, account_id: &str, question: &str) -> anyhow::Result<bool> {
        Ok(self
            .tx()?
            .query_opt(
                "SELECT 1 FROM account_knowledge WHERE account_id = $1 AND question = $2",
                &[&account_id, &question],
            )?
            .is_some())
    }

    fn knowledge_questions(&self, account_id: &str) -> anyhow::Result<Vec<String>> {
        let rows = self
            .tx()?
            .query(
                "SELECT question FROM account_knowledge WHERE account_id = $1 ORDER BY question",
                &[&account_id],
            )
            .context("reading knowledge questions")?;
        rows.iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<anyhow::Result<_>>()
    }

    fn check_knowledge_answer(
        &self,
        keys: &Keyring,
        account_id: &str,
        question: &str,
        answer: &str,
    ) -> anyhow::Result<bool> {
        let stored = self.tx()?.query_opt(
            "SELECT answer_hash, key_version FROM account_knowledge WHERE account_id = $1 AND question = $2",
            &[&account_id, &question],
        )?;
        let Some(stored) = stored else {
            return Ok(false);
        };
        let hash: Vec<u8> = stored.try_get(0)?;
        let version = key_version(stored.try_get(1)?)?;
        let material = material(account_id, question, answer);
        let right = keys
            .keyed_hash_with(version, Purpose::Knowledge, &material)
            .is_some_and(|h| bool::from(h.ct_eq(&hash)));
        // A right answer under an older key version is re-keyed under the current one, in the
        // caller's transaction: the only moment the answer is known again. The version guard
        // makes a second node doing the same at once change nothing.
        if right && version != keys.current_version() {
            let (v, rekeyed) = keys.keyed_hash(Purpose::Knowledge, &material);
            self.tx()?
                .execute(
                    "UPDATE account_knowledge SET answer_hash = $3, key_version = $4
                     WHERE account_id = $1 AND question = $2 AND key_version = $5",
                    &[
                        &account_id,
                        &question,
                        &rekeyed.as_slice(),
                        &i64::from(v),
                        &i64::from(version),
                    ],
                )
                .context("re-keying the knowledge answer")?;
        }
        Ok(right)
    }
}
