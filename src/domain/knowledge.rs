use std::fmt;

use zeroize::Zeroizing;

use super::ParseError;

/// The longest identifier: script, step, prompt and knowledge-question names.
pub const MAX_IDENTIFIER_LEN: usize = 40;

/// The one rule for the names a script gives things (its own name, steps, prompts, knowledge
/// questions): a lowercase letter, then lowercase letters, digits, `-` or `_`, at most 40. A
/// knowledge question stored on an account must follow it too, or no script could ever ask it.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IDENTIFIER_LEN
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The name of a knowledge question (`dob`), as a script's knowledge step names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuestionId(String);

impl QuestionId {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if is_identifier(input) {
            Ok(Self(input.to_owned()))
        } else {
            Err(ParseError::new(format!(
                "knowledge question {input:?} must start with a lowercase letter and be at most \
                 {MAX_IDENTIFIER_LEN} lowercase letters, digits, - or _ (as a script's `question` is)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QuestionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A knowledge answer as the caller types it: 1 to 20 keypad digits (a script's knowledge step
/// asks for at most 20). Wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct KnowledgeAnswer(Zeroizing<String>);

impl KnowledgeAnswer {
    pub const MAX_LEN: usize = 20;

    /// `question` only names the answer in the error, which never repeats the answer itself.
    pub fn parse(question: &QuestionId, input: &str) -> Result<Self, ParseError> {
        if input.is_empty()
            || input.len() > Self::MAX_LEN
            || !input.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ParseError::new(format!(
                "knowledge {question}: the answer must be 1-{} digits, as typed on a keypad",
                Self::MAX_LEN
            )));
        }
        Ok(Self(Zeroizing::new(input.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KnowledgeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KnowledgeAnswer(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_follows_the_script_identifier_rule() {
        assert!(QuestionId::parse("dob").is_ok());
        assert!(QuestionId::parse("mother_maiden-name2").is_ok());
        for bad in ["", "1dob", "-dob", "_dob", "Dob", "d o b", &"q".repeat(41)] {
            assert!(QuestionId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_answer_is_keypad_digits_and_never_shown() {
        let q = QuestionId::parse("dob").unwrap();
        assert!(KnowledgeAnswer::parse(&q, "14031985").is_ok());
        for bad in ["", "1403x985", "１２", &"1".repeat(21)] {
            let e = KnowledgeAnswer::parse(&q, bad).unwrap_err().to_string();
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        let a = KnowledgeAnswer::parse(&q, "14031985").unwrap();
        assert!(!format!("{a:?}").contains("14031985"));
    }
}
