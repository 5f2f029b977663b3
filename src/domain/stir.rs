//! STIR/SHAKEN verification status as Twilio reports it in `StirVerstat`. Only US carriers send
//! it; Polish calls carry none, so absent means "unknown", never "failed".
//!
//! The value is read without regard to case or separator (`tn-validation-failed-a`,
//! `TN_Validation_Failed_A` and `TN-Validation-Failed-A` are one value): gateways and SIP
//! trunks re-spell it, and a failed validation spelled differently must not pass for an
//! absent one. A present value that is not understood is kept as [`StirVerstat::Unrecognized`]:
//! it gives the caller ID no credit and shows as a risk flag.

use std::fmt;

/// The carrier's attestation: A = knows the caller and its right to the number, B = knows the
/// caller only, C = neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attestation {
    A,
    B,
    C,
}

impl Attestation {
    fn letter(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StirVerstat {
    /// `TN-Validation-Passed-A|B|C[-Diverted]`.
    Passed {
        attestation: Attestation,
        diverted: bool,
    },
    /// `TN-Validation-Failed[-A|B|C][-Diverted]`: a spoofing indicator.
    Failed {
        attestation: Option<Attestation>,
        diverted: bool,
    },
    /// `No-TN-Validation`: the carrier did not validate the number.
    NoValidation,
    /// A value that is present but none of the above. Its text is not kept: it came from the
    /// network and could carry anything into the screen-pop or the logs.
    Unrecognized,
}

/// How an unrecognised value is stored and shown; it reads back as `Unrecognized`.
const UNRECOGNIZED: &str = "unrecognized";

impl StirVerstat {
    /// `None` when the parameter is absent or empty; every other value is classified.
    pub fn parse(raw: Option<&str>) -> Option<Self> {
        let raw = raw?.trim();
        if raw.is_empty() {
            return None;
        }
        // Letters and digits only, lower-cased: the separators and case are not part of the
        // value. A value too long to be a verstat is not looked at further.
        if raw.len() > 64 {
            return Some(Self::Unrecognized);
        }
        let key: String = raw
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(Self::classify(&key).unwrap_or(Self::Unrecognized))
    }

    fn classify(key: &str) -> Option<Self> {
        if key == "notnvalidation" {
            return Some(Self::NoValidation);
        }
        let (rest, diverted) = match key.strip_suffix("diverted") {
            Some(rest) => (rest, true),
            None => (key, false),
        };
        let attestation = |s: &str| match s {
            "a" => Some(Some(Attestation::A)),
            "b" => Some(Some(Attestation::B)),
            "c" => Some(Some(Attestation::C)),
            "" => Some(None),
            _ => None,
        };
        if let Some(tail) = rest.strip_prefix("tnvalidationpassed") {
            // A pass always names its attestation.
            let attestation = attestation(tail)??;
            return Some(Self::Passed {
                attestation,
                diverted,
            });
        }
        if let Some(tail) = rest.strip_prefix("tnvalidationfailed") {
            return Some(Self::Failed {
                attestation: attestation(tail)?,
                diverted,
            });
        }
        None
    }

    /// Any failed validation: a spoofing indicator.
    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }

    /// A value nobody could read: the caller ID gets no credit, and the agent is told.
    pub fn is_unrecognized(&self) -> bool {
        matches!(self, Self::Unrecognized)
    }

    /// Whether the caller ID may count as a factor as far as STIR/SHAKEN is concerned.
    pub fn discredits_caller_id(&self) -> bool {
        self.is_failed() || self.is_unrecognized()
    }
}

/// Twilio's own spelling (`TN-Validation-Failed-A-Diverted`), whatever spelling came in.
impl fmt::Display for StirVerstat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let diverted = |d: bool| if d { "-Diverted" } else { "" };
        match self {
            Self::Passed {
                attestation,
                diverted: d,
            } => write!(
                f,
                "TN-Validation-Passed-{}{}",
                attestation.letter(),
                diverted(*d)
            ),
            Self::Failed {
                attestation,
                diverted: d,
            } => {
                f.write_str("TN-Validation-Failed")?;
                if let Some(a) = attestation {
                    write!(f, "-{}", a.letter())?;
                }
                f.write_str(diverted(*d))
            }
            Self::NoValidation => f.write_str("No-TN-Validation"),
            Self::Unrecognized => f.write_str(UNRECOGNIZED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: &str) -> StirVerstat {
        StirVerstat::parse(Some(v)).unwrap()
    }

    #[test]
    fn failed_forms() {
        for v in [
            "TN-Validation-Failed",
            "TN-Validation-Failed-A",
            "TN-Validation-Failed-C-Diverted",
            "tn-validation-failed-a",
            "TN_Validation_Failed_A",
            "tn validation failed b",
            "TNVALIDATIONFAILEDC",
        ] {
            assert!(parsed(v).is_failed(), "{v}");
            assert!(parsed(v).discredits_caller_id(), "{v}");
        }
        for v in [
            "TN-Validation-Passed-A",
            "tn_validation_passed_b_diverted",
            "No-TN-Validation",
            "no_tn_validation",
        ] {
            assert!(!parsed(v).is_failed(), "{v}");
            assert!(!parsed(v).discredits_caller_id(), "{v}");
        }
        assert!(StirVerstat::parse(Some("")).is_none());
        assert!(StirVerstat::parse(Some("  ")).is_none());
        assert!(StirVerstat::parse(None).is_none());
    }

    #[test]
    fn a_present_value_not_understood_discredits_the_caller_id() {
        for v in [
            "x\ny",
            "TN-Validation-Passed",
            "TN-Validation-Passed-D",
            "TN-Validation-Failed-Z",
            "Validation-Failed-A",
            "passed",
            "<script>",
            &"A".repeat(200),
        ] {
            let s = parsed(v);
            assert!(s.is_unrecognized(), "{v:?}");
            assert!(s.discredits_caller_id(), "{v:?}");
            assert_eq!(s.to_string(), "unrecognized");
        }
    }

    #[test]
    fn canonical_spelling_reads_back_as_itself() {
        for v in [
            "TN-Validation-Passed-A",
            "TN-Validation-Passed-C-Diverted",
            "TN-Validation-Failed",
            "TN-Validation-Failed-B-Diverted",
            "No-TN-Validation",
            "unrecognized",
        ] {
            assert_eq!(parsed(v).to_string(), v);
            assert_eq!(parsed(&parsed(v).to_string()), parsed(v));
        }
        assert_eq!(
            parsed("tn_validation_failed_a").to_string(),
            "TN-Validation-Failed-A"
        );
    }
}
