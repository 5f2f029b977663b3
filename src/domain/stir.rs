/// STIR/SHAKEN verification status as Twilio reports it in `StirVerstat`. Only US carriers send
/// it; Polish calls carry none, so absent means "unknown", never "failed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StirVerstat(String);

impl StirVerstat {
    /// Keeps the value only when it looks like a verstat token, so that a hostile value cannot
    /// smuggle text into the screen-pop or the logs.
    pub fn parse(raw: Option<&str>) -> Option<Self> {
        let raw = raw?.trim();
        let plausible = !raw.is_empty()
            && raw.len() <= 40
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        plausible.then(|| Self(raw.to_owned()))
    }

    /// `TN-Validation-Failed`, `-A/-B/-C` and their `-Diverted` forms: a spoofing indicator.
    pub fn is_failed(&self) -> bool {
        self.0.starts_with("TN-Validation-Failed")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_forms() {
        for v in [
            "TN-Validation-Failed",
            "TN-Validation-Failed-A",
            "TN-Validation-Failed-C-Diverted",
        ] {
            assert!(StirVerstat::parse(Some(v)).unwrap().is_failed(), "{v}");
        }
        for v in ["TN-Validation-Passed-A", "No-TN-Validation"] {
            assert!(!StirVerstat::parse(Some(v)).unwrap().is_failed(), "{v}");
        }
        assert!(StirVerstat::parse(Some("")).is_none());
        assert!(StirVerstat::parse(Some("x\ny")).is_none());
    }
}
