use std::fmt;
use std::str::FromStr;

use phonenumber::Mode;
use phonenumber::country::Id;

use super::ParseError;

/// The region in which a number written without a country code is read (`PL` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(Id);

impl Region {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Id::from_str(&input.trim().to_ascii_uppercase())
            .map(Self)
            .map_err(|_| {
                ParseError::new(format!(
                    "unknown region {input:?}: use a two-letter ISO code such as PL"
                ))
            })
    }
}

impl Default for Region {
    fn default() -> Self {
        Self(Id::PL)
    }
}

/// The two-letter code, as `parse` reads it (so a default shown in `--help` reads back).
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

impl FromStr for Region {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A telephone number in E.164 form (`+48601555777`). What a person types is parsed and checked
/// against the numbering plan (`parse`); a caller ID the network already sends in E.164 is taken
/// as sent (`CallerId::from_twilio`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses what a person typed (`601 555 777`, `+48 601-555-777`, `0048601555777`), reading a
    /// number without a country code in `region`. Only numbers valid by the numbering plan pass.
    pub fn parse(input: &str, region: Region) -> Result<Self, ParseError> {
        let refused = || ParseError::new(format!("{input:?} is not a valid phone number"));
        if input.len() > 40 {
            return Err(refused());
        }
        // A number written with `+` carries its country code: reading it "in" a region only adds
        // region-specific quirks (the fuzzer found `+441586703559` valid in PL and GB but refused
        // in US), so it is read without one and means the same number everywhere.
        let region = if input.trim_start().starts_with('+') {
            None
        } else {
            Some(region.0)
        };
        let parsed = phonenumber::parse(region, input).map_err(|_| refused())?;
        if !phonenumber::is_valid(&parsed) {
            return Err(refused());
        }
        Ok(Self(parsed.format().mode(Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used in logs: country code and last three digits only.
    pub fn masked(&self) -> String {
        mask_number(&self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masks a number for logs (`+48601234567` → `+48*****567`), keeping the first three and the
/// last three characters. Short or odd values are masked whole.
pub fn mask_number(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().filter(|c| !c.is_control()).collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len().max(1));
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

/// `+`, a country code that does not start with 0, 8 to 15 digits in all.
fn is_e164(raw: &str) -> bool {
    raw.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// Who the network says is calling. A withheld number never matches an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    Number(PhoneNumber),
    /// `anonymous`, `restricted`, `unknown`, empty, or anything that is not a phone number
    /// (a `client:` or `sip:` identity).
    Withheld,
}

impl CallerId {
    /// Reads Twilio's `From`. Twilio sends E.164; a gateway may send national digits, which are
    /// read in `region`.
    pub fn from_twilio(raw: Option<&str>, region: Region) -> Self {
        let raw = raw.map(str::trim).unwrap_or_default();
        let withheld = raw.is_empty()
            || [
                "anonymous",
                "restricted",
                "unknown",
                "private",
                "unavailable",
            ]
            .iter()
            .any(|w| raw.eq_ignore_ascii_case(w))
            || raw.contains(':');
        if withheld {
            return Self::Withheld;
        }
        // Twilio sends E.164. Such a caller ID is only ever compared with registered numbers
        // (validated when they were registered), so checking it against the numbering plan
        // adds nothing but cost: that check was 6% of the server's CPU under load.
        if is_e164(raw) {
            return Self::Number(PhoneNumber(raw.to_owned()));
        }
        PhoneNumber::parse(raw, region).map_or(Self::Withheld, Self::Number)
    }

    pub fn number(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Number(n) => Some(n),
            Self::Withheld => None,
        }
    }

    /// The key under which failures from this caller are counted. All withheld callers share
    /// one key: otherwise withholding the number would escape the per-number limit.
    pub fn throttle_key(&self) -> &str {
        match self {
            Self::Number(n) => n.as_str(),
            Self::Withheld => "withheld",
        }
    }

    /// What is stored and shown for the caller.
    pub fn display(&self) -> &str {
        self.throttle_key()
    }

    pub fn masked(&self) -> String {
        match self {
            Self::Number(n) => n.masked(),
            Self::Withheld => "withheld".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_numbers_are_read_in_the_default_region() {
        let pl = Region::default();
        assert_eq!(
            PhoneNumber::parse("601 555 777", pl).unwrap().as_str(),
            "+48601555777"
        );
        assert_eq!(
            PhoneNumber::parse("+48 601-555-777", pl).unwrap().as_str(),
            "+48601555777"
        );
        assert_eq!(
            PhoneNumber::parse("(415) 867-5309", Region::parse("us").unwrap())
                .unwrap()
                .as_str(),
            "+14158675309"
        );
    }

    #[test]
    fn malformed_numbers_are_refused() {
        let pl = Region::default();
        for bad in [
            "",
            "12",
            "abc",
            "+48 1",
            "601 555 777 888 999 000",
            "+999123456789",
        ] {
            assert!(
                PhoneNumber::parse(bad, pl).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn withheld_caller_ids() {
        let pl = Region::default();
        for raw in [
            None,
            Some(""),
            Some("anonymous"),
            Some("Restricted"),
            Some("client:alice"),
            Some("sip:x@y"),
        ] {
            assert_eq!(
                CallerId::from_twilio(raw, pl),
                CallerId::Withheld,
                "{raw:?}"
            );
        }
        assert!(
            CallerId::from_twilio(Some("+48601234567"), pl)
                .number()
                .is_some()
        );
    }

    #[test]
    fn masking_keeps_only_the_ends() {
        assert_eq!(mask_number("+48601234567"), "+48******567");
        assert_eq!(mask_number("123"), "***");
    }

    #[test]
    fn unknown_region_is_refused() {
        assert!(Region::parse("XX").is_err());
        assert!(Region::parse("pl").is_ok());
    }

    #[test]
    fn a_region_reads_back_as_shown() {
        assert_eq!(Region::default().to_string(), "PL");
        assert_eq!(
            Region::parse("us").unwrap().to_string().parse(),
            Ok(Region::parse("US").unwrap())
        );
    }

    #[test]
    fn a_number_with_a_country_code_is_the_same_in_every_region() {
        // Found by fuzz/fuzz_targets/phone_parse.rs: GB read `* $15 867]03559` as this number,
        // which then did not parse again in US.
        let gb = PhoneNumber::parse("* $15 867]03559", Region::parse("GB").unwrap()).unwrap();
        assert_eq!(gb.as_str(), "+441586703559");
        for r in ["PL", "US", "GB", "DE"] {
            assert_eq!(
                PhoneNumber::parse(gb.as_str(), Region::parse(r).unwrap()).unwrap(),
                gb,
                "in {r}"
            );
        }
    }
}
