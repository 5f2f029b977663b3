use std::fmt;

use zeroize::Zeroizing;

/// What a caller typed in one `<Gather>`, with the finishing `#` removed. It may be a secret, so
/// it is wiped on drop and its Debug output is redacted: keypad digits never reach a log.
#[derive(Clone)]
pub struct Keypad(Zeroizing<String>);

impl Keypad {
    /// Reads Twilio's `Digits`. Twilio strips the finishing key, other gateways may not; a `#`
    /// at the end is removed either way. `None` means the caller typed nothing.
    pub fn from_digits(raw: Option<&str>) -> Option<Self> {
        let raw = raw?.trim();
        let raw = raw.strip_suffix('#').unwrap_or(raw);
        if raw.is_empty() {
            None
        } else {
            Some(Self(Zeroizing::new(raw.to_owned())))
        }
    }

    /// True when every key is a digit 0-9: `*` or letters can never be a code.
    pub fn is_all_digits(&self) -> bool {
        self.0.bytes().all(|b| b.is_ascii_digit())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Keypad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypad(<{} keys>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_missing_is_silence() {
        assert!(Keypad::from_digits(None).is_none());
        assert!(Keypad::from_digits(Some("")).is_none());
        assert!(Keypad::from_digits(Some("#")).is_none());
    }

    #[test]
    fn finishing_key_is_stripped() {
        assert_eq!(Keypad::from_digits(Some("1234#")).unwrap().expose(), "1234");
        assert!(Keypad::from_digits(Some("12*4")).is_some_and(|k| !k.is_all_digits()));
    }

    #[test]
    fn debug_never_shows_keys() {
        let k = Keypad::from_digits(Some("555123")).unwrap();
        assert!(!format!("{k:?}").contains("555"));
    }
}
