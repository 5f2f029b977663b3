use std::fmt;

use zeroize::Zeroizing;

use super::ParseError;

/// An account's identifier as the customer's systems know it (`ACC-1001`). Printable, short, and
/// free of `:` because it becomes the label of the TOTP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let ok_len = (1..=64).contains(&input.len());
        let ok_chars = input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let ok_start = input
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if ok_len && ok_chars && ok_start {
            Ok(Self(input.to_owned()))
        } else {
            Err(ParseError::new(
                "account id must be 1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The customer's name as an agent should read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 200 {
            return Err(ParseError::new("account name must be 1-200 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ParseError::new(
                "account name must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A permanent account code: 6 to 12 digits (NIST SP 800-63B: service-chosen secrets of at least
/// six characters may be all digits). Held in memory that is wiped on drop and never printed.
#[derive(Clone)]
pub struct AccountCode(Zeroizing<String>);

impl AccountCode {
    pub const MIN_LEN: usize = 6;
    pub const MAX_LEN: usize = 12;

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&input.len())
            || !input.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ParseError::new(format!(
                "account code must be {} to {} digits",
                Self::MIN_LEN,
                Self::MAX_LEN
            )));
        }
        Ok(Self(Zeroizing::new(input.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccountCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountCode(<redacted>)")
    }
}

/// Key of a free-form account attribute (`plan`, `device`, `app_version`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeKey(String);

impl AttributeKey {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let ok = (1..=40).contains(&input.len())
            && input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(ParseError::new(format!(
                "attribute key {input:?} must be 1-40 characters of letters, digits, '_', '-' or '.'"
            )))
        }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_code_bounds() {
        assert!(AccountCode::parse("12345").is_err());
        assert!(AccountCode::parse("123456").is_ok());
        assert!(AccountCode::parse("123456789012").is_ok());
        assert!(AccountCode::parse("1234567890123").is_err());
        assert!(AccountCode::parse("12345a").is_err());
        assert!(
            AccountCode::parse("１２３４５６").is_err(),
            "full-width digits are not keypad digits"
        );
    }

    #[test]
    fn account_code_debug_hides_the_code() {
        let code = AccountCode::parse("987654").unwrap();
        assert!(!format!("{code:?}").contains("987654"));
    }

    #[test]
    fn account_id_rules() {
        assert!(AccountId::parse("ACC-1001").is_ok());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("a:b").is_err());
        assert!(AccountId::parse("-x").is_err());
        assert!(AccountId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn account_name_rules() {
        assert_eq!(
            AccountName::parse("  Jan Kowalski ").unwrap().as_str(),
            "Jan Kowalski"
        );
        assert!(AccountName::parse("").is_err());
        assert!(AccountName::parse("a\nb").is_err());
    }
}
