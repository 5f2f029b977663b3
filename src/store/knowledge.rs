//! Answers to knowledge questions (date of birth as DDMMYYYY, ...), stored as keyed hashes bound
//! to the account and the question, so a stolen database reveals no answer and one account's
//! hash says nothing about another's.

use crate::verify::Keyring;

/// What is hashed for an answer: bound to the account and the question.
pub fn material(account_id: &str, question: &str, answer: &str) -> String {
    format!("{account_id}\u{1f}{question}\u{1f}{answer}")
}

pub trait KnowledgeDb {
    /// Sets (or replaces) an account's answer.
    fn set_knowledge_answer(
        &self,
        keys: &Keyring,
        account_id: &str,
        question: &str,
        answer: &str,
    ) -> anyhow::Result<()>;

    /// Whether the account has an answer to `question` at all.
    fn has_knowledge_answer(&self, account_id: &str, question: &str) -> anyhow::Result<bool>;

    /// The questions an account can be asked (never the answers).
    fn knowledge_questions(&self, account_id: &str) -> anyhow::Result<Vec<String>>;

    /// Checks an answer in constant time against the stored hash. A right answer under an
    /// older key version is re-keyed under the current one, in the caller's transaction: the
    /// only moment the answer is known again.
    fn check_knowledge_answer(
        &self,
        keys: &Keyring,
        account_id: &str,
        question: &str,
        answer: &str,
    ) -> anyhow::Result<bool>;
}
