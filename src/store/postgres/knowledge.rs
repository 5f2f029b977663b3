//! knowledge on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::knowledge::*;
use crate::verify::Keyring;

impl KnowledgeDb for PgDb<'_> {
    fn set_knowledge_answer(
        &self,
        _keys: &Keyring,
        _account_id: &str,
        _question: &str,
        _answer: &str,
    ) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn has_knowledge_answer(&self, _account_id: &str, _question: &str) -> anyhow::Result<bool> {
        Err(not_yet())
    }

    fn knowledge_questions(&self, _account_id: &str) -> anyhow::Result<Vec<String>> {
        Err(not_yet())
    }

    fn check_knowledge_answer(
        &self,
        _keys: &Keyring,
        _account_id: &str,
        _question: &str,
        _answer: &str,
    ) -> anyhow::Result<bool> {
        Err(not_yet())
    }
}
