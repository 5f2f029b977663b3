use std::fmt;

use super::ParseError;

/// The id a gateway gives a call: Twilio's `CA` + 32 hex digits, other TwiML gateways' ids
/// (Somleng uses UUIDs). It keys the call's state and goes into logs, so it is restricted to a
/// short, harmless alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct CallSid(String);

impl CallSid {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let ok = (2..=64).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(ParseError::new(
                "CallSid must be 2-64 characters of letters, digits, '-' or '_'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_and_uuid_sids_parse() {
        assert!(CallSid::parse("CA1234567890abcdef1234567890abcdef").is_ok());
        assert!(CallSid::parse("9f1b2c3d-1111-2222-3333-444455556666").is_ok());
    }

    #[test]
    fn hostile_sids_are_refused() {
        assert!(CallSid::parse("").is_err());
        assert!(CallSid::parse("CA1\nINFO forged").is_err());
        assert!(CallSid::parse("CA'; DROP TABLE calls;--").is_err());
        assert!(CallSid::parse(&"C".repeat(65)).is_err());
    }
}
