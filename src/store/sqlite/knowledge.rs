//! Knowledge answers in SQLite.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use subtle::ConstantTimeEq;

use crate::store::knowledge::{KnowledgeDb, material};
use crate::verify::{Keyring, Purpose};

impl KnowledgeDb for Connection {
    fn set_knowledge_answer(
        &self,
        keys: &Keyring,
        account_id: &str,
        question: &str,
        answer: &str,
    ) -> anyhow::Result<()> {
        let (version, hash) =
            keys.keyed_hash(Purpose::Knowledge, &material(account_id, question, answer));
        self.execute(
            "INSERT INTO account_knowledge (account_id, question, answer_hash, key_version)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(account_id, question) DO UPDATE SET answer_hash = ?3, key_version = ?4",
            params![account_id, question, hash, version],
        )
        .context("saving knowledge answer")?;
        Ok(())
    }

    fn has_knowledge_answer(&self, account_id: &str, question: &str) -> anyhow::Result<bool> {
        Ok(self
            .prepare_cached(
                "SELECT 1 FROM account_knowledge WHERE account_id = ?1 AND question = ?2",
            )?
            .query_row(params![account_id, question], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn knowledge_questions(&self, account_id: &str) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.prepare_cached(
            "SELECT question FROM account_knowledge WHERE account_id = ?1 ORDER BY question",
        )?;
        let rows = stmt.query_map([account_id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()
            .context("reading knowledge questions")
    }

    fn check_knowledge_answer(
        &self,
        keys: &Keyring,
        account_id: &str,
        question: &str,
        answer: &str,
    ) -> anyhow::Result<bool> {
        let stored: Option<(Vec<u8>, u32)> = self
        .prepare_cached(
            "SELECT answer_hash, key_version FROM account_knowledge WHERE account_id = ?1 AND question = ?2",
        )?
        .query_row(params![account_id, question], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
        let Some((stored, version)) = stored else {
            return Ok(false);
        };
        let material = material(account_id, question, answer);
        let right = keys
            .keyed_hash_with(version, Purpose::Knowledge, &material)
            .is_some_and(|hash| bool::from(hash.ct_eq(&stored)));
        // A right answer under an older key version is re-keyed under the current one, in the
        // caller's transaction: the only moment the answer is known again.
        if right && version != keys.current_version() {
            let (v, rekeyed) = keys.keyed_hash(Purpose::Knowledge, &material);
            self.prepare_cached(
                "UPDATE account_knowledge SET answer_hash = ?3, key_version = ?4
             WHERE account_id = ?1 AND question = ?2 AND key_version = ?5",
            )?
            .execute(params![account_id, question, rekeyed, v, version])
            .context("re-keying the knowledge answer")?;
        }
        Ok(right)
    }
}
